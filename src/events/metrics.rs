//! Prometheus mirror of the event store's counters, synced periodically by the daemon.

use std::collections::HashMap;

use prometheus::{IntCounterVec, IntGauge, Opts, Registry};

use super::store::{DropReason, StoreCounters, WriteErrorReason};

/// Handles of the event store metrics, with the values last mirrored.
pub struct EventStoreMetrics {
    written: prometheus::IntCounter,
    errors: IntCounterVec,
    dropped: IntCounterVec,
    duplicates: prometheus::IntCounter,
    pending: IntGauge,
    rows: IntGauge,
    last: HashMap<&'static str, u64>,
}

fn add<M: prometheus::core::Collector + Clone + 'static>(r: &Registry, m: M) -> M {
    if let Err(e) = r.register(Box::new(m.clone())) {
        tracing::error!(error = %e, "metric registration failed");
    }
    m
}

impl EventStoreMetrics {
    /// Creates and registers the metrics (every reason label present from the start).
    pub fn new(r: &Registry) -> Result<Self, prometheus::Error> {
        let m = EventStoreMetrics {
            written: add(
                r,
                prometheus::IntCounter::with_opts(Opts::new(
                    "routewatch_events_written_total",
                    "Events committed to the event store.",
                ))?,
            ),
            errors: add(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "routewatch_event_store_errors_total",
                        "Event store write failures, by reason (the batch is kept and retried).",
                    ),
                    &["reason"],
                )?,
            ),
            dropped: add(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "routewatch_events_dropped_total",
                        "Events dropped before being stored, by reason.",
                    ),
                    &["reason"],
                )?,
            ),
            duplicates: add(
                r,
                prometheus::IntCounter::with_opts(Opts::new(
                    "routewatch_events_duplicates_total",
                    "Events not stored again because the same event is stored already (a restart or a re-read file).",
                ))?,
            ),
            pending: add(
                r,
                IntGauge::with_opts(Opts::new(
                    "routewatch_events_pending",
                    "Events waiting to be committed.",
                ))?,
            ),
            rows: add(
                r,
                IntGauge::with_opts(Opts::new(
                    "routewatch_events_stored",
                    "Events held in the event store.",
                ))?,
            ),
            last: HashMap::new(),
        };
        for reason in WriteErrorReason::ALL {
            m.errors.with_label_values(&[reason.as_str()]);
        }
        for reason in DropReason::ALL {
            m.dropped.with_label_values(&[reason.as_str()]);
        }
        Ok(m)
    }

    fn delta(&mut self, key: &'static str, now: u64) -> u64 {
        let before = self.last.insert(key, now).unwrap_or(0);
        now.saturating_sub(before)
    }

    /// Mirrors the counters' current values.
    pub fn sync(&mut self, c: &StoreCounters) {
        let d = self.delta("written", c.events_written());
        self.written.inc_by(d);
        for reason in WriteErrorReason::ALL {
            let d = self.delta(reason.as_str(), c.write_errors(reason));
            self.errors.with_label_values(&[reason.as_str()]).inc_by(d);
        }
        for reason in DropReason::ALL {
            let key = match reason.as_str() {
                "queue_full" => "dropped_queue_full",
                "backlog_full" => "dropped_backlog_full",
                _ => "dropped_closed",
            };
            let d = self.delta(key, c.dropped(reason));
            self.dropped.with_label_values(&[reason.as_str()]).inc_by(d);
        }
        let d = self.delta("duplicates", c.duplicates());
        self.duplicates.inc_by(d);
        self.pending.set(c.events_pending() as i64);
        self.rows.set(c.rows() as i64);
    }
}
