//! `route_leak` end to end: the daemon reads the demo RIB (RouteViews, 2014) and a VRP file in
//! rpki-client's JSON form whose ASPAs make one real path of 8.8.8.0/24 a leak; the operator
//! sees the instance in the API (with why), in /metrics, and in the event history; when the file
//! changes so that the path is no longer provably a leak, it resolves as revalidated.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use support::daemon::Daemon;
use support::*;

/// In the RIB, peer 167.142.3.6 (AS5056) has 8.8.8.0/24 as `5056 2828 15169`. With 15169's
/// ASPA not naming 2828, and 5056's not naming 2828 either, 2828 is neither 15169's provider
/// nor 5056's: it passed a route from a peer or customer to a peer or provider. Every other
/// path of the prefix stays valid or unknown: 15169's ASPA names the ASes that carry it
/// directly, except 2828.
fn aspas(with_2828_as_5056s_provider: bool) -> String {
    let providers_5056 = if with_2828_as_5056s_provider {
        "[174, 2828]"
    } else {
        "[174]"
    };
    format!(
        r#"{{"metadata": {{"buildtime": "2014-05-23T06:00:00Z"}},
            "roas": [{{"asn": 15169, "prefix": "8.8.8.0/24", "maxLength": 24, "ta": "arin"}}],
            "aspas": [
              {{"customer_asid": 15169, "expires": 1900000000,
                "providers": [209, 286, 293, 577, 701, 852, 1221, 1239, 1299, 1668, 2152, 2497, 2905, 2914, 3257, 3303, 3356, 3549, 3561, 3741, 5413, 6539, 6762, 6939, 7018, 7660, 8492, 11686, 13030, 22652, 40191]}},
              {{"customer_asid": 5056, "expires": 1900000000, "providers": {providers_5056}}}
            ]}}"#
    )
}

/// The newest route_leak event of 8.8.8.0/24 of `kind`, if any.
fn event(d: &mut Daemon, kind: &str) -> Option<serde_json::Value> {
    let page = d
        .get_ok("/api/v1/events?kind=route_leak&prefix=8.8.8.0/24")
        .json();
    page["events"]
        .as_array()?
        .iter()
        .find(|e| e["kind"] == kind)
        .cloned()
}

#[test]
fn an_aspa_invalid_path_is_a_route_leak_the_operator_sees_and_it_resolves_when_the_aspa_changes() {
    let dir = tempfile::tempdir().unwrap();
    let vrps = dir.path().join("vrps.json");
    std::fs::write(&vrps, aspas(false)).unwrap();
    let config = DaemonConfig::new()
        .mrt_files(&[fixture(DEMO_RIB)])
        .section("anomalies", "hold-down-seconds = 1\n")
        .rpki(&vrps, "reload-interval-seconds = 1\n")
        .locations_toml(&demo_locations())
        .write(dir.path());
    let mut daemon = Daemon::start(&config);
    daemon.wait_ready();

    let leak = [
        ("location", "google-dns"),
        ("prefix", "8.8.8.0/24"),
        ("kind", "route_leak"),
    ];
    daemon.poll("the leak opens", Duration::from_secs(30), |d| {
        match d.scrape().value("routewatch_anomalies_active", &leak) {
            v if (v - 1.0).abs() < 0.5 => Ok(()),
            v => Err(format!("route_leak active = {v}")),
        }
    });
    let body = daemon
        .get_ok("/api/v1/anomalies?kind=route_leak&prefix=8.8.8.0/24")
        .json();
    let items = body["anomalies"].as_array().expect("anomalies");
    assert_eq!(items.len(), 1, "{body}");
    let a = &items[0];
    assert_eq!(a["announced"], "8.8.8.0/24");
    assert_eq!(a["asn"], 2828, "the leaker: {a}");
    assert_eq!(a["example_path"], serde_json::json!([5056, 2828, 15169]));
    assert_eq!(a["leak"]["reason"], "aspa_downstream", "{a}");
    assert_eq!(a["leak"]["procedure"], "downstream");
    assert_eq!(
        a["leak"]["role"],
        serde_json::Value::Null,
        "a collector peer"
    );
    // The event store writes in batches: wait for the row.
    let opened = daemon.poll("the opening event", Duration::from_secs(20), |d| {
        event(d, "anomaly_opened").ok_or_else(|| "no opening event yet".to_string())
    });
    let text = opened["description"].as_str().unwrap();
    assert!(
        text.contains("leak: aspa_downstream (ASPA downstream verification, peer role unknown); AS2828 leaked it"),
        "{text}"
    );

    // 5056 now names 2828 as its provider: the path can be valley-free, the instance resolves
    // (as revalidated) and nothing else opens.
    std::fs::write(&vrps, aspas(true)).unwrap();
    daemon.poll("the leak resolves", Duration::from_secs(30), |d| {
        match d.scrape().value("routewatch_anomalies_active", &leak) {
            v if v.abs() < 0.5 => Ok(()),
            v => Err(format!("route_leak active = {v}")),
        }
    });
    let resolved = daemon.poll("the resolution event", Duration::from_secs(20), |d| {
        event(d, "anomaly_resolved").ok_or_else(|| "no resolution event yet".to_string())
    });
    assert!(
        resolved["description"]
            .as_str()
            .unwrap()
            .contains("RPKI data or the peer's role changed"),
        "{resolved}"
    );
    let m = daemon.scrape();
    assert_eq!(
        m.value("routewatch_anomalies_opened_total", &leak),
        1.0,
        "one incident"
    );
    daemon.terminate_cleanly();
}
