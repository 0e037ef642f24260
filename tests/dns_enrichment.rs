#![allow(clippy::unwrap_used, clippy::expect_used)]
//! DNS enrichment (`routewatch::resolver`) against a DNS server started by the test on
//! 127.0.0.1 (a free UDP port; nothing leaves the machine): AS names through the Team Cymru TXT
//! interface, reverse DNS, the cache (hits, NXDOMAIN and failures cached negatively, TTL expiry,
//! size bound), timeouts, the concurrency bound, and answers that are malformed.
//!
//! The server is a small hand-written UDP responder: it parses the question (name, type) and
//! answers from a fixed table, counting queries per name and the most answered concurrently.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use routewatch::resolver::{Enricher, EnricherSettings};
use tokio::net::UdpSocket;

const TYPE_PTR: u16 = 12;
const TYPE_TXT: u16 = 16;
const RCODE_SERVFAIL: u8 = 2;
const RCODE_NXDOMAIN: u8 = 3;

/// How the test server answers one name.
enum Answer {
    /// NOERROR with these TXT records (each a list of character-strings) and TTL.
    Txt(Vec<Vec<&'static [u8]>>, u32),
    /// NOERROR with one TXT record built at run time, after a delay.
    SlowTxt(String, Duration),
    /// NOERROR with one PTR record.
    Ptr(&'static str, u32),
    /// NOERROR without records (no data).
    Empty,
    /// An error response code.
    Rcode(u8),
    /// No response at all.
    Silent,
}

/// The table of the test zone: `name` is lower case without the trailing dot.
fn answer_for(name: &str, qtype: u16) -> Answer {
    let asn = name
        .strip_prefix("as")
        .and_then(|n| n.strip_suffix(".asn.cymru.com"))
        .and_then(|n| n.parse::<u32>().ok());
    match (asn, qtype) {
        (Some(15169), TYPE_TXT) => Answer::Txt(
            vec![vec![b"15169 | US | arin | 2000-03-30 | GOOGLE, US"]],
            3600,
        ),
        (Some(1), _) => Answer::Rcode(RCODE_NXDOMAIN),
        (Some(2), _) => Answer::Silent,
        // Not UTF-8 and too few fields.
        (Some(3), TYPE_TXT) => Answer::Txt(vec![vec![b"\xff\xfe | garbage"]], 3600),
        // Several records: too few fields, another AS, then the right one (with a control char).
        (Some(4), TYPE_TXT) => Answer::Txt(
            vec![
                vec![b"not | enough"],
                vec![b"99 | US | ripencc | 2001-01-01 | WRONG-AS"],
                vec![b"4 | US | arin | 1990-01-01 | LEVEL3\x01, US"],
            ],
            3600,
        ),
        (Some(5), TYPE_TXT) => {
            Answer::Txt(vec![vec![b"5 | US | arin | 1990-01-01 | SHORT-TTL"]], 1)
        }
        // Latin-1, not UTF-8.
        (Some(6), TYPE_TXT) => Answer::Txt(
            vec![vec![b"6 | FR | ripencc | 1990-01-01 | CAF\xc9, FR"]],
            3600,
        ),
        (Some(7), _) => Answer::Rcode(RCODE_SERVFAIL),
        // One record split into two character-strings.
        (Some(8), TYPE_TXT) => Answer::Txt(
            vec![vec![b"8 | US | arin | 1990-01-01 | SPLIT", b"-NAME, US"]],
            3600,
        ),
        (Some(9), _) => Answer::Empty,
        (Some(n @ 1000..=1999), TYPE_TXT) => Answer::SlowTxt(
            format!("{n} | ZZ | ripencc | 2000-01-01 | SLOW-{n}, ZZ"),
            Duration::from_millis(150),
        ),
        _ if name == "1.2.0.192.in-addr.arpa" && qtype == TYPE_PTR => {
            Answer::Ptr("edge1.example.net", 3600)
        }
        _ => Answer::Rcode(RCODE_NXDOMAIN),
    }
}

#[derive(Default)]
struct ServerStats {
    per_name: Mutex<HashMap<String, usize>>,
    total: AtomicUsize,
    current: AtomicUsize,
    max_concurrent: AtomicUsize,
}

struct TestDns {
    addr: SocketAddr,
    stats: Arc<ServerStats>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestDns {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestDns {
    async fn start() -> TestDns {
        let sock = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let addr = sock.local_addr().unwrap();
        let stats = Arc::new(ServerStats::default());
        let st = Arc::clone(&stats);
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                let Ok((n, from)) = sock.recv_from(&mut buf).await else {
                    continue;
                };
                let Some(q) = parse_query(&buf[..n]) else {
                    continue;
                };
                st.total.fetch_add(1, Ordering::SeqCst);
                *st.per_name
                    .lock()
                    .unwrap()
                    .entry(q.name.clone())
                    .or_default() += 1;
                let now = st.current.fetch_add(1, Ordering::SeqCst) + 1;
                st.max_concurrent.fetch_max(now, Ordering::SeqCst);
                let (sock, st) = (Arc::clone(&sock), Arc::clone(&st));
                tokio::spawn(async move {
                    let reply = match answer_for(&q.name, q.qtype) {
                        Answer::Silent => None,
                        Answer::SlowTxt(text, delay) => {
                            tokio::time::sleep(delay).await;
                            Some(response(&q, 0, &txt_records(&[vec![text.as_bytes()]], 60)))
                        }
                        Answer::Txt(records, ttl) => {
                            Some(response(&q, 0, &txt_records(&records, ttl)))
                        }
                        Answer::Ptr(target, ttl) => {
                            Some(response(&q, 0, &[ptr_record(target, ttl)]))
                        }
                        Answer::Empty => Some(response(&q, 0, &[])),
                        Answer::Rcode(rcode) => Some(response(&q, rcode, &[])),
                    };
                    // A silent name stays "in flight" at the server: it never answers.
                    if let Some(reply) = reply {
                        st.current.fetch_sub(1, Ordering::SeqCst);
                        let _ = sock.send_to(&reply, from).await;
                    }
                });
            }
        });
        TestDns { addr, stats, task }
    }

    fn queries(&self, name: &str) -> usize {
        self.stats
            .per_name
            .lock()
            .unwrap()
            .get(name)
            .copied()
            .unwrap_or(0)
    }

    fn total(&self) -> usize {
        self.stats.total.load(Ordering::SeqCst)
    }

    /// Settings pointing at this server, with a short timeout and a single attempt.
    fn settings(&self) -> EnricherSettings {
        EnricherSettings {
            enabled: true,
            servers: Some(vec![self.addr]),
            timeout: Duration::from_millis(400),
            attempts: 1,
            ..EnricherSettings::default()
        }
    }
}

struct Query {
    id: [u8; 2],
    rd: bool,
    /// The question section as received (echoed in the response).
    question: Vec<u8>,
    /// Lower case, without the trailing dot.
    name: String,
    qtype: u16,
}

fn parse_query(b: &[u8]) -> Option<Query> {
    if b.len() < 12 || b[2] & 0x80 != 0 || u16::from_be_bytes([b[4], b[5]]) == 0 {
        return None;
    }
    let mut i = 12;
    let mut labels = Vec::new();
    loop {
        let len = *b.get(i)? as usize;
        i += 1;
        if len == 0 {
            break;
        }
        if len > 63 {
            return None; // no compression in questions
        }
        labels.push(String::from_utf8_lossy(b.get(i..i + len)?).to_ascii_lowercase());
        i += len;
    }
    let qtype = u16::from_be_bytes([*b.get(i)?, *b.get(i + 1)?]);
    b.get(i + 3)?;
    Some(Query {
        id: [b[0], b[1]],
        rd: b[2] & 0x01 != 0,
        question: b[12..i + 4].to_vec(),
        name: labels.join("."),
        qtype,
    })
}

/// One answer record: owner is the question name (compression pointer to offset 12).
fn record(rtype: u16, ttl: u32, rdata: &[u8]) -> Vec<u8> {
    let mut r = vec![0xC0, 0x0C];
    r.extend_from_slice(&rtype.to_be_bytes());
    r.extend_from_slice(&1u16.to_be_bytes()); // IN
    r.extend_from_slice(&ttl.to_be_bytes());
    r.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    r.extend_from_slice(rdata);
    r
}

fn txt_records(records: &[Vec<&[u8]>], ttl: u32) -> Vec<Vec<u8>> {
    records
        .iter()
        .map(|strings| {
            let mut rdata = Vec::new();
            for s in strings {
                rdata.push(s.len() as u8);
                rdata.extend_from_slice(s);
            }
            record(TYPE_TXT, ttl, &rdata)
        })
        .collect()
}

fn ptr_record(target: &str, ttl: u32) -> Vec<u8> {
    let mut rdata = Vec::new();
    for label in target.split('.') {
        rdata.push(label.len() as u8);
        rdata.extend_from_slice(label.as_bytes());
    }
    rdata.push(0);
    record(TYPE_PTR, ttl, &rdata)
}

fn response(q: &Query, rcode: u8, answers: &[Vec<u8>]) -> Vec<u8> {
    let mut m = Vec::with_capacity(512);
    m.extend_from_slice(&q.id);
    m.push(0x80 | u8::from(q.rd)); // QR, opcode 0, RD echoed
    m.push(0x80 | rcode); // RA
    m.extend_from_slice(&1u16.to_be_bytes());
    m.extend_from_slice(&(answers.len() as u16).to_be_bytes());
    m.extend_from_slice(&[0, 0, 0, 0]);
    m.extend_from_slice(&q.question);
    for a in answers {
        m.extend_from_slice(a);
    }
    m
}

fn cymru(asn: u32) -> String {
    format!("as{asn}.asn.cymru.com")
}

/// Polls `f` until it is true or `within` passes.
async fn eventually(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    f()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolves_as_and_router_names_and_serves_repeats_from_the_cache() {
    let dns = TestDns::start().await;
    let e = Enricher::new(dns.settings()).unwrap();
    assert!(e.is_enabled());

    assert_eq!(e.cached_as_name(15169), None, "nothing cached yet");
    assert_eq!(e.as_name(15169).await.as_deref(), Some("GOOGLE, US"));
    let router: IpAddr = "192.0.2.1".parse().unwrap();
    assert_eq!(
        e.router_name(router).await.as_deref(),
        Some("edge1.example.net")
    );
    assert_eq!(dns.queries(&cymru(15169)), 1);
    assert_eq!(dns.queries("1.2.0.192.in-addr.arpa"), 1);

    // Repeats: from the cache, no new query.
    for _ in 0..5 {
        assert_eq!(e.as_name(15169).await.as_deref(), Some("GOOGLE, US"));
        assert_eq!(
            e.router_name(router).await.as_deref(),
            Some("edge1.example.net")
        );
    }
    assert_eq!(
        e.cached_as_name(15169),
        Some(Some("GOOGLE, US".to_string()))
    );
    assert_eq!(
        e.cached_router_name(router),
        Some(Some("edge1.example.net".to_string()))
    );
    assert_eq!(e.prefetch([15169]), 0, "cached: nothing to prefetch");
    assert_eq!(dns.queries(&cymru(15169)), 1);
    assert_eq!(dns.queries("1.2.0.192.in-addr.arpa"), 1);
    assert_eq!(dns.total(), 2);
    let s = e.stats();
    assert_eq!((s.queries, s.found), (2, 2));
    assert!(s.cache_hits >= 12, "{s:?}");
    assert_eq!(s.cache_entries, 2);

    // Concurrent requests for one name share one query.
    let (a, b, c) = tokio::join!(e.as_name(1000), e.as_name(1000), e.as_name(1000));
    assert_eq!(a.as_deref(), Some("SLOW-1000, ZZ"));
    assert_eq!((a.clone(), a), (b, c));
    assert_eq!(dns.queries(&cymru(1000)), 1);

    // Prefetch fills the cache in the background.
    assert_eq!(e.prefetch([8, 8, 15169, 64512]), 1);
    assert!(
        eventually(Duration::from_secs(2), || e.cached_as_name(8).is_some()).await,
        "prefetched"
    );
    assert_eq!(e.cached_as_name(8), Some(Some("SPLIT-NAME, US".into())));
    assert_eq!(dns.queries(&cymru(8)), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nxdomain_and_failures_are_cached_negatively_until_the_negative_ttl() {
    let dns = TestDns::start().await;
    let e = Enricher::new(EnricherSettings {
        negative_ttl: Duration::from_secs(1),
        ..dns.settings()
    })
    .unwrap();
    let unknown: IpAddr = "192.0.2.99".parse().unwrap();
    for _ in 0..3 {
        assert_eq!(e.as_name(1).await, None, "NXDOMAIN");
        assert_eq!(e.as_name(7).await, None, "SERVFAIL");
        assert_eq!(e.as_name(9).await, None, "no data");
        assert_eq!(e.router_name(unknown).await, None, "PTR NXDOMAIN");
    }
    for name in [
        cymru(1),
        cymru(7),
        cymru(9),
        "99.2.0.192.in-addr.arpa".into(),
    ] {
        assert_eq!(dns.queries(&name), 1, "{name} asked once");
    }
    assert_eq!(e.cached_as_name(1), Some(None));
    assert_eq!(e.cached_as_name(7), Some(None));
    assert_eq!(e.cached_router_name(unknown), Some(None));
    let s = e.stats();
    assert_eq!((s.not_found, s.failures, s.timeouts), (3, 1, 0), "{s:?}");

    // After the negative TTL: asked again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(e.cached_as_name(1), None, "negative entry expired");
    assert_eq!(e.as_name(1).await, None);
    assert_eq!(dns.queries(&cymru(1)), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_server_costs_the_caller_at_most_the_timeout() {
    let dns = TestDns::start().await;
    let timeout = Duration::from_millis(300);
    let e = Enricher::new(EnricherSettings {
        timeout,
        ..dns.settings()
    })
    .unwrap();

    let t0 = Instant::now();
    assert_eq!(e.as_name(2).await, None);
    let took = t0.elapsed();
    assert!(
        took >= timeout - Duration::from_millis(20) && took < timeout + Duration::from_millis(200),
        "as_name of a silent name took {took:?} (timeout {timeout:?})"
    );
    assert_eq!(dns.queries(&cymru(2)), 1);
    // The background lookup gives up too and caches the timeout negatively.
    assert!(
        eventually(Duration::from_secs(2), || e.cached_as_name(2) == Some(None)).await,
        "timeout cached negatively"
    );
    assert_eq!(e.stats().timeouts, 1);
    let t0 = Instant::now();
    assert_eq!(e.as_name(2).await, None);
    assert!(
        t0.elapsed() < Duration::from_millis(50),
        "served from the cache"
    );
    assert_eq!(dns.queries(&cymru(2)), 1, "no new lookup");

    // Every query slot busy with a silent name (two attempts: 600 ms): callers still return
    // within the timeout, and the queued lookup completes later in the background.
    let e = Enricher::new(EnricherSettings {
        timeout,
        attempts: 2,
        max_in_flight: 1,
        ..dns.settings()
    })
    .unwrap();
    assert_eq!(e.prefetch([2]), 1);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let t0 = Instant::now();
    assert_eq!(
        e.as_name(15169).await,
        None,
        "queued behind the silent lookup"
    );
    let took = t0.elapsed();
    assert!(
        took < timeout + Duration::from_millis(200),
        "as_name waited {took:?}"
    );
    assert!(
        eventually(Duration::from_secs(3), || {
            e.cached_as_name(15169) == Some(Some("GOOGLE, US".into()))
        })
        .await,
        "the queued lookup finished in the background"
    );
    assert_eq!(dns.queries(&cymru(2)), 3, "1 + 2 attempts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_in_flight_never_exceed_the_bound() {
    let dns = TestDns::start().await;
    let e = Enricher::new(EnricherSettings {
        max_in_flight: 4,
        ..dns.settings()
    })
    .unwrap();
    let asns: Vec<u32> = (1000..1040).collect();
    let t0 = Instant::now();
    assert_eq!(e.prefetch(asns.iter().copied()), 40);
    assert!(
        t0.elapsed() < Duration::from_millis(50),
        "prefetch returns at once"
    );
    assert_eq!(e.prefetch(asns.iter().copied()), 0, "already under way");
    assert!(
        eventually(Duration::from_secs(5), || asns
            .iter()
            .all(|&a| e.cached_as_name(a).is_some()))
        .await,
        "all 40 looked up"
    );
    let max = dns.stats.max_concurrent.load(Ordering::SeqCst);
    assert!(max <= 4, "{max} queries in flight at once, bound 4");
    assert!(max >= 2, "queries ran concurrently (max {max})");
    for &a in &asns {
        assert_eq!(dns.queries(&cymru(a)), 1, "AS{a}");
        assert_eq!(e.as_name(a).await, Some(format!("SLOW-{a}, ZZ")));
    }
    assert_eq!(dns.total(), 40);
    assert_eq!(e.stats().pending, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_odd_answers_are_handled() {
    let dns = TestDns::start().await;
    let e = Enricher::new(dns.settings()).unwrap();
    assert_eq!(e.as_name(3).await, None, "not UTF-8, missing fields");
    assert_eq!(e.cached_as_name(3), Some(None), "cached negatively");
    assert_eq!(
        e.as_name(4).await.as_deref(),
        Some("LEVEL3, US"),
        "the one valid record of several; control character removed"
    );
    assert_eq!(e.as_name(6).await.as_deref(), Some("CAF\u{FFFD}, FR"));
    assert_eq!(e.as_name(8).await.as_deref(), Some("SPLIT-NAME, US"));
    // Private, documentation and reserved ASNs are never asked.
    for a in [0, 23456, 64496, 64512, 65535, 4_200_000_000] {
        assert_eq!(e.as_name(a).await, None);
        assert_eq!(e.cached_as_name(a), Some(None));
    }
    assert_eq!(e.prefetch([64512, 65001]), 0);
    assert_eq!(dns.total(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_expire_after_their_ttl_capped_by_max_ttl() {
    let dns = TestDns::start().await;
    let e = Enricher::new(EnricherSettings {
        min_ttl: Duration::ZERO,
        max_ttl: Duration::from_secs(1),
        ..dns.settings()
    })
    .unwrap();
    // AS5's record TTL is 1 s; AS15169's is 3600 s, capped to 1 s.
    assert_eq!(e.as_name(5).await.as_deref(), Some("SHORT-TTL"));
    assert_eq!(e.as_name(15169).await.as_deref(), Some("GOOGLE, US"));
    assert!(e.cached_as_name(5).is_some() && e.cached_as_name(15169).is_some());
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(e.cached_as_name(5), None, "expired");
    assert_eq!(e.cached_as_name(15169), None, "expired (max-ttl)");
    assert_eq!(e.as_name(5).await.as_deref(), Some("SHORT-TTL"));
    assert_eq!(e.as_name(15169).await.as_deref(), Some("GOOGLE, US"));
    assert_eq!((dns.queries(&cymru(5)), dns.queries(&cymru(15169))), (2, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_is_bounded_and_evicts_the_oldest() {
    let dns = TestDns::start().await;
    let e = Enricher::new(EnricherSettings {
        cache_entries: 2,
        ..dns.settings()
    })
    .unwrap();
    assert!(e.as_name(15169).await.is_some());
    assert!(e.as_name(4).await.is_some());
    assert!(e.as_name(8).await.is_some());
    assert_eq!(e.stats().cache_entries, 2);
    assert_eq!(e.cached_as_name(15169), None, "oldest evicted");
    assert!(e.cached_as_name(4).is_some() && e.cached_as_name(8).is_some());
    assert_eq!(e.as_name(15169).await.as_deref(), Some("GOOGLE, US"));
    assert_eq!(dns.queries(&cymru(15169)), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_sends_nothing() {
    let dns = TestDns::start().await;
    let e = Enricher::new(EnricherSettings {
        enabled: false,
        ..dns.settings()
    })
    .unwrap();
    assert!(!e.is_enabled());
    assert_eq!(e.as_name(15169).await, None);
    assert_eq!(e.router_name("192.0.2.1".parse().unwrap()).await, None);
    assert_eq!(e.cached_as_name(15169), None);
    assert_eq!(e.prefetch([15169]), 0);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(dns.total(), 0);
}

#[test]
fn usable_from_a_thread_outside_the_runtime() {
    // The engine runs on its own thread: it reads the cache and prefetches without a runtime.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dns = rt.block_on(TestDns::start());
    let e = Enricher::with_runtime(dns.settings(), rt.handle().clone()).unwrap();
    let e2 = e.clone();
    std::thread::spawn(move || {
        assert_eq!(e2.cached_as_name(15169), None);
        assert_eq!(e2.prefetch([15169]), 1);
    })
    .join()
    .unwrap();
    let got = rt.block_on(async {
        eventually(Duration::from_secs(2), || e.cached_as_name(15169).is_some()).await;
        e.cached_as_name(15169)
    });
    assert_eq!(got, Some(Some("GOOGLE, US".into())));
    drop(dns);
}

#[tokio::test]
async fn without_servers_the_system_configuration_is_used() {
    // Builds from /etc/resolv.conf when it names servers; otherwise a clear error, never a panic.
    // Nothing is looked up here.
    let settings = EnricherSettings {
        enabled: true,
        servers: None,
        ..EnricherSettings::default()
    };
    match Enricher::new(settings) {
        Ok(e) => assert!(e.is_enabled()),
        Err(err) => {
            let msg = err.to_string();
            assert!(
                msg.contains("resolv.conf") || msg.contains("system"),
                "{msg}"
            );
        }
    }
}
