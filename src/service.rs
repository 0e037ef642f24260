//! Commands: `replay` (one-shot), `run` (the daemon) and `check-config`.
//!
//! Both `replay` and `run` push data through the same [`Pipeline`] (metrics per batch, engine,
//! dirty-prefix sync, event log), so the daemon and the investigation tool cannot disagree.
//! In the daemon the pipeline lives in one engine task, fed by a bounded channel of batches
//! (a slow engine slows the readers; nothing is dropped) and answering API queries on a second
//! channel.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tracing::{error, info, warn};

use crate::cli::{Command, Format};
use crate::clock::unix_now;
use crate::config::Config;
use crate::engine::{AnomalyEvent, Engine};
use crate::error::Error;
use crate::events::Event;
use crate::http::{self, AppState, Query, Readiness, StatusBody};
use crate::ingest::bmp;
use crate::ingest::mrt::{self, Batch, FileReport};
use crate::metrics::Metrics;
use crate::registry::{Registry, SharedRegistry};
use crate::report::ReplayReport;

/// Name of the file in the state directory that remembers processed watched MRT files.
pub const PROCESSED_FILE: &str = "mrt-processed.txt";

/// Runs one CLI command.
pub fn execute(command: Command) -> Result<(), Error> {
    match command {
        Command::CheckConfig { config } => check_config(&config),
        Command::Replay {
            config,
            format,
            metrics_out,
            decoder,
            files,
        } => {
            // `--format none` prints nothing: the per-prefix summaries and the event history are
            // not built at all (a million-prefix registry's report costs seconds and gigabytes).
            let wanted = if format == Format::None {
                ReportContent::FilesOnly
            } else {
                ReportContent::Full
            };
            let report = replay_report(&config, &files, metrics_out.as_deref(), decoder, wanted)?;
            let text = match format {
                Format::Table => report.to_table(),
                Format::Json => serde_json::to_string_pretty(&report).unwrap_or_default() + "\n",
                Format::None => String::new(),
            };
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())
                .and_then(|_| out.flush())
                .map_err(|source| Error::Io {
                    context: "writing the report to stdout".into(),
                    source,
                })
        }
        Command::Run { config } => run(&config),
    }
}

fn check_config(path: &Path) -> Result<(), Error> {
    let config = Config::load(path)?;
    // Config::load built and validated the registry.
    let registry = config.shared_registry();
    let (v4, v6) = registry.count_by_family();
    println!(
        "{}: OK: {} locations, {} prefixes ({v4} IPv4, {v6} IPv6)",
        path.display(),
        registry.locations().len(),
        v4 + v6
    );
    Ok(())
}

/// The ingest → engine → metrics path shared by `replay` and `run`.
pub struct Pipeline {
    /// The engine.
    pub engine: Engine,
    /// The metrics.
    pub metrics: Metrics,
    history: Option<Vec<AnomalyEvent>>,
    /// Every event (anomaly and route events), kept for the replay report.
    all_events: Option<Vec<Event>>,
    /// Whether events without a history are logged (the daemon); a replay without a report
    /// drops them.
    log_events: bool,
    /// Where the daemon sends events (the event store), if anywhere.
    event_sink: Option<Box<dyn FnMut(Vec<Event>) + Send>>,
    files_processed: u64,
}

impl Pipeline {
    /// A pipeline over `registry`; with `keep_history` the anomaly transitions are also kept in
    /// memory (for the replay report).
    pub fn new(
        registry: Arc<Registry>,
        max_prefix_series: usize,
        keep_history: bool,
    ) -> Result<Self, Error> {
        let metrics = Metrics::new(&registry, max_prefix_series)?;
        metrics.config_reload_successful.set(1);
        metrics.config_reload_timestamp.set(unix_now());
        Ok(Pipeline {
            engine: Engine::new(registry),
            metrics,
            history: keep_history.then(Vec::new),
            all_events: keep_history.then(Vec::new),
            log_events: true,
            event_sink: None,
            files_processed: 0,
        })
    }

    /// Applies one batch from `feed`.
    pub fn ingest(&mut self, feed: &str, batch: Batch) {
        self.ingest_ref(feed, &batch);
    }

    /// [`Pipeline::ingest`] of a batch the caller keeps (to recycle it).
    pub fn ingest_ref(&mut self, feed: &str, batch: &Batch) {
        self.engine.apply_batch(&batch.updates, batch.generation);
        self.after_updates(feed, Some(batch));
    }

    /// Metrics sync (with the batch's counts, in one step: a scrape sees a batch counted and
    /// applied, or neither) and events after a batch from `feed`.
    fn after_updates(&mut self, feed: &str, batch: Option<&Batch>) {
        let dirty = self.engine.take_dirty();
        self.metrics.sync(&self.engine, &dirty, feed, batch);
        let anomalies = self.engine.drain_events();
        let routes = self.engine.drain_route_events();
        if anomalies.is_empty() && routes.is_empty() {
            return;
        }
        if self.history.is_none() && self.event_sink.is_none() && !self.log_events {
            return; // nobody reads them (replay without a report)
        }
        let received = unix_now();
        let mut events: Vec<Event> = anomalies
            .iter()
            .map(|a| Event::from_anomaly(a, received))
            .chain(routes.iter().map(|r| Event::from_route(r, received)))
            .collect();
        // Within a batch, keep BGP-time order (stable: same-time events stay in engine order).
        events.sort_by(|a, b| a.time.total_cmp(&b.time));
        match &mut self.history {
            // With a history (replay) the transitions go to the report; the daemon logs them.
            Some(h) => h.extend(anomalies),
            None => events.iter().for_each(log_event),
        }
        if let Some(all) = &mut self.all_events {
            all.extend(events.iter().cloned());
        }
        if let Some(sink) = &mut self.event_sink {
            sink(events);
        }
    }

    /// Applies what a BMP session produced (routes and peer-downs, in stream order).
    pub fn ingest_bmp(&mut self, out: bmp::Output) {
        let removed = out.apply(&mut self.engine);
        if removed > 0 {
            info!(routes = removed, "BMP peer down: routes withdrawn");
        }
        self.after_updates(bmp::FEED, Some(&out.batch));
    }

    /// Moves to a new registry (configuration reload): route state is kept, the per-prefix
    /// series follow the new registry, and the transitions go out like any others.
    pub fn reload(
        &mut self,
        registry: Arc<Registry>,
        max_prefix_series: usize,
    ) -> crate::engine::ReloadSummary {
        let summary = self.engine.reload(registry.clone(), unix_now());
        self.metrics.set_registry(&registry, max_prefix_series);
        self.after_updates(mrt::FEED, None);
        summary
    }

    /// Metrics and events after a change made directly on the engine (VRP reload).
    pub fn resync(&mut self) {
        self.after_updates(mrt::FEED, None);
    }

    /// Sends every future event to `sink` (the daemon's event store).
    pub fn set_event_sink(&mut self, sink: impl FnMut(Vec<Event>) + Send + 'static) {
        self.event_sink = Some(Box::new(sink));
    }

    /// Takes every event kept so far (replay), in BGP-time order.
    pub fn take_all_events(&mut self) -> Vec<Event> {
        let mut v = self
            .all_events
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default();
        v.sort_by(|a, b| a.time.total_cmp(&b.time));
        v
    }

    /// Records a finished MRT file.
    pub fn file_done(&mut self, report: &FileReport) {
        self.files_processed += 1;
        let result = if report.error_count() > 0 {
            "parse_errors"
        } else {
            "ok"
        };
        self.metrics.record_mrt_file(result);
        info!(
            file = %report.path.display(),
            routes = report.processed,
            matched = report.matched,
            errors = report.error_count(),
            "MRT file processed"
        );
    }

    /// Takes the kept anomaly transitions.
    pub fn take_history(&mut self) -> Vec<AnomalyEvent> {
        self.history
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }
}

/// One structured log event per history event (fields, not a formatted string): warnings and
/// worse at WARN, the rest at INFO.
fn log_event(ev: &Event) {
    let (peer, peer_asn) = ev
        .peer
        .as_ref()
        .map_or(("", 0), |p| (p.source.as_str(), p.asn));
    let peer_address = ev.peer.as_ref().map_or("", |p| p.address.as_str());
    macro_rules! emit {
        ($level:ident) => {
            $level!(
                event = ev.kind.as_str(),
                anomaly = ev.anomaly.as_deref().unwrap_or(""),
                severity = ev.severity.as_str(),
                location = %ev.location,
                prefix = %ev.prefix,
                announced = %ev.announced,
                origin = ev.origin.unwrap_or(0),
                peer,
                peer_address,
                peer_asn,
                path = ev.as_path.as_deref().unwrap_or(""),
                previous_path = ev.previous_path.as_deref().unwrap_or(""),
                "{}",
                ev.description
            )
        };
    }
    if ev.severity >= crate::events::Severity::Warning {
        emit!(warn);
    } else {
        emit!(info);
    }
}

fn load_registry(config: &Config) -> Result<Arc<Registry>, Error> {
    // Config::load built and validated the registry.
    Ok(config.shared_registry())
}

/// `routewatch replay` with the default decoder; see [`replay_with`].
pub fn replay(
    config_path: &Path,
    files: &[PathBuf],
    metrics_out: Option<&Path>,
) -> Result<ReplayReport, Error> {
    replay_with(config_path, files, metrics_out, mrt::Decoder::default())
}

/// Batches queued between a replay's reader thread and the engine.
const REPLAY_QUEUE: usize = 4;

/// What a replay report holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportContent {
    /// Files, per-prefix summaries, anomaly transitions and the event history.
    Full,
    /// Only the per-file counts (`--format none`): no summary or event is built or kept.
    FilesOnly,
}

/// `routewatch replay`: RIB dumps first, then updates; returns the report.
pub fn replay_with(
    config_path: &Path,
    files: &[PathBuf],
    metrics_out: Option<&Path>,
    decoder: mrt::Decoder,
) -> Result<ReplayReport, Error> {
    replay_report(
        config_path,
        files,
        metrics_out,
        decoder,
        ReportContent::Full,
    )
}

/// [`replay_with`], building only the parts of the report in `content`.
pub fn replay_report(
    config_path: &Path,
    files: &[PathBuf],
    metrics_out: Option<&Path>,
    decoder: mrt::Decoder,
    content: ReportContent,
) -> Result<ReplayReport, Error> {
    let full = content == ReportContent::Full;
    let config = Config::load(config_path)?;
    let registry = load_registry(&config)?;
    let mut pipeline = Pipeline::new(registry.clone(), config.metrics.max_prefix_series, full)?;
    pipeline.log_events = false;
    pipeline.engine.set_route_events(full);
    if let Some(file) = &config.rpki.vrp_file {
        let (vrps, report) = crate::rpki::VrpFile::new(file)
            .load()
            .map_err(|e| Error::Io {
                context: format!("loading VRPs from {}", file.display()),
                source: std::io::Error::other(e.to_string()),
            })?;
        info!(file = %file.display(), vrps = report.loaded, skipped = report.skipped_total(), "VRPs loaded");
        pipeline
            .metrics
            .record_rpki_load(Some(report.loaded), unix_now());
        pipeline.engine.set_vrps(Some(Arc::new(vrps)), 0.0);
    }
    let ordered = mrt::order_for_replay(files)?;
    let mut reports = Vec::with_capacity(ordered.len());
    for (path, _kind) in ordered {
        // The file is read and matched on a thread of its own while this one applies the
        // batches (in order, through a short bounded queue), as the daemon does: decoding and
        // the engine use both cores. Applied batches go back to the reader, which empties and
        // refills them: the updates' references are dropped on the thread that took them and
        // the buffers are reused instead of freed across threads.
        let report = std::thread::scope(|scope| -> Result<FileReport, Error> {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Batch>(REPLAY_QUEUE);
            let (back_tx, back_rx) = std::sync::mpsc::sync_channel::<Batch>(REPLAY_QUEUE + 2);
            let (path, registry) = (&path, &*registry);
            let reader = std::thread::Builder::new()
                .name("mrt-read".into())
                .spawn_scoped(scope, move || {
                    mrt::read_file_recycling(
                        path,
                        registry,
                        decoder,
                        |b| tx.send(b).is_ok(),
                        &back_rx,
                    )
                })
                .map_err(|source| Error::Io {
                    context: "starting the MRT reader thread".into(),
                    source,
                })?;
            for batch in rx {
                pipeline.ingest_ref(mrt::FEED, &batch);
                let _ = back_tx.try_send(batch);
            }
            Ok(reader
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))?)
        })?;
        pipeline.file_done(&report);
        reports.push(report);
    }
    if let Some(out) = metrics_out {
        std::fs::write(out, pipeline.metrics.render()).map_err(|source| Error::Write {
            path: out.to_path_buf(),
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
    let report = ReplayReport {
        files: reports,
        prefixes,
        events: pipeline.take_history(),
        history: pipeline.take_all_events(),
        memory,
        peak_rss_bytes,
    };
    drop_in_background((pipeline, config, registry));
    Ok(report)
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

/// Messages from the feeds to the engine task.
enum FeedMessage {
    Batch(Batch),
    FileDone(FileReport),
    FileFailed(String),
    InitialLoadDone,
}

/// `routewatch run`.
pub fn run(config_path: &Path) -> Result<(), Error> {
    let config = Config::load(config_path)?;
    let registry = load_registry(&config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|source| Error::Io {
            context: "starting the async runtime".into(),
            source,
        })?;
    let result = runtime.block_on(run_async(config, registry));
    // Do not wait for a reader stuck in a blocking open/read (it holds no state worth saving).
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}

async fn run_async(config: Config, registry: Arc<Registry>) -> Result<(), Error> {
    // First of all, so that no signal sent once the daemon is up finds the default action.
    let signals = Signals::install();
    let mut pipeline = Pipeline::new(registry.clone(), config.metrics.max_prefix_series, false)?;
    // The registry the feeds match with; a configuration reload replaces it.
    let shared = SharedRegistry::new(registry.clone());
    let (reload_tx, reload_rx) = mpsc::channel::<crate::reload::ReloadRequest>(4);
    let (swap_tx, mut swap_rx) = mpsc::channel::<crate::reload::Swap>(1);
    // DNS names ([dns], off by default) for events and API answers; never awaited by the engine.
    let dns = crate::enrich::start(&config.dns, &pipeline.metrics);
    let (feed_tx, mut feed_rx) = mpsc::channel::<FeedMessage>(8);
    // BMP session outputs: bounded, so a slow engine slows the routers' TCP reads.
    let (bmp_tx, mut bmp_rx) = mpsc::channel::<bmp::Output>(64);
    let (query_tx, mut query_rx) = mpsc::channel::<Query>(64);
    let (shutdown_tx, shutdown_rx) = watch::channel(false);

    let listener = tokio::net::TcpListener::bind(config.http.listen)
        .await
        .map_err(|source| Error::Listen {
            addr: config.http.listen,
            source,
        })?;
    let local = listener.local_addr().map_err(|source| Error::Io {
        context: "reading the listen address".into(),
        source,
    })?;
    info!(address = %local, locations = registry.locations().len(), prefixes = registry.prefixes().len(), "listening");

    // The BMP listener is bound before anything is announced ready.
    let mut readiness = Readiness::default();
    let mut bmp_task = None;
    if let Some(bmp_config) = &config.bmp {
        let bmp_listener = tokio::net::TcpListener::bind(bmp_config.listen)
            .await
            .map_err(|source| Error::Listen {
                addr: bmp_config.listen,
                source,
            })?;
        let named: Vec<String> = bmp_config.routers.iter().map(|r| r.name.clone()).collect();
        let board = Arc::new(bmp::listener::RouterBoard::new(&bmp_config.routers));
        readiness.bmp = Some(board.clone());
        let ctx = bmp::listener::ListenerContext {
            config: Arc::new(bmp_config.clone()),
            registry: shared.clone(),
            metrics: pipeline.metrics.enable_bmp(&named)?,
            board,
            outputs: bmp_tx,
            shutdown: shutdown_rx.clone(),
            dns: dns.clone(),
        };
        info!(address = %bmp_listener.local_addr().map_or(bmp_config.listen, |a| a), "BMP listening");
        bmp_task = Some(tokio::spawn(bmp::listener::serve(bmp_listener, ctx)));
    } else {
        drop(bmp_tx);
    }
    let ready = Arc::new(readiness);

    // The event store: written off the engine task by its own thread; events are named on the way.
    let mut event_naming = None;
    let store = if config.events.enabled {
        let settings = crate::events::store::StoreSettings::from_config(&config.events);
        let store = crate::events::store::EventStore::open_in(&config.state_dir, settings)
            .map_err(|e| Error::Io {
                context: format!("starting the event store in {}", config.state_dir.display()),
                source: std::io::Error::other(e.to_string()),
            })?;
        let writer = store.writer();
        let (sink, naming) = crate::enrich::event_sink(dns.clone(), move |events| {
            writer.send(events);
        });
        pipeline.set_event_sink(sink);
        event_naming = naming;
        Some(store)
    } else {
        None
    };
    let mut store_metrics = match &store {
        Some(s) => Some((pipeline.metrics.enable_event_store()?, s.counters())),
        None => None,
    };

    let mut app = http::router(AppState {
        metrics: pipeline_registry(&pipeline),
        ready: ready.clone(),
        queries: query_tx,
        reloads: reload_tx.clone(),
        dns,
    });
    if let Some(s) = &store {
        app = app.merge(crate::events::api::events_router(s.reader()));
    }
    let mut http_shutdown = shutdown_rx.clone();
    let server = tokio::spawn(async move {
        let r = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .with_graceful_shutdown(async move { stopped(&mut http_shutdown).await })
        .await;
        if let Err(e) = r {
            error!(error = %e, "HTTP server failed");
        }
    });

    // RPKI: the VRP file is loaded at start and reloaded when it changes; loads run on a
    // blocking thread and the engine re-validates every held route with the new set (so the
    // order relative to the MRT baseline does not matter).
    let (vrp_tx, mut vrp_rx) = mpsc::channel::<Option<Arc<crate::rpki::VrpSet>>>(1);
    // SIGHUP reloads the VRP file now (it never stops the daemon).
    let hup = Arc::new(tokio::sync::Notify::new());
    let hup_task = tokio::spawn(forward_sighup(
        #[cfg(unix)]
        signals.hangup,
        hup.clone(),
        reload_tx.clone(),
        shutdown_rx.clone(),
    ));
    drop(reload_tx);
    let reloader = tokio::spawn(crate::reload::reload_task(
        config.path.clone(),
        Arc::new(config.clone()),
        reload_rx,
        swap_tx,
        shared.clone(),
        pipeline.metrics.reload_metrics(),
    ));
    let rpki_task = config.rpki.vrp_file.clone().map(|file| {
        tokio::spawn(rpki_task(
            file,
            config.rpki.reload_interval_seconds,
            vrp_tx,
            hup.clone(),
            shutdown_rx.clone(),
        ))
    });
    let mut vrps_open = rpki_task.is_some();

    // Feeds: the configured files first (the baseline), then the watched directory.
    let feeds = tokio::spawn(feed_task(
        config.clone(),
        shared.clone(),
        feed_tx,
        shutdown_rx.clone(),
    ));

    // The engine task: the only owner of route state.
    let engine_ready = ready.clone();
    let mut engine_shutdown = shutdown_rx.clone();
    let mut bmp_open = config.bmp.is_some();
    let mut store_tick = tokio::time::interval(Duration::from_secs(2));
    let heartbeat = Arc::new(crate::systemd::Heartbeat::default());
    let engine_heartbeat = heartbeat.clone();
    let engine = tokio::spawn(async move {
        let mut feeds_open = true;
        loop {
            engine_heartbeat.beat();
            tokio::select! {
                msg = feed_rx.recv(), if feeds_open => match msg {
                    Some(FeedMessage::Batch(b)) => pipeline.ingest(mrt::FEED, b),
                    Some(FeedMessage::FileDone(r)) => pipeline.file_done(&r),
                    Some(FeedMessage::FileFailed(e)) => {
                        pipeline.metrics.record_mrt_file("failed");
                        error!(error = %e, "MRT file could not be read");
                    }
                    Some(FeedMessage::InitialLoadDone) => {
                        engine_ready.mrt_loaded.store(true, Ordering::Release);
                        info!(routes = pipeline.engine.tracked_routes(), "initial MRT files loaded; ready");
                    }
                    // Feeds finished (no watched directory): keep answering queries.
                    None => feeds_open = false,
                },
                out = bmp_rx.recv(), if bmp_open => match out {
                    Some(out) => pipeline.ingest_bmp(out),
                    None => bmp_open = false,
                },
                _ = store_tick.tick() => {
                    if let Some((m, counters)) = &mut store_metrics {
                        m.sync(counters);
                    }
                }
                v = vrp_rx.recv(), if vrps_open => match v {
                    Some(Some(vrps)) => {
                        let n = vrps.len();
                        pipeline.engine.set_vrps(Some(vrps), unix_now());
                        pipeline.metrics.record_rpki_load(Some(n), unix_now());
                        pipeline.resync();
                        info!(vrps = n, "VRPs loaded; routes revalidated");
                    }
                    Some(None) => pipeline.metrics.record_rpki_load(None, unix_now()),
                    None => vrps_open = false,
                },
                swap = swap_rx.recv() => if let Some(swap) = swap {
                    let summary = pipeline.reload(swap.registry, swap.max_prefix_series);
                    let _ = swap.reply.send(summary);
                },
                q = query_rx.recv() => match q {
                    Some(q) => answer(&pipeline, q, &engine_ready),
                    None => break,
                },
                _ = stopped(&mut engine_shutdown) => break,
            }
        }
    });

    // Registry loaded, HTTP (and BMP) listeners bound, tasks running: tell systemd.
    crate::systemd::ready(&format!(
        "{} locations, {} prefixes",
        registry.locations().len(),
        registry.prefixes().len()
    ));
    let watchdog = tokio::spawn(crate::systemd::watchdog(heartbeat, shutdown_rx.clone()));

    wait_for_signal(
        #[cfg(unix)]
        signals.terminate,
        #[cfg(unix)]
        signals.interrupt,
    )
    .await;
    crate::systemd::stopping();
    info!("shutting down");
    let _ = shutdown_tx.send(true);
    let _ = server.await;
    if let Some(t) = bmp_task {
        let _ = t.await;
    }
    if let Some(t) = rpki_task {
        let _ = t.await;
    }
    let _ = hup_task.await;
    reloader.abort();
    let _ = watchdog.await;
    // A feed blocked in a read (a FIFO, a hung mount) must not hold up the exit.
    if tokio::time::timeout(Duration::from_secs(5), feeds)
        .await
        .is_err()
    {
        warn!("a feed did not stop within 5 s; exiting without it");
    }
    let _ = engine.await;
    // The engine's last events get through the naming task before the store closes.
    if let Some(naming) = event_naming {
        naming.finish().await;
    }
    if let Some(store) = store {
        // The last batch is committed before exit.
        let closed = tokio::task::spawn_blocking(move || store.close(Duration::from_secs(5))).await;
        match closed {
            Ok(Ok(n)) => info!(events = n, "event store closed"),
            Ok(Err(e)) => warn!(error = %e, "event store did not close cleanly"),
            Err(e) => warn!(error = %e, "event store close failed"),
        }
    }
    info!("stopped");
    Ok(())
}

/// Loads the VRP file at start and whenever it changes; `None` is sent for a failed load (the
/// engine keeps the previous set).
async fn rpki_task(
    file: PathBuf,
    interval_seconds: u64,
    tx: mpsc::Sender<Option<Arc<crate::rpki::VrpSet>>>,
    hup: Arc<tokio::sync::Notify>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut vrp_file = crate::rpki::VrpFile::new(file);
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
        let (back, loaded) = match tokio::task::spawn_blocking(move || {
            let r = vrp_file.load();
            (vrp_file, r)
        })
        .await
        {
            Ok(x) => x,
            Err(_) => return,
        };
        vrp_file = back;
        let msg = match loaded {
            Ok((vrps, report)) => {
                info!(file = %vrp_file.path.display(), vrps = report.loaded, skipped = report.skipped_total(), "VRP file loaded");
                Some(Arc::new(vrps))
            }
            Err(e) => {
                error!(file = %vrp_file.path.display(), error = %e, "VRP file could not be loaded; keeping the previous set");
                None
            }
        };
        if tx.send(msg).await.is_err() {
            return;
        }
    }
}

/// The daemon's signal handlers, installed before READY=1 is sent: a SIGHUP or SIGTERM that
/// arrives as soon as systemd (or a script) sees the daemon ready is never lost to a handler
/// that a task has not yet installed (or, where the parent ignores SIGHUP, silently dropped).
struct Signals {
    #[cfg(unix)]
    hangup: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    terminate: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    /// Installs the handlers (needs the runtime); one that cannot be installed is logged.
    fn install() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let install = |kind: SignalKind, name: &str| match signal(kind) {
                Ok(s) => Some(s),
                Err(e) => {
                    warn!(signal = name, error = %e, "cannot install a signal handler");
                    None
                }
            };
            Signals {
                hangup: install(SignalKind::hangup(), "SIGHUP"),
                terminate: install(SignalKind::terminate(), "SIGTERM"),
                interrupt: install(SignalKind::interrupt(), "SIGINT"),
            }
        }
        #[cfg(not(unix))]
        Signals {}
    }
}

/// Turns SIGHUP into a configuration reload and a VRP file reload (instead of the default
/// termination).
async fn forward_sighup(
    #[cfg(unix)] sighup: Option<tokio::signal::unix::Signal>,
    hup: Arc<tokio::sync::Notify>,
    reloads: mpsc::Sender<crate::reload::ReloadRequest>,
    mut shutdown: watch::Receiver<bool>,
) {
    #[cfg(unix)]
    {
        let Some(mut sighup) = sighup else {
            stopped(&mut shutdown).await;
            return;
        };
        loop {
            tokio::select! {
                _ = sighup.recv() => {
                    info!("SIGHUP: reloading the configuration and the VRP file (if configured)");
                    hup.notify_one();
                    let req = crate::reload::ReloadRequest {
                        trigger: crate::reload::Trigger::Signal,
                        reply: None,
                    };
                    // A reload already queued covers this one.
                    let _ = reloads.try_send(req);
                }
                _ = stopped(&mut shutdown) => return,
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (hup, reloads);
        stopped(&mut shutdown).await;
    }
}

/// Resolves once shutdown has been requested.
async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

fn pipeline_registry(p: &Pipeline) -> crate::metrics::Exporter {
    p.metrics.exporter()
}

fn answer(p: &Pipeline, q: Query, ready: &Readiness) {
    let registry = p.engine.registry();
    match q {
        Query::Prefixes(tx) => {
            let _ = tx.send(p.engine.prefix_summaries());
        }
        Query::Anomalies(tx) => {
            let _ = tx.send(p.engine.anomalies());
        }
        Query::Status(tx) => {
            let _ = tx.send(StatusBody {
                version: env!("CARGO_PKG_VERSION"),
                ready: ready.is_ready(),
                locations: registry.locations().len(),
                registered_prefixes: registry.prefixes().len(),
                tracked_routes: p.engine.tracked_routes(),
                peers: p.engine.peers_with_routes(),
                mrt_files_processed: p.files_processed,
                routers: ready.bmp.as_ref().map(|b| b.snapshot()).unwrap_or_default(),
            });
        }
    }
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C where the handlers could not be installed).
async fn wait_for_signal(
    #[cfg(unix)] terminate: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)] interrupt: Option<tokio::signal::unix::Signal>,
) {
    #[cfg(unix)]
    {
        match (terminate, interrupt) {
            (Some(mut term), Some(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            (Some(mut term), None) => {
                term.recv().await;
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// What became of one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileOutcome {
    /// Read to the end (parse errors, if any, were counted).
    Read,
    /// Could not be opened.
    Unreadable,
    /// The engine task is gone (shutdown): stop feeding.
    EngineGone,
}

/// Reads one file on a blocking thread, sending its batches to the engine task.
async fn process_file(
    path: PathBuf,
    registry: Arc<Registry>,
    tx: mpsc::Sender<FeedMessage>,
) -> FileOutcome {
    // The registry in force when the file starts; a reload meanwhile is caught up with by the
    // engine (it matches batches of an older registry again).
    let joined = tokio::task::spawn_blocking(move || {
        let mut open = true;
        let r = mrt::read_file(&path, &registry, |b| {
            open = tx.blocking_send(FeedMessage::Batch(b)).is_ok();
            open
        });
        let (outcome, msg) = match r {
            Ok(report) => (FileOutcome::Read, FeedMessage::FileDone(report)),
            Err(e) => (
                FileOutcome::Unreadable,
                FeedMessage::FileFailed(e.to_string()),
            ),
        };
        if open && tx.blocking_send(msg).is_ok() {
            outcome
        } else {
            FileOutcome::EngineGone
        }
    })
    .await;
    joined.unwrap_or(FileOutcome::EngineGone)
}

/// Processes one file unless shutdown comes first; `None` means stop feeding.
async fn process_or_stop(
    path: PathBuf,
    registry: &SharedRegistry,
    tx: &mpsc::Sender<FeedMessage>,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<FileOutcome> {
    if *shutdown.borrow() {
        return None;
    }
    tokio::select! {
        o = process_file(path, registry.current(), tx.clone()) => {
            (o != FileOutcome::EngineGone).then_some(o)
        }
        _ = stopped(shutdown) => None,
    }
}

async fn feed_task(
    config: Config,
    registry: SharedRegistry,
    tx: mpsc::Sender<FeedMessage>,
    mut shutdown: watch::Receiver<bool>,
) {
    // Classifying opens every file: do it on a blocking thread (a FIFO or a hung mount must not
    // hold up a runtime worker), and give way to shutdown.
    let files = config.mrt.files.clone();
    let classify = tokio::task::spawn_blocking(move || mrt::order_for_replay(&files));
    let classified = tokio::select! {
        r = classify => r.ok(),
        _ = stopped(&mut shutdown) => return,
    };
    let ordered = match classified {
        Some(Ok(o)) => o,
        other => {
            // An unreadable configured file is counted and logged; the daemon still serves, and
            // the files are read in the order given.
            if let Some(Err(e)) = other {
                let _ = tx.send(FeedMessage::FileFailed(e.to_string())).await;
            }
            config
                .mrt
                .files
                .iter()
                .map(|p| (p.clone(), mrt::MrtFileKind::Unknown))
                .collect()
        }
    };
    for (path, _) in ordered {
        if process_or_stop(path, &registry, &tx, &mut shutdown)
            .await
            .is_none()
        {
            return;
        }
    }
    if tx.send(FeedMessage::InitialLoadDone).await.is_err() {
        return;
    }
    let Some(dir) = config.mrt.watch_dir.clone() else {
        return;
    };
    let state_file = config.state_dir.join(PROCESSED_FILE);
    if let Err(e) = std::fs::create_dir_all(&config.state_dir) {
        error!(dir = %config.state_dir.display(), error = %e, "cannot create the state directory; processed MRT files will not be remembered across restarts");
    }
    let mut processed = load_processed(&state_file);
    // Files that could not be opened are retried after a restart, not on every poll.
    let mut unreadable: BTreeSet<String> = BTreeSet::new();
    let mut tick = tokio::time::interval(Duration::from_secs(config.mrt.watch_interval_seconds));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopped(&mut shutdown) => return,
        }
        for name in new_files(&dir, &processed) {
            if unreadable.contains(&name) {
                continue;
            }
            match process_or_stop(dir.join(&name), &registry, &tx, &mut shutdown).await {
                Some(FileOutcome::Read) => {
                    remember_processed(&state_file, &name);
                    processed.insert(name);
                }
                Some(_) => {
                    unreadable.insert(name);
                }
                None => return,
            }
        }
    }
}

/// The set of watched-directory file names already processed (one per line).
pub fn load_processed(path: &Path) -> BTreeSet<String> {
    std::fs::read_to_string(path)
        .map(|s| {
            s.lines()
                .filter(|l| !l.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

fn remember_processed(path: &Path, name: &str) {
    let r = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| writeln!(f, "{name}"));
    if let Err(e) = r {
        warn!(file = %path.display(), error = %e, "cannot record a processed MRT file");
    }
}

/// New regular files in `dir`, in name order: not hidden, not yet processed, and not modified in
/// the last second (a file still being written is picked up on a later poll).
pub fn new_files(dir: &Path, processed: &BTreeSet<String>) -> Vec<String> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            warn!(dir = %dir.display(), error = %e, "cannot list the watched MRT directory");
            return Vec::new();
        }
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|e| {
            e.metadata().is_ok_and(|m| {
                m.is_file()
                    && m.modified().ok().and_then(|t| t.elapsed().ok())
                        >= Some(Duration::from_secs(1))
            })
        })
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| !n.starts_with('.') && !processed.contains(n))
        .collect();
    names.sort();
    names
}
