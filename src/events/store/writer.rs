//! The event store's writer thread: batching, commits, failure streaks, retention and migrations.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::{params, Connection, OpenFlags, TransactionBehavior};
use tracing::{debug, error, info, warn};

use super::*;
use crate::clock::unix_now;
use crate::events::Event;

// ---- the writer thread ------------------------------------------------------------------------

/// A run of consecutive failures.
struct Streak {
    failures: u64,
    backoff: Duration,
    retry_at: Instant,
    dropped_at_start: u64,
}

pub(super) struct Writer {
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
    pub(super) fn new(
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

    pub(super) fn run(mut self) {
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

    pub(super) fn try_open(&mut self) -> Result<(), String> {
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
pub(super) fn evictions(counts: &mut [(String, u64)], excess: u64) -> Vec<(String, u64)> {
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
    // Only when present, so the keys of the other kinds stay what earlier builds stored.
    if let Some(r) = &e.rpki {
        field(serde_json::to_string(r).unwrap_or_default().as_bytes());
    }
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
             previous_path, description, peer_as_name, origin_as_name, event_key, rpki) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, \
             ?17, ?18, ?19, ?20)",
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
                e.rpki.as_ref().and_then(|r| serde_json::to_string(r).ok()),
            ])? as u64;
        }
    }
    tx.commit()?;
    Ok(inserted)
}
