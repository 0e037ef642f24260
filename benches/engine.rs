//! Engine and metrics micro-benchmarks:
//! - `engine_apply/baseline`: a RIB-like load of matched routes (10,000 registered prefixes ×
//!   18 peers) into an empty engine, with the per-batch metrics sync;
//! - `engine_apply/path_change`: every route of that table replaced by a different path;
//! - `metrics_render/10000_prefixes`: the `/metrics` exposition with 10,000 registered prefixes.
//!
//! Run: `cargo bench --bench engine`. Figures go to BENCHMARKS.md.

// Benchmark set-up on constant inputs; criterion's macros generate undocumented items.
#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use ipnet::{IpNet, Ipv4Net};
use routewatch::engine::Engine;
use routewatch::metrics::Metrics;
use routewatch::model::{AsPath, Feed, PeerKey, RouteChange, RouteSource, RouteUpdate};
use routewatch::registry::{Location, Registry};

const PREFIXES: u32 = 10_000;
const PEERS: u32 = 18;

fn registry() -> Arc<Registry> {
    let prefixes: Vec<IpNet> = (0..PREFIXES)
        .map(|i| IpNet::V4(Ipv4Net::new(Ipv4Addr::from(0x0A00_0000 + (i << 8)), 24).unwrap()))
        .collect();
    // 100 locations of 100 prefixes, each expecting its own origin.
    let locations = prefixes
        .chunks(100)
        .enumerate()
        .map(|(i, chunk)| Location {
            name: format!("loc{i}"),
            provider: None,
            provider_asns: vec![],
            region: None,
            origin_asns: vec![64_000 + i as u32],
            prefixes: chunk.to_vec(),
            max_length: None,
            max_length_v6: None,
            min_peers: 1,
            min_visibility: 0,
        })
        .collect();
    Arc::new(Registry::new(locations).unwrap())
}

fn updates(reg: &Registry, variant: u32) -> Vec<RouteUpdate> {
    let peers: Vec<Arc<PeerKey>> = (0..PEERS)
        .map(|p| {
            Arc::new(PeerKey {
                source: Arc::new(RouteSource::new(Feed::Mrt)),
                address: IpAddr::V4(Ipv4Addr::from(0xC000_0200 + p)),
                asn: 65_000 + p,
            })
        })
        .collect();
    let mut out = Vec::with_capacity((PREFIXES * PEERS) as usize);
    for (i, p) in reg.prefixes().iter().enumerate() {
        let origin = 64_000 + (i as u32 / 100);
        for (pi, peer) in peers.iter().enumerate() {
            let path = AsPath::from_sequence(&[65_000 + pi as u32, 3356 + variant, 174, origin]);
            out.push(RouteUpdate {
                timestamp: 1_700_000_000.0 + variant as f64,
                peer: peer.clone(),
                prefix: p.prefix,
                path_id: 0,
                matched: reg.lookup(&p.prefix).unwrap(),
                change: RouteChange::Announce(Arc::new(path)),
            });
        }
    }
    out
}

fn apply_all(engine: &mut Engine, metrics: &mut Metrics, updates: &[RouteUpdate]) {
    for batch in updates.chunks(4096) {
        for u in batch {
            engine.apply(u);
        }
        let dirty = engine.take_dirty();
        metrics.sync(engine, &dirty, None);
        black_box(engine.drain_events());
    }
}

fn bench_engine(c: &mut Criterion) {
    let reg = registry();
    let baseline = updates(&reg, 0);
    let changed = updates(&reg, 1);
    let mut group = c.benchmark_group("engine_apply");
    group.sample_size(10);
    group.throughput(Throughput::Elements(baseline.len() as u64));
    group.bench_function("baseline", |b| {
        b.iter_batched(
            || {
                (
                    Engine::new(reg.clone()),
                    Metrics::new(&reg, 10_000).unwrap(),
                )
            },
            |(mut engine, mut metrics)| {
                apply_all(&mut engine, &mut metrics, &baseline);
                engine
            },
            BatchSize::LargeInput,
        )
    });
    group.bench_function("path_change", |b| {
        b.iter_batched(
            || {
                let mut engine = Engine::new(reg.clone());
                let mut metrics = Metrics::new(&reg, 10_000).unwrap();
                apply_all(&mut engine, &mut metrics, &baseline);
                (engine, metrics)
            },
            |(mut engine, mut metrics)| {
                apply_all(&mut engine, &mut metrics, &changed);
                engine
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

fn bench_render(c: &mut Criterion) {
    let reg = registry();
    let mut engine = Engine::new(reg.clone());
    let mut metrics = Metrics::new(&reg, 10_000).unwrap();
    apply_all(&mut engine, &mut metrics, &updates(&reg, 0));
    let exporter = metrics.exporter();
    let mut group = c.benchmark_group("metrics_render");
    group.sample_size(20);
    group.bench_function("10000_prefixes", |b| {
        b.iter(|| black_box(exporter.render().len()))
    });
    group.finish();
}

criterion_group!(benches, bench_engine, bench_render);
criterion_main!(benches);
