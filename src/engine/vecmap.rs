//! A small map backed by a vector, for the per-prefix sets that hold a handful of entries
//! (peers of one announced prefix, its origins, the carriers of an anomaly).
//!
//! A `HashMap` costs an allocation of 100+ bytes even for one entry; here one entry costs its own
//! size. Lookups are linear, which for the tens of peers a prefix has beats hashing.

/// A map of small `Copy` keys to values, in insertion order.
#[derive(Debug, Clone)]
pub struct VecMap<K, V> {
    entries: Vec<(K, V)>,
}

impl<K, V> Default for VecMap<K, V> {
    fn default() -> Self {
        VecMap {
            entries: Vec::new(),
        }
    }
}

impl<K: PartialEq + Copy, V> VecMap<K, V> {
    /// Inserts or replaces; returns the previous value.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        match self.entries.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => Some(std::mem::replace(v, value)),
            None => {
                self.entries.push((key, value));
                None
            }
        }
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &K) -> Option<V> {
        let i = self.entries.iter().position(|(k, _)| k == key)?;
        Some(self.entries.swap_remove(i).1)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Entries in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.entries.iter().map(|(k, v)| (k, v))
    }

    /// Values in no particular order.
    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.entries.iter().map(|(_, v)| v)
    }

    /// Keeps the entries for which `f` returns true.
    pub fn retain(&mut self, mut f: impl FnMut(&K, &mut V) -> bool) {
        self.entries.retain_mut(|(k, v)| f(k, v));
    }
}

impl<K: PartialEq + Copy> VecMap<K, u32> {
    /// Adds one to the count of `key`.
    pub fn increment(&mut self, key: K) {
        match self.entries.iter_mut().find(|(k, _)| *k == key) {
            Some((_, n)) => *n += 1,
            None => self.entries.push((key, 1)),
        }
    }

    /// Takes one from the count of `key`, removing it at zero.
    pub fn decrement(&mut self, key: &K) {
        if let Some(i) = self.entries.iter().position(|(k, _)| k == key) {
            self.entries[i].1 -= 1;
            if self.entries[i].1 == 0 {
                self.entries.swap_remove(i);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(m: &VecMap<u32, u32>, key: u32) -> Option<u32> {
        m.iter().find(|(k, _)| **k == key).map(|(_, v)| *v)
    }

    #[test]
    fn counts_go_up_and_away_at_zero() {
        let mut m: VecMap<u32, u32> = VecMap::default();
        m.increment(7);
        m.increment(7);
        m.increment(9);
        assert_eq!((m.len(), get(&m, 7)), (2, Some(2)));
        m.decrement(&7);
        m.decrement(&7);
        assert_eq!(get(&m, 7), None);
        m.decrement(&42);
        assert_eq!(m.len(), 1);
        assert_eq!(m.insert(9, 5), Some(1));
        assert_eq!(m.remove(&9), Some(5));
        assert!(m.is_empty());
    }
}
