//! Configuration reload of the daemon (SIGHUP, `POST /-/reload`).
//!
//! One reload at a time, on its own task: the configuration is read and validated, and the new
//! registry (with its trie) built, on a blocking thread while the engine keeps running; only the
//! swap itself ([`crate::engine::Engine::reload`]) runs on the engine task. On failure nothing
//! changes: the error (with file, line and key) is logged and returned, and
//! `routewatch_config_last_reload_successful` drops to 0 until a reload succeeds.
//!
//! A configuration without any location (an empty, cut or emptied file) fails like any invalid
//! one unless `allow-empty-registry = true`; a valid one that removes prefixes goes through with a
//! WARN saying how many.
//!
//! What a reload applies: the locations (prefixes, origins, upstreams, thresholds; from the main
//! file and its includes) and `[metrics] max-prefix-series`. Everything else is read at start
//! only; a reload that finds it changed applies the rest, reports the keys in
//! `restart_required` (response, log, `routewatch_config_restart_required`), and the running
//! values stay in force until a restart.

use std::path::PathBuf;
use std::sync::Arc;

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
use tracing::{error, info, warn};

use crate::config::Config;
use crate::engine::ReloadSummary;
use crate::registry::{Registry, SharedRegistry};

/// What started a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// SIGHUP (`systemctl reload`).
    Signal,
    /// `POST /-/reload`.
    Http,
}

/// A request for a reload; the outcome goes to `reply` when given.
#[derive(Debug)]
pub struct ReloadRequest {
    /// What asked.
    pub trigger: Trigger,
    /// Where the outcome goes.
    pub reply: Option<oneshot::Sender<ReloadOutcome>>,
}

/// The outcome of one reload, as `POST /-/reload` returns it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReloadOutcome {
    /// Whether the new configuration is in force.
    pub ok: bool,
    /// Why not (the configuration error: file, line, column, key and message).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Keys that changed in the file but only take effect after a restart.
    pub restart_required: Vec<&'static str>,
    /// Locations now in force.
    pub locations: usize,
    /// Registered prefixes now in force.
    pub prefixes: usize,
    /// What the engine did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<ReloadSummary>,
}

/// The engine side of a reload: swap to `registry`, with `max_prefix_series`, and answer.
#[derive(Debug)]
pub struct Swap {
    /// The new registry.
    pub registry: Arc<Registry>,
    /// `[metrics] max-prefix-series` of the new configuration.
    pub max_prefix_series: usize,
    /// `[rpki.peer-roles]` of the new configuration.
    pub peer_roles: Arc<crate::engine::RolePolicy>,
    /// The engine's answer.
    pub reply: oneshot::Sender<ReloadSummary>,
}

/// The metrics of configuration loads and reloads.
#[derive(Clone)]
pub struct ReloadMetrics {
    /// `routewatch_config_last_reload_successful`.
    pub successful: prometheus::IntGauge,
    /// `routewatch_config_last_reload_success_timestamp_seconds`.
    pub timestamp: prometheus::Gauge,
    /// `routewatch_config_reloads_total{result}`.
    pub total: prometheus::IntCounterVec,
    /// `routewatch_config_restart_required`.
    pub restart_required: prometheus::IntGauge,
}

impl ReloadMetrics {
    /// Registers the metrics on `r`.
    pub fn new(r: &prometheus::Registry) -> Result<Self, prometheus::Error> {
        use crate::metrics::{opts, register};
        use prometheus::{Gauge, IntCounterVec, IntGauge};
        let config_reload_successful = register(
            r,
            IntGauge::with_opts(opts(
                "routewatch_config_last_reload_successful",
                "1 when the last configuration load succeeded.",
            ))?,
        );
        let config_reload_timestamp = register(
            r,
            Gauge::with_opts(opts(
                "routewatch_config_last_reload_success_timestamp_seconds",
                "Time of the last successful configuration load.",
            ))?,
        );
        let config_reloads = register(
            r,
            IntCounterVec::new(
                opts(
                    "routewatch_config_reloads_total",
                    "Configuration reloads (SIGHUP, POST /-/reload), by result.",
                ),
                &["result"],
            )?,
        );
        for res in ["success", "failure"] {
            config_reloads.with_label_values(&[res]);
        }
        let config_restart_required = register(
            r,
            IntGauge::with_opts(opts(
                "routewatch_config_restart_required",
                "1 when the configuration file changes keys that only a restart applies.",
            ))?,
        );
        Ok(ReloadMetrics {
            successful: config_reload_successful,
            timestamp: config_reload_timestamp,
            total: config_reloads,
            restart_required: config_restart_required,
        })
    }

    /// Records a successful load at `now`.
    pub fn loaded(&self, now: f64) {
        self.successful.set(1);
        self.timestamp.set(now);
    }
}

/// The keys whose values differ between the running configuration and `new` and that only a
/// restart applies, by their names in the file.
pub fn restart_required(running: &Config, new: &Config) -> Vec<&'static str> {
    let mut keys = Vec::new();
    let mut check = |changed: bool, key: &'static str| {
        if changed {
            keys.push(key);
        }
    };
    let (h, n) = (&running.http, &new.http);
    check(h.listen != n.listen, "http.listen");
    check(
        h.max_connections != n.max_connections,
        "http.max-connections",
    );
    check(
        h.header_read_timeout_seconds != n.header_read_timeout_seconds,
        "http.header-read-timeout-seconds",
    );
    check(
        h.idle_timeout_seconds != n.idle_timeout_seconds,
        "http.idle-timeout-seconds",
    );
    check(
        h.max_api_requests != n.max_api_requests,
        "http.max-api-requests",
    );
    check(h.token_file != n.token_file, "http.token-file");
    check(h.tls != n.tls, "http.tls-cert");
    check(running.state_dir != new.state_dir, "state-dir");
    check(running.log.format != new.log.format, "log.format");
    check(running.log.level != new.log.level, "log.level");
    check(
        running.anomalies != new.anomalies,
        "anomalies.hold-down-seconds",
    );
    check(running.mrt.files != new.mrt.files, "mrt.files");
    check(running.notify != new.notify, "notify");
    // The RIS Live subscriptions follow the registry on a reload; the section itself (URL,
    // filters, timers, baseline) is read at start.
    check(running.ris_live != new.ris_live, "ris-live");
    // The consumers are built at start (brokers, topics, group, options).
    check(running.kafka != new.kafka, "kafka");
    check(running.mrt.watch_dir != new.mrt.watch_dir, "mrt.watch-dir");
    check(
        running.mrt.watch_interval_seconds != new.mrt.watch_interval_seconds,
        "mrt.watch-interval-seconds",
    );
    check(
        running.mrt.max_errors_per_file != new.mrt.max_errors_per_file,
        "mrt.max-errors-per-file",
    );
    check(
        running.mrt.max_decompression_ratio != new.mrt.max_decompression_ratio,
        "mrt.max-decompression-ratio",
    );
    check(
        running.mrt.incomplete_file_timeout_seconds != new.mrt.incomplete_file_timeout_seconds,
        "mrt.incomplete-file-timeout-seconds",
    );
    match (&running.bmp, &new.bmp) {
        (Some(a), Some(b)) => {
            check(a.listen != b.listen, "bmp.listen");
            check(a.allow != b.allow, "bmp.allow");
            check(a.max_sessions != b.max_sessions, "bmp.max-sessions");
            check(
                a.max_frame_bytes != b.max_frame_bytes,
                "bmp.max-frame-bytes",
            );
            check(
                a.initial_table_timeout_seconds != b.initial_table_timeout_seconds,
                "bmp.initial-table-timeout-seconds",
            );
            check(
                a.max_sessions_per_address != b.max_sessions_per_address,
                "bmp.max-sessions-per-address",
            );
            check(
                a.initiation_timeout_seconds != b.initiation_timeout_seconds,
                "bmp.initiation-timeout-seconds",
            );
            check(
                a.idle_timeout_seconds != b.idle_timeout_seconds,
                "bmp.idle-timeout-seconds",
            );
            check(
                a.tcp_keepalive_seconds != b.tcp_keepalive_seconds,
                "bmp.tcp-keepalive-seconds",
            );
            check(
                a.max_peers_per_router != b.max_peers_per_router,
                "bmp.max-peers-per-router",
            );
            check(a.routers != b.routers, "bmp.router");
        }
        (a, b) => check(a.is_some() != b.is_some(), "bmp"),
    }
    check(running.rpki.vrp_file != new.rpki.vrp_file, "rpki.vrp-file");
    check(
        running.rpki.reload_interval_seconds != new.rpki.reload_interval_seconds,
        "rpki.reload-interval-seconds",
    );
    check(running.rpki.rtr != new.rpki.rtr, "rpki.rtr");
    check(
        running.rpki.roa_expiry_warning_days != new.rpki.roa_expiry_warning_days,
        "rpki.roa-expiry-warning-days",
    );
    check(running.events != new.events, "events");
    check(running.dns != new.dns, "dns");
    keys
}

/// Reads and checks the configuration at `path` and builds its registry (blocking).
fn load(path: &std::path::Path) -> Result<(Config, Arc<Registry>), String> {
    let config = Config::load(path).map_err(|e| e.to_string())?;
    // Config::load built and validated the registry.
    let registry = config.shared_registry();
    Ok((config, registry))
}

/// Serves reload requests until the channel closes: `running` is the configuration the process
/// started with (what the restart-only keys are compared with).
pub async fn reload_task(
    path: PathBuf,
    running: Arc<Config>,
    mut requests: mpsc::Receiver<ReloadRequest>,
    swaps: mpsc::Sender<Swap>,
    shared: SharedRegistry,
    metrics: ReloadMetrics,
) {
    while let Some(req) = requests.recv().await {
        crate::systemd::reloading();
        info!(trigger = ?req.trigger, file = %path.display(), "reloading the configuration");
        let outcome = reload_once(&path, &running, &swaps, &shared, &metrics).await;
        let current = shared.current();
        crate::systemd::ready(&format!(
            "{} locations, {} prefixes",
            current.locations().len(),
            current.prefixes().len()
        ));
        if let Some(reply) = req.reply {
            let _ = reply.send(outcome);
        }
    }
}

async fn reload_once(
    path: &std::path::Path,
    running: &Config,
    swaps: &mpsc::Sender<Swap>,
    shared: &SharedRegistry,
    metrics: &ReloadMetrics,
) -> ReloadOutcome {
    let p = path.to_path_buf();
    let loaded = tokio::task::spawn_blocking(move || load(&p))
        .await
        .unwrap_or_else(|e| Err(format!("the reload thread failed: {e}")));
    let failed = |error: String| {
        error!(error = %error, "configuration reload failed; the previous configuration stays in force");
        metrics.successful.set(0);
        metrics.total.with_label_values(&["failure"]).inc();
        let current = shared.current();
        ReloadOutcome {
            ok: false,
            error: Some(error),
            restart_required: Vec::new(),
            locations: current.locations().len(),
            prefixes: current.prefixes().len(),
            summary: None,
        }
    };
    let (config, registry) = match loaded {
        Ok(x) => x,
        Err(e) => return failed(e),
    };
    let restart = restart_required(running, &config);
    let (tx, rx) = oneshot::channel();
    let swap = Swap {
        registry: registry.clone(),
        max_prefix_series: config.metrics.max_prefix_series,
        peer_roles: Arc::new(config.rpki.peer_roles.clone()),
        reply: tx,
    };
    if swaps.send(swap).await.is_err() {
        return failed("the engine is shutting down".into());
    }
    let Ok(summary) = rx.await else {
        return failed("the engine is shutting down".into());
    };
    // Feeds match with the new registry from their next file / read on; what they matched with
    // the old one meanwhile is matched again by the engine.
    shared.replace(registry.clone());
    metrics.successful.set(1);
    metrics.timestamp.set(crate::clock::unix_now());
    metrics.total.with_label_values(&["success"]).inc();
    metrics.restart_required.set(i64::from(!restart.is_empty()));
    info!(
        locations = registry.locations().len(),
        prefixes = registry.prefixes().len(),
        added = summary.prefixes_added,
        removed = summary.prefixes_removed,
        routes_kept = summary.routes_kept,
        routes_dropped = summary.routes_dropped,
        anomalies_opened = summary.anomalies_opened,
        anomalies_resolved = summary.anomalies_resolved,
        "configuration reloaded"
    );
    if summary.prefixes_removed > 0 {
        // A cut file that still parses is valid and goes through: say what it cost.
        let before = summary.prefixes_kept + summary.prefixes_removed;
        warn!(
            "the reload removes {} of the {before} registered prefixes (their routes are dropped and their anomalies resolved); {} prefixes are registered now",
            summary.prefixes_removed,
            registry.prefixes().len()
        );
    }
    if !restart.is_empty() {
        warn!(keys = %restart.join(", "), "configuration keys changed that only take effect after a restart; their running values stay in force");
    }
    ReloadOutcome {
        ok: true,
        error: None,
        restart_required: restart,
        locations: registry.locations().len(),
        prefixes: registry.prefixes().len(),
        summary: Some(summary),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn load(dir: &std::path::Path, name: &str, extra: &str) -> Config {
        let path = dir.join(name);
        let text = format!(
            "state-dir = \"{}\"\n{extra}\n[[location]]\nname = \"l\"\norigin-asns = [64496]\n\
             prefixes = [\"203.0.113.0/24\"]\n",
            dir.join("state").display()
        );
        std::fs::write(&path, text).unwrap();
        Config::load(&path).unwrap()
    }

    /// Every restart-only key that changed is named, the new [http] and [mrt] ones included.
    #[test]
    fn restart_only_keys_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let running = load(dir.path(), "a.toml", "");
        assert!(restart_required(&running, &running).is_empty());
        let new = load(
            dir.path(),
            "b.toml",
            "[http]\nmax-connections = 100\nidle-timeout-seconds = 5\n\
             [mrt]\nmax-errors-per-file = 7\n[anomalies]\nhold-down-seconds = 0\n",
        );
        assert_eq!(
            restart_required(&running, &new),
            vec![
                "http.max-connections",
                "http.idle-timeout-seconds",
                "anomalies.hold-down-seconds",
                "mrt.max-errors-per-file",
            ]
        );
        let notify = load(
            dir.path(),
            "c.toml",
            "[[notify]]\nname = \"ops\"\ntype = \"webhook\"\nurl = \"https://x/\"\n",
        );
        assert_eq!(restart_required(&running, &notify), vec!["notify"]);
    }
}
