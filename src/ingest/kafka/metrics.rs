//! The Kafka feed's own metrics (the common feed series, `feed="kafka"`, are the pipeline's):
//! registered once by the daemon when a `[[kafka]]` consumer is configured, every series
//! labelled by `consumer` (the `[[kafka]]` name). The lag is per assigned partition
//! (`topic`, `partition`), bounded by `max-lag-partitions` per consumer; its series go when the
//! partition is revoked.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use prometheus::{GaugeVec, IntCounterVec, IntGaugeVec, Registry};

use crate::metrics::{opts, register};

/// `result` label values of `routewatch_kafka_commits_total`.
pub const COMMIT_RESULTS: [&str; 2] = ["ok", "failed"];
/// `event` label values of `routewatch_kafka_rebalances_total`.
pub const REBALANCE_EVENTS: [&str; 3] = ["assign", "revoke", "error"];

/// Handles of the Kafka metrics (cheap to clone).
#[derive(Clone)]
pub struct KafkaMetrics {
    messages: IntCounterVec,
    bytes: IntCounterVec,
    skipped: IntCounterVec,
    replayed: IntCounterVec,
    commits: IntCounterVec,
    rebalances: IntCounterVec,
    revoked_routers: IntCounterVec,
    routers: IntGaugeVec,
    partitions: IntGaugeVec,
    lag: IntGaugeVec,
    lag_dropped: IntCounterVec,
    last_message: GaugeVec,
    consumer_errors: IntCounterVec,
    /// The (consumer, topic, partition) with a lag series.
    lag_series: Arc<Mutex<BTreeSet<(String, String, i32)>>>,
}

impl KafkaMetrics {
    /// Registers the metrics on `r`; `consumers` are the `[[kafka]]` names, whose series start
    /// at zero.
    pub fn new(r: &Registry, consumers: &[String]) -> Result<Self, prometheus::Error> {
        let counter = |name: &str, help: &str, labels: &[&str]| {
            IntCounterVec::new(opts(name, help), labels).map(|m| register(r, m))
        };
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            IntGaugeVec::new(opts(name, help), labels).map(|m| register(r, m))
        };
        let m = KafkaMetrics {
            messages: counter(
                "routewatch_kafka_messages_total",
                "Kafka messages consumed (each one raw BMP message in OpenBMP's format).",
                &["consumer"],
            )?,
            bytes: counter(
                "routewatch_kafka_received_bytes_total",
                "Bytes of Kafka message values consumed.",
                &["consumer"],
            )?,
            skipped: counter(
                "routewatch_kafka_messages_skipped_total",
                "Kafka messages skipped because their OpenBMP header or BMP framing could not be used (the reason is the error label of routewatch_parse_errors_total{feed=\"kafka\"}).",
                &["consumer"],
            )?,
            replayed: counter(
                "routewatch_kafka_replayed_messages_total",
                "Kafka messages consumed again at offsets this process had already applied (a partition assigned back, a commit that did not complete): re-applied, which BMP state makes idempotent.",
                &["consumer"],
            )?,
            commits: counter(
                "routewatch_kafka_commits_total",
                "Offset commits (offsets whose routes reached the engine), by result.",
                &["consumer", "result"],
            )?,
            rebalances: counter(
                "routewatch_kafka_rebalances_total",
                "Consumer group rebalance events seen by this instance: partitions assigned, revoked, or a rebalance error.",
                &["consumer", "event"],
            )?,
            revoked_routers: counter(
                "routewatch_kafka_revoked_routers_total",
                "Routers dropped from this instance because the consumer group moved their partition away (their routes withdrawn here; another instance reads them now). Not a BMP session going down.",
                &["consumer"],
            )?,
            routers: gauge(
                "routewatch_kafka_routers",
                "Routers (OpenBMP collector and router address) with a BMP session on this instance.",
                &["consumer"],
            )?,
            partitions: gauge(
                "routewatch_kafka_assigned_partitions",
                "Partitions the consumer group currently assigns to this instance.",
                &["consumer"],
            )?,
            lag: gauge(
                "routewatch_kafka_consumer_lag",
                "Messages between a partition's end and this consumer's committed offset (librdkafka statistics), per assigned partition.",
                &["consumer", "topic", "partition"],
            )?,
            lag_dropped: counter(
                "routewatch_kafka_lag_series_dropped_total",
                "Lag readings not exported because the consumer already has max-lag-partitions lag series.",
                &["consumer"],
            )?,
            last_message: GaugeVec::new(
                opts(
                    "routewatch_kafka_last_message_timestamp_seconds",
                    "Wall-clock time the consumer last received a Kafka message (0 = never).",
                ),
                &["consumer"],
            )
            .map(|m| register(r, m))?,
            consumer_errors: counter(
                "routewatch_kafka_consumer_errors_total",
                "Errors the Kafka client reported (broker unreachable, authentication, fetch errors); it retries by itself.",
                &["consumer"],
            )?,
            lag_series: Arc::new(Mutex::new(BTreeSet::new())),
        };
        for c in consumers {
            let c = c.as_str();
            m.messages.with_label_values(&[c]);
            m.bytes.with_label_values(&[c]);
            m.skipped.with_label_values(&[c]);
            m.replayed.with_label_values(&[c]);
            for r in COMMIT_RESULTS {
                m.commits.with_label_values(&[c, r]);
            }
            for e in REBALANCE_EVENTS {
                m.rebalances.with_label_values(&[c, e]);
            }
            m.revoked_routers.with_label_values(&[c]);
            m.routers.with_label_values(&[c]);
            m.partitions.with_label_values(&[c]);
            m.lag_dropped.with_label_values(&[c]);
            m.last_message.with_label_values(&[c]);
            m.consumer_errors.with_label_values(&[c]);
        }
        Ok(m)
    }

    /// A message of `bytes` bytes consumed at wall-clock time `now`.
    pub fn message(&self, consumer: &str, bytes: usize, now: f64) {
        self.messages.with_label_values(&[consumer]).inc();
        self.bytes
            .with_label_values(&[consumer])
            .inc_by(bytes as u64);
        self.last_message.with_label_values(&[consumer]).set(now);
    }

    /// A message skipped.
    pub fn skipped(&self, consumer: &str) {
        self.skipped.with_label_values(&[consumer]).inc();
    }

    /// A message consumed again.
    pub fn replayed(&self, consumer: &str) {
        self.replayed.with_label_values(&[consumer]).inc();
    }

    /// A commit and its result.
    pub fn commit(&self, consumer: &str, ok: bool) {
        let r = if ok { "ok" } else { "failed" };
        self.commits.with_label_values(&[consumer, r]).inc();
    }

    /// A rebalance event (one of [`REBALANCE_EVENTS`]).
    pub fn rebalance(&self, consumer: &str, event: &str) {
        self.rebalances.with_label_values(&[consumer, event]).inc();
    }

    /// Routers dropped at a revocation.
    pub fn revoked(&self, consumer: &str, n: usize) {
        self.revoked_routers
            .with_label_values(&[consumer])
            .inc_by(n as u64);
    }

    /// Routers with a session now.
    pub fn set_routers(&self, consumer: &str, n: usize) {
        self.routers.with_label_values(&[consumer]).set(n as i64);
    }

    /// Partitions assigned now.
    pub fn set_partitions(&self, consumer: &str, n: usize) {
        self.partitions.with_label_values(&[consumer]).set(n as i64);
    }

    /// A client error.
    pub fn consumer_error(&self, consumer: &str) {
        self.consumer_errors.with_label_values(&[consumer]).inc();
    }

    /// A lag reading for an assigned partition; a new series only below `max` series for this
    /// consumer (else counted as dropped).
    pub fn set_lag(&self, consumer: &str, topic: &str, partition: i32, lag: i64, max: usize) {
        let mut series = self
            .lag_series
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let key = (consumer.to_string(), topic.to_string(), partition);
        if !series.contains(&key) {
            let have = series.iter().filter(|(c, _, _)| c == consumer).count();
            if have >= max {
                self.lag_dropped.with_label_values(&[consumer]).inc();
                return;
            }
            series.insert(key);
        }
        let p = partition.to_string();
        self.lag
            .with_label_values(&[consumer, topic, &p])
            .set(lag.max(0));
    }

    /// Removes the lag series of a partition no longer assigned.
    pub fn remove_lag(&self, consumer: &str, topic: &str, partition: i32) {
        let mut series = self
            .lag_series
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let key = (consumer.to_string(), topic.to_string(), partition);
        if series.remove(&key) {
            let p = partition.to_string();
            let _ = self.lag.remove_label_values(&[consumer, topic, &p]);
        }
    }
}
