//! BMP feed metrics: one method per observable event, each a counter or gauge change.
//!
//! Series labelled by `router` are created when a router's session starts and removed when it
//! ends, unless the router has a configured name (then its `session_up` stays, at 0, so an alert
//! can fire on it).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};

use super::framing::FrameError;
use super::message::MessageType;

/// Reasons a connection is refused at accept (the `reason` label): outside `allow`,
/// `max-sessions` reached, `max-sessions-per-address` reached for its address, or only the slots
/// reserved for configured routers left (the source is not a `[[bmp.router]]`).
pub const REJECT_REASONS: [&str; 4] = [
    "not_allowed",
    "too_many_sessions",
    "too_many_from_address",
    "reserved_for_configured",
];

/// Reasons a session ends (the `reason` label of `routewatch_bmp_sessions_closed_total`).
pub const CLOSE_REASONS: [&str; 10] = [
    "termination",
    "tcp_close",
    "read_error",
    "unsupported_version",
    "bad_length",
    "truncated",
    "shutdown",
    "initiation_timeout",
    "idle_timeout",
    "keepalive_timeout",
];

/// Every bounded `error` label the BMP feed can report in `routewatch_parse_errors_total`.
pub fn error_labels() -> Vec<&'static str> {
    let mut v: Vec<&'static str> = MessageType::ALL
        .iter()
        .map(|t| t.malformed_label())
        .collect();
    v.extend([
        "not_update",
        "malformed_update",
        crate::ingest::bgp::MALFORMED_MP_ATTRIBUTE,
        "malformed_as_path",
        crate::ingest::bgp::MALFORMED_OTC,
        super::message::MALFORMED_BGP_ROLE,
        "trailing_data",
        "unknown_peer_type",
        "too_many_peers",
    ]);
    v
}

/// The `reason` label of a framing error.
pub fn frame_error_reason(e: &FrameError) -> &'static str {
    e.label()
}

/// Handles of the BMP metrics (cheap to clone; shared by every session task).
#[derive(Clone)]
pub struct BmpMetrics {
    session_up: IntGaugeVec,
    peers_up: IntGaugeVec,
    messages: IntCounterVec,
    received_bytes: IntCounterVec,
    last_message: prometheus::GaugeVec,
    rejected: IntCounterVec,
    closed: IntCounterVec,
    oddities: IntCounterVec,
    log_suppressed: prometheus::IntCounter,
    /// Live sessions per `router` label: a label's series go only with its last session (a
    /// router reconnecting before its old session is torn down, or two with one sysName).
    live: Arc<Mutex<HashMap<String, usize>>>,
}

fn add<M: prometheus::core::Collector + Clone + 'static>(r: &Registry, m: M) -> M {
    if let Err(e) = r.register(Box::new(m.clone())) {
        tracing::error!(error = %e, "metric registration failed");
    }
    m
}

impl BmpMetrics {
    /// Creates and registers the BMP metrics; `named_routers` get their series from the start.
    pub fn new(r: &Registry, named_routers: &[String]) -> Result<BmpMetrics, prometheus::Error> {
        let m = BmpMetrics {
            session_up: add(
                r,
                IntGaugeVec::new(
                    Opts::new(
                        "routewatch_bmp_session_up",
                        "1 while the router's BMP session is up.",
                    ),
                    &["router"],
                )?,
            ),
            peers_up: add(
                r,
                IntGaugeVec::new(
                    Opts::new("routewatch_bmp_peers_up", "Monitored peers up, per router."),
                    &["router"],
                )?,
            ),
            messages: add(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "routewatch_bmp_messages_total",
                        "BMP messages received, by type.",
                    ),
                    &["router", "type"],
                )?,
            ),
            received_bytes: add(
                r,
                IntCounterVec::new(
                    Opts::new("routewatch_bmp_received_bytes_total", "BMP bytes received."),
                    &["router"],
                )?,
            ),
            last_message: add(
                r,
                prometheus::GaugeVec::new(
                    Opts::new(
                        "routewatch_bmp_last_message_timestamp_seconds",
                        "When the router's last BMP message arrived (wall clock; 0 = none yet).",
                    ),
                    &["router"],
                )?,
            ),
            rejected: add(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "routewatch_bmp_sessions_rejected_total",
                        "BMP connections refused at accept, by reason.",
                    ),
                    &["reason"],
                )?,
            ),
            closed: add(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "routewatch_bmp_sessions_closed_total",
                        "BMP sessions ended, by reason.",
                    ),
                    &["reason"],
                )?,
            ),
            oddities: add(
                r,
                IntCounterVec::new(
                    Opts::new(
                        "routewatch_bmp_protocol_oddities_total",
                        "BMP protocol oddities handled without losing data (or a sysName that \
                         is another router's configured name), by kind.",
                    ),
                    &["kind"],
                )?,
            ),
            log_suppressed: add(
                r,
                prometheus::IntCounter::new(
                    "routewatch_bmp_log_lines_suppressed_total",
                    "BMP log lines not written because a session (or the accept loop) exceeded \
                     its log budget; summarised in one line per interval.",
                )?,
            ),
            live: Arc::new(Mutex::new(HashMap::new())),
        };
        for kind in super::session::ANOMALY_KINDS {
            m.oddities.with_label_values(&[kind]);
        }
        for reason in REJECT_REASONS {
            m.rejected.with_label_values(&[reason]);
        }
        for reason in CLOSE_REASONS {
            m.closed.with_label_values(&[reason]);
        }
        for name in named_routers {
            m.router_series(name);
        }
        Ok(m)
    }

    fn router_series(&self, router: &str) {
        self.session_up.with_label_values(&[router]);
        self.peers_up.with_label_values(&[router]);
        self.received_bytes.with_label_values(&[router]);
        self.last_message.with_label_values(&[router]);
        for t in MessageType::ALL {
            self.messages.with_label_values(&[router, t.label()]);
        }
    }

    /// Protocol oddities of one kind since the last report.
    pub fn oddities(&self, kind: &str, n: u64) {
        self.oddities.with_label_values(&[kind]).inc_by(n);
    }

    /// Log lines left out.
    pub fn log_suppressed(&self, n: u64) {
        self.log_suppressed.inc_by(n);
    }

    /// A connection was refused.
    pub fn rejected(&self, reason: &str) {
        self.rejected.with_label_values(&[reason]).inc();
    }

    /// A router's session started (or its label became known).
    pub fn session_started(&self, router: &str) {
        if let Ok(mut live) = self.live.lock() {
            *live.entry(router.to_string()).or_insert(0) += 1;
        }
        self.router_series(router);
        self.session_up.with_label_values(&[router]).set(1);
    }

    /// Ends one session of `router`; true when it was the label's last.
    fn release(&self, router: &str) -> bool {
        let Ok(mut live) = self.live.lock() else {
            return true;
        };
        match live.get_mut(router) {
            Some(n) if *n > 1 => {
                *n -= 1;
                false
            }
            _ => {
                live.remove(router);
                true
            }
        }
    }

    /// Bytes read and messages handled since the last report.
    pub fn received(
        &self,
        router: &str,
        bytes: u64,
        messages: &[(MessageType, u64)],
        peers_up: usize,
    ) {
        self.received_bytes
            .with_label_values(&[router])
            .inc_by(bytes);
        for &(t, n) in messages {
            if n > 0 {
                self.messages
                    .with_label_values(&[router, t.label()])
                    .inc_by(n);
            }
        }
        self.peers_up
            .with_label_values(&[router])
            .set(peers_up as i64);
        if messages.iter().any(|&(_, n)| n > 0) {
            self.last_message
                .with_label_values(&[router])
                .set(crate::clock::unix_now());
        }
    }

    /// The session's label changed (the Initiation's sysName arrived): series move to `new`.
    pub fn relabeled(&self, old: &str, new: &str) {
        if self.release(old) {
            self.drop_series(old);
        }
        self.session_started(new);
    }

    /// A session ended; `keep` keeps the router's series (a configured router). Series shared
    /// with another live session of the same label stay.
    pub fn session_ended(&self, router: &str, reason: &str, keep: bool) {
        self.closed.with_label_values(&[reason]).inc();
        if !self.release(router) {
            return;
        }
        if keep {
            self.session_up.with_label_values(&[router]).set(0);
            self.peers_up.with_label_values(&[router]).set(0);
            return;
        }
        self.drop_series(router);
    }

    fn drop_series(&self, router: &str) {
        let _ = self.session_up.remove_label_values(&[router]);
        let _ = self.peers_up.remove_label_values(&[router]);
        let _ = self.received_bytes.remove_label_values(&[router]);
        let _ = self.last_message.remove_label_values(&[router]);
        for t in MessageType::ALL {
            let _ = self.messages.remove_label_values(&[router, t.label()]);
        }
    }
}
