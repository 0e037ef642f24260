//! `routewatch registry generate` on the bundled route-views2 RIB, held against what `bgpdump -m`
//! says the same file contains: the prefixes each AS originates, the more-specifics behind
//! max-length, and the upstreams seen by two or more peers. The output loads as it is and, replayed
//! against the same RIB, raises no anomaly the registry itself would be wrong about.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use ipnet::IpNet;
use routewatch::engine::AnomalyKind;
use routewatch::replay::{replay, ReplayOptions};
use support::*;

const ASNS: [u32; 3] = [2386, 15169, 24151];

fn routewatch(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_routewatch"))
        .args(args)
        .output()
        .unwrap()
}

/// Per requested origin: prefixes, and upstream -> distinct peers, from bgpdump's lines.
#[derive(Default, Debug)]
struct Seen {
    prefixes: BTreeSet<IpNet>,
    upstreams: BTreeMap<u32, BTreeSet<String>>,
    /// Upstreams that were the peer itself.
    direct: BTreeSet<u32>,
}

fn bgpdump_view(file: &std::path::Path) -> BTreeMap<u32, Seen> {
    let out = Command::new("bgpdump")
        .arg("-m")
        .arg(file)
        .output()
        .expect("bgpdump is needed: apt-get install bgpdump");
    let mut seen: BTreeMap<u32, Seen> = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let f: Vec<&str> = line.split('|').collect();
        if f.len() < 7 || !(f[2] == "B" || f[2] == "A") || f[6].contains('{') {
            continue;
        }
        let path: Vec<u32> = f[6]
            .split_whitespace()
            .map(|a| a.parse().unwrap())
            .collect();
        let Some(&origin) = path.last() else { continue };
        if !ASNS.contains(&origin) {
            continue;
        }
        let s = seen.entry(origin).or_default();
        s.prefixes.insert(f[5].parse::<IpNet>().unwrap().trunc());
        // The AS before the origin, prepending skipped.
        if let Some(&up) = path.iter().rev().find(|&&a| a != origin) {
            if up.to_string() == f[4] {
                s.direct.insert(up);
            }
            s.upstreams
                .entry(up)
                .or_default()
                .insert(format!("{}|{}", f[3], f[4]));
        }
    }
    seen
}

#[test]
fn generated_locations_match_bgpdump_load_and_replay_clean() {
    let dir = tempfile::tempdir().unwrap();
    let rib = fixture(DEMO_RIB);
    let out = dir.path().join("locations.toml");
    let mut args = vec!["registry", "generate"];
    let asn_text: Vec<String> = ASNS.iter().map(|a| a.to_string()).collect();
    for a in &asn_text {
        args.extend(["--asn", a]);
    }
    args.extend(["-o", out.to_str().unwrap(), rib.to_str().unwrap()]);
    let run = routewatch(&args);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let text = std::fs::read_to_string(&out).unwrap();

    // Deterministic: the same command to stdout gives the same bytes.
    let again = routewatch(
        &args[..args.len() - 3]
            .iter()
            .chain([&args[args.len() - 1]])
            .copied()
            .collect::<Vec<_>>(),
    );
    assert!(again.status.success());
    assert_eq!(String::from_utf8(again.stdout).unwrap(), text);

    // check-config accepts it as it is.
    let check = routewatch(&["check-config", "-c", out.to_str().unwrap()]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(String::from_utf8_lossy(&check.stdout).contains("OK: 3 locations"));

    // What bgpdump says the RIB holds.
    let want = bgpdump_view(&rib);
    let doc: toml::Value = toml::from_str(&text).unwrap();
    let locations = doc["location"].as_array().unwrap();
    assert_eq!(locations.len(), 3, "{text}");
    for loc in locations {
        let asn = loc["origin-asns"].as_array().unwrap()[0]
            .as_integer()
            .unwrap() as u32;
        assert_eq!(loc["name"].as_str().unwrap(), format!("as{asn}"));
        let w = &want[&asn];
        let got: BTreeSet<IpNet> = loc["prefixes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap().parse().unwrap())
            .collect();
        // Every listed prefix is originated by the AS; every other prefix it originates is a
        // more-specific of a listed one, within max-length, which is the longest of them.
        assert!(got.is_subset(&w.prefixes), "AS{asn}: {got:?}");
        let more: Vec<&IpNet> = w.prefixes.difference(&got).collect();
        for m in &more {
            assert!(
                got.iter().any(|g| g.contains(*m)),
                "AS{asn}: {m} not covered"
            );
        }
        let longest = more
            .iter()
            .filter(|m| m.addr().is_ipv4())
            .map(|m| m.prefix_len())
            .max();
        assert_eq!(
            loc.get("max-length").map(|v| v.as_integer().unwrap() as u8),
            longest,
            "AS{asn}"
        );
        // Upstreams: the ones at least two peers show, or a peer itself; none past 16.
        let mut ups: BTreeSet<u32> = w
            .upstreams
            .iter()
            .filter(|(a, peers)| peers.len() >= 2 || w.direct.contains(a))
            .map(|(a, _)| *a)
            .collect();
        if ups.len() > 16 {
            assert!(text.contains("a widely peered AS"), "AS{asn}");
            ups.clear();
        }
        let got_ups: BTreeSet<u32> = loc
            .get("provider-asns")
            .map(|v| {
                v.as_array()
                    .unwrap()
                    .iter()
                    .map(|a| a.as_integer().unwrap() as u32)
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(got_ups, ups, "AS{asn}");
    }
    // AS2386 has more-specifics in this RIB (max-length) and two upstreams; AS15169 peers
    // with most of the collector's peers (no upstream check).
    assert!(text.contains("max-length = "), "{text}");
    assert!(text.contains("a widely peered AS"), "{text}");
    assert!(text.contains("provider-asns = ["), "{text}");

    // Replayed against the same RIB: every prefix is visible and no anomaly blames the
    // generated registry (a more-specific beyond max-length, a requested AS as offender).
    let report = replay(&ReplayOptions::new(&out, &[rib])).unwrap();
    assert!(!report.prefixes.is_empty());
    for p in &report.prefixes {
        assert!(p.visibility > 0, "{} not visible", p.prefix);
        for a in p.anomalies.iter().filter(|a| a.open) {
            assert_ne!(a.kind, AnomalyKind::UnexpectedMoreSpecific, "{a:?}");
            if let Some(asn) = a.asn {
                assert!(
                    !(matches!(
                        a.kind,
                        AnomalyKind::OriginMismatch | AnomalyKind::SubprefixHijack
                    ) && ASNS.contains(&asn)),
                    "{a:?}"
                );
            }
        }
    }
}

#[test]
fn an_as_with_no_route_is_an_error_naming_it() {
    let rib = fixture(DEMO_RIB);
    let run = routewatch(&[
        "registry",
        "generate",
        "--asn",
        "64999",
        rib.to_str().unwrap(),
    ]);
    assert_eq!(run.status.code(), Some(1));
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(err.contains("originated by AS64999"), "{err}");
    assert!(run.stdout.is_empty());
}
