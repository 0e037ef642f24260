//! RFC 9234 in BMP: the BGP Role capability of a Peer Up's received OPEN (the peer's role),
//! handed to every view of the peer, and the Only-to-Customer attribute of Route Monitoring.

use super::*;
use crate::ingest::bmp::message::RoleCapability;
use crate::model::PeerRole;

/// A BGP Role capability with the raw value `value`.
fn cap_role(value: &[u8]) -> Vec<u8> {
    let mut c = vec![9, value.len() as u8];
    c.extend_from_slice(value);
    c
}

fn role_of(caps: &[Vec<u8>]) -> RoleCapability {
    let all = [vec![cap_mp(1, 1), cap_as4(64510)], caps.to_vec()].concat();
    OpenMessage::decode(&open(64510, [198, 51, 100, 1], &all))
        .unwrap()
        .0
        .role
}

#[test]
fn role_capability_each_value_absent_bad_length_unknown_and_conflicting() {
    for (value, role) in [
        (0, PeerRole::Provider),
        (1, PeerRole::Rs),
        (2, PeerRole::RsClient),
        (3, PeerRole::Customer),
        (4, PeerRole::Peer),
    ] {
        assert_eq!(role_of(&[cap_role(&[value])]), RoleCapability::Role(role));
        assert_eq!(role_of(&[cap_role(&[value])]).role(), Some(role));
    }
    assert_eq!(role_of(&[]), RoleCapability::Absent);
    assert_eq!(role_of(&[]).role(), None);
    for bad in [&[][..], &[3, 0][..]] {
        let r = role_of(&[cap_role(bad)]);
        assert!(matches!(r, RoleCapability::Invalid(_)), "{bad:?}: {r:?}");
        assert_eq!(r.role(), None);
    }
    assert!(matches!(
        role_of(&[cap_role(&[5])]),
        RoleCapability::Invalid("unassigned value")
    ));
    // The same role twice is that role; two different ones are a mismatch (RFC 9234 §4.2).
    assert_eq!(
        role_of(&[cap_role(&[3]), cap_role(&[3])]),
        RoleCapability::Role(PeerRole::Customer)
    );
    assert!(matches!(
        role_of(&[cap_role(&[3]), cap_role(&[0])]),
        RoleCapability::Invalid(_)
    ));
    // The other capabilities still read around it.
    let all = [cap_role(&[3, 3]), cap_as4(4_200_000_000), cap_mp(2, 1)];
    let (o, _) = OpenMessage::decode(&open(4_200_000_000, [198, 51, 100, 1], &all)).unwrap();
    assert_eq!(o.asn(), 4_200_000_000);
    assert_eq!(o.multiprotocol, vec![Family::IPV6_UNICAST]);
}

/// (route source, role, position, timestamp) of the batch's role announcements.
fn roles(out: &Output) -> Vec<(String, Option<PeerRole>, usize, f64)> {
    out.batch
        .peer_roles
        .iter()
        .map(|r| (r.peer.source.to_string(), r.role, r.after, r.timestamp))
        .collect()
}

#[test]
fn a_peer_up_hands_the_peers_role_to_each_of_its_views() {
    let mut h = Harness::new(&["203.0.113.0/24"]);
    let p = peer("198.51.100.1", 64510);
    let sent = open(64500, [192, 0, 2, 1], &[cap_as4(64500), cap_role(&[0])]);
    let received = open(64510, [198, 51, 100, 1], &[cap_as4(64510), cap_role(&[3])]);
    let out = h.feed(&[p.peer_up(&sent, &received, &[])]);
    // No view yet: nothing to hand the role to; the peer shows it.
    assert!(out.batch.peer_roles.is_empty());
    assert_eq!(h.session.peers()[0].role(), Some(PeerRole::Customer));

    let route = update(
        &[],
        &[
            origin_igp(),
            as_path4(&[64510, 64496]),
            next_hop([10, 0, 0, 1]),
        ],
        &pfx("203.0.113.0/24", None),
    );
    let out = h.feed(&[
        p.route_monitoring(&route),
        p.flags(0x40).route_monitoring(&route),
    ]);
    let ts = 1_700_000_000.0;
    let pre = "bmp/192.0.2.1:17001/adj-in-pre".to_string();
    let post = "bmp/192.0.2.1:17001/adj-in-post".to_string();
    assert_eq!(
        roles(&out),
        vec![
            (pre.clone(), Some(PeerRole::Customer), 0, ts),
            (post.clone(), Some(PeerRole::Customer), 1, ts),
        ]
    );
    // The same session's Peer Up again (another view's, say): nothing changes.
    let out = h.feed(&[p.peer_up(&sent, &received, &[])]);
    assert!(out.batch.peer_roles.is_empty());

    // A new session without the capability: the old routes go, then both views learn that
    // the role is unknown now.
    let p2 = Peer {
        remote_port: 50001,
        ..p
    };
    let received = open(64510, [198, 51, 100, 1], &[cap_as4(64510)]);
    let out = h.feed(&[p2.peer_up(&sent, &received, &[])]);
    assert_eq!(out.batch.sources_down.len(), 2);
    assert_eq!(roles(&out), vec![(pre, None, 0, ts), (post, None, 0, ts)]);
    assert_eq!(h.session.peers()[0].role(), None);
    assert!(out.errors.is_empty(), "{:?}", out.errors);
}

#[test]
fn an_unusable_role_capability_is_counted_and_the_role_unknown() {
    let mut h = Harness::new(&["203.0.113.0/24"]);
    let p = peer("198.51.100.1", 64510);
    let (sent, _) = plain_opens(64510);
    for (i, bad) in [&[3, 0][..], &[9][..]].into_iter().enumerate() {
        let received = open(64510, [198, 51, 100, 1], &[cap_as4(64510), cap_role(bad)]);
        let p = Peer {
            remote_port: 50000 + i as u16,
            ..p
        };
        let out = h.feed(&[p.peer_up(&sent, &received, &[])]);
        assert_eq!(
            out.batch.errors.get("malformed_bgp_role"),
            Some(&1),
            "{bad:?}"
        );
        assert_eq!(out.errors[0].msg_type, MessageType::PeerUp);
        assert_eq!(h.session.peers()[0].role(), None);
        assert_eq!(h.session.peers()[0].state, PeerState::Up);
    }
    assert_eq!(h.session.errors().get("malformed_bgp_role"), Some(&2));
}

#[test]
fn route_monitoring_reads_the_only_to_customer_attribute() {
    let mut h = Harness::new(&["203.0.113.0/24", "198.51.100.0/24"]);
    let p = peer("192.0.2.9", 64510);
    let nlri = [pfx("203.0.113.0/24", None), pfx("198.51.100.0/24", None)].concat();
    let with = |extra: Option<Vec<u8>>| {
        let mut attrs = vec![
            origin_igp(),
            as_path4(&[64510, 64496]),
            next_hop([10, 0, 0, 1]),
        ];
        attrs.extend(extra);
        p.route_monitoring(&update(&[], &attrs, &nlri))
    };
    let otcs = |out: &Output| -> Vec<Option<u32>> {
        out.batch
            .updates
            .iter()
            .map(|u| match &u.change {
                RouteChange::Announce(path) => {
                    assert_eq!(path.asns.as_ref(), &[64510, 64496]);
                    path.otc
                }
                RouteChange::Withdraw => panic!("withdrawn: {u:?}"),
            })
            .collect()
    };
    let good = h.feed(&[with(Some(attr(0xC0, 35, &64_999u32.to_be_bytes())))]);
    assert_eq!(otcs(&good), vec![Some(64_999); 2]);
    assert!(good.errors.is_empty());
    let absent = h.feed(&[with(None)]);
    assert_eq!(otcs(&absent), vec![None; 2]);
    // Malformed: discarded (RFC 9234 §5, attribute discard), the routes kept, one error for
    // the UPDATE.
    for bad in [&[0, 0, 0xFD][..], &[0, 0, 0xFD, 0xE7, 0][..]] {
        let out = h.feed(&[with(Some(attr(0xC0, 35, bad)))]);
        assert_eq!(otcs(&out), vec![None; 2], "{bad:?}");
        assert_eq!(out.batch.errors.get("malformed_otc"), Some(&1), "{bad:?}");
        assert_eq!(h.visibility("203.0.113.0/24"), 1);
    }
    // A withdrawal reads no attribute.
    let w = h.feed(&[p.route_monitoring(&update(&pfx("203.0.113.0/24", None), &[], &[]))]);
    assert!(w.errors.is_empty());
    assert_eq!(h.visibility("203.0.113.0/24"), 0);
}
