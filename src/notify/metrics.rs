//! Notification metrics, per target: sent, failed by reason, dropped (queue full), retries and
//! the queue depth. Every series of a configured target exists from the start (at 0).

use prometheus::{IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Registry};

use super::sender::Reason;
use crate::metrics::{opts, register};

/// The notification metrics, registered on the process's registry.
pub struct NotifyMetrics {
    sent: IntCounterVec,
    failed: IntCounterVec,
    dropped: IntCounterVec,
    retries: IntCounterVec,
    depth: IntGaugeVec,
}

/// One target's series.
#[derive(Clone)]
pub struct TargetMetrics {
    /// Notifications the target accepted (2xx).
    pub sent: IntCounter,
    /// Notifications given up on, by reason ([`Reason::ALL`] order).
    failed: Vec<IntCounter>,
    /// Notifications dropped because the target's queue was full.
    pub dropped: IntCounter,
    /// Attempts after the first.
    pub retries: IntCounter,
    /// Notifications waiting in the target's queue.
    pub depth: IntGauge,
}

impl TargetMetrics {
    /// Counts a notification given up on for `reason`.
    pub fn failed(&self, reason: Reason) {
        if let Some(c) = self.failed.get(reason as usize) {
            c.inc();
        }
    }
}

impl NotifyMetrics {
    /// Registers the metrics on `r`, with every series of `targets` at 0.
    pub fn new(r: &Registry, targets: &[&str]) -> Result<Self, prometheus::Error> {
        let m = NotifyMetrics {
            sent: register(
                r,
                IntCounterVec::new(
                    opts(
                        "routewatch_notify_sent_total",
                        "Notifications the target accepted (HTTP 2xx).",
                    ),
                    &["target"],
                )?,
            ),
            failed: register(
                r,
                IntCounterVec::new(
                    opts(
                        "routewatch_notify_failed_total",
                        "Notifications given up on after their attempts, by the last attempt's \
                         failure (timeout, connect, tls, http_4xx, http_5xx, rate_limited, \
                         protocol).",
                    ),
                    &["target", "reason"],
                )?,
            ),
            dropped: register(
                r,
                IntCounterVec::new(
                    opts(
                        "routewatch_notify_dropped_total",
                        "Notifications dropped because the target's queue was full.",
                    ),
                    &["target"],
                )?,
            ),
            retries: register(
                r,
                IntCounterVec::new(
                    opts(
                        "routewatch_notify_retries_total",
                        "Notification attempts after the first (backoff, Retry-After).",
                    ),
                    &["target"],
                )?,
            ),
            depth: register(
                r,
                IntGaugeVec::new(
                    opts(
                        "routewatch_notify_queue_depth",
                        "Notifications waiting in the target's queue.",
                    ),
                    &["target"],
                )?,
            ),
        };
        for t in targets {
            m.target(t);
        }
        Ok(m)
    }

    /// The series of target `name`.
    pub fn target(&self, name: &str) -> TargetMetrics {
        TargetMetrics {
            sent: self.sent.with_label_values(&[name]),
            failed: Reason::ALL
                .iter()
                .map(|r| self.failed.with_label_values(&[name, r.as_str()]))
                .collect(),
            dropped: self.dropped.with_label_values(&[name]),
            retries: self.retries.with_label_values(&[name]),
            depth: self.depth.with_label_values(&[name]),
        }
    }
}
