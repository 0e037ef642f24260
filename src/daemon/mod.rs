//! `routewatch run`: the daemon.
//!
//! Start-up is a short list of `start_*` steps, each owning one room:
//!
//! | step | room | what runs |
//! |---|---|---|
//! | [`Signals::install`] | [`signals`] | SIGHUP / SIGTERM / SIGINT handlers, before anything else |
//! | `start_http` | [`crate::http`] | the HTTP listener is bound first (`/metrics`, `/live`, `/ready`, API) |
//! | `start_bmp` | [`crate::ingest::bmp::listener`] | the BMP listener, bound before READY=1 |
//! | `start_event_store` | [`crate::events::store`], [`crate::dns::enrich`] | the SQLite history with its writer thread; events named on the way |
//! | `start_notify` | [`crate::notify`] | one task per `[[notify]]` target, fed by the pipeline through a bounded queue each |
//! | `start_reload` | [`crate::reload`] | configuration reload (SIGHUP, `POST /-/reload`) |
//! | `start_rpki` | [`rpki_task`] | the VRP file, loaded at start and on change |
//! | `start_rtr` | [`rtr_task`], [`crate::rpki::rtr`] | `[rpki] rtr`: RTR sessions with failover, refresh and expiry |
//! | `start_feeds` | [`feeds`], [`watch_dir`] | the configured MRT files, then the watched directory |
//! | `start_ris_live` | [`ris_live`], [`crate::ingest::ris_live`] | `[ris-live]`: its baseline RIBs, then the RIS Live stream (reconnected for ever) |
//! | `start_kafka` | [`kafka`], [`crate::ingest::kafka`] | `[[kafka]]`: one consumer group member per section (raw BMP in OpenBMP format; offsets committed after the engine applied the routes) |
//! | `start_engine` | [`engine_task`] | the only owner of route state, fed by all of the above |
//!
//! Then READY=1, the watchdog, and a wait for SIGTERM/SIGINT; shutdown stops the tasks in
//! order and lets the event store commit its last batch.

pub mod engine_task;
pub mod feeds;
pub mod kafka;
pub mod ris_live;
pub mod rpki_task;
pub mod rtr_task;
pub mod signals;
pub mod watch_dir;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::config::Config;
use crate::dns::enrich::EventNaming;
use crate::dns::Enricher;
use crate::error::Error;
use crate::events::metrics::EventStoreMetrics;
use crate::events::store::EventStore;
use crate::http::{self, AppState, Query, Readiness};
use crate::ingest::bmp;
use crate::ingest::ris_live::metrics::RisLiveMetrics;
use crate::model::Feed;
use crate::pipeline::Pipeline;
use crate::registry::{Registry, SharedRegistry};
use crate::reload::{ReloadRequest, Swap};
use crate::rpki::rtr::metrics::RtrMetrics;
use engine_task::{EngineInputs, EngineTask};
use feeds::FeedMessage;
use rpki_task::RpkiUpdate;
use signals::Signals;

pub use watch_dir::{load_processed, stable_new_files, PROCESSED_FILE};

/// Resolves once shutdown has been requested.
pub(crate) async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// `routewatch run`.
pub fn run(config_path: &Path) -> Result<(), Error> {
    let config = Config::load(config_path)?;
    crate::log::init(&config.log.level, config.log.format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|source| Error::Io {
            context: "starting the async runtime".into(),
            source,
        })?;
    let result = runtime.block_on(run_async(config));
    // Do not wait for a reader stuck in a blocking open/read (it holds no state worth saving).
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}

/// What every task is started with.
struct Wiring {
    shutdown_tx: watch::Sender<bool>,
    shutdown: watch::Receiver<bool>,
    /// Notified on SIGHUP: the VRP file is loaded again.
    hup: Arc<Notify>,
}

impl Wiring {
    fn new() -> Self {
        let (shutdown_tx, shutdown) = watch::channel(false);
        Wiring {
            shutdown_tx,
            shutdown,
            hup: Arc::new(Notify::new()),
        }
    }
}

/// The daemon's running tasks, stopped in this order at shutdown.
struct Tasks {
    http: JoinHandle<()>,
    bmp: Option<JoinHandle<()>>,
    rpki: Option<JoinHandle<()>>,
    rtr: Option<JoinHandle<()>>,
    sighup: JoinHandle<()>,
    reload: JoinHandle<()>,
    watchdog: JoinHandle<()>,
    feeds: JoinHandle<()>,
    ris_live: Option<JoinHandle<()>>,
    kafka: Vec<JoinHandle<()>>,
    engine: JoinHandle<()>,
    naming: Option<EventNaming>,
    store: Option<EventStore>,
    notify: Option<crate::notify::NotifyTasks>,
}

async fn run_async(config: Config) -> Result<(), Error> {
    // First of all, so that no signal sent once the daemon is up finds the default action.
    let mut signals = Signals::install();
    let registry = config.shared_registry();
    let mut pipeline = Pipeline::new(&config)?;
    // The registry the feeds match with; a configuration reload replaces it.
    let shared = SharedRegistry::new(registry.clone());
    let wiring = Wiring::new();
    let (query_tx, query_rx) = mpsc::channel::<Query>(64);
    let (reload_tx, reload_rx) = mpsc::channel::<ReloadRequest>(4);
    let (swap_tx, swap_rx) = mpsc::channel::<Swap>(1);
    // DNS names ([dns], off by default) for events and API answers; never awaited by the engine.
    let dns = crate::dns::enrich::start(&config.dns, pipeline.metrics.registry());

    raise_nofile_limit();
    let http_listener = bind_http(&config, &registry).await?;
    let tls = match &config.http.tls {
        Some(files) => Some(tokio_rustls::TlsAcceptor::from(
            http::tls::server_config(files).map_err(|e| Error::Io {
                context: "loading the TLS certificate and key".into(),
                source: std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()),
            })?,
        )),
        None => None,
    };
    let http_metrics = http::metrics::HttpMetrics::new(pipeline.metrics.registry())?;
    let mut readiness = Readiness::default();
    let ris_live_metrics = prepare_ris_live(&config, &mut pipeline, &mut readiness)?;
    let (bmp_task, bmp_rx) = start_bmp(
        &config,
        &shared,
        &mut pipeline,
        &mut readiness,
        &wiring,
        &dns,
    )
    .await?;
    let ready = Arc::new(readiness);
    let (store, naming, store_metrics) = match start_event_store(&config, &mut pipeline, &dns)? {
        Some((store, naming, metrics)) => (Some(store), naming, Some(metrics)),
        None => (None, None, None),
    };
    let notify = start_notify(&config, &mut pipeline)?;
    let http_task = start_http(
        http_listener,
        AppState {
            metrics: pipeline.metrics.exporter(),
            ready: ready.clone(),
            queries: query_tx,
            reloads: reload_tx.clone(),
            dns,
            tokens: config.http.tokens.clone(),
            api_permits: Arc::new(tokio::sync::Semaphore::new(config.http.max_api_requests)),
            http_metrics: http_metrics.clone(),
        },
        HttpServing {
            limits: http::server::Limits::from_config(&config.http),
            tls,
            metrics: http_metrics,
        },
        store.as_ref(),
        &wiring,
    );
    let sighup = signals.start_sighup(wiring.hup.clone(), reload_tx, wiring.shutdown.clone());
    let reload_task = start_reload(&config, &shared, &pipeline, reload_rx, swap_tx);
    // One channel for every RPKI source: the engine task keeps each source's data.
    let (rpki_tx, rpki_rx) = mpsc::channel::<RpkiUpdate>(2);
    let rpki_task = start_rpki(&config, &wiring, rpki_tx.clone());
    let rtr_task = start_rtr(&config, &mut pipeline, &wiring, rpki_tx)?;
    let rpki_rx = (rpki_task.is_some() || rtr_task.is_some()).then_some(rpki_rx);
    let (feed_task, feed_rx) = start_feeds(&config, &shared, &wiring);
    let (ris_task, ris_rx) = start_ris_live(&config, &shared, ris_live_metrics, &wiring);
    let (kafka_tasks, kafka_rx) = start_kafka(&config, &shared, &mut pipeline, &wiring)?;
    let heartbeat = Arc::new(crate::systemd::Heartbeat::default());
    let mut engine = EngineTask::new(pipeline, ready.clone(), store_metrics);
    engine.set_roa_expiry_warning_days(config.rpki.roa_expiry_warning_days);
    let engine_task = start_engine(
        engine,
        EngineInputs {
            feed: feed_rx,
            bmp: bmp_rx,
            rpki: rpki_rx,
            ris_live: ris_rx,
            kafka: kafka_rx,
            swaps: swap_rx,
            queries: query_rx,
            shutdown: wiring.shutdown.clone(),
        },
        heartbeat.clone(),
    );

    // Registry loaded, HTTP (and BMP) listeners bound, tasks running: tell systemd.
    crate::systemd::ready(&format!(
        "{} locations, {} prefixes",
        registry.locations().len(),
        registry.prefixes().len()
    ));
    let watchdog = tokio::spawn(crate::systemd::watchdog(heartbeat, wiring.shutdown.clone()));

    signals.terminated().await;
    crate::systemd::stopping();
    info!("shutting down");
    let _ = wiring.shutdown_tx.send(true);
    stop(Tasks {
        http: http_task,
        bmp: bmp_task,
        rpki: rpki_task,
        rtr: rtr_task,
        sighup,
        reload: reload_task,
        watchdog,
        feeds: feed_task,
        ris_live: ris_task,
        kafka: kafka_tasks,
        engine: engine_task,
        naming,
        store,
        notify,
    })
    .await;
    info!("stopped");
    Ok(())
}

/// Binds the HTTP listener (before anything is announced ready).
async fn bind_http(config: &Config, registry: &Registry) -> Result<tokio::net::TcpListener, Error> {
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
    Ok(listener)
}

/// Binds the BMP listener (`[bmp]`) and starts accepting routers; their sessions' outputs come
/// back on the returned channel (bounded: a slow engine slows the routers' TCP reads).
async fn start_bmp(
    config: &Config,
    registry: &SharedRegistry,
    pipeline: &mut Pipeline,
    readiness: &mut Readiness,
    wiring: &Wiring,
    dns: &Enricher,
) -> Result<(Option<JoinHandle<()>>, Option<mpsc::Receiver<bmp::Output>>), Error> {
    let Some(bmp_config) = &config.bmp else {
        return Ok((None, None));
    };
    let listener = tokio::net::TcpListener::bind(bmp_config.listen)
        .await
        .map_err(|source| Error::Listen {
            addr: bmp_config.listen,
            source,
        })?;
    let named: Vec<String> = bmp_config.routers.iter().map(|r| r.name.clone()).collect();
    let board = Arc::new(bmp::listener::RouterBoard::new(&bmp_config.routers));
    pipeline
        .metrics
        .enable_feed(Feed::Bmp, &bmp::metrics::error_labels());
    readiness.bmp = Some(board.clone());
    let (tx, rx) = mpsc::channel::<bmp::Output>(64);
    let ctx = bmp::listener::ListenerContext {
        config: Arc::new(bmp_config.clone()),
        registry: registry.clone(),
        metrics: bmp::metrics::BmpMetrics::new(pipeline.metrics.registry(), &named)?,
        board,
        outputs: tx,
        shutdown: wiring.shutdown.clone(),
        dns: dns.clone(),
    };
    info!(address = %listener.local_addr().map_or(bmp_config.listen, |a| a), "BMP listening");
    Ok((
        Some(tokio::spawn(bmp::listener::serve(listener, ctx))),
        Some(rx),
    ))
}

/// The event store's metrics and the counters they mirror.
type StoreMetrics = (
    crate::events::metrics::EventStoreMetrics,
    Arc<crate::events::store::StoreCounters>,
);

/// The running event store: the store, the naming task in front of it, and its metrics.
type EventStoreParts = (EventStore, Option<EventNaming>, StoreMetrics);

/// Opens the event store (`[events]`): written off the engine task by its own thread; events
/// are named on the way (`[dns]`).
fn start_event_store(
    config: &Config,
    pipeline: &mut Pipeline,
    dns: &Enricher,
) -> Result<Option<EventStoreParts>, Error> {
    if !config.events.enabled {
        return Ok(None);
    }
    let settings = crate::events::store::StoreSettings::from_config(&config.events);
    let store = EventStore::open_in(&config.state_dir, settings)?;
    let writer = store.writer();
    let (sink, naming) = crate::dns::enrich::event_sink(dns.clone(), move |events| {
        writer.send(events);
    });
    pipeline.set_event_sink(sink);
    let metrics = EventStoreMetrics::new(pipeline.metrics.registry())?;
    let counters = store.counters();
    Ok(Some((store, naming, (metrics, counters))))
}

/// Starts the notification targets (`[[notify]]`), if any: the pipeline offers them the
/// anomaly transitions of live processing.
fn start_notify(
    config: &Config,
    pipeline: &mut Pipeline,
) -> Result<Option<crate::notify::NotifyTasks>, Error> {
    if config.notify.is_empty() {
        return Ok(None);
    }
    let (notifier, tasks) =
        crate::notify::start(&config.notify, &config.http, pipeline.metrics.registry())?;
    pipeline.set_notifier(notifier);
    info!(targets = config.notify.len(), "notifications on");
    Ok(Some(tasks))
}

/// The HTTP listener's limits, TLS and metrics.
struct HttpServing {
    limits: http::server::Limits,
    tls: Option<tokio_rustls::TlsAcceptor>,
    metrics: http::metrics::HttpMetrics,
}

/// Serves HTTP on `listener` until shutdown ([`http::server`]: connection cap, timeouts, TLS).
fn start_http(
    listener: tokio::net::TcpListener,
    state: AppState,
    serving: HttpServing,
    store: Option<&EventStore>,
    wiring: &Wiring,
) -> JoinHandle<()> {
    let app = http::router(state, store.map(|s| s.reader()));
    tokio::spawn(http::server::serve(
        listener,
        app,
        serving.limits,
        serving.tls,
        serving.metrics,
        wiring.shutdown.clone(),
    ))
}

/// Raises the soft limit on open files to the hard limit (the unit sets `LimitNOFILE=`, which
/// sets both; started by hand, the soft limit is often 1,024 under a hard one of 500k+), so that
/// the HTTP and BMP connection caps, not the file limit, are what bounds connections.
fn raise_nofile_limit() {
    match rlimit::Resource::NOFILE.get() {
        Ok((soft, hard)) if soft < hard => match rlimit::Resource::NOFILE.set(hard, hard) {
            Ok(()) => info!(from = soft, to = hard, "raised the open-file limit"),
            Err(e) => warn!(soft, hard, error = %e, "could not raise the open-file limit"),
        },
        Ok((soft, _)) => info!(limit = soft, "open-file limit"),
        Err(e) => warn!(error = %e, "could not read the open-file limit"),
    }
}

/// Starts the reload task (one reload at a time; the engine task only swaps).
fn start_reload(
    config: &Config,
    registry: &SharedRegistry,
    pipeline: &Pipeline,
    requests: mpsc::Receiver<ReloadRequest>,
    swaps: mpsc::Sender<Swap>,
) -> JoinHandle<()> {
    tokio::spawn(crate::reload::reload_task(
        config.path.clone(),
        Arc::new(config.clone()),
        requests,
        swaps,
        registry.clone(),
        pipeline.reload_metrics.clone(),
    ))
}

/// Starts the VRP file task (`[rpki] vrp-file`), sending on `tx`.
fn start_rpki(
    config: &Config,
    wiring: &Wiring,
    tx: mpsc::Sender<RpkiUpdate>,
) -> Option<JoinHandle<()>> {
    let file = config.rpki.vrp_file.clone()?;
    Some(tokio::spawn(rpki_task::rpki_task(
        file,
        config.rpki.reload_interval_seconds,
        tx,
        wiring.hup.clone(),
        wiring.shutdown.clone(),
    )))
}

/// Starts the RTR task (`[rpki] rtr`) with its metrics, sending on `tx`.
fn start_rtr(
    config: &Config,
    pipeline: &mut Pipeline,
    wiring: &Wiring,
    tx: mpsc::Sender<RpkiUpdate>,
) -> Result<Option<JoinHandle<()>>, Error> {
    let Some(rtr) = config.rpki.rtr.clone() else {
        return Ok(None);
    };
    let metrics = RtrMetrics::new(pipeline.metrics.registry(), &rtr.servers)?;
    pipeline.rtr_metrics = Some(metrics.clone());
    Ok(Some(tokio::spawn(rtr_task::rtr_task(
        rtr,
        tx,
        metrics,
        wiring.shutdown.clone(),
    ))))
}

/// Starts the MRT feed: the configured files (the baseline), then the watched directory.
fn start_feeds(
    config: &Config,
    registry: &SharedRegistry,
    wiring: &Wiring,
) -> (JoinHandle<()>, mpsc::Receiver<FeedMessage>) {
    let (tx, rx) = mpsc::channel::<FeedMessage>(8);
    let task = tokio::spawn(feeds::mrt_feed(
        config.clone(),
        registry.clone(),
        tx,
        wiring.shutdown.clone(),
    ));
    (task, rx)
}

/// With `[ris-live]`: its metrics, the feed's series and the readiness flag of its baseline.
fn prepare_ris_live(
    config: &Config,
    pipeline: &mut Pipeline,
    readiness: &mut Readiness,
) -> Result<Option<RisLiveMetrics>, Error> {
    if config.ris_live.is_none() {
        return Ok(None);
    }
    pipeline
        .metrics
        .enable_feed(Feed::RisLive, &crate::ingest::ris_live::ERROR_LABELS);
    readiness.ris_live_baseline = Some(std::sync::atomic::AtomicBool::new(false));
    Ok(Some(RisLiveMetrics::new(pipeline.metrics.registry())?))
}

/// Starts the RIS Live task (`[ris-live]`): baseline, then the stream.
fn start_ris_live(
    config: &Config,
    registry: &SharedRegistry,
    metrics: Option<RisLiveMetrics>,
    wiring: &Wiring,
) -> (
    Option<JoinHandle<()>>,
    Option<mpsc::Receiver<ris_live::RisLiveInput>>,
) {
    let (Some(rl), Some(metrics)) = (config.ris_live.clone(), metrics) else {
        return (None, None);
    };
    let (tx, rx) = mpsc::channel(64);
    let task = ris_live::RisLiveTask {
        config: rl,
        registry: registry.clone(),
        limits: config.mrt.limits(),
        tx,
        metrics,
        shutdown: wiring.shutdown.clone(),
    };
    (Some(tokio::spawn(task.run())), Some(rx))
}

/// The Kafka consumer tasks and the channel of their batches.
type KafkaParts = (
    Vec<JoinHandle<()>>,
    Option<mpsc::Receiver<kafka::KafkaBatch>>,
);

/// Starts the `[[kafka]]` consumers, with their metrics and the feed's series.
fn start_kafka(
    config: &Config,
    registry: &SharedRegistry,
    pipeline: &mut Pipeline,
    wiring: &Wiring,
) -> Result<KafkaParts, Error> {
    if config.kafka.is_empty() {
        return Ok((Vec::new(), None));
    }
    let mut labels = bmp::metrics::error_labels();
    labels.extend(crate::ingest::kafka::ERROR_LABELS);
    pipeline.metrics.enable_feed(Feed::Kafka, &labels);
    let names: Vec<String> = config.kafka.iter().map(|k| k.name.clone()).collect();
    let metrics =
        crate::ingest::kafka::metrics::KafkaMetrics::new(pipeline.metrics.registry(), &names)?;
    let (tasks, rx) = kafka::start_all(&config.kafka, registry, &metrics, &wiring.shutdown)?;
    Ok((tasks, Some(rx)))
}

/// Starts the engine task.
fn start_engine(
    task: EngineTask,
    inputs: EngineInputs,
    heartbeat: Arc<crate::systemd::Heartbeat>,
) -> JoinHandle<()> {
    tokio::spawn(task.run(inputs, heartbeat))
}

/// Stops the tasks after shutdown was signalled: HTTP and BMP first, then the rest; the engine's
/// last events get through the naming task before the store commits and closes.
async fn stop(t: Tasks) {
    let _ = t.http.await;
    if let Some(task) = t.bmp {
        let _ = task.await;
    }
    if let Some(task) = t.rpki {
        let _ = task.await;
    }
    if let Some(task) = t.rtr {
        let _ = task.await;
    }
    let _ = t.sighup.await;
    t.reload.abort();
    let _ = t.watchdog.await;
    // A feed blocked in a read (a FIFO, a hung mount) must not hold up the exit.
    if tokio::time::timeout(Duration::from_secs(5), t.feeds)
        .await
        .is_err()
    {
        warn!("a feed did not stop within 5 s; exiting without it");
    }
    if let Some(task) = t.ris_live {
        // Its baseline reader may be in a blocking read, as the MRT feed's.
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    }
    for task in t.kafka {
        // Each commits what the engine applied, then leaves its group.
        let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
    }
    let _ = t.engine.await;
    // The engine task dropped the notifier: the targets send what is queued, for a while.
    if let Some(notify) = t.notify {
        notify.finish(Duration::from_secs(5)).await;
    }
    if let Some(naming) = t.naming {
        naming.finish().await;
    }
    if let Some(store) = t.store {
        // The last batch is committed before exit.
        let closed = tokio::task::spawn_blocking(move || store.close(Duration::from_secs(5))).await;
        match closed {
            Ok(Ok(n)) => info!(events = n, "event store closed"),
            Ok(Err(e)) => warn!(error = %e, "event store did not close cleanly"),
            Err(e) => warn!(error = %e, "event store close failed"),
        }
    }
}
