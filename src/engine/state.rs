//! Compact route storage: what the engine keeps per route, per announced prefix and per AS path.
//!
//! Sized for full tables (a million registered prefixes seen by tens of peers): a route is an
//! 8-byte [`RouteSlot`] (its source: the peer, or the peer and ADD-PATH id through
//! [`RouteKeys`]; and its interned path), the routes of an announced prefix
//! sit in one exactly-sized boxed slice, the registered prefix's own routes are inline in its
//! state (no map lookup on the common path), and AS paths are interned once in a [`PathTable`]
//! with reference counts, so a path shared by many prefixes is stored once. A prefix's counters
//! keep the ones every prefix uses inline and the per-anomaly-kind and RPKI arrays (zero for
//! almost every prefix) in a box allocated on first use ([`PrefixCounters`]).

use std::sync::Arc;

use ipnet::IpNet;
use smallvec::SmallVec;

use super::{AnomalyKey, AnomalyState, PeerIdx, PrefixStats, KINDS};
use crate::model::AsPath;
use crate::util::FxMap;

/// Approximate heap bytes of a hash map with `capacity` (hashbrown: buckets are a power of two
/// at most 7/8 full, one control byte per bucket next to each entry).
pub fn map_bytes<K, V>(capacity: usize) -> usize {
    if capacity == 0 {
        return 0;
    }
    let buckets = (capacity * 8 / 7).next_power_of_two();
    buckets * (std::mem::size_of::<(K, V)>() + 1)
}

/// Index of an interned AS path.
pub type PathId = u32;

/// Where a route comes from: the peer's index for a route without an ADD-PATH path identifier
/// (path id 0, almost every route), or, with the top bit set, the number [`RouteKeys`] gave a
/// (peer, path id) pair.
pub type RouteKey = u32;

/// The bit that marks a [`RouteKey`] of a (peer, ADD-PATH id) pair.
const PAIR_KEY: u32 = 1 << 31;

/// The (peer, ADD-PATH path id) pairs with a [`RouteKey`] of their own, so that a route slot
/// holds one 4-byte key instead of a peer and a path id. Pairs are kept once seen (a peer uses
/// a handful of path ids, so they are few).
#[derive(Debug, Default)]
pub struct RouteKeys {
    pairs: Vec<(PeerIdx, u32)>,
    index: FxMap<(PeerIdx, u32), u32>,
}

impl RouteKeys {
    /// The key of the routes of `peer` with `path_id`, numbering the pair if it is new.
    #[inline]
    pub fn key(&mut self, peer: PeerIdx, path_id: u32) -> RouteKey {
        debug_assert!(peer < PAIR_KEY, "peer index {peer} overlaps the pair bit");
        if path_id == 0 {
            return peer;
        }
        let pairs = &mut self.pairs;
        let next = pairs.len() as u32;
        let n = *self.index.entry((peer, path_id)).or_insert_with(|| {
            pairs.push((peer, path_id));
            next
        });
        n | PAIR_KEY
    }

    /// The key of `peer` with `path_id`, if that pair was ever seen.
    #[inline]
    pub fn get(&self, peer: PeerIdx, path_id: u32) -> Option<RouteKey> {
        if path_id == 0 {
            return Some(peer);
        }
        self.index.get(&(peer, path_id)).map(|n| n | PAIR_KEY)
    }

    /// The (peer, ADD-PATH path id) of `key` (path id 0 without ADD-PATH).
    #[inline]
    pub fn pair(&self, key: RouteKey) -> (PeerIdx, u32) {
        if key & PAIR_KEY == 0 {
            (key, 0)
        } else {
            self.pairs[(key & !PAIR_KEY) as usize]
        }
    }

    /// The peer of `key`.
    #[inline]
    pub fn peer(&self, key: RouteKey) -> PeerIdx {
        self.pair(key).0
    }

    /// Heap bytes.
    pub fn heap_bytes(&self) -> usize {
        self.pairs.capacity() * std::mem::size_of::<(PeerIdx, u32)>()
            + map_bytes::<(PeerIdx, u32), u32>(self.index.capacity())
    }
}

/// One route: a source's path for one announced prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteSlot {
    /// The peer and ADD-PATH id ([`RouteKeys`]).
    pub key: RouteKey,
    /// The interned AS path.
    pub path: PathId,
}

/// The routes of one announced prefix (a registered prefix itself, or a more-specific).
#[derive(Debug, Default)]
pub struct Announced {
    /// Current routes, exactly sized between updates (a run of new routes for the prefix in one
    /// batch is given its room at once, see [`Announced::insert`]).
    pub routes: Vec<RouteSlot>,
    /// Distinct peers among `routes` (routes differ from peers only with ADD-PATH).
    pub peers: u32,
    /// Routes per single-AS origin: (origin, routes). Almost always one entry, kept inline.
    pub origins: SmallVec<[(u32, u32); 1]>,
}

impl Announced {
    /// Position of the route of `key`.
    #[inline]
    pub fn find(&self, key: RouteKey) -> Option<usize> {
        self.routes.iter().position(|s| s.key == key)
    }

    /// Whether a route of `peer` is held (under any ADD-PATH id).
    fn has_peer(&self, peer: PeerIdx, keys: &RouteKeys) -> bool {
        self.routes.iter().any(|s| keys.peer(s.key) == peer)
    }

    /// Adds a route (the caller checked it is new); keeps `peers` and `origins` in step. When
    /// full, the vector grows by `room` slots (at least one): the updates still to come for
    /// this prefix in the batch, so a RIB's routes for one prefix take one allocation instead
    /// of one reallocation per peer. The caller trims the spare room afterwards
    /// ([`Announced::trim`]).
    pub fn insert(&mut self, slot: RouteSlot, origin: Option<u32>, room: usize, keys: &RouteKeys) {
        if !self.has_peer(keys.peer(slot.key), keys) {
            self.peers += 1;
        }
        if self.routes.len() == self.routes.capacity() {
            self.routes.reserve_exact(room.max(1));
        }
        self.routes.push(slot);
        if let Some(o) = origin {
            self.add_origin(o);
        }
    }

    /// Removes the route at `i`.
    pub fn remove(&mut self, i: usize, origin: Option<u32>, keys: &RouteKeys) -> RouteSlot {
        let slot = self.routes.swap_remove(i);
        self.trim();
        if !self.has_peer(keys.peer(slot.key), keys) {
            self.peers -= 1;
        }
        if let Some(o) = origin {
            self.remove_origin(o);
        }
        slot
    }

    /// Counts one more route with origin `o`.
    pub fn add_origin(&mut self, o: u32) {
        match self.origins.iter_mut().find(|(x, _)| *x == o) {
            Some((_, n)) => *n += 1,
            None => self.origins.push((o, 1)),
        }
    }

    /// Counts one route fewer with origin `o`.
    pub fn remove_origin(&mut self, o: u32) {
        if let Some(i) = self.origins.iter().position(|(x, _)| *x == o) {
            self.origins[i].1 -= 1;
            if self.origins[i].1 == 0 {
                self.origins.swap_remove(i);
            }
        }
    }

    /// Distinct origins, sorted.
    pub fn origin_list(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self.origins.iter().map(|(o, _)| *o).collect();
        v.sort_unstable();
        v
    }

    /// Whether no route is left.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// Gives back spare room (no spare slot is kept between batches).
    pub fn trim(&mut self) {
        if self.routes.capacity() > self.routes.len() {
            self.routes.shrink_to_fit();
        }
    }

    /// Heap bytes of the routes (the slots; the struct itself is counted by its owner).
    pub fn heap_bytes(&self) -> usize {
        self.routes.capacity() * std::mem::size_of::<RouteSlot>()
            + if self.origins.spilled() {
                self.origins.capacity() * std::mem::size_of::<(u32, u32)>()
            } else {
                0
            }
    }
}

/// The counters of one registered prefix, compact: what every prefix needs inline, the per-kind
/// anomaly and per-state RPKI arrays (about 130 bytes, zero for almost every prefix) boxed on
/// first use. [`PrefixCounters::to_stats`] gives the full [`PrefixStats`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PrefixCounters {
    /// Peers with a route for exactly the registered prefix.
    pub visibility: u32,
    /// Distinct single-AS origins over the routes for exactly the registered prefix.
    pub origins: u32,
    /// Announcements received for the prefix or its more-specifics.
    pub announcements: u64,
    /// Withdrawals received for the prefix or its more-specifics.
    pub withdrawals: u64,
    /// Path changes.
    pub path_changes: u64,
    /// BGP time of the last change (NaN: none yet; an `Option<f64>` would take 16 bytes).
    last_change: f64,
    rare: Option<Box<RareCounters>>,
}

/// The counters that stay zero unless anomalies open or VRPs are loaded.
#[derive(Debug, Clone, Default, PartialEq)]
struct RareCounters {
    anomalies_active: [u32; KINDS],
    anomalies_opened: [u64; KINDS],
    rpki_routes: [u32; 4],
}

impl PrefixCounters {
    /// Counters with no change yet.
    pub fn new() -> Self {
        PrefixCounters {
            last_change: f64::NAN,
            ..Default::default()
        }
    }

    /// BGP time of the last change.
    pub fn last_change(&self) -> Option<f64> {
        (!self.last_change.is_nan()).then_some(self.last_change)
    }

    /// Records a change at BGP time `ts`. RIB entries carry their originated times, which are
    /// not in order: the latest one wins.
    pub fn touch(&mut self, ts: f64) {
        if self.last_change.is_nan() || ts > self.last_change {
            self.last_change = ts;
        }
    }

    fn rare_mut(&mut self) -> &mut RareCounters {
        self.rare.get_or_insert_with(Default::default)
    }

    /// Counts an anomaly instance of kind index `k` opening.
    pub fn anomaly_opened(&mut self, k: usize) {
        let rare = self.rare_mut();
        rare.anomalies_active[k] += 1;
        rare.anomalies_opened[k] += 1;
    }

    /// Counts an anomaly instance of kind index `k` resolving.
    pub fn anomaly_resolved(&mut self, k: usize) {
        let rare = self.rare_mut();
        rare.anomalies_active[k] = rare.anomalies_active[k].saturating_sub(1);
    }

    /// Takes over the history of `old` (a configuration reload keeping the prefix): the
    /// announcement, withdrawal, path-change and opened-anomaly counters and the last change.
    pub fn carry_history(&mut self, old: &PrefixCounters) {
        self.announcements = old.announcements;
        self.withdrawals = old.withdrawals;
        self.path_changes = old.path_changes;
        self.last_change = old.last_change;
        let opened = old.rare.as_ref().map(|r| r.anomalies_opened);
        match opened {
            Some(o) => self.rare_mut().anomalies_opened = o,
            None => {
                if let Some(r) = &mut self.rare {
                    r.anomalies_opened = [0; KINDS];
                }
            }
        }
    }

    /// Forgets the history (a newly registered prefix whose held routes were re-inserted: they
    /// are not announcements it received).
    pub fn clear_history(&mut self) {
        self.carry_history(&PrefixCounters {
            last_change: self.last_change,
            ..PrefixCounters::new()
        });
    }

    /// Sets the active anomaly instances per kind index.
    pub fn set_active(&mut self, active: [u32; KINDS]) {
        if active != [0; KINDS] || self.rare.is_some() {
            self.rare_mut().anomalies_active = active;
        }
    }

    /// Counts an anomaly instance of kind index `k` as opened (not as active).
    pub fn count_opened(&mut self, k: usize) {
        self.rare_mut().anomalies_opened[k] += 1;
    }

    /// Counts one route more (`add`) or fewer in RPKI state index `i`.
    pub fn rpki_route(&mut self, i: usize, add: bool) {
        if add {
            self.rare_mut().rpki_routes[i] += 1;
        } else if let Some(rare) = &mut self.rare {
            rare.rpki_routes[i] = rare.rpki_routes[i].saturating_sub(1);
        }
    }

    /// The full statistics.
    pub fn to_stats(&self) -> PrefixStats {
        let rare = self.rare.as_deref();
        PrefixStats {
            visibility: self.visibility,
            origins: self.origins,
            announcements: self.announcements,
            withdrawals: self.withdrawals,
            path_changes: self.path_changes,
            last_change: self.last_change(),
            anomalies_active: rare.map_or([0; KINDS], |r| r.anomalies_active),
            anomalies_opened: rare.map_or([0; KINDS], |r| r.anomalies_opened),
            rpki_routes: rare.map_or([0; 4], |r| r.rpki_routes),
        }
    }

    /// Heap bytes (the boxed rare counters).
    pub fn heap_bytes(&self) -> usize {
        self.rare
            .as_ref()
            .map_or(0, |_| std::mem::size_of::<RareCounters>())
    }
}

/// Everything the engine holds for one registered prefix.
#[derive(Debug)]
pub struct PrefixState {
    /// Statistics (what the metrics mirror).
    pub stats: PrefixCounters,
    /// Routes for exactly the registered prefix.
    pub exact: Announced,
    /// Routes for more-specifics, allocated on first use.
    pub more_specifics: Option<Box<FxMap<IpNet, Announced>>>,
    /// Anomaly instances of this prefix (open or held below min-peers), allocated on first use.
    pub anomalies: Option<Box<FxMap<AnomalyKey, AnomalyState>>>,
    /// Whether the prefix is in the engine's dirty list.
    pub dirty: bool,
}

impl Default for PrefixState {
    fn default() -> Self {
        PrefixState {
            stats: PrefixCounters::new(),
            exact: Announced::default(),
            more_specifics: None,
            anomalies: None,
            dirty: false,
        }
    }
}

impl PrefixState {
    /// The routes of announced prefix `q` (`exact` tells whether `q` is the registered prefix).
    pub fn announced(&self, q: &IpNet, exact: bool) -> Option<&Announced> {
        if exact {
            Some(&self.exact)
        } else {
            self.more_specifics.as_ref()?.get(q)
        }
    }

    /// The routes of `q`, created empty if needed.
    pub fn announced_mut(&mut self, q: IpNet, exact: bool) -> &mut Announced {
        if exact {
            &mut self.exact
        } else {
            self.more_specifics
                .get_or_insert_with(Default::default)
                .entry(q)
                .or_default()
        }
    }

    /// Drops the entry of more-specific `q` once it holds no route.
    pub fn forget_if_empty(&mut self, q: &IpNet, exact: bool) {
        if exact {
            return;
        }
        if let Some(m) = &mut self.more_specifics {
            if m.get(q).is_some_and(Announced::is_empty) {
                m.remove(q);
            }
            if m.is_empty() {
                self.more_specifics = None;
            }
        }
    }

    /// Every announced prefix with routes: the registered prefix (if it has routes) and its
    /// more-specifics.
    pub fn all_announced(&self) -> impl Iterator<Item = (Option<&IpNet>, &Announced)> {
        let exact = (!self.exact.is_empty()).then_some((None, &self.exact));
        exact.into_iter().chain(
            self.more_specifics
                .iter()
                .flat_map(|m| m.iter().map(|(q, a)| (Some(q), a))),
        )
    }

    /// The anomaly map, created empty if needed.
    pub fn anomalies_mut(&mut self) -> &mut FxMap<AnomalyKey, AnomalyState> {
        self.anomalies.get_or_insert_with(Default::default)
    }

    /// The anomaly instances.
    pub fn anomaly_iter(&self) -> impl Iterator<Item = (&AnomalyKey, &AnomalyState)> {
        self.anomalies.iter().flat_map(|m| m.iter())
    }

    /// Removes an anomaly instance, freeing the map when it empties.
    pub fn remove_anomaly(&mut self, key: &AnomalyKey) -> Option<AnomalyState> {
        let m = self.anomalies.as_mut()?;
        let st = m.remove(key);
        if m.is_empty() {
            self.anomalies = None;
        }
        st
    }
}

/// Interned AS paths with reference counts (one per route holding the path).
#[derive(Debug, Default)]
pub struct PathTable {
    /// Path and reference count per id (together: one cache line per lookup).
    entries: Vec<(Arc<AsPath>, u32)>,
    index: FxMap<Arc<AsPath>, PathId>,
    free: Vec<PathId>,
}

impl PathTable {
    /// The id of `path`, interning it; counts one more reference.
    ///
    /// Feeds hand the same `Arc` for a path they have seen before, so the id recorded in the
    /// path ([`AsPath::intern_hint`]) usually finds it without hashing the path or probing
    /// `index` (hundreds of thousands of paths: cache misses on every route). The hint is
    /// trusted only if that id holds this very allocation with live references.
    pub fn intern(&mut self, path: &Arc<AsPath>) -> PathId {
        let hint = path.intern_hint();
        if let Some((p, refs)) = self.entries.get_mut(hint as usize) {
            if *refs > 0 && Arc::ptr_eq(p, path) {
                *refs += 1;
                return hint;
            }
        }
        let id = self.intern_slow(path);
        path.set_intern_hint(id);
        id
    }

    fn intern_slow(&mut self, path: &Arc<AsPath>) -> PathId {
        if let Some(&id) = self.index.get(path) {
            self.entries[id as usize].1 += 1;
            return id;
        }
        let id = match self.free.pop() {
            Some(id) => {
                self.entries[id as usize] = (path.clone(), 1);
                id
            }
            None => {
                self.entries.push((path.clone(), 1));
                (self.entries.len() - 1) as PathId
            }
        };
        self.index.insert(path.clone(), id);
        id
    }

    /// Drops one reference; the path is forgotten with its last reference.
    pub fn release(&mut self, id: PathId) {
        let (path, r) = &mut self.entries[id as usize];
        *r -= 1;
        if *r == 0 {
            let path = path.clone();
            self.index.remove(&path);
            self.free.push(id);
        }
    }

    /// Reads the entry of `id` (if any) and returns a number derived from it, for
    /// [`super::Engine::apply_batch`]'s read-ahead.
    #[inline]
    pub fn touch(&self, id: PathId) -> u64 {
        self.entries.get(id as usize).map_or(0, |(p, refs)| {
            u64::from(*refs) ^ Arc::as_ptr(p).addr() as u64
        })
    }

    /// The path of `id`.
    #[inline]
    pub fn get(&self, id: PathId) -> &Arc<AsPath> {
        &self.entries[id as usize].0
    }

    /// Distinct paths held.
    pub fn distinct(&self) -> usize {
        self.index.len()
    }

    /// Distinct paths held.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Bytes of the table and of the paths it holds (the `Arc` allocations, their ASN arrays),
    /// as requested from the allocator.
    pub fn heap_bytes(&self) -> usize {
        use std::mem::size_of;
        let table = self.entries.capacity() * size_of::<(Arc<AsPath>, u32)>()
            + self.free.capacity() * size_of::<PathId>()
            + map_bytes::<Arc<AsPath>, PathId>(self.index.capacity());
        let paths: usize = self
            .entries
            .iter()
            .filter(|(_, r)| *r > 0)
            .map(|(p, _)| {
                // ArcInner: two counters and the value.
                2 * size_of::<usize>()
                    + size_of::<AsPath>()
                    + std::mem::size_of_val::<[u32]>(&p.asns)
                    + match &p.origin {
                        crate::model::Origin::Set(s) => std::mem::size_of_val::<[u32]>(s),
                        _ => 0,
                    }
            })
            .sum();
        table + paths
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interned_paths_are_shared_and_freed_with_their_last_route() {
        let mut t = PathTable::default();
        let a = Arc::new(AsPath::from_sequence(&[1, 2, 3]));
        let a2 = Arc::new(AsPath::from_sequence(&[1, 2, 3]));
        let b = Arc::new(AsPath::from_sequence(&[4]));
        let ia = t.intern(&a);
        assert_eq!(t.intern(&a2), ia, "equal content, same id");
        let ib = t.intern(&b);
        assert_eq!(t.len(), 2);
        t.release(ia);
        assert_eq!(t.len(), 2);
        t.release(ia);
        assert_eq!(t.len(), 1);
        // The freed id is reused.
        let c = Arc::new(AsPath::from_sequence(&[5]));
        assert_eq!(t.intern(&c), ia);
        assert_eq!(**t.get(ib), *b);
    }

    #[test]
    fn announced_counts_peers_and_origins() {
        let mut keys = RouteKeys::default();
        let mut a = Announced::default();
        let (k1, k1_add, k2) = (keys.key(1, 0), keys.key(1, 1), keys.key(2, 0));
        a.insert(RouteSlot { key: k1, path: 0 }, Some(10), 0, &keys);
        a.insert(
            RouteSlot {
                key: k1_add,
                path: 1,
            },
            Some(11),
            0,
            &keys,
        );
        a.insert(RouteSlot { key: k2, path: 0 }, Some(10), 0, &keys);
        assert_eq!((a.peers, a.origin_list()), (2, vec![10, 11]));
        assert_eq!(a.routes.capacity(), 3, "no spare capacity");
        let i = a.find(keys.get(1, 1).unwrap()).unwrap();
        a.remove(i, Some(11), &keys);
        assert_eq!((a.peers, a.origin_list()), (2, vec![10]));
        let i = a.find(keys.get(1, 0).unwrap()).unwrap();
        a.remove(i, Some(10), &keys);
        assert_eq!((a.peers, a.origin_list()), (1, vec![10]));
        assert_eq!(std::mem::size_of::<RouteSlot>(), 8);
    }

    #[test]
    fn route_keys_are_the_peer_without_add_path_and_numbered_pairs_with_it() {
        let mut keys = RouteKeys::default();
        assert_eq!(keys.key(7, 0), 7, "no ADD-PATH id: the peer index itself");
        assert_eq!(keys.get(7, 0), Some(7));
        assert_eq!(keys.get(7, 3), None, "a pair never seen");
        let a = keys.key(7, 3);
        let b = keys.key(8, 3);
        let c = keys.key(7, 4);
        assert_eq!(keys.key(7, 3), a, "the same pair, the same key");
        assert!(a != b && a != c && b != c && a != 7 && b != 8);
        for (k, peer, id) in [(a, 7, 3), (b, 8, 3), (c, 7, 4), (7, 7, 0)] {
            assert_eq!(keys.pair(k), (peer, id));
            assert_eq!(keys.peer(k), peer);
            assert_eq!(keys.get(peer, id), Some(k));
        }
    }
}
