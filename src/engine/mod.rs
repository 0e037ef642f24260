//! The engine: single owner of route state, detectors and the anomaly lifecycle.
//!
//! Pure domain code (no I/O, no locks, no async): feeds hand it matched [`RouteUpdate`]s, it
//! updates the per-(peer, announced prefix) route state, the per-registered-prefix statistics and
//! the anomaly instances, and records what changed:
//!
//! * [`Engine::drain_events`] — anomaly transitions (opened / resolved), in the order they
//!   happened, for the replay report, the log and the event store;
//! * [`Engine::take_dirty`] — the registered prefixes whose statistics changed since the last
//!   call, so the metrics layer syncs per batch only what moved.
//!
//! Semantics: visibility counts peers with a route for exactly the registered
//! prefix; a peer's first route for a prefix is a baseline, a different path later is a path
//! change (prepending included); an anomaly instance (kind, registered prefix, announced prefix,
//! offending ASN) opens when `min-peers` peers carry it and resolves when none does.
//!
//! Rooms: [`anomaly`] the per-route rules, `lifecycle` the anomaly instances and their
//! transitions, `summary` the read side (summaries, memory), `reload` the registry swap,
//! `state` the compact route storage and path table, `rpki` RPKI states, leaks, peer roles and
//! re-validation.

pub mod anomaly;
pub mod leak;
mod lifecycle;
mod reload;
mod rpki;
mod state;
mod summary;
mod vecmap;

use std::sync::Arc;

use ipnet::IpNet;
use serde::Serialize;

pub use anomaly::{AnomalyKey, AnomalyKind, Severity};
pub use leak::{Leak, LeakReason, RolePolicy};
pub use lifecycle::{AnomalyEvent, AnomalyState, RemovalReason, Transition, DEFAULT_HOLD_DOWN};
pub use reload::ReloadSummary;
pub use state::PrefixCounters;
use state::{Announced, PathId, PathTable, PrefixState, RouteKeys, RouteSlot};
pub use summary::{
    AnnouncedSummary, AnomalyFilter, AnomalyOverview, AnomalyPhase, AnomalySummary, EngineMemory,
    Page, PrefixFilter, PrefixSummary,
};

use crate::model::{AsPath, PeerKey, PeerRole, RouteChange, RouteUpdate};
use crate::registry::{MatchKind, PrefixId, Registry};
use crate::rpki::RpkiData;
use crate::util::FxMap;

/// Dense index of a peer in the engine.
pub type PeerIdx = u32;

/// A peer's BGP session as far as its role goes: the BMP router (none for MRT and RIS Live),
/// the peer's address and AS.
type SessionKey = (Option<std::net::SocketAddr>, std::net::IpAddr, u32);

fn session_key(k: &PeerKey) -> SessionKey {
    (k.source.router(), k.address, k.asn)
}

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
    /// Validated ROA payloads and ASPAs, when loaded (`None`: RPKI off).
    rpki: Option<Arc<RpkiData>>,
    /// Each peer's BGP Role from its session's OPEN (RFC 9234), by [`PeerIdx`].
    bgp_roles: Vec<Option<PeerRole>>,
    /// The BGP Roles BMP Peer Ups announced, by session (router, peer address, peer AS): every
    /// view of the peer (pre-, post-policy, …) is its own [`PeerKey`] and takes the role, also
    /// one whose first route comes after the Peer Up. Forgotten when the peer goes down.
    session_roles: FxMap<SessionKey, PeerRole>,
    /// Configured peer roles (`[rpki.peer-roles]`), used where the session told none.
    role_policy: Arc<RolePolicy>,
    tracked_routes: u64,
    events: Vec<AnomalyEvent>,
    route_events: Vec<RouteEvent>,
    /// BGP time of the last path-change event per registered prefix (rate limit).
    last_path_event: Vec<f64>,
    /// Updates left in the current run of [`Engine::apply_batch`] (room for new slots).
    route_room: usize,
    /// Whether route events are recorded ([`Engine::set_route_events`]).
    record_route_events: bool,
    /// Whether anomaly transitions are recorded ([`Engine::set_anomaly_events`]).
    record_anomaly_events: bool,
    dirty: Vec<PrefixId>,
    /// Open instances that lost their last carrier, waiting out the hold-down.
    releasing: FxMap<AnomalyKey, lifecycle::Release>,
    /// The hold-down in seconds ([`Engine::set_hold_down`]).
    hold_down: f64,
    /// Newest BGP time applied ([`Engine::clock`]).
    clock: f64,
    /// The wall clock as [`Engine::release_idle`] last told it.
    wall: f64,
    /// Instances that came back within the hold-down, per kind.
    flaps: [u64; KINDS],
    /// Most instances held at once ([`lifecycle::MAX_RELEASING`]; smaller in tests).
    max_releasing: usize,
    /// Instances resolved at once because the hold-down set was full.
    holds_skipped: u64,
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
            rpki: None,
            bgp_roles: Vec::new(),
            session_roles: FxMap::default(),
            role_policy: Arc::new(RolePolicy::default()),
            tracked_routes: 0,
            events: Vec::new(),
            route_events: Vec::new(),
            last_path_event: vec![f64::NEG_INFINITY; prefix_count],
            route_room: 0,
            record_route_events: true,
            record_anomaly_events: true,
            dirty: Vec::new(),
            releasing: FxMap::default(),
            hold_down: 0.0,
            clock: f64::NEG_INFINITY,
            wall: f64::NEG_INFINITY,
            flaps: [0; KINDS],
            max_releasing: lifecycle::MAX_RELEASING,
            holds_skipped: 0,
        }
    }

    /// Whether route events are recorded for [`Engine::drain_route_events`] (the default);
    /// off when nobody reads them (a replay without a report), which saves building a
    /// self-contained record with its strings for every registered prefix's first route.
    pub fn set_route_events(&mut self, on: bool) {
        self.record_route_events = on;
    }

    /// Whether anomaly transitions are recorded for [`Engine::drain_events`] (the default); off
    /// when nobody reads them (a replay without a report): the counters and instances are kept
    /// the same, but no self-contained record (names, paths, an RPKI validation) is built for
    /// each opening and resolution, which is most of a replay's cost when most matched routes
    /// are anomalous.
    pub fn set_anomaly_events(&mut self, on: bool) {
        self.record_anomaly_events = on;
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
                let role = self.session_roles.get(&session_key(peer)).copied();
                self.bgp_roles.push(role);
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
        if ts > self.clock {
            self.clock = ts;
        }
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
                        let changed = !old_path.same_path(path);
                        if changed {
                            self.prefixes[r as usize].stats.path_changes += 1;
                        }
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
                        if changed
                            && ts - self.last_path_event[r as usize] >= PATH_CHANGE_EVENT_INTERVAL
                        {
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
        self.session_roles.remove(&session_key(peer));
        let Some(&idx) = self.peer_index.get(peer) else {
            return 0;
        };
        let removed = self.remove_peer_routes(idx, ts);
        // After its routes went (their leak verdicts were taken back under the old role).
        self.bgp_roles[idx as usize] = None;
        removed
    }

    fn remove_peer_routes(&mut self, idx: PeerIdx, ts: f64) -> u64 {
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
            self.carry(key, peer, path, ts, removal)
        }
        self.rpki_contribution(r, q, peer, path, ts, removal);
        self.leak_contribution(r, q, peer, path, ts, removal);
        match removal {
            None => self.update_moas(r, q, exact, peer, Some(path), ts, RemovalReason::Replaced),
            Some(reason) => self.update_moas(r, q, exact, peer, None, ts, reason),
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

    /// Takes the route events recorded since the last call, oldest first.
    pub fn drain_route_events(&mut self) -> Vec<RouteEvent> {
        std::mem::take(&mut self.route_events)
    }

    /// Takes the registered prefixes whose statistics changed since the last call.
    pub fn take_dirty(&mut self) -> Vec<PrefixId> {
        let dirty = std::mem::take(&mut self.dirty);
        for &r in &dirty {
            self.prefixes[r as usize].dirty = false;
        }
        dirty
    }
}

#[cfg(test)]
mod tests;
