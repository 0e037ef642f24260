use super::*;
use crate::registry::tests::loc;

fn registry() -> Registry {
    Registry::new(vec![
        loc("a", &["192.0.2.0/24", "2001:db8::/32"], &[64500]),
        loc("b", &["198.51.100.0/22", "198.51.101.0/24"], &[64501]),
    ])
    .unwrap()
}

const UPDATE: &str = r#"{"type":"ris_message","data":{"timestamp":1700000000.5,"peer":"203.0.113.1","peer_asn":"64510","id":"x","host":"rrc00.ripe.net","type":"UPDATE","path":[64510,64520,[64500]],"origin":"IGP","announcements":[{"next_hop":"203.0.113.1","prefixes":["192.0.2.0/24","203.0.113.0/24","198.51.100.128/25"]}],"withdrawals":["2001:db8::/32","10.0.0.0/8"]}}"#;

#[test]
fn an_update_yields_only_its_matched_routes_with_the_collector_peer_identity() {
    let reg = registry();
    let mut d = Decoder::default();
    let mut b = Batch::default();
    let got = d.decode(UPDATE, &reg, &mut b);
    assert_eq!(got.kind, MessageType::Update);
    assert_eq!(b.processed, 5, "every prefix read counts");
    assert_eq!(b.last_timestamp, Some(1700000000.5));
    let routes: Vec<String> = b
        .updates
        .iter()
        .map(|u| {
            let what = match &u.change {
                RouteChange::Announce(p) => p.to_string(),
                RouteChange::Withdraw => "-".into(),
            };
            format!("{} {} {}", u.peer, u.prefix, what)
        })
        .collect();
    assert_eq!(
        routes,
        [
            "203.0.113.1 AS64510 (ris-live/rrc00) 192.0.2.0/24 64510 64520 64500",
            "203.0.113.1 AS64510 (ris-live/rrc00) 198.51.100.128/25 64510 64520 64500",
            "203.0.113.1 AS64510 (ris-live/rrc00) 2001:db8::/32 -",
        ]
    );
    assert_eq!(b.updates[0].peer.source.feed(), crate::model::Feed::RisLive);
    // One path allocation per message.
    match (&b.updates[0].change, &b.updates[1].change) {
        (RouteChange::Announce(a), RouteChange::Announce(c)) => assert!(Arc::ptr_eq(a, c)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_update_without_a_registered_prefix_is_not_decoded_further() {
    let reg = registry();
    let mut d = Decoder::default();
    let mut b = Batch::default();
    // A path bgpkit-parser would refuse: never read, since nothing matched.
    let text = r#"{"type":"ris_message","data":{"timestamp":1.0,"peer":"203.0.113.1","peer_asn":64510,"host":"rrc01","type":"UPDATE","path":"not a path","announcements":[{"next_hop":"203.0.113.1","prefixes":["203.0.113.0/24"]}]}}"#;
    assert_eq!(d.decode(text, &reg, &mut b).kind, MessageType::Update);
    assert!(b.updates.is_empty() && b.errors.is_empty());
    assert_eq!(b.processed, 1);
}

#[test]
fn peer_state_down_is_a_source_down_among_the_updates() {
    let reg = registry();
    let mut d = Decoder::default();
    let mut b = Batch::default();
    d.decode(UPDATE, &reg, &mut b);
    let down = r#"{"type":"ris_message","data":{"timestamp":1700000001,"peer":"203.0.113.1","peer_asn":"64510","host":"rrc00","type":"RIS_PEER_STATE","state":"down"}}"#;
    assert_eq!(d.decode(down, &reg, &mut b).kind, MessageType::PeerState);
    let up = down
        .replace("\"down\"", "\"connected\"")
        .replace("RIS_PEER_STATE", "STATE");
    assert_eq!(d.decode(&up, &reg, &mut b).kind, MessageType::PeerState);
    assert_eq!(b.sources_down.len(), 1);
    let ev = &b.sources_down[0];
    assert_eq!(ev.after, 3);
    assert_eq!(ev.key.to_string(), "203.0.113.1 AS64510 (ris-live/rrc00)");
    // The same interned key as the routes it takes down.
    assert!(Arc::ptr_eq(&ev.key, &b.updates[0].peer));
}

#[test]
fn malformed_frames_are_counted_by_label_and_never_fatal() {
    let reg = registry();
    let mut d = Decoder::default();
    let mut b = Batch::default();
    for text in ["{not json", "", "[1,2]"] {
        assert_eq!(d.decode(text, &reg, &mut b).kind, MessageType::Malformed);
    }
    let bad_peer = r#"{"type":"ris_message","data":{"timestamp":1,"peer":"nope","peer_asn":"1","host":"rrc00","type":"UPDATE"}}"#;
    let bad_prefix_matched = r#"{"type":"ris_message","data":{"timestamp":1,"peer":"203.0.113.1","peer_asn":"1","host":"rrc00","type":"UPDATE","path":[1,64500],"announcements":[{"next_hop":"bad","prefixes":["192.0.2.0/24"]}]}}"#;
    let bad_host = r#"{"type":"ris_message","data":{"timestamp":1,"peer":"203.0.113.1","peer_asn":"1","host":"<script>","type":"UPDATE"}}"#;
    for text in [bad_peer, bad_prefix_matched, bad_host] {
        let got = d.decode(text, &reg, &mut b);
        assert_eq!(got.kind, MessageType::Malformed, "{text}");
        assert!(got.detail.is_some());
    }
    assert_eq!(b.errors.get(ERROR_MALFORMED_JSON), Some(&3));
    assert_eq!(b.errors.get(ERROR_MALFORMED_MESSAGE), Some(&3));
    assert!(b.updates.is_empty());
}

#[test]
fn server_messages_are_told_apart() {
    let reg = registry();
    let mut d = Decoder::default();
    let mut b = Batch::default();
    let cases = [
        (r#"{"type":"pong","data":null}"#, MessageType::Pong),
        (
            r#"{"type":"ris_subscribe_ok","data":{"subscription":{},"socketOptions":{}}}"#,
            MessageType::SubscribeOk,
        ),
        (
            r#"{"type":"ris_rrc_list","data":["rrc00","rrc01"]}"#,
            MessageType::Other,
        ),
        (
            r#"{"type":"ris_message","data":{"timestamp":1,"peer":"203.0.113.1","peer_asn":"1","host":"rrc00","type":"KEEPALIVE"}}"#,
            MessageType::Keepalive,
        ),
        (
            r#"{"type":"ris_message","data":{"timestamp":1,"peer":"203.0.113.1","peer_asn":"1","host":"rrc00","type":"OPEN","direction":"sent"}}"#,
            MessageType::OtherBgp,
        ),
    ];
    for (text, want) in cases {
        assert_eq!(d.decode(text, &reg, &mut b).kind, want, "{text}");
    }
    let err = d.decode(
        r#"{"type":"ris_error","data":{"message":"Unknown subscription parameter"}}"#,
        &reg,
        &mut b,
    );
    assert_eq!(err.kind, MessageType::RisError);
    assert_eq!(
        err.detail.as_deref(),
        Some("Unknown subscription parameter")
    );
    assert!(!MessageType::Pong.is_data() && MessageType::Keepalive.is_data());
}

#[test]
fn host_and_peer_filters_apply_to_every_message() {
    let reg = registry();
    let mut d = Decoder::new(Filter {
        host: Some("rrc01".into()),
        peers: vec![],
    });
    let mut b = Batch::default();
    assert_eq!(d.decode(UPDATE, &reg, &mut b).kind, MessageType::Filtered);
    let mut d = Decoder::new(Filter {
        host: None,
        peers: vec!["203.0.113.9".parse().unwrap()],
    });
    assert_eq!(d.decode(UPDATE, &reg, &mut b).kind, MessageType::Filtered);
    assert!(b.updates.is_empty());
    let mut d = Decoder::new(Filter {
        host: Some("rrc00".into()),
        peers: vec!["203.0.113.1".parse().unwrap()],
    });
    assert_eq!(d.decode(UPDATE, &reg, &mut b).kind, MessageType::Update);
    assert_eq!(b.updates.len(), 3);
}

#[test]
fn subscriptions_follow_the_registry_and_the_threshold() {
    let reg = registry();
    let settings = SubscribeSettings {
        filter: Filter::default(),
        max_prefix_subscriptions: 10,
    };
    let subs = subscriptions(&reg, &settings);
    let prefixes: Vec<String> = subs
        .iter()
        .filter_map(|s| {
            let v: serde_json::Value = serde_json::from_str(s).unwrap();
            assert!(v.get("host").is_none() || v["type"] == "KEEPALIVE");
            v.get("prefix").map(|p| {
                assert_eq!(v["moreSpecific"], true);
                assert_eq!(v["type"], "UPDATE");
                p.as_str().unwrap().to_string()
            })
        })
        .collect();
    // 198.51.101.0/24 is inside 198.51.100.0/22: covered by its more-specifics.
    assert_eq!(
        prefixes,
        ["192.0.2.0/24", "198.51.100.0/22", "2001:db8::/32"]
    );
    assert!(subs.contains(r#"{"type":"RIS_PEER_STATE"}"#));
    assert!(subs.contains(r#"{"host":"rrc00","type":"KEEPALIVE"}"#));
    assert_eq!(subs.len(), 5);

    let broad = subscriptions(
        &reg,
        &SubscribeSettings {
            filter: Filter {
                host: Some("rrc21".into()),
                peers: vec!["203.0.113.1".parse().unwrap()],
            },
            max_prefix_subscriptions: 2,
        },
    );
    assert_eq!(
        broad.into_iter().collect::<Vec<_>>(),
        [
            r#"{"host":"rrc21","peer":"203.0.113.1","type":"KEEPALIVE"}"#,
            r#"{"host":"rrc21","peer":"203.0.113.1","type":"RIS_PEER_STATE"}"#,
            r#"{"host":"rrc21","peer":"203.0.113.1","type":"UPDATE"}"#,
        ]
    );
    // One peer and no host: that peer's keepalives, wherever it peers.
    let one_peer = subscriptions(
        &reg,
        &SubscribeSettings {
            filter: Filter {
                host: None,
                peers: vec!["203.0.113.1".parse().unwrap()],
            },
            max_prefix_subscriptions: 2,
        },
    );
    assert!(one_peer.contains(r#"{"peer":"203.0.113.1","type":"KEEPALIVE"}"#));
    assert_eq!(
        client_message("ris_subscribe", r#"{"type":"UPDATE"}"#),
        r#"{"type":"ris_subscribe","data":{"type":"UPDATE"}}"#
    );
}

#[test]
fn backoff_doubles_with_jitter_up_to_its_cap_and_resets() {
    let (min, max) = (Duration::from_millis(100), Duration::from_millis(1000));
    let mut b = Backoff::new(min, max, 42);
    let mut caps = Vec::new();
    for _ in 0..8 {
        let d = b.next_delay();
        caps.push(d);
    }
    let want = [100u64, 200, 400, 800, 1000, 1000, 1000, 1000];
    for (d, cap) in caps.iter().zip(want) {
        let cap = Duration::from_millis(cap);
        assert!(
            *d <= cap && *d >= cap / 2,
            "{d:?} not in [{:?}, {cap:?}]",
            cap / 2
        );
    }
    assert!(caps.windows(2).any(|w| w[0] != w[1]), "jitter varies");
    b.reset();
    assert!(b.next_delay() <= min);
}

#[test]
fn collector_names_are_short_and_checked() {
    assert_eq!(collector_name("rrc03.ripe.net").as_deref(), Some("rrc03"));
    assert_eq!(collector_name("RRC21").as_deref(), Some("rrc21"));
    assert_eq!(collector_name(""), None);
    assert_eq!(collector_name("a b"), None);
}
