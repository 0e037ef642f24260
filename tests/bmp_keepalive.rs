//! TCP keepalive on BMP sessions, end to end: a router that vanishes without FIN or RST (its link
//! goes down) is found gone by unanswered keepalive probes, its session is closed as
//! `keepalive_timeout` and its routes are withdrawn, while a healthy router that is just as
//! silent keeps its session.
//!
//! The vanishing router lives in a network namespace of the test's own, joined to this one by a
//! veth pair on addresses of 198.18.0.0/15 (RFC 2544's benchmarking range): no traffic leaves
//! the machine. Needs root (CAP_NET_ADMIN) and iproute2's `ip`, as CI has.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::Write as _;
use std::net::{Ipv4Addr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use support::bmp::*;
use support::daemon::{free_port, Daemon};
use support::process::ChildGuard;
use support::*;

const ORIGIN: u32 = 64496;

/// Runs `ip args...` (in the namespace `ns` when given) and fails the test on an error.
fn ip(ns: Option<&str>, args: &[&str]) {
    let mut cmd = Command::new("ip");
    if let Some(ns) = ns {
        cmd.args(["netns", "exec", ns, "ip"]);
    }
    let out = cmd
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("ip (iproute2) is needed: apt-get install iproute2 ({e})"));
    assert!(
        out.status.success(),
        "ip {args:?} in {ns:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A network namespace joined to this one by a veth pair; deleted (with the pair) on drop.
struct Netns {
    name: String,
    /// The link's name inside the namespace.
    inner_link: String,
    /// This side's address and the namespace's.
    here: Ipv4Addr,
    there: Ipv4Addr,
}

impl Netns {
    fn create() -> Netns {
        let id = std::process::id() % 100_000;
        let name = format!("rw-keepalive-{id}");
        let (outer, inner) = (format!("rwka{id}"), format!("rwkb{id}"));
        // A /30 of 198.18.0.0/15 chosen by the pid: parallel runs do not collide.
        let net = (id % 16_000) * 4;
        let base = u32::from(Ipv4Addr::new(198, 18, 0, 0)) + net;
        let (here, there) = (Ipv4Addr::from(base + 1), Ipv4Addr::from(base + 2));
        // A namespace left by a killed earlier run of the same pid.
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        ip(None, &["netns", "add", &name]);
        let ns = Netns {
            name: name.clone(),
            inner_link: inner.clone(),
            here,
            there,
        };
        ip(
            None,
            &[
                "link", "add", &outer, "type", "veth", "peer", "name", &inner, "netns", &name,
            ],
        );
        ip(None, &["addr", "add", &format!("{here}/30"), "dev", &outer]);
        ip(None, &["link", "set", &outer, "up"]);
        ip(
            Some(&name),
            &["addr", "add", &format!("{there}/30"), "dev", &inner],
        );
        ip(Some(&name), &["link", "set", &inner, "up"]);
        ip(Some(&name), &["link", "set", "lo", "up"]);
        ns
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting the namespace deletes the veth pair with it.
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

#[test]
fn a_router_that_vanishes_without_fin_is_closed_by_keepalive_and_its_routes_withdrawn() {
    let ns = Netns::create();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = DaemonConfig::new()
        .section(
            "bmp",
            &format!(
                "listen = \"{}:{port}\"\nallow = [\"198.18.0.0/15\"]\n\
                 initial-table-timeout-seconds = 1\n\
                 # probes after 2 s of silence, then every second; 4 unanswered: gone\n\
                 tcp-keepalive-seconds = 2\n\
                 [[bmp.router]]\naddress = \"{}\"\nname = \"vanishing\"\n",
                ns.here, ns.there
            ),
        )
        .location(Location::new("victim", &[ORIGIN], &["203.0.113.0/24"]))
        .write(dir.path());
    let mut daemon = Daemon::start(&config);
    daemon.wait_ready();
    let prefix = [("location", "victim"), ("prefix", "203.0.113.0/24")];

    // The router in the namespace: bash's /dev/tcp sends the messages, then keeps the
    // connection open and silent.
    let peer_a = Ipv4Addr::new(192, 0, 2, 1);
    let mut bytes = initiation("edge-vanishing");
    bytes.extend(peer_up(peer_a, 64510, 64500));
    bytes.extend(route_monitoring(
        peer_a,
        64510,
        [203, 0, 113],
        Some(&[64510, ORIGIN]),
    ));
    let messages = dir.path().join("router-a.bmp");
    std::fs::write(&messages, &bytes).unwrap();
    let script = format!(
        "exec 3<>/dev/tcp/{}/{port} && cat '{}' >&3 && exec sleep 300",
        ns.here,
        messages.display()
    );
    let _router_a = ChildGuard::start(
        "router in the namespace",
        Command::new("ip").args(["netns", "exec", &ns.name, "bash", "-c", &script]),
        None,
        "apt-get install iproute2 bash",
    );

    // The healthy router, as silent after its routes, from this namespace.
    let peer_b = Ipv4Addr::new(192, 0, 2, 2);
    let mut router_b = TcpStream::connect((ns.here, port)).unwrap();
    let mut bytes = initiation("edge-steady");
    bytes.extend(peer_up(peer_b, 64511, 64500));
    bytes.extend(route_monitoring(
        peer_b,
        64511,
        [203, 0, 113],
        Some(&[64511, ORIGIN]),
    ));
    router_b.write_all(&bytes).unwrap();
    daemon.wait_metric("routewatch_prefix_visibility_peers", &prefix, 2.0);
    let e = daemon.scrape();
    assert_eq!(
        e.value("routewatch_bmp_session_up", &[("router", "vanishing")]),
        1.0
    );
    assert_eq!(
        e.value("routewatch_bmp_session_up", &[("router", "edge-steady")]),
        1.0
    );

    // The router vanishes: its link goes down, nothing is sent (no FIN, no RST).
    let gone = Instant::now();
    ip(Some(&ns.name), &["link", "set", &ns.inner_link, "down"]);
    let e = daemon.wait_metric(
        "routewatch_bmp_sessions_closed_total",
        &[("reason", "keepalive_timeout")],
        1.0,
    );
    let after = gone.elapsed();
    for other in ["tcp_close", "read_error", "idle_timeout", "truncated"] {
        assert_eq!(
            e.value("routewatch_bmp_sessions_closed_total", &[("reason", other)]),
            0.0,
            "{other}"
        );
    }
    // Probes start after 2 s of silence: the close is the probes' doing, not an error at once.
    assert!(after >= Duration::from_secs(2), "closed after {after:?}");
    // Its routes are withdrawn; the configured router's series stays, at 0, so the
    // session-down alert fires; the healthy router, as silent, keeps its session.
    let e = daemon.wait_metric("routewatch_prefix_visibility_peers", &prefix, 1.0);
    assert_eq!(
        e.value("routewatch_bmp_session_up", &[("router", "vanishing")]),
        0.0
    );
    assert_eq!(
        e.value("routewatch_bmp_session_up", &[("router", "edge-steady")]),
        1.0
    );
    assert_eq!(
        e.value("routewatch_bmp_peers_up", &[("router", "edge-steady")]),
        1.0
    );
    let log = daemon.log();
    assert!(log.contains("keepalive"), "{log}");
    drop(router_b);
    daemon.terminate_cleanly();
}
