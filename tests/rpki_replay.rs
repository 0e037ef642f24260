//! RPKI origin validation end to end: the demo replay with a VRP file (rpki-client's JSON
//! format) authorising Google's 8.8.8.0/24 for AS15169 up to /24.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use routewatch::engine::{AnomalyKind, Transition};
use routewatch::replay::{replay, ReplayOptions};
use routewatch::rpki::RovState;
use support::*;

#[test]
fn demo_hijacks_are_rpki_invalid_and_the_prefix_state_counts_follow() {
    let dir = tempfile::tempdir().unwrap();
    let vrps = dir.path().join("vrps.json");
    std::fs::write(
        &vrps,
        r#"{"metadata": {"buildtime": "2014-05-23T06:00:00Z"},
            "roas": [{"asn": 15169, "prefix": "8.8.8.0/24", "maxLength": 24, "ta": "arin", "expires": 1700000000}]}"#,
    )
    .unwrap();
    // The demo's locations, with [rpki].
    let cfg = DaemonConfig::replay()
        .state_dir(dir.path())
        .rpki(&vrps, "")
        .locations_toml(&demo_locations())
        .write(dir.path())
        .path;
    let metrics = dir.path().join("metrics.prom");
    let files = [fixture(DEMO_RIB), fixture(DEMO_UPDATES)];
    let report = replay(&ReplayOptions::new(&cfg, &files).metrics_out(Some(&metrics))).unwrap();

    let rpki: Vec<_> = report
        .events
        .iter()
        .filter(|e| e.kind == AnomalyKind::RpkiInvalid)
        .map(|e| (e.transition, e.announced.to_string(), e.asn))
        .collect();
    let s = |x: &str| x.to_string();
    assert_eq!(
        rpki,
        vec![
            (Transition::Opened, s("8.8.8.0/24"), Some(64666)),
            (Transition::Opened, s("8.8.8.0/25"), Some(64666)),
            (Transition::Resolved, s("8.8.8.0/25"), Some(64666)),
            (Transition::Resolved, s("8.8.8.0/24"), Some(64666)),
        ]
    );
    // The exact-prefix hijack is RPKI-invalid (origin), and says so in its event.
    let mismatch = report
        .events
        .iter()
        .find(|e| e.kind == AnomalyKind::OriginMismatch && e.prefix.to_string() == "8.8.8.0/24")
        .unwrap();
    assert_eq!(mismatch.rpki, Some(RovState::InvalidOrigin));
    let event = report
        .history
        .iter()
        .find(|e| {
            e.anomaly.as_deref() == Some("origin_mismatch") && e.prefix.to_string() == "8.8.8.0/24"
        })
        .unwrap();
    assert!(
        event.description.contains("RPKI invalid_origin"),
        "{}",
        event.description
    );

    // Final state: Google's 33 routes valid, the unrelated prefixes not found.
    let text = std::fs::read_to_string(&metrics).unwrap();
    let line = |labels: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("routewatch_prefix_rpki_routes{{{labels}}}")))
            .and_then(|l| l.rsplit(' ').next())
            .map(String::from)
    };
    assert_eq!(
        line(r#"location="google-dns",prefix="8.8.8.0/24",state="valid""#).as_deref(),
        Some("33")
    );
    assert_eq!(
        line(r#"location="google-dns",prefix="8.8.8.0/24",state="invalid_origin""#).as_deref(),
        Some("0")
    );
    assert_eq!(
        line(r#"location="cernet-beijing",prefix="1.2.4.0/24",state="not_found""#).as_deref(),
        Some("34")
    );
    assert!(text.contains("routewatch_rpki_vrps 1"));
    assert!(text.contains(r#"routewatch_rpki_loads_total{result="ok"} 1"#));
}
