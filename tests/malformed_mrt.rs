//! Malformed MRT input: truncated and corrupted files must be counted as parse errors, never
//! panic, never produce route state from garbage, and the readable part of a file must still be
//! processed.
//!
//! Reference figures come from `bgpdump -m` (RIPE bgpdump, Debian package) run on intact pieces
//! of the real fixture, which the tests cut out themselves by walking the MRT headers (12 bytes;
//! the body length is the big-endian u32 at offset 8). bgpdump is required: the tests fail (they
//! do not skip) when it is missing. CI installs it with `apt-get install bgpdump`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use ipnet::IpNet;

mod support;

use routewatch::engine::PrefixSummary;
use routewatch::replay::ReplayOptions;
use routewatch::report::ReplayReport;
use support::{DaemonConfig, Location};

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/mrt")
        .join(rel)
}

/// Uncompressed BGP4MP update dump (18,088 records, 47,462 route entries, IPv4 only, no STATE
/// records, no ADD-PATH, no AS_SET).
const ARCH0: &str = "updates/csu-gobgpdump__arch0.mrt";

/// `bgpdump -m FILE`, as lines.
fn bgpdump(file: &Path) -> Vec<String> {
    let out = match Command::new("bgpdump").arg("-m").arg(file).output() {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "`bgpdump` is not installed (or not on PATH). These tests take their reference \
             figures from RIPE bgpdump and must not be skipped: install it with \
             `apt-get install bgpdump` (CI installs it)."
        ),
        Err(e) => panic!("running bgpdump: {e}"),
    };
    assert!(out.status.success(), "bgpdump failed: {}", out.status);
    String::from_utf8(out.stdout)
        .expect("bgpdump output is UTF-8")
        .lines()
        .map(str::to_owned)
        .collect()
}

/// What bgpdump reports for a clean BGP4MP file of plain AS_SEQUENCE paths.
#[derive(Default)]
struct Dump {
    /// A + W + B lines (route entries).
    entries: u64,
    /// Every prefix of an A/W line, host bits masked.
    prefixes: BTreeSet<IpNet>,
    /// Route entries in order: (prefix, is_withdrawal).
    lines: Vec<(IpNet, bool)>,
    /// Final routes: (peer IP, peer AS, prefix) -> origin.
    routes: HashMap<(IpAddr, u32, IpNet), Option<u32>>,
}

impl Dump {
    fn of(file: &Path) -> Dump {
        let mut d = Dump::default();
        for line in bgpdump(file) {
            let f: Vec<&str> = line.split('|').collect();
            let kind = f[2];
            if !matches!(kind, "A" | "W" | "B") {
                continue;
            }
            assert!(
                !f[0].ends_with("_AP"),
                "no ADD-PATH expected in this fixture: {line}"
            );
            d.entries += 1;
            let ip: IpAddr = f[3].parse().unwrap();
            let asn: u32 = f[4].parse().unwrap();
            let prefix: IpNet = f[5].parse::<IpNet>().unwrap().trunc();
            d.prefixes.insert(prefix);
            d.lines.push((prefix, kind == "W"));
            if kind == "W" {
                d.routes.remove(&(ip, asn, prefix));
            } else {
                let path = f[6];
                assert!(
                    !path.contains(['{', '(', '[', '!']),
                    "only plain AS_SEQUENCE paths expected here: {line}"
                );
                let origin = path.split(' ').next_back().and_then(|t| t.parse().ok());
                d.routes.insert((ip, asn, prefix), origin);
            }
        }
        d
    }

    /// (visibility, sorted origins) of exactly `prefix`.
    fn state(&self, prefix: &IpNet) -> (u32, Vec<u32>) {
        let mut peers = HashSet::new();
        let mut origins = BTreeSet::new();
        for ((ip, asn, p), origin) in &self.routes {
            if p == prefix {
                peers.insert((*ip, *asn));
                origins.extend(*origin);
            }
        }
        (peers.len() as u32, origins.into_iter().collect())
    }

    /// (announcements, withdrawals) per registered prefix, each route entry counted on the most
    /// specific registered prefix covering it (routewatch's longest-prefix match).
    fn counts(&self, registry: &[IpNet]) -> HashMap<IpNet, (u64, u64)> {
        let mut counts: HashMap<IpNet, (u64, u64)> = HashMap::new();
        for (prefix, withdrawal) in &self.lines {
            let best = registry
                .iter()
                .filter(|r| r.contains(prefix))
                .max_by_key(|r| r.prefix_len());
            if let Some(r) = best {
                let c = counts.entry(*r).or_default();
                if *withdrawal {
                    c.1 += 1;
                } else {
                    c.0 += 1;
                }
            }
        }
        counts
    }
}

/// Complete MRT records of `data`: (offset, total length incl. the 12-byte header). A trailing
/// partial record is not included.
fn records(data: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut off = 0;
    while off + 12 <= data.len() {
        let len = u32::from_be_bytes(data[off + 8..off + 12].try_into().unwrap()) as usize;
        if off + 12 + len > data.len() {
            break;
        }
        out.push((off, 12 + len));
        off += 12 + len;
    }
    out
}

/// Offsets (in the file) of the parts of the BGP UPDATE inside a BGP4MP_MESSAGE(_AS4) record.
#[derive(Debug, Clone, Copy)]
struct Update {
    /// The 16-byte marker.
    marker: usize,
    /// The 2-byte BGP message length.
    length: usize,
    /// The message type byte.
    msg_type: usize,
    /// The 2-byte withdrawn routes length.
    withdrawn_len: usize,
    /// The 2-byte total path attribute length.
    attrs_len: usize,
    /// The first path attribute.
    attrs: usize,
    /// Bytes of NLRI (announced IPv4 prefixes).
    nlri_bytes: usize,
}

/// Locates the BGP UPDATE of the record at `off`, if it is a BGP4MP message record carrying one.
fn update_at(data: &[u8], off: usize) -> Option<Update> {
    let be16 = |i: usize| usize::from(u16::from_be_bytes([data[i], data[i + 1]]));
    if be16(off + 4) != 16 {
        return None; // not BGP4MP
    }
    let asn_len = match be16(off + 6) {
        1 => 2, // BGP4MP_MESSAGE
        4 => 4, // BGP4MP_MESSAGE_AS4
        _ => return None,
    };
    let afi_at = off + 12 + 2 * asn_len + 2;
    let ip_len = match be16(afi_at) {
        1 => 4,
        2 => 16,
        _ => return None,
    };
    let marker = afi_at + 2 + 2 * ip_len;
    let msg_type = marker + 18;
    if data[msg_type] != 2 {
        return None;
    }
    let withdrawn_len = msg_type + 1;
    let attrs_len = withdrawn_len + 2 + be16(withdrawn_len);
    let attrs = attrs_len + 2;
    let nlri_bytes = be16(marker + 16) - (attrs + be16(attrs_len) - marker);
    Some(Update {
        marker,
        length: marker + 16,
        msg_type,
        withdrawn_len,
        attrs_len,
        attrs,
        nlri_bytes,
    })
}

/// Offset of the AS_PATH attribute value of `u`.
fn as_path_value(data: &[u8], u: &Update) -> Option<usize> {
    let end = u.attrs
        + usize::from(u16::from_be_bytes([
            data[u.attrs_len],
            data[u.attrs_len + 1],
        ]));
    let mut p = u.attrs;
    while p + 3 <= end {
        let extended = data[p] & 0x10 != 0;
        let (len, header) = if extended {
            (
                usize::from(u16::from_be_bytes([data[p + 2], data[p + 3]])),
                4,
            )
        } else {
            (usize::from(data[p + 2]), 3)
        };
        if data[p + 1] == 2 {
            return Some(p + header);
        }
        p += header + len;
    }
    None
}

/// Writes `routewatch.toml` registering `prefixes` (in two locations) in `dir`.
fn write_config(dir: &Path, prefixes: &[IpNet]) -> PathBuf {
    let locations: Vec<Location> = prefixes
        .chunks(prefixes.len().div_ceil(2).max(1))
        .enumerate()
        .map(|(i, chunk)| Location::new(&format!("malformed-{i}"), &[64496], chunk))
        .collect();
    DaemonConfig::replay().locations(&locations).write(dir).path
}

fn replay(dir: &Path, prefixes: &[IpNet], file: &Path) -> ReplayReport {
    let config = write_config(dir, prefixes);
    routewatch::replay::replay(&ReplayOptions::new(&config, &[file.to_path_buf()]))
        .unwrap_or_else(|e| panic!("replay of {} failed: {e}", file.display()))
}

fn summary<'a>(report: &'a ReplayReport, prefix: &IpNet) -> &'a PrefixSummary {
    report
        .prefixes
        .iter()
        .find(|p| p.prefix == *prefix)
        .unwrap_or_else(|| panic!("{prefix} missing from the report"))
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

/// Every registered prefix's visibility, origins, announcements and withdrawals must be what
/// bgpdump says `expected` leads to.
fn assert_state_matches(what: &str, report: &ReplayReport, registry: &[IpNet], expected: &Dump) {
    let counts = expected.counts(registry);
    let mut diff = String::new();
    for prefix in registry {
        let s = summary(report, prefix);
        let (visibility, origins) = expected.state(prefix);
        let (ann, wdr) = counts.get(prefix).copied().unwrap_or_default();
        let mut got_origins = s.origins.clone();
        got_origins.sort_unstable();
        if (s.visibility, &got_origins, s.announcements, s.withdrawals)
            != (visibility, &origins, ann, wdr)
        {
            let _ = writeln!(
                diff,
                "  {prefix}: routewatch visibility {} origins {got_origins:?} ann {} wdr {} | \
                 bgpdump visibility {visibility} origins {origins:?} ann {ann} wdr {wdr}",
                s.visibility, s.announcements, s.withdrawals
            );
        }
    }
    assert!(diff.is_empty(), "{what}: state differs:\n{diff}");
}

/// Every `step`-th prefix of `set`.
fn every_nth(set: &BTreeSet<IpNet>, step: usize) -> Vec<IpNet> {
    set.iter().step_by(step).copied().collect()
}

/// (a) A file cut in the middle of a record (a partial download, a collector that died): the
/// complete records are processed exactly, the partial one is one counted error.
#[test]
fn truncated_file_processes_complete_records_and_counts_the_cut() {
    const CUT: usize = 1_000_000;
    let data = std::fs::read(fixture(ARCH0)).unwrap();
    assert_eq!(records(&data).len(), 18_088, "fixture walk");
    let complete = records(&data[..CUT]);
    let &(last_off, last_len) = complete.last().unwrap();
    let boundary = last_off + last_len;
    assert!(
        boundary < CUT && CUT < boundary + 12 + 100,
        "the cut must fall inside a record (record {} at {boundary})",
        complete.len()
    );

    let dir = tempfile::tempdir().unwrap();
    let cut = dir.path().join("cut.mrt");
    std::fs::write(&cut, &data[..CUT]).unwrap();
    let head_file = dir.path().join("head.mrt");
    std::fs::write(&head_file, &data[..boundary]).unwrap();
    let tail_file = dir.path().join("tail.mrt");
    std::fs::write(&tail_file, &data[boundary..]).unwrap();
    let head = Dump::of(&head_file);
    let tail = Dump::of(&tail_file);

    // Registry: prefixes seen before the cut, plus prefixes that occur only after it (which must
    // stay untouched: nothing past the cut may be read).
    let mut registry = every_nth(&head.prefixes, 100);
    let after_only: BTreeSet<IpNet> = tail.prefixes.difference(&head.prefixes).copied().collect();
    assert!(!after_only.is_empty());
    registry.extend(every_nth(&after_only, after_only.len().div_ceil(10)));

    let report = replay(dir.path(), &registry, &cut);
    let file = &report.files[0];
    assert_eq!(
        file.processed,
        head.entries,
        "route entries = bgpdump's A+W lines of the {} complete records before the cut",
        complete.len()
    );
    assert_eq!(
        head.entries, 22_021,
        "reference figure of the cut (bgpdump: 19,598 A + 2,423 W in the first 999,912 bytes)"
    );
    assert!(file.error_count() >= 1, "errors: {:?}", file.errors);
    assert!(
        file.errors.contains_key("truncated_stream")
            || file.errors.contains_key("truncated_record"),
        "the cut is labelled as truncation: {:?}",
        file.errors
    );
    assert_eq!(
        file.errors,
        BTreeMap::from([("truncated_stream", 1)]),
        "exactly one error: the partial record"
    );
    assert_state_matches("truncated file", &report, &registry, &head);
    for p in &after_only {
        if registry.contains(p) {
            let s = summary(&report, p);
            assert_eq!((s.visibility, s.announcements + s.withdrawals), (0, 0));
        }
    }
    assert!(
        report.prefixes.iter().any(|p| p.visibility > 0),
        "registered prefixes before the cut have routes"
    );
    println!(
        "truncated: cut at {CUT} inside record {} (complete records end at {boundary}); {} \
         entries processed = bgpdump; errors {:?}; {} prefixes compared",
        complete.len(),
        file.processed,
        file.errors,
        registry.len()
    );
}

/// How a record is corrupted in [`byte_flipped_records_are_skipped_and_the_rest_is_processed`].
#[derive(Debug, Clone, Copy)]
enum Flip {
    /// BGP message length 0 (below the 19-byte minimum).
    BgpLengthZero,
    /// Withdrawn routes length 0xFFFF, far past the message.
    WithdrawnLengthOverflow,
    /// Total path attribute length 0xFFFF, far past the message.
    AttributeLengthOverflow,
    /// BGP message type 9 (undefined).
    UnknownMessageType,
    /// The 16-byte marker zeroed: only a warning for bgpkit-parser (and ignored by bgpdump);
    /// the record's routes are still decoded. Kept to show that tolerated damage does not turn
    /// into lost routes.
    MarkerZeroed,
}

impl Flip {
    /// The error label routewatch counts for it; `None` when the record is still decoded.
    fn label(self) -> Option<&'static str> {
        match self {
            Flip::BgpLengthZero | Flip::UnknownMessageType => Some("malformed"),
            Flip::WithdrawnLengthOverflow | Flip::AttributeLengthOverflow => {
                Some("truncated_record")
            }
            Flip::MarkerZeroed => None,
        }
    }

    fn apply(self, data: &mut [u8], u: &Update) {
        match self {
            Flip::BgpLengthZero => data[u.length..u.length + 2].fill(0),
            Flip::WithdrawnLengthOverflow => {
                data[u.withdrawn_len..u.withdrawn_len + 2].fill(0xff);
            }
            Flip::AttributeLengthOverflow => data[u.attrs_len..u.attrs_len + 2].fill(0xff),
            Flip::UnknownMessageType => data[u.msg_type] = 9,
            Flip::MarkerZeroed => data[u.marker..u.marker + 16].fill(0),
        }
    }
}

/// (b) Records corrupted in the middle of the file (framing intact): each broken record is one
/// counted error, its routes are lost, and everything before and after is processed exactly.
#[test]
fn byte_flipped_records_are_skipped_and_the_rest_is_processed() {
    let data = std::fs::read(fixture(ARCH0)).unwrap();
    let recs = records(&data);
    let flips = [
        Flip::BgpLengthZero,
        Flip::WithdrawnLengthOverflow,
        Flip::MarkerZeroed,
        Flip::AttributeLengthOverflow,
        Flip::UnknownMessageType,
    ];
    // From the middle on, every 50 records the next UPDATE that announces something.
    let mut targets: Vec<(usize, Flip, Update)> = Vec::new();
    let mut i = recs.len() / 2;
    for flip in flips {
        let (idx, u) = (i..recs.len())
            .find_map(|j| {
                update_at(&data, recs[j].0)
                    .filter(|u| u.nlri_bytes > 0)
                    .map(|u| (j, u))
            })
            .unwrap();
        targets.push((idx, flip, u));
        i = idx + 50;
    }

    let dir = tempfile::tempdir().unwrap();
    let mut corrupt = data.clone();
    for (_, flip, u) in &targets {
        flip.apply(&mut corrupt, u);
    }
    let corrupt_file = dir.path().join("corrupt.mrt");
    std::fs::write(&corrupt_file, &corrupt).unwrap();

    // Expected: the original file without the records that cannot be decoded.
    let dropped: HashSet<usize> = targets
        .iter()
        .filter(|(_, f, _)| f.label().is_some())
        .map(|t| t.0)
        .collect();
    let mut kept = Vec::with_capacity(data.len());
    for (j, &(off, len)) in recs.iter().enumerate() {
        if !dropped.contains(&j) {
            kept.extend_from_slice(&data[off..off + len]);
        }
    }
    let kept_file = dir.path().join("kept.mrt");
    std::fs::write(&kept_file, &kept).unwrap();
    let expected = Dump::of(&kept_file);

    // Pieces: before the first corrupted record, the corrupted stretch, after the last one.
    let first = recs[targets[0].0].0;
    let (last_off, last_len) = recs[targets.last().unwrap().0];
    let piece = |name: &str, bytes: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        Dump::of(&p)
    };
    let head = piece("head.mrt", &data[..first]);
    let middle = piece("middle.mrt", &data[first..last_off + last_len]);
    let tail = piece("tail.mrt", &data[last_off + last_len..]);
    let lost: u64 = targets
        .iter()
        .filter(|(_, f, _)| f.label().is_some())
        .map(|&(j, _, _)| {
            let (off, len) = recs[j];
            piece(&format!("record-{j}.mrt"), &data[off..off + len]).entries
        })
        .sum();
    assert!(lost > 0, "the corrupted records carry routes");

    // Registry: a sample of the whole file, the prefixes of the corrupted records, and prefixes
    // that occur only after the corruption.
    let mut registry: BTreeSet<IpNet> = every_nth(&expected.prefixes, 120).into_iter().collect();
    for &(j, _, _) in &targets {
        let (off, len) = recs[j];
        registry.extend(piece(&format!("record-{j}.mrt"), &data[off..off + len]).prefixes);
    }
    let after_only: BTreeSet<IpNet> = tail
        .prefixes
        .iter()
        .filter(|p| !head.prefixes.contains(p) && !middle.prefixes.contains(p))
        .copied()
        .collect();
    assert!(!after_only.is_empty());
    let after_sample = every_nth(&after_only, after_only.len().div_ceil(10));
    registry.extend(after_sample.iter().copied());
    let registry: Vec<IpNet> = registry.into_iter().collect();

    let report = replay(dir.path(), &registry, &corrupt_file);
    let file = &report.files[0];
    let mut want_errors: BTreeMap<&str, u64> = BTreeMap::new();
    for (_, f, _) in &targets {
        if let Some(l) = f.label() {
            *want_errors.entry(l).or_default() += 1;
        }
    }
    assert_eq!(
        file.errors, want_errors,
        "one counted error per undecodable record ({targets:?})"
    );
    assert!(file.error_count() > 0);
    assert!(
        file.processed >= head.entries,
        "everything before the first corrupted record is processed"
    );
    assert_eq!(
        file.processed,
        47_462 - lost,
        "all route entries but those of the {} undecodable records",
        dropped.len()
    );
    assert_eq!(file.processed, expected.entries);
    assert_state_matches("byte-flipped file", &report, &registry, &expected);
    println!(
        "byte-flipped: records {:?} corrupted; {} entries processed (47,462 - {lost} lost; {} \
         before the first corrupted record); errors {:?}; {} prefixes compared, {} only after \
         the corruption",
        targets.iter().map(|t| (t.0, t.1)).collect::<Vec<_>>(),
        file.processed,
        head.entries,
        file.errors,
        registry.len(),
        after_sample.len()
    );
    // Prefixes that only occur after the corruption got their state: reading went on.
    for p in &after_sample {
        let s = summary(&report, p);
        assert!(
            s.announcements + s.withdrawals > 0,
            "{p} (only after the corrupted records) was processed"
        );
        assert_eq!((s.visibility, s.origins.clone()), tail.state(p), "{p}");
    }
}

/// A malformed AS_PATH (undefined segment type 9) is dropped by bgpkit-parser 0.23 without an
/// error (`parse_route_attributes` records the attribute error and discards it), so the
/// announcement reaches `ingest::mrt::read_file` without an AS_PATH. It is treated as a
/// withdrawal (RFC 7606 treat-as-withdraw) and counted as one `malformed` parse error per route
/// entry: no route is stored. (bgpdump still prints the announcement, with the path `! Error !`.)
/// Replayed after the clean record, the malformed copy withdraws the routes the clean one
/// announced.
#[test]
fn malformed_as_path_is_treated_as_withdraw_and_counted() {
    let data = std::fs::read(fixture(ARCH0)).unwrap();
    let recs = records(&data);
    let (off, len, u) = recs[recs.len() / 2..]
        .iter()
        .find_map(|&(off, len)| {
            update_at(&data, off)
                .filter(|u| u.nlri_bytes > 0)
                .map(|u| (off, len, u))
        })
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let clean = dir.path().join("clean.mrt");
    std::fs::write(&clean, &data[off..off + len]).unwrap();
    let mut bad = data[off..off + len].to_vec();
    let seg = as_path_value(&data, &u).unwrap() - off;
    bad[seg] = 9;
    let bad_file = dir.path().join("bad.mrt");
    std::fs::write(&bad_file, &bad).unwrap();

    let dump = Dump::of(&clean);
    let registry: Vec<IpNet> = dump.prefixes.iter().copied().collect();
    assert!(!registry.is_empty());
    let bad_lines = bgpdump(&bad_file);
    assert_eq!(bad_lines.len() as u64, dump.entries);
    assert!(bad_lines.iter().all(|l| l.contains("|! Error !|")));

    let good = replay(dir.path(), &registry, &clean);
    assert_state_matches("clean record", &good, &registry, &dump);
    assert!(
        registry.iter().all(|p| summary(&good, p).visibility > 0),
        "the clean record announces every registered prefix"
    );

    // The malformed record alone: every entry is processed as a withdrawal and counted.
    let report = replay(dir.path(), &registry, &bad_file);
    assert_eq!(report.files[0].processed, dump.entries);
    assert_eq!(
        report.files[0].errors,
        BTreeMap::from([("malformed", dump.entries)]),
        "one `malformed` error per route entry"
    );
    for p in &registry {
        let s = summary(&report, p);
        assert_eq!(s.visibility, 0, "{p}: no route stored");
        assert!(s.origins.is_empty(), "{p}: no origin");
        assert!(s.sample_paths.is_empty(), "{p}: no path");
        assert_eq!(s.announcements, 0, "{p}: not counted as an announcement");
    }

    // The clean record, then the malformed copy (same timestamp): the malformed announcement
    // withdraws what the clean one announced.
    let both_file = dir.path().join("clean-then-bad.mrt");
    std::fs::write(&both_file, [&data[off..off + len], &bad[..]].concat()).unwrap();
    let report = replay(dir.path(), &registry, &both_file);
    assert_eq!(report.files[0].processed, 2 * dump.entries);
    assert_eq!(
        report.files[0].errors,
        BTreeMap::from([("malformed", dump.entries)]),
        "only the malformed record's entries are errors"
    );
    let counts = dump.counts(&registry);
    for p in &registry {
        let s = summary(&report, p);
        let (ann, wdr) = counts.get(p).copied().unwrap_or_default();
        assert_eq!(s.visibility, 0, "{p}: withdrawn by the malformed record");
        assert!(s.origins.is_empty(), "{p}: no origin left");
        assert!(s.sample_paths.is_empty(), "{p}: no path left");
        assert_eq!(
            (s.announcements, s.withdrawals),
            (ann, wdr + ann),
            "{p}: the clean record's announcements, each withdrawn again"
        );
    }
}

/// (c) The real corrupt fixture: 5 valid legacy BGP records (2 withdrawals + 2 announcements,
/// peer 203.37.255.126 AS4608), then garbage. bgpdump is wrong here (it prints 2,042 bogus W
/// lines and misprints the two withdrawn prefixes as 203.37.255.126/24); bgpkit-parser decodes
/// the 4 entries and stops. No route state may come from the garbage.
#[test]
fn corrupt_fixture_yields_exactly_its_four_routes_and_no_garbage() {
    let dir = tempfile::tempdir().unwrap();
    // Everything IPv4 and IPv6 is covered: any route decoded from garbage would be counted.
    let registry = ["0.0.0.0/1", "128.0.0.0/1", "::/1", "8000::/1"].map(net);
    let report = replay(
        dir.path(),
        &registry,
        &fixture("updates/bgpkit-parser__updates.20000325.0345.gz"),
    );
    let file = &report.files[0];
    assert_eq!(file.processed, 4);
    assert_eq!(file.matched, 4);
    assert!(file.error_count() > 0);
    assert_eq!(
        file.errors,
        BTreeMap::from([
            // A record whose length swallows the garbage, an undefined MRT type, then a
            // multi-gigabyte length that ends the file (no record boundary to resume from).
            ("malformed", 1),
            ("oversized_record", 1),
            ("truncated_record", 1),
        ])
    );
    let total: u64 = report
        .prefixes
        .iter()
        .map(|p| p.announcements + p.withdrawals)
        .sum();
    assert_eq!(total, 4, "only the 4 real route entries leave any state");
    let low = summary(&report, &net("0.0.0.0/1"));
    assert_eq!((low.announcements, low.withdrawals), (0, 1)); // W 24.216.16.0/24
    assert!(low.more_specifics.is_empty());
    let high = summary(&report, &net("128.0.0.0/1"));
    assert_eq!((high.announcements, high.withdrawals), (2, 1)); // W 203.18.151.0/24
    let announced: Vec<(String, u32, Vec<u32>)> = high
        .more_specifics
        .iter()
        .map(|m| (m.prefix.to_string(), m.peers, m.origins.clone()))
        .collect();
    assert_eq!(
        announced,
        vec![
            ("194.141.31.0/24".to_string(), 1, vec![8877]),
            ("204.92.84.0/24".to_string(), 1, vec![705]),
        ]
    );
    for v6 in &registry[2..] {
        let s = summary(&report, v6);
        assert_eq!((s.announcements, s.withdrawals, s.visibility), (0, 0, 0));
        assert!(s.more_specifics.is_empty());
    }
}

/// (d) One UPDATE announcing 11.13.0.0/13 (bits set past the mask). Its NLRI field is 4 bytes:
/// the 3-byte prefix and one stray byte (0x0b, a /11 length with no address bytes). bgpdump
/// ignores the stray byte and prints 11.13.0.0/13; bgpkit-parser 0.23 rejects the whole NLRI
/// ("truncated IPv4 prefix").
///
/// Policy, as observed: a record whose NLRI does not parse is one counted `truncated_record`
/// error and contributes no route (11.8.0.0/13 gets no state). Host bits past the mask are not
/// a reason to reject: when the NLRI is otherwise well formed (stray byte removed below), the
/// route is matched and stored under the masked prefix 11.8.0.0/13.
#[test]
fn nlri_with_bits_past_the_mask() {
    let file = fixture("updates/ripe-bgpdump__updates.nlri_mask_trailing_bits.gz");
    let dir = tempfile::tempdir().unwrap();
    let registry = [net("11.8.0.0/13")];

    let lines = bgpdump(&file);
    assert_eq!(lines.len(), 1);
    assert!(lines[0].contains("|A|12.0.1.63|7018|11.13.0.0/13|7018 3549 12389 48275 51044|"));

    let report = replay(dir.path(), &registry, &file);
    assert_eq!(report.files[0].processed, 0);
    assert_eq!(
        report.files[0].errors,
        BTreeMap::from([("truncated_record", 1)])
    );
    let s = summary(&report, &registry[0]);
    assert_eq!((s.visibility, s.announcements), (0, 0));
    assert!(s.more_specifics.is_empty());

    // The same record without the stray byte (MRT and BGP lengths adjusted).
    let mut raw = Vec::new();
    std::io::Read::read_to_end(&mut routewatch::ingest::mrt::open(&file).unwrap(), &mut raw)
        .unwrap();
    assert_eq!(records(&raw), vec![(0, raw.len())]);
    let u = update_at(&raw, 0).unwrap();
    assert_eq!(u.nlri_bytes, 4);
    assert_eq!(raw[raw.len() - 4..], [13, 11, 13, 11]);
    raw.pop();
    let mrt_len = u32::try_from(raw.len() - 12).unwrap();
    raw[8..12].copy_from_slice(&mrt_len.to_be_bytes());
    let bgp_len = u16::from_be_bytes([raw[u.length], raw[u.length + 1]]) - 1;
    raw[u.length..u.length + 2].copy_from_slice(&bgp_len.to_be_bytes());
    let fixed = dir.path().join("fixed.mrt");
    std::fs::write(&fixed, &raw).unwrap();
    assert_eq!(bgpdump(&fixed), lines, "bgpdump reads both the same way");

    let report = replay(dir.path(), &registry, &fixed);
    assert_eq!(report.files[0].processed, 1);
    assert_eq!(report.files[0].error_count(), 0);
    let s = summary(&report, &registry[0]);
    assert_eq!(s.visibility, 1, "stored under the masked prefix");
    assert_eq!(s.origins, vec![51044]);
    assert_eq!(s.announcements, 1);
    assert!(s.more_specifics.is_empty());
}

/// `routewatch replay` keeps the `[mrt]` bounds of its configuration: a small bz2 of zeros is
/// abandoned by the error budget, and with no error budget by the decompression-ratio guard,
/// instead of costing minutes of CPU.
#[test]
fn replay_keeps_the_mrt_bounds_of_its_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let mut enc = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::best());
    std::io::Write::write_all(&mut enc, &vec![0u8; 64 << 20]).unwrap();
    let bomb = dir.path().join("bomb.bz2");
    std::fs::write(&bomb, enc.finish().unwrap()).unwrap();
    let prefixes: Vec<IpNet> = vec!["192.0.2.0/24".parse().unwrap()];
    let cases = [
        (
            "max-errors-per-file = 100\nmax-decompression-ratio = 0\n",
            "error_budget",
        ),
        (
            "max-errors-per-file = 0\nmax-decompression-ratio = 1000\n",
            "decompression_ratio",
        ),
    ];
    for (keys, reason) in cases {
        let locations = vec![Location::new("l", &[64496], &prefixes)];
        let config = DaemonConfig::replay()
            .mrt_keys(keys)
            .locations(&locations)
            .write(dir.path())
            .path;
        let report =
            routewatch::replay::replay(&ReplayOptions::new(&config, std::slice::from_ref(&bomb)))
                .unwrap();
        assert_eq!(report.files[0].abandoned, Some(reason), "{keys}");
    }
}
