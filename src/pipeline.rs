//! The batch → engine → metrics / events path, shared by `replay` and the daemon.
//!
//! Every feed hands its matched routes over as a [`Batch`] (BMP sessions as an
//! [`bmp::Output`]: a batch plus the peer-downs positioned among its updates). [`Pipeline`]
//! applies it to the [`Engine`], mirrors the prefixes the engine marked dirty into the
//! [`Metrics`] together with the batch's feed counters (one step, so a scrape sees a batch
//! counted and applied, or neither), and turns the engine's transitions and route events into
//! history [`Event`]s for whoever reads them (the replay report, the daemon's log and event
//! store). The daemon and the one-shot replay both go through here, so they cannot disagree.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::clock::unix_now;
use crate::config::Config;
use crate::engine::{AnomalyEvent, Engine, ReloadSummary};
use crate::error::Error;
use crate::events::{Event, Severity};
use crate::ingest::bmp;
use crate::ingest::mrt::{Batch, FileReport};
use crate::log::LogBudget;
use crate::metrics::Metrics;
use crate::model::Feed;
use crate::registry::Registry;
use crate::reload::ReloadMetrics;
use crate::rpki::metrics::RpkiMetrics;

/// Event log lines written per [`EVENT_LOG_INTERVAL`] at most (the rest are counted).
const EVENT_LOG_BURST: u32 = 200;
/// The interval of the event log budget.
const EVENT_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Where a pipeline's events go.
#[derive(Default)]
struct EventReaders {
    /// Anomaly transitions kept for the replay report.
    history: Option<Vec<AnomalyEvent>>,
    /// Every event (anomaly and route events), kept for the replay report.
    all_events: Option<Vec<Event>>,
    /// Whether (and how many) events are logged (the daemon); a replay keeps or drops them
    /// instead.
    log: Option<LogBudget>,
    /// Where the daemon sends events (the event store), if anywhere.
    sink: Option<Box<dyn FnMut(Vec<Event>) + Send>>,
    /// The daemon's notification targets (`[[notify]]`), if any: anomaly transitions only.
    notify: Option<crate::notify::Notifier>,
}

impl EventReaders {
    fn any(&self) -> bool {
        self.history.is_some()
            || self.all_events.is_some()
            || self.log.is_some()
            || self.sink.is_some()
            || self.notify.is_some()
    }
}

/// The ingest → engine → metrics path shared by `replay` and `run`.
pub struct Pipeline {
    /// The engine.
    pub engine: Engine,
    /// The exposition, the per-prefix series and the feed counters.
    pub metrics: Metrics,
    /// The VRP file's metrics.
    pub rpki_metrics: RpkiMetrics,
    /// The RTR task's metrics, when `[rpki] rtr` is set (read for the status page).
    pub rtr_metrics: Option<crate::rpki::rtr::metrics::RtrMetrics>,
    /// Configuration load metrics (shared with the reload task).
    pub reload_metrics: ReloadMetrics,
    readers: EventReaders,
    files_processed: u64,
}

impl Pipeline {
    /// A pipeline over `config`'s registry and settings whose events are logged (the
    /// daemon's).
    pub fn new(config: &Config) -> Result<Self, Error> {
        let registry = config.shared_registry();
        let metrics = Metrics::new(&registry, config.metrics.max_prefix_series)?;
        let rpki_metrics = RpkiMetrics::new(metrics.registry())?;
        let reload_metrics = ReloadMetrics::new(metrics.registry())?;
        reload_metrics.loaded(unix_now());
        let mut engine = Engine::new(registry);
        engine.set_hold_down(config.anomalies.hold_down_seconds as f64);
        engine.set_role_policy(Arc::new(config.rpki.peer_roles.clone()), 0.0);
        Ok(Pipeline {
            engine,
            metrics,
            rpki_metrics,
            rtr_metrics: None,
            reload_metrics,
            readers: EventReaders {
                log: Some(LogBudget::new(
                    EVENT_LOG_BURST,
                    EVENT_LOG_INTERVAL,
                    Instant::now(),
                )),
                ..EventReaders::default()
            },
            files_processed: 0,
        })
    }

    /// A replay's pipeline: events are not logged; with `keep_history` the anomaly transitions
    /// and every event are kept in memory for the report (and route events are built), without
    /// it none are.
    pub fn for_replay(config: &Config, keep_history: bool) -> Result<Self, Error> {
        let mut p = Pipeline::new(config)?;
        p.readers = EventReaders {
            history: keep_history.then(Vec::new),
            all_events: keep_history.then(Vec::new),
            ..EventReaders::default()
        };
        p.engine.set_route_events(keep_history);
        p.engine.set_anomaly_events(keep_history);
        Ok(p)
    }

    /// Applies one batch from `feed`: its routes, and the sessions that went down among them
    /// (in feed order).
    pub fn ingest(&mut self, feed: Feed, batch: &Batch) {
        let removed = apply_batch(&mut self.engine, batch);
        // One line per batch, and only when routes went (as before for BMP): the sessions are
        // counted in routewatch_feed_sessions_down_total either way.
        if removed > 0 {
            info!(
                feed = feed.as_str(),
                sessions = batch.sources_down.len(),
                routes = removed,
                "peer sessions down: their routes withdrawn"
            );
        }
        self.engine.release_due(self.engine.clock());
        self.after_updates(Some((feed, batch)));
    }

    /// Applies a batch whose events are already in the history (a watched file processed
    /// before a restart, re-read to rebuild route state): route state, anomalies and metrics are
    /// updated as by [`Pipeline::ingest`], but its events are neither logged nor stored and its
    /// anomaly openings are not counted again in `routewatch_anomalies_opened_total`.
    /// An anomaly the re-read leaves in its hold-down resolves by the wall clock later; its
    /// resolution is then recorded with the same identity as before the restart, which the
    /// event store keeps once.
    pub fn ingest_quietly(&mut self, feed: Feed, batch: &Batch) {
        let readers = std::mem::take(&mut self.readers);
        self.metrics.set_quiet(true);
        self.ingest(feed, batch);
        self.metrics.set_quiet(false);
        self.readers = readers;
    }

    /// Applies what a BMP session produced (routes and peer-downs, in stream order).
    pub fn ingest_bmp(&mut self, out: &bmp::Output) {
        self.ingest(Feed::Bmp, &out.batch);
    }

    /// Applies the withdrawals of Kafka routers whose partitions the consumer group moved to
    /// another instance: route state and metrics as for any batch, but not counted as sessions
    /// going down (`routewatch_feed_sessions_down_total`); the consumer counts them as revoked.
    pub fn ingest_revoked(&mut self, feed: Feed, batch: &Batch) {
        let removed = apply_batch(&mut self.engine, batch);
        if removed > 0 {
            info!(
                feed = feed.as_str(),
                sources = batch.sources_down.len(),
                routes = removed,
                "routers moved to another consumer group member: their routes withdrawn here"
            );
        }
        self.engine.release_due(self.engine.clock());
        self.after_updates(None);
    }

    /// Moves to a new registry (configuration reload): route state is kept, the per-prefix
    /// series follow the new registry, and the transitions go out like any others.
    pub fn reload(&mut self, registry: Arc<Registry>, max_prefix_series: usize) -> ReloadSummary {
        let summary = self.engine.reload(registry.clone(), unix_now());
        self.metrics.set_registry(&registry, max_prefix_series);
        self.after_updates(None);
        summary
    }

    /// Metrics and events after a change made directly on the engine (VRP reload).
    pub fn resync(&mut self) {
        self.after_updates(None);
    }

    /// Resolves the anomalies whose hold-down has passed on the wall clock `now` (the daemon's
    /// tick: a feed that went quiet must not keep them open).
    pub fn release_idle(&mut self, now: f64) {
        if self.engine.release_idle(now) > 0 {
            self.after_updates(None);
        }
    }

    /// Resolves every anomaly still in its hold-down (the end of a replay: no more data will
    /// bring them back).
    pub fn flush_releases(&mut self) {
        if self.engine.flush_releases() > 0 {
            self.after_updates(None);
        }
    }

    /// Metrics sync (with the batch's counts, in one step: a scrape sees a batch counted and
    /// applied, or neither) and events after a batch or an engine-wide change.
    fn after_updates(&mut self, batch: Option<(Feed, &Batch)>) {
        let dirty = self.engine.take_dirty();
        self.metrics.sync(&self.engine, &dirty, batch);
        let anomalies = self.engine.drain_events();
        let routes = self.engine.drain_route_events();
        if (anomalies.is_empty() && routes.is_empty()) || !self.readers.any() {
            return;
        }
        let received = unix_now();
        let mut events: Vec<Event> = anomalies
            .iter()
            .map(|a| Event::from_anomaly(a, received))
            .chain(routes.iter().map(|r| Event::from_route(r, received)))
            .collect();
        // Within a batch, keep BGP-time order (stable: same-time events stay in engine order).
        events.sort_by(|a, b| a.time.total_cmp(&b.time));
        let r = &mut self.readers;
        if let Some(budget) = &mut r.log {
            if let Some(n) = budget.due(Instant::now()) {
                warn!(
                    lines = n,
                    interval_seconds = EVENT_LOG_INTERVAL.as_secs(),
                    "event log lines left out (more than {EVENT_LOG_BURST} in the interval); the events are in the event history"
                );
            }
            let mut suppressed = 0;
            for ev in &events {
                if budget.allow() {
                    log_event(ev);
                } else {
                    suppressed += 1;
                }
            }
            self.metrics.record_log_suppressed("events", suppressed);
        }
        if let Some(n) = &r.notify {
            n.offer(&anomalies, self.engine.registry(), received);
        }
        if let Some(h) = &mut r.history {
            h.extend(anomalies);
        }
        if let Some(all) = &mut r.all_events {
            all.extend(events.iter().cloned());
        }
        if let Some(sink) = &mut r.sink {
            sink(events);
        }
    }

    /// Events that do not come from the engine's transitions (the RPKI watch): logged at info
    /// level within the event log budget, kept for a replay's report, sent to the event store.
    /// Notification targets get anomaly transitions only, so not these.
    pub fn record_events(&mut self, events: Vec<Event>) {
        if events.is_empty() {
            return;
        }
        let r = &mut self.readers;
        if let Some(budget) = &mut r.log {
            let mut suppressed = 0;
            for ev in &events {
                if budget.allow() {
                    info!(
                        event = ev.kind.as_str(),
                        severity = ev.severity.as_str(),
                        location = %ev.location,
                        prefix = %ev.prefix,
                        announced = %ev.announced,
                        origin = ev.origin.unwrap_or(0),
                        "{}",
                        ev.description
                    );
                } else {
                    suppressed += 1;
                }
            }
            self.metrics.record_log_suppressed("events", suppressed);
        }
        if let Some(all) = &mut r.all_events {
            all.extend(events.iter().cloned());
        }
        if let Some(sink) = &mut r.sink {
            sink(events);
        }
    }

    /// Sends every future event to `sink` (the daemon's event store).
    pub fn set_event_sink(&mut self, sink: impl FnMut(Vec<Event>) + Send + 'static) {
        self.readers.sink = Some(Box::new(sink));
    }

    /// Sends every future anomaly transition of live processing to `notifier` (the daemon's
    /// `[[notify]]` targets); a quiet re-read ([`Pipeline::ingest_quietly`]) sends none.
    pub fn set_notifier(&mut self, notifier: crate::notify::Notifier) {
        self.readers.notify = Some(notifier);
    }

    /// Takes every event kept so far (replay), in BGP-time order.
    pub fn take_all_events(&mut self) -> Vec<Event> {
        let mut v = self
            .readers
            .all_events
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default();
        v.sort_by(|a, b| a.time.total_cmp(&b.time));
        v
    }

    /// Takes the kept anomaly transitions.
    pub fn take_history(&mut self) -> Vec<AnomalyEvent> {
        self.readers
            .history
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Records a finished MRT file.
    pub fn file_done(&mut self, report: &FileReport) {
        self.files_processed += 1;
        let result = report.result();
        self.metrics.record_mrt_file(result);
        info!(
            file = %report.path.display(),
            routes = report.processed,
            matched = report.matched,
            errors = report.error_count(),
            "MRT file processed"
        );
    }

    /// MRT files finished so far.
    pub fn files_processed(&self) -> u64 {
        self.files_processed
    }
}

/// Applies a batch to `engine`: the updates, the sessions that went down and the peers' BGP
/// Roles (RFC 9234, from BMP Peer Ups), in feed order; at one position a session going down
/// comes before a role (a new session's Peer Up follows the old session's end). Returns the
/// routes removed by the sessions going down.
pub fn apply_batch(engine: &mut Engine, batch: &Batch) -> u64 {
    let (updates, generation) = (&batch.updates, batch.generation);
    if batch.sources_down.is_empty() && batch.peer_roles.is_empty() {
        engine.apply_batch(updates, generation);
        return 0;
    }
    let mut removed = 0;
    let mut next = 0;
    let (mut downs, mut roles) = (
        batch.sources_down.iter().peekable(),
        batch.peer_roles.iter().peekable(),
    );
    loop {
        let down_first = match (downs.peek(), roles.peek()) {
            (None, None) => break,
            (Some(d), Some(r)) => d.after <= r.after,
            (d, _) => d.is_some(),
        };
        let after = if down_first {
            downs.peek().map(|d| d.after)
        } else {
            roles.peek().map(|r| r.after)
        };
        let upto = after.unwrap_or(0).min(updates.len());
        engine.apply_batch(updates.get(next..upto).unwrap_or(&[]), generation);
        next = next.max(upto);
        if down_first {
            if let Some(ev) = downs.next() {
                removed += engine.peer_down(&ev.key, ev.timestamp);
            }
        } else if let Some(seen) = roles.next() {
            engine.set_peer_role(&seen.peer, seen.role, seen.timestamp);
        }
    }
    engine.apply_batch(updates.get(next..).unwrap_or(&[]), generation);
    removed
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
    if ev.severity >= Severity::Warning {
        emit!(warn);
    } else {
        emit!(info);
    }
}
