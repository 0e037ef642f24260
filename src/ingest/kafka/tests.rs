//! The OpenBMP header and the per-router sessions of the Kafka feed.

use std::net::IpAddr;
use std::sync::Arc;

use super::*;
use crate::engine::Engine;
use crate::ingest::bmp::tests::everything;
use crate::ingest::bmp::DEFAULT_MAX_FRAME;

/// A real OpenBMP v1.7 BMP_RAW message as RouteViews publishes it (bgpkit-parser's test
/// vector): collector `is-cc-bmp1`, router 128.223.51.105, group `route-views5`, a 51-byte
/// Peer Down of 63.218.6.14 AS3491 (and one byte past the declared length).
const ROUTEVIEWS: &str = "4f424d500107006400000033800c6184b9c2000c602cbf4f072f3ae149d23486024bc3dadfc4000a69732d63632d626d7031c677060bdd020a9e92be000200de2e3180df3369000000000000000000000000000c726f7574652d76696577733500000001030000003302000000000000000000000000000000000000000000003fda060e00000da30000000061523c36000c0e1c0200000a";

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn limits() -> Limits {
    Limits {
        max_routers: 4,
        max_peers_per_router: 1000,
        max_frame_bytes: DEFAULT_MAX_FRAME,
    }
}

fn part(topic: &str, p: i32) -> Partition {
    Partition {
        topic: Arc::from(topic),
        partition: p,
    }
}

const CAPTURE: &str = "pmacct__204-BMP-CISCO-peer_down__traffic-00.flow0.bmp";

fn capture(name: &str) -> Vec<u8> {
    std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/bmp/raw")
            .join(name),
    )
    .unwrap()
}

#[test]
fn routeviews_message_parses_to_collector_router_time_and_bmp() {
    let bytes = hex(ROUTEVIEWS);
    let m = parse_header(&bytes).unwrap();
    assert_eq!(m.collector, "is-cc-bmp1");
    assert_eq!(m.router, "128.223.51.105".parse::<IpAddr>().unwrap());
    assert_eq!(m.timestamp.floor(), 1_636_088_258.0);
    assert_eq!(m.bmp.len(), 51);
    assert_eq!(&m.bmp[..6], &[3, 0, 0, 0, 51, 2]);
    // Through a session: a Peer Down of a peer never seen up: no error, nothing withdrawn.
    let mut routers = Routers::new(limits());
    let mut out = Output::default();
    let h = routers.handle(&part("t", 0), &bytes, &everything(), 1.0, &mut out);
    assert!(
        matches!(
            h,
            Handled::Applied {
                new_router: true,
                ..
            }
        ),
        "{h:?}"
    );
    assert!(out.batch.errors.is_empty(), "{:?}", out.batch.errors);
    let id = RouterId {
        collector: Arc::from("is-cc-bmp1"),
        router: m.router,
    };
    let s = routers.session(&id).unwrap();
    assert_eq!(s.counts().total(), 1);
    assert_eq!(s.source_prefix(), "kafka/is-cc-bmp1/128.223.51.105");
    assert_eq!(s.label(), "is-cc-bmp1/128.223.51.105");
}

#[test]
fn encode_round_trips_both_families() {
    for router in ["192.0.2.7", "2001:db8::7"] {
        let router: IpAddr = router.parse().unwrap();
        let bmp = [3, 0, 0, 0, 6, 4];
        let b = encode("collector-1", router, 1_700_000_000.25, &bmp);
        let m = parse_header(&b).unwrap();
        assert_eq!(m.collector, "collector-1");
        assert_eq!(m.router, router);
        assert_eq!(m.timestamp, 1_700_000_000.25);
        assert_eq!(m.bmp, &bmp);
    }
}

#[test]
fn bad_headers_get_their_own_label() {
    let router: IpAddr = "192.0.2.7".parse().unwrap();
    let good = encode("c", router, 1.0, &[3, 0, 0, 0, 6, 4]);
    let label = |b: &[u8]| parse_header(b).map(|_| ()).map_err(|e| e.label());
    assert_eq!(label(&good), Ok(()));
    assert_eq!(label(b"V: 1.6\nT: bmp_raw\n\n"), Err("openbmp_not_openbmp"));
    assert_eq!(label(b""), Err("openbmp_not_openbmp"));
    assert_eq!(label(b"OBMP"), Err("openbmp_truncated"));
    let mut v = good.clone();
    v[5] = 8;
    assert_eq!(label(&v), Err("openbmp_version"));
    let mut v = good.clone();
    v[13] = 1; // a collector object
    assert_eq!(label(&v), Err("openbmp_object_type"));
    let mut v = good.clone();
    v[12] = 0; // not a router message
    assert_eq!(label(&v), Err("openbmp_object_type"));
    assert_eq!(label(&good[..good.len() - 1]), Err("openbmp_truncated"));
    // A header length that cuts the admin id.
    let mut v = good.clone();
    v[6..8].copy_from_slice(&30u16.to_be_bytes());
    assert_eq!(label(&v), Err("openbmp_malformed_header"));
    // A row count other than 1.
    let mut v = good.clone();
    let hl = usize::from(u16::from_be_bytes([v[6], v[7]]));
    v[hl - 1] = 2;
    assert_eq!(label(&v), Err("openbmp_malformed_header"));
    // Every byte flipped in turn, every cut: a label or a message, never a panic.
    for i in 0..good.len() {
        let mut v = good.clone();
        v[i] ^= 0xff;
        let _ = parse_header(&v);
        let _ = parse_header(&good[..i]);
    }
}

#[test]
fn a_bad_message_is_counted_and_skipped_and_the_next_one_is_used() {
    let router: IpAddr = "192.0.2.7".parse().unwrap();
    let mut routers = Routers::new(limits());
    let registry = everything();
    let p = part("t", 0);
    let mut out = Output::default();
    // Version 1 BMP inside a good header, then garbage, then a good Initiation.
    let h = routers.handle(
        &p,
        &encode("c", router, 1.0, &[1, 0, 0, 0, 6, 4]),
        &registry,
        1.0,
        &mut out,
    );
    assert!(
        matches!(
            h,
            Handled::Skipped {
                label: "bmp_unsupported_version",
                ..
            }
        ),
        "{h:?}"
    );
    let h = routers.handle(&p, b"garbage", &registry, 1.0, &mut out);
    assert!(
        matches!(
            h,
            Handled::Skipped {
                label: "openbmp_not_openbmp",
                ..
            }
        ),
        "{h:?}"
    );
    let h = routers.handle(
        &p,
        &encode("c", router, 1.0, &[3, 0, 0, 0, 9, 4, 0]),
        &registry,
        1.0,
        &mut out,
    );
    assert!(
        matches!(
            h,
            Handled::Skipped {
                label: "bmp_truncated",
                ..
            }
        ),
        "{h:?}"
    );
    let h = routers.handle(
        &p,
        &encode("c", router, 1.0, &[3, 0, 0, 0, 6, 4]),
        &registry,
        1.0,
        &mut out,
    );
    assert!(
        matches!(
            h,
            Handled::Applied {
                new_router: false,
                ..
            }
        ),
        "{h:?}"
    );
    assert_eq!(out.batch.errors.get("bmp_unsupported_version"), Some(&1));
    assert_eq!(out.batch.errors.get("openbmp_not_openbmp"), Some(&1));
    assert_eq!(out.batch.errors.get("bmp_truncated"), Some(&1));
    assert_eq!(routers.len(), 1);
}

#[test]
fn routers_past_the_cap_are_skipped_and_counted() {
    let mut routers = Routers::new(limits());
    let registry = everything();
    let mut out = Output::default();
    for i in 0..6u8 {
        let router = IpAddr::from([192, 0, 2, i]);
        routers.handle(
            &part("t", 0),
            &encode("c", router, 1.0, &[3, 0, 0, 0, 6, 4]),
            &registry,
            1.0,
            &mut out,
        );
    }
    assert_eq!(routers.len(), 4);
    assert_eq!(out.batch.errors.get("too_many_routers"), Some(&2));
}

/// The capture published one BMP message per Kafka message gives the engine exactly the state
/// the same bytes give over TCP, with `kafka/…` route sources; revoking the partition withdraws
/// everything, and a router on another partition stays.
#[test]
fn capture_through_kafka_equals_tcp_and_revocation_withdraws_only_that_partitions_routers() {
    let registry = everything();
    let stream = capture(CAPTURE);
    // Over TCP.
    let mut tcp = Engine::new(Arc::new(everything()));
    let mut session = RouterSession::new("192.0.2.1:17001".parse().unwrap(), None);
    let mut frames = FrameReader::new(DEFAULT_MAX_FRAME);
    let mut out = Output::default();
    frames
        .feed(&stream, |f| {
            session.handle_frame(f, &registry, 1.0, &mut out)
        })
        .unwrap();
    crate::pipeline::apply_batch(&mut tcp, &out.batch);
    // Over Kafka: router A on partition 0, the same stream as router B on partition 1.
    let mut kafka = Engine::new(Arc::new(everything()));
    let mut routers = Routers::new(limits());
    let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
    let messages = split_messages(&stream, DEFAULT_MAX_FRAME);
    assert_eq!(messages.len(), 343);
    let mut out = Output::default();
    for m in &messages {
        routers.handle(
            &part("t", 0),
            &encode("c1", a, 0.0, m),
            &registry,
            1.0,
            &mut out,
        );
    }
    crate::pipeline::apply_batch(&mut kafka, &out.batch);
    assert!(out.batch.errors.is_empty(), "{:?}", out.batch.errors);
    assert!(out
        .batch
        .updates
        .iter()
        .all(|u| u.peer.source.starts_with("kafka/c1/192.0.2.1/")));
    let strip = |v: serde_json::Value| v;
    let want = strip(serde_json::json!(tcp.prefix_summaries()));
    assert!(tcp.tracked_routes() >= 20, "{}", tcp.tracked_routes());
    assert_eq!(kafka.tracked_routes(), tcp.tracked_routes());
    assert_eq!(serde_json::json!(kafka.prefix_summaries()), want);

    let mut out = Output::default();
    for m in &messages {
        routers.handle(
            &part("t", 1),
            &encode("c1", b, 0.0, m),
            &registry,
            1.0,
            &mut out,
        );
    }
    crate::pipeline::apply_batch(&mut kafka, &out.batch);
    assert_eq!(kafka.tracked_routes(), 2 * tcp.tracked_routes());
    assert_eq!(routers.len(), 2);

    let mut out = Output::default();
    let gone = routers.revoke(&[part("t", 0), part("other", 0)], 2.0, &mut out);
    assert_eq!(gone.len(), 1);
    assert_eq!(gone[0].router, a);
    crate::pipeline::apply_batch(&mut kafka, &out.batch);
    assert_eq!(kafka.tracked_routes(), tcp.tracked_routes());
    assert_eq!(routers.len(), 1);
    // Seen again: a fresh session.
    let mut out = Output::default();
    let h = routers.handle(
        &part("t", 0),
        &encode("c1", a, 0.0, &messages[0]),
        &registry,
        1.0,
        &mut out,
    );
    assert!(
        matches!(
            h,
            Handled::Applied {
                new_router: true,
                ..
            }
        ),
        "{h:?}"
    );
}

/// The lag series are bounded per consumer: past `max`, readings are dropped and counted; a
/// revoked partition's series goes and frees its place.
#[test]
fn lag_series_are_bounded_and_removed_with_their_partition() {
    let registry = prometheus::Registry::new();
    let m = metrics::KafkaMetrics::new(&registry, &["c".to_string()]).unwrap();
    m.set_lag("c", "t", 0, 5, 1);
    m.set_lag("c", "t", 1, 7, 1);
    m.set_lag("c", "t", 0, 3, 1);
    let text = |r: &prometheus::Registry| {
        prometheus::TextEncoder::new()
            .encode_to_string(&r.gather())
            .unwrap()
    };
    // The value of the one series of `name` whose line has `label`, if any.
    let series = |t: &str, name: &str, label: &str| -> Option<f64> {
        t.lines()
            .find(|l| l.starts_with(&format!("{name}{{")) && l.contains(label))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    };
    let t = text(&registry);
    let lag = "routewatch_kafka_consumer_lag";
    assert_eq!(series(&t, lag, "partition=\"0\""), Some(3.0), "{t}");
    assert_eq!(series(&t, lag, "partition=\"1\""), None, "{t}");
    let dropped = "routewatch_kafka_lag_series_dropped_total";
    assert_eq!(series(&t, dropped, "consumer=\"c\""), Some(1.0), "{t}");
    m.remove_lag("c", "t", 0);
    m.set_lag("c", "t", 1, 7, 1);
    let t = text(&registry);
    assert_eq!(series(&t, lag, "partition=\"0\""), None, "{t}");
    assert_eq!(series(&t, lag, "partition=\"1\""), Some(7.0), "{t}");
}
