//! ASPA path verification end to end: `routewatch replay --format json` over the bundled
//! RouteViews RIB (route-views2, 2014-05-23 06:00 UTC, first MiB: 270,005 routes from 35 peers)
//! with an rpki-client JSON file carrying ASPAs, compared with an independent implementation of
//! draft-ietf-sidrops-aspa-verification written here over `bgpdump -m` output.
//!
//! - The registered prefixes (below) cover some 11,500 of the RIB's routes, among them the
//!   RIB's AS_SET paths (`{38266}` on 1.38.0.0/17, `{32786}` on 12.12.96.0/20, and multi-member
//!   sets on 5.128.0.0/14), and nest (1.0.0.0/24 inside 1.0.0.0/12, 12.12.96.0/20 inside
//!   12.0.0.0/12), so a route belongs to the longest registered prefix that covers it.
//! - The ASPA set is built from the data, deterministically: for every AS on those routes' paths,
//!   the ASes that follow it toward the collector, in the order first seen; of the ASes in
//!   ascending order, every fourth declares the first of them as its provider, every other
//!   fourth the first two, and the rest have no ASPA. So the path each AS was first seen on is
//!   attested where attested at all, and the others break where they turn.
//! - Every RIB peer is a collector peer: its role is unknown, so the downstream procedure
//!   applies. A second run gives one peer AS the role `customer` in `[rpki.peer-roles]`: its
//!   routes take the upstream procedure, and the instances change as predicted.
//!
//! bgpdump is required (CI installs it with `apt-get install bgpdump`): the test fails, it does
//! not skip, when it is missing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader};
use std::net::IpAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use ipnet::IpNet;
use support::process::ChildGuard;
use support::*;

const RIB: &str = "mrt/ribs/pyasn__rib.20140523.0600_firstMB.bz2";

/// The registry: (location, origin ASes, prefixes). Every location opens an instance on one
/// carrier (`min-peers = 1`), so the open instances are exactly the leaking routes' keys.
const LOCATIONS: &[(&str, &[u32], &[&str])] = &[
    ("apnic-1-0", &[4134, 4837], &["1.0.0.0/12"]),
    ("apnic-labs", &[15169], &["1.0.0.0/24"]),
    ("bharti", &[38266], &["1.38.0.0/16"]),
    ("rostelecom-5-128", &[12389], &["5.128.0.0/14"]),
    ("att-12", &[7018], &["12.0.0.0/12"]),
    ("att-12-12-96", &[32786], &["12.12.96.0/20"]),
    ("google-level3", &[15169, 3356], &["8.8.0.0/16"]),
];

// ---------------------------------------------------------------------------------------------
// The independent implementation: draft-ietf-sidrops-aspa-verification (revision -27), §5 and §6,
// from the text; indices are 1-based as in the draft, AS(1) the origin, AS(N) the AS that sent
// the route.
// ---------------------------------------------------------------------------------------------

/// `authorized(customer, provider)` of draft §5.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Authorized {
    NoAttestation,
    ProviderPlus,
    NotProviderPlus,
}

/// ASPAs: customer AS → its provider ASes.
#[derive(Debug, Default, Clone)]
struct Aspas(BTreeMap<u32, BTreeSet<u32>>);

impl Aspas {
    fn authorized(&self, customer: u32, provider: u32) -> Authorized {
        match self.0.get(&customer) {
            None => Authorized::NoAttestation,
            Some(providers) if providers.contains(&provider) => Authorized::ProviderPlus,
            Some(_) => Authorized::NotProviderPlus,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Outcome {
    Valid,
    Unknown,
    /// With the leaker: AS(k+1) for the lowest k whose hop AS(k) → AS(k+1) is "Not Provider+";
    /// none for an AS_SET path.
    Invalid(Option<u32>),
}

/// A route's AS_PATH as bgpdump prints it, reduced to what the procedure reads.
#[derive(Debug, Clone, PartialEq, Eq)]
struct BgpdumpPath {
    /// AS_SEQUENCE members, origin first (AS(1) at index 0), prepends collapsed.
    asns: Vec<u32>,
    /// An AS_SET (`{a,b}`) anywhere in the path.
    as_set: bool,
}

impl BgpdumpPath {
    fn parse(text: &str) -> BgpdumpPath {
        let mut asns: Vec<u32> = Vec::new();
        let mut as_set = false;
        for word in text.split_ascii_whitespace() {
            if word.starts_with('{') {
                as_set = true;
                continue;
            }
            assert!(
                !word.starts_with('(') && !word.starts_with('['),
                "the fixture has no confederation segments: {text}"
            );
            let asn: u32 = word
                .parse()
                .unwrap_or_else(|_| panic!("bad ASN {word:?} in {text:?}"));
            // Prepending: "64500 64500 64501" is the two-AS path "64500 64501".
            if asns.last() != Some(&asn) {
                asns.push(asn);
            }
        }
        asns.reverse();
        BgpdumpPath { asns, as_set }
    }
}

/// Upstream (§6.1) or downstream (§6.2) verification of `path`; `None` for an empty path (a
/// monitor does not verify a route from inside the peer's AS).
fn verify(aspas: &Aspas, path: &BgpdumpPath, upstream: bool) -> Option<Outcome> {
    if path.as_set {
        // "If the AS_PATH has an AS_SET, the procedure halts with the outcome Invalid."
        return Some(Outcome::Invalid(None));
    }
    let n = path.asns.len();
    if n == 0 {
        return None;
    }
    let as_ = |i: usize| path.asns[i - 1];
    let hop = |i: usize, j: usize| aspas.authorized(as_(i), as_(j));
    // The lowest k with authorized(AS(k), AS(k+1)) = "Not Provider+": the maximum up-ramp.
    let max_up_ramp = (1..n)
        .find(|&i| hop(i, i + 1) == Authorized::NotProviderPlus)
        .unwrap_or(n);
    let leaker = (max_up_ramp < n).then(|| as_(max_up_ramp + 1));
    if upstream {
        if n == 1 {
            return Some(Outcome::Valid);
        }
        if (1..n).any(|i| hop(i, i + 1) == Authorized::NotProviderPlus) {
            return Some(Outcome::Invalid(leaker));
        }
        if (1..n).any(|i| hop(i, i + 1) == Authorized::NoAttestation) {
            return Some(Outcome::Unknown);
        }
        return Some(Outcome::Valid);
    }
    if n <= 2 {
        return Some(Outcome::Valid);
    }
    let min_up_ramp = (1..n)
        .find(|&i| hop(i, i + 1) != Authorized::ProviderPlus)
        .unwrap_or(n);
    // The highest j with authorized(AS(j), AS(j-1)) = "Not Provider+" (resp. not "Provider+"):
    // the down-ramp is N - j + 1 long.
    let max_down_ramp = (2..=n)
        .rev()
        .find(|&j| hop(j, j - 1) == Authorized::NotProviderPlus)
        .map_or(n, |j| n - j + 1);
    let min_down_ramp = (2..=n)
        .rev()
        .find(|&j| hop(j, j - 1) != Authorized::ProviderPlus)
        .map_or(n, |j| n - j + 1);
    Some(if max_up_ramp + max_down_ramp < n {
        Outcome::Invalid(leaker)
    } else if min_up_ramp + min_down_ramp < n {
        Outcome::Unknown
    } else {
        Outcome::Valid
    })
}

#[test]
fn independent_procedure_on_hand_built_paths() {
    // 64501 → provider 64502; 64503 → providers 64502, 64504; 64502 → provider 64510;
    // 64504 → provider 64599.
    let aspas = Aspas(BTreeMap::from([
        (64501, BTreeSet::from([64502])),
        (64503, BTreeSet::from([64502, 64504])),
        (64502, BTreeSet::from([64510])),
        (64504, BTreeSet::from([64599])),
    ]));
    let p = |t: &str| BgpdumpPath::parse(t);
    // Up 64501 → 64502 → 64510: valid both ways.
    assert_eq!(
        verify(&aspas, &p("64510 64502 64501"), true),
        Some(Outcome::Valid)
    );
    assert_eq!(
        verify(&aspas, &p("64510 64502 64501"), false),
        Some(Outcome::Valid)
    );
    // Up 64501 → 64502, down 64502 → 64503 (64502 is 64503's provider): a valley-free path.
    assert_eq!(
        verify(&aspas, &p("64503 64502 64501"), false),
        Some(Outcome::Valid)
    );
    assert_eq!(
        verify(&aspas, &p("64503 64502 64501"), true),
        Some(Outcome::Invalid(Some(64503)))
    );
    // 64503 passes its provider 64502's route to its other provider 64504: a leak.
    assert_eq!(
        verify(&aspas, &p("64504 64503 64502 64501"), false),
        Some(Outcome::Invalid(Some(64503)))
    );
    // Without 64504's ASPA, 64504 may be 64503's customer: the path may go down from 64502.
    let mut partial = aspas.clone();
    partial.0.remove(&64504);
    assert_eq!(
        verify(&partial, &p("64504 64503 64502 64501"), false),
        Some(Outcome::Unknown)
    );
    assert_eq!(
        verify(&partial, &p("64504 64503 64502 64501"), true),
        Some(Outcome::Invalid(Some(64503)))
    );
    // Prepends collapse: `64510 64502 64501` all the way up.
    assert_eq!(
        verify(
            &aspas,
            &p("64510 64510 64502 64502 64501 64501 64501"),
            true
        ),
        Some(Outcome::Valid)
    );
    // 64501 → 64540 is not attested, but 64540 may be 64501's customer and the rest unknown.
    assert_eq!(
        verify(&aspas, &p("64520 64530 64540 64501"), true),
        Some(Outcome::Invalid(Some(64540)))
    );
    assert_eq!(
        verify(&aspas, &p("64520 64530 64540 64501"), false),
        Some(Outcome::Unknown)
    );
    assert_eq!(
        verify(&aspas, &p("64510 {64501,64502}"), false),
        Some(Outcome::Invalid(None))
    );
    assert_eq!(verify(&aspas, &p(""), false), None);
}

// ---------------------------------------------------------------------------------------------
// The data.
// ---------------------------------------------------------------------------------------------

/// One RIB route on a registered prefix.
#[derive(Debug, Clone)]
struct Route {
    peer_as: u32,
    registered: IpNet,
    prefix: IpNet,
    path: BgpdumpPath,
}

/// Runs `bgpdump -m` on `file`; the routes whose prefix is a registered prefix or inside one,
/// with the longest such registered prefix, in file order (the last entry of a peer for a
/// prefix wins, as in a replay).
fn rib_routes(file: &Path, registered: &[IpNet]) -> Vec<Route> {
    let mut child = ChildGuard::start(
        "bgpdump",
        Command::new("bgpdump")
            .arg("-m")
            .arg(file)
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
        None,
        "this test compares routewatch with an implementation over bgpdump's output and must \
         not be skipped: apt-get install bgpdump (CI installs it)",
    );
    let mut routes: Vec<Route> = Vec::new();
    let mut index: HashMap<(IpAddr, u32, IpNet), usize> = HashMap::new();
    let mut lines = 0usize;
    for line in BufReader::new(child.take_stdout()).lines() {
        let line = line.expect("bgpdump output is UTF-8");
        lines += 1;
        let f: Vec<&str> = line.split('|').collect();
        assert!(
            f.len() >= 7 && f[0] == "TABLE_DUMP2" && f[2] == "B",
            "unexpected bgpdump line: {line}"
        );
        let prefix: IpNet = f[5].parse().unwrap();
        let Some(reg) = registered
            .iter()
            .filter(|r| r.contains(&prefix))
            .max_by_key(|r| r.prefix_len())
        else {
            continue;
        };
        let route = Route {
            peer_as: f[4].parse().unwrap(),
            registered: *reg,
            prefix,
            path: BgpdumpPath::parse(f[6]),
        };
        let key = (f[3].parse().unwrap(), route.peer_as, prefix);
        match index.get(&key) {
            Some(&i) => routes[i] = route,
            None => {
                index.insert(key, routes.len());
                routes.push(route);
            }
        }
    }
    let status = child
        .wait_exit(Duration::from_secs(60))
        .expect("bgpdump exits at the end of its output");
    assert!(status.success(), "bgpdump failed: {status}");
    assert_eq!(lines, 270_005, "the fixture's bgpdump line count");
    routes
}

/// The ASPA set of the module documentation.
fn aspas_from(routes: &[Route]) -> Aspas {
    let mut next: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for r in routes.iter().filter(|r| !r.path.as_set) {
        for w in r.path.asns.windows(2) {
            let seen = next.entry(w[0]).or_default();
            if !seen.contains(&w[1]) {
                seen.push(w[1]);
            }
        }
    }
    Aspas(
        next.into_iter()
            .enumerate()
            .filter_map(|(k, (customer, seen))| match k % 4 {
                0 => Some((customer, seen[..1].iter().copied().collect())),
                2 => Some((customer, seen.iter().take(2).copied().collect())),
                _ => None,
            })
            .collect(),
    )
}

/// rpki-client's JSON with no ROAs and `aspas`.
fn rpki_client_json(aspas: &Aspas) -> String {
    let records: Vec<String> = aspas
        .0
        .iter()
        .map(|(c, p)| {
            let p: Vec<String> = p.iter().map(u32::to_string).collect();
            format!(
                "{{\"customer_asid\": {c}, \"expires\": 1401000000, \"providers\": [{}]}}",
                p.join(", ")
            )
        })
        .collect();
    format!(
        "{{\"metadata\": {{\"buildtime\": \"2014-05-23T06:00:00Z\"}},\n\"roas\": [],\n\
         \"aspas\": [\n{}\n]}}\n",
        records.join(",\n")
    )
}

/// A `route_leak` instance: (registered prefix, announced prefix, leaker).
type Instance = (IpNet, IpNet, Option<u32>);

/// The instances the independent implementation predicts, with the routes' outcomes counted;
/// the routes of `customer_peer_as` take the upstream procedure.
fn predict(
    routes: &[Route],
    aspas: &Aspas,
    customer_peer_as: Option<u32>,
) -> (BTreeSet<Instance>, BTreeMap<&'static str, usize>) {
    let mut instances = BTreeSet::new();
    let mut counts = BTreeMap::new();
    for r in routes {
        let upstream = Some(r.peer_as) == customer_peer_as;
        let name = match verify(aspas, &r.path, upstream) {
            None => "not verified",
            Some(Outcome::Valid) => "valid",
            Some(Outcome::Unknown) => "unknown",
            Some(Outcome::Invalid(leaker)) => {
                instances.insert((r.registered, r.prefix, leaker));
                "invalid"
            }
        };
        *counts.entry(name).or_default() += 1;
    }
    (instances, counts)
}

/// Runs `routewatch replay -c config --format json file` and returns the open `route_leak`
/// instances of the final state; checks the anomaly transitions say the same.
fn replayed_instances(config: &Path, file: &Path) -> BTreeSet<Instance> {
    let out = Command::new(env!("CARGO_BIN_EXE_routewatch"))
        .args(["replay", "-c"])
        .arg(config)
        .args(["--format", "json"])
        .arg(file)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "routewatch replay failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let net = |v: &serde_json::Value| v.as_str().unwrap().parse::<IpNet>().unwrap();
    let asn = |v: &serde_json::Value| v.as_u64().map(|a| u32::try_from(a).unwrap());
    let mut open = BTreeSet::new();
    for p in report["prefixes"].as_array().unwrap() {
        for a in p["anomalies"].as_array().unwrap() {
            if a["kind"] == "route_leak" {
                assert_eq!(
                    a["open"], true,
                    "min-peers = 1: every instance is open: {a}"
                );
                open.insert((net(&a["prefix"]), net(&a["announced"]), asn(&a["asn"])));
            }
        }
    }
    // The transitions: opened and not resolved.
    let mut opened = BTreeSet::new();
    for e in report["events"].as_array().unwrap() {
        if e["kind"] == "route_leak" {
            let key = (net(&e["prefix"]), net(&e["announced"]), asn(&e["asn"]));
            match e["transition"].as_str().unwrap() {
                "opened" => assert!(opened.insert(key), "opened twice: {e}"),
                "resolved" => assert!(opened.remove(&key), "resolved unopened: {e}"),
                t => panic!("transition {t}"),
            }
        }
    }
    assert_eq!(open, opened, "the final state and the transitions agree");
    open
}

fn show(set: &BTreeSet<Instance>) -> String {
    set.iter()
        .map(|(r, q, l)| format!("{r} {q} {l:?}"))
        .collect::<Vec<_>>()
        .join("\n  ")
}

fn assert_same(replayed: &BTreeSet<Instance>, predicted: &BTreeSet<Instance>, what: &str) {
    let missing: BTreeSet<_> = predicted.difference(replayed).copied().collect();
    let extra: BTreeSet<_> = replayed.difference(predicted).copied().collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{what}: {} instances predicted, {} replayed\nmissing from the replay:\n  {}\n\
         not predicted:\n  {}",
        predicted.len(),
        replayed.len(),
        show(&missing),
        show(&extra)
    );
}

#[test]
fn route_leak_instances_equal_an_independent_implementation_over_bgpdump() {
    let registered: Vec<IpNet> = LOCATIONS
        .iter()
        .flat_map(|(_, _, p)| p.iter().map(|p| p.parse::<IpNet>().unwrap()))
        .collect();
    let rib = fixture(RIB);
    let routes = rib_routes(&rib, &registered);
    let aspas = aspas_from(&routes);
    let (predicted, counts) = predict(&routes, &aspas, None);
    let leakers: BTreeSet<u32> = predicted.iter().filter_map(|i| i.2).collect();
    println!(
        "{} routes on {} registered prefixes, {} ASPAs; downstream outcomes {counts:?}; \
         {} route_leak instances, {} distinct leakers, {} AS_SET instances",
        routes.len(),
        registered.len(),
        aspas.0.len(),
        predicted.len(),
        leakers.len(),
        predicted.iter().filter(|i| i.2.is_none()).count()
    );
    // The set makes some paths leaks and others not, with several leakers, on every kind of
    // registered prefix.
    assert!(routes.len() > 10_000, "{}", routes.len());
    for outcome in ["valid", "unknown", "invalid"] {
        assert!(
            counts.get(outcome).copied().unwrap_or(0) > 100,
            "{counts:?}"
        );
    }
    assert!(leakers.len() >= 10, "{leakers:?}");
    assert!(
        predicted.iter().any(|i| i.2.is_none()),
        "an AS_SET instance"
    );
    let mut per_registered: BTreeMap<IpNet, usize> = BTreeMap::new();
    for i in &predicted {
        *per_registered.entry(i.0).or_default() += 1;
    }
    println!("instances per registered prefix: {per_registered:?}");
    assert!(per_registered.len() >= 5, "{per_registered:?}");

    let dir = tempfile::tempdir().unwrap();
    let vrps = dir.path().join("vrps.json");
    std::fs::write(&vrps, rpki_client_json(&aspas)).unwrap();
    let locations: Vec<Location> = LOCATIONS
        .iter()
        .map(|(name, origins, prefixes)| Location::new(name, origins, prefixes).min_peers(1))
        .collect();
    let config = DaemonConfig::replay()
        .rpki(&vrps, "")
        .locations(&locations)
        .write(dir.path());
    let replayed = replayed_instances(&config.path, &rib);
    assert_same(&replayed, &predicted, "collector peers (downstream)");

    // One peer AS as our customer: the upstream procedure for its routes. The peer AS with the
    // fewest routes among those whose role changes the instances.
    let mut peers: BTreeMap<u32, usize> = BTreeMap::new();
    for r in &routes {
        *peers.entry(r.peer_as).or_default() += 1;
    }
    let (customer, upstream) = peers
        .iter()
        .map(|(&asn, &n)| (n, asn, predict(&routes, &aspas, Some(asn)).0))
        .filter(|(_, _, set)| *set != predicted)
        .min_by_key(|(n, asn, _)| (*n, *asn))
        .map(|(_, asn, set)| (asn, set))
        .expect("a peer whose routes leak upstream only");
    assert!(upstream.is_superset(&predicted));
    println!(
        "AS{customer} as a customer ({} routes): {} instances, {} more",
        peers[&customer],
        upstream.len(),
        upstream.len() - predicted.len()
    );
    let config = DaemonConfig::replay()
        .rpki(
            &vrps,
            &format!("\n[rpki.peer-roles]\n\"AS{customer}\" = \"customer\"\n"),
        )
        .locations(&locations)
        .write(dir.path());
    let replayed = replayed_instances(&config.path, &rib);
    assert_same(&replayed, &upstream, &format!("AS{customer} a customer"));
}
