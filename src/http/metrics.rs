//! HTTP listener metrics: open connections, connections refused or closed by a limit, and
//! requests refused (API saturated, missing or wrong token).

use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// The `reason` values of `routewatch_http_connections_rejected_total`.
pub const CONNECTION_REASONS: [&str; 6] = [
    "max_connections",
    "evicted",
    "header_timeout",
    "idle_timeout",
    "tls_handshake",
    "accept_error",
];

/// The `reason` values of `routewatch_http_requests_rejected_total`.
pub const REQUEST_REASONS: [&str; 3] = ["api_busy", "unauthorized", "forbidden"];

/// Handles of the HTTP metrics (cheap to clone).
#[derive(Clone)]
pub struct HttpMetrics {
    /// `routewatch_http_connections_open`.
    pub open: IntGauge,
    /// `routewatch_http_connections_accepted_total`.
    pub accepted: IntCounter,
    connections_rejected: IntCounterVec,
    requests_rejected: IntCounterVec,
}

impl HttpMetrics {
    /// Registers the HTTP metrics (every `reason` series present from the start, at 0).
    pub fn new(registry: &Registry) -> Result<HttpMetrics, prometheus::Error> {
        let open = IntGauge::new(
            "routewatch_http_connections_open",
            "HTTP connections open now (capped by [http] max-connections).",
        )?;
        let accepted = IntCounter::new(
            "routewatch_http_connections_accepted_total",
            "HTTP connections accepted.",
        )?;
        let connections_rejected = IntCounterVec::new(
            Opts::new(
                "routewatch_http_connections_rejected_total",
                "HTTP connections refused or closed by a limit: max_connections (at the cap, \
                 every connection busy), evicted (longest-idle closed to make room at the cap), \
                 header_timeout, idle_timeout, tls_handshake (failed or too slow), \
                 accept_error (accept failed, e.g. out of file descriptors).",
            ),
            &["reason"],
        )?;
        let requests_rejected = IntCounterVec::new(
            Opts::new(
                "routewatch_http_requests_rejected_total",
                "HTTP requests refused (the API and the status page): api_busy (503, [http] \
                 max-api-requests reached), unauthorized (401, missing or wrong token), \
                 forbidden (403, reload from a non-loopback address without tokens \
                 configured).",
            ),
            &["reason"],
        )?;
        registry.register(Box::new(open.clone()))?;
        registry.register(Box::new(accepted.clone()))?;
        registry.register(Box::new(connections_rejected.clone()))?;
        registry.register(Box::new(requests_rejected.clone()))?;
        for r in CONNECTION_REASONS {
            connections_rejected.with_label_values(&[r]);
        }
        for r in REQUEST_REASONS {
            requests_rejected.with_label_values(&[r]);
        }
        Ok(HttpMetrics {
            open,
            accepted,
            connections_rejected,
            requests_rejected,
        })
    }

    /// A connection refused or closed for `reason` (one of [`CONNECTION_REASONS`]).
    pub fn connection_rejected(&self, reason: &str) {
        self.connections_rejected.with_label_values(&[reason]).inc();
    }

    /// A request refused for `reason` (one of [`REQUEST_REASONS`]).
    pub fn request_rejected(&self, reason: &str) {
        self.requests_rejected.with_label_values(&[reason]).inc();
    }
}
