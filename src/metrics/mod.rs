//! Prometheus metrics: the exposition, the per-prefix series and the feed counters (every name and label is documented in README.md).
//!
//! Label values for prefixes come from the registry only: an announced prefix, an origin ASN or
//! an AS path (attacker-controlled) never becomes a label. Per-registered-prefix handles are
//! created once at start; the first `max-prefix-series` registered prefixes get their own series,
//! the rest of each location share one series labelled `prefix="other"` (sums, and the latest
//! timestamp), and `routewatch_prefix_series_folded` says how many were folded.
//!
//! The engine owns the numbers; this module mirrors them. After each batch the pipeline calls
//! [`Metrics::sync`] with the prefixes the engine marked dirty, and the change since the last sync
//! is added to the series, so shared (folded) series aggregate correctly.
//!
//! The per-prefix families live in a compact [`prefix_table::PrefixTable`] rendered directly as
//! text; the few feed and process metrics use the `prometheus` crate.

pub mod prefix_table;

use std::sync::{Arc, RwLock};

use prometheus::{
    Encoder, GaugeVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::engine::{AnomalyKind, Engine, PrefixCounters, KINDS};
use crate::ingest::mrt::Batch;
use crate::model::Feed;
use crate::registry::{PrefixId, Registry as PrefixRegistry};
use prefix_table::PrefixTable;

/// Bounded values of the `error` label of `routewatch_parse_errors_total`.
pub const PARSE_ERROR_LABELS: [&str; 7] = [
    "truncated_stream",
    "truncated_record",
    "unsupported",
    "oversized_record",
    "malformed",
    crate::ingest::bgp::MALFORMED_MP_ATTRIBUTE,
    crate::ingest::bgp::MALFORMED_OTC,
];

/// Values of the `result` label of `routewatch_mrt_files_processed_total`.
pub const MRT_FILE_RESULTS: [&str; 3] = ["ok", "parse_errors", "failed"];

/// One feed's counters, as [`Metrics::feed_statuses`] reads them.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedStatus {
    /// The feed.
    pub feed: Feed,
    /// Route entries read.
    pub routes_processed: u64,
    /// Route entries that matched a registered prefix.
    pub routes_matched: u64,
    /// Peers holding matched routes now.
    pub peers: u64,
    /// Wall-clock time route entries last arrived (`None`: never).
    pub last_received: Option<f64>,
    /// BGP time of the newest route read (`None`: none yet).
    pub last_message: Option<f64>,
    /// MRT files by result, in [`MRT_FILE_RESULTS`] order (the MRT feed only).
    pub mrt_files: Option<[u64; 3]>,
}

/// The metric set of one routewatch process.
pub struct Metrics {
    registry: Registry,
    prefixes: Arc<RwLock<PrefixTable>>,
    /// The engine's counters as last mirrored (compact: the per-kind arrays are boxed only for
    /// prefixes that have anomalies or RPKI counts).
    synced: Vec<PrefixCounters>,
    /// The feeds this process runs (their `feed` series exist and are kept current).
    feeds: Vec<Feed>,
    routes_processed: IntCounterVec,
    routes_matched: IntCounterVec,
    parse_errors: IntCounterVec,
    mrt_files: IntCounterVec,
    feed_last_message: GaugeVec,
    feed_last_received: GaugeVec,
    feed_peers: IntGaugeVec,
    sessions_down: IntCounterVec,
    tracked_routes: IntGauge,
    anomaly_flaps: IntCounterVec,
    /// The engine's flap counts as last mirrored.
    synced_flaps: [u64; KINDS],
    anomalies_resolving: IntGauge,
    holds_skipped: prometheus::IntCounter,
    log_suppressed: IntCounterVec,
    /// See [`Metrics::set_quiet`].
    quiet: bool,
    registered: IntGaugeVec,
    folded: IntGauge,
}

/// Registers `m` on `r` and returns it (a clash is logged: names are static, so tests catch it).
pub(crate) fn register<M: prometheus::core::Collector + Clone + 'static>(r: &Registry, m: M) -> M {
    // Names are static and unique in this module; a clash is a programming error caught by tests.
    if let Err(e) = r.register(Box::new(m.clone())) {
        tracing::error!(error = %e, "metric registration failed");
    }
    m
}

/// Metric options.
pub(crate) fn opts(name: &str, help: &str) -> Opts {
    Opts::new(name, help)
}

impl Metrics {
    /// Creates every metric and the per-prefix series for `prefixes`.
    pub fn new(
        prefixes: &PrefixRegistry,
        max_prefix_series: usize,
    ) -> Result<Metrics, prometheus::Error> {
        let r = Registry::new();
        // process_cpu_seconds_total, process_resident_memory_bytes, process_open_fds,
        // process_start_time_seconds, ... (read from /proc at scrape time).
        #[cfg(target_os = "linux")]
        if let Err(e) = r.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        )) {
            tracing::error!(error = %e, "process metrics registration failed");
        }
        let build = register(
            &r,
            IntGaugeVec::new(
                opts(
                    "routewatch_build_info",
                    "Build information (version, git commit, rustc version); always 1.",
                ),
                &["version", "revision", "rustversion"],
            )?,
        );
        build
            .with_label_values(&[
                crate::build_info::VERSION,
                crate::build_info::REVISION,
                crate::build_info::rust_version(),
            ])
            .set(1);

        let registered = register(
            &r,
            IntGaugeVec::new(
                opts(
                    "routewatch_registered_prefixes",
                    "Registered prefixes by address family.",
                ),
                &["afi"],
            )?,
        );
        let (v4, v6) = prefixes.count_by_family();
        registered.with_label_values(&["ipv4"]).set(v4 as i64);
        registered.with_label_values(&["ipv6"]).set(v6 as i64);

        let folded_gauge = register(
            &r,
            IntGauge::with_opts(opts(
                "routewatch_prefix_series_folded",
                "Registered prefixes beyond max-prefix-series, aggregated into prefix=\"other\".",
            ))?,
        );
        let table = PrefixTable::new(prefixes, max_prefix_series);
        folded_gauge.set(table.folded() as i64);

        let routes_processed = register(
            &r,
            IntCounterVec::new(
                opts(
                    "routewatch_routes_processed_total",
                    "Route entries decoded from a feed (matched or not).",
                ),
                &["feed"],
            )?,
        );
        let routes_matched = register(
            &r,
            IntCounterVec::new(
                opts(
                    "routewatch_routes_matched_total",
                    "Route entries that matched a registered prefix.",
                ),
                &["feed"],
            )?,
        );
        let parse_errors = register(
            &r,
            IntCounterVec::new(
                opts(
                    "routewatch_parse_errors_total",
                    "Records that could not be decoded.",
                ),
                &["feed", "error"],
            )?,
        );
        let mrt_files = register(
            &r,
            IntCounterVec::new(
                opts(
                    "routewatch_mrt_files_processed_total",
                    "MRT files read, by outcome.",
                ),
                &["result"],
            )?,
        );
        let feed_last_received = register(
            &r,
            GaugeVec::new(
                opts(
                    "routewatch_feed_last_received_timestamp_seconds",
                    "Wall-clock time routewatch last received route entries from the feed (0 = never).",
                ),
                &["feed"],
            )?,
        );
        let feed_last_message = register(
            &r,
            GaugeVec::new(
                opts(
                    "routewatch_feed_last_message_timestamp_seconds",
                    "BGP time of the newest route read from a feed.",
                ),
                &["feed"],
            )?,
        );
        let sessions_down = register(
            &r,
            IntCounterVec::new(
                opts(
                    "routewatch_feed_sessions_down_total",
                    "Route sources whose BGP session went down (an MRT BGP4MP state change out of Established, a BMP Peer Down per RIB view of the peer); every route of each was withdrawn.",
                ),
                &["feed"],
            )?,
        );
        let feed_peers = register(
            &r,
            IntGaugeVec::new(
                opts(
                    "routewatch_feed_peers",
                    "Peers currently holding matched routes.",
                ),
                &["feed"],
            )?,
        );
        let tracked_routes = register(
            &r,
            IntGauge::with_opts(opts(
                "routewatch_tracked_routes",
                "Routes held in the engine ((peer, announced prefix, path id) entries).",
            ))?,
        );
        let anomaly_flaps = register(
            &r,
            IntCounterVec::new(
                opts(
                    "routewatch_anomaly_flaps_total",
                    "Anomaly instances that came back within the hold-down after losing their last carrier (one incident, not a new opening), by kind.",
                ),
                &["kind"],
            )?,
        );
        for k in AnomalyKind::ALL {
            anomaly_flaps.with_label_values(&[k.as_str()]);
        }
        let anomalies_resolving = register(
            &r,
            IntGauge::with_opts(opts(
                "routewatch_anomalies_resolving",
                "Open anomaly instances with no carrier left, waiting out the hold-down before they resolve.",
            ))?,
        );
        let holds_skipped = register(
            &r,
            prometheus::IntCounter::with_opts(opts(
                "routewatch_anomaly_holds_skipped_total",
                "Anomalies resolved at once, without a hold-down, because 100,000 were already held.",
            ))?,
        );
        let log_suppressed = register(
            &r,
            IntCounterVec::new(
                opts(
                    "routewatch_log_lines_suppressed_total",
                    "Log lines left out by a log budget (a flood of events or of malformed input), by source.",
                ),
                &["source"],
            )?,
        );
        log_suppressed.with_label_values(&["events"]);
        for res in MRT_FILE_RESULTS {
            mrt_files.with_label_values(&[res]);
        }
        let synced = vec![PrefixCounters::new(); prefixes.prefixes().len()];
        let mut metrics = Metrics {
            registry: r,
            prefixes: Arc::new(RwLock::new(table)),
            synced,
            feeds: Vec::new(),
            routes_processed,
            routes_matched,
            parse_errors,
            mrt_files,
            feed_last_message,
            feed_last_received,
            feed_peers,
            sessions_down,
            tracked_routes,
            anomaly_flaps,
            synced_flaps: [0; KINDS],
            anomalies_resolving,
            holds_skipped,
            log_suppressed,
            quiet: false,
            registered,
            folded: folded_gauge,
        };
        metrics.enable_feed(Feed::Mrt, &PARSE_ERROR_LABELS);
        Ok(metrics)
    }

    /// Moves the per-prefix series to `prefixes` (a configuration reload): the series of
    /// removed prefixes go, new prefixes get theirs. The values are filled in by the next
    /// [`Metrics::sync`] of every prefix (the engine marks them all dirty on a reload).
    pub fn set_registry(&mut self, prefixes: &PrefixRegistry, max_prefix_series: usize) {
        let table = PrefixTable::new(prefixes, max_prefix_series);
        self.folded.set(table.folded() as i64);
        let (v4, v6) = prefixes.count_by_family();
        self.registered.with_label_values(&["ipv4"]).set(v4 as i64);
        self.registered.with_label_values(&["ipv6"]).set(v6 as i64);
        self.synced = vec![PrefixCounters::new(); prefixes.prefixes().len()];
        *self
            .prefixes
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = table;
    }

    /// Sets `routewatch_rpki_roa_expiry_timestamp_seconds` of every registered prefix (indexed
    /// by prefix id; `None`: no covering ROA with an expiry time).
    pub fn set_roa_expiry(&self, earliest: &[Option<u64>]) {
        self.prefixes
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .set_roa_expiry(earliest);
    }

    /// Mirrors the engine's statistics of `dirty` prefixes, and the engine-wide gauges.
    /// With `batch`, also counts what the feed read for it (routes processed and matched,
    /// parse errors, last message).
    ///
    /// All of it happens under the per-prefix table's write lock, and a scrape renders
    /// everything under its read lock: a scrape sees a batch counted and applied, or neither.
    /// Every enabled feed's peer gauge is refreshed (a reload or a VRP change moves them too).
    pub fn sync(&mut self, engine: &Engine, dirty: &[PrefixId], batch: Option<(Feed, &Batch)>) {
        let mut table = self
            .prefixes
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((feed, b)) = batch {
            self.record_batch(feed.as_str(), b);
        }
        for &r in dirty {
            let new = engine.counters(r);
            let old = &mut self.synced[r as usize];
            if new != old {
                let before = old.to_stats();
                let mut after = new.to_stats();
                if self.quiet {
                    // Openings already counted before a restart are not counted again.
                    after.anomalies_opened = before.anomalies_opened;
                }
                table.apply(r, &before, &after);
                old.clone_from(new);
            }
        }
        self.tracked_routes.set(engine.tracked_routes() as i64);
        self.anomalies_resolving.set(engine.releasing() as i64);
        let skipped = engine.holds_skipped();
        if skipped > self.holds_skipped.get() {
            self.holds_skipped
                .inc_by(skipped - self.holds_skipped.get());
        }
        for (k, (&now, seen)) in engine
            .flaps()
            .iter()
            .zip(&mut self.synced_flaps)
            .enumerate()
        {
            if now > *seen {
                self.anomaly_flaps
                    .with_label_values(&[AnomalyKind::ALL[k].as_str()])
                    .inc_by(now - *seen);
                *seen = now;
            }
        }
        let peers = engine.peers_with_routes_by_feed();
        for &feed in &self.feeds {
            self.feed_peers
                .with_label_values(&[feed.as_str()])
                .set(peers[feed as usize] as i64);
        }
    }

    /// What each feed this process runs has done so far, as its metrics say (for the status
    /// page).
    pub fn feed_statuses(&self) -> Vec<FeedStatus> {
        let time = |g: &GaugeVec, name: &str| {
            let t = g.with_label_values(&[name]).get();
            (t > 0.0).then_some(t)
        };
        self.feeds
            .iter()
            .map(|&feed| {
                let name = feed.as_str();
                FeedStatus {
                    feed,
                    routes_processed: self.routes_processed.with_label_values(&[name]).get(),
                    routes_matched: self.routes_matched.with_label_values(&[name]).get(),
                    peers: self.feed_peers.with_label_values(&[name]).get().max(0) as u64,
                    last_received: time(&self.feed_last_received, name),
                    last_message: time(&self.feed_last_message, name),
                    mrt_files: (feed == Feed::Mrt).then(|| {
                        MRT_FILE_RESULTS.map(|r| self.mrt_files.with_label_values(&[r]).get())
                    }),
                }
            })
            .collect()
    }

    /// The registry every subsystem registers its own metrics on (the BMP listener, the event
    /// store, DNS, RPKI, reload); all of them are rendered by [`Exporter::render`].
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Adds `feed` to the feeds this process runs: its feed series exist from now on (with
    /// every value of `error_labels` pre-initialised) and are kept current.
    pub fn enable_feed(&mut self, feed: Feed, error_labels: &[&str]) {
        if !self.feeds.contains(&feed) {
            self.feeds.push(feed);
        }
        let name = feed.as_str();
        self.routes_processed.with_label_values(&[name]);
        self.routes_matched.with_label_values(&[name]);
        self.feed_last_message.with_label_values(&[name]);
        self.feed_last_received.with_label_values(&[name]);
        self.feed_peers.with_label_values(&[name]);
        self.sessions_down.with_label_values(&[name]);
        for e in error_labels {
            self.parse_errors.with_label_values(&[name, e]);
        }
    }

    /// Counts what a feed read for one batch.
    fn record_batch(&self, feed: &str, batch: &Batch) {
        self.routes_processed
            .with_label_values(&[feed])
            .inc_by(batch.processed);
        self.routes_matched
            .with_label_values(&[feed])
            .inc_by(batch.updates.len() as u64);
        for (label, n) in &batch.errors {
            self.parse_errors
                .with_label_values(&[feed, label])
                .inc_by(*n);
        }
        if !batch.sources_down.is_empty() {
            self.sessions_down
                .with_label_values(&[feed])
                .inc_by(batch.sources_down.len() as u64);
        }
        if batch.processed > 0 {
            self.feed_last_received
                .with_label_values(&[feed])
                .set(crate::clock::unix_now());
        }
        if let Some(t) = batch.last_timestamp {
            let g = self.feed_last_message.with_label_values(&[feed]);
            if t > g.get() {
                g.set(t);
            }
        }
    }

    /// While set, [`Metrics::sync`] does not count anomaly openings in
    /// `routewatch_anomalies_opened_total` (a re-read of data already processed before a
    /// restart: counting its openings again would make an `increase()` alert fire for incidents
    /// that are over).
    pub fn set_quiet(&mut self, quiet: bool) {
        self.quiet = quiet;
    }

    /// Counts `n` log lines left out by the log budget of `source`.
    pub fn record_log_suppressed(&self, source: &str, n: u64) {
        if n > 0 {
            self.log_suppressed.with_label_values(&[source]).inc_by(n);
        }
    }

    /// Counts a finished MRT file by outcome (one of [`MRT_FILE_RESULTS`]).
    pub fn record_mrt_file(&self, result: &str) {
        self.mrt_files.with_label_values(&[result]).inc();
    }

    /// A handle that renders the current exposition from any thread.
    pub fn exporter(&self) -> Exporter {
        Exporter {
            registry: self.registry.clone(),
            prefixes: self.prefixes.clone(),
        }
    }

    /// Renders the text exposition format.
    pub fn render(&self) -> String {
        self.exporter().render()
    }
}

/// Renders the exposition; cheap to clone, shared with the HTTP server.
#[derive(Clone)]
pub struct Exporter {
    registry: Registry,
    prefixes: Arc<RwLock<PrefixTable>>,
}

impl Exporter {
    /// The text exposition format: the process and feed metrics, then the per-prefix families.
    ///
    ///
    /// Rendered under the per-prefix table's read lock, which the engine's [`Metrics::sync`]
    /// holds for writing while it counts a batch and applies it to the table: the feed counters
    /// and the per-prefix series of one scrape agree (without it a scrape could show a route's
    /// visibility but not the route counted as matched).
    pub fn render(&self) -> String {
        let table = self
            .prefixes
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut buf = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            tracing::error!(error = %e, "metrics encoding failed");
        }
        let mut out = String::from_utf8(buf).unwrap_or_default();
        table.render(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Location;

    fn registry() -> PrefixRegistry {
        PrefixRegistry::new(vec![Location {
            name: "l".into(),
            provider: None,
            provider_asns: vec![],
            region: None,
            origin_asns: vec![1],
            prefixes: vec![
                "10.0.0.0/24".parse().unwrap(),
                "10.0.1.0/24".parse().unwrap(),
                "10.0.2.0/24".parse().unwrap(),
            ],
            max_length: None,
            max_length_v6: None,
            min_peers: 1,
            min_visibility: 0,
        }])
        .unwrap()
    }

    #[test]
    fn prefixes_beyond_the_cap_fold_into_other() {
        let m = Metrics::new(&registry(), 1).unwrap();
        let text = m.render();
        assert!(text.contains(
            r#"routewatch_prefix_visibility_peers{location="l",prefix="10.0.0.0/24"} 0"#
        ));
        assert!(
            text.contains(r#"routewatch_prefix_visibility_peers{location="l",prefix="other"} 0"#)
        );
        assert!(!text.contains("10.0.1.0/24"));
        assert!(text.contains("routewatch_prefix_series_folded 2"));
        // Known enums pre-initialised.
        assert!(text.contains(r#"routewatch_parse_errors_total{error="malformed",feed="mrt"} 0"#));
        assert!(text.contains(
            r#"routewatch_anomalies_active{kind="moas",location="l",prefix="10.0.0.0/24"} 0"#
        ));
        let build = format!(
            "routewatch_build_info{{revision=\"{}\",rustversion=\"{}\",version=\"{}\"}} 1\n",
            crate::build_info::REVISION,
            crate::build_info::rust_version(),
            env!("CARGO_PKG_VERSION")
        );
        assert!(text.contains(&build), "{build}");
    }
}
