//! `routewatch replay`: the one-shot command. RIB dumps first, then update files in time order,
//! through the same [`Pipeline`] as the daemon, under the same `[mrt]` bounds (error budget,
//! decompression ratio); returns the [`ReplayReport`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tracing::info;

use crate::clock::unix_now;
use crate::config::Config;
use crate::error::Error;
use crate::ingest::mrt::{self, Batch, FileReport};
use crate::model::Feed;
use crate::pipeline::Pipeline;
use crate::report::ReplayReport;

/// Batches queued between a replay's reader thread and the engine.
const REPLAY_QUEUE: usize = 4;

/// What a replay reads and what its report holds.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// The configuration file (only the registry, metric and RPKI settings are used).
    pub config: PathBuf,
    /// The MRT files, in any order.
    pub files: Vec<PathBuf>,
    /// Where to write the final Prometheus exposition, if anywhere.
    pub metrics_out: Option<PathBuf>,
    /// The MRT decoder.
    pub decoder: mrt::Decoder,
    /// What the report holds.
    pub content: ReportContent,
}

impl ReplayOptions {
    /// A full report of `files` with the default decoder.
    pub fn new(config: impl Into<PathBuf>, files: &[PathBuf]) -> Self {
        ReplayOptions {
            config: config.into(),
            files: files.to_vec(),
            metrics_out: None,
            decoder: mrt::Decoder::default(),
            content: ReportContent::Full,
        }
    }

    /// With this decoder.
    pub fn decoder(mut self, decoder: mrt::Decoder) -> Self {
        self.decoder = decoder;
        self
    }

    /// Also writing the exposition to `path`.
    pub fn metrics_out(mut self, path: Option<&Path>) -> Self {
        self.metrics_out = path.map(Path::to_path_buf);
        self
    }

    /// Building only the parts of the report in `content`.
    pub fn content(mut self, content: ReportContent) -> Self {
        self.content = content;
        self
    }
}

/// What a replay report holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportContent {
    /// Files, per-prefix summaries, anomaly transitions and the event history.
    Full,
    /// Only the per-file counts (`--format none`): no summary or event is built or kept.
    FilesOnly,
}

/// Runs a replay.
pub fn replay(options: &ReplayOptions) -> Result<ReplayReport, Error> {
    let full = options.content == ReportContent::Full;
    let config = Config::load(&options.config)?;
    // Config::load built and validated the registry.
    let registry = config.shared_registry();
    let mut pipeline = Pipeline::for_replay(&config, full)?;
    if let Some(file) = &config.rpki.vrp_file {
        let (data, report) = crate::rpki::VrpFile::new(file).load()?;
        info!(file = %file.display(), vrps = report.loaded, skipped = report.skipped_total(), aspas = report.aspas_loaded, "VRPs loaded");
        pipeline
            .rpki_metrics
            .record_load(Some(report.loaded), unix_now());
        pipeline.rpki_metrics.set_aspas(data.aspas.len());
        pipeline.engine.set_rpki(Some(Arc::new(data)), None, 0.0);
    }
    let ordered = mrt::order_for_replay(&options.files)?;
    let mut reports = Vec::with_capacity(ordered.len());
    for (path, _kind) in ordered {
        let limits = config.mrt.limits();
        let report = replay_file(&mut pipeline, &path, &registry, options.decoder, limits)?;
        pipeline.file_done(&report);
        reports.push(report);
    }
    pipeline.flush_releases();
    if let Some(out) = &options.metrics_out {
        std::fs::write(out, pipeline.metrics.render()).map_err(|source| Error::Write {
            path: out.clone(),
            source,
        })?;
    }
    let memory = pipeline.engine.memory();
    let peak_rss_bytes = crate::report::peak_rss_bytes();
    info!(
        tracked_routes = memory.tracked_routes,
        distinct_paths = memory.distinct_paths,
        route_slots = memory.route_slots,
        route_containers = memory.route_containers,
        route_state_bytes_per_route = format_args!("{:.2}", memory.route_state_per_route()),
        paths = memory.paths,
        prefix_stats = memory.prefix_stats,
        anomalies = memory.anomalies,
        engine_total = memory.total(),
        peak_rss = peak_rss_bytes.unwrap_or(0),
        "engine memory (bytes)"
    );
    let prefixes = if full {
        pipeline.engine.prefix_summaries()
    } else {
        Vec::new()
    };
    // Transitions come in processing order (RIB dumps first, then updates; a RIB's entries carry
    // their peers' own times): the report lists them in BGP-time order. The sort is stable, so
    // one instance's transitions at the same time keep their order.
    let mut events = pipeline.take_history();
    events.sort_by(|a, b| a.time.total_cmp(&b.time));
    let report = ReplayReport {
        files: reports,
        prefixes,
        events,
        history: pipeline.take_all_events(),
        memory,
        peak_rss_bytes,
    };
    drop_in_background((pipeline, config, registry));
    Ok(report)
}

/// Reads one file on a thread of its own while this one applies the batches (in order, through
/// a short bounded queue), as the daemon does: decoding and the engine use both cores. Applied
/// batches go back to the reader, which empties and refills them: the updates' references are
/// dropped on the thread that took them and the buffers are reused instead of freed across
/// threads.
fn replay_file(
    pipeline: &mut Pipeline,
    path: &Path,
    registry: &crate::registry::Registry,
    decoder: mrt::Decoder,
    limits: mrt::Limits,
) -> Result<FileReport, Error> {
    std::thread::scope(|scope| -> Result<FileReport, Error> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Batch>(REPLAY_QUEUE);
        let (back_tx, back_rx) = std::sync::mpsc::sync_channel::<Batch>(REPLAY_QUEUE + 2);
        let reader = std::thread::Builder::new()
            .name("mrt-read".into())
            .spawn_scoped(scope, move || {
                mrt::read_file_recycling(
                    path,
                    registry,
                    decoder,
                    limits,
                    |b| tx.send(b).is_ok(),
                    &back_rx,
                )
            })
            .map_err(|source| Error::Io {
                context: "starting the MRT reader thread".into(),
                source,
            })?;
        for batch in rx {
            pipeline.ingest(Feed::Mrt, &batch);
            let _ = back_tx.try_send(batch);
        }
        Ok(reader
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))?)
    })
}

/// Drops `value` on a thread of its own: the route state of a large replay (millions of routes,
/// hundreds of thousands of paths) takes a noticeable time to free, and the report does not
/// have to wait for it (a process that exits meanwhile leaves the freeing to the OS).
fn drop_in_background<T: Send + 'static>(value: T) {
    // Without a thread, the closure, and `value` with it, is dropped right here.
    let _ = std::thread::Builder::new()
        .name("replay-drop".into())
        .spawn(move || drop(value));
}
