//! The RTR client's metrics, registered by the daemon on the process registry when `[rpki] rtr`
//! is configured. The `server` label takes the configured `host:port` strings only (at most
//! [`crate::config::MAX_RTR_SERVERS`]), every series created at start.

use prometheus::{IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Registry};

use super::pdu::TYPE_NAMES;
use crate::metrics::{opts, register};

/// Values of the `reason` label of `routewatch_rtr_errors_total`: the transport's, then the
/// client's ([`super::Close::reason`]).
pub const ERROR_REASONS: [&str; 15] = [
    "resolve",
    "connect",
    "closed",
    "io",
    "timeout",
    "withdrawal_of_unknown_record",
    "duplicate_announcement",
    "unsupported_pdu_type",
    "unexpected_version",
    "response_too_large",
    "corrupt_data",
    "server_error_report",
    "no_data",
    "version_downgrade",
    "no_common_version",
];

/// Values of the `kind` label of `routewatch_rtr_updates_total`.
pub const UPDATE_KINDS: [&str; 2] = ["reset", "serial"];

/// Values of the `kind` label of `routewatch_rtr_dropped_total`.
pub const DROPPED_KINDS: [&str; 2] = ["vrp", "aspa"];

/// RTR metrics.
#[derive(Clone)]
pub struct RtrMetrics {
    up: IntGaugeVec,
    serial: IntGaugeVec,
    session_id: IntGaugeVec,
    last_update: IntGaugeVec,
    version: IntGaugeVec,
    vrps: IntGauge,
    aspas: IntGauge,
    expired: IntGauge,
    updates: IntCounterVec,
    errors: IntCounterVec,
    expiries: IntCounter,
    failovers: IntCounter,
    pdus: IntCounterVec,
    dropped: IntCounterVec,
    log_suppressed: IntCounter,
    servers: std::sync::Arc<[String]>,
}

/// One configured RTR server as the metrics tell it (for the status page).
#[derive(Debug, Clone, PartialEq)]
pub struct RtrServerState {
    /// `host:port` as configured.
    pub server: String,
    /// The session is up.
    pub up: bool,
    /// The RTR version in use (0 before the first session).
    pub version: u8,
    /// The serial held from it.
    pub serial: u32,
    /// When its last End of Data was applied (`None`: never).
    pub last_update: Option<f64>,
}

impl RtrMetrics {
    /// Registers the metrics on `r` with series for each of `servers`.
    pub fn new(r: &Registry, servers: &[String]) -> Result<Self, prometheus::Error> {
        let per_server = |name: &str, help: &str| -> Result<IntGaugeVec, prometheus::Error> {
            let g = register(r, IntGaugeVec::new(opts(name, help), &["server"])?);
            for s in servers {
                g.with_label_values(&[s]);
            }
            Ok(g)
        };
        let up = per_server(
            "routewatch_rtr_session_up",
            "1 while an RTR session with the server is up (connected and answering), 0 otherwise.",
        )?;
        let serial = per_server(
            "routewatch_rtr_serial",
            "The serial number held from the server (its last End of Data).",
        )?;
        let session_id = per_server(
            "routewatch_rtr_session_id",
            "The server's RTR session id at its last End of Data.",
        )?;
        let last_update = per_server(
            "routewatch_rtr_last_update_timestamp_seconds",
            "Time of the last End of Data from the server (0 = never).",
        )?;
        let version = per_server(
            "routewatch_rtr_version",
            "The RTR protocol version in use with the server (0, 1 or 2; -1 before any answer).",
        )?;
        for s in servers {
            version.with_label_values(&[s]).set(-1);
        }
        let vrps = register(
            r,
            IntGauge::with_opts(opts(
                "routewatch_rtr_vrps",
                "VRPs held from RTR and in use (0 after the data expired).",
            ))?,
        );
        let aspas = register(
            r,
            IntGauge::with_opts(opts(
                "routewatch_rtr_aspas",
                "Customer ASes with an ASPA held from RTR and in use (0 after the data expired).",
            ))?,
        );
        let expired = register(
            r,
            IntGauge::with_opts(opts(
                "routewatch_rtr_data_expired",
                "1 when the RTR data expired (no successful update within the Expire Interval) and is no longer used, 0 otherwise.",
            ))?,
        );
        let updates = register(
            r,
            IntCounterVec::new(
                opts(
                    "routewatch_rtr_updates_total",
                    "RTR responses applied (End of Data), by server and kind (reset or serial).",
                ),
                &["server", "kind"],
            )?,
        );
        let errors = register(
            r,
            IntCounterVec::new(
                opts(
                    "routewatch_rtr_errors_total",
                    "RTR connections that failed or ended in error, by server and reason.",
                ),
                &["server", "reason"],
            )?,
        );
        let dropped = register(
            r,
            IntCounterVec::new(
                opts(
                    "routewatch_rtr_dropped_total",
                    "RTR announcements dropped because the table was full (VRPs or ASPA records).",
                ),
                &["kind"],
            )?,
        );
        for s in servers {
            for k in UPDATE_KINDS {
                updates.with_label_values(&[s, k]);
            }
            for reason in ERROR_REASONS {
                errors.with_label_values(&[s, reason]);
            }
        }
        for k in DROPPED_KINDS {
            dropped.with_label_values(&[k]);
        }
        let expiries = register(
            r,
            IntCounter::with_opts(opts(
                "routewatch_rtr_expiries_total",
                "Times the RTR data expired (RFC 8210 §6) and was dropped.",
            ))?,
        );
        let failovers = register(
            r,
            IntCounter::with_opts(opts(
                "routewatch_rtr_failovers_total",
                "Moves from one RTR server to another (after a failure, or back to the preferred one).",
            ))?,
        );
        let pdus = register(
            r,
            IntCounterVec::new(
                opts("routewatch_rtr_pdus_total", "RTR PDUs received, by type."),
                &["type"],
            )?,
        );
        for t in TYPE_NAMES {
            pdus.with_label_values(&[t]);
        }
        let log_suppressed = register(
            r,
            IntCounter::with_opts(opts(
                "routewatch_rtr_log_lines_suppressed_total",
                "RTR failure log lines not written (at most 10 per 60 s, then one summary line).",
            ))?,
        );
        Ok(RtrMetrics {
            servers: servers.to_vec().into(),
            up,
            serial,
            session_id,
            last_update,
            version,
            vrps,
            aspas,
            expired,
            updates,
            errors,
            expiries,
            failovers,
            pdus,
            dropped,
            log_suppressed,
        })
    }

    /// Every configured server's state, in configuration order.
    pub fn servers(&self) -> Vec<RtrServerState> {
        self.servers
            .iter()
            .map(|s| {
                let get = |g: &IntGaugeVec| g.with_label_values(&[s.as_str()]).get();
                let last = get(&self.last_update);
                RtrServerState {
                    server: s.clone(),
                    up: get(&self.up) == 1,
                    version: u8::try_from(get(&self.version)).unwrap_or(0),
                    serial: u32::try_from(get(&self.serial)).unwrap_or(0),
                    last_update: (last > 0).then_some(last as f64),
                }
            })
            .collect()
    }

    /// Whether the RTR data expired (and no End of Data came since).
    pub fn expired(&self) -> bool {
        self.expired.get() == 1
    }

    /// Session state with `server`.
    pub fn set_up(&self, server: &str, up: bool) {
        self.up.with_label_values(&[server]).set(i64::from(up));
    }

    /// The version in use with `server`.
    pub fn set_version(&self, server: &str, version: u8) {
        self.version
            .with_label_values(&[server])
            .set(i64::from(version));
    }

    /// An End of Data from `server` was applied.
    #[allow(clippy::too_many_arguments)]
    pub fn record_update(
        &self,
        server: &str,
        kind: &str,
        session_id: u16,
        serial: u32,
        now: i64,
        vrps: usize,
        aspas: usize,
    ) {
        self.updates.with_label_values(&[server, kind]).inc();
        self.serial
            .with_label_values(&[server])
            .set(i64::from(serial));
        self.session_id
            .with_label_values(&[server])
            .set(i64::from(session_id));
        self.last_update.with_label_values(&[server]).set(now);
        self.vrps.set(vrps as i64);
        self.aspas.set(aspas as i64);
        self.expired.set(0);
    }

    /// Announcements dropped at the table limits.
    pub fn record_dropped(&self, vrps: u64, aspas: u64) {
        self.dropped.with_label_values(&["vrp"]).inc_by(vrps);
        self.dropped.with_label_values(&["aspa"]).inc_by(aspas);
    }

    /// A connection to `server` failed or ended for `reason` (one of [`ERROR_REASONS`]).
    pub fn record_error(&self, server: &str, reason: &str) {
        self.errors.with_label_values(&[server, reason]).inc();
    }

    /// The data expired and was dropped.
    pub fn record_expiry(&self) {
        self.expiries.inc();
        self.expired.set(1);
        self.vrps.set(0);
        self.aspas.set(0);
    }

    /// A move to another server.
    pub fn record_failover(&self) {
        self.failovers.inc();
    }

    /// A PDU of type `name` received.
    pub fn record_pdu(&self, name: &str) {
        self.pdus.with_label_values(&[name]).inc();
    }

    /// A failure log line left out by the log budget.
    pub fn record_log_suppressed(&self) {
        self.log_suppressed.inc();
    }
}
