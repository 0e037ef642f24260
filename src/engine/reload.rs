//! Registry reload: the engine moves to a new registry without losing route state.
//!
//! Only matched routes are held, so what a reload can do with what it has:
//!
//! * every held route is matched again against the new registry and kept when it still matches
//!   (under whichever registered prefix now covers it most specifically), dropped otherwise;
//! * a prefix that stays registered keeps its counters (announcements, withdrawals, path
//!   changes, anomalies opened), its last change, and its anomalies with their original
//!   first-seen / opened times, as long as its routes still carry them under the new policy;
//! * a newly registered prefix is evaluated against the routes already held (those of a
//!   registered prefix that covered it, or of one that moved to another location); the rest of
//!   its routes come with the next updates;
//! * anomalies that no longer hold resolve — reason `unregistered` when their registered prefix
//!   was removed, `reconfigured` when the new policy no longer finds them (an origin added to
//!   `origin-asns`, a raised max-length, ...); anomalies the new policy finds that were not open
//!   before open now. Both carry the reload's (wall-clock) time.
//!
//! Visibility anomalies follow the new thresholds: `withdrawn` stays open while the prefix is
//! still unseen; `visibility_lost` is open when `min-visibility` is set and the prefix is seen by
//! fewer peers (and either was already open, or some peer still carries the prefix: a threshold
//! raised above the current visibility opens it).

use std::collections::HashMap;
use std::sync::Arc;

use ipnet::IpNet;
use serde::Serialize;

use super::{
    AnomalyKey, AnomalyKind, AnomalyState, Engine, PeerIdx, RemovalReason, Transition,
    PATH_CHANGE_EVENT_INTERVAL,
};
use crate::model::{RouteChange, RouteUpdate};
use crate::registry::{PrefixId, Registry};

/// What a reload did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReloadSummary {
    /// Registered prefixes in both registries.
    pub prefixes_kept: usize,
    /// Newly registered prefixes.
    pub prefixes_added: usize,
    /// Prefixes no longer registered.
    pub prefixes_removed: usize,
    /// Held routes that still match the registry.
    pub routes_kept: u64,
    /// Held routes that no longer match any registered prefix (dropped).
    pub routes_dropped: u64,
    /// Anomalies opened by the new policy.
    pub anomalies_opened: usize,
    /// Anomalies resolved (prefix unregistered, or the new policy no longer finds them).
    pub anomalies_resolved: usize,
}

/// An anomaly's identity independent of prefix ids: (kind, registered, announced, ASN).
type Identity = (AnomalyKind, IpNet, IpNet, Option<u32>);

impl Engine {
    /// Moves the engine to `registry` (see the module documentation); `ts` is the time of the
    /// reload, given to the transitions it causes. Every registered prefix is marked dirty.
    pub fn reload(&mut self, registry: Arc<Registry>, ts: f64) -> ReloadSummary {
        let mut summary = ReloadSummary::default();
        // Released instances resolve now (their prefix ids belong to the old registry).
        self.flush_releases();
        let mut next = Engine::new(registry.clone());
        next.hold_down = self.hold_down;
        next.clock = self.clock;
        next.wall = self.wall;
        next.flaps = self.flaps;
        next.holds_skipped = self.holds_skipped;
        next.record_route_events = self.record_route_events;
        next.record_anomaly_events = self.record_anomaly_events;
        next.peers = self.peers.clone();
        next.peer_index = self.peer_index.clone();
        next.peer_routes = vec![0; self.peers.len()];
        next.rpki = self.rpki.clone();
        next.bgp_roles = self.bgp_roles.clone();
        next.session_roles = self.session_roles.clone();
        next.role_policy = self.role_policy.clone();

        // 1. Every held route, matched again.
        for (r, st) in self.prefixes.iter().enumerate() {
            let registered = self.registry.prefix(r as PrefixId).prefix;
            for (q, a) in st.all_announced() {
                let q = q.copied().unwrap_or(registered);
                let Some(matched) = registry.lookup(&q) else {
                    summary.routes_dropped += a.routes.len() as u64;
                    continue;
                };
                for slot in &a.routes {
                    summary.routes_kept += 1;
                    let (peer, path_id) = self.route_keys.pair(slot.key);
                    next.apply(&RouteUpdate {
                        timestamp: ts,
                        peer: self.peers[peer as usize].clone(),
                        prefix: q,
                        path_id,
                        matched,
                        change: RouteChange::Announce(self.paths.get(slot.path).clone()),
                    });
                }
            }
        }
        // Re-inserting known routes is not news: the transitions come from the diff below.
        next.events.clear();
        next.route_events.clear();

        // 2. Per-prefix history of the prefixes that stay.
        let mut kept = vec![false; self.prefixes.len()];
        for (nr, p) in registry.prefixes().iter().enumerate() {
            let new = &mut next.prefixes[nr].stats;
            match self.registry.find(&p.prefix) {
                Some(or) => {
                    summary.prefixes_kept += 1;
                    kept[or as usize] = true;
                    new.carry_history(&self.prefixes[or as usize].stats);
                    next.last_path_event[nr] = self.last_path_event[or as usize];
                }
                None => {
                    summary.prefixes_added += 1;
                    new.clear_history();
                    next.last_path_event[nr] = ts - PATH_CHANGE_EVENT_INTERVAL;
                }
            }
        }
        summary.prefixes_removed = kept.iter().filter(|k| !**k).count();

        // 3. Anomalies: what was there before, by identity.
        let mut before: HashMap<Identity, (AnomalyKey, &AnomalyState)> = HashMap::new();
        for st in &self.prefixes {
            for (k, a) in st.anomaly_iter() {
                before.insert(self.identity(k), (*k, a));
            }
        }
        next.carry_visibility_anomalies(&before, ts);

        // Anomalies in the new state: restore what was known of them, open what is new.
        let mut opened: Vec<AnomalyKey> = Vec::new();
        let mut still: std::collections::HashSet<Identity> = Default::default();
        for nr in 0..next.prefixes.len() {
            let Some(map) = next.prefixes[nr].anomalies.as_mut() else {
                continue;
            };
            let registered = registry.prefix(nr as PrefixId).prefix;
            for (k, a) in map.iter_mut() {
                let id = (k.kind, registered, k.announced, k.asn);
                // The replay above opened what the new policy finds (with the reload's time);
                // the visibility anomalies were put in place to be open.
                let should_open = a.open
                    || matches!(k.kind, AnomalyKind::VisibilityLost | AnomalyKind::Withdrawn);
                a.open = false;
                a.opened_at = None;
                if let Some((_, old)) = before.get(&id) {
                    a.first_seen = old.first_seen;
                    a.last_seen = old.last_seen;
                    a.flaps = old.flaps;
                    if old.open {
                        // Opened stays open while a route carries it (whatever min-peers says
                        // now), with its original time.
                        a.open = true;
                        a.opened_at = old.opened_at;
                        still.insert(id);
                        continue;
                    }
                }
                if should_open {
                    a.open = true;
                    a.opened_at = Some(ts);
                    opened.push(*k);
                }
            }
            let mut active = [0; super::KINDS];
            for (k, _) in map.iter().filter(|(_, a)| a.open) {
                active[k.kind.index()] += 1;
            }
            next.prefixes[nr].stats.set_active(active);
        }

        // 4. Transitions: resolutions first (against the old registry's names), then openings.
        let mut events = std::mem::take(&mut self.events);
        let mut resolved: Vec<(AnomalyKey, &AnomalyState)> = before
            .iter()
            .filter(|(id, (_, a))| a.open && !still.contains(*id))
            .map(|(_, (k, a))| (*k, *a))
            .collect();
        resolved.sort_by_key(|(k, _)| *k);
        summary.anomalies_resolved = resolved.len();
        for (k, a) in resolved {
            let reason = if kept[k.registered as usize] {
                RemovalReason::Reconfigured
            } else {
                RemovalReason::Unregistered
            };
            let (peer, path) = example(a);
            let mut ev = self.event(
                k,
                Transition::Resolved,
                0,
                peer,
                path.as_ref(),
                ts,
                Some(reason),
            );
            ev.flaps = a.flaps;
            ev.opened_at = a.opened_at;
            events.push(ev);
        }
        opened.sort();
        for k in opened {
            let Some(a) = next.prefixes[k.registered as usize]
                .anomalies
                .as_ref()
                .and_then(|m| m.get(&k))
            else {
                continue;
            };
            let (peer, path) = example(a);
            let peers = next.anomaly_summary(&k, a).peers;
            let ev = next.event(k, Transition::Opened, peers, peer, path.as_ref(), ts, None);
            next.prefixes[k.registered as usize]
                .stats
                .count_opened(k.kind.index());
            events.push(ev);
            summary.anomalies_opened += 1;
        }

        // 5. Swap.
        let mut route_events = std::mem::take(&mut self.route_events);
        *self = next;
        self.events = events;
        self.route_events.append(&mut route_events);
        for r in 0..self.prefixes.len() as PrefixId {
            self.mark_dirty(r);
        }
        summary
    }

    fn identity(&self, k: &AnomalyKey) -> Identity {
        (
            k.kind,
            self.registry.prefix(k.registered).prefix,
            k.announced,
            k.asn,
        )
    }

    /// Puts the visibility anomalies of the new registry in place (see the module docs).
    fn carry_visibility_anomalies(
        &mut self,
        before: &HashMap<Identity, (AnomalyKey, &AnomalyState)>,
        ts: f64,
    ) {
        for r in 0..self.prefixes.len() as PrefixId {
            let prefix = self.registry.prefix(r).prefix;
            let visibility = self.prefixes[r as usize].stats.visibility;
            let min = self.registry.location_of(r).min_visibility;
            let was = |kind| {
                before
                    .get(&(kind, prefix, prefix, None))
                    .filter(|(_, a)| a.open)
                    .map(|(_, a)| *a)
            };
            let withdrawn = was(AnomalyKind::Withdrawn).filter(|_| visibility == 0);
            let lost = was(AnomalyKind::VisibilityLost);
            let lost_now = min > 0 && visibility < min && (lost.is_some() || visibility > 0);
            for (kind, keep, old) in [
                (AnomalyKind::Withdrawn, withdrawn.is_some(), withdrawn),
                (AnomalyKind::VisibilityLost, lost_now, lost),
            ] {
                if !keep {
                    continue;
                }
                let key = AnomalyKey {
                    kind,
                    registered: r,
                    announced: prefix,
                    asn: None,
                };
                let example = old.and_then(|a| a.example.clone()).or_else(|| {
                    let slot = self.prefixes[r as usize].exact.routes.first()?;
                    Some((
                        self.route_keys.peer(slot.key),
                        self.paths.get(slot.path).clone(),
                    ))
                });
                // Marked open by the caller (as a new opening, unless it was open before).
                let mut state = AnomalyState {
                    carriers: Default::default(),
                    open: false,
                    first_seen: old.map_or(ts, |a| a.first_seen),
                    last_seen: old.map_or(ts, |a| a.last_seen),
                    opened_at: None,
                    example,
                    flaps: old.map_or(0, |a| a.flaps),
                };
                state.seen(ts);
                self.prefixes[r as usize].anomalies_mut().insert(key, state);
            }
        }
    }
}

fn example(a: &AnomalyState) -> (PeerIdx, Option<Arc<crate::model::AsPath>>) {
    match &a.example {
        Some((p, path)) => (*p, Some(path.clone())),
        None => (0, None),
    }
}
