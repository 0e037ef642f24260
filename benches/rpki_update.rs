//! The cost of an incremental RPKI update (an RTR serial update, a reloaded file whose diff is
//! small) against a full re-validation, in an engine holding a whole RIB: every route of the
//! bundled RouteViews RIB (`fixtures/mrt/ribs/pyasn__rib.20140523.0600_firstMB.bz2`: 270,005
//! routes of 9,071 prefixes from 35 peers), each announced prefix registered (locations of 100
//! prefixes), with 500,000 VRPs (one per registered prefix for its first-seen origin, the rest
//! synthetic /24s and /48s elsewhere, as in `benches/rpki_validate.rs`) and ASPAs: 1,000
//! records of 1-4 providers drawn from the ASes on the paths (852 customers once the records of
//! one customer are merged).
//!
//! - `rpki_update/incremental_3_vrps`: `Engine::set_rpki(new, Some(&delta), ts)` where `new`
//!   differs from the data in force by 3 VRPs of registered prefixes (an origin changed, so
//!   their routes turn RPKI-invalid and back); iterations alternate between the two sets.
//! - `rpki_update/full_revalidation`: the same change with `changed: None`: every held route
//!   validated against the old and the new data (what a reload without a diff costs).
//!
//! Run: `cargo bench --bench rpki_update`.

// Benchmark set-up on constant inputs; criterion's macros generate undocumented items.
#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

use std::collections::BTreeSet;
use std::hint::black_box;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use routewatch::engine::Engine;
use routewatch::ingest::mrt::read_file;
use routewatch::model::{RouteChange, RouteUpdate};
use routewatch::registry::{Location, Registry};
use routewatch::rpki::aspa::AspaSet;
use routewatch::rpki::{RpkiData, Vrp, VrpSet};

const RIB: &str = "fixtures/mrt/ribs/pyasn__rib.20140523.0600_firstMB.bz2";
const VRPS: usize = 500_000;

fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// Every announcement of the RIB (matched against a registry covering everything).
fn rib_updates() -> Vec<RouteUpdate> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(RIB);
    let mut updates = Vec::with_capacity(270_005);
    read_file(&path, &Registry::everything(), |batch| {
        updates.extend(batch.updates);
        true
    })
    .unwrap();
    assert_eq!(updates.len(), 270_005);
    updates
}

/// (prefix, first-seen origin) of every announced prefix but the default route, sorted.
fn announced(updates: &[RouteUpdate]) -> Vec<(IpNet, u32)> {
    let mut seen = std::collections::BTreeMap::new();
    for u in updates {
        if let RouteChange::Announce(p) = &u.change {
            if u.prefix.prefix_len() > 0 {
                if let Some(o) = p.origin_asn() {
                    seen.entry(u.prefix).or_insert(o);
                }
            }
        }
    }
    seen.into_iter().collect()
}

fn registry(announced: &[(IpNet, u32)]) -> Arc<Registry> {
    let locations = announced
        .chunks(100)
        .enumerate()
        .map(|(i, chunk)| Location {
            name: format!("loc{i}"),
            provider: None,
            provider_asns: vec![],
            region: None,
            origin_asns: chunk.iter().map(|(_, o)| *o).collect(),
            prefixes: chunk.iter().map(|(p, _)| *p).collect(),
            max_length: None,
            max_length_v6: None,
            min_peers: 1,
            min_visibility: 0,
        })
        .collect();
    Arc::new(Registry::new(locations).unwrap())
}

/// One VRP per registered prefix, then synthetic ones outside the RIB's space (from 100.0.0.0
/// and 2400::) up to 500,000.
fn vrps(announced: &[(IpNet, u32)]) -> Vec<Vrp> {
    let mut out: Vec<Vrp> = announced
        .iter()
        .map(|(p, o)| Vrp::new(*p, p.prefix_len(), *o).unwrap())
        .collect();
    let mut s = 0x9E37_79B9_7F4A_7C15u64;
    let mut i = 0u32;
    while out.len() < VRPS {
        let asn = 1 + (xorshift(&mut s) % 400_000) as u32;
        let v = if out.len() < VRPS * 4 / 5 {
            let addr = Ipv4Addr::from(0x6400_0000u32 + (i << 8));
            Vrp::new(IpNet::V4(Ipv4Net::new(addr, 24).unwrap()), 24, asn)
        } else {
            let addr = Ipv6Addr::from((0x2400_0000_0000_0000u128 | (u128::from(i) << 16)) << 64);
            Vrp::new(IpNet::V6(Ipv6Net::new(addr, 48).unwrap()), 48, asn)
        };
        out.push(v.unwrap());
        i += 1;
    }
    out
}

/// 1,000 ASPA records: customers and 1-4 providers drawn from the ASes on the paths.
fn aspas(updates: &[RouteUpdate]) -> AspaSet {
    let ases: Vec<u32> = updates
        .iter()
        .filter_map(|u| match &u.change {
            RouteChange::Announce(p) => Some(p.asns.iter().copied()),
            _ => None,
        })
        .flatten()
        .collect::<BTreeSet<u32>>()
        .into_iter()
        .collect();
    let mut s = 0x2545_F491_4F6C_DD1Du64;
    let pick = |s: &mut u64| ases[(xorshift(s) % ases.len() as u64) as usize];
    let records: Vec<(u32, Vec<u32>)> = (0..1_000)
        .map(|_| {
            let c = pick(&mut s);
            let n = 1 + (xorshift(&mut s) % 4) as usize;
            (c, (0..n).map(|_| pick(&mut s)).collect())
        })
        .collect();
    AspaSet::from_records(records)
}

fn bench_update(c: &mut Criterion) {
    let updates = rib_updates();
    let announced = announced(&updates);
    let reg = registry(&announced);
    let mut engine = Engine::new(reg.clone());
    let mut held = 0usize;
    for u in &updates {
        if let Some(m) = reg.lookup(&u.prefix) {
            let mut u = u.clone();
            u.matched = m;
            engine.apply(&u);
            held += 1;
        }
    }
    black_box(engine.drain_events());
    engine.take_dirty();

    let base_vrps = vrps(&announced);
    let aspa_set = aspas(&updates);
    let old = Arc::new(RpkiData::new(
        VrpSet::from_vrps(base_vrps.iter().copied()),
        aspa_set.clone(),
    ));
    // Three registered prefixes spread over the RIB get another origin.
    let mut changed_vrps = base_vrps.clone();
    for k in [1usize, announced.len() / 2, announced.len() - 2] {
        let v = changed_vrps[k];
        changed_vrps[k] = Vrp::new(v.prefix(), v.max_length(), 64_496).unwrap();
    }
    let new = Arc::new(RpkiData::new(
        VrpSet::from_vrps(changed_vrps.iter().copied()),
        aspa_set,
    ));
    let delta = old.diff(&new);
    assert_eq!(delta.vrp_prefixes.len(), 3);
    assert!(new.vrps.len() >= VRPS - 1, "{}", new.vrps.len());
    engine.set_rpki(Some(old.clone()), None, 1.0);
    black_box(engine.drain_events());
    engine.take_dirty();
    let touched = engine.set_rpki(Some(new.clone()), Some(&delta), 2.0);
    let all = engine.set_rpki(Some(old.clone()), None, 3.0);
    println!(
        "{held} routes held on {} registered prefixes; {} VRPs, {} ASPAs; a 3-VRP delta \
         re-validates {touched} routes, a full re-validation {all}",
        announced.len(),
        new.vrps.len(),
        new.aspas.len()
    );
    assert_eq!(all, held);
    black_box(engine.drain_events());
    engine.take_dirty();

    let mut g = c.benchmark_group("rpki_update");
    g.sample_size(10);
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(5));
    let mut ts = 10.0;
    for (name, incremental) in [("incremental_3_vrps", true), ("full_revalidation", false)] {
        let mut flip = false;
        g.bench_function(name, |b| {
            b.iter(|| {
                flip = !flip;
                ts += 1.0;
                let data = if flip { &new } else { &old };
                let n = engine.set_rpki(
                    Some(data.clone()),
                    incremental.then_some(&delta),
                    black_box(ts),
                );
                black_box(engine.drain_events());
                engine.take_dirty();
                n
            })
        });
        // Back to `old` for the next function.
        if flip {
            engine.set_rpki(Some(old.clone()), Some(&delta), ts + 1.0);
            engine.drain_events();
            engine.take_dirty();
        }
    }
    g.finish();
}

criterion_group!(benches, bench_update);
criterion_main!(benches);
