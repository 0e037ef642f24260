//! DNS enrichment (`[dns]`, off by default): holder names of AS numbers (Team Cymru's DNS
//! interface) and reverse-DNS names of BMP routers.
//!
//! - [`resolver`]: the [`Enricher`], lookups over hickory-resolver with a TTL cache, timeouts
//!   and bounded concurrency;
//! - [`enrich`]: where the daemon waits for names (the event naming task between the engine and
//!   the event store) and where it never does;
//! - [`metrics`]: the enricher's counters as Prometheus metrics, registered by [`enrich::start`].
//!
//! The API's answers take names from the cache only (`crate::http::names`).

pub mod enrich;
pub mod metrics;
pub mod resolver;

pub use resolver::{
    is_reserved_asn, parse_cymru_txt, Enricher, EnricherSettings, EnricherStats, ResolverError,
};
