//! What one RPKI source delivers ([`RpkiData`]: VRPs and ASPAs) and what changed between two
//! deliveries ([`RpkiDelta`]), which bounds the routes the engine re-validates and the ROAs and
//! ASPAs the watch compares.

use std::sync::Arc;

use ipnet::IpNet;

use super::aspa::AspaSet;
use super::{Vrp, VrpSet};

/// One source's validated RPKI data: VRPs for origin validation, ASPAs for path verification.
#[derive(Debug, Clone, Default)]
pub struct RpkiData {
    /// Validated ROA payloads.
    pub vrps: VrpSet,
    /// ASPAs (empty: path verification is off).
    pub aspas: AspaSet,
}

impl RpkiData {
    /// Data from its parts.
    pub fn new(vrps: VrpSet, aspas: AspaSet) -> Self {
        RpkiData { vrps, aspas }
    }

    /// The union of two sources' data (a VRP file and an RTR cache both configured): a VRP in
    /// either is a VRP; an ASPA's providers are the union of both records.
    pub fn union(&self, other: &RpkiData) -> RpkiData {
        RpkiData {
            vrps: self.vrps.union(&other.vrps),
            aspas: self.aspas.union(&other.aspas),
        }
    }

    /// What differs from `self` (old) to `new`: the prefixes of VRPs added or removed and the
    /// customers whose ASPA was added, removed or changed.
    pub fn diff(&self, new: &RpkiData) -> RpkiDelta {
        let mut old_vrps: Vec<Vrp> = self.vrps.iter().collect();
        let mut new_vrps: Vec<Vrp> = new.vrps.iter().collect();
        old_vrps.sort_unstable();
        new_vrps.sort_unstable();
        let mut prefixes = Vec::new();
        let (mut i, mut j) = (0, 0);
        while i < old_vrps.len() || j < new_vrps.len() {
            match (old_vrps.get(i), new_vrps.get(j)) {
                (Some(a), Some(b)) if a == b => {
                    i += 1;
                    j += 1;
                }
                (Some(a), Some(b)) if a < b => {
                    prefixes.push(a.prefix());
                    i += 1;
                }
                (Some(_), Some(b)) => {
                    prefixes.push(b.prefix());
                    j += 1;
                }
                (Some(a), None) => {
                    prefixes.push(a.prefix());
                    i += 1;
                }
                (None, Some(b)) => {
                    prefixes.push(b.prefix());
                    j += 1;
                }
                (None, None) => break,
            }
        }
        RpkiDelta::new(prefixes, self.aspas.changed_customers(&new.aspas))
    }
}

/// What changed between two deliveries of RPKI data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RpkiDelta {
    /// Prefixes of VRPs added or removed, sorted, no duplicates.
    pub vrp_prefixes: Vec<IpNet>,
    /// Customer ASes whose ASPA was added, removed or changed, sorted, no duplicates.
    pub aspa_customers: Vec<u32>,
}

impl RpkiDelta {
    /// A delta (sorted and deduplicated here).
    pub fn new(mut vrp_prefixes: Vec<IpNet>, mut aspa_customers: Vec<u32>) -> Self {
        vrp_prefixes.sort_unstable();
        vrp_prefixes.dedup();
        aspa_customers.sort_unstable();
        aspa_customers.dedup();
        RpkiDelta {
            vrp_prefixes,
            aspa_customers,
        }
    }

    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.vrp_prefixes.is_empty() && self.aspa_customers.is_empty()
    }

    /// The two deltas together (updates from several sources between two engine turns).
    pub fn merge(&self, other: &RpkiDelta) -> RpkiDelta {
        RpkiDelta::new(
            self.vrp_prefixes
                .iter()
                .chain(&other.vrp_prefixes)
                .copied()
                .collect(),
            self.aspa_customers
                .iter()
                .chain(&other.aspa_customers)
                .copied()
                .collect(),
        )
    }
}

/// Shared, immutable data as the engine holds it.
pub type SharedRpki = Arc<RpkiData>;

#[cfg(test)]
mod tests {
    use super::*;

    fn vrp(p: &str, max: u8, asn: u32) -> Vrp {
        Vrp::new(p.parse().unwrap(), max, asn).unwrap()
    }

    #[test]
    fn the_diff_names_the_prefixes_and_customers_that_changed_and_nothing_else() {
        let old = RpkiData::new(
            VrpSet::from_vrps([
                vrp("192.0.2.0/24", 24, 64500),
                vrp("198.51.100.0/24", 24, 64501),
            ]),
            AspaSet::from_records([(64500u32, vec![64510u32]), (64501, vec![64511])]),
        );
        let new = RpkiData::new(
            VrpSet::from_vrps([
                vrp("192.0.2.0/24", 24, 64500),
                vrp("198.51.100.0/24", 25, 64501),
            ]),
            AspaSet::from_records([(64500u32, vec![64510u32]), (64502, vec![64511])]),
        );
        let d = old.diff(&new);
        assert_eq!(
            d.vrp_prefixes,
            vec!["198.51.100.0/24".parse::<IpNet>().unwrap()]
        );
        assert_eq!(d.aspa_customers, vec![64501, 64502]);
        assert!(old.diff(&old.clone()).is_empty());
        let u = old.union(&new);
        assert_eq!(u.vrps.len(), 3);
        assert_eq!(u.aspas.len(), 3);
    }
}
