//! `[[kafka]]`: raw BMP (OpenBMP format) from Kafka, one consumer group member per section.
//!
//! One task per `[[kafka]]` runs an rdkafka [`StreamConsumer`] (librdkafka, built from its
//! bundled source) on tokio. Each message goes through [`Routers`] (the OpenBMP header, then the
//! router's [`crate::ingest::bmp::RouterSession`], the same one the TCP listener uses); the
//! outputs of up to `batch-messages` messages go to the engine task as one [`KafkaBatch`] on a
//! bounded channel (`queue-batches`): a slow engine slows the consumer, and the backlog stays
//! in Kafka, where `routewatch_kafka_consumer_lag` shows it.
//!
//! # Delivery: at least once
//!
//! librdkafka's automatic commits are off. Every batch carries a sequence number; the engine
//! task, after applying a batch, publishes its number on a watch channel. Every
//! `commit-interval-ms` the task commits (synchronously, the result counted; a failed commit's
//! offsets are carried by the next one), for each partition, the offset after the last message
//! of the newest batch the engine applied — never an offset whose routes are still queued. A
//! crash or restart therefore re-reads at most the messages after the last commit; applying
//! BMP messages again is idempotent (a route replaces itself, a withdrawal of nothing is
//! nothing), and a message at an offset this process already applied is counted in
//! `routewatch_kafka_replayed_messages_total`.
//!
//! # Group membership
//!
//! The assignment strategy defaults to `cooperative-sticky` (incremental rebalancing: a
//! rebalance moves only the partitions that change owner; `[kafka.options]` may set another).
//! When partitions are revoked, the offsets applied so far are committed synchronously inside
//! the rebalance callback, pending offsets of those partitions are forgotten (a late commit must
//! not move the new owner back), and the routers read from them are closed: their routes are
//! withdrawn from this instance (counted in `routewatch_kafka_revoked_routers_total`, not as
//! BMP sessions going down). Routers of newly assigned partitions start fresh sessions with
//! their first message.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::ClientContext;
use tokio::sync::{mpsc, watch, Notify};
use tracing::{debug, info, warn};

use crate::clock::unix_now;
use crate::config::{KafkaConfig, KafkaTopics};
use crate::error::Error;
use crate::ingest::bmp::Output;
use crate::ingest::kafka::metrics::KafkaMetrics;
use crate::ingest::kafka::{Handled, Limits, Partition, Routers};
use crate::log::LogBudget;
use crate::registry::SharedRegistry;

/// What a consumer hands the engine task: the outputs of some messages (or the withdrawals of
/// revoked routers), and how to tell the consumer it was applied.
pub struct KafkaBatch {
    /// Routes, sources down, errors, in stream order.
    pub output: Output,
    /// The routers' sessions were closed because the group revoked their partitions: applied
    /// without counting BMP sessions down.
    pub revoked: bool,
    /// The batch's sequence number (increasing per consumer).
    pub seq: u64,
    /// Set to `seq` once applied.
    pub applied: Arc<watch::Sender<u64>>,
}

impl KafkaBatch {
    /// Tells the consumer the batch's routes reached the engine.
    pub fn done(&self) {
        self.applied.send_replace(self.seq);
    }
}

/// Offsets waiting for the engine, and those it has applied.
#[derive(Default)]
struct Ledger {
    /// Batches sent, oldest first: their number and, per partition, the offset after their
    /// last message.
    pending: VecDeque<(u64, Vec<(Partition, i64)>)>,
    /// Offsets applied, not yet committed.
    confirmed: BTreeMap<Partition, i64>,
}

impl Ledger {
    /// Moves the batches up to `applied` to `confirmed`.
    fn advance(&mut self, applied: u64) {
        while self.pending.front().is_some_and(|(s, _)| *s <= applied) {
            if let Some((_, offsets)) = self.pending.pop_front() {
                for (p, o) in offsets {
                    let e = self.confirmed.entry(p).or_insert(o);
                    *e = (*e).max(o);
                }
            }
        }
    }

    /// The confirmed offsets (of `only`, if given), taken.
    fn take(&mut self, only: Option<&[Partition]>) -> TopicPartitionList {
        let mut tpl = TopicPartitionList::new();
        let keys: Vec<Partition> = self
            .confirmed
            .keys()
            .filter(|p| only.is_none_or(|o| o.contains(p)))
            .cloned()
            .collect();
        for p in keys {
            if let Some(o) = self.confirmed.remove(&p) {
                let _ = tpl.add_partition_offset(&p.topic, p.partition, Offset::Offset(o));
            }
        }
        tpl
    }

    /// Forgets everything about `gone` (revoked partitions).
    fn forget(&mut self, gone: &[Partition]) {
        for (_, offsets) in &mut self.pending {
            offsets.retain(|(p, _)| !gone.contains(p));
        }
        self.confirmed.retain(|p, _| !gone.contains(p));
    }
}

/// A group event for the consumer task.
enum GroupEvent {
    Assigned(Vec<Partition>),
    Revoked(Vec<Partition>),
}

/// The librdkafka callbacks' side: rebalances, commits, statistics, errors and logs.
struct Context {
    name: String,
    metrics: KafkaMetrics,
    max_lag_partitions: usize,
    ledger: Arc<Mutex<Ledger>>,
    applied: watch::Receiver<u64>,
    assigned: Mutex<BTreeSet<Partition>>,
    events: Mutex<Vec<GroupEvent>>,
    wake: Notify,
    log: Mutex<LogBudget>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn partitions(tpl: &TopicPartitionList) -> Vec<Partition> {
    tpl.elements()
        .iter()
        .map(|e| Partition {
            topic: Arc::from(e.topic()),
            partition: e.partition(),
        })
        .collect()
}

impl ClientContext for Context {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        let consumer = self.name.as_str();
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error
            | RDKafkaLogLevel::Warning => {
                if lock(&self.log).allow() {
                    warn!(consumer, facility = fac, "librdkafka: {log_message}");
                }
            }
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                info!(consumer, facility = fac, "librdkafka: {log_message}")
            }
            RDKafkaLogLevel::Debug => debug!(consumer, facility = fac, "librdkafka: {log_message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.metrics.consumer_error(&self.name);
        if lock(&self.log).allow() {
            warn!(consumer = %self.name, %error, reason, "Kafka client error (it retries)");
        }
    }

    fn stats(&self, statistics: Statistics) {
        let assigned = lock(&self.assigned);
        for (topic, t) in &statistics.topics {
            for (&partition, p) in &t.partitions {
                if partition < 0 || p.consumer_lag < 0 {
                    continue;
                }
                let key = Partition {
                    topic: Arc::from(topic.as_str()),
                    partition,
                };
                if assigned.contains(&key) {
                    self.metrics.set_lag(
                        &self.name,
                        topic,
                        partition,
                        p.consumer_lag,
                        self.max_lag_partitions,
                    );
                }
            }
        }
    }
}

impl ConsumerContext for Context {
    fn pre_rebalance(&self, base: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let gone = partitions(tpl);
            self.metrics.rebalance(&self.name, "revoke");
            // What the engine applied of these partitions is committed before they go, so the
            // next owner resumes there; what is still queued is re-read by it (at least once).
            let commit = {
                let mut ledger = lock(&self.ledger);
                ledger.advance(*self.applied.borrow());
                let tpl = ledger.take(Some(&gone));
                ledger.forget(&gone);
                tpl
            };
            if commit.count() > 0 {
                let result = base.commit(&commit, CommitMode::Sync);
                self.metrics.commit(&self.name, result.is_ok());
                if let Err(e) = result {
                    warn!(consumer = %self.name, error = %e, "commit at revocation failed");
                }
            }
            {
                let mut assigned = lock(&self.assigned);
                for p in &gone {
                    assigned.remove(p);
                    self.metrics.remove_lag(&self.name, &p.topic, p.partition);
                }
                self.metrics.set_partitions(&self.name, assigned.len());
            }
            info!(consumer = %self.name, partitions = %list(&gone), "Kafka partitions revoked");
            lock(&self.events).push(GroupEvent::Revoked(gone));
            self.wake.notify_one();
        }
    }

    fn post_rebalance(&self, _base: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                let got = partitions(tpl);
                self.metrics.rebalance(&self.name, "assign");
                {
                    let mut assigned = lock(&self.assigned);
                    assigned.extend(got.iter().cloned());
                    self.metrics.set_partitions(&self.name, assigned.len());
                }
                info!(consumer = %self.name, partitions = %list(&got), "Kafka partitions assigned");
                lock(&self.events).push(GroupEvent::Assigned(got));
                self.wake.notify_one();
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(e) => {
                self.metrics.rebalance(&self.name, "error");
                warn!(consumer = %self.name, error = %e, "Kafka rebalance error");
            }
        }
    }
}

fn list(ps: &[Partition]) -> String {
    ps.iter()
        .map(|p| format!("{}[{}]", p.topic, p.partition))
        .collect::<Vec<_>>()
        .join(",")
}

/// The librdkafka properties of `config`: routewatch's own, then the operator's
/// (`[kafka.options]`, which cannot name routewatch's own: the configuration refuses them).
pub fn client_config(config: &KafkaConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", config.brokers.join(","))
        .set("group.id", &config.group_id)
        .set("client.id", format!("routewatch-{}", config.name))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", config.start.as_str())
        .set("enable.partition.eof", "false")
        .set(
            "statistics.interval.ms",
            config.statistics_interval_ms.to_string(),
        )
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set("fetch.message.max.bytes", "1048576");
    for (k, v) in &config.options {
        c.set(k, v);
    }
    c.set_log_level(RDKafkaLogLevel::Info);
    c
}

/// A consumer task, built by [`KafkaTask::start`].
pub struct KafkaTask {
    config: KafkaConfig,
    consumer: StreamConsumer<Context>,
    registry: SharedRegistry,
    tx: mpsc::Sender<KafkaBatch>,
    applied: Arc<watch::Sender<u64>>,
    metrics: KafkaMetrics,
    shutdown: watch::Receiver<bool>,
}

impl KafkaTask {
    /// Creates the consumer and subscribes it (no network round trip: librdkafka connects in
    /// the background); an invalid property is an error naming the consumer.
    pub fn start(
        config: KafkaConfig,
        registry: SharedRegistry,
        tx: mpsc::Sender<KafkaBatch>,
        metrics: KafkaMetrics,
        shutdown: watch::Receiver<bool>,
    ) -> Result<KafkaTask, Error> {
        let (applied, applied_rx) = watch::channel(0u64);
        let context = Context {
            name: config.name.clone(),
            metrics: metrics.clone(),
            max_lag_partitions: config.max_lag_partitions,
            ledger: Arc::new(Mutex::new(Ledger::default())),
            applied: applied_rx,
            assigned: Mutex::new(BTreeSet::new()),
            events: Mutex::new(Vec::new()),
            wake: Notify::new(),
            log: Mutex::new(LogBudget::new(10, Duration::from_secs(60), Instant::now())),
        };
        let consumer: StreamConsumer<Context> = client_config(&config)
            .create_with_context(context)
            .map_err(|e| Error::Kafka(format!("kafka consumer {}: {e}", config.name)))?;
        let subscribed = match &config.topics {
            KafkaTopics::List(t) => {
                let t: Vec<&str> = t.iter().map(String::as_str).collect();
                consumer.subscribe(&t)
            }
            KafkaTopics::Pattern(p) => consumer.subscribe(&[p.as_str()]),
        };
        subscribed
            .map_err(|e| Error::Kafka(format!("kafka consumer {}: subscribe: {e}", config.name)))?;
        let secrets = config.secret_options.join(",");
        info!(
            consumer = %config.name,
            brokers = %config.brokers.join(","),
            group = %config.group_id,
            topics = ?config.topics,
            start = config.start.as_str(),
            secret_options = %secrets,
            "Kafka consumer subscribed"
        );
        Ok(KafkaTask {
            config,
            consumer,
            registry,
            tx,
            applied: Arc::new(applied),
            metrics,
            shutdown,
        })
    }

    /// Consumes until shutdown.
    pub async fn run(self) {
        let KafkaTask {
            config,
            consumer,
            registry,
            tx,
            applied,
            metrics,
            mut shutdown,
        } = self;
        let mut sink = Sink {
            name: config.name.clone(),
            tx,
            applied,
            metrics,
            ledger: consumer.context().ledger.clone(),
            routers: Routers::new(Limits {
                max_routers: config.max_routers,
                max_peers_per_router: config.max_peers_per_router,
                max_frame_bytes: config.max_message_bytes,
            }),
            state: Batching::default(),
            seen: HashMap::new(),
            budget: LogBudget::new(10, Duration::from_secs(60), Instant::now()),
            registry,
        };
        let mut commit_tick =
            tokio::time::interval(Duration::from_millis(config.commit_interval_ms));
        commit_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let flush_after = Duration::from_millis(20);
        let context = consumer.context().clone();
        loop {
            let deadline = sink.state.first.map(|t| t + flush_after);
            // The branches only decide (no await in them: a borrowed message is not Send); the
            // waiting for the engine happens below.
            let step = tokio::select! {
                biased;
                _ = shutdown.wait_for(|s| *s) => Step::Stop,
                _ = context.wake.notified() => Step::GroupEvents(None),
                _ = commit_tick.tick() => Step::Commit,
                _ = sleep_until(deadline), if deadline.is_some() => Step::Flush,
                m = consumer.recv() => {
                    if lock(&context.events).is_empty() {
                        match m {
                            Ok(msg) => sink.message(
                                msg.topic(),
                                msg.partition(),
                                msg.offset(),
                                msg.payload().unwrap_or_default(),
                            ),
                            Err(e) => sink.consume_error(&e),
                        }
                        Step::Consumed
                    } else {
                        // A rebalance ran inside recv: its revocations come first, and the
                        // message is copied to wait for them.
                        Step::GroupEvents(Some(m.map(|m| m.detach())))
                    }
                }
            };
            let go_on = match step {
                Step::Stop => false,
                Step::Commit => {
                    sink.commit(&consumer);
                    true
                }
                Step::Flush => sink.flush(false).await,
                Step::GroupEvents(owned) => {
                    let ok = sink.group_events(&context).await;
                    match owned {
                        Some(Ok(msg)) => sink.message(
                            msg.topic(),
                            msg.partition(),
                            msg.offset(),
                            msg.payload().unwrap_or_default(),
                        ),
                        Some(Err(e)) => sink.consume_error(&e),
                        None => {}
                    }
                    ok
                }
                Step::Consumed => true,
            };
            let go_on =
                go_on && (sink.state.messages < config.batch_messages || sink.flush(false).await);
            if !go_on {
                break;
            }
        }
        // What the engine applied is committed before leaving the group; what it did not is
        // read again after the restart (at least once).
        sink.commit(&consumer);
        info!(consumer = %config.name, "Kafka consumer stopped");
    }
}

/// What the consumer loop does next.
enum Step {
    Stop,
    Commit,
    Flush,
    /// Group events to handle, then the message that came with them, if any.
    GroupEvents(Option<Result<rdkafka::message::OwnedMessage, KafkaError>>),
    Consumed,
}

/// The consumer task's state besides the consumer itself.
struct Sink {
    name: String,
    tx: mpsc::Sender<KafkaBatch>,
    applied: Arc<watch::Sender<u64>>,
    metrics: KafkaMetrics,
    ledger: Arc<Mutex<Ledger>>,
    routers: Routers,
    state: Batching,
    /// The highest offset applied per partition in this process: at or below it, a replay.
    seen: HashMap<Partition, i64>,
    budget: LogBudget,
    registry: SharedRegistry,
}

impl Sink {
    /// One consumed message into the batch being built.
    fn message(&mut self, topic: &str, partition: i32, offset: i64, payload: &[u8]) {
        let name = self.name.as_str();
        let part = Partition {
            topic: Arc::from(topic),
            partition,
        };
        let now = unix_now();
        self.metrics.message(name, payload.len(), now);
        let before = self.seen.entry(part.clone()).or_insert(-1);
        if offset <= *before {
            self.metrics.replayed(name);
        } else {
            *before = offset;
        }
        let registry = self.registry.current();
        let state = &mut self.state;
        match self
            .routers
            .handle(&part, payload, &registry, now, &mut state.output)
        {
            Handled::Applied { router, new_router } => {
                if new_router {
                    info!(consumer = name, %router, topic, partition, "router seen: BMP session started");
                    self.metrics.set_routers(name, self.routers.len());
                }
            }
            Handled::Skipped { label, detail } => {
                self.metrics.skipped(name);
                if self.budget.allow() {
                    warn!(consumer = name, topic, partition, offset, error = label, %detail, "Kafka message skipped");
                }
            }
        }
        for e in state.output.errors.drain(..) {
            if self.budget.allow() {
                warn!(consumer = name, error = e.label, detail = %e.detail, "BMP message problem");
            }
        }
        state.add(part, offset + 1);
    }

    fn consume_error(&mut self, e: &KafkaError) {
        self.metrics.consumer_error(&self.name);
        if self.budget.allow() {
            warn!(consumer = %self.name, error = %e, "Kafka consume error");
        }
    }

    /// Handles the group events the callbacks queued; `false` when the engine is gone.
    async fn group_events(&mut self, context: &Context) -> bool {
        let events = std::mem::take(&mut *lock(&context.events));
        for e in events {
            match e {
                GroupEvent::Revoked(gone) => {
                    // Messages read before the revocation go first; their offsets in revoked
                    // partitions are no longer this instance's to commit (the new owner
                    // resumes from the last commit, at least once).
                    self.state.offsets.retain(|(p, _)| !gone.contains(p));
                    if !self.flush(false).await {
                        return false;
                    }
                    let closed = self
                        .routers
                        .revoke(&gone, unix_now(), &mut self.state.output);
                    self.metrics.revoked(&self.name, closed.len());
                    self.metrics.set_routers(&self.name, self.routers.len());
                    if !closed.is_empty() {
                        info!(
                            consumer = %self.name,
                            routers = closed.len(),
                            "routers of revoked partitions dropped from this instance (another instance reads them now)"
                        );
                    }
                    if !self.flush(true).await {
                        return false;
                    }
                }
                GroupEvent::Assigned(got) => debug!(
                    consumer = %self.name,
                    partitions = got.len(),
                    "assigned partitions: their routers start fresh sessions with their next message"
                ),
            }
        }
        true
    }

    /// Sends the batch (if it has anything) to the engine; `false` when the engine is gone.
    async fn flush(&mut self, revoked: bool) -> bool {
        let state = &mut self.state;
        state.first = None;
        state.messages = 0;
        if state.output.is_empty() && state.offsets.is_empty() {
            return true;
        }
        let seq = {
            let mut ledger = lock(&self.ledger);
            let seq = ledger
                .pending
                .back()
                .map_or(1, |(s, _)| s + 1)
                .max(*self.applied.borrow() + 1);
            ledger
                .pending
                .push_back((seq, std::mem::take(&mut state.offsets)));
            seq
        };
        let batch = KafkaBatch {
            output: std::mem::take(&mut state.output),
            revoked,
            seq,
            applied: self.applied.clone(),
        };
        self.tx.send(batch).await.is_ok()
    }

    /// The offsets the engine applied, taken from the ledger.
    fn applied_offsets(&self) -> TopicPartitionList {
        let mut ledger = lock(&self.ledger);
        ledger.advance(*self.applied.borrow());
        ledger.take(None)
    }

    /// Commits the offsets the engine applied (synchronously: one round trip to the group
    /// coordinator every `commit-interval-ms`, on a thread allowed to block, so that the result
    /// is known and counted).
    fn commit(&mut self, consumer: &StreamConsumer<Context>) {
        let tpl = self.applied_offsets();
        if tpl.count() == 0 {
            return;
        }
        let result = tokio::task::block_in_place(|| consumer.commit(&tpl, CommitMode::Sync));
        self.metrics.commit(&self.name, result.is_ok());
        if let Err(e) = result {
            // The offsets go back to the ledger: the next commit carries them again.
            let mut ledger = lock(&self.ledger);
            for e in tpl.elements() {
                if let Offset::Offset(o) = e.offset() {
                    let p = Partition {
                        topic: Arc::from(e.topic()),
                        partition: e.partition(),
                    };
                    let c = ledger.confirmed.entry(p).or_insert(o);
                    *c = (*c).max(o);
                }
            }
            drop(ledger);
            if self.budget.allow() {
                warn!(consumer = %self.name, error = %e, "offset commit failed (retried with the next commit)");
            }
        }
    }
}

/// The batch being built.
#[derive(Default)]
struct Batching {
    output: Output,
    /// Per partition, the offset after its last message in the batch.
    offsets: Vec<(Partition, i64)>,
    messages: usize,
    /// When the batch's first message arrived.
    first: Option<tokio::time::Instant>,
}

impl Batching {
    fn add(&mut self, p: Partition, next: i64) {
        self.messages += 1;
        if self.first.is_none() {
            self.first = Some(tokio::time::Instant::now());
        }
        match self.offsets.iter_mut().find(|(q, _)| *q == p) {
            Some((_, o)) => *o = (*o).max(next),
            None => self.offsets.push((p, next)),
        }
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Starts every `[[kafka]]` consumer; their batches come back on one channel.
pub fn start_all(
    configs: &[KafkaConfig],
    registry: &SharedRegistry,
    metrics: &KafkaMetrics,
    shutdown: &watch::Receiver<bool>,
) -> Result<(Vec<tokio::task::JoinHandle<()>>, mpsc::Receiver<KafkaBatch>), Error> {
    let queue = configs.iter().map(|c| c.queue_batches).max().unwrap_or(16);
    let (tx, rx) = mpsc::channel(queue);
    let mut tasks = Vec::with_capacity(configs.len());
    for c in configs {
        let task = KafkaTask::start(
            c.clone(),
            registry.clone(),
            tx.clone(),
            metrics.clone(),
            shutdown.clone(),
        )?;
        tasks.push(tokio::spawn(task.run()));
    }
    Ok((tasks, rx))
}
