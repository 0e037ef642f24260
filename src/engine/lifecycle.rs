//! The anomaly lifecycle: instances (kind, registered prefix, announced prefix, offending ASN)
//! gain and lose carriers, open at `min-peers`, and resolve when none is left; the transitions
//! are recorded as self-contained [`AnomalyEvent`]s.

use std::sync::Arc;

use ipnet::IpNet;
use serde::Serialize;

use super::vecmap::VecMap;
use super::{AnomalyKey, AnomalyKind, Engine, PeerIdx, PrefixId, Severity};
use crate::model::{AsPath, PeerKey};
use crate::rpki::RovState;

/// One anomaly instance.
#[derive(Debug)]
pub struct AnomalyState {
    /// Routes carrying the anomaly, per peer (unused for MOAS, which is per announced prefix).
    pub(super) carriers: VecMap<PeerIdx>,
    pub(super) open: bool,
    pub(super) first_seen: f64,
    pub(super) last_seen: f64,
    pub(super) opened_at: Option<f64>,
    pub(super) example: Option<(PeerIdx, Arc<AsPath>)>,
}

/// Whether an anomaly opened or resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Transition {
    /// Reached min-peers.
    Opened,
    /// No peer carries it any more.
    Resolved,
}

/// Why routes went away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RemovalReason {
    /// The peer withdrew the route.
    Withdrawn,
    /// The peer replaced the route with another path.
    Replaced,
    /// The peer (or its session) went down.
    PeerDown,
    /// New RPKI data no longer finds the route invalid.
    Revalidated,
    /// A configuration reload removed the registered prefix.
    Unregistered,
    /// A configuration reload changed the policy, which no longer finds the anomaly.
    Reconfigured,
}

/// An anomaly transition, self-contained (names resolved) for reports, logs and storage.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AnomalyEvent {
    /// BGP time of the update that caused it.
    pub time: f64,
    /// Opened or resolved.
    pub transition: Transition,
    /// Kind.
    pub kind: AnomalyKind,
    /// Severity of the kind.
    pub severity: Severity,
    /// Location name.
    pub location: String,
    /// Registered prefix.
    pub prefix: IpNet,
    /// Announced prefix.
    pub announced: IpNet,
    /// Offending ASN.
    pub asn: Option<u32>,
    /// Peers carrying it at the transition (for a resolve: 0).
    pub peers: u32,
    /// The peer whose update caused the transition.
    pub peer: String,
    /// The same peer, structured (for the event store).
    #[serde(skip)]
    pub peer_key: Arc<PeerKey>,
    /// An AS path that carried it.
    pub example_path: Option<String>,
    /// For a resolve: why the last carrier went away.
    pub reason: Option<RemovalReason>,
    /// RPKI state of the example route, when VRPs are loaded (an `origin_mismatch` that is
    /// RPKI-valid is likely an authorised origin missing from the registry).
    pub rpki: Option<RovState>,
}

impl Engine {
    pub(super) fn min_peers(&self, r: PrefixId) -> u32 {
        self.registry.location_of(r).min_peers
    }

    pub(super) fn new_anomaly(ts: f64) -> AnomalyState {
        AnomalyState {
            carriers: VecMap::default(),
            open: false,
            first_seen: ts,
            last_seen: ts,
            opened_at: None,
            example: None,
        }
    }

    pub(super) fn carrier_added(
        &mut self,
        key: AnomalyKey,
        peer: PeerIdx,
        path: &Arc<AsPath>,
        ts: f64,
    ) {
        let min_peers = self.min_peers(key.registered);
        let st = self.prefixes[key.registered as usize]
            .anomalies_mut()
            .entry(key)
            .or_insert_with(|| Self::new_anomaly(ts));
        st.carriers.increment(peer);
        st.last_seen = ts;
        st.example = Some((peer, path.clone()));
        let carriers = st.carriers.len() as u32;
        if !st.open && carriers >= min_peers {
            st.open = true;
            st.opened_at = Some(ts);
            self.opened(key, carriers, peer, Some(path.clone()), ts);
        }
    }

    pub(super) fn carrier_removed(
        &mut self,
        key: AnomalyKey,
        peer: PeerIdx,
        ts: f64,
        reason: RemovalReason,
    ) {
        let st = &mut self.prefixes[key.registered as usize];
        let Some(an) = st.anomalies.as_mut().and_then(|m| m.get_mut(&key)) else {
            return;
        };
        an.carriers.decrement(&peer);
        if an.carriers.is_empty() {
            if let Some(an) = st.remove_anomaly(&key) {
                if an.open {
                    self.resolved(key, peer, an.example.map(|e| e.1), ts, reason);
                }
            }
        }
    }

    /// MOAS is a property of all routes of an announced prefix. It opens when at least two
    /// distinct origins are each carried by `min-peers` routes (peers, but for ADD-PATH), and
    /// resolves when fewer than two origins remain.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn update_moas(
        &mut self,
        r: PrefixId,
        q: IpNet,
        exact: bool,
        peer: PeerIdx,
        path: Option<&Arc<AsPath>>,
        ts: f64,
        reason: RemovalReason,
    ) {
        let min_peers = self.min_peers(r);
        let st = &mut self.prefixes[r as usize];
        let (distinct, npeers, well_carried) = st.announced(&q, exact).map_or((0, 0, 0), |a| {
            let well = a.origins.iter().filter(|(_, n)| *n >= min_peers).count();
            (a.origins.len(), a.peers, well)
        });
        let key = AnomalyKey {
            kind: AnomalyKind::Moas,
            registered: r,
            announced: q,
            asn: None,
        };
        if distinct >= 2 {
            let an = st
                .anomalies_mut()
                .entry(key)
                .or_insert_with(|| Self::new_anomaly(ts));
            an.last_seen = ts;
            if let Some(p) = path {
                an.example = Some((peer, p.clone()));
            }
            if !an.open && well_carried >= 2 {
                an.open = true;
                an.opened_at = Some(ts);
                let example = an.example.as_ref().map(|e| e.1.clone());
                self.opened(key, npeers, peer, example, ts);
            }
        } else if let Some(an) = st.remove_anomaly(&key) {
            if an.open {
                self.resolved(key, peer, an.example.map(|e| e.1), ts, reason);
            }
        }
    }

    // One argument per event field the caller knows; a struct here would only rename them.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn event(
        &self,
        key: AnomalyKey,
        transition: Transition,
        peers: u32,
        peer: PeerIdx,
        path: Option<&Arc<AsPath>>,
        ts: f64,
        reason: Option<RemovalReason>,
    ) -> AnomalyEvent {
        AnomalyEvent {
            time: ts,
            transition,
            kind: key.kind,
            severity: key.kind.severity(),
            location: self.registry.location_of(key.registered).name.clone(),
            prefix: self.registry.prefix(key.registered).prefix,
            announced: key.announced,
            asn: key.asn,
            peers,
            peer: self.peers[peer as usize].to_string(),
            peer_key: self.peers[peer as usize].clone(),
            example_path: path.map(|p| p.to_string()),
            reason,
            rpki: match (&self.vrps, path) {
                (Some(v), Some(p)) => Some(v.validate_path(&key.announced, p)),
                _ => None,
            },
        }
    }

    /// Opens (`fall`) or resolves (`recover`) a visibility anomaly of registered prefix `r`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn threshold(
        &mut self,
        kind: AnomalyKind,
        r: PrefixId,
        fall: bool,
        recover: bool,
        peer: PeerIdx,
        path: &AsPath,
        ts: f64,
    ) {
        let key = AnomalyKey {
            kind,
            registered: r,
            announced: self.registry.prefix(r).prefix,
            asn: None,
        };
        let open = self.prefixes[r as usize]
            .anomalies
            .as_ref()
            .is_some_and(|m| m.contains_key(&key));
        let visibility = self.prefixes[r as usize].stats.visibility;
        if fall && !open {
            let example = Arc::new(path.clone());
            self.prefixes[r as usize].anomalies_mut().insert(
                key,
                AnomalyState {
                    carriers: VecMap::default(),
                    open: true,
                    first_seen: ts,
                    last_seen: ts,
                    opened_at: Some(ts),
                    example: Some((peer, example.clone())),
                },
            );
            self.opened(key, visibility, peer, Some(example), ts);
        } else if recover && open {
            if let Some(an) = self.prefixes[r as usize].remove_anomaly(&key) {
                self.resolved(
                    key,
                    peer,
                    an.example.map(|e| e.1),
                    ts,
                    RemovalReason::Replaced,
                );
            }
        }
    }

    pub(super) fn opened(
        &mut self,
        key: AnomalyKey,
        peers: u32,
        peer: PeerIdx,
        path: Option<Arc<AsPath>>,
        ts: f64,
    ) {
        let ev = self.event(
            key,
            Transition::Opened,
            peers,
            peer,
            path.as_ref(),
            ts,
            None,
        );
        self.prefixes[key.registered as usize]
            .stats
            .anomaly_opened(key.kind.index());
        self.mark_dirty(key.registered);
        self.events.push(ev);
    }

    pub(super) fn resolved(
        &mut self,
        key: AnomalyKey,
        peer: PeerIdx,
        path: Option<Arc<AsPath>>,
        ts: f64,
        reason: RemovalReason,
    ) {
        let ev = self.event(
            key,
            Transition::Resolved,
            0,
            peer,
            path.as_ref(),
            ts,
            Some(reason),
        );
        self.prefixes[key.registered as usize]
            .stats
            .anomaly_resolved(key.kind.index());
        self.mark_dirty(key.registered);
        self.events.push(ev);
    }

    /// Takes the anomaly transitions recorded since the last call, oldest first.
    pub fn drain_events(&mut self) -> Vec<AnomalyEvent> {
        std::mem::take(&mut self.events)
    }
}
