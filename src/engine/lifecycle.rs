//! The anomaly lifecycle: instances (kind, registered prefix, announced prefix, offending ASN)
//! gain and lose carriers, open at `min-peers`, and resolve when none is left; the transitions
//! are recorded as self-contained [`AnomalyEvent`]s.
//!
//! # Flapping is a state, not a flood
//!
//! An open instance that loses its last carrier is not resolved at once: it is *released* and
//! held for the hold-down ([`Engine::set_hold_down`]: 0 in a new engine, which resolves at
//! once; the daemon and replay use [`DEFAULT_HOLD_DOWN`] seconds of BGP time unless configured). If it comes back within that time it is the same incident: it stays open with its
//! first-seen and opened-at times, no new transition is recorded, and its flap count goes up.
//! Only when the hold-down passes without a carrier is it resolved, with the time its last
//! carrier went away and its flap count ([`AnomalyEvent::flaps`]). A hijacker announcing and
//! withdrawing a prefix in a loop therefore gives one opened and (after it stops) one resolved
//! event, not a pair per cycle, and `routewatch_anomalies_active` stays 1 meanwhile.
//!
//! Released instances are resolved by [`Engine::release_due`] when the newest BGP time seen has
//! passed their hold-down (the pipeline calls it after every batch), by [`Engine::release_idle`]
//! when the hold-down has passed on the wall clock (the daemon calls it every few seconds: a
//! quiet feed, or one whose BGP times lag, still ends its incidents), and all at once by
//! [`Engine::flush_releases`] (end of a replay, before a reload).

use std::sync::Arc;

use ipnet::IpNet;
use serde::Serialize;

use super::vecmap::VecMap;
use super::{AnomalyKey, AnomalyKind, Engine, Leak, PeerIdx, PrefixId, Severity};
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
    /// Times it came back within the hold-down after losing its last carrier.
    pub(super) flaps: u32,
}

impl AnomalyState {
    /// A route carrying the instance was seen at `ts`. The routes of one instance do not come
    /// in time order — the entries of a RIB dump carry their originated times, in no order; a
    /// BMP message without a timestamp gets the wall clock; RPKI and reload changes are timed
    /// by the wall clock — so `first_seen` is the earliest time seen and `last_seen` the latest
    /// (never the time of the latest update applied: that put `last_seen` before
    /// `first_seen` whenever an older route came second).
    pub(super) fn seen(&mut self, ts: f64) {
        if ts < self.first_seen {
            self.first_seen = ts;
        }
        if ts > self.last_seen {
            self.last_seen = ts;
        }
    }
}

/// Seconds an open anomaly instance with no carrier left is held before it resolves.
pub const DEFAULT_HOLD_DOWN: f64 = 60.0;

/// Instances held at most at once; beyond, an instance resolves at once (counted in
/// [`Engine::holds_skipped`]), so a flood of distinct hijacked more-specifics cannot grow the
/// hold-down set.
pub const MAX_RELEASING: usize = 100_000;

/// An open instance that lost its last carrier, waiting out the hold-down.
#[derive(Debug)]
pub(super) struct Release {
    pub(super) state: AnomalyState,
    /// The peer whose update removed the last carrier.
    pub(super) peer: PeerIdx,
    /// When the last carrier went away (the resolution's time, if it does not come back).
    pub(super) since: f64,
    /// The wall clock then, as the last [`Engine::release_idle`] told it (`-inf` before any).
    pub(super) wall: f64,
    pub(super) reason: RemovalReason,
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
    /// Visibility came back (`withdrawn`, `visibility_lost`).
    Recovered,
}

impl RemovalReason {
    /// The stable snake_case name (as serialised).
    pub fn as_str(self) -> &'static str {
        match self {
            RemovalReason::Withdrawn => "withdrawn",
            RemovalReason::Replaced => "replaced",
            RemovalReason::PeerDown => "peer_down",
            RemovalReason::Revalidated => "revalidated",
            RemovalReason::Unregistered => "unregistered",
            RemovalReason::Reconfigured => "reconfigured",
            RemovalReason::Recovered => "recovered",
        }
    }
}

/// An anomaly transition, self-contained (names resolved) for reports, logs and storage.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AnomalyEvent {
    /// BGP time of the update that caused it.
    #[serde(with = "crate::time_fmt::serde")]
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
    pub example_path: Option<Arc<AsPath>>,
    /// For a resolve: why the last carrier went away.
    pub reason: Option<RemovalReason>,
    /// RPKI state of the example route, when VRPs are loaded (an `origin_mismatch` that is
    /// RPKI-valid is likely an authorised origin missing from the registry).
    pub rpki: Option<RovState>,
    /// For a `route_leak` with an example route: why it is a leak, the procedure and the
    /// peer's role.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leak: Option<Leak>,
    /// For a resolve: how often the instance came back within the hold-down before it
    /// finally resolved (0: it never flapped).
    pub flaps: u32,
    /// When the instance opened (BGP time): for an opening its own time, for a resolve the
    /// time of its opening (the incident's duration is `time - opened_at`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub opened_at: Option<f64>,
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
            flaps: 0,
        }
    }

    /// Sets the hold-down (seconds; 0 resolves at once, as without damping).
    pub fn set_hold_down(&mut self, seconds: f64) {
        self.hold_down = seconds.max(0.0);
    }

    /// The newest BGP time of the updates applied so far.
    pub fn clock(&self) -> f64 {
        self.clock
    }

    /// Anomaly instances that came back within the hold-down, per kind, since the start.
    pub fn flaps(&self) -> &[u64; super::KINDS] {
        &self.flaps
    }

    /// Instances released and waiting out their hold-down.
    pub fn releasing(&self) -> usize {
        self.releasing.len()
    }

    /// Instances resolved at once because [`MAX_RELEASING`] were already held (counter).
    pub fn holds_skipped(&self) -> u64 {
        self.holds_skipped
    }

    /// An instance lost its last carrier (or its condition) at `ts`: an open one is held for
    /// the hold-down, one that never opened goes.
    pub(super) fn release(
        &mut self,
        key: AnomalyKey,
        state: AnomalyState,
        peer: PeerIdx,
        ts: f64,
        reason: RemovalReason,
    ) {
        if !state.open {
            return;
        }
        let full = self.releasing.len() >= self.max_releasing;
        if full {
            self.holds_skipped += 1;
        }
        if self.hold_down <= 0.0 || full {
            return self.resolved(key, peer, state, ts, reason);
        }
        let release = Release {
            state,
            peer,
            since: ts,
            wall: self.wall,
            reason,
        };
        self.releasing.insert(key, release);
    }

    /// The instance `key`, back during its hold-down (one flap more when time passed since it
    /// lost its last carrier; a carrier replaced by another in one update is no flap).
    pub(super) fn take_released(&mut self, key: &AnomalyKey, ts: f64) -> Option<AnomalyState> {
        let Release {
            mut state, since, ..
        } = self.releasing.remove(key)?;
        if ts > since {
            state.flaps = state.flaps.saturating_add(1);
            self.flaps[key.kind.index()] += 1;
            self.mark_dirty(key.registered);
        }
        state.seen(ts);
        Some(state)
    }

    /// The instance `key` of registered prefix `key.registered`: held, else back from its
    /// hold-down, else new (first seen at `ts`).
    fn instance(&mut self, key: AnomalyKey, ts: f64) -> &mut AnomalyState {
        let r = key.registered as usize;
        let held = self.prefixes[r]
            .anomalies
            .as_ref()
            .is_some_and(|m| m.contains_key(&key));
        if !held {
            let state = self
                .take_released(&key, ts)
                .unwrap_or_else(|| Self::new_anomaly(ts));
            self.prefixes[r].anomalies_mut().insert(key, state);
        }
        self.prefixes[r]
            .anomalies_mut()
            .entry(key)
            .or_insert_with(|| Self::new_anomaly(ts))
    }

    /// Resolves the released instances whose hold-down has passed by `now`, the newest BGP time
    /// (in the order their last carrier went away); returns how many.
    pub fn release_due(&mut self, now: f64) -> usize {
        let hold = self.hold_down;
        self.release_where(|r| r.since + hold <= now)
    }

    /// Resolves the released instances that have waited out the hold-down on the wall clock
    /// (`now`, seconds): a feed that went quiet, or whose BGP times lag (an old file, a router
    /// with a wrong clock), still ends its incidents, while a flood keeps bringing them back
    /// within the hold-down whatever its timestamps say. Returns how many.
    pub fn release_idle(&mut self, now: f64) -> usize {
        self.wall = now;
        for r in self.releasing.values_mut() {
            if r.wall == f64::NEG_INFINITY {
                r.wall = now; // released before the first tick: its wait starts now
            }
        }
        let hold = self.hold_down;
        self.release_where(|r| r.wall + hold <= now)
    }

    fn release_where(&mut self, due: impl Fn(&Release) -> bool) -> usize {
        if self.releasing.is_empty() {
            return 0;
        }
        let mut due: Vec<(f64, AnomalyKey)> = self
            .releasing
            .iter()
            .filter(|(_, r)| due(r))
            .map(|(k, r)| (r.since, *k))
            .collect();
        due.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        for (_, key) in &due {
            if let Some(r) = self.releasing.remove(key) {
                self.resolved(*key, r.peer, r.state, r.since, r.reason);
            }
        }
        due.len()
    }

    /// Resolves every released instance now (end of a replay: no more data will bring them
    /// back; before a reload).
    pub fn flush_releases(&mut self) -> usize {
        self.release_due(f64::INFINITY)
    }

    pub(super) fn carrier_added(
        &mut self,
        key: AnomalyKey,
        peer: PeerIdx,
        path: &Arc<AsPath>,
        ts: f64,
    ) {
        let min_peers = self.min_peers(key.registered);
        let st = self.instance(key, ts);
        st.carriers.increment(peer);
        st.seen(ts);
        st.example = Some((peer, path.clone()));
        let carriers = st.carriers.len() as u32;
        if !st.open && carriers >= min_peers {
            st.open = true;
            st.opened_at = Some(ts);
            self.opened(key, carriers, peer, Some(path.clone()), ts);
        }
    }

    /// [`Engine::carrier_added`] (`removal: None`) or [`Engine::carrier_removed`].
    pub(super) fn carry(
        &mut self,
        key: AnomalyKey,
        peer: PeerIdx,
        path: &Arc<AsPath>,
        ts: f64,
        removal: Option<RemovalReason>,
    ) {
        match removal {
            None => self.carrier_added(key, peer, path, ts),
            Some(reason) => self.carrier_removed(key, peer, ts, reason),
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
                self.release(key, an, peer, ts, reason);
            }
        }
    }

    /// MOAS is a property of all routes of an announced prefix. It opens when at least two
    /// distinct origins are each carried by `min-peers` routes (peers, but for ADD-PATH), one of
    /// them not registered for the location (a customer announcing from two of its own
    /// registered origins is multihoming, not an anomaly), and resolves when fewer than two
    /// origins remain, or only registered ones.
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
        let location = self.registry.location_of(r);
        let st = &mut self.prefixes[r as usize];
        let (distinct, npeers, well_carried) = st.announced(&q, exact).map_or((0, 0, 0), |a| {
            if a.origins.iter().all(|(o, _)| location.expects_origin(*o)) {
                return (0, a.peers, 0); // only the location's own origins
            }
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
            let an = self.instance(key, ts);
            an.seen(ts);
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
            self.release(key, an, peer, ts, reason);
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
            example_path: path.cloned(),
            reason,
            rpki: match (&self.rpki, path) {
                (Some(v), Some(p)) => Some(v.vrps.validate_path(&key.announced, p)),
                _ => None,
            },
            leak: match path {
                Some(p) if key.kind == AnomalyKind::RouteLeak => self.leak_of(peer, p),
                _ => None,
            },
            flaps: 0,
            opened_at: (transition == Transition::Opened).then_some(ts),
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
            if let Some(back) = self.take_released(&key, ts) {
                self.prefixes[r as usize].anomalies_mut().insert(key, back);
                return;
            }
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
                    flaps: 0,
                },
            );
            self.opened(key, visibility, peer, Some(example), ts);
        } else if recover && open {
            if let Some(an) = self.prefixes[r as usize].remove_anomaly(&key) {
                self.release(key, an, peer, ts, RemovalReason::Recovered);
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
        self.prefixes[key.registered as usize]
            .stats
            .anomaly_opened(key.kind.index());
        self.mark_dirty(key.registered);
        if self.record_anomaly_events {
            let ev = self.event(
                key,
                Transition::Opened,
                peers,
                peer,
                path.as_ref(),
                ts,
                None,
            );
            self.events.push(ev);
        }
    }

    /// The open instance `key` (its `state`) resolved at `ts`.
    pub(super) fn resolved(
        &mut self,
        key: AnomalyKey,
        peer: PeerIdx,
        state: AnomalyState,
        ts: f64,
        reason: RemovalReason,
    ) {
        let path = state.example.map(|e| e.1);
        self.prefixes[key.registered as usize]
            .stats
            .anomaly_resolved(key.kind.index());
        self.mark_dirty(key.registered);
        if self.record_anomaly_events {
            let mut ev = self.event(
                key,
                Transition::Resolved,
                0,
                peer,
                path.as_ref(),
                ts,
                Some(reason),
            );
            ev.flaps = state.flaps;
            ev.opened_at = state.opened_at;
            self.events.push(ev);
        }
    }

    /// Takes the anomaly transitions recorded since the last call, oldest first.
    pub fn drain_events(&mut self) -> Vec<AnomalyEvent> {
        std::mem::take(&mut self.events)
    }
}
