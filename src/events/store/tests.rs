//! Store tests: every field round-trips, each filter, pagination, retention, migrations and
//! re-open, and the failure paths (unwritable directory, disk full, locked database, full
//! backlog, full queue) being counted and recovered from.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::writer::evictions;
use super::*;
use crate::clock::unix_now;
use crate::engine::AnomalyKind;
use crate::events::{Event, EventKind, EventPeer, Severity};
use ipnet::IpNet;
use rusqlite::Connection;

const T: Duration = Duration::from_secs(5);

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

/// A fully populated event number `n`.
fn event(n: u32) -> Event {
    Event {
        id: 0,
        time: 1_700_000_000.0 + f64::from(n),
        received: unix_now(),
        kind: EventKind::PathChange,
        anomaly: None,
        severity: Severity::Information,
        location: "contoso-seattle".into(),
        prefix: net("203.0.113.0/24"),
        announced: net("203.0.113.0/24"),
        peer: Some(EventPeer {
            feed: "mrt".into(),
            source: "mrt".into(),
            address: "192.0.2.1".into(),
            asn: 64500,
        }),
        peer_as_name: Some("EXAMPLE-TRANSIT, US".into()),
        origin: Some(64496),
        origin_as_name: Some("CONTOSO, US".into()),
        as_path: Some("64500 64496".into()),
        previous_path: Some("64500 64501 64496".into()),
        description: format!("event {n}"),
        rpki: None,
    }
}

/// Fast settings for tests: commits only when asked (or at `max_batch`).
fn settings() -> StoreSettings {
    StoreSettings {
        flush_interval: Duration::from_secs(3600),
        max_batch: 100_000,
        retry_initial: Duration::from_millis(10),
        retry_max: Duration::from_millis(50),
        busy_timeout: Duration::from_millis(50),
        ..StoreSettings::default()
    }
}

fn open(dir: &Path, s: StoreSettings) -> EventStore {
    EventStore::open_in(dir, s).unwrap()
}

fn all(reader: &EventReader, mut q: EventQuery) -> Vec<Event> {
    q.limit = MAX_LIMIT;
    let mut out = Vec::new();
    loop {
        let page = reader.query(&q).unwrap();
        out.extend(page.events);
        match page.next_cursor {
            Some(c) => q.cursor = Some(Cursor::decode(&c).unwrap()),
            None => return out,
        }
    }
}

fn descriptions(events: &[Event]) -> Vec<String> {
    events.iter().map(|e| e.description.clone()).collect()
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + T;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn every_field_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), settings());
    let full = Event {
        kind: EventKind::AnomalyOpened,
        anomaly: Some("origin_mismatch".into()),
        severity: Severity::Critical,
        prefix: net("2001:db8:100::/48"),
        announced: net("2001:db8:100:8000::/49"),
        peer: Some(EventPeer {
            feed: "bmp".into(),
            source: "bmp/edge1:4711/pre-policy".into(),
            address: "2001:db8::1".into(),
            asn: 4_200_000_000,
        }),
        origin: Some(u32::MAX),
        time: 1_400_824_860.5,
        received: 1_700_000_000.25,
        description: "a hijack: ünïcode and 'quotes'".into(),
        ..event(1)
    };
    let sparse = Event {
        kind: EventKind::PrefixWithdrawn,
        severity: Severity::Error,
        peer: None,
        peer_as_name: None,
        origin: None,
        origin_as_name: None,
        as_path: None,
        previous_path: None,
        ..event(2)
    };
    // An RPKI watch event: its detail back as it went in.
    let watch = crate::rpki::watch::WatchEvent {
        kind: crate::rpki::watch::WatchKind::RoaChanged,
        location: "contoso-seattle".into(),
        prefix: net("203.0.113.0/24"),
        detail: crate::rpki::watch::WatchDetail {
            roa: Some(crate::rpki::watch::RoaRecord {
                prefix: net("203.0.113.0/24"),
                max_length: 25,
                asn: 64496,
                expires: Some(1_700_100_000.0),
            }),
            previous_roa: Some(crate::rpki::watch::RoaRecord {
                prefix: net("203.0.113.0/24"),
                max_length: 24,
                asn: 64496,
                expires: None,
            }),
            relation: Some(crate::rpki::watch::Relation::Covering),
            ..Default::default()
        },
        description: "ROA changed".into(),
    };
    let rpki = Event::from_watch(&watch, 1_700_000_000.0);
    // Two changes of one prefix at one time differ by their detail alone: both are kept.
    let mut other = watch.clone();
    other.detail.roa.as_mut().unwrap().max_length = 26;
    let rpki2 = Event::from_watch(&other, 1_700_000_000.0);
    assert_ne!(event_key(&rpki), event_key(&rpki2));
    assert!(store.writer().send(vec![
        full.clone(),
        sparse.clone(),
        rpki.clone(),
        rpki2.clone()
    ]));
    assert_eq!(store.writer().flush(T).unwrap(), 4);
    let got = store.reader().query(&EventQuery::default()).unwrap();
    assert_eq!(got.next_cursor, None);
    assert_eq!(got.events.len(), 4);
    assert_eq!(
        got.events[0],
        Event {
            id: got.events[0].id,
            ..rpki2
        }
    );
    assert_eq!(
        got.events[1],
        Event {
            id: got.events[1].id,
            ..rpki
        }
    );
    // Newest first; ids assigned in insertion order.
    let (s, f) = (&got.events[2], &got.events[3]);
    assert!(s.id > f.id && f.id > 0);
    assert_eq!(*f, Event { id: f.id, ..full });
    assert_eq!(*s, Event { id: s.id, ..sparse });
    let c = store.counters();
    assert_eq!(
        (
            c.events_received(),
            c.events_written(),
            c.commits(),
            c.rows()
        ),
        (4, 4, 1, 4)
    );
    assert_eq!(c.events_pending(), 0);
    assert_eq!((c.write_errors_total(), c.dropped_total()), (0, 0));
}

#[test]
fn a_non_finite_time_is_stored_as_zero_instead_of_failing_the_batch() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), settings());
    store.writer().send(vec![Event {
        time: f64::NAN,
        received: f64::INFINITY,
        ..event(1)
    }]);
    assert_eq!(store.writer().flush(T).unwrap(), 1);
    let e = &store.reader().query(&EventQuery::default()).unwrap().events[0];
    assert_eq!((e.time, e.received), (0.0, 0.0));
}

/// A varied set: kinds, anomaly kinds, locations, prefixes, severities, times.
fn varied() -> Vec<Event> {
    let mut v = Vec::new();
    for n in 0..40u32 {
        let (kind, anomaly, severity) = match n % 5 {
            0 => (
                EventKind::AnomalyOpened,
                Some("origin_mismatch"),
                Severity::Critical,
            ),
            1 => (EventKind::AnomalyOpened, Some("moas"), Severity::Warning),
            2 => (
                EventKind::AnomalyResolved,
                Some("origin_mismatch"),
                Severity::Information,
            ),
            3 => (EventKind::PrefixWithdrawn, None, Severity::Error),
            _ => (EventKind::PathChange, None, Severity::Information),
        };
        v.push(Event {
            time: 1_000.0 + f64::from(n),
            kind,
            anomaly: anomaly.map(String::from),
            severity,
            location: if n.is_multiple_of(2) { "even" } else { "odd" }.into(),
            prefix: if n % 4 < 2 {
                net("203.0.113.0/24")
            } else {
                net("2001:db8::/32")
            },
            ..event(n)
        });
    }
    v
}

#[test]
fn each_filter_selects_exactly_its_events() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), settings());
    let events = varied();
    store.writer().send(events.clone());
    store.writer().flush(T).unwrap();
    let r = store.reader();
    let check = |q: EventQuery, keep: &dyn Fn(&Event) -> bool| {
        let mut want: Vec<String> = events
            .iter()
            .filter(|e| keep(e))
            .map(|e| e.description.clone())
            .collect();
        want.reverse();
        assert!(!want.is_empty() && want.len() < events.len(), "{q:?}");
        assert_eq!(descriptions(&all(&r, q.clone())), want, "{q:?}");
    };
    check(
        EventQuery {
            since: Some(1_010.0),
            ..Default::default()
        },
        &|e| e.time >= 1_010.0,
    );
    check(
        EventQuery {
            until: Some(1_010.0),
            ..Default::default()
        },
        &|e| e.time < 1_010.0,
    );
    check(
        EventQuery {
            since: Some(1_005.0),
            until: Some(1_007.5),
            ..Default::default()
        },
        &|e| (1_005.0..1_007.5).contains(&e.time),
    );
    check(
        EventQuery {
            kind: KindFilter::parse("anomaly_opened"),
            ..Default::default()
        },
        &|e| e.kind == EventKind::AnomalyOpened,
    );
    check(
        EventQuery {
            kind: Some(KindFilter::event(EventKind::PrefixWithdrawn)),
            ..Default::default()
        },
        &|e| e.kind == EventKind::PrefixWithdrawn,
    );
    // An anomaly kind matches the `anomaly` field: opened and resolved alike.
    check(
        EventQuery {
            kind: KindFilter::parse("origin_mismatch"),
            ..Default::default()
        },
        &|e| e.anomaly.as_deref() == Some("origin_mismatch"),
    );
    check(
        EventQuery {
            location: Some("odd".into()),
            ..Default::default()
        },
        &|e| e.location == "odd",
    );
    check(
        EventQuery {
            prefix: Some(net("2001:db8::/32")),
            ..Default::default()
        },
        &|e| e.prefix == net("2001:db8::/32"),
    );
    // Severity is "this or higher".
    check(
        EventQuery {
            severity: Some(Severity::Warning),
            ..Default::default()
        },
        &|e| e.severity >= Severity::Warning,
    );
    check(
        EventQuery {
            severity: Some(Severity::Critical),
            ..Default::default()
        },
        &|e| e.severity == Severity::Critical,
    );
    // Combined: AND.
    check(
        EventQuery {
            kind: KindFilter::parse("origin_mismatch"),
            location: Some("even".into()),
            prefix: Some(net("203.0.113.0/24")),
            since: Some(1_001.0),
            ..Default::default()
        },
        &|e| {
            e.anomaly.as_deref() == Some("origin_mismatch")
                && e.location == "even"
                && e.prefix == net("203.0.113.0/24")
                && e.time >= 1_001.0
        },
    );
    // Severity "information" is everything.
    let q = EventQuery {
        severity: Some(Severity::Information),
        ..Default::default()
    };
    assert_eq!(all(&r, q).len(), events.len());
    // Nothing matches: an empty last page.
    let none = r
        .query(&EventQuery {
            location: Some("nowhere".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        none,
        EventPage {
            events: vec![],
            next_cursor: None
        }
    );
}

#[test]
fn kind_names() {
    assert!(KindFilter::parse("nonsense").is_none());
    assert!(KindFilter::parse("").is_none());
    let names = KindFilter::names();
    for k in EventKind::ALL {
        assert!(KindFilter::parse(k.as_str()).is_some());
        assert!(names.contains(&k.as_str()));
    }
    for k in AnomalyKind::ALL {
        assert!(KindFilter::parse(k.as_str()).is_some());
        assert!(names.contains(&k.as_str()));
    }
}

#[test]
fn cursors() {
    for id in [1, 255, i64::MAX] {
        assert_eq!(
            Cursor::decode(&Cursor::after(id).encode()),
            Some(Cursor(id))
        );
    }
    for bad in [
        "",
        "v1.",
        "v1.0",
        "v1.-1",
        "v1.G",
        "v1.FF",
        "ff",
        "v2.ff",
        "v1.ff ",
        "v1.10000000000000000",
        "v1.8000000000000000",
    ] {
        assert_eq!(Cursor::decode(bad), None, "{bad}");
    }
}

#[test]
fn pages_cover_everything_once_newest_first() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), settings());
    store.writer().send((0..250).map(event).collect());
    store.writer().flush(T).unwrap();
    let r = store.reader();
    let mut q = EventQuery {
        limit: 100,
        ..Default::default()
    };
    let mut sizes = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    loop {
        let page = r.query(&q).unwrap();
        sizes.push(page.events.len());
        let ids: Vec<i64> = page.events.iter().map(|e| e.id).collect();
        assert!(ids.windows(2).all(|w| w[0] > w[1]), "descending ids");
        seen.extend(descriptions(&page.events));
        if sizes.len() == 1 {
            // Something arriving between pages is newer than the cursor: no shift, no
            // duplicate, and it does not appear in the later pages.
            store.writer().send(vec![event(999)]);
            store.writer().flush(T).unwrap();
        }
        match page.next_cursor {
            Some(c) => q.cursor = Some(Cursor::decode(&c).unwrap()),
            None => break,
        }
    }
    assert_eq!(sizes, [100, 100, 50], "no empty last page");
    let want: Vec<String> = (0..250).rev().map(|n| format!("event {n}")).collect();
    assert_eq!(seen, want, "every event exactly once, newest first");
    // A fresh walk starts with the new event.
    let first = r.query(&EventQuery::default()).unwrap();
    assert_eq!(first.events[0].description, "event 999");
    // Exactly at the end: limit = the count left gives no next cursor.
    let page = r
        .query(&EventQuery {
            limit: 251,
            ..Default::default()
        })
        .unwrap();
    assert_eq!((page.events.len(), page.next_cursor), (251, None));
    // Limits are clamped in the store (the API refuses them instead).
    for (limit, len) in [(0, 1), (5000, MAX_LIMIT.min(251))] {
        let page = r
            .query(&EventQuery {
                limit,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(page.events.len(), len);
    }
    // Filters and the cursor combine.
    let mut q = EventQuery {
        limit: 7,
        since: Some(1_700_000_100.0),
        ..Default::default()
    };
    let mut filtered = Vec::new();
    loop {
        let page = r.query(&q).unwrap();
        filtered.extend(descriptions(&page.events));
        match page.next_cursor {
            Some(c) => q.cursor = Some(Cursor::decode(&c).unwrap()),
            None => break,
        }
    }
    let mut want: Vec<String> = (100..250).rev().map(|n| format!("event {n}")).collect();
    want.insert(0, "event 999".into());
    assert_eq!(filtered, want);
}

#[test]
fn retention_by_age_uses_the_receive_time() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), settings());
    let day = 86_400.0;
    let now = unix_now();
    store.writer().send(vec![
        Event {
            received: now - 31.0 * day,
            description: "old".into(),
            ..event(1)
        },
        Event {
            received: now - 29.0 * day,
            // An old BGP time is kept: replays are not deleted at once.
            time: 1_000.0,
            description: "recent".into(),
            ..event(2)
        },
        Event {
            received: now - 400.0 * day,
            description: "ancient".into(),
            ..event(3)
        },
    ]);
    store.writer().flush(T).unwrap();
    assert_eq!(store.writer().apply_retention(T).unwrap(), 2);
    let left = all(&store.reader(), EventQuery::default());
    assert_eq!(descriptions(&left), ["recent"]);
    let c = store.counters();
    assert_eq!((c.rows(), c.retention_deleted()), (1, 2));
}

#[test]
fn retention_by_age_runs_at_start() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path(), settings());
        store.writer().send(vec![Event {
            received: unix_now() - 40.0 * 86_400.0,
            ..event(1)
        }]);
        store.close(T).unwrap();
    }
    let store = open(dir.path(), settings());
    wait_until("retention at start", || {
        store.counters().retention_deleted() == 1
    });
    assert!(all(&store.reader(), EventQuery::default()).is_empty());
}

#[test]
fn retention_by_count_keeps_the_newest() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(
        dir.path(),
        StoreSettings {
            max_rows: 50,
            ..settings()
        },
    );
    store.writer().send((0..30).map(event).collect());
    store.writer().flush(T).unwrap();
    assert_eq!(store.counters().rows(), 30);
    store.writer().send((30..120).map(event).collect());
    store.writer().flush(T).unwrap();
    // Trimmed to the cap less a twentieth (48 rows), so a full table is not trimmed after
    // every commit.
    let left = all(&store.reader(), EventQuery::default());
    let want: Vec<String> = (72..120).rev().map(|n| format!("event {n}")).collect();
    assert_eq!(descriptions(&left), want);
    let c = store.counters();
    assert_eq!((c.rows(), c.retention_deleted()), (48, 72));
}

fn user_version(path: &Path) -> i64 {
    Connection::open(path)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn migrates_an_empty_file_and_reopens_with_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state").join(EVENTS_FILE);
    std::fs::create_dir(dir.path().join("state")).unwrap();
    std::fs::write(&path, b"").unwrap();
    let store = EventStore::open(&path, settings()).unwrap();
    assert_eq!(user_version(&path), SCHEMA_VERSION);
    let mode: String = Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    store.writer().send((0..3).map(event).collect());
    assert_eq!(store.close(T).unwrap(), 3);

    // Re-open: no migration re-run, data kept, ids keep growing.
    let store = EventStore::open(&path, settings()).unwrap();
    assert_eq!(store.counters().rows(), 3);
    store.writer().send(vec![event(3)]);
    store.writer().flush(T).unwrap();
    let got = all(&store.reader(), EventQuery::default());
    assert_eq!(
        descriptions(&got),
        ["event 3", "event 2", "event 1", "event 0"]
    );
    assert!(got[0].id > got[1].id);
    assert_eq!(user_version(&path), SCHEMA_VERSION);
    // The state directory is created when missing.
    let nested = dir.path().join("a/b/c");
    let s = open(&nested, settings());
    s.writer().send(vec![event(0)]);
    assert_eq!(s.writer().flush(T).unwrap(), 1);
    assert!(nested.join(EVENTS_FILE).exists());
}

#[test]
fn a_version_1_database_is_migrated_keeping_its_rows_without_names() {
    // A database as the previous build left it: schema v1 with one row written by its INSERT.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(EVENTS_FILE);
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        conn.execute(
            "INSERT INTO events (time, received, kind, anomaly, severity, location, prefix, \
             announced, peer_feed, peer_source, peer_address, peer_asn, origin, as_path, \
             previous_path, description) VALUES (1400824860.0, ?1, 'anomaly_opened', \
             'origin_mismatch', 3, 'google-dns', '8.8.8.0/24', '8.8.8.0/24', 'mrt', 'mrt', \
             '12.0.1.63', 7018, 64666, '7018 64666', NULL, 'old row')",
            [unix_now()],
        )
        .unwrap();
    }
    assert_eq!(SCHEMA_VERSION, 4);
    let store = EventStore::open(&path, settings()).unwrap();
    assert_eq!(user_version(&path), SCHEMA_VERSION);
    assert_eq!(store.counters().rows(), 1);
    store.writer().send(vec![event(1)]);
    assert_eq!(store.writer().flush(T).unwrap(), 1);
    let got = all(&store.reader(), EventQuery::default());
    assert_eq!(descriptions(&got), ["event 1", "old row"]);
    // The old row: every v1 field back, no names.
    let old = &got[1];
    assert_eq!(
        (old.kind, old.severity, old.origin, old.as_path.as_deref()),
        (
            EventKind::AnomalyOpened,
            Severity::Critical,
            Some(64666),
            Some("7018 64666")
        )
    );
    assert_eq!(old.peer.as_ref().map(|p| p.asn), Some(7018));
    assert_eq!(
        (old.peer_as_name.as_deref(), old.origin_as_name.as_deref()),
        (None, None)
    );
    // The new row: names stored and read back.
    assert_eq!(
        (
            got[0].peer_as_name.as_deref(),
            got[0].origin_as_name.as_deref()
        ),
        (Some("EXAMPLE-TRANSIT, US"), Some("CONTOSO, US"))
    );
    assert!(got[0].id > old.id);
    assert_eq!(store.close(T).unwrap(), 1, "events written by this store");
    // Re-opened: already current, nothing re-run.
    let store = EventStore::open(&path, settings()).unwrap();
    assert_eq!(store.counters().rows(), 2);
    assert_eq!(user_version(&path), SCHEMA_VERSION);
}

#[test]
fn a_newer_schema_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(EVENTS_FILE);
    Connection::open(&path)
        .unwrap()
        .execute_batch("CREATE TABLE future (x); PRAGMA user_version = 99;")
        .unwrap();
    let store = EventStore::open(&path, settings()).unwrap();
    let c = store.counters();
    assert!(c.write_errors(WriteErrorReason::Schema) >= 1);
    assert!(c.failing());
    store.writer().send(vec![event(1)]);
    assert!(store.writer().flush(T).is_err());
    assert!(matches!(
        store.reader().query(&EventQuery::default()),
        Err(StoreError::Unavailable(_))
    ));
    assert_eq!(user_version(&path), 99);
}

#[test]
fn a_file_that_is_not_a_database_is_counted_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(EVENTS_FILE);
    std::fs::write(&path, vec![0x42u8; 8192]).unwrap();
    let store = EventStore::open(&path, settings()).unwrap();
    store.writer().send(vec![event(1)]);
    assert!(store.writer().flush(T).is_err());
    let c = store.counters();
    assert!(c.write_errors(WriteErrorReason::Corrupt) >= 1, "{c:?}");
    assert_eq!(c.events_pending(), 1, "kept for a retry");
    assert!(store.reader().query(&EventQuery::default()).is_err());
}

#[test]
fn reading_before_the_database_exists_is_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let r = EventReader::new(&dir.path().join("nothing.sqlite"), T);
    assert!(matches!(
        r.query(&EventQuery::default()),
        Err(StoreError::Unavailable(_))
    ));
    assert!(
        !dir.path().join("nothing.sqlite").exists(),
        "readers never create"
    );
}

#[test]
fn an_unwritable_directory_is_counted_retried_and_recovered() {
    let dir = tempfile::tempdir().unwrap();
    // A file where the state directory should be: not creatable, even for root.
    let blocker = dir.path().join("state");
    std::fs::write(&blocker, b"not a directory").unwrap();
    let store = open(&blocker.join("sub"), settings());
    let c = store.counters();
    assert_eq!(c.write_errors(WriteErrorReason::CannotOpen), 1);
    assert!(c.failing());
    store.writer().send((0..5).map(event).collect());
    assert!(store.writer().flush(T).is_err());
    wait_until("retries", || {
        c.write_errors(WriteErrorReason::CannotOpen) >= 4
    });
    assert_eq!((c.events_written(), c.events_pending()), (0, 5));
    assert!(store.reader().query(&EventQuery::default()).is_err());
    // The operator fixes it: the retry writes the backlog, nothing lost.
    std::fs::remove_file(&blocker).unwrap();
    std::fs::create_dir(&blocker).unwrap();
    wait_until("recovery", || c.events_written() == 5);
    assert!(!c.failing());
    assert_eq!(c.events_pending(), 0);
    assert_eq!(all(&store.reader(), EventQuery::default()).len(), 5);
}

#[cfg(unix)]
#[test]
fn a_read_only_directory_is_counted() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let ro = dir.path().join("ro");
    std::fs::create_dir(&ro).unwrap();
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
    if std::fs::write(ro.join("probe"), b"").is_ok() {
        // Privileged (root): permissions are not enforced; the test above covers this path.
        return;
    }
    let store = open(&ro, settings());
    store.writer().send(vec![event(1)]);
    assert!(store.writer().flush(T).is_err());
    let c = store.counters();
    assert!(
        c.write_errors(WriteErrorReason::CannotOpen) + c.write_errors(WriteErrorReason::ReadOnly)
            >= 1
    );
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o755)).unwrap();
    wait_until("recovery", || c.events_written() == 1);
}

#[test]
fn a_full_disk_is_counted_retried_and_recovered() {
    let dir = tempfile::tempdir().unwrap();
    let pages = Arc::new(AtomicU64::new(1_000_000));
    let store = open(
        dir.path(),
        StoreSettings {
            page_limit: Some(pages.clone()),
            ..settings()
        },
    );
    store.writer().send(vec![event(0)]);
    store.writer().flush(T).unwrap();
    // SQLITE_FULL: the database may not grow (max_page_count = its current size).
    pages.store(1, Ordering::Relaxed);
    let big: Vec<Event> = (1..2001)
        .map(|n| Event {
            description: format!("event {n} {}", "x".repeat(200)),
            ..event(n)
        })
        .collect();
    store.writer().send(big);
    let err = store.writer().flush(T).unwrap_err();
    assert!(err.to_string().contains("full"), "{err}");
    let c = store.counters();
    wait_until("retries", || {
        c.write_errors(WriteErrorReason::DiskFull) >= 3
    });
    assert_eq!((c.events_written(), c.events_pending()), (1, 2000));
    assert!(c.failing());
    // Space again: the kept batch goes in whole.
    pages.store(1_000_000, Ordering::Relaxed);
    wait_until("recovery", || c.events_written() == 2001);
    assert!(!c.failing());
    assert_eq!(all(&store.reader(), EventQuery::default()).len(), 2001);
    assert_eq!(c.dropped_total(), 0);
}

#[test]
fn a_locked_database_is_counted_retried_and_recovered() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), settings());
    let path = dir.path().join(EVENTS_FILE);
    let blocker = Connection::open(&path).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    store.writer().send(vec![event(1), event(2)]);
    assert!(store.writer().flush(T).is_err());
    let c = store.counters();
    assert!(c.write_errors(WriteErrorReason::Locked) >= 1);
    // Reads still work while another connection holds the write lock (WAL).
    assert!(store.reader().query(&EventQuery::default()).is_ok());
    blocker.execute_batch("COMMIT").unwrap();
    wait_until("recovery", || c.events_written() == 2);
    assert!(!c.failing());
}

#[test]
fn a_failed_retention_is_retried_without_waiting_for_events() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(EVENTS_FILE);
    open(dir.path(), settings()).close(T).unwrap();
    let blocker = Connection::open(&path).unwrap();
    blocker
        .execute_batch(
            "INSERT INTO events (time, received, kind, severity, location, prefix, announced, \
             description) VALUES (0, 0, 'path_change', 0, 'x', '192.0.2.0/24', '192.0.2.0/24', \
             'ancient'); BEGIN IMMEDIATE;",
        )
        .unwrap();
    // Opening an up-to-date database needs no write lock; the retention at start does.
    let store = open(dir.path(), settings());
    let c = store.counters();
    wait_until("the locked retention", || {
        c.write_errors(WriteErrorReason::Locked) >= 1
    });
    assert!(c.failing());
    assert_eq!(c.retention_deleted(), 0);
    blocker.execute_batch("COMMIT").unwrap();
    wait_until("the retried retention", || c.retention_deleted() == 1);
    // The writer counts the deleted rows before it marks the store recovered.
    wait_until("recovery", || !c.failing());
    assert_eq!(c.rows(), 0);
}

#[test]
fn a_full_backlog_drops_the_oldest_and_counts_them() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("state");
    std::fs::write(&blocker, b"").unwrap();
    let store = open(
        &blocker,
        StoreSettings {
            max_backlog: 10,
            ..settings()
        },
    );
    for n in 0..25 {
        store.writer().send(vec![event(n)]);
    }
    let _ = store.writer().flush(T);
    let c = store.counters();
    assert_eq!(c.dropped(DropReason::BacklogFull), 15);
    assert_eq!((c.events_received(), c.events_pending()), (25, 10));
    std::fs::remove_file(&blocker).unwrap();
    wait_until("recovery", || c.events_written() == 10);
    let want: Vec<String> = (15..25).rev().map(|n| format!("event {n}")).collect();
    assert_eq!(
        descriptions(&all(&store.reader(), EventQuery::default())),
        want
    );
}

#[test]
fn a_full_queue_drops_and_counts_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(
        dir.path(),
        StoreSettings {
            queue_capacity: 1,
            flush_interval: Duration::from_millis(5),
            busy_timeout: Duration::from_millis(400),
            ..settings()
        },
    );
    let blocker = Connection::open(dir.path().join(EVENTS_FILE)).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    store.writer().send(vec![event(0)]);
    // The writer is now waiting on the lock; the one-slot queue fills.
    std::thread::sleep(Duration::from_millis(100));
    let started = Instant::now();
    let accepted = (1..10)
        .filter(|n| store.writer().send(vec![event(*n)]))
        .count();
    assert!(
        started.elapsed() < Duration::from_millis(50),
        "send never blocks"
    );
    assert!(accepted < 9);
    let c = store.counters();
    assert_eq!(c.dropped(DropReason::QueueFull), 9 - accepted as u64);
    blocker.execute_batch("COMMIT").unwrap();
    wait_until("the rest written", || c.events_pending() == 0);
    assert_eq!(c.events_written(), 1 + accepted as u64);
}

#[test]
fn commits_when_the_interval_passes_or_the_batch_fills() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(
        dir.path(),
        StoreSettings {
            flush_interval: Duration::from_millis(300),
            max_batch: 10,
            ..settings()
        },
    );
    let c = store.counters();
    let sent = Instant::now();
    store.writer().send(vec![event(0)]);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(c.events_written(), 0, "not before the interval");
    wait_until("the interval", || c.events_written() == 1);
    assert!(sent.elapsed() >= Duration::from_millis(300));
    assert_eq!(c.commits(), 1);
    // A full batch goes at once, in one transaction.
    let sent = Instant::now();
    store.writer().send((1..11).map(event).collect());
    wait_until("the batch", || c.events_written() == 11);
    assert!(sent.elapsed() < Duration::from_millis(250));
    assert_eq!(c.commits(), 2);
}

#[test]
fn close_writes_what_is_buffered_and_later_sends_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), settings());
    let writer = store.writer();
    writer.send((0..7).map(event).collect());
    assert_eq!(store.close(T).unwrap(), 7);
    assert!(!writer.send(vec![event(8)]));
    assert_eq!(writer.counters().dropped(DropReason::Closed), 1);
    assert!(writer.flush(T).is_err());
    let reader = EventReader::new(&dir.path().join(EVENTS_FILE), T);
    assert_eq!(all(&reader, EventQuery::default()).len(), 7);
}

#[test]
fn dropping_every_handle_still_writes_the_buffer() {
    let dir = tempfile::tempdir().unwrap();
    let reader = {
        let store = open(dir.path(), settings());
        store.writer().send((0..4).map(event).collect());
        store.reader()
    };
    wait_until("the final flush", || {
        reader
            .query(&EventQuery::default())
            .is_ok_and(|p| p.events.len() == 4)
    });
}

#[test]
fn labels_are_distinct_and_stable() {
    let w: Vec<&str> = WriteErrorReason::ALL.iter().map(|r| r.as_str()).collect();
    assert_eq!(
        w,
        [
            "disk_full",
            "locked",
            "read_only",
            "cannot_open",
            "io",
            "corrupt",
            "schema",
            "other"
        ]
    );
    let d: Vec<&str> = DropReason::ALL.iter().map(|r| r.as_str()).collect();
    assert_eq!(d, ["queue_full", "backlog_full", "closed"]);
    for (i, r) in WriteErrorReason::ALL.iter().enumerate() {
        assert_eq!(r.index(), i);
    }
    for (i, r) in DropReason::ALL.iter().enumerate() {
        assert_eq!(r.index(), i);
    }
}

#[test]
fn settings_follow_the_config() {
    let s = StoreSettings::from_config(&EventsConfig {
        enabled: true,
        flush_interval_ms: 250,
        retention_days: 2,
        max_rows: 77,
    });
    assert_eq!(s.flush_interval, Duration::from_millis(250));
    assert_eq!(s.retention, Duration::from_secs(2 * 86_400));
    assert_eq!(s.max_rows, 77);
    let d = StoreSettings::default();
    assert_eq!(
        (d.flush_interval, d.retention, d.max_rows),
        (
            Duration::from_secs(1),
            Duration::from_secs(30 * 86_400),
            1_000_000
        )
    );
}

/// One flapping prefix floods the history with route events: the count retention takes them
/// from it, not another prefix's hijack (its opening and resolution stay), nor the quiet
/// prefix's own route events.
#[test]
fn count_retention_evicts_the_noisiest_prefixs_route_events_first() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(
        dir.path(),
        StoreSettings {
            max_rows: 100,
            ..settings()
        },
    );
    let hijack = |n: u32, kind: EventKind| Event {
        kind,
        anomaly: Some("origin_mismatch".into()),
        severity: Severity::Critical,
        prefix: net("198.51.100.0/24"),
        announced: net("198.51.100.0/24"),
        description: format!("hijack {n}"),
        ..event(n)
    };
    let quiet = |n: u32| Event {
        prefix: net("198.51.100.0/24"),
        announced: net("198.51.100.0/24"),
        description: format!("quiet {n}"),
        ..event(n)
    };
    // The real incident and a little routine history of its prefix, first (oldest).
    store.writer().send(vec![
        hijack(0, EventKind::AnomalyOpened),
        quiet(1),
        quiet(2),
        hijack(3, EventKind::AnomalyResolved),
    ]);
    store.writer().flush(T).unwrap();
    // Then the flood on 203.0.113.0/24.
    for chunk in 0..10 {
        store.writer().send(
            (10 + chunk * 50..10 + (chunk + 1) * 50)
                .map(event)
                .collect(),
        );
        store.writer().flush(T).unwrap();
    }
    let left = descriptions(&all(&store.reader(), EventQuery::default()));
    assert!(left.len() <= 100, "{}", left.len());
    for kept in ["hijack 0", "hijack 3", "quiet 1", "quiet 2"] {
        assert!(left.iter().any(|d| d == kept), "{kept} evicted: {left:?}");
    }
    // The flood lost its oldest.
    assert!(left.iter().any(|d| d == "event 509"));
    assert!(!left.iter().any(|d| d == "event 10"));
}

/// The same events written again (a restart, a re-read file) add no row, and are counted.
#[test]
fn the_same_events_are_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), settings());
    store.writer().send((0..20).map(event).collect());
    store.writer().flush(T).unwrap();
    // Received later, named differently, from another BMP session port: the same events.
    let again: Vec<Event> = (0..20)
        .map(|n| Event {
            received: unix_now() + 100.0,
            peer_as_name: None,
            description: format!("again {n}"),
            peer: Some(EventPeer {
                source: "bmp/192.0.2.9:40001/adj-in-pre".into(),
                ..event(n).peer.unwrap()
            }),
            ..event(n)
        })
        .collect();
    store.writer().send(again);
    store.writer().send(vec![event(20)]);
    store.writer().flush(T).unwrap();
    let c = store.counters();
    assert_eq!((c.rows(), c.duplicates()), (21, 20));
    assert_eq!(all(&store.reader(), EventQuery::default()).len(), 21);
}

/// A flood of events while the writer is stuck cannot grow the queue: beyond the backlog cap
/// plus one event per channel slot, new events are dropped and counted.
#[test]
fn the_queue_is_bounded_in_events_not_batches() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("state");
    std::fs::write(&blocker, b"").unwrap();
    let store = open(
        &blocker,
        StoreSettings {
            max_backlog: 100,
            queue_capacity: 4,
            ..settings()
        },
    );
    for round in 0..50u32 {
        store
            .writer()
            .send((round * 1000..round * 1000 + 1000).map(event).collect());
    }
    let c = store.counters();
    assert!(c.events_pending() <= 104, "{}", c.events_pending());
    assert_eq!(c.events_received(), 50_000);
    assert!(c.dropped(DropReason::QueueFull) >= 49_000 - 104);
    // Full, anomaly openings still get in; the route events of their batch do not.
    let opening = |n| Event {
        kind: EventKind::AnomalyOpened,
        anomaly: Some("origin_mismatch".into()),
        ..event(n)
    };
    let dropped = c.dropped(DropReason::QueueFull);
    let mut batch: Vec<Event> = (0..200).map(event).collect();
    batch.extend((200..205).map(opening));
    assert!(store.writer().send(batch));
    let gone = c.dropped(DropReason::QueueFull) - dropped;
    assert_eq!(
        gone, 200,
        "the batch alone is over the bound: its route events go"
    );
}

#[test]
fn evictions_cut_the_largest_down_to_a_common_level() {
    let mut counts = vec![
        ("a".to_string(), 10),
        ("c".to_string(), 1),
        ("b".to_string(), 6),
    ];
    let taken = evictions(&mut counts, 7);
    assert_eq!(taken, vec![("a".to_string(), 6), ("b".to_string(), 1)]);
    assert_eq!(
        evictions(&mut counts, 100).iter().map(|t| t.1).sum::<u64>(),
        17
    );
    assert!(evictions(&mut counts, 0).is_empty());
}
