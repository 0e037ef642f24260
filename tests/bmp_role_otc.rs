#![allow(clippy::unwrap_used, clippy::expect_used)]
//! RFC 9234 over BMP, against `routewatch run` on loopback (issue 15, points 2 and 4): a Peer
//! Up whose received OPEN carries the BGP Role capability shows the peer's role in
//! `/api/v1/status`; a peer whose capability has a bad length shows none and the Peer Up is
//! counted; Route Monitoring with an Only-to-Customer attribute is used, and a malformed one is
//! discarded (the route kept) and counted; the route with OTC from the customer is a
//! `route_leak` (RFC 9234 §5), the other is not.
//!
//! Every daemon is killed by pid when its guard drops; every wait is bounded.

mod support;

use std::io::Write;
use std::net::Ipv4Addr;
use std::time::Duration;

use support::bmp::{bgp_message, bmp_message, connect_from, initiation, peer_header, ROUTER_AS};
use support::daemon::{Daemon, Exposition};
use support::{DaemonConfig, Location};

const WAIT: Duration = Duration::from_secs(20);
const LOCATION: &str = "contoso-lab";
const V4: &str = "203.0.113.0/24";
const ORIGIN: u32 = 64500;

/// An OPEN of `asn` with IPv4 unicast, 4-octet AS and, when given, a BGP Role capability with
/// the raw value `role`.
fn open(asn: u32, id: Ipv4Addr, role: Option<&[u8]>) -> Vec<u8> {
    let mut caps = vec![1, 4, 0, 1, 0, 1, 65, 4];
    caps.extend_from_slice(&asn.to_be_bytes());
    if let Some(role) = role {
        caps.extend_from_slice(&[9, role.len() as u8]);
        caps.extend_from_slice(role);
    }
    let mut b = vec![4];
    b.extend_from_slice(&u16::try_from(asn).unwrap_or(23456).to_be_bytes());
    b.extend_from_slice(&90u16.to_be_bytes());
    b.extend_from_slice(&id.octets());
    b.push((caps.len() + 2) as u8);
    b.push(2);
    b.push(caps.len() as u8);
    b.extend_from_slice(&caps);
    bgp_message(1, &b)
}

/// A Peer Up of `peer` (AS `asn`): the router's OPEN says it is the peer's provider, the
/// peer's OPEN carries `role`.
fn peer_up(peer: Ipv4Addr, asn: u32, role: Option<&[u8]>) -> Vec<u8> {
    let mut b = peer_header(peer, asn);
    b.extend_from_slice(&[0; 12]);
    b.extend_from_slice(&[127, 0, 0, 2]);
    b.extend_from_slice(&179u16.to_be_bytes());
    b.extend_from_slice(&40179u16.to_be_bytes());
    b.extend_from_slice(&open(ROUTER_AS, Ipv4Addr::new(127, 0, 0, 2), Some(&[0])));
    b.extend_from_slice(&open(asn, peer, role));
    bmp_message(3, 3, &b)
}

/// Route Monitoring announcing 203.0.113.0/24 with the path `asn ORIGIN` and an
/// Only-to-Customer attribute with the raw value `otc`.
fn announcement(peer: Ipv4Addr, asn: u32, otc: &[u8]) -> Vec<u8> {
    let mut seg = vec![2, 2];
    seg.extend_from_slice(&asn.to_be_bytes());
    seg.extend_from_slice(&ORIGIN.to_be_bytes());
    let mut attrs = vec![0x40, 1, 1, 0];
    attrs.extend_from_slice(&[0x40, 2, seg.len() as u8]);
    attrs.extend_from_slice(&seg);
    attrs.extend_from_slice(&[0x40, 3, 4, 10, 0, 0, 1]);
    attrs.extend_from_slice(&[0xC0, 35, otc.len() as u8]);
    attrs.extend_from_slice(otc);
    let mut update = 0u16.to_be_bytes().to_vec();
    update.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    update.extend_from_slice(&attrs);
    update.extend_from_slice(&[24, 203, 0, 113]);
    let mut b = peer_header(peer, asn);
    b.extend_from_slice(&bgp_message(2, &update));
    bmp_message(3, 0, &b)
}

fn parse_errors(m: &Exposition, error: &str) -> Option<f64> {
    m.get(
        "routewatch_parse_errors_total",
        &[("feed", "bmp"), ("error", error)],
    )
}

#[test]
fn peer_roles_show_in_the_status_and_otc_routes_are_used() {
    let tmp = tempfile::tempdir().unwrap();
    let config = DaemonConfig::new()
        .bmp("initial-table-timeout-seconds = 1\n")
        .section("anomalies", "hold-down-seconds = 0\n")
        .locations(&[Location::new(LOCATION, &[ORIGIN], &[V4])
            .provider_asns(&[])
            .region("lab")])
        .write(tmp.path());
    let mut rw = Daemon::start(&config);
    rw.wait_ready();
    let port = config.bmp_port.unwrap();

    let customer = Ipv4Addr::new(192, 0, 2, 7);
    let broken = Ipv4Addr::new(192, 0, 2, 8);
    let mut router = connect_from(Ipv4Addr::new(127, 0, 0, 5), port);
    router
        .write_all(
            &[
                initiation("edge-role"),
                peer_up(customer, 64510, Some(&[3])),
                peer_up(broken, 64511, Some(&[3, 3])),
                announcement(customer, 64510, &64_999u32.to_be_bytes()),
                announcement(broken, 64511, &[0, 0, 0xFD, 0xE7, 0]),
            ]
            .concat(),
        )
        .unwrap();
    rw.wait_scrape("both routes used, the two errors counted", WAIT, |m| {
        let visibility = m.get(
            "routewatch_prefix_visibility_peers",
            &[("location", LOCATION), ("prefix", V4)],
        );
        let errors = (
            parse_errors(m, "malformed_otc"),
            parse_errors(m, "malformed_bgp_role"),
        );
        if visibility == Some(2.0) && errors == (Some(1.0), Some(1.0)) {
            Ok(())
        } else {
            Err(format!(
                "visibility {visibility:?} (want 2), parse errors (otc, role) {errors:?} (want 1 each)"
            ))
        }
    });

    let status = rw.get_ok("/api/v1/status").json();
    let routers = status["routers"].as_array().unwrap();
    let router_status = routers
        .iter()
        .find(|r| r["router"] == "edge-role")
        .unwrap_or_else(|| panic!("{status}"));
    let peers = router_status["peers"].as_array().unwrap();
    let role_of = |address: &str| {
        peers
            .iter()
            .find(|p| p["address"] == address)
            .unwrap_or_else(|| panic!("{address} in {status}"))["role"]
            .clone()
    };
    assert_eq!(role_of("192.0.2.7"), "customer", "{status}");
    assert!(role_of("192.0.2.8").is_null(), "{status}");
    assert!(rw.log().contains("BGP Role capability"), "{}", rw.log());

    // The customer's route carries OTC: RFC 9234 §5 makes it a leak by the customer. The other
    // peer's role is unknown and its OTC was discarded: no leak.
    rw.wait_scrape("the OTC leak opens", WAIT, |m| {
        let active = m.get(
            "routewatch_anomalies_active",
            &[
                ("location", LOCATION),
                ("prefix", V4),
                ("kind", "route_leak"),
            ],
        );
        if active == Some(1.0) {
            Ok(())
        } else {
            Err(format!("route_leak active {active:?} (want 1)"))
        }
    });
    let body = rw.get_ok("/api/v1/anomalies?kind=route_leak").json();
    let leaks = body["anomalies"].as_array().unwrap();
    assert_eq!(leaks.len(), 1, "{body}");
    assert_eq!(leaks[0]["asn"], 64510, "the customer leaked: {body}");
    assert_eq!(leaks[0]["leak"]["reason"], "otc_from_customer", "{body}");
    assert_eq!(leaks[0]["leak"]["role"], "customer", "{body}");
    assert!(leaks[0]["leak"]["procedure"].is_null(), "{body}");
}
