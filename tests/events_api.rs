#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `GET /api/v1/events` over HTTP: every parameter with good and bad values, pagination, the
//! error shape (400 naming the parameter), an unavailable store (503), and the router merged
//! into another one and served on a real 127.0.0.1 listener.

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use serde_json::Value;
use tower::ServiceExt;

use routewatch::events::store::{EventReader, EventStore, StoreSettings};
use routewatch::events::{Event, EventKind, EventPeer, Severity};
use routewatch::http::events::{events_router, EVENTS_PATH};

const T: Duration = Duration::from_secs(5);

/// 2024-01-01T00:00:00Z.
const JAN1: f64 = 1_704_067_200.0;

/// Event `n`: one minute apart from 2024-01-01T00:00Z; kinds, severities, locations and
/// prefixes cycle so every filter has something to select.
fn event(n: u32) -> Event {
    let (kind, anomaly, severity) = match n % 4 {
        0 => (
            EventKind::AnomalyOpened,
            Some("origin_mismatch".to_string()),
            Severity::Critical,
        ),
        1 => (
            EventKind::AnomalyResolved,
            Some("origin_mismatch".to_string()),
            Severity::Information,
        ),
        2 => (EventKind::OriginChange, None, Severity::Warning),
        _ => (EventKind::PathChange, None, Severity::Information),
    };
    let v6 = n.is_multiple_of(3);
    Event {
        id: 0,
        time: JAN1 + 60.0 * f64::from(n),
        received: JAN1 + 60.0 * f64::from(n) + 0.5,
        kind,
        anomaly,
        severity,
        location: if n.is_multiple_of(2) {
            "contoso-seattle"
        } else {
            "fabrikam berlin"
        }
        .into(),
        prefix: if v6 {
            "2001:db8:100::/48"
        } else {
            "203.0.113.0/24"
        }
        .parse()
        .unwrap(),
        announced: if v6 {
            "2001:db8:100::/48"
        } else {
            "203.0.113.128/25"
        }
        .parse()
        .unwrap(),
        peer: Some(EventPeer {
            feed: "mrt".into(),
            source: "mrt".into(),
            address: "192.0.2.1".into(),
            asn: 64500,
        }),
        peer_as_name: None,
        origin: Some(64496),
        origin_as_name: None,
        as_path: Some("64500 64496".into()),
        previous_path: None,
        description: format!("event {n}"),
        rpki: None,
    }
}

/// A store holding events 0..count (event n has id n + 1).
fn store(count: u32) -> (tempfile::TempDir, EventStore) {
    let dir = tempfile::tempdir().unwrap();
    // The events' receive times are in 2024: keep them from age retention.
    let settings = StoreSettings {
        retention: Duration::from_secs(100 * 365 * 86_400),
        ..StoreSettings::default()
    };
    let store = EventStore::open_in(dir.path(), settings).unwrap();
    assert!(store.writer().send((0..count).map(event).collect()));
    assert_eq!(store.writer().flush(T).unwrap(), u64::from(count));
    (dir, store)
}

async fn get(app: &Router, uri: &str) -> (StatusCode, Value) {
    let resp = app
        .clone()
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    assert_eq!(
        resp.headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap()),
        Some("application/json"),
        "{uri}"
    );
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, serde_json::from_slice(&body).unwrap())
}

/// The descriptions' numbers of a 200 answer, and its next cursor.
async fn ok(app: &Router, uri: &str) -> (Vec<u32>, Option<String>) {
    let (status, body) = get(app, uri).await;
    assert_eq!(status, StatusCode::OK, "{uri}: {body}");
    let events = body["events"].as_array().unwrap();
    let ns = events
        .iter()
        .map(|e| {
            e["description"].as_str().unwrap()["event ".len()..]
                .parse()
                .unwrap()
        })
        .collect();
    (ns, body["next_cursor"].as_str().map(String::from))
}

/// Asserts a 400 naming `parameter`, and returns the message.
async fn bad(app: &Router, uri: &str, parameter: &str) -> String {
    let (status, body) = get(app, uri).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
    assert_eq!(body["parameter"], parameter, "{uri}: {body}");
    let obj = body.as_object().unwrap();
    assert_eq!(obj.len(), 2, "exactly error and parameter: {body}");
    let msg = body["error"].as_str().unwrap().to_string();
    assert!(!msg.is_empty());
    msg
}

fn newest_first(ns: impl DoubleEndedIterator<Item = u32>) -> Vec<u32> {
    ns.rev().collect()
}

#[tokio::test]
async fn no_parameters_gives_the_newest_100_with_every_field() {
    let (_d, s) = store(150);
    let app = events_router(s.reader());
    let (status, body) = get(&app, EVENTS_PATH).await;
    assert_eq!(status, StatusCode::OK);
    let events = body["events"].as_array().unwrap();
    assert_eq!(events.len(), 100, "default limit");
    assert!(body["next_cursor"].is_string());
    let e = &events[0];
    assert_eq!(
        *e,
        serde_json::json!({
            "id": 150,
            "time": "2024-01-01T02:29:00Z",
            "received": "2024-01-01T02:29:00.5Z",
            "kind": "anomaly_resolved",
            "anomaly": "origin_mismatch",
            "severity": "information",
            "location": "fabrikam berlin",
            "prefix": "203.0.113.0/24",
            "announced": "203.0.113.128/25",
            "peer": {"feed": "mrt", "source": "mrt", "address": "192.0.2.1", "asn": 64500},
            "origin": 64496,
            "as_path": [64500, 64496],
            "previous_path": null,
            "description": "event 149"
        })
    );
    assert_eq!(events[99]["description"], "event 50");
}

#[tokio::test]
async fn pagination_walks_every_event_once() {
    let (_d, s) = store(25);
    let app = events_router(s.reader());
    let mut uri = format!("{EVENTS_PATH}?limit=10");
    let mut all = Vec::new();
    let mut sizes = Vec::new();
    loop {
        let (ns, next) = ok(&app, &uri).await;
        sizes.push(ns.len());
        all.extend(ns);
        match next {
            Some(c) => uri = format!("{EVENTS_PATH}?limit=10&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(sizes, [10, 10, 5]);
    assert_eq!(all, newest_first(0..25));
    // With a filter, the cursor keeps the filter's order (parameters in any order).
    let (first, next) = ok(&app, &format!("{EVENTS_PATH}?severity=warning&limit=3")).await;
    assert_eq!(first, [24, 22, 20]);
    let (second, next) = ok(
        &app,
        &format!(
            "{EVENTS_PATH}?cursor={}&limit=3&severity=warning",
            next.unwrap()
        ),
    )
    .await;
    assert_eq!(second, [18, 16, 14]);
    assert!(next.is_some());
    // A page ending exactly at the last event has no cursor.
    let (ns, next) = ok(&app, &format!("{EVENTS_PATH}?limit=25")).await;
    assert_eq!((ns.len(), next), (25, None));
}

#[tokio::test]
async fn limit() {
    let (_d, s) = store(1001);
    let app = events_router(s.reader());
    assert_eq!(ok(&app, &format!("{EVENTS_PATH}?limit=1")).await.0, [1000]);
    let (ns, next) = ok(&app, &format!("{EVENTS_PATH}?limit=1000")).await;
    assert_eq!((ns.len(), next.is_some()), (1000, true));
    for v in [
        "0",
        "1001",
        "-1",
        "abc",
        "1.5",
        "+5",
        "1e2",
        "99999999999999999999999",
        "%205",
    ] {
        let msg = bad(&app, &format!("{EVENTS_PATH}?limit={v}"), "limit").await;
        assert!(msg.contains("1..=1000"), "{msg}");
    }
}

#[tokio::test]
async fn since_and_until_take_epoch_seconds_or_rfc3339() {
    let (_d, s) = store(10);
    let app = events_router(s.reader());
    let t = |n: u32| JAN1 + 60.0 * f64::from(n);
    // since is inclusive, until exclusive; both forms agree.
    let want_since = newest_first(3..10);
    assert_eq!(
        ok(&app, &format!("{EVENTS_PATH}?since={}", t(3))).await.0,
        want_since
    );
    assert_eq!(
        ok(&app, &format!("{EVENTS_PATH}?since=2024-01-01T00:03:00Z"))
            .await
            .0,
        want_since
    );
    assert_eq!(
        ok(
            &app,
            &format!("{EVENTS_PATH}?since=2024-01-01T01:03:00%2B01:00")
        )
        .await
        .0,
        want_since,
        "an offset (+ percent-encoded)"
    );
    assert_eq!(
        ok(&app, &format!("{EVENTS_PATH}?since={}", t(3) - 0.25))
            .await
            .0,
        want_since,
        "fractional seconds"
    );
    assert_eq!(
        ok(&app, &format!("{EVENTS_PATH}?until={}", t(3))).await.0,
        newest_first(0..3)
    );
    assert_eq!(
        ok(
            &app,
            &format!("{EVENTS_PATH}?until=2024-01-01T00:03:00.000Z")
        )
        .await
        .0,
        newest_first(0..3)
    );
    assert_eq!(
        ok(
            &app,
            &format!("{EVENTS_PATH}?since=2024-01-01T00:02:00Z&until={}", t(5))
        )
        .await
        .0,
        [4, 3, 2]
    );
    assert!(ok(&app, &format!("{EVENTS_PATH}?since={}", t(10)))
        .await
        .0
        .is_empty());
    for v in [
        "yesterday",
        "2024-01-01",
        "2024-01-01T00:00:00",
        "2024-02-30T00:00:00Z",
        "2024-01-01T25:00:00Z",
        "-5",
        "inf",
        "NaN",
        "1e9",
        "1704067200Z",
    ] {
        for p in ["since", "until"] {
            let msg = bad(&app, &format!("{EVENTS_PATH}?{p}={v}"), p).await;
            assert!(msg.contains("RFC 3339"), "{msg}");
        }
    }
    // until must be later than since.
    let msg = bad(
        &app,
        &format!("{EVENTS_PATH}?since={}&until={}", t(5), t(5)),
        "until",
    )
    .await;
    assert!(msg.contains("later than since"), "{msg}");
    bad(
        &app,
        &format!("{EVENTS_PATH}?until=2024-01-01T00:00:00Z&since=2024-01-02T00:00:00Z"),
        "until",
    )
    .await;
}

#[tokio::test]
async fn kind_is_an_event_kind_or_an_anomaly_kind() {
    let (_d, s) = store(12);
    let app = events_router(s.reader());
    let by = |k: u32| newest_first((0..12).filter(move |n| n % 4 == k));
    assert_eq!(
        ok(&app, &format!("{EVENTS_PATH}?kind=anomaly_opened"))
            .await
            .0,
        by(0)
    );
    assert_eq!(
        ok(&app, &format!("{EVENTS_PATH}?kind=anomaly_resolved"))
            .await
            .0,
        by(1)
    );
    assert_eq!(
        ok(&app, &format!("{EVENTS_PATH}?kind=origin_change"))
            .await
            .0,
        by(2)
    );
    assert_eq!(
        ok(&app, &format!("{EVENTS_PATH}?kind=path_change")).await.0,
        by(3)
    );
    assert!(ok(&app, &format!("{EVENTS_PATH}?kind=prefix_withdrawn"))
        .await
        .0
        .is_empty());
    // An anomaly kind matches opened and resolved events of that anomaly.
    assert_eq!(
        ok(&app, &format!("{EVENTS_PATH}?kind=origin_mismatch"))
            .await
            .0,
        newest_first((0..12).filter(|n| n % 4 < 2))
    );
    assert!(ok(&app, &format!("{EVENTS_PATH}?kind=moas"))
        .await
        .0
        .is_empty());
    for v in [
        "hijack",
        "ANOMALY_OPENED",
        "anomaly%20opened",
        "%FF",
        "origin_mismatch,moas",
    ] {
        let msg = bad(&app, &format!("{EVENTS_PATH}?kind={v}"), "kind").await;
        assert!(
            msg.contains("accepted: anomaly_opened") && msg.contains("origin_mismatch"),
            "the message lists the names: {msg}"
        );
    }
}

#[tokio::test]
async fn location_is_an_exact_name() {
    let (_d, s) = store(6);
    let app = events_router(s.reader());
    assert_eq!(
        ok(&app, &format!("{EVENTS_PATH}?location=contoso-seattle"))
            .await
            .0,
        [4, 2, 0]
    );
    // Percent-encoded and + for spaces.
    assert_eq!(
        ok(&app, &format!("{EVENTS_PATH}?location=fabrikam%20berlin"))
            .await
            .0,
        [5, 3, 1]
    );
    assert_eq!(
        ok(&app, &format!("{EVENTS_PATH}?location=fabrikam+berlin"))
            .await
            .0,
        [5, 3, 1]
    );
    // Unknown (or since removed) locations are not errors: nothing matches.
    assert!(ok(&app, &format!("{EVENTS_PATH}?location=contoso"))
        .await
        .0
        .is_empty());
    bad(&app, &format!("{EVENTS_PATH}?location=a%0Ab"), "location").await;
    bad(
        &app,
        &format!("{EVENTS_PATH}?location={}", "x".repeat(129)),
        "location",
    )
    .await;
}

#[tokio::test]
async fn prefix_is_a_registered_prefix() {
    let (_d, s) = store(6);
    let app = events_router(s.reader());
    assert_eq!(
        ok(&app, &format!("{EVENTS_PATH}?prefix=203.0.113.0/24"))
            .await
            .0,
        [5, 4, 2, 1]
    );
    assert_eq!(
        ok(&app, &format!("{EVENTS_PATH}?prefix=203.0.113.0%2F24"))
            .await
            .0,
        [5, 4, 2, 1]
    );
    // IPv6, written in a non-canonical way: matched after parsing.
    assert_eq!(
        ok(
            &app,
            &format!("{EVENTS_PATH}?prefix=2001:0db8:0100:0000::/48")
        )
        .await
        .0,
        [3, 0]
    );
    // The announced prefix is not the registered one.
    assert!(ok(&app, &format!("{EVENTS_PATH}?prefix=203.0.113.128/25"))
        .await
        .0
        .is_empty());
    for v in [
        "203.0.113.1/24",
        "203.0.113.0/33",
        "203.0.113.0",
        "banana",
        "2001:db8::/129",
    ] {
        bad(&app, &format!("{EVENTS_PATH}?prefix={v}"), "prefix").await;
    }
    let msg = bad(
        &app,
        &format!("{EVENTS_PATH}?prefix=203.0.113.1/24"),
        "prefix",
    )
    .await;
    assert!(msg.contains("did you mean 203.0.113.0/24"), "{msg}");
}

#[tokio::test]
async fn severity_is_this_or_higher() {
    let (_d, s) = store(8);
    let app = events_router(s.reader());
    assert_eq!(
        ok(&app, &format!("{EVENTS_PATH}?severity=information"))
            .await
            .0,
        newest_first(0..8)
    );
    assert_eq!(
        ok(&app, &format!("{EVENTS_PATH}?severity=warning")).await.0,
        [6, 4, 2, 0]
    );
    assert_eq!(
        ok(&app, &format!("{EVENTS_PATH}?severity=error")).await.0,
        [4, 0]
    );
    assert_eq!(
        ok(&app, &format!("{EVENTS_PATH}?severity=critical"))
            .await
            .0,
        [4, 0]
    );
    for v in ["high", "Critical", "3", "warn"] {
        let msg = bad(&app, &format!("{EVENTS_PATH}?severity={v}"), "severity").await;
        assert!(msg.contains("or higher"), "{msg}");
    }
}

#[tokio::test]
async fn cursor_must_come_from_the_api() {
    let (_d, s) = store(5);
    let app = events_router(s.reader());
    let (_, next) = ok(&app, &format!("{EVENTS_PATH}?limit=2")).await;
    let next = next.unwrap();
    assert_eq!(
        ok(&app, &format!("{EVENTS_PATH}?cursor={next}")).await.0,
        [2, 1, 0]
    );
    for v in [
        "garbage",
        "3",
        "v1.",
        "v1.zz",
        "v1.0",
        "v1.-3",
        "v2.3",
        "v1.10000000000000000",
    ] {
        let msg = bad(&app, &format!("{EVENTS_PATH}?cursor={v}"), "cursor").await;
        assert!(msg.contains("next_cursor"), "{msg}");
    }
}

#[tokio::test]
async fn unknown_repeated_and_empty_parameters() {
    let (_d, s) = store(3);
    let app = events_router(s.reader());
    let msg = bad(&app, &format!("{EVENTS_PATH}?sinse=0"), "sinse").await;
    assert!(
        msg.contains("unknown parameter") && msg.contains("since"),
        "{msg}"
    );
    bad(&app, &format!("{EVENTS_PATH}?limit=5&offset=5"), "offset").await;
    bad(&app, &format!("{EVENTS_PATH}?LIMIT=5"), "LIMIT").await;
    let msg = bad(
        &app,
        &format!("{EVENTS_PATH}?kind=moas&kind=path_change"),
        "kind",
    )
    .await;
    assert!(msg.contains("more than once"), "{msg}");
    for p in [
        "since", "until", "kind", "location", "prefix", "severity", "limit", "cursor",
    ] {
        let msg = bad(&app, &format!("{EVENTS_PATH}?{p}="), p).await;
        assert!(msg.contains("empty"), "{msg}");
        bad(&app, &format!("{EVENTS_PATH}?{p}"), p).await;
    }
    // An empty query string is no parameters.
    assert_eq!(ok(&app, &format!("{EVENTS_PATH}?")).await.0, [2, 1, 0]);
    // All parameters at once.
    let (ns, next) = ok(
        &app,
        &format!(
            "{EVENTS_PATH}?since=0&until=2030-01-01T00:00:00Z&kind=origin_mismatch\
             &location=contoso-seattle&prefix=2001:db8:100::/48&severity=critical&limit=5"
        ),
    )
    .await;
    assert_eq!((ns, next), (vec![0], None));
}

#[tokio::test]
async fn a_store_that_cannot_be_read_is_503() {
    let dir = tempfile::tempdir().unwrap();
    let app = events_router(EventReader::new(&dir.path().join("missing.sqlite"), T));
    let (status, body) = get(&app, EVENTS_PATH).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        body["error"].as_str().unwrap().contains("unavailable"),
        "{body}"
    );
    // Parameters are still checked first.
    bad(&app, &format!("{EVENTS_PATH}?limit=0"), "limit").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merged_into_a_router_and_served_on_a_listener() {
    let (_d, s) = store(3);
    let app = Router::new()
        .route("/live", axum::routing::get(|| async { "ok\n" }))
        .merge(events_router(s.reader()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let fetch = |path: String| async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
        let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        sock.write_all(req.as_bytes()).await.unwrap();
        let mut out = String::new();
        sock.read_to_string(&mut out).await.unwrap();
        out
    };
    let live = fetch("/live".into()).await;
    assert!(live.starts_with("HTTP/1.1 200"), "{live}");
    let resp = fetch(format!("{EVENTS_PATH}?limit=2")).await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    let body: Value = serde_json::from_str(resp.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(body["events"].as_array().unwrap().len(), 2);
    assert_eq!(body["next_cursor"], "v1.2");
    let resp = fetch(format!("{EVENTS_PATH}?kind=nope")).await;
    assert!(resp.starts_with("HTTP/1.1 400"), "{resp}");
    server.abort();
}
