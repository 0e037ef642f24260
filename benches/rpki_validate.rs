//! RPKI origin validation (`VrpSet::validate`) against a synthetic 500,000-VRP set shaped like
//! the global one (about 80 % IPv4, 20 % IPv6; mostly exact-length VRPs, some covering
//! aggregates with a longer maxLength, some prefixes authorised for two ASes, a few AS0), and
//! the cost of loading such a set from rpki-client JSON.
//!
//! Run: `cargo bench --bench rpki_validate`. 100,000 validations per iteration; a quarter each
//! of valid, invalid-origin, invalid-length and not-found routes.
//!
//! On the project's shared 2-core VM (`-- --warm-up-time 1 --measurement-time 5`, medians):
//! IPv4 14-16 M validations/s (63-70 ns), IPv6 9.7-10 M/s (100-103 ns); loading the 500,000
//! VRPs from rpki-client JSON 147-152 ms. The walk with repeated `get_lpm` was chosen over
//! prefix-trie's `cover_values()` iterator (5.1 M/s IPv4, 4.2 M/s IPv6) and over probing `get()`
//! at every prefix length (5.5 M/s, 1.8 M/s), measured here once and then removed (see
//! `src/rpki/mod.rs`).

// Benchmark set-up on constant inputs; criterion's macros generate undocumented items.
#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

use std::fmt::Write as _;
use std::hint::black_box;
use std::net::{Ipv4Addr, Ipv6Addr};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use routewatch::rpki::{RovState, Vrp, VrpSet};

/// Deterministic xorshift, so every run builds the same set and queries.
fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

const VRPS: usize = 500_000;

/// 500,000 VRPs: 400,000 IPv4 (/24s with maxLength 24, every 16th a /20 aggregate with
/// maxLength 24 covering other VRPs, every 10th prefix with a second AS, every 500th AS0) and
/// 100,000 IPv6 (/48s, every 16th a /32 with maxLength 48 covering the next 15).
fn vrps() -> Vec<Vrp> {
    let mut s = 0x9E37_79B9_7F4A_7C15u64;
    let mut out = Vec::with_capacity(VRPS);
    let mut i = 0u32;
    while out.len() < VRPS {
        let asn = 1 + (xorshift(&mut s) % 400_000) as u32;
        let v6 = out.len() >= VRPS * 4 / 5;
        let (prefix, max) = if v6 {
            // 2400:jjjj:jjjj:k::/48 with j = i / 16, k = i % 16: the /32 of every 16th
            // covers the other 15.
            let hi =
                0x2400_0000_0000_0000u64 | (u64::from(i / 16) << 32) | (u64::from(i % 16) << 16);
            let addr = Ipv6Addr::from(u128::from(hi) << 64);
            if i.is_multiple_of(16) {
                (IpNet::V6(Ipv6Net::new(addr, 32).unwrap().trunc()), 48)
            } else {
                (IpNet::V6(Ipv6Net::new(addr, 48).unwrap()), 48)
            }
        } else {
            // Spread /24s over 1.0.0.0 - 223.255.255.0.
            let base = 0x0100_0000u32 + i.wrapping_mul(256 * 13) % 0xDE00_0000;
            let addr = Ipv4Addr::from(base & 0xFFFF_FF00);
            if i.is_multiple_of(16) {
                (IpNet::V4(Ipv4Net::new(addr, 20).unwrap().trunc()), 24)
            } else {
                (IpNet::V4(Ipv4Net::new(addr, 24).unwrap()), 24)
            }
        };
        let asn = if i.is_multiple_of(500) { 0 } else { asn };
        out.push(Vrp::new(prefix, max, asn).unwrap());
        if i.is_multiple_of(10) && out.len() < VRPS {
            out.push(Vrp::new(prefix, max, asn + 1).unwrap());
        }
        i += 1;
    }
    out
}

/// Routes derived from random VRPs: valid, wrong origin, too long, and not covered.
fn queries(vrps: &[Vrp], v6: bool) -> Vec<(IpNet, Option<u32>)> {
    let pool: Vec<&Vrp> = vrps
        .iter()
        .filter(|v| v.prefix().addr().is_ipv6() == v6 && v.asn() != 0)
        .collect();
    let mut s = 0x2545_F491_4F6C_DD1Du64;
    (0..100_000usize)
        .map(|i| {
            let v = pool[(xorshift(&mut s) % pool.len() as u64) as usize];
            let p = v.prefix();
            match i % 4 {
                0 => (p, Some(v.asn())),
                1 => (p, Some(4_200_000_000)),
                2 => (
                    p.subnets(v.max_length() + 1).unwrap().next().unwrap(),
                    Some(v.asn()),
                ),
                _ => match p {
                    // Outside the synthetic space: 224.0.0.0/4 and 3000::/4.
                    IpNet::V4(p) => (
                        IpNet::V4(
                            Ipv4Net::new(Ipv4Addr::from(u32::from(p.addr()) | 0xE000_0000), 24)
                                .unwrap(),
                        ),
                        Some(v.asn()),
                    ),
                    IpNet::V6(p) => (
                        IpNet::V6(
                            Ipv6Net::new(
                                Ipv6Addr::from(u128::from(p.addr()) ^ (0x1u128 << 124)),
                                48,
                            )
                            .unwrap(),
                        ),
                        Some(v.asn()),
                    ),
                },
            }
        })
        .collect()
}

fn bench_validate(c: &mut Criterion) {
    let vrps = vrps();
    let set = VrpSet::from_vrps(vrps.iter().copied());
    assert!(set.len() > 490_000, "{}", set.len());
    let mut g = c.benchmark_group("rpki_validate");
    for v6 in [false, true] {
        let q = queries(&vrps, v6);
        // Every state is exercised.
        let mut seen = [0usize; 4];
        for (p, o) in &q {
            let st = set.validate(p, *o);
            seen[RovState::ALL.iter().position(|&x| x == st).unwrap()] += 1;
        }
        assert!(seen.iter().all(|&n| n > 10_000), "{seen:?}");
        let family = if v6 { "ipv6" } else { "ipv4" };
        g.throughput(Throughput::Elements(q.len() as u64));
        g.bench_with_input(BenchmarkId::new("validate", family), &q, |b, q| {
            b.iter(|| {
                let mut n = 0usize;
                for (p, o) in q {
                    n += set.validate(black_box(p), *o) as usize;
                }
                n
            })
        });
    }
    g.finish();
}

/// The whole set as rpki-client `json`.
fn rpki_client_json(vrps: &[Vrp]) -> String {
    let mut s = String::with_capacity(vrps.len() * 100);
    s.push_str("{\n\t\"metadata\": {\n\t\t\"buildmachine\": \"bench\"\n\t},\n\t\"roas\": [\n");
    for (i, v) in vrps.iter().enumerate() {
        if i > 0 {
            s.push_str(",\n");
        }
        write!(
            s,
            "\t\t{{ \"asn\": {}, \"prefix\": \"{}\", \"maxLength\": {}, \"ta\": \"ripe\", \
             \"expires\": 1700000000 }}",
            v.asn(),
            v.prefix(),
            v.max_length()
        )
        .unwrap();
    }
    s.push_str("\n\t]\n}\n");
    s
}

fn bench_load(c: &mut Criterion) {
    let json = rpki_client_json(&vrps());
    let mut g = c.benchmark_group("rpki_load");
    g.sample_size(10);
    g.throughput(Throughput::Elements(VRPS as u64));
    g.bench_function("rpki_client_json_500k", |b| {
        b.iter(|| {
            let (set, report) = VrpSet::from_json(black_box(json.as_bytes())).unwrap();
            assert_eq!(report.skipped_total(), 0);
            set.len()
        })
    });
    g.finish();
}

criterion_group!(benches, bench_validate, bench_load);
criterion_main!(benches);
