//! The engine: single owner of route state, detectors and the anomaly lifecycle.
//!
//! Pure domain code (no I/O, no locks, no async): feeds hand it matched [`RouteUpdate`]s, it
//! updates the per-(peer, announced prefix) route state, the per-registered-prefix statistics and
//! the anomaly instances, and records what changed:
//!
//! * [`Engine::drain_events`] — anomaly transitions (opened / resolved), in the order they
//!   happened, for the replay report, the log and (later) the event store;
//! * [`Engine::take_dirty`] — the registered prefixes whose statistics changed since the last
//!   call, so the metrics layer syncs per batch only what moved.
//!
//! Semantics: visibility counts peers with a route for exactly the registered
//! prefix; a peer's first route for a prefix is a baseline, a different path later is a path
//! change (prepending included); an anomaly instance (kind, registered prefix, announced prefix,
//! offending ASN) opens when `min-peers` peers carry it and resolves when none does.

pub mod anomaly;
mod reload;
mod state;
mod vecmap;

use std::collections::BTreeMap;
use std::sync::Arc;

use ipnet::IpNet;
use serde::Serialize;

pub use anomaly::{AnomalyKey, AnomalyKind};
pub use reload::ReloadSummary;
pub use state::PrefixCounters;
use state::{map_bytes, Announced, PathId, PathTable, PrefixState, RouteKeys, RouteSlot};
use vecmap::VecMap;

use crate::model::{AsPath, PeerKey, RouteChange, RouteUpdate};
use crate::registry::{MatchKind, PrefixId, Registry};
use crate::rpki::{RovState, VrpSet};
use crate::util::FxMap;

/// Dense index of a peer in the engine.
pub type PeerIdx = u32;

/// Number of anomaly kinds (length of the per-kind arrays).
pub const KINDS: usize = AnomalyKind::ALL.len();

/// Statistics of one registered prefix: what the metrics expose.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PrefixStats {
    /// Peers with a route for exactly the registered prefix.
    pub visibility: u32,
    /// Distinct single-AS origins over the routes for exactly the registered prefix.
    pub origins: u32,
    /// Announcements received for the prefix or its more-specifics.
    pub announcements: u64,
    /// Withdrawals received for the prefix or its more-specifics.
    pub withdrawals: u64,
    /// Path changes (a peer replacing its route with a different AS path).
    pub path_changes: u64,
    /// BGP time of the last change of any route of the prefix.
    pub last_change: Option<f64>,
    /// Active anomaly instances per kind (index = [`AnomalyKind::index`]).
    pub anomalies_active: [u32; KINDS],
    /// Anomaly instances opened so far per kind.
    pub anomalies_opened: [u64; KINDS],
    /// Routes of the prefix and its more-specifics per RPKI state (index = position in
    /// [`RovState::ALL`]); all 0 while no VRPs are loaded.
    pub rpki_routes: [u32; 4],
}

/// One anomaly instance.
#[derive(Debug)]
pub struct AnomalyState {
    /// Routes carrying the anomaly, per peer (unused for MOAS, which is per announced prefix).
    carriers: VecMap<PeerIdx>,
    open: bool,
    first_seen: f64,
    last_seen: f64,
    opened_at: Option<f64>,
    example: Option<(PeerIdx, Arc<AsPath>)>,
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
    pub severity: &'static str,
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

/// What happened to a route, as the event history records it (anomalies aside).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteEventKind {
    /// The first peer announced exactly the registered prefix (visibility 0 → 1).
    PrefixAnnounced,
    /// The last peer withdrew it (visibility 1 → 0).
    PrefixWithdrawn,
    /// A peer replaced its path (at most one such event per registered prefix per
    /// [`PATH_CHANGE_EVENT_INTERVAL`] seconds of BGP time; every change is still counted).
    PathChange,
    /// A peer's route changed origin AS.
    OriginChange,
}

/// Entries of [`Engine`]'s recent-peer cache.
const RECENT_PEERS: usize = 64;

/// Path-change events per registered prefix are at most one per this many seconds.
pub const PATH_CHANGE_EVENT_INTERVAL: f64 = 60.0;

/// A route event, self-contained.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RouteEvent {
    /// BGP time.
    pub time: f64,
    /// Kind.
    pub kind: RouteEventKind,
    /// Location name.
    pub location: String,
    /// Registered prefix.
    pub prefix: IpNet,
    /// Announced prefix.
    pub announced: IpNet,
    /// The peer.
    #[serde(skip)]
    pub peer: Arc<PeerKey>,
    /// Origin of the (new) route.
    pub origin: Option<u32>,
    /// AS path of the (new, or withdrawn) route.
    pub path: Option<String>,
    /// Previous path (changes).
    pub previous_path: Option<String>,
}

/// An active (or held, below min-peers) anomaly instance, for the API.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AnomalySummary {
    /// Kind.
    pub kind: AnomalyKind,
    /// Severity.
    pub severity: &'static str,
    /// Location name.
    pub location: String,
    /// Registered prefix.
    pub prefix: IpNet,
    /// Announced prefix.
    pub announced: IpNet,
    /// Offending ASN.
    pub asn: Option<u32>,
    /// The holder name of `asn` (DNS enrichment; filled in by the API from the name cache).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub as_name: Option<String>,
    /// Open (reached min-peers) or still held below it.
    pub open: bool,
    /// Peers carrying it now.
    pub peers: u32,
    /// BGP time first seen.
    pub first_seen: f64,
    /// BGP time it opened.
    pub opened_at: Option<f64>,
    /// BGP time of the latest route carrying it.
    pub last_seen: f64,
    /// An AS path carrying it.
    pub example_path: Option<String>,
}

/// Routes of one announced prefix, for the API.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AnnouncedSummary {
    /// Announced prefix.
    pub prefix: IpNet,
    /// Peers with a route for it.
    pub peers: u32,
    /// Distinct single-AS origins.
    pub origins: Vec<u32>,
    /// Holder names of `origins` known so far (DNS enrichment; filled in by the API).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub origin_names: BTreeMap<u32, String>,
}

/// Everything known about one registered prefix, for the API and the replay report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PrefixSummary {
    /// Location name.
    pub location: String,
    /// Registered prefix.
    pub prefix: IpNet,
    /// Peers with a route for exactly the prefix.
    pub visibility: u32,
    /// Origins seen for exactly the prefix.
    pub origins: Vec<u32>,
    /// Holder names of `origins` known so far (DNS enrichment; filled in by the API).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub origin_names: BTreeMap<u32, String>,
    /// Up to three distinct AS paths for exactly the prefix.
    pub sample_paths: Vec<String>,
    /// More-specifics currently announced.
    pub more_specifics: Vec<AnnouncedSummary>,
    /// Announcements received.
    pub announcements: u64,
    /// Withdrawals received.
    pub withdrawals: u64,
    /// Path changes.
    pub path_changes: u64,
    /// BGP time of the last change.
    pub last_change: Option<f64>,
    /// Anomaly instances of this prefix (open or held).
    pub anomalies: Vec<AnomalySummary>,
}

/// Engine memory by part, in bytes requested from the allocator ([`Engine::memory`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct EngineMemory {
    /// Routes held.
    pub tracked_routes: u64,
    /// Distinct AS paths interned.
    pub distinct_paths: u64,
    /// Route slots (8 bytes per route, plus the ADD-PATH pairs of their keys) and
    /// per-announced-prefix origin lists that spilled to the heap.
    pub route_slots: usize,
    /// The containers holding the slots: one inline per registered prefix, plus the
    /// more-specific maps.
    pub route_containers: usize,
    /// The interned AS path table and the paths.
    pub paths: usize,
    /// Per-registered-prefix counters and bookkeeping (besides the route containers).
    pub prefix_stats: usize,
    /// Anomaly instance maps.
    pub anomalies: usize,
}

impl EngineMemory {
    /// Route state: the slots and the containers holding them.
    pub fn route_state(&self) -> usize {
        self.route_slots + self.route_containers
    }

    /// Route state per tracked route (0 without routes).
    pub fn route_state_per_route(&self) -> f64 {
        if self.tracked_routes == 0 {
            0.0
        } else {
            self.route_state() as f64 / self.tracked_routes as f64
        }
    }

    /// Everything counted.
    pub fn total(&self) -> usize {
        self.route_state() + self.paths + self.prefix_stats + self.anomalies
    }
}

/// The route-state engine. See the module documentation.
pub struct Engine {
    registry: Arc<Registry>,
    peers: Vec<Arc<PeerKey>>,
    peer_index: FxMap<Arc<PeerKey>, PeerIdx>,
    /// Recently seen peer keys by address (feeds hand the same `Arc` for every route of a
    /// peer): most routes find their peer without hashing the key.
    recent_peers: Vec<Option<(Arc<PeerKey>, PeerIdx)>>,
    /// Routes held per peer (to report peers with routes, and to skip empty peer-down scans).
    peer_routes: Vec<u64>,
    /// The (peer, ADD-PATH id) pairs of the route slots.
    route_keys: RouteKeys,
    prefixes: Vec<PrefixState>,
    paths: PathTable,
    /// Validated ROA payloads, when loaded.
    vrps: Option<Arc<VrpSet>>,
    tracked_routes: u64,
    events: Vec<AnomalyEvent>,
    route_events: Vec<RouteEvent>,
    /// BGP time of the last path-change event per registered prefix (rate limit).
    last_path_event: Vec<f64>,
    /// Updates left in the current run of [`Engine::apply_batch`] (room for new slots).
    route_room: usize,
    /// Whether route events are recorded ([`Engine::set_route_events`]).
    record_route_events: bool,
    dirty: Vec<PrefixId>,
}

impl Engine {
    /// A new engine over `registry`, with no routes.
    pub fn new(registry: Arc<Registry>) -> Engine {
        let prefix_count = registry.prefixes().len();
        let prefixes = (0..registry.prefixes().len())
            .map(|_| PrefixState::default())
            .collect();
        Engine {
            registry,
            peers: Vec::new(),
            peer_index: FxMap::default(),
            recent_peers: vec![None; RECENT_PEERS],
            peer_routes: Vec::new(),
            route_keys: RouteKeys::default(),
            prefixes,
            paths: PathTable::default(),
            vrps: None,
            tracked_routes: 0,
            events: Vec::new(),
            route_events: Vec::new(),
            last_path_event: vec![f64::NEG_INFINITY; prefix_count],
            route_room: 0,
            record_route_events: true,
            dirty: Vec::new(),
        }
    }

    /// Whether route events are recorded for [`Engine::drain_route_events`] (the default);
    /// off when nobody reads them (a replay without a report), which saves building a
    /// self-contained record with its strings for every registered prefix's first route.
    pub fn set_route_events(&mut self, on: bool) {
        self.record_route_events = on;
    }

    /// The registry the engine evaluates against.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    fn peer_idx(&mut self, peer: &Arc<PeerKey>) -> PeerIdx {
        let slot = (Arc::as_ptr(peer).addr() >> 4) % RECENT_PEERS;
        if let Some((p, i)) = &self.recent_peers[slot] {
            if Arc::ptr_eq(p, peer) {
                return *i;
            }
        }
        let i = match self.peer_index.get(peer) {
            Some(&i) => i,
            None => {
                let i = self.peers.len() as PeerIdx;
                self.peers.push(peer.clone());
                self.peer_routes.push(0);
                self.peer_index.insert(peer.clone(), i);
                i
            }
        };
        self.recent_peers[slot] = Some((peer.clone(), i));
        i
    }

    fn mark_dirty(&mut self, r: PrefixId) {
        let st = &mut self.prefixes[r as usize];
        if !st.dirty {
            st.dirty = true;
            self.dirty.push(r);
        }
    }

    fn is_exact(&self, r: PrefixId, q: &IpNet) -> bool {
        self.registry.prefix(r).prefix == *q
    }

    /// Applies an update that a feed matched against the registry of `generation`
    /// ([`Registry::generation`]): one matched against another registry (a feed that read it
    /// before a reload took effect) is matched again, and dropped when its prefix is no longer
    /// registered.
    pub fn apply_matched(&mut self, update: &RouteUpdate, generation: u64) {
        if generation == self.registry.generation() {
            return self.apply(update);
        }
        if let Some(matched) = self.registry.lookup(&update.prefix) {
            self.apply(&RouteUpdate {
                matched,
                ..update.clone()
            });
        }
    }

    /// Applies matched route updates in order (the same as [`Engine::apply`] on each).
    ///
    /// Before each group of updates, the path-table entries and AS paths they will use are read
    /// once without using the values: those reads are independent, so the processor overlaps
    /// their cache misses (with hundreds of thousands of paths, each is a miss), and `apply`
    /// then finds them cached instead of waiting for one miss after another.
    ///
    /// Consecutive updates for one announced prefix (a RIB lists every peer's route for a
    /// prefix together) are applied as a run: a new route's slot vector grows by the run's
    /// length at once and is trimmed to size after it.
    ///
    /// `generation` is that of the registry the feed matched them against: a batch of another
    /// registry (read before a reload took effect) goes through [`Engine::apply_matched`].
    pub fn apply_batch(&mut self, updates: &[RouteUpdate], generation: u64) {
        if generation != self.registry.generation() {
            for u in updates {
                self.apply_matched(u, generation);
            }
            return;
        }
        const GROUP: usize = 256;
        let mut read_to = 0;
        let mut i = 0;
        while i < updates.len() {
            let (r, q) = (updates[i].matched.prefix, updates[i].prefix);
            let run = updates[i..]
                .iter()
                .take_while(|u| u.matched.prefix == r && u.prefix == q)
                .count();
            if i + run > read_to {
                let end = (i + run).max(read_to + GROUP).min(updates.len());
                self.read_ahead(&updates[read_to..end]);
                read_to = end;
            }
            self.route_room = run;
            for u in &updates[i..i + run] {
                self.apply(u);
                self.route_room = self.route_room.saturating_sub(1);
            }
            self.route_room = 0;
            let exact = updates[i].matched.kind == MatchKind::Exact;
            let st = &mut self.prefixes[r as usize];
            if exact {
                st.exact.trim();
            } else if let Some(a) = st.more_specifics.as_mut().and_then(|m| m.get_mut(&q)) {
                a.trim();
            }
            i += run;
        }
    }

    /// Reads the path-table entries and AS paths `updates` will use, without using the values.
    fn read_ahead(&self, updates: &[RouteUpdate]) {
        let mut touched = 0u64;
        for u in updates {
            if let RouteChange::Announce(path) = &u.change {
                touched = touched.wrapping_add(self.paths.touch(path.intern_hint()));
            }
        }
        std::hint::black_box(touched);
    }

    /// Applies one route update matched against this engine's registry.
    pub fn apply(&mut self, update: &RouteUpdate) {
        let peer = self.peer_idx(&update.peer);
        let r = update.matched.prefix;
        let q = update.prefix;
        let exact = update.matched.kind == MatchKind::Exact;
        let ts = update.timestamp;
        self.mark_dirty(r);
        match &update.change {
            RouteChange::Announce(path) => {
                let st = &mut self.prefixes[r as usize];
                st.stats.announcements += 1;
                let key = self.route_keys.key(peer, update.path_id);
                let a = st.announced_mut(q, exact);
                match a.find(key) {
                    Some(i) => {
                        let old = a.routes[i].path;
                        if **self.paths.get(old) == **path {
                            return; // the same path again: nothing changed
                        }
                        let new = self.paths.intern(path);
                        // Take the old route back, then put the new one in (in that order, so
                        // transitions read "old resolved, new opened").
                        let old_path = self.paths.get(old).clone();
                        let a = self.prefixes[r as usize].announced_mut(q, exact);
                        a.routes[i].path = new;
                        if let Some(o) = old_path.origin_asn() {
                            a.remove_origin(o);
                        }
                        self.refresh_exact_stats(r, exact);
                        self.prefixes[r as usize].stats.path_changes += 1;
                        self.retract_anomalies(
                            r,
                            q,
                            exact,
                            peer,
                            &old_path,
                            ts,
                            RemovalReason::Replaced,
                        );
                        if let Some(o) = path.origin_asn() {
                            self.prefixes[r as usize]
                                .announced_mut(q, exact)
                                .add_origin(o);
                        }
                        self.refresh_exact_stats(r, exact);
                        self.assert_anomalies(r, q, exact, peer, path, ts);
                        if old_path.origin != path.origin {
                            self.route_event(
                                RouteEventKind::OriginChange,
                                r,
                                q,
                                peer,
                                Some(path),
                                Some(&old_path),
                                ts,
                            );
                        }
                        if ts - self.last_path_event[r as usize] >= PATH_CHANGE_EVENT_INTERVAL {
                            self.last_path_event[r as usize] = ts;
                            self.route_event(
                                RouteEventKind::PathChange,
                                r,
                                q,
                                peer,
                                Some(path),
                                Some(&old_path),
                                ts,
                            );
                        }
                        self.paths.release(old);
                        self.prefixes[r as usize].stats.touch(ts);
                    }
                    None => {
                        let before = self.prefixes[r as usize].stats.visibility;
                        let id = self.paths.intern(path);
                        let room = self.route_room;
                        let a = self.prefixes[r as usize].announced_mut(q, exact);
                        a.insert(
                            RouteSlot { key, path: id },
                            path.origin_asn(),
                            room,
                            &self.route_keys,
                        );
                        self.refresh_exact_stats(r, exact);
                        self.tracked_routes += 1;
                        self.peer_routes[peer as usize] += 1;
                        self.assert_anomalies(r, q, exact, peer, path, ts);
                        self.visibility_events(r, exact, before, peer, path, ts);
                        self.prefixes[r as usize].stats.touch(ts);
                    }
                }
            }
            RouteChange::Withdraw => {
                let st = &mut self.prefixes[r as usize];
                st.stats.withdrawals += 1;
                let Some(a) = (if exact {
                    Some(&mut st.exact)
                } else {
                    st.more_specifics.as_mut().and_then(|m| m.get_mut(&q))
                }) else {
                    return;
                };
                let Some(i) = self
                    .route_keys
                    .get(peer, update.path_id)
                    .and_then(|key| a.find(key))
                else {
                    return;
                };
                let old = a.routes[i].path;
                let old_path = self.paths.get(old).clone();
                a.remove(i, old_path.origin_asn(), &self.route_keys);
                self.remove_route_effects(
                    r,
                    q,
                    exact,
                    peer,
                    old,
                    &old_path,
                    ts,
                    RemovalReason::Withdrawn,
                );
            }
        }
    }

    /// What follows a route's removal from its `Announced`: counters, anomalies, the path's
    /// reference and the empty more-specific entry.
    #[allow(clippy::too_many_arguments)]
    fn remove_route_effects(
        &mut self,
        r: PrefixId,
        q: IpNet,
        exact: bool,
        peer: PeerIdx,
        path_id: PathId,
        path: &Arc<AsPath>,
        ts: f64,
        reason: RemovalReason,
    ) {
        let before = self.prefixes[r as usize].stats.visibility;
        self.refresh_exact_stats(r, exact);
        self.tracked_routes -= 1;
        self.peer_routes[peer as usize] -= 1;
        self.retract_anomalies(r, q, exact, peer, path, ts, reason);
        self.visibility_events(r, exact, before, peer, path, ts);
        self.paths.release(path_id);
        let st = &mut self.prefixes[r as usize];
        st.forget_if_empty(&q, exact);
        st.stats.touch(ts);
    }

    /// Withdraws every route of `peer` (BGP session or BMP peer down). Returns how many.
    pub fn peer_down(&mut self, peer: &PeerKey, ts: f64) -> u64 {
        let Some(&idx) = self.peer_index.get(peer) else {
            return 0;
        };
        if self.peer_routes[idx as usize] == 0 {
            return 0;
        }
        let mut removed: Vec<(PrefixId, IpNet, bool, PathId)> = Vec::new();
        for (r, st) in self.prefixes.iter_mut().enumerate() {
            let registered = self.registry.prefix(r as PrefixId).prefix;
            let keys = &self.route_keys;
            let mut take = |q: IpNet, exact: bool, a: &mut Announced| {
                while let Some(i) = a.routes.iter().position(|s| keys.peer(s.key) == idx) {
                    let slot = a.routes[i];
                    let origin = self.paths.get(slot.path).origin_asn();
                    a.remove(i, origin, keys);
                    removed.push((r as PrefixId, q, exact, slot.path));
                }
            };
            take(registered, true, &mut st.exact);
            if let Some(m) = &mut st.more_specifics {
                for (q, a) in m.iter_mut() {
                    take(*q, false, a);
                }
            }
        }
        for &(r, q, exact, path_id) in &removed {
            self.mark_dirty(r);
            let path = self.paths.get(path_id).clone();
            self.remove_route_effects(
                r,
                q,
                exact,
                idx,
                path_id,
                &path,
                ts,
                RemovalReason::PeerDown,
            );
        }
        removed.len() as u64
    }

    /// Visibility and origin count follow the registered prefix's own routes.
    fn refresh_exact_stats(&mut self, r: PrefixId, exact: bool) {
        if exact {
            let st = &mut self.prefixes[r as usize];
            st.stats.visibility = st.exact.peers;
            st.stats.origins = st.exact.origins.len() as u32;
        }
    }

    fn match_kind(exact: bool) -> MatchKind {
        if exact {
            MatchKind::Exact
        } else {
            MatchKind::MoreSpecific
        }
    }

    /// The anomalies a new route of `peer` carries.
    fn assert_anomalies(
        &mut self,
        r: PrefixId,
        q: IpNet,
        exact: bool,
        peer: PeerIdx,
        path: &Arc<AsPath>,
        ts: f64,
    ) {
        self.route_anomalies(r, q, exact, peer, path, ts, None);
    }

    /// Carries (`removal: None`) or takes back (`Some(reason)`) the anomalies of one route:
    /// the per-route kinds, RPKI, and the prefix's MOAS state.
    #[allow(clippy::too_many_arguments)]
    fn route_anomalies(
        &mut self,
        r: PrefixId,
        q: IpNet,
        exact: bool,
        peer: PeerIdx,
        path: &Arc<AsPath>,
        ts: f64,
        removal: Option<RemovalReason>,
    ) {
        let reg = self.registry.prefix(r);
        let loc = self.registry.location_of(r);
        let found = anomaly::classify_route(loc, reg, &q, Self::match_kind(exact), path);
        for (kind, asn) in found.iter() {
            let key = AnomalyKey {
                kind,
                registered: r,
                announced: q,
                asn,
            };
            match removal {
                None => self.carrier_added(key, peer, path, ts),
                Some(reason) => self.carrier_removed(key, peer, ts, reason),
            }
        }
        self.rpki_contribution(r, q, peer, path, ts, removal);
        match removal {
            None => self.update_moas(r, q, exact, peer, Some(path), ts, RemovalReason::Replaced),
            Some(reason) => self.update_moas(r, q, exact, peer, None, ts, reason),
        }
    }

    /// Counts a route under its RPKI state and carries `rpki_invalid` for an invalid one
    /// (`removal: None`), or takes that back (`Some(reason)`).
    fn rpki_contribution(
        &mut self,
        r: PrefixId,
        q: IpNet,
        peer: PeerIdx,
        path: &Arc<AsPath>,
        ts: f64,
        removal: Option<RemovalReason>,
    ) {
        let Some(vrps) = &self.vrps else {
            return;
        };
        let state = vrps.validate_path(&q, path);
        let i = RovState::ALL.iter().position(|s| *s == state).unwrap_or(0);
        self.prefixes[r as usize]
            .stats
            .rpki_route(i, removal.is_none());
        if state.is_invalid() {
            let key = AnomalyKey {
                kind: AnomalyKind::RpkiInvalid,
                registered: r,
                announced: q,
                asn: path.origin_asn(),
            };
            match removal {
                None => self.carrier_added(key, peer, path, ts),
                Some(reason) => self.carrier_removed(key, peer, ts, reason),
            }
        }
    }

    /// Replaces the VRPs (`None`: RPKI off): every held route is re-validated, so
    /// `rpki_invalid` instances open and resolve and the per-state counts follow.
    pub fn set_vrps(&mut self, vrps: Option<Arc<VrpSet>>, ts: f64) {
        let mut routes: Vec<(PrefixId, IpNet, PeerIdx, PathId)> = Vec::new();
        for (r, st) in self.prefixes.iter().enumerate() {
            let registered = self.registry.prefix(r as PrefixId).prefix;
            for (q, a) in st.all_announced() {
                let q = q.copied().unwrap_or(registered);
                let keys = &self.route_keys;
                routes.extend(
                    a.routes
                        .iter()
                        .map(|s| (r as PrefixId, q, keys.peer(s.key), s.path)),
                );
            }
        }
        for &(r, q, peer, path) in &routes {
            let path = self.paths.get(path).clone();
            self.rpki_contribution(r, q, peer, &path, ts, Some(RemovalReason::Revalidated));
        }
        self.vrps = vrps;
        for &(r, q, peer, path) in &routes {
            let path = self.paths.get(path).clone();
            self.rpki_contribution(r, q, peer, &path, ts, None);
            self.mark_dirty(r);
        }
    }

    /// Takes back the anomalies a removed route of `peer` carried.
    #[allow(clippy::too_many_arguments)]
    fn retract_anomalies(
        &mut self,
        r: PrefixId,
        q: IpNet,
        exact: bool,
        peer: PeerIdx,
        path: &Arc<AsPath>,
        ts: f64,
        reason: RemovalReason,
    ) {
        self.route_anomalies(r, q, exact, peer, path, ts, Some(reason));
    }

    fn min_peers(&self, r: PrefixId) -> u32 {
        self.registry.location_of(r).min_peers
    }

    fn new_anomaly(ts: f64) -> AnomalyState {
        AnomalyState {
            carriers: VecMap::default(),
            open: false,
            first_seen: ts,
            last_seen: ts,
            opened_at: None,
            example: None,
        }
    }

    fn carrier_added(&mut self, key: AnomalyKey, peer: PeerIdx, path: &Arc<AsPath>, ts: f64) {
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

    fn carrier_removed(&mut self, key: AnomalyKey, peer: PeerIdx, ts: f64, reason: RemovalReason) {
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
    fn update_moas(
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
    fn event(
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

    #[allow(clippy::too_many_arguments)]
    fn route_event(
        &mut self,
        kind: RouteEventKind,
        r: PrefixId,
        q: IpNet,
        peer: PeerIdx,
        path: Option<&AsPath>,
        previous: Option<&AsPath>,
        ts: f64,
    ) {
        if !self.record_route_events {
            return;
        }
        self.route_events.push(RouteEvent {
            time: ts,
            kind,
            location: self.registry.location_of(r).name.clone(),
            prefix: self.registry.prefix(r).prefix,
            announced: q,
            peer: self.peers[peer as usize].clone(),
            origin: path.and_then(AsPath::origin_asn),
            path: path.map(|p| p.to_string()),
            previous_path: previous.map(|p| p.to_string()),
        });
    }

    /// The first-peer / last-peer transitions of a registered prefix's own routes, and the
    /// visibility anomalies.
    fn visibility_events(
        &mut self,
        r: PrefixId,
        exact: bool,
        before: u32,
        peer: PeerIdx,
        path: &AsPath,
        ts: f64,
    ) {
        if !exact {
            return;
        }
        let after = self.prefixes[r as usize].stats.visibility;
        if before == after {
            return;
        }
        let q = self.registry.prefix(r).prefix;
        if before == 0 && after > 0 {
            self.route_event(
                RouteEventKind::PrefixAnnounced,
                r,
                q,
                peer,
                Some(path),
                None,
                ts,
            );
        } else if before > 0 && after == 0 {
            self.route_event(
                RouteEventKind::PrefixWithdrawn,
                r,
                q,
                peer,
                Some(path),
                None,
                ts,
            );
        }
        // `withdrawn` while no peer has it; `visibility_lost` while fewer than min-visibility do,
        // after at least that many did. Both resolve on recovery.
        let (fall, recover) = (before > 0 && after == 0, after > 0);
        self.threshold(AnomalyKind::Withdrawn, r, fall, recover, peer, path, ts);
        let min = self.registry.location_of(r).min_visibility;
        if min > 0 {
            let (fall, recover) = (before >= min && after < min, after >= min);
            self.threshold(
                AnomalyKind::VisibilityLost,
                r,
                fall,
                recover,
                peer,
                path,
                ts,
            );
        }
    }

    /// Opens (`fall`) or resolves (`recover`) a visibility anomaly of registered prefix `r`.
    #[allow(clippy::too_many_arguments)]
    fn threshold(
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

    /// Takes the route events recorded since the last call, oldest first.
    pub fn drain_route_events(&mut self) -> Vec<RouteEvent> {
        std::mem::take(&mut self.route_events)
    }

    fn opened(
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

    fn resolved(
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

    /// Takes the registered prefixes whose statistics changed since the last call.
    pub fn take_dirty(&mut self) -> Vec<PrefixId> {
        let dirty = std::mem::take(&mut self.dirty);
        for &r in &dirty {
            self.prefixes[r as usize].dirty = false;
        }
        dirty
    }

    /// Statistics of one registered prefix.
    pub fn stats(&self, r: PrefixId) -> PrefixStats {
        self.prefixes[r as usize].stats.to_stats()
    }

    /// The compact counters of one registered prefix (what [`Engine::stats`] expands).
    pub fn counters(&self, r: PrefixId) -> &PrefixCounters {
        &self.prefixes[r as usize].stats
    }

    /// Bytes of engine state by part, as requested from the allocator (size-class rounding
    /// and allocator metadata not included). O(prefixes + paths): for reports, not per batch.
    pub fn memory(&self) -> EngineMemory {
        use std::mem::size_of;
        let mut m = EngineMemory {
            tracked_routes: self.tracked_routes,
            distinct_paths: self.paths.distinct() as u64,
            // The ADD-PATH pairs belong to the route slots' keys.
            route_slots: self.route_keys.heap_bytes(),
            ..EngineMemory::default()
        };
        for st in &self.prefixes {
            m.route_slots += st.exact.heap_bytes();
            m.route_containers += size_of::<Announced>();
            if let Some(ms) = &st.more_specifics {
                m.route_containers += size_of::<FxMap<IpNet, Announced>>()
                    + map_bytes::<IpNet, Announced>(ms.capacity());
                m.route_slots += ms.values().map(Announced::heap_bytes).sum::<usize>();
            }
            if let Some(an) = &st.anomalies {
                m.anomalies += size_of::<FxMap<AnomalyKey, AnomalyState>>()
                    + map_bytes::<AnomalyKey, AnomalyState>(an.capacity());
            }
            m.prefix_stats += size_of::<PrefixState>() - size_of::<Announced>();
            m.prefix_stats += st.stats.heap_bytes();
        }
        m.prefix_stats += self.last_path_event.capacity() * size_of::<f64>();
        m.paths = self.paths.heap_bytes();
        m
    }

    /// Number of (peer, announced prefix, path id) routes held.
    pub fn tracked_routes(&self) -> u64 {
        self.tracked_routes
    }

    /// Peers currently holding at least one matched route.
    pub fn peers_with_routes(&self) -> usize {
        self.peer_routes.iter().filter(|&&n| n > 0).count()
    }

    /// Peers holding matched routes whose route source is `feed` or under it (`feed/...`).
    pub fn peers_with_routes_in(&self, feed: &str) -> usize {
        self.peers
            .iter()
            .zip(&self.peer_routes)
            .filter(|(k, &n)| {
                n > 0
                    && k.source
                        .strip_prefix(feed)
                        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
            })
            .count()
    }

    fn anomaly_summary(&self, key: &AnomalyKey, st: &AnomalyState) -> AnomalySummary {
        let peers = if matches!(
            key.kind,
            AnomalyKind::VisibilityLost | AnomalyKind::Withdrawn
        ) {
            self.prefixes[key.registered as usize].stats.visibility
        } else if key.kind == AnomalyKind::Moas {
            let exact = self.is_exact(key.registered, &key.announced);
            self.prefixes[key.registered as usize]
                .announced(&key.announced, exact)
                .map_or(0, |a| a.peers)
        } else {
            st.carriers.len() as u32
        };
        AnomalySummary {
            kind: key.kind,
            severity: key.kind.severity(),
            location: self.registry.location_of(key.registered).name.clone(),
            prefix: self.registry.prefix(key.registered).prefix,
            announced: key.announced,
            asn: key.asn,
            as_name: None,
            open: st.open,
            peers,
            first_seen: st.first_seen,
            opened_at: st.opened_at,
            last_seen: st.last_seen,
            example_path: st.example.as_ref().map(|e| e.1.to_string()),
        }
    }

    /// All anomaly instances (open, and held below min-peers), sorted by prefix then kind.
    pub fn anomalies(&self) -> Vec<AnomalySummary> {
        let mut all: Vec<(&AnomalyKey, &AnomalyState)> = self
            .prefixes
            .iter()
            .flat_map(|p| p.anomaly_iter())
            .collect();
        all.sort_by_key(|(k, _)| **k);
        all.into_iter()
            .map(|(k, s)| self.anomaly_summary(k, s))
            .collect()
    }

    /// The summary of one registered prefix.
    pub fn prefix_summary(&self, r: PrefixId) -> PrefixSummary {
        let reg = self.registry.prefix(r);
        let st = &self.prefixes[r as usize];
        let mut paths: Vec<&Arc<AsPath>> = st
            .exact
            .routes
            .iter()
            .map(|s| self.paths.get(s.path))
            .collect();
        paths.sort_by(|a, b| (a.asns.len(), &a.asns).cmp(&(b.asns.len(), &b.asns)));
        paths.dedup();
        let sample_paths = paths.into_iter().take(3).map(|p| p.to_string()).collect();
        let mut more_specifics: Vec<AnnouncedSummary> = st
            .all_announced()
            .filter_map(|(q, a)| q.map(|q| (q, a)))
            .map(|(q, a)| AnnouncedSummary {
                prefix: *q,
                peers: a.peers,
                origins: a.origin_list(),
                origin_names: BTreeMap::new(),
            })
            .collect();
        more_specifics.sort_by_key(|m| m.prefix);
        let mut anomalies: Vec<AnomalySummary> = st
            .anomaly_iter()
            .map(|(k, s)| self.anomaly_summary(k, s))
            .collect();
        anomalies.sort_by_key(|a| (a.kind, a.announced, a.asn));
        PrefixSummary {
            location: self.registry.location_of(r).name.clone(),
            prefix: reg.prefix,
            visibility: st.stats.visibility,
            origins: st.exact.origin_list(),
            origin_names: BTreeMap::new(),
            sample_paths,
            more_specifics,
            announcements: st.stats.announcements,
            withdrawals: st.stats.withdrawals,
            path_changes: st.stats.path_changes,
            last_change: st.stats.last_change(),
            anomalies,
        }
    }

    /// Summaries of every registered prefix, in registry order.
    pub fn prefix_summaries(&self) -> Vec<PrefixSummary> {
        (0..self.prefixes.len() as PrefixId)
            .map(|r| self.prefix_summary(r))
            .collect()
    }
}

#[cfg(test)]
mod tests;
