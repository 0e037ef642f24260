//! BMP message decoding: Initiation, Statistics Report, Peer Down, OPEN details, headers.

use super::*;

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
