//! The ROA and ASPA watch end to end: a daemon with a VRP file (rpki-client's JSON, reloaded
//! every second) and a registry; the test rewrites the file and reads what an operator sees in
//! `/api/v1/events` and `/metrics`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use support::daemon::Daemon;
use support::*;

const DAY: u64 = 86_400;
const WAIT: Duration = Duration::from_secs(30);

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Writes `json` to `path` through a rename (as rpki-client does), so a poll never reads half.
fn write_file(path: &Path, json: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, json).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn roa(asn: u32, prefix: &str, max: u8, expires: u64) -> String {
    format!(
        r#"{{"asn": {asn}, "prefix": "{prefix}", "maxLength": {max}, "ta": "test", "expires": {expires}}}"#
    )
}

fn file(roas: &[String], aspas: &str) -> String {
    format!(
        r#"{{"metadata": {{"buildmachine": "test"}}, "roas": [{}], "aspas": [{aspas}]}}"#,
        roas.join(",\n")
    )
}

/// Every event, newest first.
fn events(daemon: &mut Daemon) -> Vec<Value> {
    let page = daemon.get_ok("/api/v1/events?limit=1000").json();
    page["events"].as_array().unwrap().clone()
}

fn rpki_kind(e: &Value) -> bool {
    let k = e["kind"].as_str().unwrap_or("");
    k.starts_with("roa_") || k.starts_with("aspa_")
}

#[test]
fn roa_and_aspa_changes_of_the_registry_become_events_once() {
    let dir = tempfile::tempdir().unwrap();
    let vrps = dir.path().join("vrps.json");
    let t = now();
    let far = t + 100 * DAY;
    let soon = t + 2 * DAY;
    // contoso (AS64500): 192.0.2.0/24 and 198.51.100.0/24; fabrikam (AS64501): 203.0.113.0/24.
    let initial = file(
        &[
            roa(64500, "192.0.2.0/24", 24, far),
            roa(64500, "198.51.0.0/16", 24, far + DAY),
            roa(64501, "203.0.113.0/24", 24, far),
            roa(64999, "10.0.0.0/8", 8, far),
        ],
        "",
    );
    write_file(&vrps, &initial);
    let config = DaemonConfig::new()
        .rpki(
            &vrps,
            "reload-interval-seconds = 1\nroa-expiry-warning-days = 7\n",
        )
        .location(Location::new(
            "contoso",
            &[64500],
            &["192.0.2.0/24", "198.51.100.0/24"],
        ))
        .location(Location::new("fabrikam", &[64501], &["203.0.113.0/24"]))
        .write(dir.path());
    let mut daemon = Daemon::start(&config);
    daemon.wait_ready();
    let m = daemon.wait_metric("routewatch_rpki_vrps", &[], 4.0);
    // The first load is the baseline: no events; the covering ROAs' expiry times are shown.
    let value = |m: &support::daemon::Exposition, l: &str, p: &str| {
        m.value(
            "routewatch_rpki_roa_expiry_timestamp_seconds",
            &[("location", l), ("prefix", p)],
        )
    };
    assert_eq!(value(&m, "contoso", "192.0.2.0/24"), far as f64);
    assert_eq!(value(&m, "contoso", "198.51.100.0/24"), (far + DAY) as f64);
    assert_eq!(value(&m, "fabrikam", "203.0.113.0/24"), far as f64);
    assert_eq!(m.value("routewatch_rpki_aspas", &[]), 0.0);
    assert!(
        events(&mut daemon).iter().all(|e| !rpki_kind(e)),
        "no events for the baseline: {:?}",
        events(&mut daemon)
    );

    // The change: fabrikam's ROA removed, contoso's /24 maxLength 24 -> 25, an ASPA for
    // AS64500, a ROA for 198.51.100.0/24 expiring in two days, and the ROA outside the
    // registry gone (no event).
    write_file(
        &vrps,
        &file(
            &[
                roa(64500, "192.0.2.0/24", 25, far),
                roa(64500, "198.51.0.0/16", 24, far + DAY),
                roa(64500, "198.51.100.0/24", 24, soon),
            ],
            r#"{"customer_asid": 64500, "expires": 1900000000, "providers": [64511, 64510]}"#,
        ),
    );
    let got = daemon.poll("the watch events", WAIT, |d| {
        let e: Vec<Value> = events(d).into_iter().filter(rpki_kind).collect();
        if e.len() >= 5 {
            Ok(e)
        } else {
            Err(format!("{} events: {e:?}", e.len()))
        }
    });
    let mut summary: Vec<(String, String, String, String)> = got
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap().to_string(),
                e["location"].as_str().unwrap().to_string(),
                e["prefix"].as_str().unwrap().to_string(),
                e["severity"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    summary.sort();
    let s = |a: &str, b: &str, c: &str, d: &str| (a.into(), b.into(), c.into(), d.into());
    assert_eq!(
        summary,
        vec![
            s("aspa_changed", "contoso", "192.0.2.0/24", "warning"),
            s("roa_added", "contoso", "198.51.100.0/24", "information"),
            s("roa_changed", "contoso", "192.0.2.0/24", "warning"),
            s("roa_expiring", "contoso", "198.51.100.0/24", "warning"),
            s("roa_removed", "fabrikam", "203.0.113.0/24", "warning"),
        ],
        "{got:#?}"
    );
    let find = |kind: &str| got.iter().find(|e| e["kind"] == kind).unwrap();
    let changed = find("roa_changed");
    assert_eq!(changed["rpki"]["previous_roa"]["max_length"], 24);
    assert_eq!(changed["rpki"]["roa"]["max_length"], 25);
    assert_eq!(changed["rpki"]["roa"]["asn"], 64500);
    assert_eq!(changed["rpki"]["relation"], "covering");
    assert_eq!(changed["origin"], 64500);
    let removed = find("roa_removed");
    assert_eq!(removed["rpki"]["roa"], Value::Null);
    assert_eq!(removed["rpki"]["previous_roa"]["prefix"], "203.0.113.0/24");
    assert_eq!(removed["announced"], "203.0.113.0/24");
    let aspa = find("aspa_changed");
    assert_eq!(aspa["rpki"]["customer"], 64500);
    assert_eq!(aspa["rpki"]["previous_providers"], Value::Null);
    assert_eq!(aspa["rpki"]["providers"], serde_json::json!([64510, 64511]));
    let expiring = find("roa_expiring");
    assert_eq!(expiring["rpki"]["roa"]["prefix"], "198.51.100.0/24");
    let expires = expiring["rpki"]["roa"]["expires"].as_str().unwrap();
    assert!(expires.ends_with('Z'), "RFC 3339: {expires}");
    assert!(
        expiring["description"]
            .as_str()
            .unwrap()
            .contains("expires in 2.0 day(s)"),
        "{expiring}"
    );
    // The API's kind filter knows the new kinds.
    let only = daemon.get_ok("/api/v1/events?kind=roa_expiring").json();
    assert_eq!(only["events"].as_array().unwrap().len(), 1);

    let m = daemon.scrape();
    assert_eq!(value(&m, "contoso", "198.51.100.0/24"), soon as f64);
    assert_eq!(value(&m, "contoso", "192.0.2.0/24"), far as f64);
    // No covering ROA left for fabrikam: 0.
    assert_eq!(value(&m, "fabrikam", "203.0.113.0/24"), 0.0);
    assert_eq!(m.value("routewatch_rpki_aspas", &[]), 1.0);
    for (kind, n) in [
        ("roa_added", 1.0),
        ("roa_removed", 1.0),
        ("roa_changed", 1.0),
        ("aspa_changed", 1.0),
        ("roa_expiring", 1.0),
    ] {
        assert_eq!(
            m.value("routewatch_rpki_watch_events_total", &[("kind", kind)]),
            n,
            "{kind}"
        );
    }
    let loads = m.value("routewatch_rpki_loads_total", &[("result", "ok")]);

    // The same file again with a new modification time: reloaded, and nothing new.
    let text = std::fs::read_to_string(&vrps).unwrap();
    write_file(&vrps, &text);
    std::fs::File::options()
        .write(true)
        .open(&vrps)
        .unwrap()
        .set_modified(SystemTime::now() + Duration::from_secs(5))
        .unwrap();
    daemon.wait_metric(
        "routewatch_rpki_loads_total",
        &[("result", "ok")],
        loads + 1.0,
    );
    // Give the engine task a few ticks (and the store a flush) to show anything it would add.
    std::thread::sleep(Duration::from_secs(3));
    let after: Vec<Value> = events(&mut daemon).into_iter().filter(rpki_kind).collect();
    assert_eq!(after.len(), 5, "{after:#?}");
    let m = daemon.scrape();
    assert_eq!(
        m.value(
            "routewatch_rpki_watch_events_total",
            &[("kind", "roa_expiring")]
        ),
        1.0
    );
    daemon.terminate_cleanly();
}

#[test]
fn roa_expiry_warning_days_is_checked_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    assert_key_error(
        dir.path(),
        "rpki",
        "roa-expiry-warning-days = 4000",
        27,
        "rpki.roa-expiry-warning-days: 4000 is out of range 0..=3650",
    );
    assert_key_error(
        dir.path(),
        "rpki",
        "roa-expiry-warning-days = -1",
        27,
        "rpki.roa-expiry-warning-days",
    );
}
