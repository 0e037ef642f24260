//! The registry: customer locations, their registered prefixes, and the longest-prefix-match
//! trie that decides whether an announced prefix concerns any of them.
//!
//! Pure domain code: no I/O. Built once from the configuration and shared immutably (an `Arc`)
//! by the feeds (which use it to drop unrelated routes early) and the engine (which uses the
//! per-prefix policy: expected origins, upstreams, max-length, min-peers).

pub mod generate;
mod trie;

pub use trie::PrefixTrie;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use ipnet::IpNet;
use serde::Serialize;

/// A customer location as registered by the operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Location {
    /// Unique name; the `location` metric label.
    pub name: String,
    /// The ISP or IXP that connects the site.
    pub provider: Option<String>,
    /// Expected upstream ASes: the AS adjacent to the origin on the path. Empty = not checked.
    pub provider_asns: Vec<u32>,
    /// State-level physical site (e.g. `US-WA`).
    pub region: Option<String>,
    /// Expected origin ASes.
    pub origin_asns: Vec<u32>,
    /// Registered prefixes (host bits clear).
    pub prefixes: Vec<IpNet>,
    /// Longest IPv4 more-specific an expected origin may announce; default: the prefix's length.
    pub max_length: Option<u8>,
    /// Longest IPv6 more-specific an expected origin may announce; default: the prefix's length.
    pub max_length_v6: Option<u8>,
    /// Peers that must carry an anomaly before it opens.
    pub min_peers: u32,
    /// Visibility (peers) below which `visibility_lost` opens, once the prefix was at or above
    /// it; 0 = not checked.
    pub min_visibility: u32,
}

impl Location {
    /// Whether `asn` is an expected origin of this location.
    #[inline]
    pub fn expects_origin(&self, asn: u32) -> bool {
        listed(&self.origin_asns, asn)
    }

    /// Whether `asn` is an expected upstream; always true when no provider ASNs are configured.
    #[inline]
    pub fn expects_upstream(&self, asn: u32) -> bool {
        self.provider_asns.is_empty() || listed(&self.provider_asns, asn)
    }
}

/// Whether `asn` is in `list`: a scan of a short list, a binary search of a long one (which
/// [`Registry::new`] sorts).
#[inline]
fn listed(list: &[u32], asn: u32) -> bool {
    if list.len() <= 16 {
        list.contains(&asn)
    } else {
        list.binary_search(&asn).is_ok()
    }
}

/// Dense index of a location in the registry.
pub type LocationId = u32;
/// Dense index of a registered prefix in the registry.
pub type PrefixId = u32;

/// A registered prefix with its resolved policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredPrefix {
    /// Dense id (index into [`Registry::prefixes`]).
    pub id: PrefixId,
    /// The prefix.
    pub prefix: IpNet,
    /// Owning location.
    pub location: LocationId,
    /// Longest more-specific an expected origin may announce.
    pub max_length: u8,
}

/// How an announced prefix relates to the registered prefix it matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchKind {
    /// The announced prefix is the registered prefix.
    Exact,
    /// The announced prefix is inside the registered prefix.
    MoreSpecific,
}

/// The result of matching an announced prefix against the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Match {
    /// The most specific registered prefix covering the announced one.
    pub prefix: PrefixId,
    /// Exact or more-specific.
    pub kind: MatchKind,
}

/// Registry construction errors, positional so the config layer can point at the source.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// Two locations share a name.
    #[error("location[{location}]: duplicate location name (first used by location[{first}])")]
    DuplicateLocationName {
        /// Index of the second location.
        location: usize,
        /// Index of the first.
        first: usize,
    },
    /// A prefix is registered twice (in one location or across locations).
    #[error("location[{location}]: {prefix} is already registered by location[{first_location}]")]
    DuplicatePrefix {
        /// Index of the location with the second registration.
        location: usize,
        /// Index of the prefix in that location's list.
        prefix_index: usize,
        /// The prefix.
        prefix: IpNet,
        /// Location of the first registration.
        first_location: usize,
    },
    /// max-length (or max-length-v6) is shorter than a registered prefix.
    #[error("location[{location}]: max-length {max_length} is shorter than {prefix}")]
    MaxLengthShorterThanPrefix {
        /// Location index.
        location: usize,
        /// Index of the prefix in that location's list.
        prefix_index: usize,
        /// The prefix.
        prefix: IpNet,
        /// The configured max-length.
        max_length: u8,
    },
}

/// Locations, registered prefixes and the match trie. Immutable once built.
#[derive(Clone)]
pub struct Registry {
    locations: Vec<Location>,
    prefixes: Vec<RegisteredPrefix>,
    trie: PrefixTrie<PrefixId>,
    generation: u64,
}

/// Source of [`Registry::generation`] numbers: every registry built in this process gets its own.
static NEXT_GENERATION: AtomicU64 = AtomicU64::new(1);

/// The registry currently in force, shared by the feeds (which match with it) and replaced as a
/// whole on a configuration reload. Readers take a cheap `Arc` clone and keep using the registry
/// they got for the unit of work at hand (a file, a chunk of a BMP stream); the engine notices
/// from [`Registry::generation`] that a batch was matched against another registry and matches
/// it again.
#[derive(Debug, Clone)]
pub struct SharedRegistry(Arc<RwLock<Arc<Registry>>>);

impl SharedRegistry {
    /// A handle holding `registry`.
    pub fn new(registry: Arc<Registry>) -> SharedRegistry {
        SharedRegistry(Arc::new(RwLock::new(registry)))
    }

    /// The registry in force now.
    pub fn current(&self) -> Arc<Registry> {
        self.0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Puts `registry` in force for every later [`SharedRegistry::current`].
    pub fn replace(&self, registry: Arc<Registry>) {
        *self
            .0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = registry;
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("locations", &self.locations.len())
            .field("prefixes", &self.prefixes.len())
            .finish()
    }
}

impl Registry {
    /// One location, `everything`, covering every IPv4 and IPv6 route (`0.0.0.0/0` and `::/0`,
    /// more-specifics to /32 and /128): every route matches it. For reading every route of a dump
    /// through the feeds' prefilters (`registry generate`); a configuration refuses default routes.
    pub fn everything() -> Registry {
        let location = Location {
            name: "everything".into(),
            provider: None,
            provider_asns: Vec::new(),
            region: None,
            origin_asns: Vec::new(),
            prefixes: vec![
                IpNet::V4(ipnet::Ipv4Net::default()),
                IpNet::V6(ipnet::Ipv6Net::default()),
            ],
            max_length: Some(32),
            max_length_v6: Some(128),
            min_peers: 1,
            min_visibility: 0,
        };
        // Two distinct prefixes of one location, max-lengths within their families: nothing for
        // `new` to refuse.
        match Registry::new(vec![location]) {
            Ok(r) => r,
            Err(e) => unreachable!("the covering registry is valid: {e}"),
        }
    }

    /// Builds the registry, enforcing: unique location names, each prefix registered once,
    /// max-length not shorter than any prefix it applies to.
    pub fn new(mut locations: Vec<Location>) -> Result<Registry, RegistryError> {
        // Sorted, so a location with thousands of origins is searched, not scanned, per route.
        for loc in &mut locations {
            for list in [&mut loc.origin_asns, &mut loc.provider_asns] {
                list.sort_unstable();
                list.dedup();
            }
        }
        let mut names: HashMap<&str, usize> = HashMap::new();
        for (i, loc) in locations.iter().enumerate() {
            if let Some(&first) = names.get(loc.name.as_str()) {
                return Err(RegistryError::DuplicateLocationName { location: i, first });
            }
            names.insert(&loc.name, i);
        }
        let mut trie = PrefixTrie::new();
        let mut prefixes = Vec::with_capacity(locations.iter().map(|l| l.prefixes.len()).sum());
        for (li, loc) in locations.iter().enumerate() {
            for (pi, &prefix) in loc.prefixes.iter().enumerate() {
                let configured = match prefix {
                    IpNet::V4(_) => loc.max_length,
                    IpNet::V6(_) => loc.max_length_v6,
                };
                let max_length = configured.unwrap_or(prefix.prefix_len());
                if max_length < prefix.prefix_len() {
                    return Err(RegistryError::MaxLengthShorterThanPrefix {
                        location: li,
                        prefix_index: pi,
                        prefix,
                        max_length,
                    });
                }
                let id = prefixes.len() as PrefixId;
                if let Some(prev) = trie.insert(prefix, id) {
                    let first: &RegisteredPrefix = &prefixes[prev as usize];
                    return Err(RegistryError::DuplicatePrefix {
                        location: li,
                        prefix_index: pi,
                        prefix,
                        first_location: first.location as usize,
                    });
                }
                prefixes.push(RegisteredPrefix {
                    id,
                    prefix,
                    location: li as LocationId,
                    max_length,
                });
            }
        }
        Ok(Registry {
            locations,
            prefixes,
            trie,
            generation: NEXT_GENERATION.fetch_add(1, Ordering::Relaxed),
        })
    }

    /// Identifies this registry among all built by the process (a reload builds a new one).
    /// Matches ([`PrefixId`]s) are only meaningful for the registry that produced them.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The id of exactly `prefix`, when it is registered.
    pub fn find(&self, prefix: &IpNet) -> Option<PrefixId> {
        self.lookup(prefix)
            .filter(|m| m.kind == MatchKind::Exact)
            .map(|m| m.prefix)
    }

    /// Matches an announced prefix: the most specific registered prefix covering it, if any.
    #[inline]
    pub fn lookup(&self, announced: &IpNet) -> Option<Match> {
        let (registered, id) = self.trie.longest_match(announced)?;
        let kind = if registered.prefix_len() == announced.prefix_len() {
            MatchKind::Exact
        } else {
            MatchKind::MoreSpecific
        };
        Some(Match { prefix: id, kind })
    }

    /// Every registered prefix that overlaps `prefix`: covering it, equal to it, or inside it
    /// (unordered). For the RPKI watch: the registered prefixes a changed ROA can concern.
    pub fn overlapping(&self, prefix: &IpNet) -> Vec<PrefixId> {
        self.trie.overlapping(prefix)
    }

    /// All registered prefixes, indexed by [`PrefixId`].
    pub fn prefixes(&self) -> &[RegisteredPrefix] {
        &self.prefixes
    }

    /// A registered prefix by id.
    pub fn prefix(&self, id: PrefixId) -> &RegisteredPrefix {
        &self.prefixes[id as usize]
    }

    /// All locations, indexed by [`LocationId`].
    pub fn locations(&self) -> &[Location] {
        &self.locations
    }

    /// The location owning a registered prefix.
    pub fn location_of(&self, id: PrefixId) -> &Location {
        &self.locations[self.prefixes[id as usize].location as usize]
    }

    /// Number of registered prefixes of each address family: (IPv4, IPv6).
    pub fn count_by_family(&self) -> (usize, usize) {
        let v4 = self
            .prefixes
            .iter()
            .filter(|p| p.prefix.addr().is_ipv4())
            .count();
        (v4, self.prefixes.len() - v4)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn loc(name: &str, prefixes: &[&str], origins: &[u32]) -> Location {
        Location {
            name: name.into(),
            provider: None,
            provider_asns: vec![],
            region: None,
            origin_asns: origins.to_vec(),
            prefixes: prefixes.iter().map(|p| p.parse().unwrap()).collect(),
            max_length: None,
            max_length_v6: None,
            min_peers: 1,
            min_visibility: 0,
        }
    }

    #[test]
    fn exact_and_more_specific_matches() {
        let r = Registry::new(vec![
            loc("a", &["203.0.113.0/24", "2001:db8:100::/48"], &[64496]),
            loc("b", &["203.0.113.128/25"], &[64497]),
        ])
        .unwrap();
        let m = r.lookup(&"203.0.113.0/24".parse().unwrap()).unwrap();
        assert_eq!((m.prefix, m.kind), (0, MatchKind::Exact));
        let m = r.lookup(&"203.0.113.0/25".parse().unwrap()).unwrap();
        assert_eq!((m.prefix, m.kind), (0, MatchKind::MoreSpecific));
        // The most specific registered prefix wins, even across locations.
        let m = r.lookup(&"203.0.113.192/26".parse().unwrap()).unwrap();
        assert_eq!((m.prefix, m.kind), (2, MatchKind::MoreSpecific));
        assert_eq!(r.location_of(m.prefix).name, "b");
        let m = r.lookup(&"2001:db8:100:5::/64".parse().unwrap()).unwrap();
        assert_eq!((m.prefix, m.kind), (1, MatchKind::MoreSpecific));
        assert_eq!(r.lookup(&"203.0.112.0/23".parse().unwrap()), None);
        assert_eq!(r.count_by_family(), (2, 1));
        // Default max-length is the prefix's own length.
        assert_eq!(r.prefix(0).max_length, 24);
        assert_eq!(r.prefix(1).max_length, 48);
    }

    #[test]
    fn duplicate_prefix_across_locations_is_rejected() {
        let err = Registry::new(vec![
            loc("a", &["203.0.113.0/24"], &[1]),
            loc("b", &["198.51.100.0/24", "203.0.113.0/24"], &[2]),
        ])
        .unwrap_err();
        assert_eq!(
            err,
            RegistryError::DuplicatePrefix {
                location: 1,
                prefix_index: 1,
                prefix: "203.0.113.0/24".parse().unwrap(),
                first_location: 0
            }
        );
    }

    #[test]
    fn duplicate_name_and_short_max_length_are_rejected() {
        let err = Registry::new(vec![
            loc("a", &["10.0.0.0/8"], &[1]),
            loc("a", &["11.0.0.0/8"], &[1]),
        ])
        .unwrap_err();
        assert_eq!(
            err,
            RegistryError::DuplicateLocationName {
                location: 1,
                first: 0
            }
        );
        let mut l = loc("a", &["10.0.0.0/8", "2001:db8::/32"], &[1]);
        l.max_length = Some(16);
        l.max_length_v6 = Some(24);
        let err = Registry::new(vec![l]).unwrap_err();
        assert!(matches!(
            err,
            RegistryError::MaxLengthShorterThanPrefix {
                prefix_index: 1,
                max_length: 24,
                ..
            }
        ));
    }
}
