//! Tests of `status_page`.

use super::*;
use crate::engine::{AnomalyKind, AnomalySummary};
use crate::ingest::bmp::listener::PeerStatus;
use crate::registry::Registry;
use axum::body::Body;
use std::sync::Arc;
use tower::ServiceExt;

const HOSTILE: &str = "<script>alert(1)</script>\"'&";

fn anomaly(i: u32) -> AnomalySummary {
    AnomalySummary {
        kind: AnomalyKind::OriginMismatch,
        severity: Severity::Critical,
        location: HOSTILE.into(),
        prefix: "203.0.113.0/24".parse().unwrap_or_else(|_| unreachable!()),
        announced: "203.0.113.0/24".parse().unwrap_or_else(|_| unreachable!()),
        asn: Some(64_666 + i),
        open: true,
        state: crate::engine::AnomalyPhase::Open,
        peers: 3,
        first_seen: 1_700_000_000.0,
        opened_at: Some(1_700_000_000.0),
        last_seen: 1_700_000_100.0,
        example_path: Some(Arc::new(crate::model::AsPath::from_sequence(
            &std::iter::once(3356)
                .chain(std::iter::repeat_n(64666, 200))
                .collect::<Vec<_>>(),
        ))),
        flaps: 0,
        resolving_since: None,
        leak: None,
    }
}

/// A snapshot at the page's limits: a full page of everything, 100,000 anomalies held, a
/// router with a hostile sysName and a huge sysDescr.
fn snapshot() -> Snapshot {
    let prefix = |i: u32| PrefixSummary {
        location: HOSTILE.into(),
        prefix: format!("10.{}.{}.0/24", i / 256, i % 256)
            .parse()
            .unwrap_or_else(|_| unreachable!()),
        visibility: i,
        origins: (0..20).map(|a| 64_500 + a).collect(),
        sample_paths: vec![],
        more_specifics: vec![],
        announcements: 1,
        withdrawals: 0,
        path_changes: 0,
        last_change: Some(1_700_000_000.0),
        anomalies: vec![],
    };
    let router = RouterStatus {
        router: HOSTILE.into(),
        remote: "127.0.0.1:5000".parse().unwrap_or_else(|_| unreachable!()),
        sys_name: Some(format!("{HOSTILE}-sys")),
        sys_descr: Some("<img src=x onerror=alert(2)>".repeat(1000)),
        dns_name: None,
        configured: false,
        state: "up",
        since: 1_700_000_000.0,
        initial_tables_complete: true,
        last_message: Some(1_700_000_050.0),
        messages: Default::default(),
        routes_processed: 10,
        routes_matched: 5,
        peers: vec![PeerStatus {
            address: "192.0.2.1".parse().unwrap_or_else(|_| unreachable!()),
            asn: 64510,
            bgp_id: "192.0.2.1".parse().unwrap_or_else(|_| unreachable!()),
            peer_type: "global",
            distinguisher: None,
            state: "up",
            since: 1_700_000_000.0,
            initial_table_complete: true,
            role: None,
        }],
    };
    Snapshot {
        status: StatusBody {
            version: "9.9.9",
            ready: true,
            locations: 1,
            registered_prefixes: 120,
            tracked_routes: 1_234_567,
            peers: 12,
            mrt_files_processed: 3,
            routers: vec![router; MAX_ROUTER_ROWS + 3],
        },
        anomalies: AnomalyOverview {
            top: (0..MAX_ANOMALY_ROWS as u32).map(anomaly).collect(),
            total: 100_000,
            open: 100_000,
            pending: 0,
            resolving: 0,
            by_severity: [0, 0, 0, 100_000],
        },
        prefixes: Page {
            items: (0..MAX_PREFIX_ROWS as u32).map(prefix).collect(),
            next: Some(MAX_PREFIX_ROWS as PrefixId),
        },
        locations: vec![LocationInfo {
            name: HOSTILE.into(),
            provider: Some("AT&T".into()),
            region: Some("<i>x</i>".into()),
            origin_asns: vec![64_500],
            prefixes: 120,
        }],
        feeds: vec![],
        rpki: (0, None, 0),
        rtr: (Vec::new(), false),
        taken_at: 1_700_000_100.0,
    }
}

fn page_data(mut snapshot: Snapshot) -> PageData {
    let dns = crate::dns::Enricher::disabled();
    let anomalies = names::name_anomalies(&dns, std::mem::take(&mut snapshot.anomalies.top));
    let prefixes = names::name_prefixes(&dns, std::mem::take(&mut snapshot.prefixes.items));
    PageData {
        host: "<host>".into(),
        snapshot,
        anomalies,
        prefixes,
        events: RecentEvents::Disabled,
        now: 1_700_000_160.0,
    }
}

#[test]
fn a_full_page_is_escaped_capped_and_bounded() {
    let html = render(&page_data(snapshot()));
    assert!(!html.contains("<script"), "unescaped markup");
    assert!(!html.contains("<img"), "unescaped markup");
    assert!(!html.contains("<i>x"), "unescaped markup");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#39;&amp;"));
    assert!(html.contains("AT&amp;T · &lt;i&gt;x&lt;/i&gt;"));
    assert!(html.contains("instance <b>&lt;host&gt;</b>"));
    assert!(html.contains("<meta http-equiv=\"refresh\" content=\"30\">"));
    // Every section capped, with the count of the rest and where to find them.
    assert_eq!(
        html.matches("<tr><td><span class=\"badge crit\">").count(),
        MAX_ANOMALY_ROWS
    );
    assert!(html.contains("99,950 more anomalies not shown — see <a href=\"/api/v1/anomalies\">"));
    assert!(html.contains("70 more prefixes not shown — see <a href=\"/api/v1/prefixes\">"));
    assert!(html.contains("3 more routers not shown — see <a href=\"/api/v1/status\">"));
    // Origins: 8 shown of 20, the unexpected ones marked.
    assert!(html.contains("+12 more"));
    assert!(html.contains("<span class=\"asn bad\">AS64501</span>"));
    assert!(html.contains("<span class=\"asn \">AS64500</span>"));
    // Times: RFC 3339 UTC and how long ago.
    assert!(html.contains("<time datetime=\"2023-11-14T22:13:20Z\">2023-11-14T22:13:20Z</time><span class=\"ago\">2 min ago</span>"));
    // Long network text is cut: the page stays small whatever the routers send.
    assert!(html.len() < 400 * 1024, "{} bytes", html.len());
    assert!(html.contains("The event history is off"));
}

#[test]
fn an_empty_daemon_says_so() {
    let mut s = snapshot();
    s.anomalies = AnomalyOverview::default();
    s.prefixes.items.clear();
    s.prefixes.next = None;
    s.status.routers.clear();
    s.status.ready = false;
    let mut d = page_data(s);
    d.events = RecentEvents::Loaded(vec![], false);
    let html = render(&d);
    assert!(html.contains("No anomaly: every registered prefix is announced as expected."));
    assert!(html.contains("not ready: initial data loading"));
    assert!(html.contains("No event recorded yet."));
    assert!(!html.contains("more anomalies"));
}

/// The guard's answers without a daemon: 401 before anything else, 503 with no permit left,
/// and a page built from what the engine task answers.
#[tokio::test]
async fn the_guard_refuses_without_a_token_and_when_saturated() {
    let registry = Registry::new(vec![Location {
        name: "x".into(),
        provider: None,
        provider_asns: vec![],
        region: None,
        origin_asns: vec![64496],
        prefixes: vec!["203.0.113.0/24".parse().unwrap_or_else(|_| unreachable!())],
        max_length: None,
        max_length_v6: None,
        min_peers: 1,
        min_visibility: 0,
    }])
    .unwrap_or_else(|e| panic!("{e}"));
    let metrics = crate::metrics::Metrics::new(&registry, 10).unwrap_or_else(|e| panic!("{e}"));
    let http_metrics = super::super::metrics::HttpMetrics::new(metrics.registry())
        .unwrap_or_else(|e| panic!("{e}"));
    let (queries, mut engine) = tokio::sync::mpsc::channel(4);
    tokio::spawn(async move {
        while let Some(q) = engine.recv().await {
            if let Query::StatusPage(tx) = q {
                let _ = tx.send(snapshot());
            }
        }
    });
    let app = |tokens: Option<&str>, permits: usize| {
        router(
            AppState {
                metrics: metrics.exporter(),
                ready: Arc::default(),
                queries: queries.clone(),
                reloads: tokio::sync::mpsc::channel(1).0,
                dns: crate::dns::Enricher::disabled(),
                tokens: tokens.map(|t| {
                    super::super::auth::Tokens::parse(t).unwrap_or_else(|e| panic!("{e}"))
                }),
                api_permits: Arc::new(tokio::sync::Semaphore::new(permits)),
                http_metrics: http_metrics.clone(),
            },
            None,
        )
    };
    let get = |app: Router, auth: Option<&'static str>| async move {
        let mut req = axum::http::Request::get("/");
        if let Some(a) = auth {
            req = req.header(header::AUTHORIZATION, a);
        }
        let r = app
            .oneshot(req.body(Body::empty()).unwrap_or_else(|_| unreachable!()))
            .await
            .unwrap_or_else(|e| match e {});
        let status = r.status();
        let headers = r.headers().clone();
        let body = axum::body::to_bytes(r.into_body(), 1 << 20)
            .await
            .unwrap_or_default();
        (status, headers, String::from_utf8_lossy(&body).into_owned())
    };
    const TOKEN: &str = "0123456789abcdef";
    let (status, headers, body) = get(app(Some(TOKEN), 0), None).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the token is checked first"
    );
    let challenges: Vec<_> = headers.get_all(header::WWW_AUTHENTICATE).iter().collect();
    assert_eq!(challenges.len(), 2);
    assert!(body.contains("Sign-in required"));
    let (status, headers, body) = get(app(Some(TOKEN), 0), Some("Bearer 0123456789abcdef")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        headers.get(header::RETRY_AFTER).map(|v| v.as_bytes()),
        Some(&b"1"[..])
    );
    assert!(
        body.contains("Busy") && body.contains("max-api-requests"),
        "{body}"
    );
    let (status, headers, body) = get(app(None, 1), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        headers.get(header::CONTENT_TYPE).map(|v| v.as_bytes()),
        Some(&b"text/html; charset=utf-8"[..])
    );
    assert!(body.contains("99,950 more anomalies"), "{body}");
    assert!(!body.contains("<script"));
    let text = metrics.exporter().render();
    assert!(text.contains("routewatch_http_requests_rejected_total{reason=\"api_busy\"} 1"));
    assert!(text.contains("routewatch_http_requests_rejected_total{reason=\"unauthorized\"} 1"));
}

#[test]
fn escapes_markup_and_cuts_long_text() {
    assert_eq!(
        esc("<script>alert('x')</script> & \"q\"").to_string(),
        "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
    );
    assert_eq!(esc("a\u{0}b").to_string(), "a\u{fffd}b");
    let long = "x".repeat(MAX_TEXT + 50);
    let cut = esc(&long).to_string();
    assert_eq!(cut.chars().count(), MAX_TEXT + 1);
    assert!(cut.ends_with('…'));
    let long = "y".repeat(MAX_DESCRIPTION + 50);
    let cut = esc_description(&long).to_string();
    assert_eq!(cut.chars().count(), MAX_DESCRIPTION + 1);
    assert_eq!(esc_description("a<b").to_string(), "a&lt;b");
}

#[test]
fn numbers_and_relative_times() {
    assert_eq!(thousands(0), "0");
    assert_eq!(thousands(999), "999");
    assert_eq!(thousands(1000), "1,000");
    assert_eq!(thousands(270_005), "270,005");
    assert_eq!(thousands(1_234_567_890), "1,234,567,890");
    let now = 1_700_000_000.0;
    assert_eq!(ago(now - 5.4, now), "5 s ago");
    assert_eq!(ago(now - 125.0, now), "2 min ago");
    assert_eq!(ago(now - 3.0 * 3600.0, now), "3 h ago");
    assert_eq!(ago(now - 47.0 * 3600.0, now), "47 h ago");
    assert_eq!(ago(now - 3650.0 * 86_400.0, now), "3,650 d ago");
    assert_eq!(ago(now + 90.0, now), "in 1 min");
}
