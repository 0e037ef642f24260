//! The prefilter decoder must give exactly what bgpkit-parser's route iterator gives: every MRT
//! fixture is replayed both ways and the full per-prefix state, the anomaly transitions and the
//! per-file counts are compared.
//!
//! Two registries per file: one that covers the whole address space (every route matches, as a
//! more-specific, so the state of every announced prefix is compared and TABLE_DUMP_V2 entries go
//! through the prefilter's own RIB decoding), and one of a sample of the file's own prefixes
//! (most records touch nothing registered, so the skipping is exercised too).

#![allow(clippy::unwrap_used, clippy::expect_used)]
mod support;

use std::path::{Path, PathBuf};

use ipnet::IpNet;
use routewatch::ingest::mrt::Decoder;
use routewatch::replay::{replay, ReplayOptions};
use routewatch::report::ReplayReport;
use support::*;

fn mrt_fixtures() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in ["mrt/lab", "mrt/ribs", "mrt/updates", "synthetic"] {
        for e in std::fs::read_dir(fixture(dir)).unwrap() {
            files.push(e.unwrap().path());
        }
    }
    files.sort();
    assert!(files.len() >= 39, "fixtures missing: {}", files.len());
    files
}

fn config(dir: &Path, prefixes: &[IpNet]) -> PathBuf {
    // min-peers out of reach: anomaly instances are tracked (and compared) but none opens, so a
    // registry that makes every route a "hijack" does not flood the report.
    DaemonConfig::replay()
        .state_dir(dir)
        .location(Location::new("all", &[64496], prefixes).min_peers(100_000))
        .write(dir)
        .path
}

fn both(cfg: &Path, file: &Path) -> (ReplayReport, ReplayReport) {
    let files = [file.to_path_buf()];
    let reference = replay(&ReplayOptions::new(cfg, &files).decoder(Decoder::Bgpkit)).unwrap();
    let prefilter = replay(&ReplayOptions::new(cfg, &files).decoder(Decoder::Prefilter)).unwrap();
    (reference, prefilter)
}

fn assert_same(what: &str, reference: &ReplayReport, prefilter: &ReplayReport) {
    let (r, p) = (&reference.files[0], &prefilter.files[0]);
    assert_eq!(
        (r.processed, r.matched, &r.errors),
        (p.processed, p.matched, &p.errors),
        "{what}: file counts (processed, matched, errors): bgpkit vs prefilter"
    );
    assert_eq!(
        reference.events, prefilter.events,
        "{what}: anomaly transitions"
    );
    assert_eq!(reference.prefixes.len(), prefilter.prefixes.len());
    for (a, b) in reference.prefixes.iter().zip(&prefilter.prefixes) {
        assert_eq!(a, b, "{what}: state of {}", a.prefix);
    }
}

#[test]
fn every_fixture_gives_the_same_state_with_both_decoders() {
    let dir = tempfile::tempdir().unwrap();
    let covering: Vec<IpNet> = ["0.0.0.0/1", "128.0.0.0/1", "::/1", "8000::/1"]
        .iter()
        .map(|p| p.parse().unwrap())
        .collect();
    let cover_cfg = config(dir.path(), &covering);
    let mut compared_routes = 0u64;
    let mut sampled_prefixes = 0usize;
    for file in mrt_fixtures() {
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        let (reference, prefilter) = both(&cover_cfg, &file);
        assert_same(
            &format!("{name} (covering registry)"),
            &reference,
            &prefilter,
        );
        compared_routes += reference.files[0].matched;

        // A sample of the announced prefixes, registered exactly.
        let mut announced: Vec<IpNet> = reference
            .prefixes
            .iter()
            .flat_map(|p| p.more_specifics.iter().map(|m| m.prefix))
            .collect();
        announced.sort();
        announced.dedup();
        let sample: Vec<IpNet> = announced.iter().step_by(7).copied().take(500).collect();
        if sample.is_empty() {
            continue;
        }
        sampled_prefixes += sample.len();
        let sample_dir = tempfile::tempdir().unwrap();
        let cfg = config(sample_dir.path(), &sample);
        let (reference, prefilter) = both(&cfg, &file);
        assert_same(
            &format!("{name} (sampled registry)"),
            &reference,
            &prefilter,
        );
        assert!(
            reference
                .prefixes
                .iter()
                .any(|p| p.visibility > 0 || !p.more_specifics.is_empty())
                || reference.prefixes.iter().all(|p| p.withdrawals > 0),
            "{name}: the sampled registry must see routes"
        );
    }
    assert!(
        compared_routes > 1_000_000,
        "compared {compared_routes} matched routes"
    );
    assert!(
        sampled_prefixes > 5_000,
        "sampled {sampled_prefixes} prefixes"
    );
}

/// The early (2000) RIPE RIS TABLE_DUMP layout (several entries per record, length declared 4
/// bytes short; `fixtures/synthetic/early-ris.table_dump_v1.mrt`): both decoders read all 18
/// entries and give the same routes, with a registry that matches the first entry of no record
/// (so the prefilter must look past it) and one that matches everything.
#[test]
fn the_early_ris_table_dump_layout_reads_alike_with_both_decoders() {
    let file = fixture("synthetic/early-ris.table_dump_v1.mrt");
    for (what, prefixes) in [
        ("8.8.4.0/24 only", vec!["8.8.4.0/24"]),
        ("covering", vec!["0.0.0.0/1", "128.0.0.0/1"]),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let nets: Vec<IpNet> = prefixes.iter().map(|p| p.parse().unwrap()).collect();
        let cfg = config(dir.path(), &nets);
        let (reference, prefilter) = both(&cfg, &file);
        assert_same(what, &reference, &prefilter);
        assert_eq!(reference.files[0].processed, 18, "{what}: entries read");
        assert_eq!(prefilter.files[0].processed, 18, "{what}: entries read");
        assert!(prefilter.files[0].errors.is_empty(), "{what}");
    }
    // The registered 8.8.4.0/24 sits in the fifth record: all three peers' routes are seen.
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &["8.8.4.0/24".parse().unwrap()]);
    let (_, prefilter) = both(&cfg, &file);
    assert_eq!(prefilter.files[0].matched, 3);
    assert_eq!(prefilter.prefixes[0].visibility, 3);
}
