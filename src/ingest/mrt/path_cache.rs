//! The MRT reader's cache of TABLE_DUMP_V2 AS paths by their raw bytes.
//!
//! A full RIB has hundreds of thousands of distinct raw paths, and each RIB entry asks for one
//! of them in no particular order, so every lookup is a probe into a table far larger than the
//! processor's caches. This table is kept small to make those probes cheap: its buckets hold
//! only a 4-byte position, the raw bytes live back to back in one arena, and the paths in a
//! vector indexed by position. A million paths take about 5 MB of table and their bytes (about
//! 20 each) instead of a 50 MB table of inline keys.
//!
//! The cache is bounded; when an insertion finds it full it is emptied first. A [`Handle`]
//! carries the generation (number of emptyings) it was given in, so one kept across an
//! emptying resolves to nothing instead of to another path.

use std::hash::BuildHasher;
use std::sync::Arc;

use hashbrown::HashTable;
use rustc_hash::FxBuildHasher;

use crate::model::AsPath;

/// A path of the cache, found or inserted; cheap to copy, no reference count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handle {
    generation: u32,
    index: u32,
}

/// Raw AS_PATH bytes → path.
#[derive(Debug)]
pub struct WirePathCache {
    /// Positions, found by the hash of their raw bytes.
    table: HashTable<u32>,
    /// Every key's raw bytes, back to back.
    bytes: Vec<u8>,
    /// Per position: where its bytes start in `bytes` and how many there are.
    spans: Vec<(u32, u32)>,
    /// Per position: the path.
    paths: Vec<Arc<AsPath>>,
    /// Times the cache was emptied.
    generation: u32,
    /// Paths held at most.
    max_paths: usize,
    /// Raw bytes held at most (before the insertion that finds them reached).
    max_bytes: usize,
}

impl WirePathCache {
    /// An empty cache holding at most `max_paths` paths and about `max_bytes` raw bytes.
    pub fn new(max_paths: usize, max_bytes: usize) -> WirePathCache {
        WirePathCache {
            table: HashTable::new(),
            bytes: Vec::new(),
            spans: Vec::new(),
            paths: Vec::new(),
            generation: 0,
            max_paths: max_paths.max(1),
            max_bytes,
        }
    }

    fn hash(raw: &[u8]) -> u64 {
        FxBuildHasher.hash_one(raw)
    }

    fn key<'a>(bytes: &'a [u8], spans: &[(u32, u32)], index: u32) -> &'a [u8] {
        let (at, len) = spans[index as usize];
        &bytes[at as usize..(at + len) as usize]
    }

    /// Paths held.
    pub fn len(&self) -> usize {
        self.paths.len()
    }

    /// Whether no path is held.
    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    /// The handle of `raw`, if held.
    #[inline]
    pub fn get(&self, raw: &[u8]) -> Option<Handle> {
        let (bytes, spans) = (&self.bytes, &self.spans);
        self.table
            .find(Self::hash(raw), |&i| Self::key(bytes, spans, i) == raw)
            .map(|&index| Handle {
                generation: self.generation,
                index,
            })
    }

    /// Adds `raw` (not held yet) with its path, emptying the cache first when it is full.
    pub fn insert(&mut self, raw: &[u8], path: Arc<AsPath>) -> Handle {
        if self.paths.len() >= self.max_paths || self.bytes.len() >= self.max_bytes {
            self.table.clear();
            self.bytes.clear();
            self.spans.clear();
            self.paths.clear();
            self.generation = self.generation.wrapping_add(1);
        }
        let index = self.paths.len() as u32;
        self.spans.push((self.bytes.len() as u32, raw.len() as u32));
        self.bytes.extend_from_slice(raw);
        self.paths.push(path);
        let (bytes, spans) = (&self.bytes, &self.spans);
        self.table.insert_unique(Self::hash(raw), index, |&i| {
            Self::hash(Self::key(bytes, spans, i))
        });
        Handle {
            generation: self.generation,
            index,
        }
    }

    /// Whether `handle` still resolves (the cache was not emptied since it was given).
    #[inline]
    pub fn holds(&self, handle: Handle) -> bool {
        handle.generation == self.generation
    }

    /// The path of `handle`; `None` when the cache was emptied since it was given.
    #[inline]
    pub fn path(&self, handle: Handle) -> Option<&Arc<AsPath>> {
        self.holds(handle)
            .then(|| self.paths.get(handle.index as usize))
            .flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_what_was_inserted_by_its_bytes() {
        let mut c = WirePathCache::new(usize::MAX, usize::MAX);
        let a = Arc::new(AsPath::from_sequence(&[1, 2]));
        let b = Arc::new(AsPath::from_sequence(&[3]));
        // Enough keys to make the table grow (rehashing from the arena) several times.
        let keys: Vec<Vec<u8>> = (0u32..5000)
            .map(|i| i.to_be_bytes().repeat(1 + i as usize % 3))
            .collect();
        let handles: Vec<Handle> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| c.insert(k, if i % 2 == 0 { a.clone() } else { b.clone() }))
            .collect();
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(c.get(k), Some(handles[i]));
            let want = if i % 2 == 0 { &a } else { &b };
            assert!(Arc::ptr_eq(c.path(handles[i]).unwrap(), want));
        }
        assert_eq!(c.get(b"not there"), None);
        assert_eq!(c.get(&[]), None);
        assert_eq!(c.len(), 5000);
    }

    #[test]
    fn a_full_cache_is_emptied_and_old_handles_resolve_to_nothing() {
        let mut c = WirePathCache::new(2, usize::MAX);
        let p = |a: u32| Arc::new(AsPath::from_sequence(&[a]));
        let h1 = c.insert(b"one", p(1));
        let h2 = c.insert(b"two", p(2));
        assert_eq!(c.len(), 2);
        let h3 = c.insert(b"three", p(3));
        // Emptied before the third: only it is held, and the first two handles are stale even
        // though h3 reuses h1's position.
        assert_eq!((c.len(), c.get(b"one"), c.get(b"two")), (1, None, None));
        assert_eq!(c.get(b"three"), Some(h3));
        assert_eq!(c.path(h3).map(|p| p.origin_asn()), Some(Some(3)));
        assert!(c.path(h1).is_none() && c.path(h2).is_none());
        assert!(!c.holds(h1) && c.holds(h3));

        // The byte bound empties it too.
        let mut c = WirePathCache::new(usize::MAX, 4);
        let h = c.insert(b"12345", p(1));
        c.insert(b"6", p(2));
        assert!(c.path(h).is_none());
        assert!(!c.is_empty());
    }
}
