//! The VRP file task: loads the file (VRPs and ASPAs) at start, whenever it changes (polled)
//! and on SIGHUP, on a blocking thread, and hands each new load to the engine task with what
//! changed since the previous one (computed on that thread too), so the engine re-validates
//! only the routes the change touches and the watch compares only what changed (the order
//! relative to the MRT baseline does not matter).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch, Notify};
use tracing::{error, info};

use super::stopped;
use crate::rpki::{RpkiData, VrpFile};

/// Which RPKI source an update comes from; the engine task keeps each source's latest data and
/// validates against their union.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RpkiSource {
    /// `[rpki] vrp-file`.
    File,
    /// `[rpki] rtr`: the RTR cache currently in use (one at a time, with failover).
    Rtr,
}

/// A message from an RPKI source task to the engine task.
#[derive(Debug, Clone)]
pub enum RpkiUpdate {
    /// New data from `source`. `changed`: what differs from that source's previous data
    /// (`None`: unknown, every route is re-validated).
    Data {
        /// The source.
        source: RpkiSource,
        /// Its complete current data.
        data: Arc<crate::rpki::RpkiData>,
        /// What changed since its previous data.
        changed: Option<crate::rpki::RpkiDelta>,
    },
    /// The source could not deliver (a file that does not parse): its previous data stays.
    Failed {
        /// The source.
        source: RpkiSource,
    },
    /// The source's data expired (RTR: no successful refresh within the Expire Interval, RFC
    /// 8210 §6): it is dropped, and routes are validated against the other sources only.
    Expired {
        /// The source.
        source: RpkiSource,
    },
}

/// Loads `file` at start and whenever it changes (checked every `interval_seconds`) or `hup`
/// is notified.
pub async fn rpki_task(
    file: PathBuf,
    interval_seconds: u64,
    tx: mpsc::Sender<RpkiUpdate>,
    hup: Arc<Notify>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut vrp_file = VrpFile::new(file);
    let mut previous: Option<Arc<RpkiData>> = None;
    let mut first = true;
    let mut tick = tokio::time::interval(Duration::from_secs(interval_seconds));
    loop {
        let forced = tokio::select! {
            _ = tick.tick() => false,
            _ = hup.notified() => true,
            _ = stopped(&mut shutdown) => return,
        };
        if !first && !forced && !vrp_file.changed().unwrap_or(true) {
            continue;
        }
        first = false;
        let before = previous.clone();
        let (back, loaded) = match tokio::task::spawn_blocking(move || {
            let r = vrp_file.load().map(|(data, report)| {
                // The delta against the previous load (first load: none, every route is
                // validated), here rather than on the engine task.
                let changed = before.map(|old| old.diff(&data));
                (Arc::new(data), report, changed)
            });
            (vrp_file, r)
        })
        .await
        {
            Ok(x) => x,
            Err(_) => return,
        };
        vrp_file = back;
        let msg = match loaded {
            Ok((data, report, changed)) => {
                info!(
                    file = %vrp_file.path.display(),
                    vrps = report.loaded,
                    skipped = report.skipped_total(),
                    aspas = report.aspas_loaded,
                    aspas_skipped = report.aspa_skipped_total(),
                    vrps_changed = changed.as_ref().map(|c| c.vrp_prefixes.len()),
                    aspas_changed = changed.as_ref().map(|c| c.aspa_customers.len()),
                    "VRP file loaded"
                );
                if !report.examples.is_empty() {
                    info!(file = %vrp_file.path.display(), skipped = ?report.examples, "VRP file: entries skipped");
                }
                previous = Some(data.clone());
                RpkiUpdate::Data {
                    source: RpkiSource::File,
                    data,
                    changed,
                }
            }
            Err(e) => {
                error!(file = %vrp_file.path.display(), error = %e, "VRP file could not be loaded; keeping the previous set");
                RpkiUpdate::Failed {
                    source: RpkiSource::File,
                }
            }
        };
        if tx.send(msg).await.is_err() {
            return;
        }
    }
}
