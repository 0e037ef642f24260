//! The MRT reader's cache of TABLE_DUMP_V2 AS paths by their raw bytes.
//!
//! A full RIB has hundreds of thousands of distinct raw paths, and each RIB entry asks for one
//! of them in no particular order, so every lookup is a probe into a table far larger than the
//! processor's caches. This table is kept small to make those probes cheap: its buckets hold
//! only a 4-byte handle, the raw bytes live back to back in one arena, and the paths in a vector
//! indexed by handle. A million paths take about 5 MB of table and their bytes (about 20 each)
//! instead of a 50 MB table of inline keys.

use std::hash::BuildHasher;
use std::sync::Arc;

use hashbrown::HashTable;
use rustc_hash::FxBuildHasher;

use crate::model::AsPath;

/// Raw AS_PATH bytes → path, with handles (positions) that stay valid until the next
/// [`WirePathCache::clear`].
#[derive(Debug, Default)]
pub struct WirePathCache {
    /// Handles, found by the hash of their raw bytes.
    table: HashTable<u32>,
    /// Every key's raw bytes, back to back.
    bytes: Vec<u8>,
    /// Per handle: where its bytes start in `bytes` and how many there are.
    spans: Vec<(u32, u32)>,
    /// Per handle: the path.
    paths: Vec<Arc<AsPath>>,
}

impl WirePathCache {
    fn hash(raw: &[u8]) -> u64 {
        FxBuildHasher.hash_one(raw)
    }

    fn key<'a>(bytes: &'a [u8], spans: &[(u32, u32)], handle: u32) -> &'a [u8] {
        let (at, len) = spans[handle as usize];
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

    /// Bytes of raw paths held.
    pub fn byte_len(&self) -> usize {
        self.bytes.len()
    }

    /// The handle of `raw`, if held.
    #[inline]
    pub fn get(&self, raw: &[u8]) -> Option<u32> {
        let (bytes, spans) = (&self.bytes, &self.spans);
        self.table
            .find(Self::hash(raw), |&h| Self::key(bytes, spans, h) == raw)
            .copied()
    }

    /// Adds `raw` (not held yet) with its path; returns its handle.
    pub fn insert(&mut self, raw: &[u8], path: Arc<AsPath>) -> u32 {
        let handle = self.paths.len() as u32;
        self.spans.push((self.bytes.len() as u32, raw.len() as u32));
        self.bytes.extend_from_slice(raw);
        self.paths.push(path);
        let (bytes, spans) = (&self.bytes, &self.spans);
        self.table.insert_unique(Self::hash(raw), handle, |&h| {
            Self::hash(Self::key(bytes, spans, h))
        });
        handle
    }

    /// The path of `handle`.
    #[inline]
    pub fn path(&self, handle: u32) -> &Arc<AsPath> {
        &self.paths[handle as usize]
    }

    /// Forgets everything (every handle given out is stale from now on).
    pub fn clear(&mut self) {
        self.table.clear();
        self.bytes.clear();
        self.spans.clear();
        self.paths.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_what_was_inserted_by_its_bytes() {
        let mut c = WirePathCache::default();
        let a = Arc::new(AsPath::from_sequence(&[1, 2]));
        let b = Arc::new(AsPath::from_sequence(&[3]));
        // Enough keys to make the table grow (rehashing from the arena) several times.
        let keys: Vec<Vec<u8>> = (0u32..5000)
            .map(|i| i.to_be_bytes().repeat(1 + i as usize % 3))
            .collect();
        let handles: Vec<u32> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| c.insert(k, if i % 2 == 0 { a.clone() } else { b.clone() }))
            .collect();
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(c.get(k), Some(handles[i]));
            let want = if i % 2 == 0 { &a } else { &b };
            assert!(Arc::ptr_eq(c.path(handles[i]), want));
        }
        assert_eq!(c.get(b"not there"), None);
        assert_eq!(c.get(&[]), None);
        assert_eq!(c.len(), 5000);
        c.clear();
        assert!(c.is_empty());
        assert_eq!((c.len(), c.byte_len(), c.get(&keys[0])), (0, 0, None));
    }
}
