//! The API's answers with DNS names: the engine's summaries wrapped in response types that add
//! the holder names of the AS numbers they show (`[dns]`), read from the name cache only (an
//! answer never waits for DNS); the names not cached yet are looked up in the background, so a
//! later request shows them. With DNS off, no name fields appear.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use serde::Serialize;

use crate::dns::Enricher;
use crate::engine::{AnnouncedSummary, AnomalySummary, PrefixSummary};
use crate::ingest::bmp::listener::RouterStatus;

/// An anomaly as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct AnomalyBody {
    /// The engine's summary.
    #[serde(flatten)]
    pub anomaly: AnomalySummary,
    /// The holder name of the offending AS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub as_name: Option<String>,
}

/// A more-specific as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct AnnouncedBody {
    /// The engine's summary.
    #[serde(flatten)]
    pub announced: AnnouncedSummary,
    /// Holder names of its origins known so far.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub origin_names: BTreeMap<u32, String>,
}

/// A registered prefix as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct PrefixBody {
    /// The engine's summary, its more-specifics and anomalies named too.
    #[serde(flatten)]
    pub prefix: PrefixSummary<AnnouncedBody, AnomalyBody>,
    /// Holder names of its origins known so far.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub origin_names: BTreeMap<u32, String>,
}

/// Cached AS names for one API answer: each AS read from the cache once, the unknown ones
/// prefetched by [`CachedNames::prefetch_missing`].
struct CachedNames<'a> {
    dns: &'a Enricher,
    seen: HashMap<u32, Option<String>>,
    missing: Vec<u32>,
}

impl<'a> CachedNames<'a> {
    fn new(dns: &'a Enricher) -> Self {
        CachedNames {
            dns,
            seen: HashMap::new(),
            missing: Vec::new(),
        }
    }

    fn get(&mut self, asn: u32) -> Option<String> {
        if !self.dns.is_enabled() {
            return None;
        }
        let (dns, missing) = (self.dns, &mut self.missing);
        self.seen
            .entry(asn)
            .or_insert_with(|| {
                dns.cached_as_name(asn).unwrap_or_else(|| {
                    missing.push(asn);
                    None
                })
            })
            .clone()
    }

    fn names(&mut self, asns: &[u32]) -> BTreeMap<u32, String> {
        asns.iter()
            .filter_map(|&a| self.get(a).map(|n| (a, n)))
            .collect()
    }

    fn anomaly(&mut self, anomaly: AnomalySummary) -> AnomalyBody {
        let as_name = anomaly.asn.and_then(|x| self.get(x));
        AnomalyBody { anomaly, as_name }
    }

    fn prefetch_missing(self) {
        self.dns.prefetch(self.missing);
    }
}

/// Names each anomaly's offending AS from the cache; starts lookups of the others.
pub fn name_anomalies(dns: &Enricher, anomalies: Vec<AnomalySummary>) -> Vec<AnomalyBody> {
    let mut names = CachedNames::new(dns);
    let named = anomalies.into_iter().map(|a| names.anomaly(a)).collect();
    names.prefetch_missing();
    named
}

/// Names each prefix's origins, its more-specifics' origins and its anomalies' offending ASes
/// from the cache; starts lookups of the others.
pub fn name_prefixes(dns: &Enricher, prefixes: Vec<PrefixSummary>) -> Vec<PrefixBody> {
    let mut names = CachedNames::new(dns);
    let named = prefixes
        .into_iter()
        .map(|p| {
            let origin_names = names.names(&p.origins);
            let prefix = p
                .map(
                    |announced| AnnouncedBody {
                        origin_names: names.names(&announced.origins),
                        announced,
                    },
                    |a| a,
                )
                .map(|m| m, |a| names.anomaly(a));
            PrefixBody {
                prefix,
                origin_names,
            }
        })
        .collect();
    names.prefetch_missing();
    named
}

/// Sets `dns_name` of the routers without a configured name from the reverse-DNS cache; starts
/// lookups of the others. Never waits.
pub fn name_routers(dns: &Enricher, routers: &mut [RouterStatus]) {
    if !dns.is_enabled() {
        return;
    }
    let mut missing: Vec<IpAddr> = Vec::new();
    for r in routers.iter_mut().filter(|r| !r.configured) {
        let ip = r.remote.ip();
        r.dns_name = dns.cached_router_name(ip).unwrap_or_else(|| {
            missing.push(ip);
            None
        });
    }
    dns.prefetch_router_names(missing);
}
