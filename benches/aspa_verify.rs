//! ASPA path verification (`AspaSet::verify`, draft-ietf-sidrops-aspa-verification) on real
//! paths: the AS path of every route of the bundled RouteViews RIB
//! (`fixtures/mrt/ribs/pyasn__rib.20140523.0600_firstMB.bz2`, 270,005 routes), decoded once with
//! the crate's MRT reader, verified against ASPA sets of 1,000 and 100,000 customers (the RPKI
//! held a few thousand ASPA objects in 2026). Customers are drawn from the ASes on those paths
//! (all of them for the 100,000 set, the rest synthetic ASNs that appear on no path), each with 1
//! to 4 providers drawn from the same ASes, deterministically (xorshift).
//!
//! Run: `cargo bench --bench aspa_verify`. One iteration verifies every route once; figures are
//! routes (verifications) per second, for the upstream and the downstream procedure.

// Benchmark set-up on constant inputs; criterion's macros generate undocumented items.
#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

use std::collections::{BTreeSet, HashSet};
use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use routewatch::ingest::mrt::read_file;
use routewatch::model::{AsPath, Origin, RouteChange};
use routewatch::registry::Registry;
use routewatch::rpki::aspa::{AspaSet, AspaState, Procedure};

const RIB: &str = "fixtures/mrt/ribs/pyasn__rib.20140523.0600_firstMB.bz2";

/// Deterministic xorshift, so every run builds the same sets.
fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// The AS path of every route of the RIB, in file order (shared `Arc`s where the reader shares
/// them).
fn rib_paths() -> Vec<Arc<AsPath>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(RIB);
    let registry = Registry::everything();
    let mut paths = Vec::with_capacity(270_005);
    read_file(&path, &registry, |batch| {
        paths.extend(batch.updates.into_iter().filter_map(|u| match u.change {
            RouteChange::Announce(p) => Some(p),
            _ => None,
        }));
        true
    })
    .unwrap();
    assert_eq!(paths.len(), 270_005);
    paths
}

/// `customers` ASPAs: customers from `ases` (shuffled) and then synthetic ASNs, providers 1-4
/// of `ases`.
fn aspa_set(ases: &[u32], customers: usize, seed: u64) -> AspaSet {
    let mut s = seed;
    let mut pool = ases.to_vec();
    // Fisher-Yates with the xorshift.
    for i in (1..pool.len()).rev() {
        let j = (xorshift(&mut s) % (i as u64 + 1)) as usize;
        pool.swap(i, j);
    }
    let mut next_synthetic = 4_200_000_000u32;
    let records: Vec<(u32, Vec<u32>)> = (0..customers)
        .map(|i| {
            let customer = pool.get(i).copied().unwrap_or_else(|| {
                next_synthetic += 1;
                next_synthetic
            });
            let n = 1 + (xorshift(&mut s) % 4) as usize;
            let providers = (0..n)
                .map(|_| ases[(xorshift(&mut s) % ases.len() as u64) as usize])
                .collect();
            (customer, providers)
        })
        .collect();
    AspaSet::from_records(records)
}

fn verify_all(set: &AspaSet, paths: &[Arc<AsPath>], procedure: Procedure) -> [usize; 4] {
    let mut seen = [0usize; 4];
    for p in paths {
        let as_set = matches!(p.origin, Origin::Set(_));
        let i = match set.verify(&p.asns, as_set, procedure) {
            Some(v) => AspaState::ALL.iter().position(|&s| s == v.state).unwrap(),
            None => 3,
        };
        seen[i] += 1;
    }
    seen
}

fn bench_verify(c: &mut Criterion) {
    let paths = rib_paths();
    let ases: Vec<u32> = paths
        .iter()
        .flat_map(|p| p.asns.iter().copied())
        .collect::<BTreeSet<u32>>()
        .into_iter()
        .collect();
    let distinct: HashSet<String> = paths.iter().map(|p| p.to_string()).collect();
    println!(
        "{} routes, {} distinct paths, {} distinct ASes",
        paths.len(),
        distinct.len(),
        ases.len()
    );
    let mut g = c.benchmark_group("aspa_verify");
    g.sample_size(20);
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(5));
    g.throughput(Throughput::Elements(paths.len() as u64));
    for customers in [1_000usize, 100_000] {
        let set = aspa_set(&ases, customers, 0x9E37_79B9_7F4A_7C15);
        assert_eq!(set.len(), customers);
        for procedure in [Procedure::Upstream, Procedure::Downstream] {
            // Outcomes [valid, unknown, invalid, not verified], printed with the figures.
            let seen = verify_all(&set, &paths, procedure);
            println!(
                "{customers} customers, {}: valid {}, unknown {}, invalid {}, not verified {}",
                procedure.as_str(),
                seen[0],
                seen[1],
                seen[2],
                seen[3]
            );
            g.bench_with_input(
                BenchmarkId::new(procedure.as_str(), format!("{customers}_customers")),
                &paths,
                |b, paths| b.iter(|| verify_all(black_box(&set), paths, procedure)),
            );
        }
    }
    g.finish();
}

criterion_group!(benches, bench_verify);
criterion_main!(benches);
