#![allow(clippy::unwrap_used, clippy::expect_used)]
//! DNS enrichment in the `run` daemon, through the real binary: the demo data (the bundled
//! RouteViews RIB and the synthetic hijack, `config/demo.toml` locations) with `[dns]` pointing
//! at a DNS server started by the test on 127.0.0.1 (`tests/support/dns.rs`; nothing leaves the
//! machine).
//!
//! - Names answered: AS names in `/api/v1/events` (origin and peer), `/api/v1/anomalies` and
//!   `/api/v1/prefixes`, the reverse-DNS name of an unnamed BMP router in `/api/v1/status`, the
//!   DNS metrics; the private hijacker AS64666 is never asked; the event order is unchanged.
//! - Names never answered (silence: timeouts) or answered NXDOMAIN: every event still arrives,
//!   without names, within about the DNS timeout, and the API never waits.

mod support;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use routewatch::dns::is_reserved_asn;
use serde_json::Value;
use support::config::ConfigFile;
use support::daemon::Daemon;
use support::dns::*;
use support::{demo_locations, fixture, DaemonConfig, DEMO_RIB, DEMO_RIB_TIME, DEMO_UPDATES};

/// Events of the demo (RIB and hijack scenario) as the daemon stores them.
const DEMO_EVENTS: usize = 30;

/// The events of the hijack scenario, in BGP-time order (as `replay` reports them).
const SCENARIO: [&str; 20] = [
    "8.8.8.0/24 anomaly_opened origin_mismatch AS64666",
    "8.8.8.0/24 anomaly_opened moas",
    "8.8.8.0/24 origin_change AS64666",
    "8.8.8.0/24 path_change AS64666",
    "8.8.8.0/25 anomaly_opened subprefix_hijack AS64666",
    "1.0.0.0/24 origin_change AS64666",
    "1.0.0.0/24 path_change AS64666",
    "1.0.0.0/24 anomaly_opened origin_mismatch AS64666",
    "1.0.0.0/24 anomaly_opened moas",
    "1.0.0.0/24 origin_change AS64666",
    "8.8.8.0/25 anomaly_resolved subprefix_hijack AS64666",
    "8.8.8.0/24 anomaly_resolved origin_mismatch AS64666",
    "8.8.8.0/24 anomaly_resolved moas",
    "8.8.8.0/24 origin_change AS15169",
    "8.8.8.0/24 path_change AS15169",
    "1.0.0.0/24 origin_change AS15169",
    "1.0.0.0/24 path_change AS15169",
    "1.0.0.0/24 anomaly_resolved origin_mismatch AS64666",
    "1.0.0.0/24 anomaly_resolved moas",
    "1.0.0.0/24 origin_change AS15169",
];

/// The names the test zone gives: the four ASes of the hijack scenario by their real holder
/// names, any other AS a made-up one.
fn as_name(asn: u32) -> String {
    match asn {
        15169 => "GOOGLE, US".into(),
        7018 => "ATT-INTERNET4, US".into(),
        2914 => "NTT-COMMUNICATIONS-2914, US".into(),
        6939 => "HURRICANE, US".into(),
        n => format!("TEST-AS{n}, ZZ"),
    }
}

/// The name routewatch should show for `asn`: none for private/reserved ASes.
fn expected_name(asn: u32) -> Option<String> {
    (!is_reserved_asn(asn)).then(|| as_name(asn))
}

/// The reverse-DNS name of a router on 127.0.0.1. Tests bind loopback only, and hickory-resolver
/// answers reverse lookups in 127.0.0.0/8 itself (RFC 6761 special-use names), without asking
/// the server; the PTR path through a server is covered in `tests/dns_enrichment.rs`.
const ROUTER_NAME: &str = "localhost";

/// A zone that knows every AS (and would give 127.0.0.1 another name than hickory does).
fn answering_zone(name: &str, qtype: u16) -> Answer {
    match (cymru_asn(name), qtype) {
        (Some(asn), TYPE_TXT) => Answer::SlowTxt(
            format!("{asn} | ZZ | arin | 2000-01-01 | {}", as_name(asn)),
            Duration::ZERO,
        ),
        _ if name == "1.0.0.127.in-addr.arpa" && qtype == TYPE_PTR => {
            Answer::Ptr("not-asked.example.net", 3600)
        }
        _ => Answer::Rcode(RCODE_NXDOMAIN),
    }
}

/// A zone that never answers for AS names, except NXDOMAIN for the two most frequent ASes of
/// the scenario; NXDOMAIN for everything else.
fn failing_zone(name: &str, _qtype: u16) -> Answer {
    match cymru_asn(name) {
        Some(15169 | 7018) | None => Answer::Rcode(RCODE_NXDOMAIN),
        Some(_) => Answer::Silent,
    }
}

struct Setup {
    _dir: tempfile::TempDir,
    config: ConfigFile,
    bmp_port: u16,
}

impl Setup {
    /// The demo files and locations, events flushed every 100 ms, `[dns]` at `dns`, and a BMP
    /// listener on loopback that names 127.0.0.2 (never connected) in `[[bmp.router]]`. No
    /// hold-down: the events reach the store in the engine's order of the scenario.
    fn new(dns: std::net::SocketAddr, timeout_ms: u64) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let config = DaemonConfig::new()
            .mrt_files(&[fixture(DEMO_RIB), fixture(DEMO_UPDATES)])
            .section("events", "flush-interval-ms = 100\n")
            .section("anomalies", "hold-down-seconds = 0\n")
            .section(
                "dns",
                &format!(
                    "enabled = true\nservers = [\"{dns}\"]\ntimeout-ms = {timeout_ms}\nattempts = 1\n"
                ),
            )
            .bmp(
                "allow = [\"127.0.0.0/8\"]\ninitial-table-timeout-seconds = 1\n\
                 [[bmp.router]]\naddress = \"127.0.0.2\"\nname = \"edge-configured\"\n",
            )
            .locations_toml(&demo_locations())
            .write(dir.path());
        Setup {
            _dir: dir,
            bmp_port: config.bmp_port.unwrap(),
            config,
        }
    }

    fn start(&self) -> Daemon {
        Daemon::start(&self.config)
    }
}

/// Every stored event, oldest first.
fn events(daemon: &mut Daemon) -> Vec<Value> {
    let page = daemon.get_ok("/api/v1/events?limit=1000").json();
    assert_eq!(page["next_cursor"], Value::Null, "one page holds the demo");
    let mut v = page["events"].as_array().unwrap().clone();
    v.reverse();
    v
}

/// Polls until the store holds every demo event; returns them, oldest first.
fn wait_for_all_events(daemon: &mut Daemon, within: Duration) -> Vec<Value> {
    daemon.poll("every demo event stored", within, |d| {
        let v = events(d);
        if v.len() == DEMO_EVENTS {
            Ok(v)
        } else {
            Err(format!("{} of {DEMO_EVENTS} events", v.len()))
        }
    })
}

fn asn_of(v: &Value) -> Option<u32> {
    v.as_u64().map(|a| u32::try_from(a).unwrap())
}

/// A BMP Initiation message with sysDescr and sysName.
fn bmp_initiation(sys_name: &str) -> Vec<u8> {
    let mut tlvs = Vec::new();
    for (t, v) in [(1u16, "test router"), (2u16, sys_name)] {
        tlvs.extend_from_slice(&t.to_be_bytes());
        tlvs.extend_from_slice(&u16::try_from(v.len()).unwrap().to_be_bytes());
        tlvs.extend_from_slice(v.as_bytes());
    }
    let mut m = vec![3u8];
    m.extend_from_slice(&u32::try_from(6 + tlvs.len()).unwrap().to_be_bytes());
    m.push(4);
    m.extend_from_slice(&tlvs);
    m
}

/// `(announced, kind[, anomaly], origin)` of each event after the RIB, oldest first.
fn scenario_sequence(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .filter(|e| {
            routewatch::time_fmt::parse_rfc3339(e["time"].as_str().unwrap()).unwrap()
                > DEMO_RIB_TIME
        })
        .map(|e| {
            let mut s = format!(
                "{} {}",
                e["announced"].as_str().unwrap(),
                e["kind"].as_str().unwrap()
            );
            if let Some(a) = e["anomaly"].as_str() {
                s += &format!(" {a}");
            }
            if let Some(o) = asn_of(&e["origin"]) {
                s += &format!(" AS{o}");
            }
            s
        })
        .collect()
}

#[test]
fn names_from_the_dns_appear_in_events_and_the_api() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dns = rt.block_on(TestDns::start(answering_zone));
    let setup = Setup::new(dns.addr, 2000);
    let mut daemon = setup.start();
    daemon.wait_ready();

    let all = wait_for_all_events(&mut daemon, Duration::from_secs(20));
    // Every event named by its origin and peer AS, and only private ASes left unnamed.
    let mut named_origins = 0;
    for e in &all {
        let origin = asn_of(&e["origin"]);
        let peer = asn_of(&e["peer"]["asn"]).unwrap();
        assert_eq!(
            e["origin_as_name"].as_str().map(String::from),
            origin.and_then(expected_name),
            "{e}"
        );
        assert_eq!(
            e["peer_as_name"].as_str().map(String::from),
            expected_name(peer),
            "{e}"
        );
        named_origins += usize::from(e.get("origin_as_name").is_some());
    }
    assert!(named_origins > 0);
    // The hijack: the offending private AS has no name, AT&T's peer has.
    let hijack = all
        .iter()
        .find(|e| {
            e["kind"] == "anomaly_opened"
                && e["anomaly"] == "origin_mismatch"
                && e["announced"] == "8.8.8.0/24"
        })
        .unwrap();
    assert_eq!(hijack["origin"], 64666);
    assert_eq!(hijack.get("origin_as_name"), None, "{hijack}");
    assert_eq!(hijack["peer_as_name"], "ATT-INTERNET4, US", "{hijack}");
    let back = all
        .iter()
        .rfind(|e| e["kind"] == "origin_change" && e["announced"] == "8.8.8.0/24")
        .unwrap();
    assert_eq!(back["origin_as_name"], "GOOGLE, US", "{back}");
    assert_eq!(dns.queries(&cymru(64666)), 0, "a private AS is never asked");
    // Each AS asked once (cached), however many events name it.
    assert_eq!(dns.queries(&cymru(15169)), 1);
    // The order is the engine's: the scenario in BGP-time order.
    assert_eq!(scenario_sequence(&all), SCENARIO);

    // The API: names from the cache.
    let anomalies = daemon.get_ok("/api/v1/anomalies").json();
    let anomalies = anomalies["anomalies"].as_array().unwrap();
    let mut named: Vec<(String, Option<&str>)> = anomalies
        .iter()
        .filter_map(|a| {
            let asn = asn_of(&a["asn"])?;
            Some((
                format!("{} AS{asn}", a["kind"].as_str().unwrap()),
                a["as_name"].as_str(),
            ))
        })
        .collect();
    named.sort();
    assert_eq!(
        named,
        [
            (
                "origin_mismatch AS24409".to_string(),
                Some("TEST-AS24409, ZZ")
            ),
            (
                "origin_mismatch AS30640".to_string(),
                Some("TEST-AS30640, ZZ")
            ),
            (
                "unexpected_upstream AS7018".to_string(),
                Some("ATT-INTERNET4, US")
            ),
        ],
        "the real anomalies of 2014 still open after the scenario"
    );
    for a in anomalies {
        match asn_of(&a["asn"]) {
            Some(asn) => assert_eq!(
                a["as_name"].as_str().map(String::from),
                expected_name(asn),
                "{a}"
            ),
            None => assert_eq!(a.get("as_name"), None, "{a}"),
        }
    }
    let prefixes = daemon.get_ok("/api/v1/prefixes").json();
    let google = prefixes["prefixes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["prefix"] == "8.8.8.0/24")
        .unwrap()
        .clone();
    assert_eq!(google["origins"], serde_json::json!([15169]));
    assert_eq!(
        google["origin_names"],
        serde_json::json!({"15169": "GOOGLE, US"})
    );

    // An unnamed BMP router gets its reverse-DNS name; the configured one is not looked up.
    let mut router = TcpStream::connect(("127.0.0.1", setup.bmp_port)).unwrap();
    router.write_all(&bmp_initiation("lab1")).unwrap();
    let routers = daemon.poll("the router's DNS name", Duration::from_secs(10), |d| {
        let status = d.get_ok("/api/v1/status").json();
        let routers = status["routers"].as_array().unwrap().clone();
        let lab = routers.iter().find(|r| r["sys_name"] == "lab1");
        match lab {
            Some(r) if r["dns_name"] == ROUTER_NAME => Ok(routers),
            _ => Err(format!("{routers:?}")),
        }
    });
    let configured = routers
        .iter()
        .find(|r| r["router"] == "edge-configured")
        .unwrap();
    assert_eq!(configured.get("dns_name"), None, "{configured}");
    assert_eq!(
        dns.queries("1.0.0.127.in-addr.arpa"),
        0,
        "answered by hickory"
    );

    // The enricher's counters as metrics.
    let m = daemon.scrape();
    assert!(m.value("routewatch_dns_lookups_total", &[("result", "found")]) >= 5.0);
    assert_eq!(
        m.value("routewatch_dns_lookups_total", &[("result", "timeout")]),
        0.0
    );
    assert!(m.value("routewatch_dns_queries_total", &[]) >= 5.0);
    assert!(m.value("routewatch_dns_cache_requests_total", &[("result", "hit")]) > 0.0);
    assert!(m.value("routewatch_dns_cache_entries", &[]) >= 5.0);
    drop(router);
    daemon.terminate_cleanly();
}

#[test]
fn events_arrive_promptly_without_names_when_the_dns_fails() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dns = rt.block_on(TestDns::start(failing_zone));
    let timeout = Duration::from_millis(1500);
    let setup = Setup::new(dns.addr, timeout.as_millis() as u64);
    let mut daemon = setup.start();
    daemon.wait_ready();
    // Ready: the engine has handed on every event. Each batch waits at most the timeout for
    // its names, however many ASes stay silent (waiting for each in turn would take minutes).
    let ready = Instant::now();
    let all = wait_for_all_events(&mut daemon, Duration::from_secs(20));
    let took = ready.elapsed();
    assert!(
        took < timeout + Duration::from_secs(2),
        "events stored {took:?} after ready (DNS timeout {timeout:?})\n{}",
        daemon.log()
    );
    for e in &all {
        assert_eq!(e.get("origin_as_name"), None, "{e}");
        assert_eq!(e.get("peer_as_name"), None, "{e}");
    }
    let silent_asked = dns_silent_ases(&dns, &all);
    assert!(
        silent_asked >= 5,
        "{silent_asked} silent ASes asked: the test needs several to mean anything"
    );
    // The same order as with names.
    assert_eq!(scenario_sequence(&all), SCENARIO);

    // The API answers at once from the cache, names or not.
    for path in ["/api/v1/anomalies", "/api/v1/prefixes", "/api/v1/status"] {
        let t0 = Instant::now();
        let body = daemon.get_ok(path).json();
        assert!(
            t0.elapsed() < Duration::from_millis(1000),
            "{path} took {:?}",
            t0.elapsed()
        );
        assert!(!body.to_string().contains("as_name"), "{path}: {body}");
    }
    // NXDOMAIN answers and timeouts are counted.
    daemon.wait_scrape(
        "NXDOMAIN and timeouts counted",
        Duration::from_secs(20),
        |m| {
            let nx = m.value("routewatch_dns_lookups_total", &[("result", "not_found")]);
            let to = m.value("routewatch_dns_lookups_total", &[("result", "timeout")]);
            if nx >= 2.0 && to >= 1.0 {
                Ok(())
            } else {
                Err(format!("not_found {nx}, timeout {to}"))
            }
        },
    );
    assert_eq!(dns.queries(&cymru(15169)), 1, "NXDOMAIN cached");
    daemon.terminate_cleanly();
}

/// How many distinct ASes of `events` the failing zone left silent and was asked about.
fn dns_silent_ases(dns: &TestDns, events: &[Value]) -> usize {
    let mut asns: Vec<u32> = events
        .iter()
        .flat_map(|e| [asn_of(&e["origin"]), asn_of(&e["peer"]["asn"])])
        .flatten()
        .filter(|&a| !is_reserved_asn(a) && a != 15169 && a != 7018)
        .collect();
    asns.sort_unstable();
    asns.dedup();
    asns.iter().filter(|&&a| dns.queries(&cymru(a)) > 0).count()
}
