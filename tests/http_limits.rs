//! The HTTP listener exposed safely (issue 12, points 4 and 6), against the real daemon on
//! loopback: the connection cap and its eviction of idle connections, the header-read and idle
//! timeouts, the API's concurrency cap (503) while `/metrics` answers, paged lists, bearer
//! tokens and TLS. Every wait is bounded; every daemon is stopped by pid.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::daemon::{http_get, http_request_with, parse_response, Daemon, Exposition};
use support::{demo_locations, encode_updates, fixture, DaemonConfig, Location, DEMO_RIB};

const TOKEN: &str = "test-token-0123456789abcdef";

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_secs(2),
    )
    .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Whether the server closed `s` (EOF or reset) within `within`.
fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false
            }
            Err(_) => return true,
        }
    }
}

/// `/metrics`, timed.
fn timed_scrape(port: u16) -> (Duration, Exposition) {
    let t = Instant::now();
    let r = http_get(port, "/metrics").unwrap();
    let took = t.elapsed();
    assert_eq!(r.status, 200);
    (took, Exposition::parse(&r.text()).unwrap())
}

fn rejected(m: &Exposition, reason: &str) -> f64 {
    m.value(
        "routewatch_http_connections_rejected_total",
        &[("reason", reason)],
    )
}

#[test]
fn idle_connections_beyond_the_cap_are_closed_and_counted_while_metrics_answers() {
    let dir = tempfile::tempdir().unwrap();
    let config = DaemonConfig::new()
        .http("max-connections = 50\nheader-read-timeout-seconds = 30\nidle-timeout-seconds = 60")
        .locations_toml(&demo_locations());
    let file = config.write(dir.path());
    let mut daemon = Daemon::start(&file);
    daemon.wait_ready();

    // 300 connections that never send a byte: six times the cap.
    let mut idle: Vec<TcpStream> = (0..300).map(|_| connect(daemon.port)).collect();
    // /metrics still answers, promptly, on a new connection each time.
    let mut worst = Duration::ZERO;
    let mut m = None;
    for _ in 0..5 {
        let (took, scrape) = timed_scrape(daemon.port);
        worst = worst.max(took);
        m = Some(scrape);
    }
    assert!(worst < Duration::from_secs(2), "/metrics took {worst:?}");
    let m = m.unwrap();
    let open = m.value("routewatch_http_connections_open", &[]);
    assert!(open <= 50.0, "open connections {open} above the cap");
    // The oldest idle connections were closed to make room: at least 250 of 300 (plus the
    // scrapes), counted.
    let evicted = rejected(&m, "evicted");
    assert!(evicted >= 250.0, "evicted {evicted}");
    let mut closed = 0;
    for s in idle.iter_mut().take(200) {
        if closed_within(s, Duration::from_millis(200)) {
            closed += 1;
        }
    }
    assert_eq!(closed, 200, "the 200 oldest idle connections are closed");
    assert_eq!(rejected(&m, "max_connections"), 0.0);
    daemon.terminate_cleanly();
}

#[test]
fn a_slowloris_is_closed_after_the_header_timeout_and_an_idle_keepalive_after_the_idle_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let config = DaemonConfig::new()
        .http("header-read-timeout-seconds = 1\nidle-timeout-seconds = 2")
        .locations_toml(&demo_locations());
    let file = config.write(dir.path());
    let mut daemon = Daemon::start(&file);
    daemon.wait_ready();

    // A request head trickled one header line every 200 ms: closed after about 1 s.
    let mut slow = connect(daemon.port);
    let start = Instant::now();
    slow.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let mut closed = false;
    for i in 0..40 {
        std::thread::sleep(Duration::from_millis(200));
        if slow
            .write_all(format!("X-Slow-{i}: 1\r\n").as_bytes())
            .is_err()
            || closed_within(&mut slow, Duration::from_millis(1))
        {
            closed = true;
            break;
        }
    }
    let took = start.elapsed();
    assert!(closed, "the slowloris was not closed");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "closed after {took:?}"
    );

    // A silent connection is closed after the header timeout too.
    let mut silent = connect(daemon.port);
    assert!(closed_within(&mut silent, Duration::from_secs(4)));

    // A kept-alive connection after a complete answer: open past the header timeout, closed
    // after the idle timeout.
    let mut kept = connect(daemon.port);
    kept.write_all(b"GET /live HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = kept.read(&mut buf).unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{:?}", &buf[..n]);
    let start = Instant::now();
    assert!(closed_within(&mut kept, Duration::from_secs(5)));
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(4),
        "kept-alive connection closed after {took:?}"
    );

    let m = daemon.scrape();
    assert!(rejected(&m, "header_timeout") >= 2.0);
    assert!(rejected(&m, "idle_timeout") >= 1.0);
    daemon.terminate_cleanly();
}

/// `n` registered /24s in one location.
fn many_prefixes(n: usize) -> Location {
    let prefixes: Vec<String> = (0..n)
        .map(|i| format!("10.{}.{}.0/24", i / 256, i % 256))
        .collect();
    Location::new("many", &[64496], &prefixes)
}

#[test]
fn the_api_answers_503_when_saturated_while_metrics_answers() {
    let dir = tempfile::tempdir().unwrap();
    let config = DaemonConfig::new()
        .http("max-api-requests = 1")
        .location(many_prefixes(3000));
    let file = config.write(dir.path());
    let mut daemon = Daemon::start(&file);
    daemon.wait_ready();
    let port = daemon.port;

    let barrier = Arc::new(std::sync::Barrier::new(17));
    let clients: Vec<_> = (0..16)
        .map(|_| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                let mut codes = Vec::new();
                for _ in 0..15 {
                    let r = http_get(port, "/api/v1/prefixes?limit=1000").unwrap();
                    if r.status == 503 {
                        assert_eq!(r.header("retry-after"), Some("1"));
                        assert!(r.text().contains("busy"), "{}", r.text());
                    }
                    codes.push(r.status);
                }
                codes
            })
        })
        .collect();
    barrier.wait();
    let mut scrapes = Vec::new();
    while !clients.iter().all(|c| c.is_finished()) && scrapes.len() < 200 {
        scrapes.push(timed_scrape(port).0);
    }
    let codes: Vec<u16> = clients
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    let busy = codes.iter().filter(|&&c| c == 503).count();
    assert!(codes.iter().all(|&c| c == 200 || c == 503), "{codes:?}");
    assert!(busy > 0, "no 503 among {} requests", codes.len());
    assert!(codes.contains(&200));
    let worst = scrapes.iter().max().copied().unwrap_or_default();
    assert!(
        !scrapes.is_empty() && worst < Duration::from_secs(2),
        "/metrics took {worst:?}"
    );
    // /live and /ready pass the API's cap too.
    assert_eq!(daemon.get("/live").status, 200);
    let m = daemon.scrape();
    assert_eq!(
        m.value(
            "routewatch_http_requests_rejected_total",
            &[("reason", "api_busy")]
        ),
        busy as f64
    );
    daemon.terminate_cleanly();
}

#[test]
fn api_lists_are_paged_with_a_capped_limit_and_bad_parameters_are_400() {
    let dir = tempfile::tempdir().unwrap();
    let t = support::DEMO_RIB_TIME;
    let att = ("12.0.1.63", 7018);
    let ntt = ("129.250.0.11", 2914);
    let updates = dir.path().join("hijacks.mrt");
    std::fs::write(
        &updates,
        encode_updates(&[
            support::announce(t + 60.0, att, "8.8.8.0/24", &[7018, 64666]),
            support::announce(t + 61.0, att, "8.8.8.0/25", &[7018, 64666]),
            support::announce(t + 62.0, ntt, "1.0.0.0/24", &[2914, 64667]),
            support::announce(t + 63.0, att, "1.0.0.0/24", &[7018, 64668]),
        ]),
    )
    .unwrap();
    let config = DaemonConfig::new()
        .mrt_files(&[fixture(DEMO_RIB), updates])
        .locations_toml(&demo_locations());
    let file = config.write(dir.path());
    let mut daemon = Daemon::start(&file);
    daemon.wait_ready();

    for (list, key) in [
        ("/api/v1/prefixes", "prefixes"),
        ("/api/v1/anomalies", "anomalies"),
    ] {
        let whole = daemon.get_ok(&format!("{list}?limit=1000")).json();
        let all = whole[key].as_array().unwrap().clone();
        assert!(all.len() >= 3, "{list}: {whole}");
        assert_eq!(whole["next_cursor"], serde_json::Value::Null);
        assert_eq!(whole["next"], serde_json::Value::Null);
        // The default page holds them all (fewer than 100).
        assert_eq!(daemon.get_ok(list).json()[key].as_array().unwrap(), &all);
        // One at a time, following `next`.
        let mut got = Vec::new();
        let mut path = format!("{list}?limit=1");
        for _ in 0..=all.len() {
            let page = daemon.get_ok(&path).json();
            let items = page[key].as_array().unwrap();
            assert!(items.len() <= 1, "{page}");
            got.extend(items.iter().cloned());
            match page["next"].as_str() {
                Some(next) => {
                    let cursor = page["next_cursor"].as_str().unwrap();
                    assert!(next.starts_with(&format!("{list}?limit=1&cursor=")));
                    assert!(next.ends_with(cursor));
                    path = next.to_string();
                }
                None => break,
            }
        }
        assert_eq!(got, all, "{list}: pages concatenate to the whole list");

        for (query, param) in [
            ("limit=1001", "limit"),
            ("limit=0", "limit"),
            ("limit=ten", "limit"),
            ("limit=", "limit"),
            ("limit=1&limit=2", "limit"),
            ("cursor=v1.5", "cursor"),
            ("cursor=p1~zz", "cursor"),
            ("offset=3", "offset"),
        ] {
            let r = daemon.get(&format!("{list}?{query}"));
            assert_eq!(r.status, 400, "{list}?{query}: {}", r.text());
            assert_eq!(r.json()["parameter"], param, "{list}?{query}");
        }
    }
    daemon.terminate_cleanly();
}

#[test]
fn bearer_tokens_guard_the_api_and_reload_but_not_metrics_or_health() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(
        &tokens,
        format!("# operators\n\nanother-token-0123456789\n  {TOKEN}  \n"),
    )
    .unwrap();
    let config = DaemonConfig::new()
        .http(&format!(
            "token-file = {}",
            support::daemon::toml_path(&tokens)
        ))
        .locations_toml(&demo_locations());
    let file = config.write(dir.path());
    let mut daemon = Daemon::start(&file);
    daemon.wait_ready();
    let port = daemon.port;
    let bearer = format!("Bearer {TOKEN}");

    let mut unauthorized = 0;
    for (method, path) in [
        ("GET", "/api/v1/status"),
        ("GET", "/api/v1/prefixes"),
        ("GET", "/api/v1/anomalies"),
        ("GET", "/api/v1/events"),
        ("POST", "/-/reload"),
    ] {
        for headers in [
            vec![],
            vec![("Authorization", "Bearer wrong-token-0123456789abc")],
            vec![("Authorization", "Basic dXNlcjpwYXNz")],
        ] {
            let r = http_request_with(port, method, path, &headers).unwrap();
            assert_eq!(r.status, 401, "{method} {path} {headers:?}: {}", r.text());
            assert!(
                r.header("www-authenticate")
                    .is_some_and(|v| v.starts_with("Bearer")),
                "{:?}",
                r.headers
            );
            unauthorized += 1;
        }
        let r = http_request_with(port, method, path, &[("Authorization", &bearer)]).unwrap();
        assert_eq!(r.status, 200, "{method} {path}: {}", r.text());
    }
    for path in ["/metrics", "/live", "/ready"] {
        assert_eq!(daemon.get(path).status, 200, "{path} stays open");
    }
    let m = daemon.scrape();
    assert_eq!(
        m.value(
            "routewatch_http_requests_rejected_total",
            &[("reason", "unauthorized")]
        ),
        unauthorized as f64
    );
    assert!(!daemon.log().contains(TOKEN), "a token in the log");
    daemon.terminate_cleanly();
}

/// A self-signed certificate for 127.0.0.1 and localhost: (cert PEM, key PEM, cert DER).
fn self_signed() -> (String, String, Vec<u8>) {
    let key = rcgen::KeyPair::generate().unwrap();
    let params =
        rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem(), cert.der().to_vec())
}

/// `GET path` over TLS trusting only `ca_der`.
fn tls_get(port: u16, path: &str, ca_der: &[u8]) -> std::io::Result<support::daemon::HttpResponse> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(ca_der.to_vec()))
        .unwrap();
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let tcp = TcpStream::connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_secs(2),
    )?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    write!(
        tls,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    match tls.read_to_end(&mut raw) {
        Ok(_) => {}
        // The server closes without close_notify after Connection: close on some paths.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => {}
        Err(e) => return Err(e),
    }
    parse_response(&raw)
}

#[test]
fn tls_serves_with_the_configured_certificate_and_refuses_plain_http() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, der) = self_signed();
    let (cert_file, key_file) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_file, cert).unwrap();
    std::fs::write(&key_file, key).unwrap();
    let config = DaemonConfig::new()
        .http(&format!(
            "tls-cert = {}\ntls-key = {}",
            support::daemon::toml_path(&cert_file),
            support::daemon::toml_path(&key_file)
        ))
        .locations_toml(&demo_locations());
    let file = config.write(dir.path());
    let mut daemon = Daemon::start(&file);
    let port = daemon.port;
    let ready = support::daemon::poll("/ready over TLS", Duration::from_secs(30), || {
        daemon.assert_running();
        match tls_get(port, "/ready", &der) {
            Ok(r) if r.status == 200 => Ok(r),
            Ok(r) => Err(format!("status {}", r.status)),
            Err(e) => Err(e.to_string()),
        }
    });
    assert_eq!(ready.text(), "ready\n");
    let status = tls_get(port, "/api/v1/status", &der).unwrap();
    assert_eq!(status.status, 200);
    assert_eq!(status.json()["ready"], true);
    let metrics = tls_get(port, "/metrics", &der).unwrap();
    let m = Exposition::parse(&metrics.text()).unwrap();
    assert_eq!(rejected(&m, "tls_handshake"), 0.0);

    // Plain HTTP on the TLS port gets no HTTP answer, and is counted.
    let plain = http_get(port, "/metrics");
    assert!(plain.is_err() || plain.is_ok_and(|r| r.status != 200));
    let metrics = tls_get(port, "/metrics", &der).unwrap();
    let m = Exposition::parse(&metrics.text()).unwrap();
    assert_eq!(rejected(&m, "tls_handshake"), 1.0);
    // A client that does not trust the certificate fails the handshake.
    let (_, _, other) = self_signed();
    assert!(tls_get(port, "/metrics", &other).is_err());
    daemon.signal("TERM");
    assert!(daemon
        .wait_exit(Duration::from_secs(10))
        .is_some_and(|s| s.success()));
}

#[test]
fn config_refuses_half_a_tls_pair_and_a_bad_token_file() {
    let dir = tempfile::tempdir().unwrap();
    // Errors point at the value.
    let value_col = |line: &str| line.find(" = ").unwrap() + 4;
    support::assert_key_error(
        dir.path(),
        "http",
        "tls-cert = \"/etc/routewatch/cert.pem\"",
        12,
        "http.tls-cert: tls-cert is set but tls-key is not",
    );
    support::assert_key_error(
        dir.path(),
        "http",
        "tls-key = \"/etc/routewatch/key.pem\"",
        11,
        "http.tls-key: tls-key is set but tls-cert is not",
    );
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, "# nothing but a comment\n").unwrap();
    support::assert_key_error(
        dir.path(),
        "http",
        &format!("token-file = {}", support::daemon::toml_path(&tokens)),
        14,
        "no token in the file",
    );
    std::fs::write(&tokens, "short\n").unwrap();
    let err = support::section_error(
        dir.path(),
        "http",
        &format!("token-file = {}", support::daemon::toml_path(&tokens)),
    );
    assert!(
        err.contains("line 1:") && err.contains("16 to 4096"),
        "{err}"
    );
    assert!(!err.contains("short"), "the token is not echoed: {err}");
    for (line, key) in [
        ("max-connections = 0", "http.max-connections"),
        (
            "header-read-timeout-seconds = 0",
            "http.header-read-timeout-seconds",
        ),
        ("idle-timeout-seconds = 0", "http.idle-timeout-seconds"),
        ("max-api-requests = 0", "http.max-api-requests"),
    ] {
        support::assert_key_error(dir.path(), "http", line, value_col(line), key);
    }
    // The shipped file documents every [http] key at its default.
    let (_, c) = support::shipped_section(
        "http",
        &[
            "listen",
            "max-connections",
            "header-read-timeout-seconds",
            "idle-timeout-seconds",
            "max-api-requests",
        ],
    );
    assert_eq!(c.http.max_connections, 512);
    assert_eq!(c.http.max_api_requests, 8);
    assert!(c.http.tokens.is_none() && c.http.tls.is_none());
}
