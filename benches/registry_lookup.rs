//! Registry longest-prefix-match lookups (IPv4 and IPv6), with 10,000 and 1,000,000 registered
//! prefixes, queried in registration (RIB) order and in a pseudo-random order.
//!
//! Run: `cargo bench --bench registry_lookup`. Figures go to BENCHMARKS.md.

// Benchmark set-up on constant inputs; criterion's macros generate undocumented items.
#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

use std::hint::black_box;
use std::net::{Ipv4Addr, Ipv6Addr};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use routewatch::registry::{Location, Registry};

/// Deterministic xorshift, so every run looks up the same prefixes.
fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

fn registry(n: usize, v6: bool) -> (Registry, Vec<IpNet>) {
    let prefixes: Vec<IpNet> = (0..n as u32)
        .map(|i| {
            if v6 {
                let hi = 0x2001_0000_0000_0000u64 | ((i as u64) << 16);
                IpNet::V6(Ipv6Net::new(Ipv6Addr::from((hi as u128) << 64), 48).expect("len"))
            } else {
                // Spread /24s over 1.0.0.0 - 223.255.255.0.
                let base = 0x0100_0000u32 + i.wrapping_mul(256 * 13) % 0xDE00_0000;
                IpNet::V4(Ipv4Net::new(Ipv4Addr::from(base & 0xFFFF_FF00), 24).expect("len"))
            }
        })
        .collect();
    let mut unique = prefixes.clone();
    unique.sort();
    unique.dedup();
    let loc = Location {
        name: "bench".into(),
        provider: None,
        provider_asns: vec![],
        region: None,
        origin_asns: vec![64496],
        prefixes: unique.clone(),
        max_length: None,
        max_length_v6: None,
        min_peers: 1,
        min_visibility: 0,
    };
    (Registry::new(vec![loc]).expect("valid registry"), unique)
}

fn queries(registered: &[IpNet], random: bool) -> Vec<IpNet> {
    let mut out: Vec<IpNet> = Vec::with_capacity(100_000);
    let mut s = 0x9E37_79B9_7F4A_7C15u64;
    for i in 0..100_000usize {
        let base = if random {
            registered[(xorshift(&mut s) % registered.len() as u64) as usize]
        } else {
            registered[i % registered.len()]
        };
        // Half exact matches, a quarter more-specifics, a quarter misses.
        let q = match i % 4 {
            0 | 1 => base,
            2 => base
                .subnets(base.prefix_len() + 1)
                .expect("len")
                .next()
                .expect("one"),
            _ => match base {
                IpNet::V4(p) => IpNet::V4(
                    Ipv4Net::new(Ipv4Addr::from(u32::from(p.addr()) ^ 0x8000_0000), 24)
                        .expect("len"),
                ),
                IpNet::V6(p) => IpNet::V6(
                    Ipv6Net::new(Ipv6Addr::from(u128::from(p.addr()) ^ (1u128 << 120)), 48)
                        .expect("len"),
                ),
            },
        };
        out.push(q);
    }
    out
}

fn bench_lookup(c: &mut Criterion) {
    let mut group = c.benchmark_group("registry_lookup");
    group.throughput(Throughput::Elements(100_000));
    for &n in &[10_000usize, 1_000_000] {
        for &v6 in &[false, true] {
            let (reg, registered) = registry(n, v6);
            for &random in &[false, true] {
                let qs = queries(&registered, random);
                let id = format!(
                    "{}/{}/{}",
                    if v6 { "ipv6" } else { "ipv4" },
                    n,
                    if random { "random" } else { "rib_order" }
                );
                group.bench_with_input(BenchmarkId::from_parameter(id), &qs, |b, qs| {
                    b.iter(|| {
                        let mut hits = 0u32;
                        for q in qs {
                            if reg.lookup(black_box(q)).is_some() {
                                hits += 1;
                            }
                        }
                        hits
                    })
                });
            }
        }
    }
    group.finish();
}

criterion_group!(benches, bench_lookup);
criterion_main!(benches);
