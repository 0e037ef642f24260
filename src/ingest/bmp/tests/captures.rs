//! Recorded router streams (`fixtures/bmp/raw`): reference counts and details.

use super::*;

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
            out.batch.sources_down.len() as u64,
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
        crate::pipeline::apply_batch(&mut engine, &out.batch);
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
        for ev in &out.batch.sources_down {
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
        crate::pipeline::apply_batch(&mut engine, &end.batch);
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
