#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The `run` daemon end to end, through the real binary and its HTTP listener: readiness after
//! the configured RIB, the Prometheus exposition (checked by `promtool` and by value), the JSON
//! API, a watched-directory file processed once (also across a restart), a clean SIGTERM
//! shutdown, `/ready` staying 503 while the initial load cannot finish, and a taken port.

mod support;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use support::config::ConfigFile;
use support::daemon::{
    http_get, poll, promtool_check, Daemon, Exposition, EXIT_TIMEOUT, POLL, READY_TIMEOUT,
};
use support::{demo_locations, fixture, DaemonConfig, DEMO_RIB, DEMO_UPDATES};

/// Name the watched updates file gets in the watch directory.
const WATCHED_NAME: &str = "demo-hijack.updates.mrt";

#[test]
fn the_exposition_parser_reads_labels_escapes_and_special_values() {
    let text = "# HELP a_total A.\n# TYPE a_total counter\n\
                a_total{feed=\"mrt\",msg=\"say \\\"hi\\\"\\n\\\\\"} 3\n\
                b 1.5e3 1700000000000\n\
                c{ } +Inf\n";
    let e = Exposition::parse(text).unwrap();
    assert_eq!(
        e.get("a_total", &[("feed", "mrt"), ("msg", "say \"hi\"\n\\")]),
        Some(3.0)
    );
    assert_eq!(
        e.get("a_total", &[("feed", "mrt")]),
        None,
        "label sets match exactly"
    );
    assert_eq!(e.get("b", &[]), Some(1500.0));
    assert_eq!(e.get("c", &[]), Some(f64::INFINITY));
    assert!(Exposition::parse("x{a=\"1\"} 1\nx{a=\"1\"} 2\n").is_err());
    assert!(Exposition::parse("x{a=1} 1\n").is_err());
    assert!(Exposition::parse("x{a=\"1\" 1\n").is_err());
    assert!(Exposition::parse("x one\n").is_err());
}

/// A daemon configuration in a temporary directory.
struct Setup {
    dir: tempfile::TempDir,
    config: DaemonConfig,
    file: ConfigFile,
    state_dir: PathBuf,
    watch_dir: PathBuf,
    port: u16,
}

impl Setup {
    /// Demo locations on a free port; `files` processed at start; with a watched directory when
    /// `watch` is set; anomalies held 2 s before they resolve.
    fn new(files: &[PathBuf], watch: bool) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let state_dir = dir.path().join("state");
        let watch_dir = dir.path().join("watch");
        let mut config = DaemonConfig::new()
            .mrt_files(files)
            .section("anomalies", "hold-down-seconds = 2\n")
            .locations_toml(&demo_locations());
        if watch {
            std::fs::create_dir(&watch_dir).unwrap();
            config = config.watch_dir(&watch_dir, 1);
        }
        let file = config.write(dir.path());
        Setup {
            port: config.http_port(),
            dir,
            config,
            file,
            state_dir,
            watch_dir,
        }
    }

    fn start(&self) -> Daemon {
        Daemon::start(&self.file)
    }

    /// Copies `src` into the watched directory as `name`: written under a hidden name, then
    /// renamed, so the daemon never sees it half-written.
    fn drop_into_watch_dir(&self, src: &Path, name: &str) {
        let hidden = self.watch_dir.join(format!(".{name}.partial"));
        std::fs::copy(src, &hidden).unwrap();
        std::fs::rename(&hidden, self.watch_dir.join(name)).unwrap();
    }

    fn processed_list(&self) -> Vec<String> {
        std::fs::read_to_string(self.state_dir.join("mrt-processed.txt"))
            // A line is name, size and mtime (tab-separated): the name.
            .map(|s| {
                s.lines()
                    .map(|l| l.split('\t').next().unwrap_or_default().to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Waits until the state file lists exactly `names`.
    fn wait_processed_list(&self, names: &[&str], daemon: &mut Daemon) {
        daemon.poll("mrt-processed.txt", Duration::from_secs(10), |d| {
            d.assert_running();
            match self.processed_list() {
                list if list == names => Ok(()),
                list => Err(format!("lists {list:?}, expected {names:?}")),
            }
        });
    }
}

const RIB_ROUTES: f64 = 270_005.0;
const UPDATES_ROUTES: f64 = 8.0;

fn google_8() -> [(&'static str, &'static str); 2] {
    [("location", "google-dns"), ("prefix", "8.8.8.0/24")]
}

fn subprefix_hijack_8() -> [(&'static str, &'static str); 3] {
    [
        ("kind", "subprefix_hijack"),
        ("location", "google-dns"),
        ("prefix", "8.8.8.0/24"),
    ]
}

/// Checks what the daemon exposes once the RIB is loaded and nothing else has been read.
fn assert_baseline(daemon: &mut Daemon, scrape_file: &Path) {
    let r = daemon.get_ok("/metrics");
    assert!(
        r.header("content-type")
            .is_some_and(|t| t.starts_with("text/plain; version=0.0.4")),
        "{:?}",
        r.headers
    );
    let text = r.text();
    std::fs::write(scrape_file, &text).unwrap();
    promtool_check(scrape_file);
    let m = Exposition::parse(&text).unwrap();

    assert_eq!(
        m.value("routewatch_prefix_visibility_peers", &google_8()),
        33.0
    );
    assert_eq!(
        m.value(
            "routewatch_anomalies_active",
            &[
                ("kind", "origin_mismatch"),
                ("location", "cernet-beijing"),
                ("prefix", "1.2.4.0/24"),
            ]
        ),
        1.0
    );
    assert_eq!(
        m.value("routewatch_routes_processed_total", &[("feed", "mrt")]),
        RIB_ROUTES
    );
    assert_eq!(
        m.value(
            "routewatch_parse_errors_total",
            &[("error", "truncated_stream"), ("feed", "mrt")]
        ),
        1.0,
        "the cut bz2 stream of the RIB"
    );
    assert_eq!(
        m.value(
            "routewatch_mrt_files_processed_total",
            &[("result", "parse_errors")]
        ),
        1.0
    );
    assert_eq!(
        m.value("routewatch_mrt_files_processed_total", &[("result", "ok")]),
        0.0
    );
    assert_eq!(
        m.value(
            "routewatch_mrt_files_processed_total",
            &[("result", "failed")]
        ),
        0.0
    );
    assert_eq!(
        m.value("routewatch_registered_prefixes", &[("afi", "ipv4")]),
        5.0
    );
    assert_eq!(
        m.value("routewatch_registered_prefixes", &[("afi", "ipv6")]),
        0.0
    );
    let build = m.with_name("routewatch_build_info");
    assert_eq!(build.len(), 1, "{build:?}");
    assert_eq!(build[0].1, 1.0);
    assert_eq!(
        build[0].0.get("version").map(String::as_str),
        Some(env!("CARGO_PKG_VERSION"))
    );
    // The commit (what `routewatch --version` says) and the compiler ("1.88.0").
    let version = std::process::Command::new(env!("CARGO_BIN_EXE_routewatch"))
        .arg("--version")
        .output()
        .unwrap();
    let version = String::from_utf8(version.stdout).unwrap();
    let revision = build[0].0.get("revision").map(String::as_str).unwrap_or("");
    assert!(
        !revision.is_empty() && version.contains(&format!("(commit {revision}, ")),
        "revision {revision:?}, --version {version:?}"
    );
    let rust = build[0]
        .0
        .get("rustversion")
        .map(String::as_str)
        .unwrap_or("");
    let parts: Vec<&str> = rust.split('.').collect();
    assert!(
        parts.len() == 3 && parts.iter().all(|p| p.parse::<u32>().is_ok()),
        "rustversion {rust:?}"
    );
    assert_eq!(
        m.value("routewatch_anomalies_opened_total", &subprefix_hijack_8()),
        0.0
    );
}

/// Checks the JSON API once the RIB is loaded.
fn assert_api_baseline(daemon: &mut Daemon) {
    let prefixes = daemon.get_ok("/api/v1/prefixes").json();
    let list = prefixes["prefixes"].as_array().expect("prefixes array");
    let mut names: Vec<&str> = list.iter().map(|p| p["prefix"].as_str().unwrap()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "1.0.0.0/24",
            "1.2.4.0/24",
            "12.0.120.0/24",
            "8.8.4.0/24",
            "8.8.8.0/24"
        ]
    );
    let google = list.iter().find(|p| p["prefix"] == "8.8.8.0/24").unwrap();
    assert_eq!(google["location"], "google-dns");
    assert_eq!(google["visibility"], 33);
    assert_eq!(google["origins"], serde_json::json!([15169]));

    let status = daemon.get_ok("/api/v1/status").json();
    assert_eq!(status["ready"], true, "{status}");
    assert_eq!(status["locations"], 4, "{status}");
    assert_eq!(status["registered_prefixes"], 5, "{status}");
    assert_eq!(status["mrt_files_processed"], 1, "{status}");
}

/// Drops the demo hijack updates into the watched directory and checks their effect.
/// `applied`: times the updates were applied before (a restarted daemon re-reads the watched
/// file it had processed).
fn process_watched_updates(
    setup: &Setup,
    daemon: &mut Daemon,
    name: &str,
    applied: f64,
) -> Exposition {
    setup.drop_into_watch_dir(&fixture(DEMO_UPDATES), name);
    let m = daemon.wait_metric(
        "routewatch_mrt_files_processed_total",
        &[("result", "ok")],
        1.0,
    );
    assert_eq!(
        m.value("routewatch_anomalies_opened_total", &subprefix_hijack_8()),
        1.0,
        "the /25 hijack opened (once: a quiet re-read does not count its openings again)"
    );
    // and was resolved by the withdrawal, once its hold-down (2 s) passed on the wall clock: the
    // file's BGP times stop at the withdrawal, so no later BGP time ends it.
    let m = daemon.wait_metric("routewatch_anomalies_active", &subprefix_hijack_8(), 0.0);
    assert_eq!(
        m.value("routewatch_anomalies_opened_total", &subprefix_hijack_8()),
        1.0,
        "one incident (a quiet re-read after a restart does not count its openings again)"
    );
    assert_eq!(
        m.value("routewatch_prefix_path_changes_total", &google_8()),
        2.0 * (1.0 + applied),
        "AT&T's path went to the hijacker and back"
    );
    assert_eq!(
        m.value("routewatch_routes_processed_total", &[("feed", "mrt")]),
        RIB_ROUTES + UPDATES_ROUTES * (1.0 + applied)
    );
    m
}

#[test]
fn daemon_serves_metrics_and_api_processes_a_watched_file_and_stops_on_sigterm() {
    let setup = Setup::new(&[fixture(DEMO_RIB)], true);
    let mut daemon = setup.start();
    daemon.wait_ready();

    let live = daemon.get_ok("/live");
    assert_eq!(live.text(), "ok\n");
    assert_baseline(&mut daemon, &setup.dir.path().join("scrape-baseline.prom"));
    assert_api_baseline(&mut daemon);

    let m = process_watched_updates(&setup, &mut daemon, WATCHED_NAME, 0.0);
    assert_eq!(
        m.value(
            "routewatch_mrt_files_processed_total",
            &[("result", "parse_errors")]
        ),
        1.0,
        "the RIB is not read again"
    );
    let after = setup.dir.path().join("scrape-after-updates.prom");
    std::fs::write(&after, daemon.get_ok("/metrics").text()).unwrap();
    promtool_check(&after);
    let status = daemon.get_ok("/api/v1/status").json();
    assert_eq!(status["mrt_files_processed"], 2, "{status}");
    setup.wait_processed_list(&[WATCHED_NAME], &mut daemon);

    // The event history: both injected exact-prefix hijacks opened and resolved, newest first,
    // read one page at a time through the cursor.
    // (Events are committed by the store's writer within its flush interval, 1 s by default.)
    let hijacks = daemon.poll("the hijack events stored", Duration::from_secs(20), |d| {
        let events = all_events(d, "kind=origin_mismatch&location=google-dns");
        if events.len() == 2 {
            Ok(events)
        } else {
            Err(format!("{events:?}"))
        }
    });
    let kinds: Vec<&str> = hijacks
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["anomaly_resolved", "anomaly_opened"], "{hijacks:?}");
    assert_eq!(hijacks[1]["origin"], 64666);
    assert_eq!(hijacks[1]["severity"], "critical");
    assert_eq!(hijacks[1]["peer"]["address"], "12.0.1.63");
    assert!(hijacks[0]["id"].as_i64() > hijacks[1]["id"].as_i64());
    let changes = all_events(&mut daemon, "kind=origin_change");
    assert_eq!(changes.len(), 6, "{changes:?}");
    // The exact sequence for Google's prefixes after the RIB, oldest first.
    let mut google = all_events(&mut daemon, "location=google-dns&since=1400824801");
    google.reverse();
    let sequence: Vec<String> = google
        .iter()
        .map(|e| match e["anomaly"].as_str() {
            Some(a) => format!(
                "{} {} {a}",
                e["announced"].as_str().unwrap(),
                e["kind"].as_str().unwrap()
            ),
            None => format!(
                "{} {}",
                e["announced"].as_str().unwrap(),
                e["kind"].as_str().unwrap()
            ),
        })
        .collect();
    assert_eq!(
        sequence,
        [
            "8.8.8.0/24 anomaly_opened origin_mismatch",
            "8.8.8.0/24 anomaly_opened moas",
            "8.8.8.0/24 origin_change",
            "8.8.8.0/24 path_change",
            "8.8.8.0/25 anomaly_opened subprefix_hijack",
            "8.8.8.0/25 anomaly_resolved subprefix_hijack",
            "8.8.8.0/24 anomaly_resolved origin_mismatch",
            "8.8.8.0/24 anomaly_resolved moas",
            "8.8.8.0/24 origin_change",
            "8.8.8.0/24 path_change",
        ]
    );
    let bad = daemon.get("/api/v1/events?severity=loud");
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()["parameter"], "severity");

    daemon.terminate_cleanly();
    assert_eq!(setup.processed_list(), [WATCHED_NAME]);
}

/// Every event matching `filter`, following `next_cursor` one event per page.
fn all_events(daemon: &mut Daemon, filter: &str) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            None => format!("/api/v1/events?{filter}&limit=1"),
            Some(c) => format!("/api/v1/events?{filter}&limit=1&cursor={c}"),
        };
        let page = daemon.get_ok(&path).json();
        out.extend(page["events"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return out,
        }
        assert!(out.len() < 1000, "pagination does not end");
    }
}

#[test]
fn restarted_daemon_does_not_reprocess_remembered_watched_files() {
    let setup = Setup::new(&[fixture(DEMO_RIB)], true);
    {
        let mut first = setup.start();
        first.wait_ready();
        process_watched_updates(&setup, &mut first, WATCHED_NAME, 0.0);
        setup.wait_processed_list(&[WATCHED_NAME], &mut first);
        first.terminate_cleanly();
    }

    // Same configuration: same state directory, watched directory (still holding the file)
    // and port.
    let mut second = setup.start();
    second.wait_ready();
    // The event history survived the restart.
    let kept = all_events(&mut second, "kind=origin_mismatch&location=google-dns");
    assert_eq!(kept.len(), 2, "{kept:?}");
    let ready_at = Instant::now();
    let ok = [("result", "ok")];
    let m = second.scrape();
    assert_eq!(m.value("routewatch_mrt_files_processed_total", &ok), 0.0);
    assert_eq!(
        m.value(
            "routewatch_mrt_files_processed_total",
            &[("result", "parse_errors")]
        ),
        1.0,
        "configured files are read at every start"
    );
    // Several watch polls (interval 1 s) pass without the remembered file being read.
    while ready_at.elapsed() < Duration::from_secs(3) {
        let m = second.scrape();
        assert_eq!(
            m.value("routewatch_mrt_files_processed_total", &ok),
            0.0,
            "{WATCHED_NAME} was processed again after the restart\n{}",
            second.log()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let m = second.scrape();
    assert_eq!(m.value("routewatch_mrt_files_processed_total", &ok), 0.0);
    // Issue 12 point 7: the watched file processed before the restart is re-read quietly to
    // rebuild its routes (counted in the route counters, which the restart reset; its anomaly
    // openings are not counted again, so no increase() alert fires for an incident that is
    // over; no events: the history check above).
    assert_eq!(
        m.value("routewatch_routes_processed_total", &[("feed", "mrt")]),
        RIB_ROUTES + UPDATES_ROUTES
    );
    assert_eq!(
        m.value("routewatch_anomalies_opened_total", &subprefix_hijack_8()),
        0.0
    );
    assert_eq!(
        m.value("routewatch_anomalies_active", &subprefix_hijack_8()),
        0.0
    );
    assert_eq!(setup.processed_list(), [WATCHED_NAME], "not recorded twice");
    let kept_again = all_events(&mut second, "kind=origin_mismatch&location=google-dns");
    assert_eq!(
        kept_again.len(),
        2,
        "no duplicate history rows: {kept_again:?}"
    );

    // The watcher of the restarted daemon is alive: a new name is processed, once.
    let second_name = "second-copy.updates.mrt";
    process_watched_updates(&setup, &mut second, second_name, 1.0);
    setup.wait_processed_list(&[WATCHED_NAME, second_name], &mut second);
    second.terminate_cleanly();
}

/// Keeps opening a FIFO for writing (and closing it at once), so each open of the daemon's
/// reader returns and reads an empty stream; stopped and joined on drop.
#[cfg(target_os = "linux")]
struct FifoFeeder {
    path: PathBuf,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[cfg(target_os = "linux")]
impl FifoFeeder {
    fn start(path: &Path) -> FifoFeeder {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let thread = {
            let (path, stop) = (path.to_path_buf(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Acquire) {
                    // Blocks until a reader has the FIFO open; dropping it gives that reader EOF.
                    drop(std::fs::OpenOptions::new().write(true).open(&path));
                }
            })
        };
        FifoFeeder {
            path: path.to_path_buf(),
            stop,
            thread: Some(thread),
        }
    }
}

#[cfg(target_os = "linux")]
impl Drop for FifoFeeder {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Release);
        // On Linux a read-write open of a FIFO never blocks, and releases a writer blocked in
        // open; held until the thread is joined so its last open cannot block either.
        let unblock = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.path);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        drop(unblock);
    }
}

/// The configured input is a FIFO nobody writes to, so the initial load cannot finish until the
/// test lets it: `/ready` is 503 meanwhile (deterministically), and 200 right after.
#[cfg(target_os = "linux")]
#[test]
fn ready_is_503_until_the_initial_load_is_done() {
    let tmp = tempfile::tempdir().unwrap();
    let fifo = tmp.path().join("initial.mrt");
    let mkfifo = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(mkfifo.success(), "mkfifo: {mkfifo}");
    let setup = Setup::new(std::slice::from_ref(&fifo), false);
    let mut daemon = setup.start();

    // The first answer, and every answer while nothing is written: 503.
    let first = poll("an answer on /ready", READY_TIMEOUT, || {
        daemon.assert_running();
        http_get(setup.port, "/ready").map_err(|e| e.to_string())
    });
    assert_eq!(first.status, 503, "{}", first.text());
    let blocked_until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < blocked_until {
        let r = daemon.get("/ready");
        assert_eq!(r.status, 503, "{}", r.text());
        assert_eq!(r.text(), "not ready: initial data still loading\n");
        assert_eq!(daemon.get_ok("/live").text(), "ok\n", "live while loading");
        std::thread::sleep(POLL);
    }
    let status = daemon.get_ok("/api/v1/status").json();
    assert_eq!(status["ready"], false, "{status}");
    assert_eq!(status["mrt_files_processed"], 0, "{status}");
    let m = daemon.scrape();
    for result in ["ok", "parse_errors", "failed"] {
        assert_eq!(
            m.value(
                "routewatch_mrt_files_processed_total",
                &[("result", result)]
            ),
            0.0
        );
    }

    // Let the (empty) input be read: ready.
    let feeder = FifoFeeder::start(&fifo);
    daemon.wait_ready();
    drop(feeder);
    let status = daemon.get_ok("/api/v1/status").json();
    assert_eq!(status["ready"], true, "{status}");
    assert_eq!(status["mrt_files_processed"], 1, "{status}");
    let m = daemon.scrape();
    assert_eq!(
        m.value("routewatch_mrt_files_processed_total", &[("result", "ok")]),
        1.0
    );
    assert_eq!(
        m.value("routewatch_routes_processed_total", &[("feed", "mrt")]),
        0.0
    );
    daemon.terminate_cleanly();
}

#[test]
fn run_exits_1_naming_the_address_when_the_port_is_taken() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = DaemonConfig::new()
        .listen(addr)
        .locations_toml(&demo_locations())
        .write(dir.path());
    let mut daemon = Daemon::start(&config);
    let status = daemon
        .wait_exit(EXIT_TIMEOUT)
        .unwrap_or_else(|| panic!("still running with {addr} taken\n{}", daemon.log()));
    let log = std::fs::read_to_string(daemon.log_path()).unwrap();
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(
        log.contains(&format!("routewatch: cannot listen on {addr}: ")),
        "the error names the address: {log}"
    );
    // The listener that holds the port was not disturbed.
    assert_eq!(taken.local_addr().unwrap(), addr);
}

#[test]
fn sighup_reloads_the_vrp_file_and_revalidates_every_route() {
    let setup = Setup::new(&[fixture(DEMO_RIB)], false);
    let vrps = setup.dir.path().join("vrps.json");
    // First: a ROA for something else: Google's routes are not found.
    std::fs::write(&vrps, r#"{"roas": [{"asn": "AS64511", "prefix": "192.0.2.0/24", "maxLength": 24, "ta": "test"}]}"#).unwrap();
    setup
        .config
        .clone()
        .rpki(&vrps, "reload-interval-seconds = 3600\n")
        .write(setup.dir.path());
    let mut daemon = setup.start();
    daemon.wait_ready();
    let google = [
        ("location", "google-dns"),
        ("prefix", "8.8.8.0/24"),
        ("state", "not_found"),
    ];
    daemon.poll("Google's routes not found", Duration::from_secs(20), |d| {
        let m = d.scrape();
        match m.value("routewatch_prefix_rpki_routes", &google) {
            v if (v - 33.0).abs() < 0.5 => Ok(()),
            v => Err(format!("not_found = {v}")),
        }
    });
    // Now authorise AS15169 and signal: the set is reloaded and every route re-validated.
    std::fs::write(
        &vrps,
        r#"{"roas": [{"asn": "AS15169", "prefix": "8.8.8.0/24", "maxLength": 24, "ta": "test"}]}"#,
    )
    .unwrap();
    daemon.signal("HUP");
    let valid = [
        ("location", "google-dns"),
        ("prefix", "8.8.8.0/24"),
        ("state", "valid"),
    ];
    let m = daemon.poll(
        "Google's routes valid after SIGHUP",
        Duration::from_secs(20),
        |d| {
            let m = d.scrape();
            match m.value("routewatch_prefix_rpki_routes", &valid) {
                v if (v - 33.0).abs() < 0.5 => Ok(m),
                v => Err(format!("valid = {v}")),
            }
        },
    );
    assert_eq!(m.value("routewatch_prefix_rpki_routes", &google), 0.0);
    assert_eq!(
        m.value("routewatch_rpki_loads_total", &[("result", "ok")]),
        2.0
    );
    assert_eq!(m.value("routewatch_rpki_vrps", &[]), 1.0);
    // A broken file on the next SIGHUP: counted, the previous set stays.
    std::fs::write(&vrps, "not json").unwrap();
    daemon.signal("HUP");
    let m = daemon.poll("the failed load counted", Duration::from_secs(20), |d| {
        let m = d.scrape();
        match m.value("routewatch_rpki_loads_total", &[("result", "error")]) {
            v if (v - 1.0).abs() < 0.5 => Ok(m),
            v => Err(format!("errors = {v}")),
        }
    });
    assert_eq!(m.value("routewatch_prefix_rpki_routes", &valid), 33.0);
    daemon.terminate_cleanly();
}
