//! Prometheus view of the DNS enricher's counters ([`EnricherStats`]), read at scrape time: the
//! collector takes the enricher's current numbers whenever `/metrics` is rendered, so nothing has
//! to sync them periodically. Registered only when `[dns]` is enabled.

use std::sync::Mutex;

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts};

use super::{Enricher, EnricherStats};

/// Values of the `result` label of `routewatch_dns_lookups_total`.
pub const LOOKUP_RESULTS: [&str; 4] = ["found", "not_found", "timeout", "failure"];

/// The DNS enrichment metrics of one [`Enricher`].
pub struct DnsMetrics {
    enricher: Enricher,
    queries: IntCounter,
    lookups: IntCounterVec,
    cache: IntCounterVec,
    dropped: IntCounter,
    cache_entries: IntGauge,
    pending: IntGauge,
    /// The stats last mirrored (counters advance by the difference); also serialises scrapes.
    last: Mutex<EnricherStats>,
}

impl DnsMetrics {
    /// The metrics of `enricher` (every label value present from the start).
    pub fn new(enricher: Enricher) -> Result<DnsMetrics, prometheus::Error> {
        let lookups = IntCounterVec::new(
            Opts::new(
                "routewatch_dns_lookups_total",
                "DNS enrichment lookups finished, by result: found, not_found (NXDOMAIN, no \
                 data, unusable answer), timeout, failure (SERVFAIL and other errors).",
            ),
            &["result"],
        )?;
        for r in LOOKUP_RESULTS {
            lookups.with_label_values(&[r]);
        }
        let cache = IntCounterVec::new(
            Opts::new(
                "routewatch_dns_cache_requests_total",
                "DNS enrichment name cache reads, by result: hit (a name or a cached negative \
                 answer), miss.",
            ),
            &["result"],
        )?;
        for r in ["hit", "miss"] {
            cache.with_label_values(&[r]);
        }
        Ok(DnsMetrics {
            enricher,
            queries: IntCounter::with_opts(Opts::new(
                "routewatch_dns_queries_total",
                "DNS enrichment lookups sent to the name servers (each may be several attempts).",
            ))?,
            lookups,
            cache,
            dropped: IntCounter::with_opts(Opts::new(
                "routewatch_dns_lookups_dropped_total",
                "DNS enrichment lookups not started because too many were pending.",
            ))?,
            cache_entries: IntGauge::with_opts(Opts::new(
                "routewatch_dns_cache_entries",
                "Names held in the DNS enrichment cache, positive and negative.",
            ))?,
            pending: IntGauge::with_opts(Opts::new(
                "routewatch_dns_lookups_pending",
                "DNS enrichment lookups waiting for a query slot or in flight.",
            ))?,
            last: Mutex::new(EnricherStats::default()),
        })
    }

    /// Mirrors the enricher's current counters.
    fn sync(&self) {
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = self.enricher.stats();
        let add = |c: &IntCounter, new: u64, old: u64| c.inc_by(new.saturating_sub(old));
        add(&self.queries, now.queries, last.queries);
        for (label, new, old) in [
            ("found", now.found, last.found),
            ("not_found", now.not_found, last.not_found),
            ("timeout", now.timeouts, last.timeouts),
            ("failure", now.failures, last.failures),
        ] {
            add(&self.lookups.with_label_values(&[label]), new, old);
        }
        add(
            &self.cache.with_label_values(&["hit"]),
            now.cache_hits,
            last.cache_hits,
        );
        add(
            &self.cache.with_label_values(&["miss"]),
            now.cache_misses,
            last.cache_misses,
        );
        add(&self.dropped, now.dropped, last.dropped);
        self.cache_entries
            .set(i64::try_from(now.cache_entries).unwrap_or(i64::MAX));
        self.pending
            .set(i64::try_from(now.pending).unwrap_or(i64::MAX));
        *last = now;
    }
}

impl Collector for DnsMetrics {
    fn desc(&self) -> Vec<&Desc> {
        [
            self.queries.desc(),
            self.lookups.desc(),
            self.cache.desc(),
            self.dropped.desc(),
            self.cache_entries.desc(),
            self.pending.desc(),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        self.sync();
        [
            self.queries.collect(),
            self.lookups.collect(),
            self.cache.collect(),
            self.dropped.collect(),
            self.cache_entries.collect(),
            self.pending.collect(),
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_every_series_and_reads_the_stats_at_scrape_time() {
        // A disabled enricher has all-zero stats; the series still exist with their labels.
        let r = prometheus::Registry::new();
        r.register(Box::new(DnsMetrics::new(Enricher::disabled()).unwrap()))
            .unwrap();
        let families = r.gather();
        let names: Vec<&str> = families.iter().map(|f| f.name()).collect();
        for n in [
            "routewatch_dns_cache_entries",
            "routewatch_dns_cache_requests_total",
            "routewatch_dns_lookups_dropped_total",
            "routewatch_dns_lookups_pending",
            "routewatch_dns_lookups_total",
            "routewatch_dns_queries_total",
        ] {
            assert!(names.contains(&n), "{n} in {names:?}");
        }
        let lookups = families
            .iter()
            .find(|f| f.name() == "routewatch_dns_lookups_total")
            .unwrap();
        assert_eq!(lookups.get_metric().len(), LOOKUP_RESULTS.len());
    }

    fn render(r: &prometheus::Registry) -> String {
        let mut buf = Vec::new();
        prometheus::Encoder::encode(&prometheus::TextEncoder::new(), &r.gather(), &mut buf)
            .unwrap();
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn dns_metrics_only_when_dns_is_enabled() {
        let r = prometheus::Registry::new();
        let config = crate::config::DnsConfig::default();
        let _ = crate::dns::enrich::start(&config, &r);
        assert!(!render(&r).contains("routewatch_dns_"));
        // Enabled (built on a runtime; nothing is looked up): every series from the start.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let dns = crate::dns::Enricher::with_runtime(
            crate::dns::EnricherSettings {
                enabled: true,
                servers: Some(vec!["127.0.0.1:53".parse().unwrap()]),
                ..crate::dns::EnricherSettings::default()
            },
            rt.handle().clone(),
        )
        .unwrap();
        r.register(Box::new(DnsMetrics::new(dns.clone()).unwrap()))
            .unwrap();
        let text = render(&r);
        for line in [
            "routewatch_dns_queries_total 0",
            r#"routewatch_dns_lookups_total{result="timeout"} 0"#,
            r#"routewatch_dns_cache_requests_total{result="miss"} 0"#,
            "routewatch_dns_lookups_dropped_total 0",
            "routewatch_dns_cache_entries 0",
            "routewatch_dns_lookups_pending 0",
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
        // Read at scrape time: a cache miss shows up without any sync call.
        assert_eq!(dns.cached_as_name(15169), None);
        assert!(render(&r).contains(r#"routewatch_dns_cache_requests_total{result="miss"} 1"#));
    }
}
