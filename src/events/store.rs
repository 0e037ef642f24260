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

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::ErrorCode;

use super::{Event, Severity};
use crate::config::EventsConfig;

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
    // v4: the ROA / ASPA of an RPKI watch event, as its JSON (NULL for other kinds).
    "ALTER TABLE events ADD COLUMN rpki TEXT;",
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

pub mod reader;
mod writer;

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

/// Most events that may wait in memory, in the channel and the backlog together: the backlog
/// cap plus one event per channel slot.
fn max_pending(settings: &StoreSettings) -> u64 {
    (settings.max_backlog.max(1) as u64).saturating_add(settings.queue_capacity as u64)
}

pub use reader::{Cursor, EventPage, EventQuery, EventReader, KindFilter};
pub use writer::event_key;
use writer::Writer;

#[cfg(test)]
mod tests;
