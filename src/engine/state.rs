//! Compact route storage: what the engine keeps per route, per announced prefix and per AS path.
//!
//! Sized for full tables (a million registered prefixes seen by tens of peers): a route is a
//! 12-byte [`RouteSlot`] (peer, ADD-PATH id, interned path), the routes of an announced prefix
//! sit in one exactly-sized vector, the registered prefix's own routes are inline in its state
//! (no map lookup on the common path), and AS paths are interned once in a [`PathTable`] with
//! reference counts, so a path shared by many prefixes is stored once.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::sync::Arc;

use ipnet::IpNet;
use rustc_hash::FxHasher;
use smallvec::SmallVec;

use super::{AnomalyKey, AnomalyState, PeerIdx, PrefixStats};
use crate::model::AsPath;

/// A fast, non-cryptographic hash map for keys that are not attacker-chosen in a way that
/// matters here (dense ids, prefixes and paths from already-matched routes).
pub type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// Index of an interned AS path.
pub type PathId = u32;

/// One route: a peer's path (per ADD-PATH id) for one announced prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteSlot {
    /// The peer.
    pub peer: PeerIdx,
    /// ADD-PATH path identifier (0 without ADD-PATH).
    pub path_id: u32,
    /// The interned AS path.
    pub path: PathId,
}

/// The routes of one announced prefix (a registered prefix itself, or a more-specific).
#[derive(Debug, Default)]
pub struct Announced {
    /// Current routes, grown one slot at a time (no spare capacity).
    pub routes: Vec<RouteSlot>,
    /// Distinct peers among `routes` (routes differ from peers only with ADD-PATH).
    pub peers: u32,
    /// Routes per single-AS origin: (origin, routes). Almost always one entry, kept inline.
    pub origins: SmallVec<[(u32, u32); 1]>,
}

impl Announced {
    /// Position of the route of (`peer`, `path_id`).
    #[inline]
    pub fn find(&self, peer: PeerIdx, path_id: u32) -> Option<usize> {
        self.routes
            .iter()
            .position(|s| s.peer == peer && s.path_id == path_id)
    }

    /// Adds a route (the caller checked it is new); keeps `peers` and `origins` in step.
    pub fn insert(&mut self, slot: RouteSlot, origin: Option<u32>) {
        if !self.routes.iter().any(|s| s.peer == slot.peer) {
            self.peers += 1;
        }
        self.routes.reserve_exact(1);
        self.routes.push(slot);
        if let Some(o) = origin {
            self.add_origin(o);
        }
    }

    /// Removes the route at `i`.
    pub fn remove(&mut self, i: usize, origin: Option<u32>) -> RouteSlot {
        let slot = self.routes.swap_remove(i);
        if !self.routes.iter().any(|s| s.peer == slot.peer) {
            self.peers -= 1;
        }
        if self.routes.len() * 2 < self.routes.capacity() {
            self.routes.shrink_to_fit();
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
}

/// Everything the engine holds for one registered prefix.
#[derive(Debug, Default)]
pub struct PrefixState {
    /// Statistics (what the metrics mirror).
    pub stats: PrefixStats,
    /// Routes for exactly the registered prefix.
    pub exact: Announced,
    /// Routes for more-specifics, allocated on first use.
    pub more_specifics: Option<Box<FxMap<IpNet, Announced>>>,
    /// Anomaly instances of this prefix (open or held below min-peers), allocated on first use.
    pub anomalies: Option<Box<FxMap<AnomalyKey, AnomalyState>>>,
    /// Whether the prefix is in the engine's dirty list.
    pub dirty: bool,
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
    paths: Vec<Arc<AsPath>>,
    refs: Vec<u32>,
    index: FxMap<Arc<AsPath>, PathId>,
    free: Vec<PathId>,
}

impl PathTable {
    /// The id of `path`, interning it; counts one more reference.
    pub fn intern(&mut self, path: &Arc<AsPath>) -> PathId {
        if let Some(&id) = self.index.get(path) {
            self.refs[id as usize] += 1;
            return id;
        }
        let id = match self.free.pop() {
            Some(id) => {
                self.paths[id as usize] = path.clone();
                self.refs[id as usize] = 1;
                id
            }
            None => {
                self.paths.push(path.clone());
                self.refs.push(1);
                (self.paths.len() - 1) as PathId
            }
        };
        self.index.insert(path.clone(), id);
        id
    }

    /// Drops one reference; the path is forgotten with its last reference.
    pub fn release(&mut self, id: PathId) {
        let r = &mut self.refs[id as usize];
        *r -= 1;
        if *r == 0 {
            let path = self.paths[id as usize].clone();
            self.index.remove(&path);
            self.free.push(id);
        }
    }

    /// The path of `id`.
    #[inline]
    pub fn get(&self, id: PathId) -> &Arc<AsPath> {
        &self.paths[id as usize]
    }

    /// Distinct paths held.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.index.len()
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
        let mut a = Announced::default();
        a.insert(
            RouteSlot {
                peer: 1,
                path_id: 0,
                path: 0,
            },
            Some(10),
        );
        a.insert(
            RouteSlot {
                peer: 1,
                path_id: 1,
                path: 1,
            },
            Some(11),
        );
        a.insert(
            RouteSlot {
                peer: 2,
                path_id: 0,
                path: 0,
            },
            Some(10),
        );
        assert_eq!((a.peers, a.origin_list()), (2, vec![10, 11]));
        assert_eq!(a.routes.capacity(), 3, "no spare capacity");
        let i = a.find(1, 1).unwrap();
        a.remove(i, Some(11));
        assert_eq!((a.peers, a.origin_list()), (2, vec![10]));
        let i = a.find(1, 0).unwrap();
        a.remove(i, Some(10));
        assert_eq!((a.peers, a.origin_list()), (1, vec![10]));
        assert_eq!(std::mem::size_of::<RouteSlot>(), 12);
    }
}
