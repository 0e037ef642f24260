//! The MRT reader: the input is an MRT file (written to a temporary file, so the reader's own
//! opening, decompression guards and fallback run too), read with the default prefilter
//! decoder through `routewatch::ingest::mrt::read_file_with`, twice: against a registry that
//! matches everything (every record decoded, bgpkit-parser included) and against one that
//! matches almost nothing (the prefilter's skip paths).
//!
//! Invariants: no panic; the routes handed over are the matched ones, and no more are matched
//! than processed.

#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use routewatch::ingest::mrt::{read_file_with, Decoder};
use routewatch::registry::{Location, Registry};

fn loc(name: &str, prefixes: &[&str]) -> Location {
    Location {
        name: name.into(),
        provider: None,
        provider_asns: vec![],
        region: None,
        origin_asns: vec![64496],
        prefixes: prefixes.iter().map(|p| p.parse().unwrap()).collect(),
        max_length: Some(32),
        max_length_v6: Some(128),
        min_peers: 1,
        min_visibility: 0,
    }
}

fn registries() -> &'static [Registry; 2] {
    static REGISTRIES: OnceLock<[Registry; 2]> = OnceLock::new();
    REGISTRIES.get_or_init(|| {
        [
            Registry::new(vec![loc("all", &["0.0.0.0/0", "::/0"])]).unwrap(),
            Registry::new(vec![loc("lab", &["10.0.0.0/8", "2001:db8::/32"])]).unwrap(),
        ]
    })
}

fn input_path() -> &'static Path {
    static PATH: OnceLock<std::path::PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        std::env::temp_dir().join(format!("routewatch-fuzz-{}.mrt", std::process::id()))
    })
}

fuzz_target!(|data: &[u8]| {
    if std::fs::write(input_path(), data).is_err() {
        return;
    }
    for registry in registries() {
        let mut routes = 0u64;
        let Ok(report) = read_file_with(input_path(), registry, Decoder::Prefilter, |batch| {
            routes += batch.updates.len() as u64;
            true
        }) else {
            continue;
        };
        assert!(report.matched <= report.processed, "matched > processed");
        assert_eq!(routes, report.matched, "routes handed over != matched");
    }
});
