#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The BMP listener under hostile or broken connections (issue 12, points 4 and 5, and the BMP
//! parts of its smaller points), against `routewatch run` on loopback, asserting what an
//! operator sees (metrics, `/api/v1/status`, the daemon's log):
//!
//! * 64 silent connections do not lock out a configured router (reserved slots), and are closed
//!   at the Initiation deadline; a source address is capped;
//! * a slowloris sending half a header is closed at the deadline; a stream cut mid-message is
//!   `truncated`;
//! * a session that goes silent is closed as idle and its routes withdrawn;
//! * a source using a configured router's name as sysName never takes its series;
//! * TLVs after each UPDATE are a protocol oddity, not a parse error, and the routes are used;
//! * a flood of malformed messages writes a bounded number of log lines.
//!
//! Every daemon is killed by pid when its guard drops; every wait is bounded.

mod support;

use std::io::Write;
use std::net::{Ipv4Addr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use support::bmp::{
    bgp_message, bmp_message, connect_from, initiation, peer_header, peer_up, tlv, wait_closed,
    ROUTER_AS,
};
use support::daemon::{Daemon, Exposition};
use support::{DaemonConfig, Location};

const WAIT: Duration = Duration::from_secs(20);
const LOCATION: &str = "contoso-lab";
const V4: &str = "203.0.113.0/24";
const ORIGIN: u32 = 64500;

fn location() -> Location {
    Location::new(LOCATION, &[ORIGIN], &[V4])
        .provider_asns(&[])
        .region("lab")
}

/// `routewatch run` with `[bmp]` keys `bmp`, ready; returns it and its BMP port.
fn start(dir: &Path, bmp: &str) -> (Daemon, u16) {
    let config = DaemonConfig::new()
        .bmp(&format!("initial-table-timeout-seconds = 1\n{bmp}"))
        .section("anomalies", "hold-down-seconds = 0\n")
        .locations(&[location()])
        .write(dir);
    let mut daemon = Daemon::start(&config);
    daemon.wait_ready();
    (daemon, config.bmp_port.unwrap())
}

fn expect(m: &Exposition, name: &str, labels: &[(&str, &str)], want: f64) -> Result<(), String> {
    match m.get(name, labels) {
        Some(v) if v == want => Ok(()),
        got => Err(format!("{name}{labels:?} is {got:?}, want {want}")),
    }
}

fn visibility(m: &Exposition, want: f64) -> Result<(), String> {
    expect(
        m,
        "routewatch_prefix_visibility_peers",
        &[("location", LOCATION), ("prefix", V4)],
        want,
    )
}

fn closed(m: &Exposition, reason: &str, want: f64) -> Result<(), String> {
    expect(
        m,
        "routewatch_bmp_sessions_closed_total",
        &[("reason", reason)],
        want,
    )
}

fn rejected(m: &Exposition, reason: &str) -> f64 {
    m.value(
        "routewatch_bmp_sessions_rejected_total",
        &[("reason", reason)],
    )
}

fn oddities(m: &Exposition, kind: &str) -> f64 {
    m.value("routewatch_bmp_protocol_oddities_total", &[("kind", kind)])
}

// ---- raw BMP ---------------------------------------------------------------------------------

/// Route Monitoring announcing 203.0.113.0/24 with the path `peer_asn ORIGIN`, with `after`
/// appended after the UPDATE (inside the BMP message).
fn announcement(peer: Ipv4Addr, asn: u32, after: &[u8]) -> Vec<u8> {
    let mut seg = vec![2, 2];
    seg.extend_from_slice(&asn.to_be_bytes());
    seg.extend_from_slice(&ORIGIN.to_be_bytes());
    let mut attrs = vec![0x40, 1, 1, 0];
    attrs.extend_from_slice(&[0x40, 2, seg.len() as u8]);
    attrs.extend_from_slice(&seg);
    attrs.extend_from_slice(&[0x40, 3, 4, 10, 0, 0, 1]);
    let mut update = 0u16.to_be_bytes().to_vec();
    update.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    update.extend_from_slice(&attrs);
    update.extend_from_slice(&[24, 203, 0, 113]);
    let mut b = peer_header(peer, asn);
    b.extend_from_slice(&bgp_message(2, &update));
    b.extend_from_slice(after);
    bmp_message(3, 0, &b)
}

/// A router session: Initiation, a Peer Up and the registered prefix announced.
fn router_with_route(sys_name: &str) -> Vec<u8> {
    let peer = Ipv4Addr::new(192, 0, 2, 7);
    [
        initiation(sys_name),
        peer_up(peer, 64510, ROUTER_AS),
        announcement(peer, 64510, &[]),
    ]
    .concat()
}

// ---- tests -----------------------------------------------------------------------------------

/// 64 connections that never send an Initiation (from 16 addresses, 4 each: the per-address
/// cap) fill every slot but the one reserved for the configured router, which still connects
/// and feeds routes; the silent ones are closed at the Initiation deadline and counted.
#[test]
fn silent_connections_do_not_lock_out_a_configured_router() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut rw, port) = start(
        tmp.path(),
        "initiation-timeout-seconds = 3\n\
         [[bmp.router]]\naddress = \"127.0.0.2\"\nname = \"edge1\"\n",
    );
    let mut silent: Vec<TcpStream> = (0..64)
        .map(|i| connect_from(Ipv4Addr::new(127, 0, 1, 1 + i / 4), port))
        .collect();
    // A fifth connection from one address is refused whatever the free slots.
    let mut fifth = connect_from(Ipv4Addr::new(127, 0, 1, 1), port);
    wait_closed(&mut fifth, WAIT, "a fifth connection from 127.0.1.1");
    let m = rw.wait_scrape(
        "63 silent sessions, one refused for the reserved slot",
        WAIT,
        |m| {
            expect(
                m,
                "routewatch_bmp_sessions_rejected_total",
                &[("reason", "reserved_for_configured")],
                1.0,
            )?;
            expect(
                m,
                "routewatch_bmp_sessions_rejected_total",
                &[("reason", "too_many_from_address")],
                1.0,
            )
        },
    );
    assert_eq!(rejected(&m, "too_many_sessions"), 0.0);

    let mut edge1 = connect_from(Ipv4Addr::new(127, 0, 0, 2), port);
    edge1.write_all(&router_with_route("edge1")).unwrap();
    rw.wait_scrape("the configured router is up with its route", WAIT, |m| {
        expect(m, "routewatch_bmp_session_up", &[("router", "edge1")], 1.0)?;
        visibility(m, 1.0)
    });

    // The silent ones go at the deadline (3 s); the configured router stays.
    for (i, s) in silent.iter_mut().enumerate() {
        wait_closed(s, WAIT, &format!("silent connection {i}"));
    }
    let m = rw.wait_scrape("63 closed as initiation_timeout", WAIT, |m| {
        closed(m, "initiation_timeout", 63.0)
    });
    assert_eq!(
        m.value("routewatch_bmp_session_up", &[("router", "edge1")]),
        1.0
    );
    visibility(&m, 1.0).unwrap();
    // Slots are free again for anyone.
    let mut late = connect_from(Ipv4Addr::new(127, 0, 1, 200), port);
    late.write_all(&initiation("late")).unwrap();
    rw.wait_scrape("a later router connects", WAIT, |m| {
        expect(m, "routewatch_bmp_session_up", &[("router", "late")], 1.0)
    });
}

/// Half a common header, then nothing: closed at the Initiation deadline (not before), counted.
/// A stream that stops in the middle of a message is closed as `truncated`, not `tcp_close`.
#[test]
fn slowloris_is_closed_at_the_deadline_and_a_cut_stream_is_truncated() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut rw, port) = start(tmp.path(), "initiation-timeout-seconds = 2\n");
    let opened = Instant::now();
    let mut slow = connect_from(Ipv4Addr::LOCALHOST, port);
    slow.write_all(&[3, 0, 0]).unwrap();
    let at = wait_closed(&mut slow, WAIT, "the slowloris");
    let after = at.duration_since(opened);
    assert!(
        after >= Duration::from_millis(1900),
        "closed after {after:?}"
    );
    rw.wait_scrape("counted as initiation_timeout", WAIT, |m| {
        closed(m, "initiation_timeout", 1.0)
    });

    let mut cut = connect_from(Ipv4Addr::LOCALHOST, port);
    let whole = router_with_route("rw-cut");
    cut.write_all(&whole).unwrap();
    rw.wait_scrape("the route", WAIT, |m| visibility(m, 1.0));
    let next = announcement(Ipv4Addr::new(192, 0, 2, 7), 64510, &[]);
    cut.write_all(&next[..next.len() / 2]).unwrap();
    cut.shutdown(std::net::Shutdown::Write).unwrap();
    let m = rw.wait_scrape("closed as truncated, routes withdrawn", WAIT, |m| {
        closed(m, "truncated", 1.0)?;
        visibility(m, 0.0)
    });
    closed(&m, "tcp_close", 0.0).unwrap();
}

/// A session that sends nothing more (a router that stopped, or a half-sent message held
/// open) is closed at `idle-timeout-seconds` and its routes withdrawn.
#[test]
fn a_silent_session_is_closed_as_idle_and_its_routes_withdrawn() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut rw, port) = start(tmp.path(), "idle-timeout-seconds = 2\n");
    let mut quiet = connect_from(Ipv4Addr::LOCALHOST, port);
    quiet.write_all(&router_with_route("rw-quiet")).unwrap();
    rw.wait_scrape("the route", WAIT, |m| {
        visibility(m, 1.0)?;
        expect(
            m,
            "routewatch_bmp_session_up",
            &[("router", "rw-quiet")],
            1.0,
        )
    });
    // A partial message does not count as activity.
    quiet.write_all(&[3, 0, 0, 0]).unwrap();
    wait_closed(&mut quiet, WAIT, "the idle session");
    let m = rw.wait_scrape("closed as idle, routes withdrawn", WAIT, |m| {
        closed(m, "idle_timeout", 1.0)?;
        visibility(m, 0.0)
    });
    assert!(m.with_label("router", "rw-quiet").is_empty());
}

/// Another source sending `sysName = edge1` while the configured edge1 is down: labelled by its
/// own address, counted as `name_conflict`; edge1's `session_up` stays 0 and its series survive
/// the impostor leaving; the real edge1 then connects as usual.
#[test]
fn an_impostor_using_a_configured_name_never_takes_its_series() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut rw, port) = start(
        tmp.path(),
        "[[bmp.router]]\naddress = \"127.0.0.9\"\nname = \"edge1\"\n",
    );
    let mut impostor = connect_from(Ipv4Addr::new(127, 0, 0, 3), port);
    let label = impostor.local_addr().unwrap().to_string();
    impostor.write_all(&router_with_route("edge1")).unwrap();
    let m = rw.wait_scrape("the impostor's route, under its own address", WAIT, |m| {
        visibility(m, 1.0)?;
        expect(m, "routewatch_bmp_session_up", &[("router", &label)], 1.0)?;
        expect(
            m,
            "routewatch_bmp_protocol_oddities_total",
            &[("kind", "name_conflict")],
            1.0,
        )
    });
    assert_eq!(
        m.get("routewatch_bmp_session_up", &[("router", "edge1")]),
        Some(0.0)
    );
    let status = rw.get_ok("/api/v1/status").json();
    let edge1: Vec<_> = status["routers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["router"] == "edge1")
        .collect();
    assert!(
        matches!(edge1.as_slice(), [r] if r["state"] == "down"),
        "{status}"
    );
    assert!(rw.log().contains("configured name of another router"));

    drop(impostor);
    let m = rw.wait_scrape("the impostor gone, edge1's series kept", WAIT, |m| {
        closed(m, "tcp_close", 1.0)?;
        visibility(m, 0.0)
    });
    assert_eq!(
        m.get("routewatch_bmp_session_up", &[("router", "edge1")]),
        Some(0.0)
    );
    assert_eq!(
        m.get(
            "routewatch_bmp_messages_total",
            &[("router", "edge1"), ("type", "initiation")]
        ),
        Some(0.0)
    );

    let mut real = connect_from(Ipv4Addr::new(127, 0, 0, 9), port);
    real.write_all(&router_with_route("edge1")).unwrap();
    let m = rw.wait_scrape("the real edge1 up", WAIT, |m| {
        expect(m, "routewatch_bmp_session_up", &[("router", "edge1")], 1.0)?;
        visibility(m, 1.0)
    });
    assert_eq!(oddities(&m, "name_conflict"), 1.0);
}

/// Huawei-style TLVs after each UPDATE: the routes are used, no parse error is counted (the
/// parse-errors alert stays quiet), the oddity is counted per message and logged once.
#[test]
fn tlvs_after_each_update_are_an_oddity_not_a_parse_error() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut rw, port) = start(tmp.path(), "");
    let peer = Ipv4Addr::new(192, 0, 2, 7);
    let trailer = tlv(0, b"vpn-instance-a");
    let mut s = connect_from(Ipv4Addr::LOCALHOST, port);
    let mut stream = [initiation("rw-huawei"), peer_up(peer, 64510, ROUTER_AS)].concat();
    for _ in 0..5 {
        stream.extend_from_slice(&announcement(peer, 64510, &trailer));
    }
    s.write_all(&stream).unwrap();
    let m = rw.wait_scrape("the routes used, the oddity counted", WAIT, |m| {
        visibility(m, 1.0)?;
        expect(
            m,
            "routewatch_bmp_protocol_oddities_total",
            &[("kind", "trailing_tlv")],
            5.0,
        )
    });
    for (labels, v) in m.with_name("routewatch_parse_errors_total") {
        assert_eq!(v, 0.0, "{labels:?}");
    }
    let log = rw.log();
    assert_eq!(
        log.matches("trailing_tlv").count(),
        1,
        "logged once per session:\n{log}"
    );
    assert!(!log.contains("trailing_data"), "{log}");
}

/// 20,000 malformed messages on one session write at most the burst of lines, then one summary
/// when the session ends; the suppressed lines are counted.
#[test]
fn a_flood_of_malformed_messages_writes_a_bounded_number_of_log_lines() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut rw, port) = start(tmp.path(), "");
    const FLOOD: usize = 20_000;
    let lines_before = rw.log().lines().count();
    let mut s = connect_from(Ipv4Addr::LOCALHOST, port);
    let bad_peer_up = bmp_message(3, 3, &[0; 10]);
    let mut stream = initiation("rw-flood");
    for _ in 0..FLOOD {
        stream.extend_from_slice(&bad_peer_up);
    }
    s.write_all(&stream).unwrap();
    rw.wait_scrape("every message read", WAIT, |m| {
        expect(
            m,
            "routewatch_bmp_messages_total",
            &[("router", "rw-flood"), ("type", "peer_up")],
            FLOOD as f64,
        )
    });
    drop(s);
    let m = rw.wait_scrape("session ended, suppressed lines counted", WAIT, |m| {
        closed(m, "tcp_close", 1.0)?;
        expect(
            m,
            "routewatch_bmp_log_lines_suppressed_total",
            &[],
            (FLOOD - 10) as f64,
        )
    });
    assert_eq!(
        m.value(
            "routewatch_parse_errors_total",
            &[("error", "malformed_peer_up"), ("feed", "bmp")]
        ),
        FLOOD as f64,
        "every message still counted"
    );
    let log = rw.log();
    let problems = log.matches("BMP message problem").count();
    assert_eq!(problems, 10, "at most the burst");
    assert!(log.contains("more log lines not written"), "a summary line");
    let added = log.lines().count() - lines_before;
    assert!(added < 30, "{added} lines:\n{log}");
}
