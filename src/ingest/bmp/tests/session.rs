//! The session's peers and route sources: Loc-RIB, distinguishers and views, Peer Down, repeated
//! Peer Ups, Termination and close.

use super::*;

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
        .batch
        .sources_down
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
        .batch
        .sources_down
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
    assert_eq!(out.batch.sources_down.len(), 2);
    assert_eq!(out.batch.sources_down[0].after, 1);
    assert_eq!(h.engine.tracked_routes(), 2);
    assert_eq!(
        h.session.peers()[0].down_reason,
        None,
        "the last Peer Up cleared it"
    );

    // A Peer Down whose data is garbage still takes the peer down.
    let out = h.feed(&[b.peer_down(1, &[1, 2, 3])]);
    assert_eq!(out.batch.sources_down.len(), 1);
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
    assert!(out.batch.sources_down.is_empty());
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
    assert_eq!(out.batch.sources_down.len(), 1);
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
    assert_eq!(out.batch.sources_down.len(), 2);
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
    assert!(h.close().batch.sources_down.is_empty());
    assert_eq!(h.session.state(), SessionState::Closed);

    // TCP close without a Termination.
    let mut h = Harness::new(&["203.0.113.0/24"]);
    h.feed(&[
        a.peer_up(&s, &r, &[]),
        a.route_monitoring(&ann),
        a.flags(0x40).route_monitoring(&ann),
    ]);
    assert_eq!(h.engine.tracked_routes(), 2);
    assert_eq!(h.close().batch.sources_down.len(), 2);
    assert_eq!(h.engine.tracked_routes(), 0);
    assert_eq!(h.session.peers_up(), 0);
    assert!(h.close().batch.sources_down.is_empty());
}
