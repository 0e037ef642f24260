#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Configuration reload of the real daemon: SIGHUP with a valid configuration (a location
//! removed, a prefix replaced by a covering one), SIGHUP with an invalid one, and
//! `POST /-/reload` with an invalid and then a valid configuration that also changes a
//! restart-only key. After each, the metrics, the JSON API and the event history are checked, and
//! that no route state of the prefixes that stay was lost. A configuration without locations
//! (truncated to empty) is refused at start and on reload, the running registry and its open
//! anomaly kept; a cut file that still parses goes through with a WARN; `allow-empty-registry`
//! lets an emptied one through.

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::config::ConfigFile;
use support::daemon::{free_port, http_request, Daemon, Exposition, EXIT_TIMEOUT, POLL};
use support::{fixture, DaemonConfig, Location, DEMO_RIB};

fn google_location() -> Location {
    Location::new("google-dns", &[15169], &["8.8.8.0/24", "8.8.4.0/24"]).provider("Google")
}

fn cernet_location() -> Location {
    Location::new("cernet-beijing", &[24151], &["1.2.4.0/24"])
}

/// `config` with the locations after the reload: cernet-beijing is gone, and 8.8.8.0/24 is no longer registered itself but
/// covered by a new location's 8.8.8.0/23 (more-specifics up to /24 allowed).
fn reloaded(config: DaemonConfig) -> DaemonConfig {
    config
        .location(Location::new("google-dns", &[15169], &["8.8.4.0/24"]).provider("Google"))
        .location(Location::new("google-8-8-8", &[15169], &["8.8.8.0/23"]).max_length(24))
}

fn prefixes(d: &mut Daemon) -> Vec<Value> {
    d.get_ok("/api/v1/prefixes").json()["prefixes"]
        .as_array()
        .unwrap()
        .clone()
}

fn prefix(list: &[Value], p: &str) -> Value {
    list.iter()
        .find(|v| v["prefix"] == p)
        .unwrap_or_else(|| panic!("{p} not in {list:?}"))
        .clone()
}

fn tracked(d: &mut Daemon) -> u64 {
    d.get_ok("/api/v1/status").json()["tracked_routes"]
        .as_u64()
        .unwrap()
}

/// Routes held for a registered prefix: its own and its more-specifics'.
fn routes_of(v: &Value) -> u64 {
    v["visibility"].as_u64().unwrap()
        + v["more_specifics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["peers"].as_u64().unwrap())
            .sum::<u64>()
}

/// Waits for `routewatch_config_reloads_total{result}` to reach `n`, then scrapes again (a
/// scrape reads the families one after the other, so the one that saw the counter move may
/// have read the other reload metrics just before the reload set them).
fn wait_reloads(d: &mut Daemon, result: &str, n: f64) -> Exposition {
    d.wait_metric("routewatch_config_reloads_total", &[("result", result)], n);
    d.scrape()
}

fn post_reload(d: &mut Daemon) -> (u16, Value) {
    d.assert_running();
    let r = http_request(d.port, "POST", "/-/reload").unwrap();
    let status = r.status;
    (status, r.json())
}

#[test]
fn reload_keeps_route_state_and_reports_failures() {
    let dir = tempfile::tempdir().unwrap();
    let base = DaemonConfig::new().mrt_files(&[fixture(DEMO_RIB)]);
    let file = base
        .clone()
        .location(google_location())
        .location(cernet_location())
        .write(dir.path());
    let config = &file.path;
    let mut d = Daemon::start(&file);
    d.wait_ready();

    // Before: the RIB gives 8.8.8.0/24 and 8.8.4.0/24 their peers; 1.2.4.0/24 has an open
    // origin mismatch.
    let before = prefixes(&mut d);
    let google_8 = prefix(&before, "8.8.8.0/24");
    let google_4 = prefix(&before, "8.8.4.0/24");
    let cernet = prefix(&before, "1.2.4.0/24");
    assert!(google_8["visibility"].as_u64().unwrap() > 10);
    assert!(routes_of(&cernet) > 0);
    let tracked_before = tracked(&mut d);
    let m = d.scrape();
    let cernet_labels = [
        ("kind", "origin_mismatch"),
        ("location", "cernet-beijing"),
        ("prefix", "1.2.4.0/24"),
    ];
    assert_eq!(m.value("routewatch_anomalies_active", &cernet_labels), 1.0);
    assert_eq!(
        m.value("routewatch_config_last_reload_successful", &[]),
        1.0
    );
    assert_eq!(
        m.value("routewatch_registered_prefixes", &[("afi", "ipv4")]),
        3.0
    );

    // 1. SIGHUP with a valid configuration.
    reloaded(base.clone()).write(dir.path());
    d.signal("HUP");
    let m = wait_reloads(&mut d, "success", 1.0);
    assert_eq!(
        m.value("routewatch_config_last_reload_successful", &[]),
        1.0
    );
    assert_eq!(m.value("routewatch_config_restart_required", &[]), 0.0);
    assert_eq!(
        m.value("routewatch_registered_prefixes", &[("afi", "ipv4")]),
        2.0
    );
    // Removed prefixes' series are gone; the new prefix has its own.
    assert!(m.with_label("location", "cernet-beijing").is_empty());
    assert!(m.with_label("prefix", "8.8.8.0/24").is_empty());
    let vis = |m: &Exposition, loc: &str, p: &str| {
        m.value(
            "routewatch_prefix_visibility_peers",
            &[("location", loc), ("prefix", p)],
        )
    };
    assert_eq!(
        vis(&m, "google-dns", "8.8.4.0/24"),
        google_4["visibility"].as_f64().unwrap()
    );
    assert_eq!(vis(&m, "google-8-8-8", "8.8.8.0/23"), 0.0);

    // Route state: 8.8.4.0/24 as it was, 8.8.8.0/24's routes now the /23's more-specific,
    // cernet's routes dropped and nothing else.
    let after = prefixes(&mut d);
    assert_eq!(after.len(), 2);
    let kept = prefix(&after, "8.8.4.0/24");
    for key in [
        "visibility",
        "origins",
        "announcements",
        "withdrawals",
        "sample_paths",
    ] {
        assert_eq!(kept[key], google_4[key], "{key}");
    }
    let covering = prefix(&after, "8.8.8.0/23");
    assert_eq!(covering["location"], "google-8-8-8");
    assert_eq!(
        covering["more_specifics"],
        serde_json::json!([{
            "prefix": "8.8.8.0/24",
            "peers": google_8["visibility"],
            "origins": [15169],
        }])
    );
    assert_eq!(covering["anomalies"], serde_json::json!([]));
    assert_eq!(
        tracked(&mut d),
        tracked_before - routes_of(&cernet),
        "only the unregistered prefix's routes are dropped"
    );
    let anomalies = d.get_ok("/api/v1/anomalies").json();
    assert_eq!(anomalies["anomalies"], serde_json::json!([]));

    // The event history says why cernet's anomaly ended.
    // (1.2.4.0/24 also had a MOAS open: both end.)
    let ev = poll_events(
        &mut d,
        "/api/v1/events?kind=anomaly_resolved&prefix=1.2.4.0/24",
    );
    let mut kinds: Vec<&str> = ev.iter().map(|e| e["anomaly"].as_str().unwrap()).collect();
    kinds.sort();
    assert_eq!(kinds, ["moas", "origin_mismatch"], "{ev:?}");
    for e in &ev {
        assert_eq!(e["location"], "cernet-beijing");
        let text = e["description"].as_str().unwrap();
        assert!(text.contains("unregistered"), "{text}");
    }

    // 2. SIGHUP with an invalid configuration: nothing changes, the gauge says so, the log
    // names file, line and key.
    let broken = reloaded(base.clone()).location(Location::new("bad", &[15169], &["10.0.0.0/33"]));
    broken.write(dir.path());
    let broken = broken.text(dir.path());
    let bad_line = broken
        .lines()
        .position(|l| l.contains("10.0.0.0/33"))
        .unwrap()
        + 1;
    d.signal("HUP");
    let m = wait_reloads(&mut d, "failure", 1.0);
    assert_eq!(
        m.value("routewatch_config_last_reload_successful", &[]),
        0.0
    );
    assert_eq!(
        m.value("routewatch_registered_prefixes", &[("afi", "ipv4")]),
        2.0
    );
    let where_ = format!("{}:{bad_line}:", config.display());
    wait_log(&mut d, &where_);
    assert!(d.log().contains("prefixes"), "{}", d.log());
    assert_eq!(prefixes(&mut d), after, "a failed reload changes nothing");

    // 3. POST /-/reload: the same error comes back in the answer.
    let (status, body) = post_reload(&mut d);
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["ok"], false);
    let error = body["error"].as_str().unwrap();
    assert!(error.contains(&where_), "{error}");
    assert!(error.contains("prefixes"), "{error}");
    wait_reloads(&mut d, "failure", 2.0);

    // 4. Fixed, with a restart-only key changed: applied, the key reported, the listener
    // stays where it is.
    let other_port = free_port();
    reloaded(base.listen(([127, 0, 0, 1], other_port).into()))
        .location(cernet_location())
        .write(dir.path());
    let (status, body) = post_reload(&mut d);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ok"], true);
    assert_eq!(body["restart_required"], serde_json::json!(["http.listen"]));
    assert_eq!(body["prefixes"], 3);
    assert_eq!(body["summary"]["prefixes_added"], 1);
    let m = d.scrape();
    assert_eq!(
        m.value("routewatch_config_last_reload_successful", &[]),
        1.0
    );
    assert_eq!(m.value("routewatch_config_restart_required", &[]), 1.0);
    assert_eq!(
        m.value("routewatch_config_reloads_total", &[("result", "success")]),
        2.0
    );
    assert!(d.log().contains("http.listen"), "{}", d.log());
    // cernet-beijing is registered again: its routes arrive with the next data, not before.
    let again = prefixes(&mut d);
    assert_eq!(prefix(&again, "1.2.4.0/24")["visibility"], 0);
    assert_eq!(
        prefix(&again, "8.8.4.0/24")["visibility"],
        google_4["visibility"]
    );

    d.terminate_cleanly();
}

fn poll_events(d: &mut Daemon, path: &str) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let body = d.get_ok(path).json();
        let events = body["events"].as_array().cloned().unwrap_or_default();
        if !events.is_empty() || Instant::now() > deadline {
            return events;
        }
        std::thread::sleep(POLL);
    }
}

fn wait_log(d: &mut Daemon, needle: &str) {
    d.poll("the log", Duration::from_secs(10), |d| {
        d.assert_running();
        if d.log().contains(needle) {
            Ok(())
        } else {
            Err(format!("no {needle:?}"))
        }
    });
}

/// The error of a configuration truncated to nothing, after `FILE:`.
const EMPTY_ERROR: &str = "1:1: location: no locations: the file is empty; add [[location]] \
                           tables, or set allow-empty-registry = true to run with none";

/// The open origin mismatch of cernet-beijing's 1.2.4.0/24 (the RIB announces it from another
/// AS), in an `/api/v1/anomalies` answer.
fn cernet_mismatch(anomalies: &Value) -> Option<&Value> {
    anomalies["anomalies"].as_array().unwrap().iter().find(|a| {
        a["kind"] == "origin_mismatch"
            && a["prefix"] == "1.2.4.0/24"
            && a["location"] == "cernet-beijing"
            && a["open"] == true
    })
}

#[test]
fn a_configuration_truncated_to_empty_is_refused_on_reload_and_the_registry_kept() {
    let dir = tempfile::tempdir().unwrap();
    let base = DaemonConfig::new().mrt_files(&[fixture(DEMO_RIB)]);
    let file = base
        .clone()
        .location(google_location())
        .location(cernet_location())
        .write(dir.path());
    let mut d = Daemon::start(&file);
    d.wait_ready();

    let anomalies = d.get_ok("/api/v1/anomalies").json();
    assert!(cernet_mismatch(&anomalies).is_some(), "{anomalies}");
    let prefixes_before = prefixes(&mut d);
    let before = d.scrape();
    let cernet_series = before.with_label("prefix", "1.2.4.0/24").len();
    assert!(cernet_series > 3, "per-prefix series of 1.2.4.0/24");
    let vis = |m: &Exposition, loc: &str, p: &str| {
        m.value(
            "routewatch_prefix_visibility_peers",
            &[("location", loc), ("prefix", p)],
        )
    };
    let cernet_labels = [
        ("kind", "origin_mismatch"),
        ("location", "cernet-beijing"),
        ("prefix", "1.2.4.0/24"),
    ];

    // 1. `: > routewatch.toml; kill -HUP`: refused, counted, nothing unregistered.
    std::fs::File::create(&file.path).unwrap();
    assert_eq!(std::fs::metadata(&file.path).unwrap().len(), 0);
    d.signal("HUP");
    let m = wait_reloads(&mut d, "failure", 1.0);
    assert_eq!(
        m.value("routewatch_config_last_reload_successful", &[]),
        0.0
    );
    assert_eq!(
        m.value("routewatch_config_reloads_total", &[("result", "success")]),
        0.0
    );
    assert_eq!(
        m.value("routewatch_registered_prefixes", &[("afi", "ipv4")]),
        3.0
    );
    assert_eq!(
        m.with_label("prefix", "1.2.4.0/24").len(),
        cernet_series,
        "1.2.4.0/24's series are all still there"
    );
    assert_eq!(
        vis(&m, "cernet-beijing", "1.2.4.0/24"),
        vis(&before, "cernet-beijing", "1.2.4.0/24")
    );
    assert_eq!(
        vis(&m, "google-dns", "8.8.8.0/24"),
        vis(&before, "google-dns", "8.8.8.0/24")
    );
    assert_eq!(m.value("routewatch_anomalies_active", &cernet_labels), 1.0);
    let after = d.get_ok("/api/v1/anomalies").json();
    assert_eq!(
        cernet_mismatch(&after),
        cernet_mismatch(&anomalies),
        "the hijack is still open, as it was"
    );
    assert_eq!(
        prefixes(&mut d),
        prefixes_before,
        "a refused reload changes nothing"
    );
    let error = format!("{}:{EMPTY_ERROR}", file.path.display());
    wait_log(&mut d, &error);
    assert!(
        d.log().lines().any(|l| l.contains("ERROR")
            && l.contains("configuration reload failed")
            && l.contains(&error)),
        "{}",
        d.log()
    );

    // 2. POST /-/reload: 400 with the same error.
    let (status, body) = post_reload(&mut d);
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["ok"], false);
    assert_eq!(body["error"], error);
    assert_eq!(body["prefixes"], 3);
    assert_eq!(body["locations"], 2);
    let m = wait_reloads(&mut d, "failure", 2.0);
    assert_eq!(
        m.value("routewatch_config_last_reload_successful", &[]),
        0.0
    );
    assert_eq!(m.value("routewatch_anomalies_active", &cernet_labels), 1.0);

    // 3. Cut after the first location: it still parses, so it is valid and goes through, with a
    // WARN that says what it removes.
    let whole = base
        .clone()
        .location(google_location())
        .location(cernet_location())
        .text(dir.path());
    let cut = &whole[..whole.find("\n[[location]]\nname = \"cernet").unwrap()];
    std::fs::write(&file.path, cut).unwrap();
    let (status, body) = post_reload(&mut d);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["prefixes"], 2);
    assert_eq!(body["summary"]["prefixes_removed"], 1);
    let warn = "the reload removes 1 of the 3 registered prefixes (their routes are dropped and \
                their anomalies resolved); 2 prefixes are registered now";
    assert!(
        d.log()
            .lines()
            .any(|l| l.contains("WARN") && l.contains(warn)),
        "{}",
        d.log()
    );
    let m = d.scrape();
    assert_eq!(
        m.value("routewatch_config_last_reload_successful", &[]),
        1.0
    );
    assert!(m.with_label("prefix", "1.2.4.0/24").is_empty());
    assert_eq!(cernet_mismatch(&d.get_ok("/api/v1/anomalies").json()), None);

    // 4. Emptied, with allow-empty-registry = true: asked for, so it goes through.
    let emptied = format!("allow-empty-registry = true\n{}", base.text(dir.path()));
    std::fs::write(&file.path, emptied).unwrap();
    let (status, body) = post_reload(&mut d);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["prefixes"], 0);
    assert_eq!(body["locations"], 0);
    assert!(
        d.log()
            .contains("the reload removes 2 of the 2 registered prefixes"),
        "{}",
        d.log()
    );
    let m = wait_reloads(&mut d, "success", 2.0);
    assert_eq!(
        m.value("routewatch_registered_prefixes", &[("afi", "ipv4")]),
        0.0
    );

    d.terminate_cleanly();
}

#[test]
fn a_configuration_without_locations_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("routewatch.toml");
    std::fs::write(&path, "").unwrap();
    let file = ConfigFile {
        path: path.clone(),
        dir: dir.path().to_path_buf(),
        http_port: Some(free_port()),
        bmp_port: None,
    };
    let mut d = Daemon::start(&file);
    let status = d
        .wait_exit(EXIT_TIMEOUT)
        .unwrap_or_else(|| panic!("still running on an empty configuration\n{}", d.log()));
    assert_eq!(status.code(), Some(2), "{}", d.log());
    let want = format!("routewatch: {}:{EMPTY_ERROR}", path.display());
    assert!(
        d.log().lines().any(|l| l == want),
        "want {want:?} in\n{}",
        d.log()
    );
}
