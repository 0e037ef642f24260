//! The RPKI metrics: VRPs and ASPAs loaded, loads of the VRP file by result, the time of the
//! last good load, and the ROA/ASPA watch's events.

use prometheus::{Gauge, IntCounter, IntCounterVec, IntGauge, Registry};

use super::watch::WatchKind;

use crate::metrics::{opts, register};

/// RPKI metrics, registered on the process's registry.
#[derive(Clone)]
pub struct RpkiMetrics {
    vrps: IntGauge,
    aspas: IntGauge,
    loads: IntCounterVec,
    last_load: Gauge,
    watch_events: IntCounterVec,
    warnings_dropped: IntCounter,
}

impl RpkiMetrics {
    /// Registers the metrics on `r`.
    pub fn new(r: &Registry) -> Result<Self, prometheus::Error> {
        let rpki_vrps = register(
            r,
            IntGauge::with_opts(opts(
                "routewatch_rpki_vrps",
                "Validated ROA payloads loaded (0: RPKI validation off or no file loaded).",
            ))?,
        );
        let rpki_loads = register(
            r,
            IntCounterVec::new(
                opts(
                    "routewatch_rpki_loads_total",
                    "Loads of the VRP file, by result.",
                ),
                &["result"],
            )?,
        );
        for res in ["ok", "error"] {
            rpki_loads.with_label_values(&[res]);
        }
        let rpki_last_load = register(
            r,
            Gauge::with_opts(opts(
                "routewatch_rpki_last_load_success_timestamp_seconds",
                "Time of the last successful load of the VRP file (0 = never).",
            ))?,
        );
        let aspas = register(
            r,
            IntGauge::with_opts(opts(
                "routewatch_rpki_aspas",
                "Customer ASes with an ASPA in the RPKI data in use (0: none loaded; ASPA path verification off).",
            ))?,
        );
        let watch_events = register(
            r,
            IntCounterVec::new(
                opts(
                    "routewatch_rpki_watch_events_total",
                    "RPKI watch events (ROAs of registered prefixes, ASPAs of registered origins), by kind.",
                ),
                &["kind"],
            )?,
        );
        for k in WatchKind::ALL {
            watch_events.with_label_values(&[k.as_str()]);
        }
        let warnings_dropped = register(
            r,
            IntCounter::with_opts(opts(
                "routewatch_rpki_watch_warnings_dropped_total",
                "Expiring covering ROAs not warned about because the set of warned ROAs was full (per check).",
            ))?,
        );
        Ok(RpkiMetrics {
            vrps: rpki_vrps,
            aspas,
            loads: rpki_loads,
            last_load: rpki_last_load,
            watch_events,
            warnings_dropped,
        })
    }

    /// The VRPs loaded, when the last successful load was (`None`: never), and the failed
    /// loads so far (for the status page).
    pub fn state(&self) -> (u64, Option<f64>, u64) {
        let last = self.last_load.get();
        (
            self.vrps.get().max(0) as u64,
            (last > 0.0).then_some(last),
            self.loads.with_label_values(&["error"]).get(),
        )
    }

    /// Records a load of the VRP file: `Some(n)` loaded `n` VRPs, `None` failed (the previous
    /// set stays in use).
    pub fn record_load(&self, loaded: Option<usize>, now: f64) {
        match loaded {
            Some(n) => {
                self.loads.with_label_values(&["ok"]).inc();
                self.vrps.set(n as i64);
                self.last_load.set(now);
            }
            None => self.loads.with_label_values(&["error"]).inc(),
        }
    }

    /// The ASPAs in use (customer ASes with a record).
    pub fn set_aspas(&self, n: usize) {
        self.aspas.set(n as i64);
    }

    /// Counts one watch event of `kind`.
    pub fn watch_event(&self, kind: WatchKind) {
        self.watch_events.with_label_values(&[kind.as_str()]).inc();
    }

    /// Mirrors the watch's count of expiring ROAs not warned about (a running total).
    pub fn sync_warnings_dropped(&self, total: u64) {
        let now = self.warnings_dropped.get();
        if total > now {
            self.warnings_dropped.inc_by(total - now);
        }
    }
}
