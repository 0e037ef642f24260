//! `[ris-live]` end to end: the real daemon against a local RIS Live server (plain WebSocket and
//! TLS with a generated certificate), replaying fixtures written from RIS Live's documented
//! message formats (fixtures/ris-live/README.md).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/ris_live.rs"]
mod ris_server;
mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use ris_server::{Command, RisServer};
use support::config::ConfigFile;
use support::daemon::{poll, Daemon, Exposition};
use support::{DaemonConfig, Location};

const WAIT: Duration = Duration::from_secs(20);

fn locations() -> Vec<Location> {
    vec![
        Location::new("a", &[64500], &["192.0.2.0/24", "2001:db8::/32"]),
        Location::new("b", &[64501], &["198.51.100.0/22"]),
    ]
}

/// `[ris-live]` keys for `server`.
fn ris_section(server: &RisServer, tls: bool, extra: &str) -> String {
    format!(
        "enabled = true\nurl = \"{}\"\nclient = \"rw-test\"\nping-interval-seconds = 1\n\
         backoff-min-ms = 50\nbackoff-max-ms = 200\n{extra}",
        server.url(tls)
    )
}

fn config(dir: &std::path::Path, locations: &[Location], ris: &str) -> (DaemonConfig, ConfigFile) {
    config_on(DaemonConfig::new(), dir, locations, ris)
}

fn config_on(
    base: DaemonConfig,
    dir: &std::path::Path,
    locations: &[Location],
    ris: &str,
) -> (DaemonConfig, ConfigFile) {
    let c = base
        .section("anomalies", "hold-down-seconds = 0")
        .section("ris-live", ris)
        .locations(locations);
    let f = c.write(dir);
    (c, f)
}

/// The subscriptions routewatch should hold for `prefixes` (per prefix, with more-specifics),
/// plus peer states and the heartbeat.
fn expected_subscriptions(prefixes: &[&str]) -> BTreeSet<String> {
    let mut s: BTreeSet<String> = prefixes
        .iter()
        .map(|p| format!(r#"{{"moreSpecific":true,"prefix":"{p}","type":"UPDATE"}}"#))
        .collect();
    s.insert(r#"{"type":"RIS_PEER_STATE"}"#.into());
    s.insert(r#"{"host":"rrc00","type":"KEEPALIVE"}"#.into());
    s
}

fn vis(m: &Exposition, location: &str, prefix: &str) -> f64 {
    m.value(
        "routewatch_prefix_visibility_peers",
        &[("location", location), ("prefix", prefix)],
    )
}

fn active(m: &Exposition, kind: &str, location: &str, prefix: &str) -> f64 {
    m.value(
        "routewatch_anomalies_active",
        &[("kind", kind), ("location", location), ("prefix", prefix)],
    )
}

fn msgs(m: &Exposition, t: &str) -> f64 {
    m.value("routewatch_ris_live_messages_total", &[("type", t)])
}

fn reconnects(m: &Exposition, reason: &str) -> f64 {
    m.value(
        "routewatch_ris_live_reconnects_total",
        &[("reason", reason)],
    )
}

fn wait_connections(server: &RisServer, n: u32) {
    poll("server connections", WAIT, || {
        let c = server.with(|s| s.connections);
        if c >= n {
            Ok(())
        } else {
            Err(format!("{c} connections"))
        }
    });
}

fn wait_subscriptions(server: &RisServer, want: &BTreeSet<String>) {
    poll("subscriptions", WAIT, || {
        let got = server.with(|s| s.subscriptions.clone());
        if &got == want {
            Ok(())
        } else {
            Err(format!("{got:#?}"))
        }
    });
}

#[test]
fn the_stream_drives_state_anomalies_and_metrics_and_follows_reloads() {
    let dir = tempfile::tempdir().unwrap();
    let server = RisServer::start();
    let (_, file) = config(dir.path(), &locations(), &ris_section(&server, false, ""));
    let mut d = Daemon::start(&file);
    d.wait_ready();
    d.wait_metric("routewatch_ris_live_connected", &[], 1.0);
    // Subscribed to exactly the registry's prefixes, with the client name in the URL.
    wait_subscriptions(
        &server,
        &expected_subscriptions(&["192.0.2.0/24", "198.51.100.0/22", "2001:db8::/32"]),
    );
    assert_eq!(
        server.with(|s| s.requests.clone()),
        ["/v1/ws/?client=rw-test"]
    );
    assert_eq!(
        d.scrape().value("routewatch_ris_live_subscriptions", &[]),
        5.0
    );

    // Announcements: state, anomalies opened.
    server.send_fixture("announcements.jsonl");
    let m = d.wait_scrape("announcements applied", WAIT, |m| {
        // Unmatched messages' counts are handed on within a second.
        let v = vis(m, "a", "192.0.2.0/24");
        let n = m.value("routewatch_routes_processed_total", &[("feed", "ris-live")]);
        (v == 2.0 && n == 7.0)
            .then_some(())
            .ok_or(format!("visibility {v}, processed {n}"))
    });
    assert_eq!(vis(&m, "b", "198.51.100.0/22"), 1.0);
    assert_eq!(vis(&m, "a", "2001:db8::/32"), 1.0);
    assert_eq!(active(&m, "origin_mismatch", "a", "192.0.2.0/24"), 1.0);
    assert_eq!(active(&m, "subprefix_hijack", "a", "192.0.2.0/24"), 1.0);
    let feed = [("feed", "ris-live")];
    // 7 prefixes read, 5 of them registered or inside one.
    assert_eq!(m.value("routewatch_routes_processed_total", &feed), 7.0);
    assert_eq!(m.value("routewatch_routes_matched_total", &feed), 5.0);
    assert_eq!(m.value("routewatch_feed_peers", &feed), 3.0);
    assert_eq!(
        m.value("routewatch_feed_last_message_timestamp_seconds", &feed),
        1_700_000_004.0
    );
    assert!(m.value("routewatch_feed_last_received_timestamp_seconds", &feed) > 1.7e9);
    // The API shows the collector peer identity.
    let prefixes = d.get_ok("/api/v1/prefixes").json();
    let p = prefixes["prefixes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["prefix"] == "192.0.2.0/24")
        .unwrap()
        .clone();
    assert_eq!(p["visibility"], 2);
    let mut origins: Vec<u64> = p["origins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o.as_u64().unwrap())
        .collect();
    origins.sort_unstable();
    assert_eq!(origins, [64500, 64666]);
    let anomalies = d.get_ok("/api/v1/anomalies").text();
    assert!(anomalies.contains("64666"), "{anomalies}");

    // Withdrawals resolve them.
    server.send_fixture("withdrawals.jsonl");
    let m = d.wait_scrape("withdrawals applied", WAIT, |m| {
        let a = active(m, "origin_mismatch", "a", "192.0.2.0/24");
        (a == 0.0 && active(m, "subprefix_hijack", "a", "192.0.2.0/24") == 0.0)
            .then_some(())
            .ok_or(format!("origin_mismatch {a}"))
    });
    assert_eq!(vis(&m, "a", "192.0.2.0/24"), 1.0);

    // RIS_PEER_STATE down: that (collector, peer)'s routes go, the other collector's stay.
    server.send_fixture("peer-state.jsonl");
    let m = d.wait_metric("routewatch_feed_sessions_down_total", &feed, 1.0);
    assert_eq!(vis(&m, "a", "192.0.2.0/24"), 0.0);
    assert_eq!(vis(&m, "b", "198.51.100.0/22"), 0.0);
    assert_eq!(vis(&m, "a", "2001:db8::/32"), 1.0);
    assert_eq!(msgs(&m, "peer_state"), 1.0);

    // Malformed messages are counted, not fatal.
    server.send_fixture("malformed.jsonl");
    d.wait_metric(
        "routewatch_ris_live_messages_total",
        &[("type", "malformed")],
        4.0,
    );
    // Parse errors are handed on with the next batch (within a second).
    let m = d.wait_metric(
        "routewatch_parse_errors_total",
        &[("feed", "ris-live"), ("error", "malformed_message")],
        2.0,
    );
    let err = |e: &str| {
        m.value(
            "routewatch_parse_errors_total",
            &[("feed", "ris-live"), ("error", e)],
        )
    };
    assert_eq!(err("malformed_json"), 2.0);
    assert_eq!(err("malformed_message"), 2.0);
    assert_eq!(m.value("routewatch_ris_live_connected", &[]), 1.0);
    assert!(msgs(&m, "keepalive") > 0.0 && msgs(&m, "pong") > 0.0);
    assert!(server.with(|s| s.pings) > 0);
    assert_eq!(server.with(|s| s.connections), 1);

    // ris_error then a close: reconnected, counted as ris_error, subscribed again.
    server.send_fixture("ris-error.jsonl");
    server.queue([Command::Close]);
    wait_connections(&server, 2);
    d.wait_metric(
        "routewatch_ris_live_reconnects_total",
        &[("reason", "ris_error")],
        1.0,
    );
    d.wait_metric("routewatch_ris_live_connected", &[], 1.0);
    wait_subscriptions(
        &server,
        &expected_subscriptions(&["192.0.2.0/24", "198.51.100.0/22", "2001:db8::/32"]),
    );
    // A connection dropped without a close: an error.
    server.queue([Command::Drop]);
    wait_connections(&server, 3);
    let m = d.wait_metric(
        "routewatch_ris_live_reconnects_total",
        &[("reason", "error")],
        1.0,
    );
    assert_eq!(reconnects(&m, "stale"), 0.0);
    assert_eq!(msgs(&m, "ris_error"), 1.0);
    d.wait_metric("routewatch_ris_live_connected", &[], 1.0);

    // A reload with another registry renews the subscriptions on the open connection.
    let new_locations = vec![
        Location::new("a", &[64500], &["192.0.2.0/24"]),
        Location::new("b", &[64501], &["198.51.100.0/22", "198.51.101.0/24"]),
        Location::new("c", &[64502], &["203.0.113.0/24"]),
    ];
    let same_port = DaemonConfig::new().listen(([127, 0, 0, 1], d.port).into());
    config_on(
        same_port,
        dir.path(),
        &new_locations,
        &ris_section(&server, false, ""),
    );
    d.signal("HUP");
    // 198.51.101.0/24 is covered by 198.51.100.0/22's more-specifics.
    wait_subscriptions(
        &server,
        &expected_subscriptions(&["192.0.2.0/24", "198.51.100.0/22", "203.0.113.0/24"]),
    );
    let log = server.with(|s| s.log.clone());
    assert!(
        log.iter()
            .any(|(k, data)| k == "ris_unsubscribe" && data.contains("2001:db8::/32")),
        "{log:?}"
    );
    assert_eq!(
        server.with(|s| s.connections),
        3,
        "renewed without reconnecting"
    );
    assert_eq!(
        d.scrape().value("routewatch_config_restart_required", &[]),
        0.0
    );
    // The stream is matched with the new registry.
    server.queue([Command::Send(
        r#"{"type":"ris_message","data":{"timestamp":1700000100,"peer":"203.0.113.7","peer_asn":"64560","id":"00-203-0-113-7-1","host":"rrc00","type":"UPDATE","path":[64560,64502],"announcements":[{"next_hop":"203.0.113.7","prefixes":["203.0.113.0/24"]}]}}"#.into(),
    )]);
    d.poll("the new prefix seen", WAIT, |d| {
        let v = vis(&d.scrape(), "c", "203.0.113.0/24");
        (v == 1.0).then_some(()).ok_or(format!("{v}"))
    });
    d.terminate_cleanly();
}

#[test]
fn a_silent_stream_is_stale_and_reconnected_pongs_do_not_count() {
    let dir = tempfile::tempdir().unwrap();
    let server = RisServer::start();
    let (_, file) = config(
        dir.path(),
        &locations(),
        &ris_section(&server, false, "stale-seconds = 2\n"),
    );
    let mut d = Daemon::start(&file);
    d.wait_ready();
    d.wait_metric("routewatch_ris_live_connected", &[], 1.0);
    // With the heartbeat (KEEPALIVEs every 200 ms) it stays up well past stale-seconds.
    std::thread::sleep(Duration::from_secs(4));
    let m = d.scrape();
    assert_eq!(reconnects(&m, "stale"), 0.0);
    assert_eq!(server.with(|s| s.connections), 1);
    // Silence (the server still answers pings): down within stale-seconds plus a margin.
    server.heartbeat(false);
    let silent_from = Instant::now();
    d.wait_metric(
        "routewatch_ris_live_reconnects_total",
        &[("reason", "stale")],
        1.0,
    );
    let took = silent_from.elapsed();
    assert!(
        took >= Duration::from_millis(1800) && took < Duration::from_secs(6),
        "stale after {took:?}"
    );
    assert!(
        server.with(|s| s.pings) >= 2,
        "pings were answered meanwhile"
    );
    // Reconnected (and, still silent, stale again: staleness is failure every time).
    wait_connections(&server, 2);
    server.heartbeat(true);
    d.wait_metric("routewatch_ris_live_connected", &[], 1.0);
    let m = d.scrape();
    assert!(msgs(&m, "pong") >= 2.0);
    d.terminate_cleanly();
}

#[test]
fn tls_with_a_generated_certificate_trusted_through_ca_file() {
    let dir = tempfile::tempdir().unwrap();
    let (tls, pem) = ris_server::tls_identity();
    let server = RisServer::start_tls(tls);
    // Not trusted: TLS failures, counted, retried.
    let (_, other_pem) = ris_server::tls_identity();
    let wrong = dir.path().join("other-ca.pem");
    std::fs::write(&wrong, other_pem).unwrap();
    let (_, file) = config(
        dir.path(),
        &locations(),
        &ris_section(
            &server,
            true,
            &format!("ca-file = \"{}\"\n", wrong.display()),
        ),
    );
    let mut d = Daemon::start(&file);
    d.wait_ready();
    d.poll("tls failures", WAIT, |d| {
        let n = reconnects(&d.scrape(), "tls");
        (n >= 2.0).then_some(()).ok_or(format!("{n}"))
    });
    assert_eq!(d.scrape().value("routewatch_ris_live_connected", &[]), 0.0);
    assert_eq!(server.with(|s| s.connections), 0);
    d.terminate_cleanly();

    // Trusted: connected, subscribed, routes applied.
    let good = dir.path().join("ca.pem");
    std::fs::write(&good, pem).unwrap();
    let (_, file) = config(
        dir.path(),
        &locations(),
        &ris_section(
            &server,
            true,
            &format!("ca-file = \"{}\"\n", good.display()),
        ),
    );
    let mut d = Daemon::start(&file);
    d.wait_ready();
    d.wait_metric("routewatch_ris_live_connected", &[], 1.0);
    server.send_fixture("announcements.jsonl");
    d.poll("routes over TLS", WAIT, |d| {
        let v = vis(&d.scrape(), "a", "192.0.2.0/24");
        (v == 2.0).then_some(()).ok_or(format!("{v}"))
    });
    assert_eq!(reconnects(&d.scrape(), "tls"), 0.0);
    d.terminate_cleanly();
}

/// The fixture's announcements as bgpkit elements (what an MRT dump of the same updates holds).
fn fixture_elems(names: &[&str]) -> Vec<bgpkit_parser::BgpElem> {
    names
        .iter()
        .flat_map(|n| ris_server::fixture_lines(n))
        .flat_map(|l| bgpkit_parser::parse_ris_live_message(&l).unwrap())
        .collect()
}

/// Per-prefix state from the API, without the source's name (which tells feeds apart).
fn state(d: &mut Daemon) -> Vec<String> {
    let v = d.get_ok("/api/v1/prefixes").json();
    let mut out: Vec<String> = v["prefixes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let mut origins: Vec<u64> = p["origins"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| o.as_u64().unwrap())
                .collect();
            origins.sort_unstable();
            format!(
                "{} vis={} origins={origins:?} ann={} wd={} changes={} last={} more={} anomalies={}",
                p["prefix"],
                p["visibility"],
                p["announcements"],
                p["withdrawals"],
                p["path_changes"],
                p["last_change"],
                p["more_specifics"].as_array().map_or(0, Vec::len),
                p["anomalies"].as_array().map_or(0, Vec::len),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn the_same_updates_as_mrt_and_as_ris_live_give_the_same_state_and_a_baseline_is_withdrawn_live() {
    let dir = tempfile::tempdir().unwrap();
    // As MRT: the fixtures' announcements and withdrawals encoded as BGP4MP.
    let elems = fixture_elems(&["announcements.jsonl", "withdrawals.jsonl"]);
    assert_eq!(elems.len(), 9);
    let mrt = dir.path().join("updates.mrt");
    std::fs::write(&mrt, support::encode_updates(&elems)).unwrap();
    let mrt_dir = dir.path().join("mrt");
    std::fs::create_dir(&mrt_dir).unwrap();
    let c = DaemonConfig::new()
        .section("anomalies", "hold-down-seconds = 0")
        .mrt_files(std::slice::from_ref(&mrt))
        .locations(&locations());
    let mut a = Daemon::start(&c.write(&mrt_dir));
    a.wait_ready();
    let from_mrt = state(&mut a);
    a.terminate_cleanly();

    // As RIS Live.
    let server = RisServer::start();
    let live_dir = dir.path().join("live");
    std::fs::create_dir(&live_dir).unwrap();
    let (_, file) = config(&live_dir, &locations(), &ris_section(&server, false, ""));
    let mut b = Daemon::start(&file);
    b.wait_ready();
    b.wait_metric("routewatch_ris_live_connected", &[], 1.0);
    server.send_fixture("announcements.jsonl");
    server.send_fixture("withdrawals.jsonl");
    b.wait_metric(
        "routewatch_routes_processed_total",
        &[("feed", "ris-live")],
        9.0,
    );
    let from_live = state(&mut b);
    b.terminate_cleanly();
    assert_eq!(from_mrt, from_live);
    assert!(
        from_live.iter().any(|l| l.contains("vis=1")),
        "{from_live:?}"
    );

    // A baseline: the announcements as rrc00's and rrc01's dump (each collector's own peers),
    // loaded before the stream; a live withdrawal then removes a baseline route.
    let base_dir = dir.path().join("base");
    std::fs::create_dir(&base_dir).unwrap();
    let mut ris = String::new();
    for (collector, peers) in [
        ("rrc00", ["203.0.113.1", "203.0.113.5"]),
        ("rrc01", ["198.18.0.2", "2001:db8:ffff::2"]),
    ] {
        let mine: Vec<_> = fixture_elems(&["announcements.jsonl"])
            .into_iter()
            .filter(|e| peers.contains(&e.peer_ip.to_string().as_str()))
            .collect();
        let f = base_dir.join(format!("{collector}.updates.mrt"));
        std::fs::write(&f, support::encode_updates(&mine)).unwrap();
        ris += &format!(
            "\n[[ris-live.baseline]]\nfile = \"{}\"\ncollector = \"{collector}\"\n",
            f.display()
        );
    }
    let server = RisServer::start();
    let (_, file) = config(
        &base_dir,
        &locations(),
        &(ris_section(&server, false, "") + &ris),
    );
    let mut c = Daemon::start(&file);
    c.wait_ready();
    // Ready means the baseline is in: the hijack is already reported.
    let m = c.scrape();
    assert_eq!(vis(&m, "a", "192.0.2.0/24"), 2.0);
    assert_eq!(active(&m, "origin_mismatch", "a", "192.0.2.0/24"), 1.0);
    // Four peers in the dumps; 203.0.113.5 announced only unregistered prefixes.
    assert_eq!(
        m.value("routewatch_feed_peers", &[("feed", "ris-live")]),
        3.0
    );
    c.wait_metric("routewatch_ris_live_connected", &[], 1.0);
    server.send_fixture("withdrawals.jsonl");
    let m = c.wait_metric(
        "routewatch_anomalies_active",
        &[
            ("kind", "origin_mismatch"),
            ("location", "a"),
            ("prefix", "192.0.2.0/24"),
        ],
        0.0,
    );
    assert_eq!(vis(&m, "a", "192.0.2.0/24"), 1.0);
    // And the peer's session down takes its baseline routes.
    server.send_fixture("peer-state.jsonl");
    let m = c.wait_metric(
        "routewatch_feed_sessions_down_total",
        &[("feed", "ris-live")],
        1.0,
    );
    assert_eq!(vis(&m, "b", "198.51.100.0/22"), 0.0);
    c.terminate_cleanly();
}

#[test]
fn the_section_is_off_by_default_and_validated_with_file_line_col_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    // Absent, or not enabled: off.
    let (_, c) = support::load_config(dir, "");
    assert!(c.unwrap().ris_live.is_none());
    let (_, c) = support::load_config(dir, "[ris-live]\nenabled = false\nclient = \"x\"\n");
    assert!(c.unwrap().ris_live.is_none());
    // Enabled: defaults, and the client name in the URL.
    let (_, c) = support::load_config(dir, "[ris-live]\nenabled = true\nclient = \"rw-1\"\n");
    let r = c.unwrap().ris_live.unwrap();
    assert_eq!(r.url, "wss://ris-live.ripe.net/v1/ws/?client=rw-1");
    assert_eq!(
        (
            r.stale_seconds,
            r.ping_interval_seconds,
            r.backoff_min_ms,
            r.backoff_max_ms
        ),
        (120, 30, 1000, 60000)
    );
    assert_eq!(r.max_prefix_subscriptions, 1000);
    assert!(r.host.is_none() && r.peers.is_empty() && r.baseline.is_empty());
    // Errors name file:line:col and the key.
    let client = "client = \"rw\"\nenabled = true";
    support::assert_key_error(
        dir,
        "ris-live",
        &format!("url = \"https://x/\"\n{client}"),
        7,
        "ris-live.url",
    );
    support::assert_key_error(
        dir,
        "ris-live",
        &format!("host = \"rrc 00\"\n{client}"),
        8,
        "ris-live.host",
    );
    support::assert_key_error(
        dir,
        "ris-live",
        &format!("peers = [\"rrc00\"]\n{client}"),
        10,
        "ris-live.peers",
    );
    support::assert_key_error(
        dir,
        "ris-live",
        &format!("stale-seconds = 0\n{client}"),
        17,
        "ris-live.stale-seconds",
    );
    support::assert_key_error(
        dir,
        "ris-live",
        &format!("backoff-max-ms = 20\nbackoff-min-ms = 100\n{client}"),
        18,
        "ris-live.backoff-max-ms",
    );
    support::assert_key_error(
        dir,
        "ris-live",
        &format!("ca-file = \"/nonexistent.pem\"\n{client}"),
        11,
        "ris-live.ca-file",
    );
    support::assert_key_error(
        dir,
        "ris-live",
        "client = \"a b\"\nenabled = true",
        10,
        "ris-live.client",
    );
    support::assert_key_error(
        dir,
        "ris-live",
        &format!("unknown = 1\n{client}"),
        1,
        "unknown field",
    );
    let err = support::section_error(dir, "ris-live", "enabled = true");
    assert!(
        err.contains("ris-live.client") && err.contains("required"),
        "{err}"
    );
    let err = support::section_error(
        dir,
        "ris-live",
        "enabled = true\nclient = \"rw\"\nhost = \"rrc01\"\n[[ris-live.baseline]]\nfile = \"rib.gz\"\ncollector = \"rrc00\"",
    );
    assert!(
        err.starts_with("7:13: ris-live.baseline.collector"),
        "{err}"
    );
}
