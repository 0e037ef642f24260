#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `kill -9` of a process writing events: the database opens afterwards (integrity check ok),
//! holds every event the writer had reported committed, in order and without gaps, and the
//! events lost are only those sent within the last flush interval before the kill.
//!
//! The writer is this test binary itself, run again as a child with `CHILD_DIR` set and
//! `--ignored --exact crash_writer_child` (that test is ignored in a plain run): it sends
//! numbered events in a loop (10 per millisecond) and prints `sent N` after each send and
//! `flushed N` whenever the store's committed-events counter moves. The parent SIGKILLs it (by
//! pid, through its [`ChildGuard`]) part-way through a flush interval, then checks the database.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use routewatch::events::store::{EventQuery, EventStore, StoreSettings, EVENTS_FILE};
use routewatch::events::{Event, EventKind, Severity};

mod support;

use support::process::ChildGuard;

const CHILD_DIR: &str = "ROUTEWATCH_EVENTS_CRASH_CHILD_DIR";
const CHILD_INTERVAL_MS: &str = "ROUTEWATCH_EVENTS_CRASH_INTERVAL_MS";
/// Events per send; one send per millisecond.
const PER_SEND: u64 = 10;

fn event(n: u64) -> Event {
    Event {
        id: 0,
        time: 1_700_000_000.0 + n as f64,
        received: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64(),
        kind: EventKind::PathChange,
        anomaly: None,
        severity: Severity::Information,
        location: "crash".into(),
        prefix: "203.0.113.0/24".parse().unwrap(),
        announced: "203.0.113.0/24".parse().unwrap(),
        peer: None,
        peer_as_name: None,
        origin: Some(64496),
        origin_as_name: None,
        as_path: Some("64500 64496".into()),
        previous_path: Some("64500 64501 64496".into()),
        description: format!("event {n}"),
        rpki: None,
    }
}

/// The writer side, run only as the child of [`crash`] (`--ignored --exact`); a no-op without
/// `CHILD_DIR`.
#[test]
#[ignore = "the child process of the kill_9 tests, which run it themselves"]
fn crash_writer_child() {
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        return;
    };
    let interval: u64 = std::env::var(CHILD_INTERVAL_MS).unwrap().parse().unwrap();
    let store = EventStore::open_in(
        Path::new(&dir),
        StoreSettings {
            flush_interval: Duration::from_millis(interval),
            max_batch: 1_000_000,
            ..StoreSettings::default()
        },
    )
    .unwrap();
    let writer = store.writer();
    let counters = store.counters();
    let mut out = std::io::stdout().lock();
    let mut sent = 0u64;
    let mut reported = 0u64;
    loop {
        assert!(writer.send((sent..sent + PER_SEND).map(event).collect()));
        sent += PER_SEND;
        writeln!(out, "sent {sent}").unwrap();
        let written = counters.events_written();
        if written != reported {
            reported = written;
            writeln!(out, "flushed {written}").unwrap();
        }
        out.flush().unwrap();
        std::thread::sleep(Duration::from_millis(1));
    }
}

struct Measured {
    interval: Duration,
    sent: u64,
    flushed_reported: u64,
    stored: u64,
    since_last_flush: Duration,
    rate: f64,
}

/// Runs the child with `interval`, kills it `kill_after` into the interval following its
/// `flushes`-th reported commit, and checks the database.
fn crash(interval: Duration, flushes: usize, kill_after: f64) -> Measured {
    let dir = tempfile::tempdir().unwrap();
    let mut child = ChildGuard::start(
        "the crash writer",
        Command::new(std::env::current_exe().unwrap())
            .args([
                "--ignored",
                "--exact",
                "crash_writer_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_DIR, dir.path())
            .env(CHILD_INTERVAL_MS, interval.as_millis().to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
        None,
        "cargo test",
    );
    let stdout = child.take_stdout();
    let (tx, rx) = mpsc::channel::<(Instant, String)>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send((Instant::now(), line)).is_err() {
                break;
            }
        }
    });

    let started = Instant::now();
    let mut sent = 0u64;
    let mut sent_at: Vec<(Instant, u64)> = Vec::new();
    let mut flushed = 0u64;
    let mut flush_times: Vec<Instant> = Vec::new();
    let mut note = |at: Instant, line: &str, flush_times: &mut Vec<Instant>| {
        if let Some(n) = line.strip_prefix("sent ") {
            sent = n.parse().unwrap();
            sent_at.push((at, sent));
        } else if let Some(n) = line.strip_prefix("flushed ") {
            flushed = n.parse().unwrap();
            flush_times.push(at);
        }
    };
    // Until the wanted number of commits has been reported.
    while flush_times.len() < flushes {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the child reported no commits"
        );
        let (at, line) = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        note(at, &line, &mut flush_times);
    }
    let last_flush = *flush_times.last().unwrap();
    let kill_at = last_flush + interval.mul_f64(kill_after);
    while let Ok((at, line)) = rx.recv_timeout(kill_at.saturating_duration_since(Instant::now())) {
        note(at, &line, &mut flush_times);
        if Instant::now() >= kill_at {
            break;
        }
    }
    child.kill(); // SIGKILL, reaped
    let killed = Instant::now();
    // What the child printed before it died.
    for (at, line) in rx.iter() {
        note(at, &line, &mut flush_times);
    }
    reader.join().unwrap();
    let last_flush = *flush_times.last().unwrap();

    // The database opens and is intact.
    let path = dir.path().join(EVENTS_FILE);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    // Every committed event, in order, no gaps, no duplicates.
    let mut stmt = conn
        .prepare("SELECT description FROM events ORDER BY id")
        .unwrap();
    let numbers: Vec<u64> = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(|d| d.unwrap()["event ".len()..].parse().unwrap())
        .collect();
    let stored = numbers.len() as u64;
    assert!(
        numbers.iter().copied().eq(0..stored),
        "events 0..{stored} in order"
    );
    assert!(
        stored >= flushed,
        "every event reported committed is there: {stored} < {flushed}"
    );
    // What was lost was sent within the last interval (plus scheduling slack) before the kill.
    let slack = Duration::from_millis(250);
    let sent_before_window = sent_at
        .iter()
        .take_while(|(at, _)| *at + interval + slack < killed)
        .last()
        .map_or(0, |(_, n)| *n);
    assert!(
        stored >= sent_before_window,
        "lost events sent more than one interval before the kill: stored {stored}, sent by then \
         {sent_before_window}"
    );
    drop(stmt);
    drop(conn);
    // The store itself re-opens it and serves it.
    let store = EventStore::open_in(dir.path(), StoreSettings::default()).unwrap();
    let page = store.reader().query(&EventQuery::default()).unwrap();
    if stored > 0 {
        assert_eq!(page.events[0].description, format!("event {}", stored - 1));
    }
    store.writer().send(vec![event(stored)]);
    assert_eq!(store.writer().flush(Duration::from_secs(5)).unwrap(), 1);

    let (t0, n0) = sent_at[0];
    let (t1, n1) = *sent_at.last().unwrap();
    Measured {
        interval,
        sent,
        flushed_reported: flushed,
        stored,
        since_last_flush: killed.saturating_duration_since(last_flush),
        rate: (n1 - n0) as f64 / (t1 - t0).as_secs_f64(),
    }
}

fn report(m: &Measured) {
    let lost = m.sent.saturating_sub(m.stored);
    eprintln!(
        "kill -9 with flush interval {:?}: sent {}, reported committed {}, stored {}, lost {} \
         (= {:.0} ms of events at {:.0} events/s; killed {:.0} ms after the last commit report; \
         bound: one interval = {:.0} events)",
        m.interval,
        m.sent,
        m.flushed_reported,
        m.stored,
        lost,
        lost as f64 / m.rate * 1000.0,
        m.rate,
        m.since_last_flush.as_secs_f64() * 1000.0,
        m.rate * m.interval.as_secs_f64(),
    );
}

#[test]
fn kill_9_with_a_100_ms_flush_interval() {
    let m = crash(Duration::from_millis(100), 4, 0.8);
    report(&m);
    assert!(m.stored > 0);
}

#[test]
fn kill_9_with_the_default_1_s_flush_interval() {
    let m = crash(Duration::from_secs(1), 2, 0.7);
    report(&m);
    assert!(m.stored > 0);
}
