//! The VRP file's metrics: VRPs loaded, loads by result, the time of the last good load.

use prometheus::{Gauge, IntCounterVec, IntGauge, Registry};

use crate::metrics::{opts, register};

/// RPKI metrics, registered on the process's registry.
#[derive(Clone)]
pub struct RpkiMetrics {
    vrps: IntGauge,
    loads: IntCounterVec,
    last_load: Gauge,
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
        Ok(RpkiMetrics {
            vrps: rpki_vrps,
            loads: rpki_loads,
            last_load: rpki_last_load,
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
}
