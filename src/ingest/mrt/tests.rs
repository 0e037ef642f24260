//! Tests of the MRT decoders.

use super::*;

/// Every update of `file` (RIB dumps: the prefilter's own RIB decoding) against a registry
/// that matches everything, with a raw-path cache of `cap` paths.
fn updates_with_cache(file: &str, cap: usize) -> Vec<(IpNet, String, u32, String)> {
    let registry = Registry::new(vec![crate::registry::tests::loc(
        "all",
        &["0.0.0.0/0", "::/0"],
        &[64496],
    )])
    .unwrap();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
    let mut out = Vec::new();
    read_file_inner(
        &path,
        &registry,
        Decoder::Prefilter,
        Limits::default(),
        |b| {
            out.extend(b.updates.iter().map(|u| {
                let path = match &u.change {
                    RouteChange::Announce(p) => p.to_string(),
                    RouteChange::Withdraw => "-".into(),
                };
                (u.prefix, u.peer.to_string(), u.path_id, path)
            }));
            true
        },
        None,
        cap,
        None,
    )
    .unwrap();
    out
}

fn everything() -> Registry {
    Registry::everything()
}

#[test]
fn a_file_over_its_error_budget_is_abandoned() {
    // 50 records of an unknown MRT type: each one a parse error.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("junk.mrt");
    let mut bytes = Vec::new();
    for _ in 0..50 {
        bytes.extend_from_slice(&[0, 0, 0, 1, 0, 99, 0, 0, 0, 0, 0, 1, 0]);
    }
    std::fs::write(&path, &bytes).unwrap();
    let limits = Limits {
        max_errors: 10,
        ..Limits::default()
    };
    for decoder in [Decoder::Prefilter, Decoder::Bgpkit] {
        let r = read_file_limited(&path, &everything(), decoder, limits, |_| true).unwrap();
        assert_eq!(r.error_count(), 10, "{decoder:?}");
        assert_eq!(r.result(), ABANDONED_ERROR_BUDGET, "{decoder:?}");
    }
}

#[test]
fn a_decompression_bomb_is_stopped_and_a_real_dump_is_not() {
    use std::io::Write as _;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bomb.bz2");
    let mut enc = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::best());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..64 {
        enc.write_all(&zeros).unwrap();
    }
    std::fs::write(&path, enc.finish().unwrap()).unwrap();
    // Zeros are records of MRT type 0, each an error: the error budget alone stops the
    // file after 10,000 of them (120 kB); without it, the ratio guard does.
    let r = read_file(&path, &everything(), |_| true).unwrap();
    assert_eq!(r.result(), ABANDONED_ERROR_BUDGET);
    let no_budget = Limits {
        max_errors: 0,
        ..Limits::default()
    };
    let r = read_file_limited(&path, &everything(), Decoder::Prefilter, no_budget, |_| {
        true
    })
    .unwrap();
    assert_eq!(r.result(), ABANDONED_RATIO);
    assert!(is_complete(&path, Limits::default()).unwrap());
    let rib = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/mrt/ribs/ripe-bgpdump__bview.20020722.2337.gz");
    let r = read_file(&rib, &everything(), |_| true).unwrap();
    assert_eq!(r.result(), "ok");
}

#[test]
fn a_cut_compressed_stream_is_incomplete() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/mrt/ribs/ripe-bgpdump__bview.20020722.2337.gz");
    let bytes = std::fs::read(&src).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (name, data) in [
        ("whole.gz", &bytes[..]),
        ("cut.gz", &bytes[..bytes.len() / 2]),
    ] {
        std::fs::write(dir.path().join(name), data).unwrap();
    }
    assert!(is_complete(&dir.path().join("whole.gz"), Limits::default()).unwrap());
    assert!(!is_complete(&dir.path().join("cut.gz"), Limits::default()).unwrap());
    let bz = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/mrt/ribs/fetchmesh__rib.20180131.0800.bz2");
    let bytes = std::fs::read(&bz).unwrap();
    std::fs::write(dir.path().join("cut.bz2"), &bytes[..bytes.len() - 100]).unwrap();
    assert!(!is_complete(&dir.path().join("cut.bz2"), Limits::default()).unwrap());
}

#[test]
fn a_raw_path_cache_emptied_mid_record_gives_the_same_routes() {
    // With room for 1 or 2 paths the cache is emptied inside nearly every RIB record, so
    // the handles the first pass found go stale before the second pass uses them.
    for file in [
        "fixtures/mrt/ribs/ripe-bgpdump__bview.ipv4_unicast_add_path.gz",
        "fixtures/mrt/ribs/pyasn__rib.20140523.0600_firstMB.bz2",
    ] {
        let full = updates_with_cache(file, WIRE_PATH_CACHE);
        assert!(full.len() > 50, "{file}: {} updates", full.len());
        for cap in [1, 2] {
            assert!(
                updates_with_cache(file, cap) == full,
                "{file}, cache of {cap}"
            );
        }
    }
}
