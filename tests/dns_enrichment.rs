#![allow(clippy::unwrap_used, clippy::expect_used)]
//! DNS enrichment (`routewatch::dns`) against a DNS server started by the test on
//! 127.0.0.1 (a free UDP port; nothing leaves the machine): AS names through the Team Cymru TXT
//! interface, reverse DNS, the cache (hits, NXDOMAIN and failures cached negatively, TTL expiry,
//! size bound), timeouts, the concurrency bound, and answers that are malformed.
//!
//! The server (`tests/support/dns.rs`) is a small hand-written UDP responder answering from the
//! table below, counting queries per name and the most answered concurrently.

mod support;

use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use routewatch::dns::{Enricher, EnricherSettings};
use support::dns::*;

/// The table of the test zone: `name` is lower case without the trailing dot.
fn answer_for(name: &str, qtype: u16) -> Answer {
    let asn = cymru_asn(name);
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

/// The test server with this file's zone.
async fn start() -> TestDns {
    TestDns::start(answer_for).await
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
    let dns = start().await;
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
    let dns = start().await;
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
    let dns = start().await;
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
    let dns = start().await;
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
    let dns = start().await;
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
    let dns = start().await;
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
    let dns = start().await;
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
    let dns = start().await;
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
    let dns = rt.block_on(start());
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
