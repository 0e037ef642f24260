#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The watched MRT directory against the real daemon on loopback (issue 12, points 7–10): a file
//! still being written is read once, whole; temporary names wait for their rename; the early RIS
//! TABLE_DUMP layout is read; the per-file error budget and the decompression-ratio guard stop
//! hostile files, counted; after a restart the watched files' routes come back without duplicate
//! history rows. Every wait is bounded; the daemon is stopped by pid.

mod support;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use support::daemon::Daemon;
use support::{demo_locations, fixture, DaemonConfig, DEMO_RIB, DEMO_UPDATES};

const GZ_RIB: &str = "mrt/ribs/ripe-bgpdump__bview.20020722.2337.gz";

struct Setup {
    _dir: tempfile::TempDir,
    file: support::config::ConfigFile,
    watch_dir: PathBuf,
}

fn setup(mrt_keys: &str) -> Setup {
    setup_with(mrt_keys, None)
}

fn setup_with(mrt_keys: &str, section: Option<(&str, &str)>) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let watch_dir = dir.path().join("watch");
    std::fs::create_dir(&watch_dir).unwrap();
    let mut config = DaemonConfig::new()
        .watch_dir(&watch_dir, 1)
        .mrt_keys(mrt_keys)
        .locations_toml(&demo_locations());
    if let Some((name, body)) = section {
        config = config.section(name, body);
    }
    let file = config.write(dir.path());
    Setup {
        _dir: dir,
        file,
        watch_dir,
    }
}

fn files(d: &mut Daemon, result: &str) -> f64 {
    d.scrape()
        .get(
            "routewatch_mrt_files_processed_total",
            &[("result", result)],
        )
        .unwrap_or(0.0)
}

/// Waits (bounded) until `result` files were counted `want` times; the series of the newer
/// results exist once used.
fn wait_files(d: &mut Daemon, result: &str, want: f64) {
    d.poll(
        &format!("files{{result={result}}} == {want}"),
        support::daemon::WATCH_TIMEOUT,
        |d| match files(d, result) {
            v if v == want => Ok(()),
            v => Err(format!("it is {v}")),
        },
    );
}

fn routes(d: &mut Daemon) -> f64 {
    d.scrape()
        .value("routewatch_routes_processed_total", &[("feed", "mrt")])
}

/// Entries in `file` (a replay through the library).
fn entries(file: &Path) -> u64 {
    let dir = tempfile::tempdir().unwrap();
    let cfg = DaemonConfig::replay()
        .locations_toml(&demo_locations())
        .write(dir.path());
    let files = [file.to_path_buf()];
    let report =
        routewatch::replay::replay(&routewatch::replay::ReplayOptions::new(&cfg.path, &files))
            .unwrap();
    report.files[0].processed
}

/// Holds for `secs` seconds, asserting `check` at every scrape.
fn hold(d: &mut Daemon, secs: u64, mut check: impl FnMut(&mut Daemon)) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(secs) {
        d.assert_running();
        check(d);
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn a_gz_written_with_a_pause_and_a_renamed_tmp_file_are_read_once_whole() {
    let src = fixture(GZ_RIB);
    let full = entries(&src) as f64;
    assert!(full > 100_000.0, "{full}");
    let bytes = std::fs::read(&src).unwrap();
    let s = setup("");
    let mut d = Daemon::start(&s.file);
    d.wait_ready();

    // Half the file, a 3 s pause (three polls: its size is stable, its stream is cut), the rest.
    let path = s.watch_dir.join("bview.20020722.2337.gz");
    let mut f = std::fs::File::create(&path).unwrap();
    f.write_all(&bytes[..bytes.len() / 2]).unwrap();
    f.flush().unwrap();
    hold(&mut d, 3, |d| {
        assert_eq!(routes(d), 0.0, "a half-written file was read\n{}", d.log());
    });
    f.write_all(&bytes[bytes.len() / 2..]).unwrap();
    drop(f);
    wait_files(&mut d, "ok", 1.0);
    assert_eq!(routes(&mut d), full, "read whole");
    hold(&mut d, 3, |d| {
        assert_eq!(files(d, "ok"), 1.0, "read twice");
        assert_eq!(routes(d), full);
    });
    assert!(d.log().contains("waiting for the rest"), "{}", d.log());

    // Written as *.tmp: never read; renamed: read once.
    let tmp = s.watch_dir.join("bview.b.gz.tmp");
    std::fs::write(&tmp, &bytes).unwrap();
    hold(&mut d, 3, |d| {
        assert_eq!(files(d, "ok"), 1.0, "a .tmp file was read")
    });
    std::fs::rename(&tmp, s.watch_dir.join("bview.b.gz")).unwrap();
    wait_files(&mut d, "ok", 2.0);
    assert_eq!(routes(&mut d), 2.0 * full);
    d.terminate_cleanly();
}

/// One MRT record of an unknown type (99) with a `len`-byte body of zeros.
fn junk_record(len: u32) -> Vec<u8> {
    let mut r = Vec::new();
    r.extend_from_slice(&1_000_000_000u32.to_be_bytes());
    r.extend_from_slice(&99u16.to_be_bytes());
    r.extend_from_slice(&0u16.to_be_bytes());
    r.extend_from_slice(&len.to_be_bytes());
    r.resize(12 + len as usize, 0);
    r
}

#[test]
fn hostile_files_are_bounded_and_the_early_ris_layout_is_read() {
    let s = setup("max-errors-per-file = 10");
    let mut d = Daemon::start(&s.file);
    d.wait_ready();

    // 50 undecodable records: abandoned after 10 errors.
    let junk: Vec<u8> = (0..50).flat_map(|_| junk_record(1)).collect();
    std::fs::write(s.watch_dir.join("a-junk.mrt"), junk).unwrap();
    wait_files(&mut d, "error_budget", 1.0);
    let m = d.scrape();
    let errors: f64 = ["unsupported", "malformed", "truncated_record"]
        .iter()
        .filter_map(|e| {
            m.get(
                "routewatch_parse_errors_total",
                &[("feed", "mrt"), ("error", e)],
            )
        })
        .sum();
    assert_eq!(
        errors, 10.0,
        "parse errors counted before the file was abandoned"
    );

    // A bz2 of 16 records of 16 MiB of zeros (256 MiB, a few hundred bytes compressed): stopped
    // by the ratio guard after the first few MiB.
    let mut enc = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::best());
    let record = junk_record(16 << 20);
    for _ in 0..16 {
        enc.write_all(&record).unwrap();
    }
    let bomb = enc.finish().unwrap();
    assert!(bomb.len() < 4096, "{}", bomb.len());
    std::fs::write(s.watch_dir.join("b-bomb.bz2"), bomb).unwrap();
    wait_files(&mut d, "decompression_ratio", 1.0);

    // The early RIS TABLE_DUMP layout: all 18 entries; 8.8.8.0/24 seen by its 3 peers.
    std::fs::copy(
        fixture("synthetic/early-ris.table_dump_v1.mrt"),
        s.watch_dir.join("c-early.mrt"),
    )
    .unwrap();
    wait_files(&mut d, "ok", 1.0);
    let m = d.scrape();
    assert_eq!(
        m.value("routewatch_routes_processed_total", &[("feed", "mrt")]),
        18.0
    );
    assert_eq!(
        m.value(
            "routewatch_prefix_visibility_peers",
            &[("location", "google-dns"), ("prefix", "8.8.8.0/24")]
        ),
        3.0
    );
    let log = d.log();
    assert_eq!(log.matches("too many parse errors").count(), 1, "{log}");
    assert!(log.contains("decompression-ratio"), "{log}");
    d.terminate_cleanly();
}

fn events(d: &mut Daemon) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            None => "/api/v1/events?limit=1000".to_string(),
            Some(c) => format!("/api/v1/events?limit=1000&cursor={c}"),
        };
        let page = d.get_ok(&path).json();
        out.extend(page["events"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return out,
        }
        assert!(out.len() < 100_000, "pagination does not end");
    }
}

#[test]
fn after_a_restart_watched_routes_are_back_without_duplicate_history() {
    // The demo RIB is the first MB of a bz2 (its stream is cut): without a wait it is read as
    // it is (result="truncated").
    // Hold-down 0: every anomaly transition happens while its file is read, none is pending at
    // the restart.
    let s = setup_with(
        "incomplete-file-timeout-seconds = 0",
        Some(("anomalies", "hold-down-seconds = 0")),
    );
    let google = [("location", "google-dns"), ("prefix", "8.8.8.0/24")];
    let before;
    {
        let mut d = Daemon::start(&s.file);
        d.wait_ready();
        std::fs::copy(fixture(DEMO_RIB), s.watch_dir.join("a-rib.bz2")).unwrap();
        wait_files(&mut d, "truncated", 1.0);
        std::fs::copy(fixture(DEMO_UPDATES), s.watch_dir.join("b-updates.mrt")).unwrap();
        wait_files(&mut d, "ok", 1.0);
        let m = d.scrape();
        assert_eq!(m.value("routewatch_prefix_visibility_peers", &google), 33.0);
        // Let the event store flush.
        std::thread::sleep(Duration::from_secs(3));
        before = events(&mut d);
        assert!(!before.is_empty());
        d.terminate_cleanly();
    }
    let mut d = Daemon::start(&s.file);
    d.wait_ready();
    let m = d.scrape();
    assert_eq!(
        m.value("routewatch_prefix_visibility_peers", &google),
        33.0,
        "routes from the watched files are back at /ready\n{}",
        d.log()
    );
    hold(&mut d, 4, |d| {
        assert_eq!(files(d, "ok") + files(d, "truncated"), 0.0, "read as new");
    });
    let after = events(&mut d);
    assert_eq!(after.len(), before.len(), "history rows after the restart");
    assert_eq!(after, before);
    assert!(
        d.log().contains("re-reading watched MRT files"),
        "{}",
        d.log()
    );
    d.terminate_cleanly();
}
