//! Longest-prefix match over the registered prefixes, IPv4 and IPv6.
//!
//! Backed by the `prefix-trie` crate (a maintained tree-bitmap; lookups do not allocate), chosen
//! over a hand-written binary trie or a sorted vector because it answers "most specific stored
//! prefix covering Q" in one call for both families. Its cost per lookup is measured by
//! `cargo bench --bench registry_lookup` (figures in BENCHMARKS.md): well below the cost of
//! decoding the route being matched.

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use prefix_trie::PrefixMap;

/// A longest-prefix-match table from registered prefixes to values (dense ids).
#[derive(Clone, Default)]
pub struct PrefixTrie<T> {
    v4: PrefixMap<Ipv4Net, T>,
    v6: PrefixMap<Ipv6Net, T>,
}

impl<T: Copy> PrefixTrie<T> {
    /// An empty table.
    pub fn new() -> Self {
        Self {
            v4: PrefixMap::new(),
            v6: PrefixMap::new(),
        }
    }

    /// Inserts `prefix` → `value`, returning the previous value for exactly that prefix.
    pub fn insert(&mut self, prefix: IpNet, value: T) -> Option<T> {
        match prefix {
            IpNet::V4(p) => self.v4.insert(p, value),
            IpNet::V6(p) => self.v6.insert(p, value),
        }
    }

    /// The most specific stored prefix that covers (or equals) `prefix`, with its value.
    #[inline]
    pub fn longest_match(&self, prefix: &IpNet) -> Option<(IpNet, T)> {
        match prefix {
            IpNet::V4(p) => self.v4.get_lpm(p).map(|(k, v)| (IpNet::V4(k), *v)),
            IpNet::V6(p) => self.v6.get_lpm(p).map(|(k, v)| (IpNet::V6(k), *v)),
        }
    }

    /// The values of every stored prefix that overlaps `prefix`: those covering it (or equal
    /// to it), then those strictly inside it. Host bits of `prefix` are ignored.
    pub fn overlapping(&self, prefix: &IpNet) -> Vec<T> {
        match prefix {
            IpNet::V4(p) => {
                let p = p.trunc();
                let inside = self.v4.children(&p).filter(|(k, _)| *k != p);
                self.v4.cover(&p).chain(inside).map(|(_, v)| *v).collect()
            }
            IpNet::V6(p) => {
                let p = p.trunc();
                let inside = self.v6.children(&p).filter(|(k, _)| *k != p);
                self.v6.cover(&p).chain(inside).map(|(_, v)| *v).collect()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn most_specific_wins_and_less_specific_does_not_match() {
        let mut t = PrefixTrie::new();
        t.insert(net("10.0.0.0/8"), 1u32);
        t.insert(net("10.1.0.0/16"), 2);
        t.insert(net("2001:db8::/32"), 3);
        assert_eq!(
            t.longest_match(&net("10.1.2.0/24")),
            Some((net("10.1.0.0/16"), 2))
        );
        assert_eq!(
            t.longest_match(&net("10.1.0.0/16")),
            Some((net("10.1.0.0/16"), 2))
        );
        assert_eq!(
            t.longest_match(&net("10.2.0.0/16")),
            Some((net("10.0.0.0/8"), 1))
        );
        // Less specific than every registered prefix: no match (ignored in v1).
        assert_eq!(t.longest_match(&net("10.0.0.0/7")), None);
        assert_eq!(t.longest_match(&net("11.0.0.0/8")), None);
        assert_eq!(
            t.longest_match(&net("2001:db8:1::/48")),
            Some((net("2001:db8::/32"), 3))
        );
        // IPv4-mapped space does not leak across families.
        assert_eq!(t.longest_match(&net("::ffff:10.1.0.0/112")), None);
    }

    #[test]
    fn overlapping_is_covering_and_inside_and_nothing_else() {
        let mut t = PrefixTrie::new();
        t.insert(net("10.0.0.0/8"), 1u32);
        t.insert(net("10.1.0.0/16"), 2);
        t.insert(net("10.1.2.0/24"), 3);
        t.insert(net("10.2.0.0/16"), 4);
        t.insert(net("2001:db8::/32"), 5);
        let mut v = t.overlapping(&net("10.1.0.0/16"));
        v.sort_unstable();
        assert_eq!(v, vec![1, 2, 3]);
        let mut v = t.overlapping(&net("10.0.0.0/7"));
        v.sort_unstable();
        assert_eq!(v, vec![1, 2, 3, 4]);
        assert_eq!(t.overlapping(&net("10.3.0.0/16")), vec![1]);
        assert!(t.overlapping(&net("11.0.0.0/8")).is_empty());
        assert_eq!(t.overlapping(&net("2001:db8:1::/48")), vec![5]);
    }

    #[test]
    fn host_routes_and_default_route() {
        let mut t = PrefixTrie::new();
        t.insert(net("0.0.0.0/0"), 0u32);
        t.insert(net("192.0.2.1/32"), 9);
        assert_eq!(
            t.longest_match(&net("192.0.2.1/32")),
            Some((net("192.0.2.1/32"), 9))
        );
        assert_eq!(
            t.longest_match(&net("192.0.2.2/32")),
            Some((net("0.0.0.0/0"), 0))
        );
        assert_eq!(t.longest_match(&net("::/0")), None);
    }
}
