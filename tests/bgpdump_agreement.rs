//! Differential test against an independent decoder: for clean real MRT fixtures, the final
//! per-prefix state `routewatch replay` reports must agree with what `bgpdump -m` (RIPE bgpdump,
//! Debian package) says the same file contains.
//!
//! The expectation is computed here from bgpdump's one-line-per-route output, replayed in file
//! order: per (peer IP, peer AS, prefix, ADD-PATH id) the last AS path is kept (`W` removes it),
//! then per prefix the visibility is the number of distinct peers with a route for exactly that
//! prefix and the origins are the distinct single-AS origins of those routes. The registry is
//! chosen deterministically from bgpdump's output (an even sample of every file's prefixes, leaving
//! out very short ones, plus its MOAS, fully withdrawn and AS_SET prefixes), so no figure below is
//! hand-picked. Besides visibility and origins, the announcements and withdrawals per registered
//! prefix (longest-prefix match), the matched entries and the processed entries are compared.
//!
//! Peer sessions: a `STATE` line that takes a peer out of Established (6) removes every route of
//! that peer, as routewatch does for a BGP4MP state change (its session, and the routes learned
//! over it, are gone). The registry also takes every prefix whose final state depends on that
//! (up to a bound), so a file with such a state change is compared where it matters.
//!
//! Origin policy shared with `routewatch::ingest::bgp::convert_path`: a path ending in an AS_SET of
//! two or more ASes has no single origin (skipped); a one-member AS_SET (`{64496}`, duplicates
//! removed) names its origin; confederation segments are not part of the path.
//!
//! Missing AS_PATH policy shared with `routewatch::ingest::mrt::read_file`: an UPDATE
//! announcement without an AS_PATH is treated as a withdrawal (RFC 7606 treat-as-withdraw) and
//! counted as one `malformed` parse error; bgpdump prints it as an announcement with an empty
//! path, and the expectation applies the policy to those `A` lines. A RIB entry without path
//! attributes is the dumping router's own route (the ADD-PATH RIBs have two each, peer
//! 0.0.0.0 / :: AS 0): it is kept as a route with an empty path and no origin, as bgpdump shows.
//!
//! bgpdump is required: the test fails (it does not skip) when it is missing. CI installs it with
//! `apt-get install bgpdump`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use ipnet::IpNet;
use routewatch::replay::ReplayOptions;

mod support;

use support::process::ChildGuard;
use support::{DaemonConfig, Location};

/// Registered prefixes sampled evenly from a file's distinct prefixes.
const SAMPLE: usize = 150;
/// At most this many MOAS prefixes (two or more origins at the end) are added.
const MAX_MOAS: usize = 60;
/// At most this many prefixes that end with no route at all (fully withdrawn) are added.
const MAX_GONE: usize = 20;
/// At most this many prefixes announced with a path ending in an AS_SET are added.
const MAX_AS_SET: usize = 20;
/// At most this many prefixes whose final state a session going down decides are added.
const MAX_STATE_SENSITIVE: usize = 40;
/// Registered prefixes per generated location.
const PER_LOCATION: usize = 40;

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/mrt")
        .join(rel)
}

/// A route's key: (peer IP, peer AS, prefix, ADD-PATH path id; 0 without ADD-PATH).
type RouteKey = (IpAddr, u32, IpNet, u32);

/// What bgpdump says a file contains, replayed to the end.
#[derive(Default)]
struct Expectation {
    /// Current routes (origin per route; `None` = no single-AS origin).
    routes: HashMap<RouteKey, Option<u32>>,
    /// The same, ignoring STATE lines (as routewatch did before it acted on state changes):
    /// `None` until the first state change that removes routes (identical to `routes` up to
    /// there). The prefixes where the two differ are the ones the state changes decide.
    routes_state_blind: Option<HashMap<RouteKey, Option<u32>>>,
    /// STATE lines leaving Established (6).
    sessions_down: u64,
    /// Route entries in file order: (prefix, is_withdrawal).
    entries: Vec<(IpNet, bool)>,
    a: u64,
    w: u64,
    b: u64,
    state: u64,
    /// Every distinct prefix of an A/W/B line (host bits masked).
    prefixes: BTreeSet<IpNet>,
    /// Prefixes announced with a path ending in an AS_SET.
    as_set: BTreeSet<IpNet>,
    /// A lines without an AS path: withdrawals under routewatch's policy, each a `malformed`
    /// error (see the module documentation).
    no_path: u64,
}

/// Per-prefix figures compared with routewatch.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Figures {
    visibility: u32,
    origins: Vec<u32>,
}

impl Expectation {
    fn figures(routes: &HashMap<RouteKey, Option<u32>>) -> HashMap<IpNet, Figures> {
        let mut peers: HashMap<IpNet, HashSet<(IpAddr, u32)>> = HashMap::new();
        let mut origins: HashMap<IpNet, BTreeSet<u32>> = HashMap::new();
        for (&(ip, asn, prefix, _), origin) in routes {
            peers.entry(prefix).or_default().insert((ip, asn));
            let o = origins.entry(prefix).or_default();
            if let Some(origin) = origin {
                o.insert(*origin);
            }
        }
        peers
            .into_iter()
            .map(|(prefix, p)| {
                let f = Figures {
                    visibility: p.len() as u32,
                    origins: origins
                        .remove(&prefix)
                        .unwrap_or_default()
                        .into_iter()
                        .collect(),
                };
                (prefix, f)
            })
            .collect()
    }
}

/// The origin of a bgpdump AS path, by routewatch's policy (see the module documentation).
fn origin_of(path: &str, line: &str) -> Option<u32> {
    #[derive(PartialEq)]
    enum Seg {
        Seq,
        Set,
        Confed,
    }
    // Fast path: a plain AS_SEQUENCE.
    if !path.contains(['{', '(', '[']) {
        return path.rsplit(' ').find(|t| !t.is_empty()).map(|t| {
            t.parse()
                .unwrap_or_else(|_| panic!("bad ASN {t:?} in bgpdump line: {line}"))
        });
    }
    let parse = |t: &str| -> u32 {
        t.parse()
            .unwrap_or_else(|_| panic!("bad ASN {t:?} in bgpdump line: {line}"))
    };
    // Flattened path (non-final AS_SETs as sorted members; confederations left out) and the last
    // segment with its members.
    let mut asns: Vec<u32> = Vec::new();
    let mut last: Option<(Seg, Vec<u32>)> = None;
    let mut rest = path.trim();
    while !rest.is_empty() {
        let (seg, members, tail) = match rest.as_bytes()[0] {
            open @ (b'{' | b'(' | b'[') => {
                let close = match open {
                    b'{' => '}',
                    b'(' => ')',
                    _ => ']',
                };
                let end = rest
                    .find(close)
                    .unwrap_or_else(|| panic!("unbalanced AS path in bgpdump line: {line}"));
                let members: Vec<u32> = rest[1..end]
                    .split([',', ' '])
                    .filter(|t| !t.is_empty())
                    .map(parse)
                    .collect();
                let seg = if open == b'{' { Seg::Set } else { Seg::Confed };
                (seg, members, &rest[end + 1..])
            }
            _ => {
                let end = rest.find([' ', '{', '(', '[']).unwrap_or(rest.len());
                (Seg::Seq, vec![parse(&rest[..end])], &rest[end..])
            }
        };
        // The previous segment is not the last one: fold it into the flat path.
        if let Some((s, m)) = last.take() {
            match s {
                Seg::Seq => asns.extend(m),
                Seg::Set => {
                    let mut m = m;
                    m.sort_unstable();
                    m.dedup();
                    asns.extend(m);
                }
                Seg::Confed => {}
            }
        }
        last = Some((seg, members));
        rest = tail.trim_start();
    }
    match last {
        None => None,
        Some((Seg::Seq, m)) => m.last().copied(),
        Some((Seg::Set, mut m)) => {
            m.sort_unstable();
            m.dedup();
            (m.len() == 1).then(|| m[0])
        }
        Some((Seg::Confed, _)) => asns.last().copied(),
    }
}

#[test]
fn origin_policy_of_the_expectation() {
    assert_eq!(origin_of("", ""), None);
    assert_eq!(origin_of("3356 174 64496", ""), Some(64496));
    assert_eq!(origin_of("3356 {64497,64496}", ""), None);
    assert_eq!(origin_of("3356 {64496}", ""), Some(64496));
    assert_eq!(origin_of("3356 {64496,64496}", ""), Some(64496));
    assert_eq!(origin_of("3356 {64497,64498} 64496", ""), Some(64496));
    assert_eq!(origin_of("(65001 65002) 3356 64496", ""), Some(64496));
    assert_eq!(origin_of("3356 64496 [65001,65002]", ""), Some(64496));
}

/// Runs `bgpdump -m` on `file`, streaming its output.
fn bgpdump(file: &Path) -> impl Iterator<Item = String> {
    let mut child = ChildGuard::start(
        "bgpdump",
        Command::new("bgpdump")
            .arg("-m")
            .arg(file)
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
        None,
        "this test compares routewatch with RIPE bgpdump and must not be skipped: \
         apt-get install bgpdump (CI installs it)",
    );
    let mut lines = BufReader::new(child.take_stdout()).lines();
    let mut child = Some(child);
    std::iter::from_fn(move || match lines.next() {
        Some(l) => Some(l.expect("bgpdump output is UTF-8")),
        None => {
            if let Some(mut c) = child.take() {
                let status = c
                    .wait_exit(Duration::from_secs(30))
                    .expect("bgpdump exits at the end of its output");
                assert!(status.success(), "bgpdump failed: {status}");
            }
            None
        }
    })
}

/// Replays bgpdump's output for `file`. Each ADD-PATH path id is its own route (RFC 7911 /
/// RFC 8050).
fn expectation(file: &Path) -> Expectation {
    let mut e = Expectation::default();
    let mut last_prefix: Option<(String, IpNet)> = None;
    for line in bgpdump(file) {
        let f: Vec<&str> = line.split('|').collect();
        assert!(f.len() >= 3, "unexpected bgpdump line: {line}");
        let kind = f[2];
        if kind == "STATE" {
            // BGP4MP|time|STATE|peer|peer-as|old|new
            e.state += 1;
            let ip: IpAddr = f[3].parse().unwrap();
            let asn: u32 = f[4].parse().unwrap();
            if f[5] == "6" && f[6] != "6" {
                e.sessions_down += 1;
                if e.routes.keys().any(|&(i, a, _, _)| (i, a) == (ip, asn)) {
                    e.routes_state_blind.get_or_insert_with(|| e.routes.clone());
                    e.routes.retain(|&(i, a, _, _), _| (i, a) != (ip, asn));
                }
            }
            continue;
        }
        let ip: IpAddr = f[3]
            .parse()
            .unwrap_or_else(|_| panic!("bad peer IP in bgpdump line: {line}"));
        let asn: u32 = f[4]
            .parse()
            .unwrap_or_else(|_| panic!("bad peer AS in bgpdump line: {line}"));
        // RIB dumps print one prefix on many consecutive lines: parse (and collect) it once.
        let prefix = match &last_prefix {
            Some((text, p)) if text == f[5] => *p,
            _ => {
                let p = f[5]
                    .parse::<IpNet>()
                    .unwrap_or_else(|_| panic!("bad prefix in bgpdump line: {line}"))
                    .trunc();
                e.prefixes.insert(p);
                last_prefix = Some((f[5].to_string(), p));
                p
            }
        };
        // ADD-PATH output (TABLE_DUMP2_AP, BGP4MP_AP, ...) has the path id after the prefix.
        let (path_id, path_field) = if f[0].ends_with("_AP") {
            let id = f[6]
                .parse::<u32>()
                .unwrap_or_else(|_| panic!("bad path id in bgpdump line: {line}"));
            (id, 7)
        } else {
            (0, 6)
        };
        let key = (ip, asn, prefix, path_id);
        match kind {
            "A" | "B" => {
                if kind == "A" {
                    e.a += 1;
                } else {
                    e.b += 1;
                }
                let path = f[path_field];
                if kind == "A" && path.trim().is_empty() {
                    // An UPDATE without an AS_PATH: treat-as-withdraw (module documentation).
                    e.no_path += 1;
                    e.routes.remove(&key);
                    if let Some(r) = &mut e.routes_state_blind {
                        r.remove(&key);
                    }
                    e.entries.push((prefix, true));
                    continue;
                }
                let origin = origin_of(path, &line);
                if path.ends_with('}') {
                    e.as_set.insert(prefix);
                }
                e.routes.insert(key, origin);
                if let Some(r) = &mut e.routes_state_blind {
                    r.insert(key, origin);
                }
                e.entries.push((prefix, false));
            }
            "W" => {
                e.w += 1;
                e.routes.remove(&key);
                if let Some(r) = &mut e.routes_state_blind {
                    r.remove(&key);
                }
                e.entries.push((prefix, true));
            }
            other => panic!("unexpected bgpdump line type {other}: {line}"),
        }
    }
    e
}

/// Deterministic registry: every n-th distinct prefix, plus MOAS, fully withdrawn and AS_SET
/// prefixes.
fn choose_registry(
    e: &Expectation,
    figures: &HashMap<IpNet, Figures>,
    state_sensitive: &[IpNet],
) -> Vec<IpNet> {
    // Very short prefixes (a default route, 2000::/3) are left out: every route of the file would
    // match them as a more-specific, which only slows the debug-build replay down.
    let all: Vec<IpNet> = e
        .prefixes
        .iter()
        .filter(|p| p.prefix_len() >= if p.addr().is_ipv4() { 8 } else { 16 })
        .copied()
        .collect();
    let step = all.len().div_ceil(SAMPLE).max(1);
    let mut chosen: BTreeSet<IpNet> = all.iter().step_by(step).copied().collect();
    let spread = |v: Vec<IpNet>, max: usize| -> Vec<IpNet> {
        let step = v.len().div_ceil(max).max(1);
        v.into_iter().step_by(step).collect()
    };
    let moas: Vec<IpNet> = all
        .iter()
        .filter(|p| figures.get(p).is_some_and(|f| f.origins.len() >= 2))
        .copied()
        .collect();
    chosen.extend(spread(moas, MAX_MOAS));
    let gone: Vec<IpNet> = all
        .iter()
        .filter(|p| !figures.contains_key(p))
        .copied()
        .collect();
    chosen.extend(spread(gone, MAX_GONE));
    let as_set: Vec<IpNet> = e
        .as_set
        .iter()
        .filter(|p| all.contains(p))
        .copied()
        .collect();
    chosen.extend(spread(as_set, MAX_AS_SET));
    let sensitive: Vec<IpNet> = state_sensitive
        .iter()
        .filter(|p| all.contains(p))
        .copied()
        .collect();
    chosen.extend(spread(sensitive, MAX_STATE_SENSITIVE));
    chosen.into_iter().collect()
}

fn write_config(dir: &Path, registry: &[IpNet]) -> PathBuf {
    let locations: Vec<Location> = registry
        .chunks(PER_LOCATION)
        .enumerate()
        .map(|(i, chunk)| Location::new(&format!("agreement-{i:03}"), &[64496], chunk))
        .collect();
    DaemonConfig::replay().locations(&locations).write(dir).path
}

/// Announcements and withdrawals per registered prefix, each route entry counted on the most
/// specific registered prefix covering it (routewatch's longest-prefix match).
fn expected_counts(e: &Expectation, registry: &[IpNet]) -> HashMap<IpNet, (u64, u64)> {
    let set: HashSet<IpNet> = registry.iter().copied().collect();
    let mut lengths: Vec<(bool, u8)> = registry
        .iter()
        .map(|p| (p.addr().is_ipv4(), p.prefix_len()))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    lengths.reverse();
    let mut counts: HashMap<IpNet, (u64, u64)> = HashMap::new();
    let mut cache: HashMap<IpNet, Option<IpNet>> = HashMap::new();
    for &(prefix, withdrawal) in &e.entries {
        let covering = *cache.entry(prefix).or_insert_with(|| {
            let v4 = prefix.addr().is_ipv4();
            lengths
                .iter()
                .filter(|&&(fam, len)| fam == v4 && len <= prefix.prefix_len())
                .map(|&(_, len)| IpNet::new(prefix.addr(), len).unwrap().trunc())
                .find(|p| set.contains(p))
        });
        if let Some(r) = covering {
            let c = counts.entry(r).or_default();
            if withdrawal {
                c.1 += 1;
            } else {
                c.0 += 1;
            }
        }
    }
    counts
}

/// Replays `rel` through routewatch and compares every registered prefix with bgpdump. Returns
/// routewatch's report for further, file-specific checks.
fn check_agreement(rel: &str) -> routewatch::report::ReplayReport {
    let file = fixture(rel);
    let e = expectation(&file);
    let figures = Expectation::figures(&e.routes);
    // The prefixes whose final state the sessions going down decide.
    let state_blind = e
        .routes_state_blind
        .as_ref()
        .map_or_else(|| figures.clone(), Expectation::figures);
    let state_sensitive: Vec<IpNet> = e
        .prefixes
        .iter()
        .filter(|p| figures.get(p) != state_blind.get(p))
        .copied()
        .collect();
    let registry = choose_registry(&e, &figures, &state_sensitive);
    assert!(
        !registry.is_empty(),
        "{rel}: no prefixes to register (bgpdump printed no routes?)"
    );

    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &registry);
    let report =
        routewatch::replay::replay(&ReplayOptions::new(&config, std::slice::from_ref(&file)))
            .unwrap_or_else(|err| panic!("{rel}: replay failed: {err}"));

    // Route entries: bgpdump's A + W + B lines (bgpdump is right on all these files).
    let entries = e.a + e.w + e.b;
    assert_eq!(report.files.len(), 1);
    assert_eq!(
        report.files[0].processed, entries,
        "{rel}: route entries processed by routewatch vs bgpdump A+W+B ({} A, {} W, {} B)",
        e.a, e.w, e.b
    );

    // The pyasn RIBs are bz2 streams cut at 1 MiB: one counted error for the partial record.
    // Announcements without an AS_PATH: one `malformed` error each.
    let mut want_errors: BTreeMap<&str, u64> = BTreeMap::new();
    if rel.contains("_firstMB.") {
        want_errors.insert("truncated_stream", 1);
    }
    if e.no_path > 0 {
        want_errors.insert("malformed", e.no_path);
    }
    let got_errors = &report.files[0].errors;
    assert_eq!(*got_errors, want_errors, "{rel}: parse errors");
    assert_eq!(
        report.files[0].sessions_down, e.sessions_down,
        "{rel}: sessions leaving Established"
    );

    let counts = expected_counts(&e, &registry);
    let matched: u64 = counts.values().map(|c| c.0 + c.1).sum();
    assert_eq!(
        report.files[0].matched, matched,
        "{rel}: route entries matching a registered prefix"
    );

    let got: HashMap<IpNet, &routewatch::engine::PrefixSummary> =
        report.prefixes.iter().map(|p| (p.prefix, p)).collect();
    assert_eq!(got.len(), registry.len(), "{rel}: one summary per prefix");
    let mut diff = String::new();
    let mut compared = 0usize;
    let mut moas = 0usize;
    let mut as_set = 0usize;
    let mut visible = 0usize;
    for prefix in &registry {
        let want = figures.get(prefix).cloned().unwrap_or_default();
        let (ann, wdr) = counts.get(prefix).copied().unwrap_or_default();
        let Some(s) = got.get(prefix) else {
            let _ = writeln!(diff, "  {prefix}: missing from the report");
            continue;
        };
        compared += 1;
        moas += usize::from(want.origins.len() >= 2);
        as_set += usize::from(e.as_set.contains(prefix));
        visible += usize::from(want.visibility > 0);
        let mut origins = s.origins.clone();
        origins.sort_unstable();
        if s.visibility != want.visibility
            || origins != want.origins
            || s.announcements != ann
            || s.withdrawals != wdr
        {
            let _ = writeln!(
                diff,
                "  {prefix}: routewatch visibility {} origins {:?} ann {} wdr {} | bgpdump \
                 visibility {} origins {:?} ann {ann} wdr {wdr}",
                s.visibility,
                origins,
                s.announcements,
                s.withdrawals,
                want.visibility,
                want.origins
            );
        }
    }
    assert!(
        diff.is_empty(),
        "{rel}: routewatch disagrees with bgpdump on {} of {} registered prefixes:\n{diff}",
        diff.lines().count(),
        registry.len()
    );
    assert!(compared > 0);
    assert!(visible > 0, "{rel}: no registered prefix is visible at all");
    println!(
        "{rel}: {compared} registered prefixes agree ({visible} visible, {moas} MOAS, \
         {as_set} with AS_SET paths); \
         {entries} route entries ({} A, {} W, {} B, {} STATE, {} without AS path); \
         {matched} matched; {} sessions down decide {} registered prefixes",
        e.a,
        e.w,
        e.b,
        e.state,
        e.no_path,
        e.sessions_down,
        registry
            .iter()
            .filter(|p| state_sensitive.contains(p))
            .count()
    );
    report
}

/// The records of MRT file `src` (gzip or plain) up to and including its last BGP4MP state
/// change out of Established, uncompressed: the state right after the session went down (by the
/// end of a file the peer has often come back and sent its routes again).
fn cut_after_last_session_down(src: &Path, dst: &Path) -> u64 {
    let raw = std::fs::read(src).unwrap();
    let bytes = if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::MultiGzDecoder::new(&raw[..]), &mut out)
            .unwrap();
        out
    } else {
        raw
    };
    let (mut at, mut end, mut downs) = (0usize, 0usize, 0u64);
    while at + 12 <= bytes.len() {
        let h = &bytes[at..at + 12];
        let (mrt_type, subtype) = (
            u16::from_be_bytes([h[4], h[5]]),
            u16::from_be_bytes([h[6], h[7]]),
        );
        let len = u32::from_be_bytes([h[8], h[9], h[10], h[11]]) as usize;
        let next = at + 12 + len;
        assert!(next <= bytes.len(), "{}: cut record", src.display());
        // BGP4MP (16) / BGP4MP_ET (17) STATE_CHANGE (0) / STATE_CHANGE_AS4 (5): the old and
        // new states are the last four bytes (RFC 6396 §4.4.1).
        if matches!(mrt_type, 16 | 17) && matches!(subtype, 0 | 5) && len >= 4 {
            let old = u16::from_be_bytes([bytes[next - 4], bytes[next - 3]]);
            let new = u16::from_be_bytes([bytes[next - 2], bytes[next - 1]]);
            if old == 6 && new != 6 {
                downs += 1;
                end = next;
            }
        }
        at = next;
    }
    assert!(
        downs > 0,
        "{}: no session leaves Established",
        src.display()
    );
    std::fs::write(dst, &bytes[..end]).unwrap();
    downs
}

/// [`check_agreement`] on `rel` cut right after its last session going down: the registered
/// prefixes whose state that decides are among the compared ones, with the visibility the
/// state-aware replay of bgpdump's output gives, lower than ignoring the state change would.
fn check_agreement_with_sessions_down(rel: &str, sessions: u64) {
    let dir = tempfile::tempdir().unwrap();
    let name = Path::new(rel).file_name().unwrap().to_string_lossy();
    let cut = dir
        .path()
        .join(format!("{}.cut.mrt", name.trim_end_matches(".gz")));
    assert_eq!(cut_after_last_session_down(&fixture(rel), &cut), sessions);
    let report = check_agreement(cut.to_str().unwrap());
    assert_eq!(report.files[0].sessions_down, sessions, "{rel}");
    let e = expectation(&cut);
    let figures = Expectation::figures(&e.routes);
    let blind = Expectation::figures(e.routes_state_blind.as_ref().unwrap());
    let decided: Vec<_> = report
        .prefixes
        .iter()
        .filter(|p| figures.get(&p.prefix) != blind.get(&p.prefix))
        .collect();
    assert!(
        !decided.is_empty(),
        "{rel}: no registered prefix whose state a session going down decides"
    );
    for p in decided {
        let want = figures.get(&p.prefix).map_or(0, |f| f.visibility);
        let blind = blind.get(&p.prefix).map_or(0, |f| f.visibility);
        assert_eq!(p.visibility, want, "{rel}: {}", p.prefix);
        assert!(want < blind, "{rel}: {}", p.prefix);
    }
}

#[test]
fn table_dump_v1_rib() {
    check_agreement("ribs/ripe-bgpdump__bview.20020722.2337.gz");
}

#[test]
fn table_dump_v2_ipv4_truncated_bz2() {
    check_agreement("ribs/pyasn__rib.20140523.0600_firstMB.bz2");
}

#[test]
fn table_dump_v2_ipv6_truncated_bz2() {
    check_agreement("ribs/pyasn__rib6.20151101.0600_firstMB.bz2");
}

/// RFC 8050 RIB: 31 prefixes, most with two paths (path ids) from the same peer. Each path is its
/// own route: visibility counts the peer once, and the origins of all its paths are kept.
/// bgpkit-parser 0.23 discards the path ids of TABLE_DUMP_V2 *_ADDPATH RIB entries, so
/// `ingest::mrt::read_file` numbers a peer's repeated entries within a prefix itself. Each file
/// also has 2 entries without any path attributes (peer 0.0.0.0 / :: AS 0, the dumping router's
/// own routes): kept as routes with an empty path (see the module documentation).
#[test]
fn table_dump_v2_add_path_rib() {
    let rel = "ribs/ripe-bgpdump__bview.ipv4_unicast_add_path.gz";
    let report = check_agreement(rel);
    assert_add_path_rib(rel, &report);
}

/// The IPv6 counterpart of [`table_dump_v2_add_path_rib`].
#[test]
fn table_dump_v2_add_path_rib_ipv6() {
    let rel = "ribs/ripe-bgpdump__bview.ipv6_unicast_add_path.gz";
    let report = check_agreement(rel);
    assert_add_path_rib(rel, &report);
}

/// ADD-PATH RIB specifics: some registered prefix holds two origins from a single peer (the two
/// paths did not replace each other), and no prefix reports a path change (a RIB snapshot is a
/// baseline, not a sequence of changes).
fn assert_add_path_rib(rel: &str, report: &routewatch::report::ReplayReport) {
    assert!(
        report
            .prefixes
            .iter()
            .any(|p| p.visibility == 1 && p.origins.len() == 2),
        "{rel}: no registered prefix has 2 origins from a single peer"
    );
    let changed: Vec<(IpNet, u64)> = report
        .prefixes
        .iter()
        .filter(|p| p.path_changes != 0)
        .map(|p| (p.prefix, p.path_changes))
        .collect();
    assert!(
        changed.is_empty(),
        "{rel}: path changes in a RIB snapshot: {changed:?}"
    );
}

#[test]
fn bgp4mp_updates_ipv4_ipv6_with_state_changes() {
    check_agreement("updates/ripe-bgpdump__updates.20160811.1600.gz");
}

/// RouteViews, November 2000: a peer's session leaves Established holding 21 routes.
#[test]
fn bgp4mp_updates_with_a_peer_session_going_down() {
    check_agreement_with_sessions_down("updates/bgpkit-parser__updates.20001104.0124.gz", 1);
}

/// Quagga's MRT dump of a lab session (IPv4 and IPv6): both sessions go down (Quagga's state 7,
/// Clearing), then come back and send their routes again. Right after the second goes down no
/// registered prefix is visible; at the end of the file every route is back.
#[test]
fn bgp4mp_updates_quagga_sessions_down_and_back() {
    let rel = "lab/mrtparse__quagga_bgp.mrt";
    let whole = check_agreement(rel);
    assert_eq!(whole.files[0].sessions_down, 2);
    let visible = whole.prefixes.iter().filter(|p| p.visibility > 0).count();
    assert!(visible > 0);

    let dir = tempfile::tempdir().unwrap();
    let cut = dir.path().join("quagga.cut.mrt");
    assert_eq!(cut_after_last_session_down(&fixture(rel), &cut), 2);
    let config = write_config(
        dir.path(),
        &whole.prefixes.iter().map(|p| p.prefix).collect::<Vec<_>>(),
    );
    let report = routewatch::replay::replay(&ReplayOptions::new(&config, &[cut])).unwrap();
    assert_eq!(report.files[0].sessions_down, 2);
    assert!(
        report.files[0].matched > 0,
        "routes before the sessions went down"
    );
    for p in &report.prefixes {
        assert_eq!(
            p.visibility, 0,
            "{} after both sessions went down",
            p.prefix
        );
        assert!(
            p.withdrawals == 0,
            "withdrawn by the state change, not by UPDATEs"
        );
    }
}

#[test]
fn bgp4mp_updates_routeviews() {
    check_agreement("updates/caida-bgpstream__routeviews.route-views.jinx.updates.1427846400.bz2");
}

#[test]
fn bgp4mp_updates_uncompressed() {
    check_agreement("updates/csu-gobgpdump__arch0.mrt");
}
