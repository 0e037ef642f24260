//! The event store: SQLite (bundled) in `<state-dir>/events.sqlite`.
//!
//! * **Writes never block the caller, and memory is bounded.** [`EventWriter::send`] puts a
//!   `Vec<Event>` into a bounded channel (`try_send`); route events beyond `max_backlog +
//!   queue_capacity` waiting in the channel and the backlog together (whatever the batch sizes)
//!   are dropped at once and counted ([`DropReason::QueueFull`]), so a flood cannot grow the
//!   queue; anomaly events are kept (the engine's hold-down bounds them). One writer thread
//!   drains the channel into an in-memory backlog and commits it as **one transaction per
//!   flush**: when the oldest buffered event has waited `flush_interval`, or when `max_batch`
//!   events are buffered, whichever comes first.
//! * **Failures are survived.** A full disk (`SQLITE_FULL`), a locked database
//!   (`SQLITE_BUSY`/`SQLITE_LOCKED`), an unwritable directory or any other write failure is
//!   counted in [`StoreCounters`] by [`WriteErrorReason`], logged once per failure streak (and
//!   once on recovery), and the batch is kept and retried with exponential backoff. While writes
//!   fail the backlog is capped at `max_backlog`; the oldest events beyond it are dropped and
//!   counted ([`DropReason::BacklogFull`]). Nothing in here panics or stops the daemon.
//! * **Durability.** WAL journal with `synchronous=NORMAL`: a committed batch survives a crash of
//!   the process (`kill -9`), so such a crash loses at most the events buffered since the last
//!   commit (bounded by `flush_interval`). A power cut may also lose commits since the last WAL
//!   checkpoint; the database is never corrupted.
//! * **Retention** by age (by *receive* time, so a replay of old BGP data is not deleted at once)
//!   every `retention_interval` and at start, and by row count after a commit that passes
//!   `max_rows` (down to 95 % of it). The count retention evicts route events first, fairly
//!   across registered prefixes (the prefixes with the most route events lose theirs first,
//!   down to a common level), and anomaly openings and resolutions only when nothing else is
//!   left: one flapping prefix cannot push another prefix's hijack out of the history.
//! * **Idempotent.** Each event has a key over what identifies it (BGP time, kind, anomaly,
//!   location, prefixes, peer address and AS, origin, paths; not the receive time, the text or
//!   the BMP session's port); a unique index makes an event stored once, so a restart or a
//!   re-read file that produces the same events adds no rows (counted as duplicates).
//! * **Schema** versioned with `PRAGMA user_version` and the ordered [`MIGRATIONS`]; a database
//!   written by a newer build is refused (counted as [`WriteErrorReason::Schema`]), never
//!   modified.
//! * **Reads** ([`EventReader::query`]) use their own read-only connections (WAL readers do not
//!   block the writer), newest first, with an opaque id cursor.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::clock::unix_now;

use ipnet::IpNet;
use rusqlite::types::Value;
use rusqlite::{params, Connection, ErrorCode, OpenFlags, TransactionBehavior};
use serde::Serialize;
use tracing::{debug, error, info, warn};

use super::{Event, EventKind, EventPeer, Severity};
use crate::config::EventsConfig;
use crate::engine::AnomalyKind;

/// File name of the database in the state directory.
pub const EVENTS_FILE: &str = "events.sqlite";
/// Events per page when the query does not say.
pub const DEFAULT_LIMIT: usize = 100;
/// Largest page.
pub const MAX_LIMIT: usize = 1000;

/// The schema migrations, in order: migration `i` takes `user_version` from `i` to `i + 1`.
/// Append only; never edit a released entry.
pub const MIGRATIONS: &[&str] = &[
    // v1: the events table. Severity is stored as its rank (information 0 … critical 3) so
    // "at least" filters use the index; times are seconds since the epoch.
    "CREATE TABLE events (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        time          REAL    NOT NULL,
        received      REAL    NOT NULL,
        kind          TEXT    NOT NULL,
        anomaly       TEXT,
        severity      INTEGER NOT NULL,
        location      TEXT    NOT NULL,
        prefix        TEXT    NOT NULL,
        announced     TEXT    NOT NULL,
        peer_feed     TEXT,
        peer_source   TEXT,
        peer_address  TEXT,
        peer_asn      INTEGER,
        origin        INTEGER,
        as_path       TEXT,
        previous_path TEXT,
        description   TEXT    NOT NULL
    );
    CREATE INDEX events_time ON events(time);
    CREATE INDEX events_received ON events(received);
    CREATE INDEX events_kind ON events(kind);
    CREATE INDEX events_anomaly ON events(anomaly);
    CREATE INDEX events_location ON events(location);
    CREATE INDEX events_prefix ON events(prefix);
    CREATE INDEX events_severity ON events(severity);",
    // v2: AS holder names from DNS enrichment (NULL when unknown, and in rows written before).
    "ALTER TABLE events ADD COLUMN peer_as_name TEXT;
    ALTER TABLE events ADD COLUMN origin_as_name TEXT;",
    // v3: the identity of an event ([`event_key`]); rows written before have none (NULL is
    // never equal to another NULL, so they stay).
    "ALTER TABLE events ADD COLUMN event_key INTEGER;
    CREATE UNIQUE INDEX events_key ON events(event_key);",
];

/// The schema version this build writes (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Rows deleted per retention statement (each its own short transaction).
const RETENTION_CHUNK: u64 = 10_000;
/// Idle read connections kept for reuse.
const READ_POOL: usize = 4;

// ---- settings ---------------------------------------------------------------------------------

/// How the store batches, retains and retries.
#[derive(Debug, Clone)]
pub struct StoreSettings {
    /// Longest time an event waits in memory before it is committed. Default 1 s.
    pub flush_interval: Duration,
    /// Commit as soon as this many events are buffered. Default 1000.
    pub max_batch: usize,
    /// Events received longer ago than this are deleted. Default 30 days.
    pub retention: Duration,
    /// At most this many rows are kept (the oldest are deleted after each commit). Default
    /// 1,000,000.
    pub max_rows: u64,
    /// How often the age retention runs (it also runs once the database is open). Default 60 s.
    pub retention_interval: Duration,
    /// [`EventWriter::send`] calls that may wait in the channel. Default 4096.
    pub queue_capacity: usize,
    /// Events waiting in memory (channel and backlog): beyond it new events are dropped, and
    /// while writes fail the oldest of the backlog are. Default 100,000.
    pub max_backlog: usize,
    /// How long a write waits for a lock held by another connection. Default 1 s.
    pub busy_timeout: Duration,
    /// First retry delay after a failure (doubling per failure). Default 250 ms.
    pub retry_initial: Duration,
    /// Longest retry delay. Default 30 s.
    pub retry_max: Duration,
    /// Test hook: the writer applies `PRAGMA max_page_count` from here before each write.
    #[cfg(test)]
    pub(crate) page_limit: Option<Arc<AtomicU64>>,
}

impl Default for StoreSettings {
    fn default() -> Self {
        StoreSettings::from_config(&EventsConfig::default())
    }
}

impl StoreSettings {
    /// The settings of an `[events]` section (the rest at their defaults).
    pub fn from_config(c: &EventsConfig) -> Self {
        StoreSettings {
            flush_interval: Duration::from_millis(c.flush_interval_ms),
            max_batch: 1000,
            retention: Duration::from_secs(c.retention_days.saturating_mul(86_400)),
            max_rows: c.max_rows,
            retention_interval: Duration::from_secs(60),
            queue_capacity: 4096,
            max_backlog: 100_000,
            busy_timeout: Duration::from_secs(1),
            retry_initial: Duration::from_millis(250),
            retry_max: Duration::from_secs(30),
            #[cfg(test)]
            page_limit: None,
        }
    }
}

// ---- errors and counters ----------------------------------------------------------------------

/// Why a write (or opening the database for writing) failed: the bounded `reason` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WriteErrorReason {
    /// `SQLITE_FULL` or no space left on the device.
    DiskFull,
    /// `SQLITE_BUSY` / `SQLITE_LOCKED`: another connection holds the lock.
    Locked,
    /// Read-only database, file system or directory; permission denied.
    ReadOnly,
    /// The database file or its directory cannot be opened or created.
    CannotOpen,
    /// An I/O error.
    Io,
    /// The file is not a database or is corrupt.
    Corrupt,
    /// The database has a newer schema than this build.
    Schema,
    /// Anything else.
    Other,
}

impl WriteErrorReason {
    /// Every reason, in label order.
    pub const ALL: [WriteErrorReason; 8] = [
        WriteErrorReason::DiskFull,
        WriteErrorReason::Locked,
        WriteErrorReason::ReadOnly,
        WriteErrorReason::CannotOpen,
        WriteErrorReason::Io,
        WriteErrorReason::Corrupt,
        WriteErrorReason::Schema,
        WriteErrorReason::Other,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            WriteErrorReason::DiskFull => "disk_full",
            WriteErrorReason::Locked => "locked",
            WriteErrorReason::ReadOnly => "read_only",
            WriteErrorReason::CannotOpen => "cannot_open",
            WriteErrorReason::Io => "io",
            WriteErrorReason::Corrupt => "corrupt",
            WriteErrorReason::Schema => "schema",
            WriteErrorReason::Other => "other",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Why events were dropped without being stored: the bounded `reason` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// [`EventWriter::send`] found the channel full (the writer is stuck in a slow write).
    QueueFull,
    /// Writes kept failing and the backlog reached `max_backlog`: the oldest were dropped.
    BacklogFull,
    /// The writer had stopped (or was shutting down with events it could not write).
    Closed,
}

impl DropReason {
    /// Every reason, in label order.
    pub const ALL: [DropReason; 3] = [
        DropReason::QueueFull,
        DropReason::BacklogFull,
        DropReason::Closed,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::QueueFull => "queue_full",
            DropReason::BacklogFull => "backlog_full",
            DropReason::Closed => "closed",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Counters of the store, readable from any thread (for the metrics layer).
#[derive(Debug, Default)]
pub struct StoreCounters {
    received: AtomicU64,
    written: AtomicU64,
    commits: AtomicU64,
    pending: AtomicU64,
    rows: AtomicU64,
    retention_deleted: AtomicU64,
    duplicates: AtomicU64,
    failing: AtomicBool,
    write_errors: [AtomicU64; WriteErrorReason::ALL.len()],
    dropped: [AtomicU64; DropReason::ALL.len()],
}

impl StoreCounters {
    /// Events accepted by [`EventWriter::send`] (counter).
    pub fn events_received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// Events committed to the database (counter). Incremented after the commit returned.
    pub fn events_written(&self) -> u64 {
        self.written.load(Ordering::Acquire)
    }

    /// Committed write transactions (counter).
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// Events accepted but neither written nor dropped yet (gauge: channel + backlog).
    pub fn events_pending(&self) -> u64 {
        self.pending.load(Ordering::Relaxed)
    }

    /// Rows in the table as the writer knows them (gauge).
    pub fn rows(&self) -> u64 {
        self.rows.load(Ordering::Relaxed)
    }

    /// Rows deleted by retention, age and count together (counter).
    pub fn retention_deleted(&self) -> u64 {
        self.retention_deleted.load(Ordering::Relaxed)
    }

    /// Events not stored because the same event is stored already (counter).
    pub fn duplicates(&self) -> u64 {
        self.duplicates.load(Ordering::Relaxed)
    }

    /// Whether the writer is in a failure streak (the last write or open failed).
    pub fn failing(&self) -> bool {
        self.failing.load(Ordering::Relaxed)
    }

    /// Failed writes / opens for `reason` (counter).
    pub fn write_errors(&self, reason: WriteErrorReason) -> u64 {
        self.write_errors[reason.index()].load(Ordering::Relaxed)
    }

    /// Failed writes / opens, all reasons.
    pub fn write_errors_total(&self) -> u64 {
        WriteErrorReason::ALL
            .iter()
            .map(|r| self.write_errors(*r))
            .sum()
    }

    /// Events dropped for `reason` (counter).
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.dropped[reason.index()].load(Ordering::Relaxed)
    }

    /// Events dropped, all reasons.
    pub fn dropped_total(&self) -> u64 {
        DropReason::ALL.iter().map(|r| self.dropped(*r)).sum()
    }

    fn add_dropped(&self, reason: DropReason, n: u64) {
        if n > 0 {
            self.dropped[reason.index()].fetch_add(n, Ordering::Relaxed);
            self.pending.fetch_sub(n, Ordering::Relaxed);
        }
    }
}

/// An event store error.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("{}: {source}", path.display())]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// Cause.
        source: rusqlite::Error,
    },
    /// The state directory could not be created.
    #[error("cannot create {}: {source}", dir.display())]
    CreateDir {
        /// The directory.
        dir: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The database was written by a newer build.
    #[error("{}: schema version {found} is newer than this build's {supported}; not touching it", path.display())]
    NewerSchema {
        /// The database file.
        path: PathBuf,
        /// Its `user_version`.
        found: i64,
        /// [`SCHEMA_VERSION`].
        supported: i64,
    },
    /// The database cannot be read yet (not created, or not migrated by the writer yet).
    #[error("event store unavailable: {0}")]
    Unavailable(String),
    /// A stored row cannot be turned back into an [`Event`].
    #[error("stored event {id}: {message}")]
    Corrupt {
        /// Row id.
        id: i64,
        /// What is wrong.
        message: String,
    },
    /// The writer thread has stopped, or did not answer in time.
    #[error("the event writer {0}")]
    Writer(&'static str),
    /// The writer thread could not be started.
    #[error("starting the event writer thread: {0}")]
    Spawn(std::io::Error),
}

impl StoreError {
    /// The bounded label of this error.
    pub fn reason(&self) -> WriteErrorReason {
        match self {
            StoreError::Sqlite { source, .. } => sqlite_reason(source),
            StoreError::CreateDir { source, .. } => io_reason(source),
            StoreError::NewerSchema { .. } => WriteErrorReason::Schema,
            StoreError::Corrupt { .. } => WriteErrorReason::Corrupt,
            StoreError::Unavailable(_) => WriteErrorReason::CannotOpen,
            StoreError::Writer(_) | StoreError::Spawn(_) => WriteErrorReason::Other,
        }
    }
}

fn sqlite_reason(e: &rusqlite::Error) -> WriteErrorReason {
    match e.sqlite_error_code() {
        Some(ErrorCode::DiskFull) => WriteErrorReason::DiskFull,
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => WriteErrorReason::Locked,
        Some(ErrorCode::ReadOnly | ErrorCode::PermissionDenied) => WriteErrorReason::ReadOnly,
        Some(ErrorCode::CannotOpen) => WriteErrorReason::CannotOpen,
        Some(ErrorCode::SystemIoFailure | ErrorCode::FileLockingProtocolFailed) => {
            WriteErrorReason::Io
        }
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => WriteErrorReason::Corrupt,
        _ => WriteErrorReason::Other,
    }
}

fn io_reason(e: &std::io::Error) -> WriteErrorReason {
    match e.kind() {
        std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem => {
            WriteErrorReason::ReadOnly
        }
        std::io::ErrorKind::StorageFull => WriteErrorReason::DiskFull,
        _ => WriteErrorReason::CannotOpen,
    }
}

// ---- queries ----------------------------------------------------------------------------------

/// The `kind` filter: an [`EventKind`] name, an anomaly kind name (matched against the event's
/// `anomaly` field), or a name that is both (either matches).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KindFilter {
    name: String,
    event: bool,
    anomaly: bool,
}

impl KindFilter {
    /// The filter for `name`, or `None` when it is neither an event kind nor an anomaly kind.
    pub fn parse(name: &str) -> Option<KindFilter> {
        let event = EventKind::parse(name).is_some();
        let anomaly = AnomalyKind::ALL.iter().any(|k| k.as_str() == name);
        (event || anomaly).then(|| KindFilter {
            name: name.to_string(),
            event,
            anomaly,
        })
    }

    /// Events of `kind`.
    pub fn event(kind: EventKind) -> KindFilter {
        KindFilter {
            name: kind.as_str().to_string(),
            event: true,
            anomaly: false,
        }
    }

    /// The name filtered on.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Every accepted name: the event kinds, then the anomaly kinds.
    pub fn names() -> Vec<&'static str> {
        let mut v: Vec<&'static str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
        for k in AnomalyKind::ALL {
            if !v.contains(&k.as_str()) {
                v.push(k.as_str());
            }
        }
        v
    }
}

/// A page position: results continue below this event id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor(i64);

impl Cursor {
    /// The position after the event with `id`.
    pub fn after(id: i64) -> Cursor {
        Cursor(id)
    }

    /// The last id of the previous page.
    pub fn id(self) -> i64 {
        self.0
    }

    /// The opaque text form handed to clients.
    pub fn encode(self) -> String {
        format!("v1.{:x}", self.0)
    }

    /// Parses [`Cursor::encode`]'s output; anything else is `None`.
    pub fn decode(s: &str) -> Option<Cursor> {
        let hex = s.strip_prefix("v1.")?;
        if hex.is_empty()
            || hex.len() > 16
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return None;
        }
        let id = i64::from_str_radix(hex, 16).ok()?;
        (id > 0).then_some(Cursor(id))
    }
}

/// What to return from the store. Filters combine with AND.
#[derive(Debug, Clone, PartialEq)]
pub struct EventQuery {
    /// Only events with BGP `time >= since` (seconds since the epoch).
    pub since: Option<f64>,
    /// Only events with BGP `time < until`.
    pub until: Option<f64>,
    /// Only events of this kind (or anomaly kind).
    pub kind: Option<KindFilter>,
    /// Only events of this location (exact name).
    pub location: Option<String>,
    /// Only events of this registered prefix.
    pub prefix: Option<IpNet>,
    /// Only events of this severity **or higher** (`warning` gives warning, error, critical).
    pub severity: Option<Severity>,
    /// Page size; clamped to `1..=MAX_LIMIT`.
    pub limit: usize,
    /// Continue below this position (from the previous page's `next_cursor`).
    pub cursor: Option<Cursor>,
}

impl Default for EventQuery {
    fn default() -> Self {
        EventQuery {
            since: None,
            until: None,
            kind: None,
            location: None,
            prefix: None,
            severity: None,
            limit: DEFAULT_LIMIT,
            cursor: None,
        }
    }
}

/// One page of events, newest first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventPage {
    /// The events (descending id: newest first).
    pub events: Vec<Event>,
    /// Pass as `cursor` for the next (older) page; `None` on the last page.
    pub next_cursor: Option<String>,
}

// ---- the store --------------------------------------------------------------------------------

enum Msg {
    Events(Vec<Event>),
    Flush(SyncSender<Result<u64, String>>),
    Retention(SyncSender<Result<u64, String>>),
    Shutdown(SyncSender<Result<u64, String>>),
}

/// The event store: a writer thread, the sending side and the reading side.
pub struct EventStore {
    writer: EventWriter,
    reader: EventReader,
    thread: Option<JoinHandle<()>>,
}

impl EventStore {
    /// Opens (creating if needed) the store at `<state_dir>/events.sqlite`.
    pub fn open_in(state_dir: &Path, settings: StoreSettings) -> Result<EventStore, StoreError> {
        EventStore::open(&state_dir.join(EVENTS_FILE), settings)
    }

    /// Opens (creating the file and its directory if needed, migrating the schema) the store at
    /// `path` and starts its writer thread.
    ///
    /// Fails only when the thread cannot be started. When the database cannot be opened (an
    /// unwritable directory, a locked or newer database) the failure is counted and logged, and
    /// the writer keeps the events and retries with backoff; queries answer
    /// [`StoreError::Unavailable`] until it succeeds.
    pub fn open(path: &Path, settings: StoreSettings) -> Result<EventStore, StoreError> {
        let counters = Arc::new(StoreCounters::default());
        let (tx, rx) = mpsc::sync_channel(settings.queue_capacity.max(1));
        let mut writer = Writer::new(path.to_path_buf(), settings.clone(), counters.clone(), rx);
        // First attempt on the caller's thread, so a healthy store is queryable on return.
        let _ = writer.try_open();
        let thread = std::thread::Builder::new()
            .name("event-writer".into())
            .spawn(move || writer.run())
            .map_err(StoreError::Spawn)?;
        Ok(EventStore {
            writer: EventWriter {
                tx,
                counters,
                max_pending: max_pending(&settings),
            },
            reader: EventReader::new(path, settings.busy_timeout),
            thread: Some(thread),
        })
    }

    /// A sending handle (cheap to clone).
    pub fn writer(&self) -> EventWriter {
        self.writer.clone()
    }

    /// A query handle (cheap to clone).
    pub fn reader(&self) -> EventReader {
        self.reader.clone()
    }

    /// The counters.
    pub fn counters(&self) -> Arc<StoreCounters> {
        self.writer.counters.clone()
    }

    /// Commits what is buffered and stops the writer thread, waiting at most `timeout`.
    /// Returns the total of events written. Events that could not be written are counted as
    /// dropped ([`DropReason::Closed`]). Sends through remaining [`EventWriter`] clones are
    /// counted the same way.
    pub fn close(mut self, timeout: Duration) -> Result<u64, StoreError> {
        let r = self.writer.request(Msg::Shutdown, timeout);
        if r.is_ok() {
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
        r
    }
}

/// The sending side: hand events to the writer thread without blocking.
#[derive(Clone)]
pub struct EventWriter {
    tx: SyncSender<Msg>,
    counters: Arc<StoreCounters>,
    /// Most events waiting (channel and backlog) before new ones are dropped.
    max_pending: u64,
}

impl std::fmt::Debug for EventWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventWriter").finish_non_exhaustive()
    }
}

impl EventWriter {
    /// Queues `events` for the writer thread. Never blocks: when the channel is full or the
    /// writer has stopped the events are dropped, counted, and `false` is returned.
    pub fn send(&self, mut events: Vec<Event>) -> bool {
        if events.is_empty() {
            return true;
        }
        let n = events.len() as u64;
        self.counters.received.fetch_add(n, Ordering::Relaxed);
        let waiting = self.counters.pending.fetch_add(n, Ordering::Relaxed);
        if waiting.saturating_add(n) > self.max_pending {
            // Full: route events go, anomaly openings and resolutions stay (the hold-down keeps
            // them to one pair per incident, so they cannot flood the queue themselves).
            events.retain(|e| e.anomaly.is_some());
            let dropped = n - events.len() as u64;
            self.counters.add_dropped(DropReason::QueueFull, dropped);
            if events.is_empty() {
                return false;
            }
        }
        match self.tx.try_send(Msg::Events(events)) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                self.counters.add_dropped(DropReason::QueueFull, n);
                false
            }
            Err(TrySendError::Disconnected(_)) => {
                self.counters.add_dropped(DropReason::Closed, n);
                false
            }
        }
    }

    /// Asks the writer to commit everything sent so far now, and waits (blocking, at most
    /// `timeout`) for the outcome: the total of events written, or why the write failed (the
    /// events stay buffered and are retried).
    pub fn flush(&self, timeout: Duration) -> Result<u64, StoreError> {
        self.request(Msg::Flush, timeout)
    }

    /// Runs the age and count retention now (blocking, at most `timeout`); returns the rows
    /// deleted by retention so far.
    pub fn apply_retention(&self, timeout: Duration) -> Result<u64, StoreError> {
        self.request(Msg::Retention, timeout)
    }

    /// The counters.
    pub fn counters(&self) -> &Arc<StoreCounters> {
        &self.counters
    }

    fn request(
        &self,
        make: fn(SyncSender<Result<u64, String>>) -> Msg,
        timeout: Duration,
    ) -> Result<u64, StoreError> {
        let deadline = Instant::now() + timeout;
        let (ack_tx, ack_rx) = mpsc::sync_channel(1);
        let mut msg = make(ack_tx);
        loop {
            match self.tx.try_send(msg) {
                Ok(()) => break,
                Err(TrySendError::Disconnected(_)) => {
                    return Err(StoreError::Writer("has stopped"))
                }
                Err(TrySendError::Full(m)) => {
                    if Instant::now() >= deadline {
                        return Err(StoreError::Writer("did not answer in time"));
                    }
                    msg = m;
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
        }
        match ack_rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(Ok(n)) => Ok(n),
            Ok(Err(message)) => Err(StoreError::Unavailable(message)),
            Err(RecvTimeoutError::Timeout) => Err(StoreError::Writer("did not answer in time")),
            Err(RecvTimeoutError::Disconnected) => Err(StoreError::Writer("has stopped")),
        }
    }
}

// ---- the writer thread ------------------------------------------------------------------------

/// A run of consecutive failures.
struct Streak {
    failures: u64,
    backoff: Duration,
    retry_at: Instant,
    dropped_at_start: u64,
}

struct Writer {
    path: PathBuf,
    settings: StoreSettings,
    counters: Arc<StoreCounters>,
    rx: Receiver<Msg>,
    conn: Option<Connection>,
    backlog: VecDeque<Event>,
    oldest_at: Option<Instant>,
    /// A flush of the backlog failed: it is due again at the streak's retry time.
    retrying: bool,
    streak: Option<Streak>,
    backlog_full_logged: bool,
    next_retention: Instant,
    rows: u64,
}

impl Writer {
    fn new(
        path: PathBuf,
        settings: StoreSettings,
        counters: Arc<StoreCounters>,
        rx: Receiver<Msg>,
    ) -> Self {
        Writer {
            path,
            settings,
            counters,
            rx,
            conn: None,
            backlog: VecDeque::new(),
            oldest_at: None,
            retrying: false,
            streak: None,
            backlog_full_logged: false,
            next_retention: Instant::now(),
            rows: 0,
        }
    }

    fn run(mut self) {
        loop {
            let msg = match self.next_wake() {
                Some(at) => self
                    .rx
                    .recv_timeout(at.saturating_duration_since(Instant::now())),
                None => self.rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            };
            match msg {
                Ok(Msg::Events(v)) => self.accept(v),
                // The channel is FIFO: events sent before the request are already buffered.
                Ok(Msg::Flush(ack)) => {
                    let r = self.flush().map_err(|e| e.to_string());
                    let _ = ack.send(r.map(|()| self.counters.events_written()));
                }
                Ok(Msg::Retention(ack)) => {
                    let r = if self.conn.is_some() {
                        self.retention().map_err(|e| e.to_string())
                    } else {
                        Err("the database is not open".to_string())
                    };
                    let _ = ack.send(r.map(|()| self.counters.retention_deleted()));
                }
                Ok(Msg::Shutdown(ack)) => {
                    let r = self.shutdown();
                    let _ = ack.send(r);
                    return;
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    let _ = self.finish();
                    return;
                }
            }
            self.tick();
        }
    }

    /// Takes in what is still queued, makes the final flush and answers other waiting requests.
    fn shutdown(&mut self) -> Result<u64, String> {
        let mut acks = Vec::new();
        while let Ok(msg) = self.rx.try_recv() {
            match msg {
                Msg::Events(v) => self.accept(v),
                Msg::Flush(a) | Msg::Retention(a) | Msg::Shutdown(a) => acks.push(a),
            }
        }
        let r = self.finish();
        for a in acks {
            let _ = a.send(r.clone());
        }
        r
    }

    /// The final flush: one attempt, then whatever is left is dropped and counted.
    fn finish(&mut self) -> Result<u64, String> {
        let r = self.flush().map_err(|e| e.to_string());
        let left = self.backlog.len() as u64;
        if left > 0 {
            self.backlog.clear();
            self.counters.add_dropped(DropReason::Closed, left);
            error!(
                events = left,
                "event store closing with events it could not write; they are lost"
            );
        }
        r.map(|()| self.counters.events_written())
    }

    fn retry_due(&self, now: Instant) -> bool {
        self.streak.as_ref().is_none_or(|s| s.retry_at <= now)
    }

    /// When the loop must wake without a message.
    fn next_wake(&self) -> Option<Instant> {
        let mut wake: Option<Instant> = None;
        let mut at = |t: Instant| wake = Some(wake.map_or(t, |w| w.min(t)));
        let retry_at = self.streak.as_ref().map(|s| s.retry_at);
        if let Some(oldest) = self.oldest_at {
            let due = if self.retrying || self.backlog.len() >= self.settings.max_batch {
                Instant::now()
            } else {
                oldest + self.settings.flush_interval
            };
            at(retry_at.map_or(due, |r| r.max(due)));
        }
        if self.conn.is_none() {
            // Keep trying to open, so the database exists for readers.
            if let Some(r) = retry_at {
                at(r);
            }
        } else {
            at(retry_at.map_or(self.next_retention, |r| r.max(self.next_retention)));
        }
        wake
    }

    fn accept(&mut self, events: Vec<Event>) {
        if self.oldest_at.is_none() {
            self.oldest_at = Some(Instant::now());
        }
        self.backlog.extend(events);
        let cap = self.settings.max_backlog.max(1);
        if self.backlog.len() > cap {
            let excess = self.backlog.len() - cap;
            self.backlog.drain(..excess);
            self.counters
                .add_dropped(DropReason::BacklogFull, excess as u64);
            if !self.backlog_full_logged {
                self.backlog_full_logged = true;
                error!(
                    max_backlog = cap,
                    "event store backlog full while writes fail: dropping the oldest events"
                );
            }
        }
    }

    fn tick(&mut self) {
        let now = Instant::now();
        if self.conn.is_none() && self.retry_due(now) && self.streak.is_some() {
            let _ = self.try_open();
        }
        let due = self.retrying
            || self.backlog.len() >= self.settings.max_batch
            || self
                .oldest_at
                .is_some_and(|t| t + self.settings.flush_interval <= now);
        if !self.backlog.is_empty() && due && self.retry_due(now) {
            let _ = self.flush();
        }
        let now = Instant::now();
        if self.conn.is_some() && self.retry_due(now) && now >= self.next_retention {
            let _ = self.retention();
        }
    }

    fn try_open(&mut self) -> Result<(), String> {
        match open_writer(&self.path, &self.settings) {
            Ok((conn, rows)) => {
                self.conn = Some(conn);
                self.rows = rows;
                self.counters.rows.store(rows, Ordering::Relaxed);
                self.next_retention = Instant::now();
                if self.backlog.is_empty() {
                    self.recovered();
                }
                Ok(())
            }
            Err(e) => {
                self.failed(&e);
                Err(e.to_string())
            }
        }
    }

    /// Commits the whole backlog in one transaction.
    fn flush(&mut self) -> Result<(), StoreError> {
        if self.backlog.is_empty() {
            return Ok(());
        }
        if self.conn.is_none() {
            self.retrying = true;
            self.try_open().map_err(StoreError::Unavailable)?;
        }
        let Some(conn) = self.conn.as_mut() else {
            return Err(StoreError::Unavailable("no connection".into()));
        };
        #[cfg(test)]
        if let Some(limit) = &self.settings.page_limit {
            let pages = i64::try_from(limit.load(Ordering::Relaxed)).unwrap_or(i64::MAX);
            let _ = conn.pragma_update(None, "max_page_count", pages);
        }
        match insert(conn, &self.backlog) {
            Ok(inserted) => {
                let n = self.backlog.len() as u64;
                self.counters
                    .duplicates
                    .fetch_add(n - inserted.min(n), Ordering::Relaxed);
                self.backlog.clear();
                self.oldest_at = None;
                self.retrying = false;
                self.backlog_full_logged = false;
                self.counters.written.fetch_add(n, Ordering::Release);
                self.counters.commits.fetch_add(1, Ordering::Relaxed);
                self.counters.pending.fetch_sub(n, Ordering::Relaxed);
                self.rows += inserted;
                self.counters.rows.store(self.rows, Ordering::Relaxed);
                self.recovered();
                if self.rows > self.settings.max_rows {
                    if let Err(e) = self.trim_to_max_rows() {
                        self.failed(&e);
                    }
                }
                Ok(())
            }
            Err(source) => {
                let e = StoreError::Sqlite {
                    path: self.path.clone(),
                    source,
                };
                if matches!(
                    e.reason(),
                    WriteErrorReason::Corrupt | WriteErrorReason::Io | WriteErrorReason::CannotOpen
                ) {
                    // Start over with a fresh connection on the next attempt.
                    self.conn = None;
                }
                self.retrying = true;
                self.failed(&e);
                Err(e)
            }
        }
    }

    fn retention(&mut self) -> Result<(), StoreError> {
        self.next_retention = Instant::now() + self.settings.retention_interval;
        let r = self.delete_older().and_then(|()| self.trim_to_max_rows());
        match &r {
            Err(e) => {
                self.failed(e);
                // Again at the retry time, not a whole retention interval later.
                if let Some(s) = &self.streak {
                    self.next_retention = s.retry_at;
                }
            }
            Ok(()) if self.backlog.is_empty() => self.recovered(),
            Ok(()) => {}
        }
        r
    }

    fn delete_older(&mut self) -> Result<(), StoreError> {
        let Some(conn) = self.conn.as_ref() else {
            return Ok(());
        };
        let cutoff = unix_now() - self.settings.retention.as_secs_f64();
        let sql = "DELETE FROM events WHERE id IN \
                   (SELECT id FROM events WHERE received < ?1 LIMIT ?2)";
        loop {
            let n = conn
                .execute(sql, params![cutoff, RETENTION_CHUNK as i64])
                .map_err(|source| StoreError::Sqlite {
                    path: self.path.clone(),
                    source,
                })? as u64;
            deleted(&self.counters, &mut self.rows, n);
            if n < RETENTION_CHUNK {
                break;
            }
        }
        // Re-count: another process (or an old run) may have written too.
        let rows: i64 = conn
            .query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))
            .map_err(|source| StoreError::Sqlite {
                path: self.path.clone(),
                source,
            })?;
        self.rows = rows.max(0) as u64;
        self.counters.rows.store(self.rows, Ordering::Relaxed);
        Ok(())
    }

    /// Brings the table under `max_rows` (to 95 % of it, so a full table is not trimmed after
    /// every commit): route events first, fairly across registered prefixes, then the oldest
    /// anomaly events if that is not enough.
    fn trim_to_max_rows(&mut self) -> Result<(), StoreError> {
        if self.rows <= self.settings.max_rows {
            return Ok(());
        }
        let target = self.settings.max_rows - self.settings.max_rows / 20;
        let sqlite = |path: &Path| {
            let path = path.to_path_buf();
            move |source| StoreError::Sqlite { path, source }
        };
        let Some(conn) = self.conn.as_ref() else {
            return Ok(());
        };
        // 1. Route events: the registered prefixes with the most lose their oldest down to a
        //    common level, so the noisiest prefix pays first.
        let mut counts: Vec<(String, u64)> = {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT prefix, COUNT(*) FROM events WHERE anomaly IS NULL GROUP BY prefix",
                )
                .map_err(sqlite(&self.path))?;
            let rows = stmt
                .query_map([], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?.max(0) as u64))
                })
                .map_err(sqlite(&self.path))?;
            rows.collect::<Result<_, _>>().map_err(sqlite(&self.path))?
        };
        let excess = self.rows - target;
        for (prefix, n) in evictions(&mut counts, excess) {
            let sql = "DELETE FROM events WHERE id IN (SELECT id FROM events \
                       WHERE prefix = ?1 AND anomaly IS NULL ORDER BY id LIMIT ?2)";
            let mut left = n;
            while left > 0 {
                let chunk = left.min(RETENTION_CHUNK);
                let d = conn
                    .execute(sql, params![prefix, chunk as i64])
                    .map_err(sqlite(&self.path))? as u64;
                deleted(&self.counters, &mut self.rows, d);
                if d < chunk {
                    break;
                }
                left -= d;
            }
        }
        // 2. Then the oldest events of any kind.
        let sql = "DELETE FROM events WHERE id IN (SELECT id FROM events ORDER BY id LIMIT ?1)";
        while self.rows > target {
            let chunk = (self.rows - target).min(RETENTION_CHUNK);
            let n = conn
                .execute(sql, params![chunk as i64])
                .map_err(sqlite(&self.path))? as u64;
            deleted(&self.counters, &mut self.rows, n);
            if n == 0 {
                // The in-memory count was off; the table is smaller than thought.
                break;
            }
        }
        Ok(())
    }

    /// Counts a failure; logs only the first of a streak.
    fn failed(&mut self, e: &StoreError) {
        let reason = e.reason();
        self.counters.write_errors[reason.index()].fetch_add(1, Ordering::Relaxed);
        self.counters.failing.store(true, Ordering::Relaxed);
        let now = Instant::now();
        match &mut self.streak {
            None => {
                error!(
                    reason = reason.as_str(),
                    error = %e,
                    backlog = self.backlog.len(),
                    "event store write failed; keeping the events and retrying (logged once until it recovers)"
                );
                let backoff = self.settings.retry_initial;
                self.streak = Some(Streak {
                    failures: 1,
                    backoff,
                    retry_at: now + backoff,
                    dropped_at_start: self.counters.dropped_total(),
                });
            }
            Some(s) => {
                s.failures += 1;
                s.backoff = (s.backoff * 2).min(self.settings.retry_max);
                s.retry_at = now + s.backoff;
                debug!(reason = reason.as_str(), error = %e, failures = s.failures, "event store write failed again");
            }
        }
    }

    fn recovered(&mut self) {
        self.counters.failing.store(false, Ordering::Relaxed);
        if let Some(s) = self.streak.take() {
            warn!(
                failures = s.failures,
                dropped = self.counters.dropped_total() - s.dropped_at_start,
                "event store writes recovered"
            );
        }
    }
}

/// How many route events each prefix gives up so that `excess` rows go, fairly: the largest
/// counts are cut down to a common level (water-filling), so the prefixes with the most route
/// events lose theirs first and a quiet prefix keeps its own. Never more than a prefix has.
fn evictions(counts: &mut [(String, u64)], excess: u64) -> Vec<(String, u64)> {
    counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let total: u64 = counts.iter().map(|c| c.1).sum();
    let excess = excess.min(total);
    if excess == 0 {
        return Vec::new();
    }
    // The level L: sum(max(0, n - L)) >= excess, with L as high as possible.
    let mut level = 0;
    let mut above = 0u64; // rows above the level among the first i prefixes
    for i in 0..counts.len() {
        let next = counts.get(i + 1).map_or(0, |c| c.1);
        let width = (i + 1) as u64;
        // Lowering the level from counts[i].1 to next frees width * (counts[i].1 - next) rows.
        let free = width * (counts[i].1 - next);
        if above + free >= excess {
            let need = excess - above;
            level = counts[i].1 - need.div_ceil(width);
            break;
        }
        above += free;
    }
    let mut out = Vec::new();
    let mut left = excess;
    for (prefix, n) in counts.iter() {
        if *n <= level || left == 0 {
            break;
        }
        let take = (n - level).min(left);
        left -= take;
        out.push((prefix.clone(), take));
    }
    out
}

/// Most events that may wait in memory, in the channel and the backlog together: the backlog
/// cap plus one event per channel slot.
fn max_pending(settings: &StoreSettings) -> u64 {
    (settings.max_backlog.max(1) as u64).saturating_add(settings.queue_capacity as u64)
}

/// Accounts for `n` rows deleted by retention.
fn deleted(counters: &StoreCounters, rows: &mut u64, n: u64) {
    if n > 0 {
        counters.retention_deleted.fetch_add(n, Ordering::Relaxed);
        *rows = rows.saturating_sub(n);
        counters.rows.store(*rows, Ordering::Relaxed);
        debug!(rows = n, "event retention deleted old events");
    }
}

/// Opens the database for writing: directory, pragmas, migrations; returns the row count.
fn open_writer(path: &Path, settings: &StoreSettings) -> Result<(Connection, u64), StoreError> {
    let sqlite = |source| StoreError::Sqlite {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
            dir: dir.to_path_buf(),
            source,
        })?;
    }
    let mut conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sqlite)?;
    conn.busy_timeout(settings.busy_timeout).map_err(sqlite)?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .map_err(sqlite)?;
    if !mode.eq_ignore_ascii_case("wal") {
        warn!(path = %path.display(), mode, "event store: WAL journal mode not available");
    }
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(sqlite)?;
    // Keep the WAL file from staying large after a burst.
    conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)
        .map_err(sqlite)?;
    migrate(&mut conn, path)?;
    let rows: i64 = conn
        .query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))
        .map_err(sqlite)?;
    Ok((conn, rows.max(0) as u64))
}

/// Applies the missing [`MIGRATIONS`], each in its own transaction with its version bump.
fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let sqlite = |source| StoreError::Sqlite {
        path: path.to_path_buf(),
        source,
    };
    // Up to date: no write lock needed (another connection may hold it).
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(sqlite)?;
    if version == SCHEMA_VERSION {
        return Ok(());
    }
    loop {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sqlite)?;
        let version: i64 = tx
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(sqlite)?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema {
                path: path.to_path_buf(),
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        let Some(sql) = MIGRATIONS.get(version.max(0) as usize) else {
            return Ok(());
        };
        tx.execute_batch(sql).map_err(sqlite)?;
        tx.pragma_update(None, "user_version", version + 1)
            .map_err(sqlite)?;
        tx.commit().map_err(sqlite)?;
        info!(path = %path.display(), version = version + 1, "event store schema migrated");
    }
}

fn severity_rank(s: Severity) -> i64 {
    match s {
        Severity::Information => 0,
        Severity::Warning => 1,
        Severity::Error => 2,
        Severity::Critical => 3,
    }
}

fn severity_from_rank(r: i64) -> Option<Severity> {
    Some(match r {
        0 => Severity::Information,
        1 => Severity::Warning,
        2 => Severity::Error,
        3 => Severity::Critical,
        _ => return None,
    })
}

/// A non-finite time would be stored as NULL and violate NOT NULL: store 0 instead.
fn finite(t: f64) -> f64 {
    if t.is_finite() {
        t
    } else {
        0.0
    }
}

/// The identity of an event: FNV-1a (64 bits) over its BGP time, kind, anomaly, location,
/// prefixes, peer feed, address and AS, origin and paths, each field ended by a separator byte.
/// The receive time, the description, the DNS names and the route source (a BMP session's
/// TCP port changes across reconnects) are left out: the same BGP event read again has the
/// same key.
pub fn event_key(e: &Event) -> i64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = OFFSET;
    let mut field = |bytes: &[u8]| {
        for &b in bytes.iter().chain(&[0xff]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(PRIME);
        }
    };
    let peer = e.peer.as_ref();
    field(&finite(e.time).to_bits().to_be_bytes());
    field(e.kind.as_str().as_bytes());
    field(e.anomaly.as_deref().unwrap_or("").as_bytes());
    field(e.location.as_bytes());
    field(e.prefix.to_string().as_bytes());
    field(e.announced.to_string().as_bytes());
    field(peer.map_or("", |p| p.feed.as_str()).as_bytes());
    field(peer.map_or("", |p| p.address.as_str()).as_bytes());
    field(&peer.map_or(u64::MAX, |p| u64::from(p.asn)).to_be_bytes());
    field(&e.origin.map_or(u64::MAX, u64::from).to_be_bytes());
    field(e.as_path.as_deref().unwrap_or("").as_bytes());
    field(e.previous_path.as_deref().unwrap_or("").as_bytes());
    h as i64
}

/// Inserts `events` in one transaction; returns how many were new (the others are stored
/// already: same [`event_key`]).
fn insert(conn: &mut Connection, events: &VecDeque<Event>) -> rusqlite::Result<u64> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut inserted = 0;
    {
        let mut stmt = tx.prepare_cached(
            "INSERT OR IGNORE INTO events (time, received, kind, anomaly, severity, location, \
             prefix, announced, peer_feed, peer_source, peer_address, peer_asn, origin, as_path, \
             previous_path, description, peer_as_name, origin_as_name, event_key) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, \
             ?17, ?18, ?19)",
        )?;
        for e in events {
            let peer = e.peer.as_ref();
            inserted += stmt.execute(params![
                finite(e.time),
                finite(e.received),
                e.kind.as_str(),
                e.anomaly,
                severity_rank(e.severity),
                e.location,
                e.prefix.to_string(),
                e.announced.to_string(),
                peer.map(|p| p.feed.as_str()),
                peer.map(|p| p.source.as_str()),
                peer.map(|p| p.address.as_str()),
                peer.map(|p| i64::from(p.asn)),
                e.origin.map(i64::from),
                e.as_path,
                e.previous_path,
                e.description,
                e.peer_as_name,
                e.origin_as_name,
                event_key(e),
            ])? as u64;
        }
    }
    tx.commit()?;
    Ok(inserted)
}

// ---- the reader -------------------------------------------------------------------------------

struct ReaderInner {
    path: PathBuf,
    busy_timeout: Duration,
    pool: Mutex<Vec<Connection>>,
}

/// The query side: read-only connections of its own (cheap to clone; thread-safe). Queries
/// block: call them from a blocking thread.
#[derive(Clone)]
pub struct EventReader {
    inner: Arc<ReaderInner>,
}

impl std::fmt::Debug for EventReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventReader")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

const COLUMNS: &str = "id, time, received, kind, anomaly, severity, location, prefix, announced, \
                       peer_feed, peer_source, peer_address, peer_asn, origin, as_path, \
                       previous_path, description, peer_as_name, origin_as_name";

impl EventReader {
    /// A reader of the database at `path` (opened lazily, read-only).
    pub fn new(path: &Path, busy_timeout: Duration) -> EventReader {
        EventReader {
            inner: Arc::new(ReaderInner {
                path: path.to_path_buf(),
                busy_timeout,
                pool: Mutex::new(Vec::new()),
            }),
        }
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    fn connection(&self) -> Result<Connection, StoreError> {
        if let Some(c) = self.inner.pool.lock().ok().and_then(|mut p| p.pop()) {
            return Ok(c);
        }
        let path = &self.inner.path;
        let unavailable =
            |e: rusqlite::Error| StoreError::Unavailable(format!("{}: {e}", path.display()));
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(unavailable)?;
        conn.busy_timeout(self.inner.busy_timeout)
            .map_err(unavailable)?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(unavailable)?;
        if version != SCHEMA_VERSION {
            return Err(StoreError::Unavailable(format!(
                "{}: schema version {version}, this build reads {SCHEMA_VERSION}",
                path.display()
            )));
        }
        Ok(conn)
    }

    /// One page of events matching `q`, newest first.
    pub fn query(&self, q: &EventQuery) -> Result<EventPage, StoreError> {
        let conn = self.connection()?;
        let result = run_query(&conn, q, &self.inner.path);
        let reusable = match &result {
            Ok(_) => true,
            Err(e) => !matches!(
                e.reason(),
                WriteErrorReason::Corrupt | WriteErrorReason::Io | WriteErrorReason::CannotOpen
            ),
        };
        if reusable {
            if let Ok(mut pool) = self.inner.pool.lock() {
                if pool.len() < READ_POOL {
                    pool.push(conn);
                }
            }
        }
        result
    }
}

fn run_query(conn: &Connection, q: &EventQuery, path: &Path) -> Result<EventPage, StoreError> {
    let limit = q.limit.clamp(1, MAX_LIMIT);
    let mut sql = format!("SELECT {COLUMNS} FROM events WHERE 1 = 1");
    let mut args: Vec<Value> = Vec::new();
    let mut arg = |sql: &mut String, clause: &str, v: Value| {
        args.push(v);
        sql.push_str(&clause.replace('?', &format!("?{}", args.len())));
    };
    if let Some(c) = q.cursor {
        arg(&mut sql, " AND id < ?", Value::Integer(c.id()));
    }
    if let Some(s) = q.since {
        arg(&mut sql, " AND time >= ?", Value::Real(s));
    }
    if let Some(u) = q.until {
        arg(&mut sql, " AND time < ?", Value::Real(u));
    }
    if let Some(k) = &q.kind {
        let name = Value::Text(k.name.clone());
        match (k.event, k.anomaly) {
            (true, true) => {
                arg(&mut sql, " AND (kind = ?", name.clone());
                arg(&mut sql, " OR anomaly = ?)", name);
            }
            (true, false) => arg(&mut sql, " AND kind = ?", name),
            _ => arg(&mut sql, " AND anomaly = ?", name),
        }
    }
    if let Some(l) = &q.location {
        arg(&mut sql, " AND location = ?", Value::Text(l.clone()));
    }
    if let Some(p) = &q.prefix {
        arg(&mut sql, " AND prefix = ?", Value::Text(p.to_string()));
    }
    if let Some(s) = q.severity {
        arg(
            &mut sql,
            " AND severity >= ?",
            Value::Integer(severity_rank(s)),
        );
    }
    // One more than asked: tells whether there is a next page.
    arg(
        &mut sql,
        " ORDER BY id DESC LIMIT ?",
        Value::Integer(limit as i64 + 1),
    );

    let sqlite = |source| StoreError::Sqlite {
        path: path.to_path_buf(),
        source,
    };
    let mut stmt = conn.prepare(&sql).map_err(sqlite)?;
    let mut rows = stmt
        .query(rusqlite::params_from_iter(args))
        .map_err(sqlite)?;
    let mut events = Vec::with_capacity(limit.min(128));
    let mut more = false;
    while let Some(row) = rows.next().map_err(sqlite)? {
        if events.len() == limit {
            more = true;
            break;
        }
        events.push(row_to_event(row).map_err(|e| match e {
            RowError::Sql(source) => sqlite(source),
            RowError::Bad(id, message) => StoreError::Corrupt { id, message },
        })?);
    }
    let next_cursor = more
        .then(|| events.last().map(|e| Cursor::after(e.id).encode()))
        .flatten();
    Ok(EventPage {
        events,
        next_cursor,
    })
}

enum RowError {
    Sql(rusqlite::Error),
    Bad(i64, String),
}

impl From<rusqlite::Error> for RowError {
    fn from(e: rusqlite::Error) -> Self {
        RowError::Sql(e)
    }
}

fn row_to_event(row: &rusqlite::Row<'_>) -> Result<Event, RowError> {
    let id: i64 = row.get(0)?;
    let bad = |m: String| RowError::Bad(id, m);
    let kind_text: String = row.get(3)?;
    let kind =
        EventKind::parse(&kind_text).ok_or_else(|| bad(format!("unknown kind '{kind_text}'")))?;
    let rank: i64 = row.get(5)?;
    let severity =
        severity_from_rank(rank).ok_or_else(|| bad(format!("unknown severity {rank}")))?;
    let net = |i: usize| -> Result<IpNet, RowError> {
        let s: String = row.get(i)?;
        s.parse().map_err(|_| bad(format!("bad prefix '{s}'")))
    };
    let asn = |v: Option<i64>| -> Result<Option<u32>, RowError> {
        v.map(|a| u32::try_from(a).map_err(|_| bad(format!("bad ASN {a}"))))
            .transpose()
    };
    let peer_feed: Option<String> = row.get(9)?;
    let peer = match peer_feed {
        Some(feed) => Some(EventPeer {
            feed,
            source: row.get::<_, Option<String>>(10)?.unwrap_or_default(),
            address: row.get::<_, Option<String>>(11)?.unwrap_or_default(),
            asn: asn(row.get(12)?)?.unwrap_or(0),
        }),
        None => None,
    };
    Ok(Event {
        id,
        time: row.get(1)?,
        received: row.get(2)?,
        kind,
        anomaly: row.get(4)?,
        severity,
        location: row.get(6)?,
        prefix: net(7)?,
        announced: net(8)?,
        peer,
        peer_as_name: row.get(17)?,
        origin: asn(row.get(13)?)?,
        origin_as_name: row.get(18)?,
        as_path: row.get(14)?,
        previous_path: row.get(15)?,
        description: row.get(16)?,
    })
}

#[cfg(test)]
mod tests;
