//! RIS Live messages decoded and applied, as the daemon's RIS Live task and engine task do it
//! (`cargo bench --bench ris_live`): each text frame through `ingest::ris_live::Decoder` (the
//! registry prefilter; matched frames decoded by bgpkit-parser), and a frame with matched
//! routes applied at once (`pipeline::apply_batch`, then the metrics sync of the dirty
//! prefixes), with a 10,000-prefix registry and 18 peers on two collectors.
//!
//! - `per_prefix`: what a per-prefix subscription delivers: every UPDATE touches a registered
//!   prefix (90 % announcements, 10 % withdrawals);
//! - `broad`: the one broad subscription of a large registry: 1 UPDATE in 100 touches a
//!   registered prefix, the rest are dropped by the prefilter.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ipnet::{IpNet, Ipv4Net};
use routewatch::engine::Engine;
use routewatch::ingest::ris_live::Decoder;
use routewatch::ingest::Batch;
use routewatch::metrics::Metrics;
use routewatch::model::Feed;
use routewatch::registry::{Location, Registry};

const PREFIXES: u32 = 10_000;
const PEERS: u32 = 18;
const MESSAGES: usize = 20_000;

fn registry() -> Arc<Registry> {
    let prefixes: Vec<IpNet> = (0..PREFIXES)
        .map(|i| IpNet::V4(Ipv4Net::new(Ipv4Addr::from(0x0A00_0000 + (i << 8)), 24).unwrap()))
        .collect();
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

/// `MESSAGES` UPDATE frames; one in `matched_every` touches a registered prefix.
fn frames(matched_every: usize) -> Vec<String> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    (0..MESSAGES)
        .map(|i| {
            let r = next();
            let peer = (r % u64::from(PEERS)) as u32;
            let host = if peer.is_multiple_of(2) { "rrc00" } else { "rrc01" };
            let peer_ip = Ipv4Addr::from(0xC633_6400 + peer); // 198.51.100.x
            let peer_asn = 65_000 + peer;
            let matched = i.is_multiple_of(matched_every);
            let prefix = if matched {
                let p = (r >> 8) as u32 % PREFIXES;
                format!("{}/24", Ipv4Addr::from(0x0A00_0000 + (p << 8)))
            } else {
                format!("{}/24", Ipv4Addr::from(0x5000_0000 + (((r >> 8) as u32 % 1_000_000) << 8)))
            };
            let origin = 64_000 + ((r >> 40) % 100) as u32;
            let ts = 1_700_000_000.0 + i as f64 * 0.01;
            if (r >> 32).is_multiple_of(10) {
                format!(
                    r#"{{"type":"ris_message","data":{{"timestamp":{ts},"peer":"{peer_ip}","peer_asn":"{peer_asn}","id":"{i}","host":"{host}.ripe.net","type":"UPDATE","path":[],"withdrawals":["{prefix}"]}}}}"#
                )
            } else {
                format!(
                    r#"{{"type":"ris_message","data":{{"timestamp":{ts},"peer":"{peer_ip}","peer_asn":"{peer_asn}","id":"{i}","host":"{host}.ripe.net","type":"UPDATE","path":[{peer_asn},3356,1299,{origin}],"community":[[3356,100],[1299,2000]],"origin":"IGP","announcements":[{{"next_hop":"{peer_ip}","prefixes":["{prefix}"]}}]}}}}"#
                )
            }
        })
        .collect()
}

/// Decodes and applies every frame as the daemon does; returns the routes held.
fn run(reg: &Arc<Registry>, frames: &[String]) -> u64 {
    let mut engine = Engine::new(reg.clone());
    let mut metrics = Metrics::new(reg, 10_000).unwrap();
    metrics.enable_feed(Feed::RisLive, &routewatch::ingest::ris_live::ERROR_LABELS);
    let mut decoder = Decoder::default();
    let mut batch = Batch {
        generation: reg.generation(),
        ..Batch::default()
    };
    for f in frames {
        decoder.decode(f, reg, &mut batch);
        if !batch.updates.is_empty() || !batch.sources_down.is_empty() {
            routewatch::pipeline::apply_batch(&mut engine, &batch);
            let dirty = engine.take_dirty();
            metrics.sync(&engine, &dirty, Some((Feed::RisLive, &batch)));
            batch = Batch {
                generation: reg.generation(),
                ..Batch::default()
            };
        }
    }
    engine.tracked_routes()
}

fn bench(c: &mut Criterion) {
    let reg = registry();
    let mut g = c.benchmark_group("ris_live");
    g.sample_size(10);
    g.throughput(Throughput::Elements(MESSAGES as u64));
    for (name, every) in [("per_prefix", 1), ("broad", 100)] {
        let frames = frames(every);
        assert!(run(&reg, &frames) > 0);
        g.bench_function(name, |b| b.iter(|| black_box(run(&reg, &frames))));
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
