//! The event store's query side: filters, cursors and read-only connections.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ipnet::IpNet;
use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags};
use serde::Serialize;

use super::*;
use crate::engine::AnomalyKind;
use crate::events::{Event, EventKind, EventPeer, Severity};

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
pub struct Cursor(pub(super) i64);

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
                       previous_path, description, peer_as_name, origin_as_name, rpki";

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
        rpki: match row.get::<_, Option<String>>(19)? {
            Some(text) => Some(
                serde_json::from_str(&text).map_err(|e| bad(format!("bad rpki detail: {e}")))?,
            ),
            None => None,
        },
    })
}
