#![allow(clippy::unwrap_used, clippy::expect_used)]
//! A flapping-hijack flood over BMP beside a well-behaved router with a real hijack, against the
//! real daemon on loopback (issue "Safe to expose", points 1-3): the flood is one incident with
//! its flap count (not thousands of opened/resolved pairs), the real hijack's history survives
//! a count retention sized so the flood alone would fill it, the log stays within its budget,
//! and memory stays bounded.

use std::io::Write as _;
use std::net::{Ipv4Addr, TcpStream};
use std::time::Duration;

mod support;

use support::bmp::{
    initiation, peer_up, route_monitoring, route_monitoring_at, ROUTER_AS, TIMESTAMP,
};
use support::daemon::Daemon;
use support::{DaemonConfig, Location};

/// Announce/withdraw cycles of the flood.
const CYCLES: usize = 3_000;
const TRANSIT: u32 = 64500;
const HIJACKER: u32 = 666;

fn wait_processed(daemon: &mut Daemon, want: f64) {
    daemon.poll("every BMP route processed", Duration::from_secs(60), |d| {
        let m = d.scrape();
        match m.value("routewatch_routes_processed_total", &[("feed", "bmp")]) {
            v if v >= want => Ok(m),
            v => Err(format!("{v} of {want}")),
        }
    });
}

fn anomaly_events(daemon: &mut Daemon, prefix: &str) -> Vec<serde_json::Value> {
    let page = daemon
        .get_ok(&format!("/api/v1/events?prefix={prefix}&limit=1000"))
        .json();
    page["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["anomaly"].is_string())
        .cloned()
        .collect()
}

#[test]
fn a_flapping_hijack_flood_is_one_incident_and_cannot_erase_a_real_hijack() {
    let dir = tempfile::tempdir().unwrap();
    let config = DaemonConfig::new()
        .bmp("allow = [\"127.0.0.0/8\"]\ninitial-table-timeout-seconds = 1\n")
        // Room for less than the flood's route events: the count retention has to choose.
        .section("events", "flush-interval-ms = 100\nmax-rows = 1000\n")
        .location(Location::new("victim", &[64496], &["203.0.113.0/24"]))
        .location(Location::new("bank", &[64497], &["198.51.100.0/24"]))
        .write(dir.path());
    let mut daemon = Daemon::start(&config);
    daemon.wait_ready();
    let port = config.bmp_port.unwrap();

    // The well-behaved router: the bank's prefix, then a real hijack of it.
    let good_peer = Ipv4Addr::new(192, 0, 2, 1);
    let mut good = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut bytes = initiation("edge-good");
    bytes.extend(peer_up(good_peer, TRANSIT, ROUTER_AS));
    bytes.extend(route_monitoring(
        good_peer,
        TRANSIT,
        [198, 51, 100],
        Some(&[TRANSIT, 64497]),
    ));
    bytes.extend(route_monitoring(
        good_peer,
        TRANSIT,
        [198, 51, 100],
        Some(&[TRANSIT, 777]),
    ));
    good.write_all(&bytes).unwrap();
    wait_processed(&mut daemon, 2.0);

    // The flood: the victim's /24 announced from a hijacking origin and withdrawn, in a loop,
    // one second apart, with a path change on every announcement (every cycle is news).
    let flood_peer = Ipv4Addr::new(192, 0, 2, 2);
    let mut flood = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut bytes = initiation("edge-flood");
    bytes.extend(peer_up(flood_peer, TRANSIT, ROUTER_AS));
    for i in 0..CYCLES {
        let prepend = 1 + i % 3;
        let mut path = vec![TRANSIT; prepend];
        path.push(HIJACKER);
        let t = TIMESTAMP + 10 + 2 * i as u32;
        bytes.extend(route_monitoring_at(
            flood_peer,
            TRANSIT,
            [203, 0, 113],
            Some(&path),
            t,
        ));
        bytes.extend(route_monitoring_at(
            flood_peer,
            TRANSIT,
            [203, 0, 113],
            None,
            t + 1,
        ));
    }
    flood.write_all(&bytes).unwrap();
    let m = daemon.poll("the flood processed", Duration::from_secs(60), |d| {
        let m = d.scrape();
        match m.value("routewatch_routes_processed_total", &[("feed", "bmp")]) {
            v if v >= (2 + 2 * CYCLES) as f64 => Ok(m),
            v => Err(format!("{v} of {}", 2 + 2 * CYCLES)),
        }
    });

    // One incident, its flaps counted, still active (in its hold-down), not thousands of pairs.
    let victim = [
        ("kind", "origin_mismatch"),
        ("location", "victim"),
        ("prefix", "203.0.113.0/24"),
    ];
    assert_eq!(m.value("routewatch_anomalies_opened_total", &victim), 1.0);
    assert_eq!(m.value("routewatch_anomalies_active", &victim), 1.0);
    assert_eq!(
        m.value(
            "routewatch_anomaly_flaps_total",
            &[("kind", "origin_mismatch")]
        ),
        (CYCLES - 1) as f64
    );
    assert!(m.value("routewatch_anomalies_resolving", &[]) >= 1.0);

    // The history: the victim's incident recorded once, the bank's hijack kept although the
    // flood's route events alone would fill max-rows.
    let victim_events = daemon.poll("the flood's history", Duration::from_secs(10), |d| {
        let ev = anomaly_events(d, "203.0.113.0/24");
        if ev.is_empty() {
            Err("none yet".to_string())
        } else {
            Ok(ev)
        }
    });
    let opened: Vec<&serde_json::Value> = victim_events
        .iter()
        .filter(|e| e["kind"] == "anomaly_opened" && e["anomaly"] == "origin_mismatch")
        .collect();
    assert_eq!(opened.len(), 1, "{victim_events:?}");
    let bank = anomaly_events(&mut daemon, "198.51.100.0/24");
    assert!(
        bank.iter()
            .any(|e| e["kind"] == "anomaly_opened" && e["origin"] == 777),
        "the real hijack's opening was evicted: {bank:?}"
    );
    let stored = daemon.scrape().value("routewatch_events_stored", &[]);
    assert!(stored <= 1000.0, "{stored} rows");

    // Bounded memory and log.
    let rss = daemon.scrape().value("process_resident_memory_bytes", &[]);
    assert!(rss < 256.0 * 1024.0 * 1024.0, "RSS {rss}");
    let lines = daemon.log().lines().count();
    assert!(lines < 1_000, "{lines} log lines for {CYCLES} cycles");
    drop((good, flood));
    daemon.terminate_cleanly();
}
