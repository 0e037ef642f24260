//! Route Monitoring: the UPDATE with per-family ADD-PATH, 2- and 4-byte AS paths, IPv6, End-of-RIB,
//! the prefilter, and messages that are counted and skipped.

use super::*;

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

/// Huawei VRP appends a TLV after the UPDATE of each Route Monitoring message: the routes are
/// used and it is a protocol oddity, not a parse error. Bytes that are not a TLV sequence stay
/// `trailing_data`.
#[test]
fn tlvs_after_the_update_are_an_oddity_and_other_trailing_bytes_an_error() {
    let mut h = Harness::new(&["0.0.0.0/0"]);
    let p = peer("198.51.100.1", 64510);
    let good = update(
        &[],
        &[origin_igp(), as_path4(&[64510]), next_hop([1, 2, 3, 4])],
        &pfx("203.0.113.0/24", None),
    );
    let with_tlvs = [good.clone(), tlv(0, b"vrf-a"), tlv(3, &[0, 1])].concat();
    let with_garbage = [good.clone(), vec![0, 1, 0, 9, 7]].concat();
    let out = h.feed(&[
        p.route_monitoring(&with_tlvs),
        p.route_monitoring(&with_tlvs),
    ]);
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(announced(&out).len(), 2);
    assert_eq!(h.session.anomalies().get("trailing_tlv"), Some(&2));
    let out = h.feed(&[p.route_monitoring(&with_garbage)]);
    let labels: Vec<&str> = out.errors.iter().map(|e| e.label).collect();
    assert_eq!(labels, ["trailing_data"]);
    assert_eq!(announced(&out).len(), 1, "the routes are used either way");
}

/// A sysName that is another router's configured name does not become the label: the session
/// is labelled by its address and the conflict counted. The configured router itself keeps its
/// name whatever its sysName.
#[test]
fn a_sysname_bound_to_another_router_is_not_used_as_the_label() {
    let names: Arc<[String]> = vec!["edge1".to_string()].into();
    let mut h = Harness::new(&["0.0.0.0/0"]);
    h.session =
        RouterSession::new(ROUTER.parse().unwrap(), None).with_reserved_names(names.clone());
    h.feed(&[initiation("edge1", "impostor")]);
    assert_eq!(h.session.label(), ROUTER);
    assert_eq!(h.session.sys_name(), Some("edge1"));
    assert_eq!(h.session.anomalies().get("name_conflict"), Some(&1));

    let mut h = Harness::new(&["0.0.0.0/0"]);
    h.session = RouterSession::new(ROUTER.parse().unwrap(), Some("edge1".into()))
        .with_reserved_names(names.clone());
    h.feed(&[initiation("edge1", "the real one")]);
    assert_eq!(h.session.label(), "edge1");
    assert!(h.session.anomalies().is_empty());

    let mut h = Harness::new(&["0.0.0.0/0"]);
    h.session = RouterSession::new(ROUTER.parse().unwrap(), None).with_reserved_names(names);
    h.feed(&[initiation("edge2", "another router")]);
    assert_eq!(h.session.label(), "edge2");
}

/// `[bmp] max-peers-per-router`: peers beyond it are not tracked, their messages counted.
#[test]
fn peers_beyond_the_configured_cap_are_refused_and_counted() {
    let mut h = Harness::new(&["0.0.0.0/0"]);
    h.session = RouterSession::new(ROUTER.parse().unwrap(), None).with_max_peers(2);
    let good = update(
        &[],
        &[origin_igp(), as_path4(&[64510]), next_hop([1, 2, 3, 4])],
        &pfx("203.0.113.0/24", None),
    );
    let msgs: Vec<Vec<u8>> = (1..=3)
        .map(|i| peer(&format!("198.51.100.{i}"), 64510).route_monitoring(&good))
        .collect();
    let out = h.feed(&msgs);
    assert_eq!(h.session.peers().len(), 2);
    assert_eq!(announced(&out).len(), 2);
    assert_eq!(h.session.errors().get("too_many_peers"), Some(&1));
}
