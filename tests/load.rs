#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The load script of the issue "Safe to expose", as an ignored test (it runs a minute and
//! more, and loads both cores): `cargo test --release --test load -- --ignored --nocapture`.
//!
//! Against the real daemon on loopback, all at once:
//! - `LOAD_ROUTERS` BMP routers (default 50), each with a full table of `LOAD_ROUTES` /24s
//!   (default 100,000) announced, then `LOAD_CHURN` of them (default 10 %) re-announced with
//!   another path;
//! - a flapping-hijack flood for `LOAD_SECONDS` (default 60) from one more router;
//! - a well-behaved router with a real hijack, whose update-to-metric latency is measured;
//! - 1,000 idle HTTP connections and 64 silent BMP connections.
//!
//! It prints the figures BENCHMARKS.md records: peak RSS, routes/s of the full tables, the
//! real hijack's update-to-metric latency, and the history rows kept for it. It asserts only
//! what must hold whatever the machine: the tables arrive, the real hijack is seen and kept in
//! the history, `/metrics` answers throughout.

use std::io::Write as _;
use std::net::{Ipv4Addr, TcpStream};
use std::time::{Duration, Instant};

mod support;

use support::bmp::{
    initiation, peer_up, route_monitoring_at, route_monitoring_many, ROUTER_AS, TIMESTAMP,
};
use support::daemon::Daemon;
use support::{DaemonConfig, Location};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The i-th /24 of 10.0.0.0/8 and 11.0.0.0/8.
fn slash24(i: usize) -> [u8; 3] {
    [10 + (i >> 16) as u8, (i >> 8) as u8, i as u8]
}

/// A router's full table (and churn), as the bytes of its session.
fn table(router: usize, routes: usize, churn: usize) -> Vec<u8> {
    let peer = Ipv4Addr::new(172, 16, (router >> 8) as u8, router as u8);
    let asn = 65100 + router as u32;
    let mut bytes = initiation(&format!("load-{router}"));
    bytes.extend(peer_up(peer, asn, ROUTER_AS));
    let all: Vec<[u8; 3]> = (0..routes).map(slash24).collect();
    for chunk in all.chunks(1000) {
        bytes.extend(route_monitoring_many(
            peer,
            asn,
            chunk,
            &[asn, 64496],
            TIMESTAMP,
        ));
    }
    for chunk in all[..churn.min(routes)].chunks(1000) {
        bytes.extend(route_monitoring_many(
            peer,
            asn,
            chunk,
            &[asn, 3356, 64496],
            TIMESTAMP + 1,
        ));
    }
    bytes
}

#[test]
#[ignore = "load script: minutes of CPU; run with --release --ignored --nocapture"]
fn load_many_routers_a_flood_and_idle_connections() {
    let routers = env("LOAD_ROUTERS", 50);
    let routes = env("LOAD_ROUTES", 100_000);
    let churn = env("LOAD_CHURN", routes / 10);
    let seconds = env("LOAD_SECONDS", 60) as u64;
    let dir = tempfile::tempdir().unwrap();
    let config = DaemonConfig::new()
        .bmp(&format!(
            "allow = [\"127.0.0.0/8\"]\ninitial-table-timeout-seconds = 1\nmax-sessions = {}\n\
             max-sessions-per-address = {}\n",
            routers + 80,
            routers + 80
        ))
        .http("max-connections = 2000\n")
        .section("events", "max-rows = 100000\n")
        .location(Location::new("tables", &[64496], &["10.0.0.0/8", "11.0.0.0/8"]).max_length(24))
        .location(Location::new("victim", &[64497], &["203.0.113.0/24"]))
        .location(Location::new("bank", &[64498], &["198.51.100.0/24"]))
        .write(dir.path());
    let mut daemon = Daemon::start(&config);
    daemon.wait_ready();
    let (http_port, bmp_port) = (config.http_port.unwrap(), config.bmp_port.unwrap());
    let mut peak_rss = 0.0f64;
    let mut sample = |d: &mut Daemon| {
        let m = d.scrape();
        peak_rss = peak_rss.max(m.value("process_resident_memory_bytes", &[]));
        m
    };

    // Idle and silent connections first: they hold their slots for the whole run.
    let idle_http: Vec<TcpStream> = (0..1000)
        .filter_map(|_| TcpStream::connect(("127.0.0.1", http_port)).ok())
        .collect();
    let silent_bmp: Vec<TcpStream> = (0..64)
        .filter_map(|_| TcpStream::connect(("127.0.0.1", bmp_port)).ok())
        .collect();

    // The full tables, one thread per router.
    let started = Instant::now();
    let senders: Vec<_> = (0..routers)
        .map(|r| {
            let bytes = table(r, routes, churn);
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(("127.0.0.1", bmp_port)).unwrap();
                s.write_all(&bytes).unwrap();
                s
            })
        })
        .collect();
    let sessions: Vec<TcpStream> = senders.into_iter().map(|t| t.join().unwrap()).collect();
    let total = (routers * (routes + churn)) as f64;
    daemon.poll("the full tables", Duration::from_secs(600), |d| {
        let m = sample(d);
        match m.value("routewatch_routes_processed_total", &[("feed", "bmp")]) {
            v if v >= total => Ok(()),
            v => Err(format!("{v} of {total}")),
        }
    });
    let table_time = started.elapsed();

    // The flood beside the real hijack.
    let flood = std::thread::spawn(move || {
        let peer = Ipv4Addr::new(192, 0, 2, 66);
        let mut s = TcpStream::connect(("127.0.0.1", bmp_port)).unwrap();
        s.write_all(&[initiation("flood"), peer_up(peer, 64666, ROUTER_AS)].concat())
            .unwrap();
        let until = Instant::now() + Duration::from_secs(seconds);
        let mut t = TIMESTAMP;
        let mut cycles = 0u64;
        while Instant::now() < until {
            let mut batch = Vec::new();
            for _ in 0..100 {
                t += 1;
                batch.extend(route_monitoring_at(
                    peer,
                    64666,
                    [203, 0, 113],
                    Some(&[64666, 666]),
                    t,
                ));
                batch.extend(route_monitoring_at(peer, 64666, [203, 0, 113], None, t));
                cycles += 1;
            }
            if s.write_all(&batch).is_err() {
                break;
            }
        }
        (s, cycles)
    });
    std::thread::sleep(Duration::from_secs(seconds / 2));
    let good_peer = Ipv4Addr::new(192, 0, 2, 1);
    let mut good = TcpStream::connect(("127.0.0.1", bmp_port)).unwrap();
    good.write_all(
        &[
            initiation("well-behaved"),
            peer_up(good_peer, 64500, ROUTER_AS),
            route_monitoring_at(
                good_peer,
                64500,
                [198, 51, 100],
                Some(&[64500, 64498]),
                TIMESTAMP,
            ),
        ]
        .concat(),
    )
    .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    let sent = Instant::now();
    good.write_all(&route_monitoring_at(
        good_peer,
        64500,
        [198, 51, 100],
        Some(&[64500, 777]),
        TIMESTAMP + 5,
    ))
    .unwrap();
    let bank = [
        ("kind", "origin_mismatch"),
        ("location", "bank"),
        ("prefix", "198.51.100.0/24"),
    ];
    daemon.poll(
        "the real hijack in /metrics",
        Duration::from_secs(60),
        |d| {
            let m = sample(d);
            match m.value("routewatch_anomalies_active", &bank) {
                v if v >= 1.0 => Ok(()),
                v => Err(format!("{v}")),
            }
        },
    );
    let latency = sent.elapsed();
    let (flood_stream, cycles) = flood.join().unwrap();
    let m = sample(&mut daemon);
    let flaps = m.value(
        "routewatch_anomaly_flaps_total",
        &[("kind", "origin_mismatch")],
    );
    let kept = daemon.poll(
        "the real hijack in the history",
        Duration::from_secs(30),
        |d| {
            let history = d
                .get_ok("/api/v1/events?prefix=198.51.100.0/24&limit=1000")
                .json();
            match history["events"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| e["anomaly"].is_string())
                .count()
            {
                0 => Err("not stored".to_string()),
                n => Ok(n),
            }
        },
    );
    println!(
        "load: {routers} routers x {routes} routes (+{churn} churn) = {total} routes in {:.2} s \
         ({:.2} M routes/s); flood {cycles} cycles in {seconds} s ({flaps} flaps); real hijack \
         update-to-metric {:.0} ms; {kept} history rows kept for it; peak RSS {:.0} MiB; \
         {} idle HTTP and {} silent BMP connections held",
        table_time.as_secs_f64(),
        total / table_time.as_secs_f64() / 1e6,
        latency.as_secs_f64() * 1000.0,
        peak_rss / 1024.0 / 1024.0,
        idle_http.len(),
        silent_bmp.len(),
    );
    drop((sessions, flood_stream, good, idle_http, silent_bmp));
    daemon.terminate_cleanly();
}
