//! A small counting map backed by a vector, for the carriers of an anomaly instance (a handful
//! of peers). A `HashMap` costs an allocation of 100+ bytes even for one entry; here one entry
//! costs its own size, and a linear scan over a few peers beats hashing.

/// Counts per small `Copy` key, in insertion order.
#[derive(Debug, Clone)]
pub struct VecMap<K> {
    entries: Vec<(K, u32)>,
}

impl<K> Default for VecMap<K> {
    fn default() -> Self {
        VecMap {
            entries: Vec::new(),
        }
    }
}

impl<K: PartialEq + Copy> VecMap<K> {
    /// The count of `key` (0 when absent).
    #[cfg(test)]
    pub fn count(&self, key: &K) -> u32 {
        self.entries
            .iter()
            .find(|(k, _)| k == key)
            .map_or(0, |(_, n)| *n)
    }

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

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no keys.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_go_up_and_away_at_zero() {
        let mut m: VecMap<u32> = VecMap::default();
        m.increment(7);
        m.increment(7);
        m.increment(9);
        assert_eq!((m.len(), m.count(&7)), (2, 2));
        m.decrement(&7);
        m.decrement(&7);
        assert_eq!(m.count(&7), 0);
        m.decrement(&42);
        assert_eq!(m.len(), 1);
        m.decrement(&9);
        assert!(m.is_empty());
    }
}
