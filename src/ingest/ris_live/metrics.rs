//! The RIS Live feed's own metrics (the common feed series, `feed="ris-live"`, are the
//! pipeline's): registered by the daemon on the process registry when `[ris-live]` is enabled.

use prometheus::{IntCounterVec, IntGauge, Registry};

use super::MessageType;
use crate::metrics::{opts, register};

/// Why a connection ended or could not be made (values of the `reason` label of
/// `routewatch_ris_live_reconnects_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The TCP connection (or the name lookup) failed or timed out.
    Connect,
    /// The TLS handshake failed (certificate not trusted, wrong name, ...).
    Tls,
    /// The WebSocket upgrade was refused or timed out.
    Handshake,
    /// The server closed the stream.
    Closed,
    /// A read or write failed on an open stream.
    Error,
    /// No message from a collector for `stale-seconds` on an open stream.
    Stale,
    /// The server closed the stream after a `ris_error` (for example a client too slow to keep
    /// up).
    RisError,
}

impl Reason {
    /// Every value.
    pub const ALL: [Reason; 7] = [
        Reason::Connect,
        Reason::Tls,
        Reason::Handshake,
        Reason::Closed,
        Reason::Error,
        Reason::Stale,
        Reason::RisError,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Connect => "connect",
            Reason::Tls => "tls",
            Reason::Handshake => "handshake",
            Reason::Closed => "closed",
            Reason::Error => "error",
            Reason::Stale => "stale",
            Reason::RisError => "ris_error",
        }
    }
}

/// Label values of `routewatch_ris_live_reconnects_total{reason}`.
pub fn reason_labels() -> Vec<&'static str> {
    Reason::ALL.iter().map(|r| r.as_str()).collect()
}

/// Label values of `routewatch_ris_live_messages_total{type}`.
pub fn message_type_labels() -> Vec<&'static str> {
    MessageType::ALL.iter().map(|t| t.as_str()).collect()
}

/// RIS Live metrics.
#[derive(Clone)]
pub struct RisLiveMetrics {
    connected: IntGauge,
    messages: IntCounterVec,
    reconnects: IntCounterVec,
    subscriptions: IntGauge,
}

impl RisLiveMetrics {
    /// Registers the metrics on `r`, every label value pre-initialised.
    pub fn new(r: &Registry) -> Result<Self, prometheus::Error> {
        let connected = register(
            r,
            IntGauge::with_opts(opts(
                "routewatch_ris_live_connected",
                "1 while the RIS Live WebSocket is open and subscribed, 0 otherwise.",
            ))?,
        );
        let messages = register(
            r,
            IntCounterVec::new(
                opts(
                    "routewatch_ris_live_messages_total",
                    "RIS Live messages received, by type.",
                ),
                &["type"],
            )?,
        );
        for t in message_type_labels() {
            messages.with_label_values(&[t]);
        }
        let reconnects = register(
            r,
            IntCounterVec::new(
                opts(
                    "routewatch_ris_live_reconnects_total",
                    "RIS Live connections that ended or could not be made (each followed by a reconnection after a backoff), by reason.",
                ),
                &["reason"],
            )?,
        );
        for reason in reason_labels() {
            reconnects.with_label_values(&[reason]);
        }
        let subscriptions = register(
            r,
            IntGauge::with_opts(opts(
                "routewatch_ris_live_subscriptions",
                "RIS Live subscriptions in force on the current connection (one per registered prefix, or one broad UPDATE subscription past max-prefix-subscriptions, plus peer states and the heartbeat).",
            ))?,
        );
        Ok(RisLiveMetrics {
            connected,
            messages,
            reconnects,
            subscriptions,
        })
    }

    /// Sets the connected gauge.
    pub fn set_connected(&self, up: bool) {
        self.connected.set(i64::from(up));
    }

    /// Counts a message.
    pub fn message(&self, t: MessageType) {
        self.messages.with_label_values(&[t.as_str()]).inc();
    }

    /// Counts a connection that ended or failed.
    pub fn reconnect(&self, reason: Reason) {
        self.reconnects.with_label_values(&[reason.as_str()]).inc();
    }

    /// Sets the number of subscriptions in force.
    pub fn set_subscriptions(&self, n: usize) {
        self.subscriptions.set(n as i64);
    }
}
