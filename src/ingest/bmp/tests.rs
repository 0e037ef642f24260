//! Tests of the BMP feed: messages built byte by byte, framing edge cases, garbage, and the
//! recorded router streams in `fixtures/bmp/raw/`.

use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;

use super::framing::{CommonHeader, FrameError, FrameReader};
use super::message::{
    decode_message, format_distinguisher, Message, MessageType, OpenMessage, PeerDownReason,
    PeerType, RibView, StatValue, TerminationReason,
};
use super::session::{Output, PeerState, RouterSession, SessionState};
use super::update::{split_update, Family};
use crate::engine::Engine;
use crate::model::{Origin, PeerKey, RouteChange};
use crate::registry::{Location, Registry};

// ---------------------------------------------------------------------------------------------
// Byte builders (BGP)

fn bgp_msg(ty: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![0xff; 16];
    m.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
    m.push(ty);
    m.extend_from_slice(body);
    m
}

fn update(withdrawn: &[u8], attrs: &[Vec<u8>], nlri: &[u8]) -> Vec<u8> {
    let attrs: Vec<u8> = attrs.concat();
    let mut b = Vec::new();
    b.extend_from_slice(&(withdrawn.len() as u16).to_be_bytes());
    b.extend_from_slice(withdrawn);
    b.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    b.extend_from_slice(&attrs);
    b.extend_from_slice(nlri);
    bgp_msg(2, &b)
}

fn attr(flags: u8, code: u8, value: &[u8]) -> Vec<u8> {
    let mut a = vec![flags, code];
    if value.len() > 255 || flags & 0x10 != 0 {
        a[0] |= 0x10;
        a.extend_from_slice(&(value.len() as u16).to_be_bytes());
    } else {
        a.push(value.len() as u8);
    }
    a.extend_from_slice(value);
    a
}

fn origin_igp() -> Vec<u8> {
    attr(0x40, 1, &[0])
}

fn as_path4(asns: &[u32]) -> Vec<u8> {
    let mut v = vec![2, asns.len() as u8];
    for a in asns {
        v.extend_from_slice(&a.to_be_bytes());
    }
    attr(0x40, 2, &v)
}

fn as_path2(asns: &[u16]) -> Vec<u8> {
    let mut v = vec![2, asns.len() as u8];
    for a in asns {
        v.extend_from_slice(&a.to_be_bytes());
    }
    attr(0x40, 2, &v)
}

fn as4_path(asns: &[u32]) -> Vec<u8> {
    let mut v = vec![2, asns.len() as u8];
    for a in asns {
        v.extend_from_slice(&a.to_be_bytes());
    }
    attr(0xc0, 17, &v)
}

fn next_hop(ip: [u8; 4]) -> Vec<u8> {
    attr(0x40, 3, &ip)
}

fn mp_reach_v6(nh: Ipv6Addr, nlri: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 2, 1, 16];
    v.extend_from_slice(&nh.octets());
    v.push(0);
    v.extend_from_slice(nlri);
    attr(0x80, 14, &v)
}

fn mp_unreach(afi: u16, safi: u8, nlri: &[u8]) -> Vec<u8> {
    let mut v = afi.to_be_bytes().to_vec();
    v.push(safi);
    v.extend_from_slice(nlri);
    attr(0x80, 15, &v)
}

/// One NLRI entry, with a path identifier when given.
fn pfx(s: &str, path_id: Option<u32>) -> Vec<u8> {
    let net: IpNet = s.parse().unwrap();
    let mut v = Vec::new();
    if let Some(id) = path_id {
        v.extend_from_slice(&id.to_be_bytes());
    }
    v.push(net.prefix_len());
    let n = (net.prefix_len() as usize).div_ceil(8);
    match net.addr() {
        IpAddr::V4(a) => v.extend_from_slice(&a.octets()[..n]),
        IpAddr::V6(a) => v.extend_from_slice(&a.octets()[..n]),
    }
    v
}

fn cap_as4(asn: u32) -> Vec<u8> {
    let mut c = vec![65, 4];
    c.extend_from_slice(&asn.to_be_bytes());
    c
}

fn cap_mp(afi: u16, safi: u8) -> Vec<u8> {
    let mut c = vec![1, 4];
    c.extend_from_slice(&afi.to_be_bytes());
    c.extend_from_slice(&[0, safi]);
    c
}

fn cap_add_path(entries: &[(u16, u8, u8)]) -> Vec<u8> {
    let mut c = vec![69, (entries.len() * 4) as u8];
    for (afi, safi, mode) in entries {
        c.extend_from_slice(&afi.to_be_bytes());
        c.extend_from_slice(&[*safi, *mode]);
    }
    c
}

/// A BGP OPEN with one capabilities parameter.
fn open(asn: u32, id: [u8; 4], caps: &[Vec<u8>]) -> Vec<u8> {
    let caps = caps.concat();
    let my_as = u16::try_from(asn).unwrap_or(23456);
    let mut b = vec![4];
    b.extend_from_slice(&my_as.to_be_bytes());
    b.extend_from_slice(&180u16.to_be_bytes());
    b.extend_from_slice(&id);
    if caps.is_empty() {
        b.push(0);
    } else {
        b.push((caps.len() + 2) as u8);
        b.push(2);
        b.push(caps.len() as u8);
        b.extend_from_slice(&caps);
    }
    bgp_msg(1, &b)
}

// ---------------------------------------------------------------------------------------------
// Byte builders (BMP)

fn bmp(ty: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![3];
    m.extend_from_slice(&((6 + body.len()) as u32).to_be_bytes());
    m.push(ty);
    m.extend_from_slice(body);
    m
}

#[derive(Clone, Copy)]
struct Peer {
    peer_type: u8,
    flags: u8,
    rd: u64,
    address: IpAddr,
    asn: u32,
    bgp_id: [u8; 4],
    ts: u32,
    remote_port: u16,
}

const ROUTER: &str = "192.0.2.1:17001";

fn peer(address: &str, asn: u32) -> Peer {
    let address: IpAddr = address.parse().unwrap();
    Peer {
        peer_type: 0,
        flags: if address.is_ipv6() { 0x80 } else { 0 },
        rd: 0,
        address,
        asn,
        bgp_id: [198, 51, 100, 1],
        ts: 1_700_000_000,
        remote_port: 50000,
    }
}

impl Peer {
    fn flags(self, flags: u8) -> Peer {
        Peer { flags, ..self }
    }

    fn header(&self) -> Vec<u8> {
        let mut h = vec![self.peer_type, self.flags];
        h.extend_from_slice(&self.rd.to_be_bytes());
        match self.address {
            IpAddr::V4(a) => {
                h.extend_from_slice(&[0; 12]);
                h.extend_from_slice(&a.octets());
            }
            IpAddr::V6(a) => h.extend_from_slice(&a.octets()),
        }
        h.extend_from_slice(&self.asn.to_be_bytes());
        h.extend_from_slice(&self.bgp_id);
        h.extend_from_slice(&self.ts.to_be_bytes());
        h.extend_from_slice(&0u32.to_be_bytes());
        h
    }

    fn route_monitoring(&self, pdu: &[u8]) -> Vec<u8> {
        let mut b = self.header();
        b.extend_from_slice(pdu);
        bmp(0, &b)
    }

    fn peer_up(&self, sent: &[u8], received: &[u8], tlvs: &[u8]) -> Vec<u8> {
        let mut b = self.header();
        b.extend_from_slice(&[0; 12]);
        b.extend_from_slice(&[192, 0, 2, 1]);
        b.extend_from_slice(&179u16.to_be_bytes());
        b.extend_from_slice(&self.remote_port.to_be_bytes());
        b.extend_from_slice(sent);
        b.extend_from_slice(received);
        b.extend_from_slice(tlvs);
        bmp(3, &b)
    }

    fn peer_down(&self, reason: u8, data: &[u8]) -> Vec<u8> {
        let mut b = self.header();
        b.push(reason);
        b.extend_from_slice(data);
        bmp(2, &b)
    }

    fn stats(&self, count: u32, tlvs: &[u8]) -> Vec<u8> {
        let mut b = self.header();
        b.extend_from_slice(&count.to_be_bytes());
        b.extend_from_slice(tlvs);
        bmp(1, &b)
    }
}

fn tlv(ty: u16, value: &[u8]) -> Vec<u8> {
    let mut t = ty.to_be_bytes().to_vec();
    t.extend_from_slice(&(value.len() as u16).to_be_bytes());
    t.extend_from_slice(value);
    t
}

fn initiation(sys_name: &str, sys_descr: &str) -> Vec<u8> {
    bmp(
        4,
        &[tlv(1, sys_descr.as_bytes()), tlv(2, sys_name.as_bytes())].concat(),
    )
}

fn termination(reason: u16) -> Vec<u8> {
    bmp(5, &tlv(1, &reason.to_be_bytes()))
}

/// OPENs of a plain 4-byte-AS session between the router (AS 64500) and a peer.
fn plain_opens(peer_asn: u32) -> (Vec<u8>, Vec<u8>) {
    (
        open(
            64500,
            [192, 0, 2, 1],
            &[cap_mp(1, 1), cap_mp(2, 1), cap_as4(64500)],
        ),
        open(
            peer_asn,
            [198, 51, 100, 1],
            &[cap_mp(1, 1), cap_mp(2, 1), cap_as4(peer_asn)],
        ),
    )
}

// ---------------------------------------------------------------------------------------------
// Harness

fn registry(prefixes: &[&str]) -> Registry {
    Registry::new(vec![Location {
        name: "test".into(),
        provider: None,
        provider_asns: vec![],
        region: None,
        origin_asns: vec![64496],
        prefixes: prefixes.iter().map(|p| p.parse().unwrap()).collect(),
        max_length: Some(32),
        max_length_v6: Some(128),
        min_peers: 1,
        min_visibility: 0,
    }])
    .unwrap()
}

fn everything() -> Registry {
    registry(&["0.0.0.0/0", "::/0"])
}

const NOW: f64 = 1_800_000_000.0;

struct Harness {
    registry: Arc<Registry>,
    session: RouterSession,
    engine: Engine,
}

impl Harness {
    fn new(prefixes: &[&str]) -> Harness {
        let registry = Arc::new(registry(prefixes));
        Harness {
            engine: Engine::new(registry.clone()),
            registry,
            session: RouterSession::new(ROUTER.parse().unwrap(), None),
        }
    }

    /// Feeds messages (as one stream) and applies the output to the engine.
    fn feed(&mut self, msgs: &[Vec<u8>]) -> Output {
        let mut out = Output::default();
        let mut frames = FrameReader::default();
        let (session, registry) = (&mut self.session, &self.registry);
        frames
            .feed(&msgs.concat(), |f| {
                session.handle_frame(f, registry, NOW, &mut out)
            })
            .unwrap();
        frames.finish().unwrap();
        crate::pipeline::apply_output(&mut self.engine, &out);
        out
    }

    fn close(&mut self) -> Output {
        let mut out = Output::default();
        self.session.close(NOW, &mut out);
        crate::pipeline::apply_output(&mut self.engine, &out);
        out
    }

    fn visibility(&self, prefix: &str) -> u32 {
        let p: IpNet = prefix.parse().unwrap();
        let r = self.registry.lookup(&p).unwrap();
        self.engine.stats(r.prefix).visibility
    }
}

fn announced(out: &Output) -> Vec<(String, String, u32, Vec<u32>)> {
    out.batch
        .updates
        .iter()
        .filter_map(|u| match &u.change {
            RouteChange::Announce(p) => Some((
                u.peer.source.to_string(),
                u.prefix.to_string(),
                u.path_id,
                p.asns.to_vec(),
            )),
            RouteChange::Withdraw => None,
        })
        .collect()
}

fn withdrawn(out: &Output) -> Vec<(String, String, u32)> {
    out.batch
        .updates
        .iter()
        .filter(|u| u.change == RouteChange::Withdraw)
        .map(|u| (u.peer.source.to_string(), u.prefix.to_string(), u.path_id))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Messages built byte by byte

#[test]
fn initiation_names_the_router_and_the_configured_name_wins() {
    let mut h = Harness::new(&["203.0.113.0/24"]);
    assert_eq!(h.session.label(), ROUTER);
    let out = h.feed(&[initiation("edge1.example", "FRRouting 8.4")]);
    assert!(out.is_empty());
    assert_eq!(h.session.sys_name(), Some("edge1.example"));
    assert_eq!(h.session.sys_descr(), Some("FRRouting 8.4"));
    assert_eq!(h.session.label(), "edge1.example");
    assert_eq!(h.session.source_prefix(), "bmp/192.0.2.1:17001");
    assert_eq!(h.session.counts().get(MessageType::Initiation), 1);

    let s = RouterSession::new(ROUTER.parse().unwrap(), Some("core-a".into()));
    assert_eq!(s.label(), "core-a");
    let v6 = RouterSession::new("[2001:db8::1]:20".parse().unwrap(), None);
    assert_eq!(v6.source_prefix(), "bmp/[2001:db8::1]:20");

    // NULs, control characters and overlong names are cleaned up.
    let mut h = Harness::new(&["203.0.113.0/24"]);
    let long = "r".repeat(300);
    h.feed(&[initiation(&format!("{long}\0\0"), "x\u{7}y\n")]);
    assert_eq!(h.session.sys_name().unwrap().len(), 255);
    assert_eq!(h.session.sys_descr(), Some("xy"));
}

#[test]
fn add_path_capabilities_decide_path_ids_per_family_and_direction() {
    let mut h = Harness::new(&["203.0.113.0/24", "2001:db8:100::/48"]);
    let p = peer("198.51.100.1", 4_200_000_000);
    // The router (sent OPEN) can receive multiple paths for IPv4 and IPv6 unicast; the peer
    // (received OPEN) sends them for IPv4 only: path ids in IPv4 NLRI, none in IPv6.
    let sent = open(
        64500,
        [192, 0, 2, 1],
        &[
            cap_mp(1, 1),
            cap_mp(2, 1),
            cap_as4(64500),
            cap_add_path(&[(1, 1, 1), (2, 1, 1)]),
        ],
    );
    let received = open(
        4_200_000_000,
        [198, 51, 100, 1],
        &[
            cap_mp(1, 1),
            cap_mp(2, 1),
            cap_as4(4_200_000_000),
            cap_add_path(&[(1, 1, 3)]),
        ],
    );
    let nlri = [
        pfx("203.0.113.0/24", Some(1)),
        pfx("203.0.113.0/24", Some(7)),
    ]
    .concat();
    let path = as_path4(&[4_200_000_000, 64496]);
    let out = h.feed(&[
        p.peer_up(&sent, &received, &[]),
        p.route_monitoring(&update(
            &[],
            &[origin_igp(), path.clone(), next_hop([198, 51, 100, 1])],
            &nlri,
        )),
        // One UPDATE mixing both families: IPv4 withdrawal with a path id, IPv6 without.
        p.route_monitoring(&update(
            &pfx("203.0.113.0/24", Some(7)),
            &[
                origin_igp(),
                path,
                mp_reach_v6(Ipv6Addr::LOCALHOST, &pfx("2001:db8:100::/48", None)),
            ],
            &[],
        )),
    ]);
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    let src = "bmp/192.0.2.1:17001/adj-in-pre".to_string();
    let path = vec![4_200_000_000, 64496];
    assert_eq!(
        announced(&out),
        vec![
            (src.clone(), "203.0.113.0/24".into(), 1, path.clone()),
            (src.clone(), "203.0.113.0/24".into(), 7, path.clone()),
            (src.clone(), "2001:db8:100::/48".into(), 0, path),
        ]
    );
    assert_eq!(withdrawn(&out), vec![(src, "203.0.113.0/24".into(), 7)]);
    assert_eq!(out.batch.processed, 4);
    // Two paths from one peer: tracked as two routes, the peer counted once.
    assert_eq!(h.engine.tracked_routes(), 2);
    assert_eq!(h.visibility("203.0.113.0/24"), 1);

    let info = &h.session.peers()[0];
    assert_eq!(info.four_octet_as(), Some(true));
    assert!(info.add_path(RibView::AdjRibInPre, Family::IPV4_UNICAST));
    assert!(info.add_path(RibView::AdjRibInPost, Family::IPV4_UNICAST));
    assert!(!info.add_path(RibView::AdjRibInPre, Family::IPV6_UNICAST));
    // Towards the peer the router never offered to send, so Adj-RIB-Out has no path ids.
    assert!(!info.add_path(RibView::AdjRibOutPre, Family::IPV4_UNICAST));
    assert_eq!(
        info.negotiated_families(),
        vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST]
    );
}

#[test]
fn add_path_receive_on_both_sides_means_no_path_ids() {
    // As in the NetGauze UPA capture (FRR): both OPENs say "receive" only.
    let mut h = Harness::new(&["10.0.0.0/8"]);
    let p = peer("172.20.0.12", 65002);
    let sent = open(
        65001,
        [1, 1, 1, 1],
        &[cap_mp(1, 1), cap_as4(65001), cap_add_path(&[(1, 1, 1)])],
    );
    let received = open(
        65002,
        [2, 2, 2, 2],
        &[cap_mp(1, 1), cap_as4(65002), cap_add_path(&[(1, 1, 1)])],
    );
    let out = h.feed(&[
        p.peer_up(&sent, &received, &tlv(0, b"R2")),
        p.route_monitoring(&update(
            &[],
            &[
                origin_igp(),
                as_path4(&[65002, 65001]),
                next_hop([172, 20, 0, 12]),
            ],
            &[pfx("10.0.0.0/16", None), pfx("10.1.0.0/24", None)].concat(),
        )),
    ]);
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    let got: Vec<_> = announced(&out)
        .into_iter()
        .map(|a| (a.1, a.2, a.3))
        .collect();
    assert_eq!(
        got,
        vec![
            ("10.0.0.0/16".to_string(), 0, vec![65002, 65001]),
            ("10.1.0.0/24".to_string(), 0, vec![65002, 65001]),
        ]
    );
    let up = h.session.peers()[0].peer_up.as_ref().unwrap();
    assert_eq!(up.text.as_deref(), Some("R2"));
    assert_eq!((up.local_port, up.remote_port), (179, 50000));
}

#[test]
fn two_byte_as_peer_uses_the_a_flag_and_merges_as4_path() {
    let mut h = Harness::new(&["203.0.113.0/24", "198.18.0.0/15"]);
    // An old BGP speaker: no 4-octet AS capability on its side; the router forwards its paths
    // as received and sets the A flag.
    let p = peer("198.51.100.9", 64511).flags(0x20);
    let sent = open(64500, [192, 0, 2, 1], &[cap_mp(1, 1), cap_as4(64500)]);
    let received = open(64511, [198, 51, 100, 9], &[cap_mp(1, 1)]);
    let out = h.feed(&[
        p.peer_up(&sent, &received, &[]),
        p.route_monitoring(&update(
            &[],
            &[
                origin_igp(),
                as_path2(&[64511, 64496]),
                next_hop([198, 51, 100, 9]),
            ],
            &pfx("203.0.113.0/24", None),
        )),
        // A 4-byte origin behind AS_TRANS, with the AS4_PATH carrying the truth (RFC 6793).
        p.route_monitoring(&update(
            &[],
            &[
                origin_igp(),
                as_path2(&[64511, 23456]),
                next_hop([198, 51, 100, 9]),
                as4_path(&[64511, 4_200_000_001]),
            ],
            &pfx("198.18.0.0/15", None),
        )),
    ]);
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    let got: Vec<_> = announced(&out).into_iter().map(|a| (a.1, a.3)).collect();
    assert_eq!(
        got,
        vec![
            ("203.0.113.0/24".to_string(), vec![64511, 64496]),
            ("198.18.0.0/15".to_string(), vec![64511, 4_200_000_001]),
        ]
    );
    assert_eq!(h.session.peers()[0].four_octet_as(), Some(false));
    assert_eq!(h.visibility("203.0.113.0/24"), 1);

    // A router that forgot the A flag: the path does not read as 4-byte, the Peer Up shows a
    // 2-byte session, so it is read as 2-byte (and the oddity counted).
    let mut h = Harness::new(&["203.0.113.0/24"]);
    let p = peer("198.51.100.9", 64511);
    let out = h.feed(&[
        p.peer_up(&sent, &received, &[]),
        p.route_monitoring(&update(
            &[],
            &[
                origin_igp(),
                as_path2(&[64511, 64496, 64497]),
                next_hop([198, 51, 100, 9]),
            ],
            &pfx("203.0.113.0/24", None),
        )),
    ]);
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(announced(&out)[0].3, vec![64511, 64496, 64497]);
    assert_eq!(
        h.session.anomalies().get("two_byte_as_path_without_a_flag"),
        Some(&1)
    );

    // Without a Peer Up nothing says the session is 2-byte: the path does not decode, the
    // announcement is treated as withdrawn and counted, never stored with a garbage path.
    let mut h = Harness::new(&["203.0.113.0/24"]);
    let p = peer("198.51.100.9", 64511);
    let out = h.feed(&[p.route_monitoring(&update(
        &[],
        &[
            origin_igp(),
            as_path2(&[64511, 64496, 64497]),
            next_hop([198, 51, 100, 9]),
        ],
        &pfx("203.0.113.0/24", None),
    ))]);
    assert_eq!(out.batch.errors.get("malformed_as_path"), Some(&1));
    assert_eq!(withdrawn(&out).len(), 1);
    assert_eq!(h.engine.tracked_routes(), 0);
}

#[test]
fn loc_rib_peer_with_f_flag_and_instance_distinguisher() {
    let mut h = Harness::new(&["203.0.113.0/24"]);
    // RFC 9069: peer type 3, zero address, the router's own AS and id, F = 0x80 (filtered).
    let global = Peer {
        peer_type: 3,
        flags: 0x80,
        rd: 0,
        address: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        asn: 64500,
        bgp_id: [192, 0, 2, 1],
        ts: 0,
        remote_port: 0,
    };
    let vrf = Peer {
        rd: (2u64 << 48) | (4_200_000_000u64 << 16) | 12,
        flags: 0,
        ..global
    };
    // Fabricated OPENs; ADD-PATH present for IPv4 unicast (direction bits ignored for Loc-RIB).
    let o = open(
        64500,
        [192, 0, 2, 1],
        &[cap_mp(1, 1), cap_as4(64500), cap_add_path(&[(1, 1, 1)])],
    );
    let path = as_path4(&[64501, 64496]);
    let out = h.feed(&[
        global.peer_up(&o, &o, &tlv(3, b"global")),
        global.route_monitoring(&update(
            &[],
            &[origin_igp(), path.clone(), next_hop([192, 0, 2, 9])],
            &pfx("203.0.113.0/24", Some(3)),
        )),
        vrf.route_monitoring(&update(
            &[],
            &[origin_igp(), path, next_hop([192, 0, 2, 9])],
            &pfx("203.0.113.0/24", None),
        )),
    ]);
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(
        announced(&out),
        vec![
            (
                "bmp/192.0.2.1:17001/loc-rib".into(),
                "203.0.113.0/24".into(),
                3,
                vec![64501, 64496]
            ),
            (
                "bmp/192.0.2.1:17001/loc-rib/rd=4200000000:12".into(),
                "203.0.113.0/24".into(),
                0,
                vec![64501, 64496]
            ),
        ]
    );
    let u = &out.batch.updates[0];
    assert_eq!(u.peer.address, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    assert_eq!(u.peer.asn, 64500);
    // Zero timestamps: the session's clock stands in.
    assert_eq!(u.timestamp, NOW);
    let peers = h.session.peers();
    assert_eq!(peers[0].id.peer_type, PeerType::LocRib);
    assert_eq!(
        peers[0].peer_up.as_ref().unwrap().table_name.as_deref(),
        Some("global")
    );
    assert_eq!(
        h.session
            .anomalies()
            .get("route_monitoring_without_peer_up"),
        Some(&1)
    );
    assert_eq!(h.visibility("203.0.113.0/24"), 2);
}

#[test]
fn distinguishers_and_views_are_separate_route_sources() {
    assert_eq!(format_distinguisher((64499u64 << 32) | 74), "64499:74");
    assert_eq!(
        format_distinguisher((1u64 << 48) | (0xc000_0201u64 << 16) | 7),
        "192.0.2.1:7"
    );
    assert_eq!(
        format_distinguisher((2u64 << 48) | (65543u64 << 16) | 105),
        "65543:105"
    );
    assert_eq!(
        format_distinguisher(0x0009_0000_0000_0001),
        "0x0009000000000001"
    );

    let mut h = Harness::new(&["203.0.113.0/24"]);
    let pre = peer("198.51.100.1", 64510);
    let post = pre.flags(0x40);
    let out_pre = pre.flags(0x10);
    let out_post = pre.flags(0x50);
    let rd = Peer {
        peer_type: 1,
        rd: (64499u64 << 32) | 74,
        ..post
    };
    let local = Peer {
        peer_type: 2,
        rd: 5,
        ..pre
    };
    let ann = |asns: &[u32]| {
        update(
            &[],
            &[origin_igp(), as_path4(asns), next_hop([198, 51, 100, 1])],
            &pfx("203.0.113.0/24", None),
        )
    };
    let (s, r) = plain_opens(64510);
    let out = h.feed(&[
        pre.peer_up(&s, &r, &[]),
        pre.route_monitoring(&ann(&[64510, 64496])),
        post.route_monitoring(&ann(&[64510, 64497])),
        out_pre.route_monitoring(&ann(&[64500, 64510, 64496])),
        out_post.route_monitoring(&ann(&[64500, 64510, 64496])),
        rd.route_monitoring(&ann(&[64510, 64496])),
        local.route_monitoring(&ann(&[64510, 64496])),
    ]);
    let sources: Vec<String> = announced(&out).into_iter().map(|a| a.0).collect();
    assert_eq!(
        sources,
        vec![
            "bmp/192.0.2.1:17001/adj-in-pre",
            "bmp/192.0.2.1:17001/adj-in-post",
            "bmp/192.0.2.1:17001/adj-out-pre",
            "bmp/192.0.2.1:17001/adj-out-post",
            "bmp/192.0.2.1:17001/adj-in-post/rd=64499:74",
            "bmp/192.0.2.1:17001/adj-in-pre/local=0x0000000000000005",
        ]
    );
    assert_eq!(h.engine.tracked_routes(), 6);
    // The post-policy withdrawal leaves the pre-policy route alone.
    let out = h.feed(&[post.route_monitoring(&update(&pfx("203.0.113.0/24", None), &[], &[]))]);
    assert_eq!(withdrawn(&out).len(), 1);
    assert_eq!(h.engine.tracked_routes(), 5);
    // Three peers in the table (views share their peer), the global one with four views.
    assert_eq!(h.session.peers().len(), 3);
    assert_eq!(h.session.peers()[0].views.len(), 4);
}

#[test]
fn ipv6_mp_reach_announcement_and_mp_unreach_withdrawal() {
    let mut h = Harness::new(&["2001:db8:100::/48"]);
    let p = peer("2001:db8::2", 64510);
    let (s, r) = plain_opens(64510);
    let nh: Ipv6Addr = "2001:db8::2".parse().unwrap();
    let out = h.feed(&[
        p.peer_up(&s, &r, &[]),
        p.route_monitoring(&update(
            &[],
            &[
                origin_igp(),
                as_path4(&[64510, 64496]),
                mp_reach_v6(
                    nh,
                    &[
                        pfx("2001:db8:100::/48", None),
                        pfx("2001:db8:100:8000::/49", None),
                        pfx("2001:db8:200::/48", None),
                    ]
                    .concat(),
                ),
            ],
            &[],
        )),
    ]);
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(out.batch.processed, 3);
    assert_eq!(
        announced(&out).len(),
        2,
        "the unregistered prefix is dropped"
    );
    assert_eq!(
        out.batch.updates[0].peer.address,
        IpAddr::V6("2001:db8::2".parse().unwrap())
    );
    assert_eq!(h.visibility("2001:db8:100::/48"), 1);

    let out = h.feed(&[p.route_monitoring(&update(
        &[],
        &[mp_unreach(
            2,
            1,
            &[
                pfx("2001:db8:100::/48", None),
                pfx("2001:db8:100:8000::/49", None),
            ]
            .concat(),
        )],
        &[],
    ))]);
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(withdrawn(&out).len(), 2);
    assert_eq!(h.visibility("2001:db8:100::/48"), 0);
    assert_eq!(h.engine.tracked_routes(), 0);
    let f = &h.session.peers()[0].views[0].families;
    assert_eq!(
        (f[0].family, f[0].announced, f[0].withdrawn),
        (Family::IPV6_UNICAST, 3, 2)
    );
}

#[test]
fn end_of_rib_marks_the_initial_table_complete() {
    let mut h = Harness::new(&["203.0.113.0/24"]);
    let p = peer("198.51.100.1", 64510);
    let (s, r) = plain_opens(64510);
    let v4 = update(
        &[],
        &[
            origin_igp(),
            as_path4(&[64510]),
            next_hop([198, 51, 100, 1]),
        ],
        &pfx("203.0.113.0/24", None),
    );
    let v6 = update(
        &[],
        &[
            origin_igp(),
            as_path4(&[64510]),
            mp_reach_v6(Ipv6Addr::LOCALHOST, &pfx("2001:db8::/32", None)),
        ],
        &[],
    );
    h.feed(&[
        p.peer_up(&s, &r, &[]),
        p.route_monitoring(&v4),
        p.route_monitoring(&v6),
    ]);
    assert!(!h.session.initial_tables_complete());
    let eor_v4 = update(&[], &[], &[]);
    let eor_v6 = update(&[], &[mp_unreach(2, 1, &[])], &[]);
    assert_eq!(
        split_update(&eor_v4).unwrap().end_of_rib(),
        Some(Family::IPV4_UNICAST)
    );
    assert_eq!(
        split_update(&eor_v6).unwrap().end_of_rib(),
        Some(Family::IPV6_UNICAST)
    );
    // An MP_UNREACH with prefixes, or with another attribute beside it, is not an End-of-RIB.
    assert_eq!(
        split_update(&update(
            &[],
            &[mp_unreach(2, 1, &pfx("2001:db8::/32", None))],
            &[]
        ))
        .unwrap()
        .end_of_rib(),
        None
    );
    assert_eq!(
        split_update(&update(&[], &[origin_igp(), mp_unreach(2, 1, &[])], &[]))
            .unwrap()
            .end_of_rib(),
        None
    );

    let out = h.feed(&[p.route_monitoring(&eor_v4)]);
    assert!(out.is_empty());
    let info = &h.session.peers()[0];
    assert!(info.end_of_rib(RibView::AdjRibInPre, Family::IPV4_UNICAST));
    assert!(!info.initial_table_complete());
    h.feed(&[p.route_monitoring(&eor_v6)]);
    assert!(h.session.peers()[0].initial_table_complete());
    assert!(h.session.initial_tables_complete());
    // A non-unicast family's End-of-RIB is recorded too (VPNv4 here).
    h.feed(&[p
        .flags(0x40)
        .route_monitoring(&update(&[], &[mp_unreach(1, 128, &[])], &[]))]);
    assert!(h.session.peers()[0].end_of_rib(RibView::AdjRibInPost, Family { afi: 1, safi: 128 }));
    assert!(h.session.initial_tables_complete());
    // A new Peer Up (after a Peer Down) starts the initial table again.
    h.feed(&[p.peer_down(4, &[]), p.peer_up(&s, &r, &[])]);
    assert!(!h.session.initial_tables_complete());
}

#[test]
fn peer_down_withdraws_every_view_of_that_peer_only() {
    let mut h = Harness::new(&["203.0.113.0/24"]);
    let a = peer("198.51.100.1", 64510);
    let b = peer("198.51.100.2", 64511);
    let (s, r) = plain_opens(64510);
    let ann = |asn: u32| {
        update(
            &[],
            &[
                origin_igp(),
                as_path4(&[asn, 64496]),
                next_hop([198, 51, 100, 1]),
            ],
            &pfx("203.0.113.0/24", None),
        )
    };
    h.feed(&[
        a.peer_up(&s, &r, &[]),
        b.peer_up(&s, &r, &[]),
        a.route_monitoring(&ann(64510)),
        a.flags(0x40).route_monitoring(&ann(64510)),
        b.route_monitoring(&ann(64511)),
    ]);
    assert_eq!(h.visibility("203.0.113.0/24"), 3);
    // Reason 3: NOTIFICATION Cease (6) / administrative shutdown (2) follows.
    let out = h.feed(&[a.peer_down(3, &bgp_msg(3, &[6, 2]))]);
    let keys: Vec<String> = out
        .peer_down
        .iter()
        .map(|e| e.key.source.to_string())
        .collect();
    assert_eq!(
        keys,
        vec![
            "bmp/192.0.2.1:17001/adj-in-pre",
            "bmp/192.0.2.1:17001/adj-in-post"
        ]
    );
    assert!(out
        .peer_down
        .iter()
        .all(|e| e.key.address.to_string() == "198.51.100.1"));
    assert_eq!(h.visibility("203.0.113.0/24"), 1);
    assert_eq!(h.engine.tracked_routes(), 1);
    let info = &h.session.peers()[0];
    assert_eq!(info.state, PeerState::Down);
    assert_eq!(
        info.down_reason,
        Some(PeerDownReason::RemoteNotification(Some((6, 2))))
    );
    assert_eq!(h.session.peers_up(), 1);

    // Order inside one output: announce, down, up, announce → the route is there at the end.
    let out = h.feed(&[
        a.peer_up(&s, &r, &[]),
        a.route_monitoring(&ann(64510)),
        a.peer_down(2, &[0, 7]),
        a.peer_up(&s, &r, &[]),
        a.route_monitoring(&ann(64510)),
    ]);
    assert_eq!(out.peer_down.len(), 2);
    assert_eq!(out.peer_down[0].after, 1);
    assert_eq!(h.engine.tracked_routes(), 2);
    assert_eq!(
        h.session.peers()[0].down_reason,
        None,
        "the last Peer Up cleared it"
    );

    // A Peer Down whose data is garbage still takes the peer down.
    let out = h.feed(&[b.peer_down(1, &[1, 2, 3])]);
    assert_eq!(out.peer_down.len(), 1);
    assert_eq!(
        h.session.peers()[1].down_reason,
        Some(PeerDownReason::LocalNotification(None))
    );
    assert_eq!(h.engine.tracked_routes(), 1);
}

#[test]
fn repeated_peer_up_of_one_session_keeps_routes_a_new_session_does_not() {
    let mut h = Harness::new(&["203.0.113.0/24"]);
    let p = peer("198.51.100.1", 64510);
    let (s, r) = plain_opens(64510);
    let ann = update(
        &[],
        &[
            origin_igp(),
            as_path4(&[64510, 64496]),
            next_hop([198, 51, 100, 1]),
        ],
        &pfx("203.0.113.0/24", None),
    );
    // One Peer Up per view (as Huawei VRP does), the second after routes arrived.
    let out = h.feed(&[
        p.peer_up(&s, &r, &[]),
        p.route_monitoring(&ann),
        p.route_monitoring(&update(&[], &[], &[])),
        p.flags(0x40).peer_up(&s, &r, &[]),
    ]);
    assert!(out.peer_down.is_empty());
    assert_eq!(h.engine.tracked_routes(), 1);
    assert!(h.session.peers()[0].initial_table_complete());
    assert!(h.session.anomalies().is_empty());
    // The BGP session re-established (new remote port) without a Peer Down: the old session's
    // routes go, the new table starts.
    let again = Peer {
        remote_port: 50001,
        ..p
    };
    let out = h.feed(&[again.peer_up(&s, &r, &[])]);
    assert_eq!(out.peer_down.len(), 1);
    assert_eq!(h.engine.tracked_routes(), 0);
    assert!(!h.session.peers()[0].initial_table_complete());
    assert_eq!(h.session.anomalies().get("peer_up_while_up"), Some(&1));

    // Loc-RIB Peer Ups per address family (Huawei): the capabilities are united, so ADD-PATH
    // announced in the IPv6 one still holds after the IPv4 one.
    let mut h = Harness::new(&["2001:db8:100::/48"]);
    let loc = Peer {
        peer_type: 3,
        flags: 0,
        rd: 0,
        address: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        asn: 64500,
        bgp_id: [192, 0, 2, 1],
        ts: 0,
        remote_port: 0,
    };
    let v6 = open(
        64500,
        [192, 0, 2, 1],
        &[cap_mp(2, 1), cap_as4(64500), cap_add_path(&[(2, 1, 3)])],
    );
    let v4 = open(64500, [192, 0, 2, 1], &[cap_mp(1, 1), cap_as4(64500)]);
    let out = h.feed(&[
        loc.peer_up(&v6, &v6, &[]),
        loc.peer_up(&v4, &v4, &[]),
        loc.route_monitoring(&update(
            &[],
            &[
                origin_igp(),
                as_path4(&[64496]),
                mp_reach_v6(Ipv6Addr::LOCALHOST, &pfx("2001:db8:100::/48", Some(9))),
            ],
            &[],
        )),
    ]);
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(out.batch.updates[0].path_id, 9);
    let info = &h.session.peers()[0];
    assert_eq!(
        info.negotiated_families(),
        vec![Family::IPV6_UNICAST, Family::IPV4_UNICAST]
    );
    assert!(info.add_path(RibView::LocRib, Family::IPV6_UNICAST));
    assert!(!info.add_path(RibView::LocRib, Family::IPV4_UNICAST));
}

#[test]
fn termination_and_close_withdraw_every_peer_once() {
    let mut h = Harness::new(&["203.0.113.0/24"]);
    let a = peer("198.51.100.1", 64510);
    let b = peer("2001:db8::2", 64511);
    let (s, r) = plain_opens(64510);
    let ann = update(
        &[],
        &[
            origin_igp(),
            as_path4(&[64510, 64496]),
            next_hop([198, 51, 100, 1]),
        ],
        &pfx("203.0.113.0/24", None),
    );
    h.feed(&[
        a.peer_up(&s, &r, &[]),
        b.peer_up(&s, &r, &[]),
        a.route_monitoring(&ann),
        b.route_monitoring(&ann),
    ]);
    assert_eq!(h.engine.tracked_routes(), 2);
    let out = h.feed(&[termination(0), a.route_monitoring(&ann)]);
    assert_eq!(out.peer_down.len(), 2);
    assert!(
        out.batch.updates.is_empty(),
        "messages after the Termination are ignored"
    );
    assert_eq!(h.engine.tracked_routes(), 0);
    assert_eq!(h.session.state(), SessionState::Terminated);
    assert_eq!(
        h.session.termination().unwrap().reason,
        Some(TerminationReason::AdminClose)
    );
    assert_eq!(
        h.session.anomalies().get("message_after_termination"),
        Some(&1)
    );
    assert!(h.close().peer_down.is_empty());
    assert_eq!(h.session.state(), SessionState::Closed);

    // TCP close without a Termination.
    let mut h = Harness::new(&["203.0.113.0/24"]);
    h.feed(&[
        a.peer_up(&s, &r, &[]),
        a.route_monitoring(&ann),
        a.flags(0x40).route_monitoring(&ann),
    ]);
    assert_eq!(h.engine.tracked_routes(), 2);
    assert_eq!(h.close().peer_down.len(), 2);
    assert_eq!(h.engine.tracked_routes(), 0);
    assert_eq!(h.session.peers_up(), 0);
    assert!(h.close().peer_down.is_empty());
}

#[test]
fn prefilter_builds_nothing_for_unmatched_routes() {
    let mut h = Harness::new(&["203.0.113.0/24"]);
    let p = peer("198.51.100.1", 64510);
    // A broken AS_PATH on an unregistered prefix: never decoded, so never an error.
    let broken = attr(0x40, 2, &[2, 9, 0, 0]);
    let out = h.feed(&[p.route_monitoring(&update(
        &[],
        &[origin_igp(), broken.clone()],
        &pfx("10.0.0.0/8", None),
    ))]);
    assert_eq!(out.batch.processed, 1);
    assert!(out.batch.updates.is_empty());
    assert!(out.errors.is_empty());
    // On a registered prefix it is decoded, fails, and the announcement counts as withdrawn.
    let out = h.feed(&[p.route_monitoring(&update(
        &[],
        &[origin_igp(), broken],
        &pfx("203.0.113.0/24", None),
    ))]);
    assert_eq!(withdrawn(&out).len(), 1);
    assert_eq!(out.batch.errors.get("malformed_as_path"), Some(&1));
    // No AS_PATH at all: the same.
    let out =
        h.feed(&[p.route_monitoring(&update(&[], &[origin_igp()], &pfx("203.0.113.0/24", None)))]);
    assert_eq!(withdrawn(&out).len(), 1);
    assert_eq!(h.session.errors().get("malformed_as_path"), Some(&2));
    // The origin of a path ending in an AS_SET is ambiguous.
    let set_path = attr(
        0x40,
        2,
        &[
            2, 1, 0, 0, 0xfb, 0xfe, 1, 2, 0, 0, 0xfb, 0xf0, 0, 0, 0xfb, 0xf1,
        ],
    );
    let out = h.feed(&[p.route_monitoring(&update(
        &[],
        &[origin_igp(), set_path],
        &pfx("203.0.113.0/24", None),
    ))]);
    match &out.batch.updates[0].change {
        RouteChange::Announce(path) => {
            assert_eq!(path.origin, Origin::Set(vec![64496, 64497].into()))
        }
        c => panic!("{c:?}"),
    }
}

#[test]
fn bad_route_monitoring_messages_are_counted_and_skipped() {
    let mut h = Harness::new(&["0.0.0.0/0"]);
    let p = peer("198.51.100.1", 64510);
    let good = update(
        &[],
        &[origin_igp(), as_path4(&[64510]), next_hop([1, 2, 3, 4])],
        &pfx("203.0.113.0/24", None),
    );
    let mut trailing = good.clone();
    trailing.extend_from_slice(&[0, 0]);
    let cut_nlri = update(
        &[],
        &[origin_igp(), as_path4(&[64510]), next_hop([1, 2, 3, 4])],
        &[pfx("192.0.2.0/24", None), vec![24, 198]].concat(),
    );
    let other_type = Peer { peer_type: 9, ..p };
    let out = h.feed(&[
        p.route_monitoring(&bgp_msg(4, &[])),        // KEEPALIVE
        p.route_monitoring(&good[..good.len() - 1]), // UPDATE length beyond the message
        p.route_monitoring(&trailing),               // used, trailing bytes counted
        p.route_monitoring(&cut_nlri),               // nothing of it is used
        other_type.route_monitoring(&good),
        bmp(0, &p.header()[..30]), // per-peer header cut short
    ]);
    let labels: Vec<&str> = out.errors.iter().map(|e| e.label).collect();
    assert_eq!(
        labels,
        vec![
            "not_update",
            "malformed_update",
            "trailing_data",
            "malformed_update",
            "unknown_peer_type",
            "malformed_route_monitoring"
        ]
    );
    assert_eq!(announced(&out).len(), 1);
    assert_eq!(h.session.counts().get(MessageType::RouteMonitoring), 6);
    assert_eq!(h.session.errors().values().sum::<u64>(), 6);
}

#[test]
fn statistics_peer_down_and_open_details_decode() {
    let p = peer("198.51.100.1", 64510);
    let stats = [
        tlv(1, &5u32.to_be_bytes()),
        tlv(7, &9u64.to_be_bytes()),
        tlv(10, &[&[0, 2, 1][..], &3u64.to_be_bytes()].concat()),
        tlv(65531, &[1, 2]),
    ]
    .concat();
    let msg = p.stats(4, &stats);
    match decode_message(&msg).unwrap() {
        Message::StatisticsReport(s) => {
            assert_eq!(s.count, 4);
            assert_eq!(
                s.stats,
                vec![
                    (1, StatValue::Counter(5)),
                    (7, StatValue::Gauge(9)),
                    (10, StatValue::FamilyGauge(Family::IPV6_UNICAST, 3)),
                    (65531, StatValue::Other(2)),
                ]
            );
        }
        m => panic!("{m:?}"),
    }
    // A huge declared count with no data is an error, not a huge allocation.
    assert!(decode_message(&p.stats(u32::MAX, &[])).is_err());

    match decode_message(&p.peer_down(2, &[0, 24])).unwrap() {
        Message::PeerDown(d) => assert_eq!(d.reason, PeerDownReason::LocalNoNotification(Some(24))),
        m => panic!("{m:?}"),
    }
    match decode_message(&bmp(2, &p.header())).unwrap() {
        Message::PeerDown(d) => assert_eq!(d.reason, PeerDownReason::Other(0)),
        m => panic!("{m:?}"),
    }

    // RFC 9072 extended optional parameters.
    let caps = [cap_as4(4_200_000_000), cap_add_path(&[(2, 1, 2)])].concat();
    let mut body = vec![4, 0x5b, 0xa0, 0, 90, 10, 0, 0, 1, 255, 255];
    body.extend_from_slice(&((caps.len() + 3) as u16).to_be_bytes());
    body.push(2);
    body.extend_from_slice(&(caps.len() as u16).to_be_bytes());
    body.extend_from_slice(&caps);
    let (o, n) = OpenMessage::decode(&bgp_msg(1, &body)).unwrap();
    assert_eq!(n, 19 + body.len());
    assert_eq!(o.asn(), 4_200_000_000);
    assert_eq!(o.add_path_mode(Family::IPV6_UNICAST), 2);
    assert_eq!(o.bgp_id, Ipv4Addr::new(10, 0, 0, 1));

    // Unknown message types are counted, nothing else.
    let mut h = Harness::new(&["0.0.0.0/0"]);
    let out = h.feed(&[bmp(42, &[1, 2, 3]), bmp(6, &p.header())]);
    assert!(out.is_empty());
    assert_eq!(h.session.counts().get(MessageType::Unknown), 1);
    assert_eq!(h.session.counts().get(MessageType::RouteMirroring), 1);
}

// ---------------------------------------------------------------------------------------------
// Framing

fn frames_of(reader: &mut FrameReader, chunks: &[&[u8]]) -> Result<Vec<Vec<u8>>, FrameError> {
    let mut got = Vec::new();
    for c in chunks {
        reader.feed(c, |f| got.push(f.to_vec()))?;
    }
    reader.finish()?;
    Ok(got)
}

fn sample_stream() -> Vec<Vec<u8>> {
    let p = peer("198.51.100.1", 64510);
    let (s, r) = plain_opens(64510);
    vec![
        initiation("r1", "test"),
        p.peer_up(&s, &r, &[]),
        p.route_monitoring(&update(
            &[],
            &[origin_igp(), as_path4(&[64510]), next_hop([1, 2, 3, 4])],
            &pfx("203.0.113.0/24", None),
        )),
        bmp(4, &[]),
        p.stats(1, &tlv(1, &1u32.to_be_bytes())),
        p.peer_down(4, &[]),
        termination(1),
    ]
}

#[test]
fn oversized_length_is_rejected_before_any_body_is_buffered() {
    let mut r = FrameReader::new(4096);
    let mut header = vec![3];
    header.extend_from_slice(&4097u32.to_be_bytes());
    header.push(0);
    // Only the header arrives: the error comes at once, with nothing kept.
    let e = r.feed(&header, |_| panic!("no frame")).unwrap_err();
    assert_eq!(
        e,
        FrameError::BadLength {
            length: 4097,
            max: 4096
        }
    );
    assert_eq!(e.label(), "bad_length");
    assert_eq!(r.buffered(), 0);
    assert_eq!(r.feed(&[0; 100], |_| panic!("no frame")), Err(e));
    assert_eq!(r.buffered(), 0);
    assert_eq!(r.finish(), Err(e));

    // The maximum itself is fine; a length of 4 GiB or below the header is not.
    let mut r = FrameReader::new(4096);
    let ok = bmp(4, &vec![0; 4090]);
    assert_eq!(frames_of(&mut r, &[&ok]).unwrap().len(), 1);
    for bad in [u32::MAX, 5, 0] {
        let mut r = FrameReader::default();
        let mut h = vec![3];
        h.extend_from_slice(&bad.to_be_bytes());
        h.push(4);
        // Split inside the header too.
        assert!(matches!(
            frames_of(&mut r, &[&h[..3], &h[3..]]),
            Err(FrameError::BadLength { .. })
        ));
    }
    // Messages before the bad one in the same read are delivered.
    let mut r = FrameReader::default();
    let mut stream = initiation("r1", "x");
    stream.extend_from_slice(&[3, 0xff, 0xff, 0xff, 0xff, 0]);
    let mut n = 0;
    assert!(r.feed(&stream, |_| n += 1).is_err());
    assert_eq!(n, 1);
}

#[test]
fn version_other_than_3_is_rejected() {
    for v in [1u8, 2, 4, 0, 255] {
        let mut msg = initiation("r1", "x");
        msg[0] = v;
        let mut r = FrameReader::default();
        let e = frames_of(&mut r, &[&msg]).unwrap_err();
        assert_eq!(e, FrameError::UnsupportedVersion(v));
        assert_eq!(e.label(), "unsupported_version");
        assert!(decode_message(&msg).is_err());
    }
    // A version-1 header in the middle of a stream stops it there.
    let mut stream = sample_stream().concat();
    let second = sample_stream()[0].len();
    stream[second] = 1;
    let mut got = 0;
    let mut r = FrameReader::default();
    assert_eq!(
        r.feed(&stream, |_| got += 1),
        Err(FrameError::UnsupportedVersion(1))
    );
    assert_eq!(got, 1);
}

#[test]
fn frames_split_across_reads_at_every_byte_boundary() {
    let msgs = sample_stream();
    let stream = msgs.concat();
    for cut in 0..=stream.len() {
        let mut r = FrameReader::default();
        let got = frames_of(&mut r, &[&stream[..cut], &stream[cut..]]).unwrap();
        assert_eq!(got, msgs, "cut at {cut}");
        assert_eq!(r.frames(), msgs.len() as u64);
    }
    // Two cuts, every pair of boundaries around the Peer Up.
    let first = msgs[0].len();
    let second = first + msgs[1].len();
    for a in first - 3..second + 3 {
        for b in a..second + 8 {
            let mut r = FrameReader::default();
            let got = frames_of(&mut r, &[&stream[..a], &stream[a..b], &stream[b..]]).unwrap();
            assert_eq!(got, msgs, "cuts at {a}, {b}");
        }
    }
    // One byte at a time.
    let mut r = FrameReader::default();
    let chunks: Vec<&[u8]> = stream.chunks(1).collect();
    assert_eq!(frames_of(&mut r, &chunks).unwrap(), msgs);
    assert_eq!(r.bytes_received(), stream.len() as u64);
    // The stream ending inside a message is an error at the end.
    let mut r = FrameReader::default();
    assert_eq!(
        frames_of(&mut r, &[&stream[..stream.len() - 1]]),
        Err(FrameError::Truncated {
            buffered: msgs[6].len() - 1
        })
    );
    // The session sees the same thing whichever way the bytes are cut.
    let mut whole = Harness::new(&["203.0.113.0/24"]);
    let reference = whole.feed(&msgs);
    for cut in [1, 7, 100, stream.len() - 2] {
        let mut s = RouterSession::new(ROUTER.parse().unwrap(), None);
        let reg = registry(&["203.0.113.0/24"]);
        let mut out = Output::default();
        let mut r = FrameReader::default();
        for part in [&stream[..cut], &stream[cut..]] {
            r.feed(part, |f| s.handle_frame(f, &reg, NOW, &mut out))
                .unwrap();
        }
        assert_eq!(out.batch.updates.len(), reference.batch.updates.len());
        assert_eq!(out.peer_down, reference.peer_down);
        assert_eq!(s.counts(), whole.session.counts());
    }
}

// ---------------------------------------------------------------------------------------------
// Garbage

/// xorshift64*: deterministic, dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// Runs a frame through decoding and a session with a registry that matches everything (so
/// every announcement reaches bgpkit-parser).
fn survive(session: &mut RouterSession, reg: &Registry, frame: &[u8]) {
    let mut out = Output::default();
    session.handle_frame(frame, reg, NOW, &mut out);
    let _ = decode_message(frame);
}

#[test]
fn random_garbage_never_panics() {
    let reg = everything();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut session = RouterSession::new(ROUTER.parse().unwrap(), None);
    // Raw garbage into the framer, in random chunks, then into decoding.
    for _ in 0..2000 {
        let len = rng.below(300);
        let mut data = rng.bytes(len);
        if rng.below(2) == 0 && data.len() >= 6 {
            data[0] = 3;
            let l = rng.below(data.len() + 10) as u32;
            data[1..5].copy_from_slice(&l.to_be_bytes());
        }
        let mut r = FrameReader::new(1 + rng.below(400) as u32);
        let mut rest = &data[..];
        while !rest.is_empty() {
            let n = 1 + rng.below(rest.len());
            let (c, tail) = rest.split_at(n);
            rest = tail;
            if r.feed(c, |f| survive(&mut session, &reg, f)).is_err() {
                break;
            }
        }
        let _ = r.finish();
        survive(&mut session, &reg, &data);
    }
    // Valid headers around random bodies, for every message type and peer type.
    for _ in 0..20_000 {
        let ty = rng.below(8) as u8;
        let mut body = Vec::new();
        if ty != 4 && ty != 5 && rng.below(4) != 0 {
            let mut p = peer("198.51.100.1", 64510);
            p.peer_type = rng.below(5) as u8;
            p.flags = rng.next() as u8;
            body.extend_from_slice(&p.header());
            if ty == 0 && rng.below(2) == 0 {
                // A BGP UPDATE header with a random body.
                let n = rng.below(200);
                body.extend_from_slice(&bgp_msg(2, &rng.bytes(n)));
                continue_with_tail(&mut rng, &mut body);
            }
        }
        let n = rng.below(120);
        body.extend_from_slice(&rng.bytes(n));
        survive(&mut session, &reg, &bmp(ty, &body));
    }
}

fn continue_with_tail(rng: &mut Rng, body: &mut Vec<u8>) {
    if rng.below(3) == 0 {
        let n = rng.below(8);
        body.extend_from_slice(&rng.bytes(n));
    }
}

#[test]
fn mutated_real_messages_never_panic() {
    let reg = everything();
    let mut rng = Rng(42);
    for file in [
        "pmacct__204-BMP-CISCO-peer_down__traffic-00.flow0.bmp",
        "netgauze__upa.flow1.bmp",
    ] {
        let data = std::fs::read(fixture_dir().join(file)).unwrap();
        let mut msgs = Vec::new();
        FrameReader::default()
            .feed(&data, |f| msgs.push(f.to_vec()))
            .unwrap();
        let mut session = RouterSession::new(ROUTER.parse().unwrap(), None);
        for round in 0..30 {
            for m in &msgs {
                let mut m = m.clone();
                for _ in 0..1 + rng.below(4) {
                    if m.len() <= 6 {
                        break;
                    }
                    // Keep the common header (it is the framer's job) and mutate the rest.
                    let at = 6 + rng.below(m.len() - 6);
                    match rng.below(4) {
                        0 => m[at] ^= 1 << rng.below(8),
                        1 => m[at] = rng.next() as u8,
                        2 => m[at] = if round % 2 == 0 { 0 } else { 0xff },
                        _ => {
                            m.truncate(at);
                            let l = m.len() as u32;
                            m[1..5].copy_from_slice(&l.to_be_bytes());
                        }
                    }
                }
                survive(&mut session, &reg, &m);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Recorded router streams (fixtures/bmp/raw)

fn fixture_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/bmp/raw")
}

/// The "Raw streams" table of fixtures/README.upstream.md: file → (flow source, counts by type).
fn reference_table() -> BTreeMap<String, (SocketAddr, BTreeMap<MessageType, u64>)> {
    let readme = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/README.upstream.md"),
    )
    .unwrap();
    let mut table = BTreeMap::new();
    for line in readme.lines().filter(|l| l.starts_with("| bmp/raw/")) {
        let cols: Vec<&str> = line.split('|').map(str::trim).collect();
        let file = cols[1].trim_start_matches("bmp/raw/").to_string();
        let src = cols[3].split(" -> ").next().unwrap();
        let (ip, port) = src.rsplit_once(':').unwrap();
        let addr = SocketAddr::new(ip.parse().unwrap(), port.parse().unwrap());
        let total: u64 = cols[4].parse().unwrap();
        let mut counts = BTreeMap::new();
        for kv in cols[5].split(", ") {
            let (k, v) = kv.split_once(':').unwrap();
            let t = match k {
                "Initiation" => MessageType::Initiation,
                "PeerUp" => MessageType::PeerUp,
                "PeerDown" => MessageType::PeerDown,
                "RouteMonitoring" => MessageType::RouteMonitoring,
                "StatisticsReport" => MessageType::StatisticsReport,
                "Termination" => MessageType::Termination,
                "RouteMirroring" => MessageType::RouteMirroring,
                other => panic!("type {other}"),
            };
            counts.insert(t, v.parse::<u64>().unwrap());
        }
        assert_eq!(counts.values().sum::<u64>(), total, "{file}");
        table.insert(file, (addr, counts));
    }
    table
}

/// What this decoder finds in each raw stream with a registry of `0.0.0.0/0` and `::/0`:
/// IPv4 announced, IPv6 announced, IPv4 withdrawn, IPv6 withdrawn (route entries), End-of-RIB
/// markers, Peer Down events (one per route source of the peer that went down), peers known
/// only from Route Monitoring. Every figure was also derived with an independent Python walker
/// of the raw streams (RFC 7854 framing, per-peer ADD-PATH from the Peer Up OPENs).
///
/// Routes are unicast (and multicast: none here) prefixes only. The pcap table's tshark
/// columns count every IPv4 SAFI (unicast + labelled unicast + VPNv4) but, for IPv6, unicast
/// and labelled unicast only (not VPNv6), so they agree with these figures where a capture
/// carries nothing else: netgauze UPA (19/0 announced and 3/0 withdrawn over its three flows),
/// pmacct 201 and its traffic-reproducer copy (133/102), pmacct 202 traffic-01 (15/22), and the
/// IPv6 side of pmacct 204 (18 announced, 8 withdrawn) and 400 (10). Elsewhere they differ by
/// exactly the non-unicast NLRI: netgauze EVPN 86 = 85 + 1 VPNv4; netgauze example 140 = 1
/// unicast + 14 labelled + 125 VPNv4; pmacct 200 23 = 3 + 6 labelled + 14 VPNv4 and 7 = 2
/// unicast + 5 labelled; 202 traffic-02 66 = 66 VPNv4; 204 305 = 31 + 140 labelled + 134 VPNv4
/// and 45 withdrawn = 15 + 30 VPNv4; 205 280 = 142 + 138 VPNv4, 48 = 48 VPNv4 withdrawals;
/// 206 218 = 142 + 76 VPNv4; 400 206 = 14 + 140 labelled + 52 VPNv4.
///
/// End-of-RIB: the pcap table's "EoR(ipv4-unicast)" counts only the classic empty UPDATE; the
/// MP_UNREACH form (every other family) is in its "with-attributes" column: e.g. pmacct 201 has
/// 18 IPv4 + 18 IPv6 unicast markers, netgauze example 1 IPv4 + 7 labelled/VPN, pmacct 205 12
/// VPNv4/VPNv6 (the table says none).
///
/// Peer Down events: pmacct 204 takes down 3 peers with one view (post-policy) each; pmacct 205
/// takes 203.0.113.44 down twice with two views (pre- and post-policy) each; the netgauze EVPN
/// Peer Downs come before their peer sent any route, so there is nothing to withdraw.
/// Peers without a Peer Up: netgauze EVPN flow1 reports peer 198.51.100.52 AS65536 that its
/// capture never brought up; 6WIND FRR 8 (205, 206) sends no Peer Up for its Loc-RIB (see
/// `recorded_stream_details`). No other protocol-sequence anomaly occurs in these streams.
const EXPECTED: &[(&str, [u64; 7])] = &[
    ("netgauze__evpn.flow0.bmp", [0, 0, 0, 0, 3, 0, 0]),
    ("netgauze__evpn.flow1.bmp", [0, 0, 0, 0, 1, 0, 1]),
    ("netgauze__example.flow0.bmp", [1, 0, 0, 0, 8, 0, 0]),
    ("netgauze__upa.flow0.bmp", [10, 0, 0, 0, 6, 0, 0]),
    ("netgauze__upa.flow1.bmp", [6, 0, 3, 0, 3, 0, 0]),
    ("netgauze__upa.flow2.bmp", [3, 0, 0, 0, 3, 0, 0]),
    (
        "pmacct__200-BMP-HUAWEI-locrib_instance__traffic-00.flow0.bmp",
        [3, 2, 0, 0, 2, 0, 0],
    ),
    (
        "pmacct__201-BMP-CISCO-rd_instance__traffic-00.flow0.bmp",
        [133, 102, 0, 0, 36, 0, 0],
    ),
    (
        "pmacct__202-BMP-CISCO-HUAWEI-multiple-sources__traffic-01.flow0.bmp",
        [15, 22, 0, 0, 7, 0, 0],
    ),
    (
        "pmacct__202-BMP-CISCO-HUAWEI-multiple-sources__traffic-02.flow0.bmp",
        [0, 0, 0, 0, 0, 0, 0],
    ),
    (
        "pmacct__204-BMP-CISCO-peer_down__traffic-00.flow0.bmp",
        [31, 18, 15, 8, 14, 3, 0],
    ),
    (
        "pmacct__205-BMP-6wind-FRR-peer_down__traffic-00.flow0.bmp",
        [142, 0, 0, 0, 12, 4, 1],
    ),
    (
        "pmacct__206-BMP-high-availability__traffic-00.flow0.bmp",
        [142, 0, 0, 0, 12, 0, 1],
    ),
    (
        "pmacct__400-IPFIXv10-BMP-CISCO-SRv6-multiple-sources__traffic-00.flow0.bmp",
        [14, 10, 0, 0, 14, 0, 0],
    ),
    (
        "traffic-reproducer__bmp.flow0.bmp",
        [133, 102, 0, 0, 36, 0, 0],
    ),
];

#[test]
fn recorded_router_streams_decode_to_the_reference_counts() {
    let table = reference_table();
    let mut files: Vec<String> = std::fs::read_dir(fixture_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".bmp"))
        .collect();
    files.sort();
    assert_eq!(
        files.len(),
        table.len(),
        "every raw stream is in the reference table"
    );
    assert_eq!(files.len(), EXPECTED.len());
    let registry = Arc::new(everything());
    for (file, expected) in EXPECTED {
        let (remote, reference) = &table[*file];
        let data = std::fs::read(fixture_dir().join(file)).unwrap();
        let mut session = RouterSession::new(*remote, None);
        let mut engine = Engine::new(registry.clone());
        let mut frames = FrameReader::default();
        let mut out = Output::default();
        // Reads of an odd size, so messages straddle them.
        for chunk in data.chunks(1447) {
            frames
                .feed(chunk, |f| session.handle_frame(f, &registry, NOW, &mut out))
                .unwrap_or_else(|e| panic!("{file}: {e}"));
        }
        frames.finish().unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(frames.bytes_received(), data.len() as u64);

        // Message counts per type equal the independent framing walker's.
        let counts: BTreeMap<MessageType, u64> =
            session.counts().iter().filter(|(_, n)| *n > 0).collect();
        assert_eq!(&counts, reference, "{file}");
        // No message failed to decode (the one capture cut mid-message was trimmed to whole
        // messages when the raw streams were made).
        assert!(
            session.errors().is_empty(),
            "{file}: {:?} {:?}",
            session.errors(),
            out.errors
        );
        assert!(out.errors.is_empty());

        let count = |v6: bool, w: bool| {
            out.batch
                .updates
                .iter()
                .filter(|u| {
                    u.prefix.addr().is_ipv6() == v6 && (u.change == RouteChange::Withdraw) == w
                })
                .count() as u64
        };
        let got = [
            count(false, false),
            count(true, false),
            count(false, true),
            count(true, true),
            session.end_of_rib_markers(),
            out.peer_down.len() as u64,
            session
                .anomalies()
                .get("route_monitoring_without_peer_up")
                .copied()
                .unwrap_or(0),
        ];
        assert_eq!(&got, expected, "{file}");
        assert!(
            session
                .anomalies()
                .keys()
                .all(|k| *k == "route_monitoring_without_peer_up"),
            "{file}: {:?}",
            session.anomalies()
        );
        // Everything matched (the registry covers all) and every entry was decoded once.
        assert_eq!(
            out.batch.processed,
            out.batch.updates.len() as u64,
            "{file}"
        );
        assert_eq!(session.processed(), session.matched(), "{file}");
        // No announcement lost its path.
        assert!(out.batch.errors.is_empty(), "{file}");

        // The engine's state equals a plain replay of the output in order.
        crate::pipeline::apply_output(&mut engine, &out);
        let mut live: HashSet<(Arc<PeerKey>, IpNet, u32)> = HashSet::new();
        let mut next = 0;
        let mut replay = |upto: usize, live: &mut HashSet<_>| {
            for u in &out.batch.updates[next..upto] {
                let k = (u.peer.clone(), u.prefix, u.path_id);
                match u.change {
                    RouteChange::Announce(_) => live.insert(k),
                    RouteChange::Withdraw => live.remove(&k),
                };
            }
            next = upto;
        };
        for ev in &out.peer_down {
            replay(ev.after, &mut live);
            live.retain(|(k, _, _)| *k != ev.key);
        }
        replay(out.batch.updates.len(), &mut live);
        assert_eq!(engine.tracked_routes(), live.len() as u64, "{file}");
        // Every route source is this router's.
        let prefix = format!("bmp/{remote}/");
        assert!(
            out.batch
                .updates
                .iter()
                .all(|u| u.peer.source.starts_with(&prefix)),
            "{file}"
        );

        // Closing the session withdraws whatever is left.
        let mut end = Output::default();
        session.close(NOW, &mut end);
        crate::pipeline::apply_output(&mut engine, &end);
        assert_eq!(engine.tracked_routes(), 0, "{file}");
        assert_eq!(session.peers_up(), 0);
    }
}

#[test]
fn recorded_stream_details() {
    let registry = everything();
    let run = |file: &str| {
        let data = std::fs::read(fixture_dir().join(file)).unwrap();
        let mut session = RouterSession::new(ROUTER.parse().unwrap(), None);
        let mut out = Output::default();
        FrameReader::default()
            .feed(&data, |f| session.handle_frame(f, &registry, NOW, &mut out))
            .unwrap();
        (session, out)
    };
    // FRR 10 (NetGauze UPA, router r1): sysName, Loc-RIB plus pre- and post-policy views, 4-byte
    // paths, and each Loc-RIB message sent twice (flags 0 and 0x40) landing on one route source.
    let (s, out) = run("netgauze__upa.flow0.bmp");
    assert_eq!(s.label(), "r1");
    assert_eq!(s.sys_descr(), Some("FRRouting 10.8.0-dev_git20260719"));
    let first = &out.batch.updates[0];
    assert_eq!(first.prefix.to_string(), "10.0.0.0/16");
    assert_eq!(first.peer.source.as_str(), "bmp/192.0.2.1:17001/adj-in-pre");
    match &first.change {
        RouteChange::Announce(p) => assert_eq!(p.asns.as_ref(), &[65002, 65001]),
        c => panic!("{c:?}"),
    }
    let mut sources: Vec<&str> = s
        .peers()
        .iter()
        .flat_map(|p| &p.views)
        .map(|v| v.key.source.as_str())
        .collect();
    sources.sort();
    sources.dedup();
    assert_eq!(
        sources,
        vec![
            "bmp/192.0.2.1:17001/adj-in-post",
            "bmp/192.0.2.1:17001/adj-in-pre",
            "bmp/192.0.2.1:17001/loc-rib"
        ]
    );
    // The post-policy views carried only End-of-RIB markers.
    assert!(out
        .batch
        .updates
        .iter()
        .all(|u| !u.peer.source.ends_with("post")));
    let loc_rib = s
        .peers()
        .iter()
        .find(|p| p.id.peer_type == PeerType::LocRib)
        .unwrap();
    assert_eq!(loc_rib.views.len(), 1);
    assert!(loc_rib.initial_table_complete());
    // Both sides advertise ADD-PATH "receive" only: no path ids anywhere.
    assert!(out.batch.updates.iter().all(|u| u.path_id == 0));

    // Cisco IOS XR RD-instance peers: sources carry the RD.
    let (s, out) = run("pmacct__201-BMP-CISCO-rd_instance__traffic-00.flow0.bmp");
    assert_eq!(s.label(), "ipf-zbl1843-r-daisy-55");
    assert!(out
        .batch
        .updates
        .iter()
        .all(|u| u.peer.source.contains("/rd=64499:")));
    assert_eq!(s.peers().len(), 42);
    assert!(s
        .peers()
        .iter()
        .all(|p| p.id.peer_type == PeerType::RdInstance));
    // 36 of the 42 peers sent their End-of-RIB (18 IPv4 + 18 IPv6) before the capture ends.
    let complete = s
        .peers()
        .iter()
        .filter(|p| p.initial_table_complete())
        .count();
    assert_eq!(complete, 36);
    assert!(!s.initial_tables_complete());

    // Huawei VRP Loc-RIB instances with the F flag: address 0.0.0.0, not an IPv6 address.
    let (s, _) = run("pmacct__200-BMP-HUAWEI-locrib_instance__traffic-00.flow0.bmp");
    let loc: Vec<_> = s
        .peers()
        .iter()
        .filter(|p| p.id.peer_type == PeerType::LocRib)
        .collect();
    assert_eq!(loc.len(), 3);
    // Two Peer Ups per Loc-RIB instance, one fabricated OPEN per address family: merged.
    assert!(loc
        .iter()
        .all(|p| p.negotiated_families() == vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST]));
    assert!(loc
        .iter()
        .all(|p| p.id.address == IpAddr::V4(Ipv4Addr::UNSPECIFIED)));

    // 6WIND FRR 8: a "peer" 0.0.0.0 AS0 with BGP id 0, post-policy, whose Peer Up carries the
    // RFC 9069 table-name TLV "global" and two OPENs with AS 0 (FRR's own "self" peer): its
    // Route Monitoring holds the router's own route 203.0.113.58/32 with an empty AS path. The
    // Loc-RIB itself (peer type 3, AS 4226809914) comes with no Peer Up at all.
    let (s, out) = run("pmacct__205-BMP-6wind-FRR-peer_down__traffic-00.flow0.bmp");
    let phantom = s
        .peers()
        .iter()
        .find(|p| p.id.peer_type == PeerType::Global && p.id.asn == 0)
        .unwrap();
    assert_eq!(phantom.id.address, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let up = phantom.peer_up.as_ref().unwrap();
    assert_eq!(up.table_name.as_deref(), Some("global"));
    assert_eq!((up.sent_open.asn(), up.received_open.asn()), (0, 0));
    assert_eq!(phantom.route_monitoring, 3);
    assert_eq!(phantom.views.len(), 1);
    let own: Vec<_> = out
        .batch
        .updates
        .iter()
        .filter(|u| u.peer == phantom.views[0].key)
        .collect();
    assert_eq!(own.len(), 1);
    assert_eq!(own[0].prefix.to_string(), "203.0.113.58/32");
    assert_eq!(
        own[0].peer.source.as_str(),
        "bmp/192.0.2.1:17001/adj-in-post"
    );
    match &own[0].change {
        RouteChange::Announce(p) => assert_eq!(p.origin, Origin::Unknown),
        c => panic!("{c:?}"),
    }
    let loc = s
        .peers()
        .iter()
        .find(|p| p.id.peer_type == PeerType::LocRib)
        .unwrap();
    assert!(loc.peer_up.is_none());
    assert_eq!(loc.id.asn, 4_226_809_914);
    // The peer that flapped twice is up again, with its tables re-sent.
    let flapped = s
        .peers()
        .iter()
        .find(|p| p.id.address.to_string() == "203.0.113.44")
        .unwrap();
    assert_eq!(flapped.state, PeerState::Up);
    assert_eq!(flapped.down_reason, None);
    assert!(s.anomalies().get("peer_up_while_up").is_none());

    // The IPv6-connected Cisco router of pmacct 204: its source carries the bracketed address.
    let table = reference_table();
    let remote = table["pmacct__204-BMP-CISCO-peer_down__traffic-00.flow0.bmp"].0;
    let s = RouterSession::new(remote, None);
    assert_eq!(s.source_prefix(), "bmp/[2001:db8:90::1]:20");
}

#[test]
fn header_helpers() {
    let h = CommonHeader::parse(&[3, 0, 0, 0, 6, 4]).unwrap();
    assert_eq!(h.validate(6), Ok(6));
    assert!(CommonHeader::parse(&[3, 0, 0]).is_none());
    assert_eq!(MessageType::ALL.len(), 8);
    for (i, t) in MessageType::ALL.iter().enumerate() {
        assert_eq!(t.index(), i);
        if i < 7 {
            assert_eq!(MessageType::from_code(i as u8), *t);
        }
    }
    assert_eq!(Family { afi: 1, safi: 128 }.to_string(), "ipv4-vpn");
    assert_eq!(Family::IPV6_UNICAST.to_string(), "ipv6-unicast");
    assert_eq!(
        Family {
            afi: 16388,
            safi: 71
        }
        .to_string(),
        "afi16388-safi71"
    );
}
