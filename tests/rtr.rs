//! `[rpki] rtr` against real StayRTR 0.5.1 processes (Debian `stayrtr`) on loopback, each fed
//! from a JSON file the test writes and rewrites: the initial load (VRPs and per-AFI ASPAs, RTR
//! version 2), a removed ROA opening an `rpki_invalid` anomaly and its return resolving it, the
//! server killed (the data expires and is no longer used), failover to a second server and back,
//! and version negotiation with a version 1 server. `rtrclient` (rtr-tools) cross-checks what
//! the server serves.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use support::daemon::{free_port, poll, Daemon, Exposition};
use support::process::ChildGuard;
use support::*;

const INSTALL: &str = "apt-get install -y stayrtr rtr-tools";
const WAIT: Duration = Duration::from_secs(30);

/// The Google DNS prefix of the demo locations: 33 routes from AS15169 in the demo RIB.
const GOOGLE: [(&str, &str); 2] = [("location", "google-dns"), ("prefix", "8.8.8.0/24")];
const GOOGLE_ROUTES: f64 = 33.0;

/// A ROA as StayRTR reads it.
fn roa(prefix: &str, max: u8, asn: u32) -> String {
    format!(r#"{{"prefix": "{prefix}", "maxLength": {max}, "asn": "AS{asn}", "ta": "test"}}"#)
}

/// Writes the JSON StayRTR 0.5.1 reads (ROAs, and ASPAs under `provider_authorizations` per
/// address family), aside and renamed so that it never reads half a file.
fn write_cache(path: &Path, roas: &[String], aspa_v4: &[(u32, &[u32])], aspa_v6: &[(u32, &[u32])]) {
    let list = |a: &[(u32, &[u32])]| {
        a.iter()
            .map(|(c, p)| format!(r#"{{"customer_asid": {c}, "providers": {p:?}}}"#))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let text = format!(
        r#"{{"metadata": {{"buildtime": "2026-01-01T00:00:00Z"}}, "roas": [{}],
"provider_authorizations": {{"ipv4": [{}], "ipv6": [{}]}}}}"#,
        roas.join(", "),
        list(aspa_v4),
        list(aspa_v6)
    );
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// The data served in most tests: Google's ROA, a covering ROA for another AS (so that without
/// Google's its routes are Invalid, not NotFound), an IPv6 ROA, and ASPAs for two customers,
/// one of them with a record per address family.
fn standard_roas() -> Vec<String> {
    vec![
        roa("8.8.8.0/24", 24, 15169),
        roa("8.8.0.0/16", 24, 64511),
        roa("2001:db8::/32", 48, 64500),
    ]
}

const ASPA_V4: &[(u32, &[u32])] = &[(64500, &[64510, 64511]), (64501, &[64513])];
const ASPA_V6: &[(u32, &[u32])] = &[(64500, &[64512])];

/// A running `stayrtr`, killed by pid when dropped.
struct Stayrtr {
    process: ChildGuard,
    port: u16,
}

impl Stayrtr {
    /// Serves `cache` on 127.0.0.1:`port` (re-read every second) with these End of Data timers
    /// and any `extra` flags.
    fn start(
        dir: &Path,
        cache: &Path,
        port: u16,
        timers: (u32, u32, u32),
        extra: &[&str],
    ) -> Stayrtr {
        let log = (1..)
            .map(|n| dir.join(format!("stayrtr-{port}.{n}.log")))
            .find(|p| !p.exists())
            .unwrap();
        let mut cmd = Command::new("stayrtr");
        cmd.arg("-cache")
            .arg(cache)
            .arg("-bind")
            .arg(format!("127.0.0.1:{port}"))
            .arg("-metrics.addr")
            .arg(format!("127.0.0.1:{}", free_port()))
            .args(["-checktime=false", "-refresh", "1", "-loglevel", "debug"])
            .arg(format!("-rtr.refresh={}", timers.0))
            .arg(format!("-rtr.retry={}", timers.1))
            .arg(format!("-rtr.expire={}", timers.2))
            .args(extra);
        let mut process = ChildGuard::start("stayrtr", &mut cmd, Some(&log), INSTALL);
        poll("stayrtr listening", WAIT, || {
            process.assert_running();
            TcpStream::connect(("127.0.0.1", port))
                .map(drop)
                .map_err(|e| e.to_string())
        });
        Stayrtr { process, port }
    }

    fn server(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Kills it by pid and waits for the exit.
    fn kill(&mut self) {
        self.process.kill();
    }
}

/// A daemon reading the demo RIB, with the demo locations, `rtr` = `servers` and hold-downs of 0.
fn daemon(dir: &Path, servers: &[String], rpki_keys: &str) -> Daemon {
    let list: Vec<String> = servers.iter().map(|s| format!("\"{s}\"")).collect();
    let config = DaemonConfig::new()
        .mrt_files(&[fixture(DEMO_RIB)])
        .section("anomalies", "hold-down-seconds = 0")
        .section(
            "rpki",
            &format!(
                "rtr = [{}]\nrtr-connect-timeout-seconds = 2\n{rpki_keys}",
                list.join(", ")
            ),
        )
        .locations_toml(&demo_locations())
        .write(dir);
    let mut d = Daemon::start(&config);
    d.wait_ready();
    d
}

fn rpki_routes(m: &Exposition, state: &str) -> f64 {
    let mut labels = GOOGLE.to_vec();
    labels.push(("state", state));
    m.value("routewatch_prefix_rpki_routes", &labels)
}

/// Scrapes until `check` holds, within [`WAIT`].
fn wait(
    d: &mut Daemon,
    what: &str,
    check: impl Fn(&Exposition) -> Result<(), String>,
) -> Exposition {
    d.wait_scrape(what, WAIT, check)
}

fn eq(m: &Exposition, name: &str, labels: &[(&str, &str)], want: f64) -> Result<(), String> {
    match m.get(name, labels) {
        Some(v) if v == want => Ok(()),
        other => Err(format!("{name}{labels:?} is {other:?}, want {want}")),
    }
}

/// The VRPs `rtrclient -e` (rtr-tools, RTR version 1) exports from `port` once synced, one
/// `prefix-maxlen AS n` line each.
fn rtrclient_vrps(port: u16, dir: &Path) -> Vec<String> {
    let log = dir.join(format!("rtrclient-{port}.log"));
    let mut cmd = Command::new("rtrclient");
    cmd.args(["-e", "tcp", "127.0.0.1", &port.to_string()]);
    let mut c = ChildGuard::start("rtrclient", &mut cmd, Some(&log), INSTALL);
    let status = c.wait_exit(Duration::from_secs(15));
    assert!(
        status.is_some_and(|s| s.success()),
        "rtrclient -e: {status:?}\n{}",
        c.log()
    );
    let mut vrps: Vec<String> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .filter(|l| l.contains(" AS "))
        .map(str::to_string)
        .collect();
    vrps.sort();
    vrps
}

fn cache_file(dir: &Path) -> PathBuf {
    dir.join("cache.json")
}

#[test]
fn initial_load_then_a_removed_roa_opens_rpki_invalid_and_its_return_resolves_it() {
    let dir = tempfile::tempdir().unwrap();
    let cache = cache_file(dir.path());
    write_cache(&cache, &standard_roas(), ASPA_V4, ASPA_V6);
    let stay = Stayrtr::start(dir.path(), &cache, free_port(), (3600, 600, 7200), &[]);
    let server = stay.server();

    // rtrclient gets the three VRPs (the count routewatch must hold below).
    assert_eq!(
        rtrclient_vrps(stay.port, dir.path()),
        vec![
            "2001:db8::/32-48 AS 64500",
            "8.8.0.0/16-24 AS 64511",
            "8.8.8.0/24-24 AS 15169"
        ]
    );

    let mut d = daemon(dir.path(), std::slice::from_ref(&server), "");
    let s = [("server", server.as_str())];
    let m = wait(
        &mut d,
        "the RTR data loaded and Google's routes valid",
        |m| {
            eq(m, "routewatch_rtr_session_up", &s, 1.0)?;
            eq(m, "routewatch_rtr_vrps", &[], 3.0)?;
            match rpki_routes(m, "valid") {
                v if v == GOOGLE_ROUTES => Ok(()),
                v => Err(format!("valid = {v}")),
            }
        },
    );
    // Version 2 (StayRTR's default, draft-ietf-sidrops-8210bis-10), three ASPA PDUs (64500 has
    // one per address family), merged into two customers.
    assert_eq!(m.value("routewatch_rtr_version", &s), 2.0);
    assert_eq!(m.value("routewatch_rtr_aspas", &[]), 2.0);
    assert_eq!(
        m.value("routewatch_rtr_pdus_total", &[("type", "aspa")]),
        3.0
    );
    assert_eq!(
        m.value("routewatch_rtr_pdus_total", &[("type", "ipv4_prefix")]),
        2.0
    );
    assert_eq!(
        m.value("routewatch_rtr_pdus_total", &[("type", "ipv6_prefix")]),
        1.0
    );
    assert_eq!(
        m.value(
            "routewatch_rtr_updates_total",
            &[("server", &server), ("kind", "reset")]
        ),
        1.0
    );
    assert!(m.value("routewatch_rtr_last_update_timestamp_seconds", &s) > 1.7e9);
    assert_eq!(m.value("routewatch_rtr_data_expired", &[]), 0.0);
    let serial = m.value("routewatch_rtr_serial", &s);
    // The status page names the server, its session and the version and serial in use.
    let page = d.get_ok("/").text();
    let row = format!("<b>rtr</b> {server}</td><td>");
    let at = page
        .find(&row)
        .unwrap_or_else(|| panic!("no RTR row for {server} on the status page"));
    let row = &page[at..page[at..].find("</tr>").map_or(page.len(), |e| at + e)];
    assert!(row.contains("session up"), "{row}");
    assert!(
        row.contains(&format!("RTR version 2, serial {serial}")),
        "{row}"
    );

    // Google's ROA removed: the covering ROA of AS64511 makes its routes Invalid.
    let roas: Vec<String> = standard_roas().into_iter().skip(1).collect();
    write_cache(&cache, &roas, ASPA_V4, ASPA_V6);
    let m = wait(
        &mut d,
        "Google's routes invalid after the serial update",
        |m| {
            eq(m, "routewatch_rtr_vrps", &[], 2.0)?;
            match rpki_routes(m, "invalid_origin") {
                v if v == GOOGLE_ROUTES => Ok(()),
                v => Err(format!("invalid_origin = {v}")),
            }
        },
    );
    assert!(m.value("routewatch_rtr_serial", &s) > serial);
    assert!(
        m.value(
            "routewatch_rtr_updates_total",
            &[("server", &server), ("kind", "serial")]
        ) >= 1.0,
        "an incremental update, not a reset"
    );
    assert_eq!(
        m.value(
            "routewatch_rtr_updates_total",
            &[("server", &server), ("kind", "reset")]
        ),
        1.0
    );
    // The engine got the ASPAs (two customers) and re-validated only the routes the delta
    // touches (Google's 33 of the 163 held), not every route.
    let log = std::fs::read_to_string(d.log_path()).unwrap();
    let applied: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("RPKI data applied"))
        .collect();
    assert!(applied[0].contains("vrps=3 aspas=2"), "{applied:?}");
    assert!(
        applied
            .iter()
            .any(|l| l.contains("vrps=2 aspas=2 revalidated=33")),
        "{applied:?}"
    );
    let body = d
        .get_ok("/api/v1/anomalies?kind=rpki_invalid&prefix=8.8.8.0/24")
        .json();
    let list = body["anomalies"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{body}");
    assert_eq!(list[0]["location"], "google-dns");
    assert_eq!(list[0]["asn"], 15169);
    assert_eq!(list[0]["open"], true);

    // The ROA watch saw the RTR update: one roa_removed event for Google's ROA.
    let removed = d.poll("the roa_removed event", WAIT, |d| {
        let page = d.get_ok("/api/v1/events?kind=roa_removed").json();
        let events = page["events"].as_array().unwrap().clone();
        match events.as_slice() {
            [e] => Ok(e.clone()),
            other => Err(format!("{} events", other.len())),
        }
    });
    assert_eq!(removed["rpki"]["previous_roa"]["prefix"], "8.8.8.0/24");
    assert_eq!(removed["rpki"]["previous_roa"]["asn"], 15169);
    assert_eq!(removed["location"], "google-dns");

    // The ROA returns: valid again, the anomaly resolves.
    write_cache(&cache, &standard_roas(), ASPA_V4, ASPA_V6);
    wait(&mut d, "Google's routes valid again", |m| {
        eq(
            m,
            "routewatch_anomalies_active",
            &[
                ("location", "google-dns"),
                ("prefix", "8.8.8.0/24"),
                ("kind", "rpki_invalid"),
            ],
            0.0,
        )?;
        match rpki_routes(m, "valid") {
            v if v == GOOGLE_ROUTES => Ok(()),
            v => Err(format!("valid = {v}")),
        }
    });
    let body = d
        .get_ok("/api/v1/anomalies?kind=rpki_invalid&prefix=8.8.8.0/24")
        .json();
    assert_eq!(body["anomalies"].as_array().unwrap().len(), 0, "{body}");
    d.terminate_cleanly();
    drop(stay);
}

#[test]
fn a_killed_server_makes_the_data_expire_and_validation_falls_back_to_the_vrp_file() {
    let dir = tempfile::tempdir().unwrap();
    let cache = cache_file(dir.path());
    write_cache(&cache, &standard_roas(), ASPA_V4, ASPA_V6);
    // The VRP file has only the covering ROA of another AS: with the RTR data (Google's ROA)
    // the union makes Google's routes valid, without it they are invalid.
    let vrp_file = dir.path().join("vrps.json");
    std::fs::write(
        &vrp_file,
        format!(r#"{{"roas": [{}]}}"#, roa("8.8.0.0/16", 24, 64511)),
    )
    .unwrap();
    let port = free_port();
    // Refresh every second, expire after 4 s without a successful update.
    let mut stay = Stayrtr::start(dir.path(), &cache, port, (1, 1, 4), &[]);
    let server = stay.server();
    let mut d = daemon(
        dir.path(),
        std::slice::from_ref(&server),
        &format!("vrp-file = {}\n", support::daemon::toml_path(&vrp_file)),
    );
    let s = [("server", server.as_str())];
    wait(&mut d, "loaded", |m| {
        eq(m, "routewatch_rtr_vrps", &[], 3.0)?;
        match rpki_routes(m, "valid") {
            v if v == GOOGLE_ROUTES => Ok(()),
            v => Err(format!("valid = {v}")),
        }
    });
    // Serial queries every second keep it fresh well past the expire interval.
    std::thread::sleep(Duration::from_secs(6));
    let m = d.scrape();
    assert_eq!(m.value("routewatch_rtr_data_expired", &[]), 0.0);
    assert_eq!(m.value("routewatch_rtr_expiries_total", &[]), 0.0);
    assert!(
        m.value(
            "routewatch_rtr_updates_total",
            &[("server", &server), ("kind", "serial")]
        ) >= 3.0
    );

    // The last End of Data before the kill was at or after this (whole seconds, rounded down).
    let last = d
        .scrape()
        .value("routewatch_rtr_last_update_timestamp_seconds", &s);
    stay.kill();
    wait(&mut d, "the session down", |m| {
        eq(m, "routewatch_rtr_session_up", &s, 0.0)
    });
    wait(&mut d, "the data expired", |m| {
        eq(m, "routewatch_rtr_data_expired", &[], 1.0)?;
        eq(m, "routewatch_rtr_expiries_total", &[], 1.0)?;
        eq(m, "routewatch_rtr_vrps", &[], 0.0)
    });
    // The data stayed in use for the expire interval (4 s) after the last End of Data.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        now - last >= 4.0,
        "expired {:.1} s after the last update",
        now - last
    );
    // Validation no longer uses it: against the VRP file alone, Google's routes are invalid.
    let m = wait(
        &mut d,
        "Google's routes invalid by the VRP file alone",
        |m| match rpki_routes(m, "invalid_origin") {
            v if v == GOOGLE_ROUTES => Ok(()),
            v => Err(format!("invalid_origin = {v}")),
        },
    );
    assert_eq!(rpki_routes(&m, "valid"), 0.0);
    assert_eq!(
        m.value(
            "routewatch_anomalies_active",
            &[
                ("location", "google-dns"),
                ("prefix", "8.8.8.0/24"),
                ("kind", "rpki_invalid")
            ]
        ),
        1.0
    );
    let closed = m.value(
        "routewatch_rtr_errors_total",
        &[("server", &server), ("reason", "closed")],
    );
    let refused = m.value(
        "routewatch_rtr_errors_total",
        &[("server", &server), ("reason", "connect")],
    );
    assert!(
        closed >= 1.0 && refused >= 1.0,
        "closed {closed}, connect {refused}"
    );
    assert!(d.log().contains("RTR data expired"), "{}", d.log());

    // The server comes back on the same port: the data is used again.
    let stay = Stayrtr::start(dir.path(), &cache, port, (1, 1, 4), &[]);
    wait(&mut d, "the data back", |m| {
        eq(m, "routewatch_rtr_data_expired", &[], 0.0)?;
        eq(m, "routewatch_rtr_vrps", &[], 3.0)?;
        eq(m, "routewatch_rtr_session_up", &s, 1.0)?;
        eq(
            m,
            "routewatch_anomalies_active",
            &[
                ("location", "google-dns"),
                ("prefix", "8.8.8.0/24"),
                ("kind", "rpki_invalid"),
            ],
            0.0,
        )?;
        match rpki_routes(m, "valid") {
            v if v == GOOGLE_ROUTES => Ok(()),
            v => Err(format!("valid = {v}")),
        }
    });
    d.terminate_cleanly();
    drop(stay);
}

#[test]
fn failover_to_the_second_server_keeps_the_data_and_the_first_takes_over_when_back() {
    let dir = tempfile::tempdir().unwrap();
    let cache = cache_file(dir.path());
    write_cache(&cache, &standard_roas(), ASPA_V4, ASPA_V6);
    let (p1, p2) = (free_port(), free_port());
    let mut first = Stayrtr::start(dir.path(), &cache, p1, (1, 1, 600), &[]);
    let second = Stayrtr::start(dir.path(), &cache, p2, (1, 1, 600), &[]);
    let (s1, s2) = (first.server(), second.server());
    let mut d = daemon(dir.path(), &[s1.clone(), s2.clone()], "");
    let l1 = [("server", s1.as_str())];
    let l2 = [("server", s2.as_str())];
    wait(&mut d, "loaded from the first", |m| {
        eq(m, "routewatch_rtr_session_up", &l1, 1.0)?;
        eq(m, "routewatch_rtr_vrps", &[], 3.0)
    });
    let m = d.scrape();
    assert_eq!(m.value("routewatch_rtr_session_up", &l2), 0.0);
    assert_eq!(m.value("routewatch_rtr_failovers_total", &[]), 0.0);

    first.kill();
    let m = wait(&mut d, "failed over to the second", |m| {
        eq(m, "routewatch_rtr_session_up", &l2, 1.0)?;
        eq(m, "routewatch_rtr_session_up", &l1, 0.0)?;
        eq(m, "routewatch_rtr_failovers_total", &[], 1.0)
    });
    // The data is intact: the same VRPs and ASPAs, Google's routes still valid, never expired.
    assert_eq!(m.value("routewatch_rtr_vrps", &[]), 3.0);
    assert_eq!(m.value("routewatch_rtr_aspas", &[]), 2.0);
    assert_eq!(rpki_routes(&m, "valid"), GOOGLE_ROUTES);
    assert_eq!(m.value("routewatch_rtr_expiries_total", &[]), 0.0);
    assert_eq!(
        m.value(
            "routewatch_rtr_updates_total",
            &[("server", &s2), ("kind", "reset")]
        ),
        1.0
    );

    // The preferred server comes back: it takes over at the next refresh.
    let first = Stayrtr::start(dir.path(), &cache, p1, (1, 1, 600), &[]);
    let m = wait(&mut d, "back on the first", |m| {
        eq(m, "routewatch_rtr_session_up", &l1, 1.0)?;
        eq(m, "routewatch_rtr_session_up", &l2, 0.0)?;
        eq(m, "routewatch_rtr_failovers_total", &[], 2.0)
    });
    assert_eq!(m.value("routewatch_rtr_vrps", &[]), 3.0);
    assert_eq!(rpki_routes(&m, "valid"), GOOGLE_ROUTES);
    d.terminate_cleanly();
    drop((first, second));
}

#[test]
fn a_version_1_server_is_used_at_version_1_without_aspa() {
    let dir = tempfile::tempdir().unwrap();
    let cache = cache_file(dir.path());
    write_cache(&cache, &standard_roas(), ASPA_V4, ASPA_V6);
    let stay = Stayrtr::start(
        dir.path(),
        &cache,
        free_port(),
        (3600, 600, 7200),
        &["-protocol", "1"],
    );
    let server = stay.server();
    let mut d = daemon(dir.path(), std::slice::from_ref(&server), "");
    let s = [("server", server.as_str())];
    let m = wait(&mut d, "loaded at version 1", |m| {
        eq(m, "routewatch_rtr_version", &s, 1.0)?;
        eq(m, "routewatch_rtr_vrps", &[], 3.0)
    });
    assert_eq!(m.value("routewatch_rtr_aspas", &[]), 0.0);
    assert_eq!(
        m.value("routewatch_rtr_pdus_total", &[("type", "aspa")]),
        0.0
    );
    assert_eq!(rpki_routes(&m, "valid"), GOOGLE_ROUTES);
    d.terminate_cleanly();
    drop(stay);
}

/// Reads one RTR PDU (header and body) from `s`.
fn read_pdu(s: &mut TcpStream) -> Vec<u8> {
    use std::io::Read;
    let mut header = [0u8; 8];
    s.read_exact(&mut header).unwrap();
    let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
    assert!((8..=4096).contains(&len), "PDU length {len}");
    let mut pdu = header.to_vec();
    pdu.resize(len, 0);
    s.read_exact(&mut pdu[8..]).unwrap();
    pdu
}

/// An IPv4 Prefix PDU, version 2, announcing `a.b.c.d/len-max` for `asn`.
fn ipv4_prefix(addr: [u8; 4], len: u8, max: u8, asn: u32) -> Vec<u8> {
    let mut p = vec![2, 4, 0, 0, 0, 0, 0, 20, 1, len, max, 0];
    p.extend_from_slice(&addr);
    p.extend_from_slice(&asn.to_be_bytes());
    p
}

#[test]
fn a_duplicate_announcement_gets_an_error_report_and_a_new_session_from_scratch() {
    use std::io::{Read, Write};
    // A hand-written cache on loopback: the first session announces a VRP twice.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let server = listener.local_addr().unwrap().to_string();
    let cache = std::thread::spawn(move || {
        let timeout = Some(Duration::from_secs(20));
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(timeout).unwrap();
        let query = read_pdu(&mut s);
        let mut reply = vec![2, 3, 0, 5, 0, 0, 0, 8];
        reply.extend(ipv4_prefix([8, 8, 8, 0], 24, 24, 15169));
        reply.extend(ipv4_prefix([8, 8, 8, 0], 24, 24, 15169));
        s.write_all(&reply).unwrap();
        let report = read_pdu(&mut s);
        // The client closes after its Error Report.
        let mut rest = Vec::new();
        let closed = s.read_to_end(&mut rest).map(|_| rest.is_empty());
        // The second session: everything again, properly.
        let (mut s2, _) = listener.accept().unwrap();
        s2.set_read_timeout(timeout).unwrap();
        let query2 = read_pdu(&mut s2);
        let mut reply = vec![2, 3, 0, 6, 0, 0, 0, 8];
        reply.extend(ipv4_prefix([8, 8, 8, 0], 24, 24, 15169));
        reply.extend([2, 7, 0, 6, 0, 0, 0, 24, 0, 0, 0, 1]);
        for t in [3600u32, 600, 7200] {
            reply.extend(t.to_be_bytes());
        }
        s2.write_all(&reply).unwrap();
        (query, report, closed.ok(), query2, s2)
    });
    let dir = tempfile::tempdir().unwrap();
    let mut d = daemon(
        dir.path(),
        std::slice::from_ref(&server),
        "rtr-retry-seconds = 1\n",
    );
    let s = [("server", server.as_str())];
    let m = wait(&mut d, "loaded from the second session", |m| {
        eq(m, "routewatch_rtr_vrps", &[], 1.0)?;
        eq(m, "routewatch_rtr_session_up", &s, 1.0)
    });
    assert_eq!(
        m.value(
            "routewatch_rtr_errors_total",
            &[("server", &server), ("reason", "duplicate_announcement")]
        ),
        1.0
    );
    assert_eq!(rpki_routes(&m, "valid"), GOOGLE_ROUTES);
    let (query, report, closed, query2, _s2) = cache.join().unwrap();
    // Version 2 Reset Queries both times (the session was forgotten after the error).
    assert_eq!(query, [2, 2, 0, 0, 0, 0, 0, 8]);
    assert_eq!(query2, [2, 2, 0, 0, 0, 0, 0, 8]);
    // Error Report, version 2, code 7 (Duplicate Announcement Received), with the PDU copied.
    assert_eq!(&report[..4], &[2, 10, 0, 7]);
    let copy_len = u32::from_be_bytes([report[8], report[9], report[10], report[11]]) as usize;
    assert_eq!(
        &report[12..12 + copy_len],
        &ipv4_prefix([8, 8, 8, 0], 24, 24, 15169)[..]
    );
    assert_eq!(closed, Some(true), "the client closed the connection");
    d.terminate_cleanly();
}
