//! The engine task: the only owner of route state in the daemon.
//!
//! [`EngineTask`] holds the [`Pipeline`] and has one method per input; [`EngineTask::run`] is
//! the loop that waits on every input channel and calls them, one at a time, so no lock is ever
//! taken on route state. Inputs: MRT feed messages, BMP session outputs, Kafka batches
//! (acknowledged once applied), RPKI updates from the VRP file and RTR tasks (the engine
//! validates against their union; the ROA/ASPA watch compares old and new), registry swaps
//! (configuration reload), API queries, and a tick that resolves anomalies whose hold-down
//! has passed and mirrors the event store's counters into its metrics.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tracing::{error, info};

use super::feeds::FeedMessage;
use super::kafka::KafkaBatch;
use super::ris_live::RisLiveInput;
use super::rpki_task::{RpkiSource, RpkiUpdate};
use super::stopped;
use crate::clock::unix_now;
use crate::events::metrics::EventStoreMetrics;
use crate::events::store::StoreCounters;
use crate::events::Event;
use crate::http::{status_page, Query, Readiness, StatusBody};
use crate::ingest::bmp;
use crate::model::Feed;
use crate::pipeline::Pipeline;
use crate::reload::Swap;
use crate::rpki::watch::RpkiWatch;
use crate::rpki::{RpkiData, RpkiDelta};
use crate::systemd::Heartbeat;

/// How often released anomalies are checked against the wall clock and the event store's
/// counters mirrored into its metrics.
const TICK: Duration = Duration::from_secs(2);

/// The engine task's state.
pub struct EngineTask {
    pipeline: Pipeline,
    ready: Arc<Readiness>,
    /// The event store's metrics and the counters they mirror, when the store runs.
    store_metrics: Option<(EventStoreMetrics, Arc<StoreCounters>)>,
    /// Each RPKI source's latest data (file first); the engine validates against their union.
    rpki_sources: Vec<(RpkiSource, Arc<RpkiData>)>,
    /// The ROA and ASPA watch ([`EngineTask::watch_rpki`]).
    watch: RpkiWatcher,
}

/// The engine task's side of the RPKI watch: the union it last compared and whether the next
/// one is a baseline.
#[derive(Default)]
struct RpkiWatcher {
    watch: RpkiWatch,
    /// The union of the sources' data the watch saw last.
    seen: Option<Arc<RpkiData>>,
    /// The update being applied is a source's first data or a source's expiry: the union
    /// changes, but no ROA or ASPA did, so it becomes the baseline without events.
    baseline: bool,
}

/// The channels the engine task reads; a closed one is no longer waited on.
pub struct EngineInputs {
    /// The MRT feed.
    pub feed: mpsc::Receiver<FeedMessage>,
    /// BMP session outputs, when the BMP listener runs.
    pub bmp: Option<mpsc::Receiver<bmp::Output>>,
    /// RPKI data from the source tasks (VRP file, RTR), when one is configured.
    pub rpki: Option<mpsc::Receiver<RpkiUpdate>>,
    /// The RIS Live feed, when `[ris-live]` is enabled.
    pub ris_live: Option<mpsc::Receiver<RisLiveInput>>,
    /// The Kafka consumers' batches, when a `[[kafka]]` is configured.
    pub kafka: Option<mpsc::Receiver<KafkaBatch>>,
    /// Registry swaps from the reload task.
    pub swaps: mpsc::Receiver<Swap>,
    /// API queries.
    pub queries: mpsc::Receiver<Query>,
    /// Shutdown.
    pub shutdown: watch::Receiver<bool>,
}

impl EngineTask {
    /// The task over `pipeline`.
    pub fn new(
        pipeline: Pipeline,
        ready: Arc<Readiness>,
        store_metrics: Option<(EventStoreMetrics, Arc<StoreCounters>)>,
    ) -> Self {
        EngineTask {
            pipeline,
            ready,
            store_metrics,
            rpki_sources: Vec::new(),
            watch: RpkiWatcher::default(),
        }
    }

    /// The warning horizon of `roa_expiring` (`[rpki] roa-expiry-warning-days`).
    pub fn set_roa_expiry_warning_days(&mut self, days: u64) {
        self.watch.watch.set_warning_days(days);
    }

    /// An RPKI source's message, with the watch told first whether it is a baseline (a
    /// source's first data, or a source dropped): then [`EngineTask::on_rpki`].
    pub fn on_rpki_update(&mut self, update: RpkiUpdate) {
        self.watch.baseline = match &update {
            RpkiUpdate::Data { source, .. } => !self.rpki_sources.iter().any(|(s, _)| s == source),
            RpkiUpdate::Expired { .. } => true,
            RpkiUpdate::Failed { .. } => false,
        };
        self.on_rpki(update);
    }

    /// The ROA and ASPA watch after the engine got `new` (the union of the sources): events for
    /// what changed in the registry's ROAs and ASPAs (none for a baseline), the expiry index and
    /// its metric, expiring ROAs, and the ASPA count.
    fn watch_rpki(&mut self, new: Option<Arc<RpkiData>>, changed: Option<&RpkiDelta>, now: f64) {
        let empty = RpkiData::default();
        let registry = self.pipeline.engine.registry().clone();
        let w = &mut self.watch;
        let old = std::mem::replace(&mut w.seen, new.clone());
        let new_ref = new.as_deref().unwrap_or(&empty);
        let mut found = Vec::new();
        if !w.baseline && old.is_some() {
            let old_ref = old.as_deref().unwrap_or(&empty);
            found = w.watch.changes(&registry, old_ref, new_ref, changed);
        }
        w.baseline = false;
        // Without expiry times before and after (RTR, Routinator), the metric stays all zeros:
        // no pass over the registry for an incremental update.
        let had = w.watch.has_expiry_times();
        w.watch.index(&registry, &new_ref.vrps);
        if had || w.watch.has_expiry_times() {
            self.pipeline
                .metrics
                .set_roa_expiry(&w.watch.earliest_expiry(&registry));
        }
        self.pipeline.rpki_metrics.set_aspas(new_ref.aspas.len());
        found.extend(w.watch.expiring(&registry, now));
        self.record_watch_events(&found, now);
    }

    /// The periodic expiry check (from the tick, at most every minute), and a new index after a
    /// registry swap.
    fn watch_tick(&mut self, now: f64) {
        let registry = self.pipeline.engine.registry().clone();
        let w = &mut self.watch;
        let Some(data) = w.seen.clone() else {
            return;
        };
        if !w.watch.indexed_for(&registry) {
            w.watch.index(&registry, &data.vrps);
            self.pipeline
                .metrics
                .set_roa_expiry(&w.watch.earliest_expiry(&registry));
        } else if !w.watch.expiry_due(now) {
            return;
        }
        let found = w.watch.expiring(&registry, now);
        self.record_watch_events(&found, now);
    }

    fn record_watch_events(&mut self, found: &[crate::rpki::watch::WatchEvent], now: f64) {
        let m = &self.pipeline.rpki_metrics;
        m.sync_warnings_dropped(self.watch.watch.dropped_warnings());
        for e in found {
            m.watch_event(e.kind);
        }
        let events = found.iter().map(|e| Event::from_watch(e, now)).collect();
        self.pipeline.record_events(events);
    }

    /// A message from the MRT feed.
    pub fn on_feed(&mut self, msg: FeedMessage) {
        match msg {
            FeedMessage::Batch(b) => self.pipeline.ingest(Feed::Mrt, &b),
            FeedMessage::FileDone(r) => self.pipeline.file_done(&r),
            FeedMessage::Replaying(b) => self.pipeline.ingest_quietly(Feed::Mrt, &b),
            FeedMessage::Restored(r) => info!(
                file = %r.path.display(),
                routes = r.processed,
                matched = r.matched,
                "watched MRT file processed before the restart re-read (no events recorded)"
            ),
            FeedMessage::FileFailed(e) => {
                self.pipeline.metrics.record_mrt_file("failed");
                error!(error = %e, "MRT file could not be read");
            }
            FeedMessage::InitialLoadDone => {
                self.ready.mrt_loaded.store(true, Ordering::Release);
                info!(
                    routes = self.pipeline.engine.tracked_routes(),
                    "initial MRT files loaded; ready"
                );
            }
        }
    }

    /// What a BMP session produced.
    pub fn on_bmp(&mut self, out: bmp::Output) {
        self.pipeline.ingest_bmp(&out);
    }

    /// A batch from a Kafka consumer: applied, then acknowledged (the consumer commits its
    /// offsets only after this).
    pub fn on_kafka(&mut self, batch: KafkaBatch) {
        if batch.revoked {
            self.pipeline
                .ingest_revoked(Feed::Kafka, &batch.output.batch);
        } else {
            self.pipeline.ingest(Feed::Kafka, &batch.output.batch);
        }
        batch.done();
    }

    /// A message from the RIS Live task: its baseline (MRT files, counted as the MRT feed's
    /// reads; their routes are the collectors' `ris-live/…` routes) or the stream.
    pub fn on_ris_live(&mut self, msg: RisLiveInput) {
        match msg {
            RisLiveInput::Stream(b) => self.pipeline.ingest(Feed::RisLive, &b),
            RisLiveInput::Baseline(b) => self.pipeline.ingest(Feed::Mrt, &b),
            RisLiveInput::BaselineFile(r) => self.pipeline.file_done(&r),
            RisLiveInput::BaselineFailed(e) => {
                self.pipeline.metrics.record_mrt_file("failed");
                error!(error = %e, "RIS Live baseline file could not be read");
            }
            RisLiveInput::BaselineDone => {
                if let Some(flag) = &self.ready.ris_live_baseline {
                    flag.store(true, Ordering::Release);
                }
                info!(
                    routes = self.pipeline.engine.tracked_routes(),
                    "RIS Live baseline loaded; the stream starts"
                );
            }
        }
    }

    /// RPKI data from a source task: the union of the sources' latest data replaces the
    /// engine's, re-validating the routes the change can touch.
    pub fn on_rpki(&mut self, update: RpkiUpdate) {
        let now = unix_now();
        match update {
            RpkiUpdate::Data {
                source,
                data,
                changed,
            } => {
                if source == RpkiSource::File {
                    let metrics = &self.pipeline.rpki_metrics;
                    metrics.record_load(Some(data.vrps.len()), now);
                }
                self.rpki_sources.retain(|(s, _)| *s != source);
                self.rpki_sources.push((source, data));
                self.rpki_sources.sort_by_key(|(s, _)| *s as u8);
                self.apply_rpki(changed.as_ref(), now);
            }
            RpkiUpdate::Failed { source } => {
                if source == RpkiSource::File {
                    self.pipeline.rpki_metrics.record_load(None, now);
                }
            }
            RpkiUpdate::Expired { source } => {
                let before = self.rpki_sources.len();
                self.rpki_sources.retain(|(s, _)| *s != source);
                if self.rpki_sources.len() != before {
                    self.apply_rpki(None, now);
                }
            }
        }
    }

    /// Gives the engine the union of the sources' data; `changed` (the source's delta) bounds
    /// the routes validated again (a superset of what changed in the union is enough).
    fn apply_rpki(&mut self, changed: Option<&RpkiDelta>, now: f64) {
        let merged = match self.rpki_sources.as_slice() {
            [] => None,
            [(_, one)] => Some(one.clone()),
            [(_, a), rest @ ..] => Some(Arc::new(
                rest.iter().fold((**a).clone(), |acc, (_, d)| acc.union(d)),
            )),
        };
        let (vrps, aspas) = merged
            .as_ref()
            .map_or((0, 0), |d| (d.vrps.len(), d.aspas.len()));
        let revalidated = self.pipeline.engine.set_rpki(merged.clone(), changed, now);
        self.pipeline.resync();
        self.watch_rpki(merged, changed, now);
        info!(
            vrps,
            aspas, revalidated, "RPKI data applied; routes revalidated"
        );
    }

    /// A new registry from the reload task.
    pub fn on_swap(&mut self, swap: Swap) {
        let summary = self.pipeline.reload(swap.registry, swap.max_prefix_series);
        let engine = &mut self.pipeline.engine;
        engine.set_role_policy(swap.peer_roles, unix_now());
        let _ = swap.reply.send(summary);
    }

    /// An API question. Only the page asked for is built here (the engine is busy for
    /// O(page) summaries, plus one pass over the anomaly keys for an anomalies page); naming and
    /// JSON are done by the HTTP side.
    pub fn on_query(&self, q: Query) {
        let p = &self.pipeline;
        match q {
            Query::Prefixes {
                from,
                limit,
                filter,
                reply,
            } => {
                if !reply.is_closed() {
                    let _ = reply.send(p.engine.prefix_summaries_page(from, limit, &filter));
                }
            }
            Query::Anomalies {
                after,
                limit,
                filter,
                reply,
            } => {
                if !reply.is_closed() {
                    let _ = reply.send(p.engine.anomalies_page(after, limit, &filter));
                }
            }
            Query::Status(tx) => {
                let _ = tx.send(self.status_body());
            }
            Query::StatusPage(tx) => {
                if !tx.is_closed() {
                    let _ = tx.send(self.status_page());
                }
            }
        }
    }

    /// `/api/v1/status`.
    fn status_body(&self) -> StatusBody {
        let (p, ready) = (&self.pipeline, &self.ready);
        let registry = p.engine.registry();
        StatusBody {
            version: env!("CARGO_PKG_VERSION"),
            ready: ready.is_ready(),
            locations: registry.locations().len(),
            registered_prefixes: registry.prefixes().len(),
            tracked_routes: p.engine.tracked_routes(),
            peers: p.engine.peers_with_routes(),
            mrt_files_processed: p.files_processed(),
            routers: ready.bmp.as_ref().map(|b| b.snapshot()).unwrap_or_default(),
        }
    }

    /// What `/` shows: bounded (a page of prefixes, the most severe anomalies), built here in
    /// O(rows + anomaly instances); the HTML is written by the HTTP side.
    fn status_page(&self) -> status_page::Snapshot {
        let p = &self.pipeline;
        let registry = p.engine.registry();
        let prefixes =
            p.engine
                .prefix_summaries_page(0, status_page::MAX_PREFIX_ROWS, &Default::default());
        let mut locations: Vec<status_page::LocationInfo> = Vec::new();
        for id in 0..prefixes.items.len() as crate::registry::PrefixId {
            let l = registry.location_of(id);
            if !locations.iter().any(|i| i.name == l.name) {
                locations.push(status_page::LocationInfo::of(l));
            }
        }
        status_page::Snapshot {
            status: self.status_body(),
            anomalies: p.engine.anomaly_overview(status_page::MAX_ANOMALY_ROWS),
            prefixes,
            locations,
            feeds: p.metrics.feed_statuses(),
            rpki: p.rpki_metrics.state(),
            rtr: p
                .rtr_metrics
                .as_ref()
                .map_or((Vec::new(), false), |m| (m.servers(), m.expired())),
            taken_at: unix_now(),
        }
    }

    /// Every few seconds: resolves the anomalies whose hold-down has passed, and mirrors the
    /// event store's counters into its metrics.
    pub fn on_tick(&mut self) {
        self.pipeline.release_idle(unix_now());
        self.watch_tick(unix_now());
        if let Some((m, counters)) = &mut self.store_metrics {
            m.sync(counters);
        }
    }

    /// The loop: until shutdown, or until the query channel closes (the HTTP server is gone).
    /// A feed whose channel closes (no watched directory, no BMP) is no longer waited on; the
    /// task keeps answering queries.
    pub async fn run(mut self, inputs: EngineInputs, heartbeat: Arc<Heartbeat>) {
        let EngineInputs {
            mut feed,
            bmp,
            rpki,
            ris_live,
            kafka,
            mut swaps,
            mut queries,
            mut shutdown,
        } = inputs;
        let (mut bmp_open, mut bmp) = (bmp.is_some(), bmp.unwrap_or_else(closed));
        let (mut rpki_open, mut rpki) = (rpki.is_some(), rpki.unwrap_or_else(closed));
        let (mut ris_open, mut ris) = (ris_live.is_some(), ris_live.unwrap_or_else(closed));
        let (mut kafka_open, mut kafka) = (kafka.is_some(), kafka.unwrap_or_else(closed));
        let mut feed_open = true;
        let mut tick = tokio::time::interval(TICK);
        loop {
            heartbeat.beat();
            tokio::select! {
                msg = feed.recv(), if feed_open => match msg {
                    Some(msg) => self.on_feed(msg),
                    None => feed_open = false,
                },
                out = bmp.recv(), if bmp_open => match out {
                    Some(out) => self.on_bmp(out),
                    None => bmp_open = false,
                },
                msg = ris.recv(), if ris_open => match msg {
                    Some(msg) => self.on_ris_live(msg),
                    None => ris_open = false,
                },
                b = kafka.recv(), if kafka_open => match b {
                    Some(b) => self.on_kafka(b),
                    None => kafka_open = false,
                },
                _ = tick.tick() => self.on_tick(),
                v = rpki.recv(), if rpki_open => match v {
                    Some(v) => self.on_rpki_update(v),
                    None => rpki_open = false,
                },
                swap = swaps.recv() => if let Some(swap) = swap {
                    self.on_swap(swap);
                },
                q = queries.recv() => match q {
                    Some(q) => self.on_query(q),
                    None => break,
                },
                _ = stopped(&mut shutdown) => break,
            }
        }
    }
}

/// A receiver that never yields (for an input that is not configured).
fn closed<T>() -> mpsc::Receiver<T> {
    mpsc::channel(1).1
}
