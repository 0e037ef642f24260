//! End-to-end benchmark harness of the performance issue: `routewatch replay` side by side with
//! `bgpdump -m`, bgpkit-parser's iterators and the decompression floor, on a synthetic
//! TABLE_DUMP_V2 RIB (1,000,000 prefixes × 18 peers = 18 M entries) and the largest real fixtures.
//!
//! Run everything with `cargo bench --bench e2e` (about 30 minutes on the project's 2-core VM,
//! plus about 4 minutes once to write the synthetic RIB). The first run writes the synthetic RIB
//! (plain, `.gz`, `.bz2`, an origins sidecar and a marker) into `target/bench-cache/`; later runs
//! reuse it. Options, as environment variables:
//!
//! - `E2E_RUNS=N`: medians over N runs (default 3);
//! - `E2E_QUICK=1`: a synthetic RIB of 50,000 prefixes (× 18 peers), about 2.5 minutes in all;
//! - `E2E_ONLY=a,b`: only the rows whose `input/tool` id contains one of the substrings. Inputs:
//!   `synth-1M.gz`, `synth-1M.bz2` (`synth-50k.*` when quick), `et-header.2015.gz`,
//!   `bview.20020722.gz`, `rib.20140523_firstMB.bz2`, `arch0.mrt`; tools: `routewatch-100`,
//!   `routewatch-10k`, `routewatch-1M`, `bgpdump`, `bgpkit-elem`, `bgpkit-route`, `bgpkit-raw`,
//!   `gzip-dc` / `bzip2-dc` / `cat`, `inflate-inproc` (e.g. `E2E_ONLY=synth-1M.gz` or
//!   `E2E_ONLY=routewatch-10k,bgpkit-elem,bgpdump,inflate`; a ratio needs its reference row);
//! - `E2E_PREFIXES=N`: another synthetic RIB size;
//! - `E2E_REGEN=1`: rewrite the cached synthetic RIB;
//! - `E2E_RAW=0`: leave out bgpkit-parser's raw record iterator;
//! - `E2E_CHECK=0`: leave out the untimed routewatch check pass (entry counts, anomalies).
//!
//! Every measurement is a child process under `/usr/bin/time -f '%e %M'` (peak RSS); the bgpkit
//! iterators and the in-process decompression run in this binary re-executed as
//! `e2e --child KIND FILE`. The routewatch binary (`CARGO_BIN_EXE_routewatch`, built with the
//! bench profile) and this binary are copied to `target/bench-cache/tmp/` first, so a rebuild in
//! the shared target directory cannot change what is measured half-way. Registries (100, 10,000
//! and 1,000,000 prefixes of each input with their real origins) are written to
//! `target/bench-cache/registries/` on every run. The markdown report goes to stdout and to
//! `target/bench-cache/e2e-results.md`.

// A benchmark driver: set-up failures should stop it loudly, and it is not part of the API.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::{BTreeMap, HashMap};
use std::env;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bgpkit_parser::encoder::MrtRibEncoder;
use bgpkit_parser::models::{
    AsPath, Asn, Community, ElemType, MetaCommunity, NetworkPrefix, Origin,
};
use bgpkit_parser::{BgpElem, BgpkitParser};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn fail<T>(msg: impl Into<String>) -> Res<T> {
    Err(msg.into().into())
}

/// Bump when the generator's output changes, so cached files are rewritten.
const GEN_VERSION: u32 = 1;
/// Seed of every xorshift stream of the generator.
const SEED: u64 = 0x5EED_0E2E_2026_0001;
/// Dump time of the synthetic RIB: 2024-01-01T00:00:00Z.
const DUMP_TS: u32 = 1_704_067_200;
/// Prefixes per `MrtRibEncoder` batch (its buffers hold every element until export).
const ENCODE_BATCH: usize = 8192;
/// Registry sizes: label and requested prefix count (capped at what the file has).
const REGISTRY_SIZES: [(&str, usize); 3] = [("100", 100), ("10k", 10_000), ("1M", 1_000_000)];
/// The routewatch row of the headline ratio table (routewatch vs BgpElem, bgpdump, decompression).
const RATIO_REGISTRY: &str = "routewatch-10k";
/// The real fixtures measured (the largest of `fixtures/mrt/`): short name, path.
const FIXTURES: [(&str, &str); 4] = [
    (
        "et-header.2015.gz",
        "fixtures/mrt/updates/ripe-bgpdump__updates.et-header.2015.gz",
    ),
    (
        "bview.20020722.gz",
        "fixtures/mrt/ribs/ripe-bgpdump__bview.20020722.2337.gz",
    ),
    (
        "rib.20140523_firstMB.bz2",
        "fixtures/mrt/ribs/pyasn__rib.20140523.0600_firstMB.bz2",
    ),
    ("arch0.mrt", "fixtures/mrt/updates/csu-gobgpdump__arch0.mrt"),
];

// ---------------------------------------------------------------------------------------------
// Deterministic pseudo-randomness
// ---------------------------------------------------------------------------------------------

/// xorshift64: the generator's random streams.
struct Rng(u64);

impl Rng {
    fn new(stream: u64) -> Self {
        Rng(mix(SEED ^ stream) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// splitmix64 finaliser: per-key deterministic values (a path for a peer and an origin, ...).
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn hash(parts: &[u64]) -> u64 {
    parts.iter().fold(SEED, |acc, &p| mix(acc ^ mix(p)))
}

/// Picks an index by integer weights.
fn weighted(r: u64, weights: &[u64]) -> usize {
    let total: u64 = weights.iter().sum();
    let mut x = r % total;
    for (i, &w) in weights.iter().enumerate() {
        if x < w {
            return i;
        }
        x -= w;
    }
    weights.len() - 1
}

// ---------------------------------------------------------------------------------------------
// Prefix ordering (the order of a RIB dump: IPv4 first, then by address, then by length)
// ---------------------------------------------------------------------------------------------

type PrefixKey = (u8, [u8; 16], u8);

fn prefix_key(p: &IpNet) -> PrefixKey {
    let mut a = [0u8; 16];
    match p {
        IpNet::V4(n) => {
            a[..4].copy_from_slice(&n.network().octets());
            (4, a, n.prefix_len())
        }
        IpNet::V6(n) => (6, n.network().octets(), n.prefix_len()),
    }
}

fn contains(outer: &IpNet, inner: &IpNet) -> bool {
    outer.prefix_len() <= inner.prefix_len() && outer.contains(&inner.network())
}

// ---------------------------------------------------------------------------------------------
// The synthetic RIB
// ---------------------------------------------------------------------------------------------

/// The 18 peers of the synthetic RIB: address, ASN.
const PEERS: [(&str, u32); 18] = [
    ("12.0.1.63", 7018),
    ("4.68.4.46", 3356),
    ("62.115.128.137", 1299),
    ("154.54.5.1", 174),
    ("129.250.0.11", 2914),
    ("216.218.252.164", 6939),
    ("213.200.87.254", 3257),
    ("80.231.153.1", 6453),
    ("195.22.192.1", 6762),
    ("63.218.44.78", 3491),
    ("193.251.245.6", 5511),
    ("64.71.137.241", 6461),
    ("208.51.134.254", 3549),
    ("94.156.252.18", 34224),
    ("203.181.248.168", 7660),
    ("202.73.40.45", 18106),
    ("89.149.178.10", 3257),
    ("185.1.8.65", 57866),
];

struct Synth {
    /// Sorted (RIB order), each with its origin ASN.
    prefixes: Vec<(IpNet, u32)>,
    transit: Vec<u32>,
}

fn synth(n: usize) -> Synth {
    // Origin pool: 30,000 distinct ASNs, three quarters 16-bit, a quarter 32-bit.
    let mut rng = Rng::new(1);
    let reserved: Vec<u32> = PEERS.iter().map(|p| p.1).collect();
    let mut seen = std::collections::HashSet::new();
    let mut pool = Vec::with_capacity(30_000);
    while pool.len() < 30_000 {
        let asn = if rng.below(4) < 3 {
            1 + rng.below(64_495) as u32
        } else {
            131_072 + rng.below(270_000) as u32
        };
        if asn == 23_456 || reserved.contains(&asn) || !seen.insert(asn) {
            continue;
        }
        pool.push(asn);
    }
    // Transit pool for the middle of the paths: the peers' ASNs and 300 others.
    let mut transit: Vec<u32> = reserved.clone();
    while transit.len() < 318 {
        let asn = 1000 + rng.below(59_000) as u32;
        if !transit.contains(&asn) && !seen.contains(&asn) && asn != 23_456 {
            transit.push(asn);
        }
    }

    let n_v6 = n / 10;
    let n_v4 = n - n_v6;
    let mut set: std::collections::HashSet<IpNet> = std::collections::HashSet::with_capacity(n);
    // IPv4: /16-/24 over the unicast space (bogons skipped), lengths roughly as in a DFZ table.
    let v4_lengths: [u8; 9] = [24, 23, 22, 21, 20, 19, 18, 17, 16];
    let v4_weights: [u64; 9] = [58, 9, 12, 5, 5, 3, 2, 2, 4];
    let mut rng = Rng::new(2);
    let mut v4 = 0;
    while v4 < n_v4 {
        let a = rng.next() as u32;
        let first = a >> 24;
        if first == 0
            || first == 10
            || first == 127
            || first >= 224
            || (a & 0xFFC0_0000) == 0x6440_0000
            || (a >> 16) == 0xA9FE
            || (a & 0xFFF0_0000) == 0xAC10_0000
            || (a >> 16) == 0xC0A8
        {
            continue;
        }
        let len = v4_lengths[weighted(rng.next(), &v4_weights)];
        let net = IpNet::V4(Ipv4Net::new(Ipv4Addr::from(a), len).unwrap().trunc());
        if set.insert(net) {
            v4 += 1;
        }
    }
    // IPv6: /32-/48 inside allocations (one /32 per ~6 prefixes) of the usual RIR /16s.
    let tops: Vec<u16> = std::iter::once(0x2001)
        .chain(0x2400..0x2410)
        .chain(0x2600..0x2610)
        .chain(0x2800..0x2804)
        .chain(0x2a00..0x2a10)
        .chain(std::iter::once(0x2c0f))
        .collect();
    let allocations: Vec<u128> = (0..(n_v6 / 6).max(1))
        .map(|_| {
            let top = u128::from(tops[rng.below(tops.len() as u64) as usize]);
            (top << 112) | (u128::from(rng.next() as u16) << 96)
        })
        .collect();
    let v6_lengths: [u8; 7] = [32, 36, 40, 44, 46, 47, 48];
    let v6_weights: [u64; 7] = [20, 5, 10, 10, 5, 5, 45];
    let mut v6 = 0;
    while v6 < n_v6 {
        let base = allocations[rng.below(allocations.len() as u64) as usize];
        let low = ((u128::from(rng.next()) << 64) | u128::from(rng.next())) & ((1u128 << 96) - 1);
        let len = v6_lengths[weighted(rng.next(), &v6_weights)];
        let net = IpNet::V6(
            Ipv6Net::new(Ipv6Addr::from(base | low), len)
                .unwrap()
                .trunc(),
        );
        if set.insert(net) {
            v6 += 1;
        }
    }
    let mut prefixes: Vec<(IpNet, u32)> = set
        .into_iter()
        .map(|p| {
            let o = origin_of(&p, &pool);
            (p, o)
        })
        .collect();
    prefixes.sort_by_key(|(p, _)| prefix_key(p));
    Synth { prefixes, transit }
}

/// The origin of a synthetic prefix: the holder of its /16 (IPv4) or /32 (IPv6) block, except
/// for one prefix in ten, which has an origin of its own (a customer's more-specific).
fn origin_of(p: &IpNet, pool: &[u32]) -> u32 {
    let (fam, block, full) = match p {
        IpNet::V4(n) => {
            let a = u64::from(u32::from(n.network()));
            (4u64, a >> 13, (a << 8) | u64::from(n.prefix_len()))
        }
        IpNet::V6(n) => {
            let a = u128::from(n.network());
            (
                6u64,
                (a >> 96) as u64,
                hash(&[(a >> 64) as u64, a as u64, u64::from(n.prefix_len())]),
            )
        }
    };
    let idx = if hash(&[fam, full, 1]).is_multiple_of(10) {
        hash(&[fam, full, 2])
    } else {
        hash(&[fam, block, 3])
    };
    pool[(idx % pool.len() as u64) as usize]
}

/// The AS path peer `k` has towards `origin`: 2-7 distinct hops starting with the peer's AS,
/// sometimes with the origin (or the peer) prepended.
fn synth_path(k: usize, origin: u32, transit: &[u32]) -> Vec<u32> {
    let peer_as = PEERS[k].1;
    let h = hash(&[k as u64, u64::from(origin), 10]);
    let hops = 2 + weighted(h, &[10, 25, 30, 20, 10, 5]);
    let mut path = vec![peer_as];
    let mut i = 0u64;
    while path.len() < hops - 1 {
        let t =
            transit[(hash(&[k as u64, u64::from(origin), 11, i]) % transit.len() as u64) as usize];
        i += 1;
        if t != origin && !path.contains(&t) {
            path.push(t);
        }
    }
    let prepend = (h >> 32) % 100;
    if prepend < 4 {
        path.insert(0, peer_as);
    }
    path.push(origin);
    if prepend >= 90 {
        for _ in 0..1 + (h >> 40) % 3 {
            path.push(origin);
        }
    }
    path
}

/// Standard communities per peer policy: up to `max` of them, tagged with the peer's AS.
const PEER_MAX_COMMUNITIES: [u64; 18] = [5, 8, 7, 2, 6, 0, 10, 5, 7, 4, 8, 2, 6, 9, 5, 7, 8, 4];

fn synth_elem(k: usize, prefix: IpNet, origin: u32, transit: &[u32]) -> BgpElem {
    let (addr, asn) = PEERS[k];
    let peer_ip: IpAddr = addr.parse().unwrap();
    let po = hash(&[k as u64, u64::from(origin), 20]);
    let pp = hash(&[
        k as u64,
        prefix_key(&prefix)
            .1
            .iter()
            .fold(0u64, |a, &b| (a << 5) ^ u64::from(b)),
        u64::from(prefix.prefix_len()),
        21,
    ]);
    // Most routes were learnt when the session came up; a quarter changed since.
    let session_up = DUMP_TS - 86_400 * (1 + (hash(&[k as u64, 22]) % 40) as u32);
    let originated = if pp % 10 < 3 {
        DUMP_TS - (pp >> 8) as u32 % (DUMP_TS - session_up)
    } else {
        session_up + ((pp >> 8) % 120) as u32
    };
    let next_hop = match prefix {
        IpNet::V4(_) => peer_ip,
        IpNet::V6(_) => IpAddr::V6(Ipv6Addr::new(0x2001, 0x7f8, 0, 0, 0, 0, 0, k as u16 + 1)),
    };
    let n_comm = po % (PEER_MAX_COMMUNITIES[k] + 1);
    let communities: Vec<MetaCommunity> = (0..n_comm)
        .map(|j| {
            // A small vocabulary per peer (where and how the route was learnt).
            let v = hash(&[k as u64, u64::from(origin), 23, j]) % 24;
            MetaCommunity::Plain(Community::Custom(
                Asn::from(asn),
                1000 * (j as u16 % 3) + v as u16 * 10,
            ))
        })
        .collect();
    BgpElem {
        timestamp: f64::from(originated),
        elem_type: ElemType::ANNOUNCE,
        peer_ip,
        peer_asn: Asn::from(asn),
        prefix: NetworkPrefix::new(prefix, None),
        next_hop: Some(next_hop),
        as_path: Some(AsPath::from_sequence(synth_path(k, origin, transit))),
        origin: Some(if (po >> 20).is_multiple_of(10) {
            Origin::INCOMPLETE
        } else {
            Origin::IGP
        }),
        med: if k.is_multiple_of(3) {
            Some(((po >> 24) % 50) as u32 * 10)
        } else {
            None
        },
        aggr_asn: hash(&[u64::from(origin), 30])
            .is_multiple_of(5)
            .then(|| Asn::from(origin)),
        aggr_ip: hash(&[u64::from(origin), 30])
            .is_multiple_of(5)
            .then(|| Ipv4Addr::from(0x0A00_0000 | (origin & 0x00FF_FFFF))),
        communities: if communities.is_empty() {
            None
        } else {
            Some(communities)
        },
        ..Default::default()
    }
}

fn put_header(out: &mut Vec<u8>, subtype: u16, len: usize) {
    out.extend_from_slice(&DUMP_TS.to_be_bytes());
    out.extend_from_slice(&13u16.to_be_bytes()); // TABLE_DUMP_V2
    out.extend_from_slice(&subtype.to_be_bytes());
    out.extend_from_slice(&(len as u32).to_be_bytes());
}

fn be16(b: &[u8], at: usize) -> Res<usize> {
    match b.get(at..at + 2) {
        Some(s) => Ok(usize::from(u16::from_be_bytes([s[0], s[1]]))),
        None => fail("encoder output: short record"),
    }
}

fn be32(b: &[u8], at: usize) -> Res<usize> {
    match b.get(at..at + 4) {
        Some(s) => Ok(u32::from_be_bytes([s[0], s[1], s[2], s[3]]) as usize),
        None => fail("encoder output: short record"),
    }
}

/// The path attributes of a RIB entry as real TABLE_DUMP_V2 dumps carry them. bgpkit-parser's
/// encoder (`Attributes::from(&BgpElem)`) writes an MP_REACH_NLRI in UPDATE form (AFI, SAFI, next
/// hop, and the prefix again) into every entry, IPv4 included, and an IPv6 next hop into the
/// 4-byte NEXT_HOP attribute. Here IPv4 entries lose the MP_REACH_NLRI, IPv6 entries lose
/// NEXT_HOP and get RFC 6396 §4.3.4's next-hop-only MP_REACH_NLRI; attributes by type code.
fn rib_attributes(attrs: &[u8], v6: bool) -> Res<Vec<u8>> {
    let mut list: Vec<(u8, Vec<u8>)> = Vec::new();
    let mut at = 0;
    while at < attrs.len() {
        let flags = attrs[at];
        let code = attrs
            .get(at + 1)
            .copied()
            .ok_or("encoder output: short attribute")?;
        let (len, hdr) = if flags & 0x10 != 0 {
            (be16(attrs, at + 2)?, 4)
        } else {
            (usize::from(*attrs.get(at + 2).ok_or("short attribute")?), 3)
        };
        let Some(value) = attrs.get(at + hdr..at + hdr + len) else {
            return fail("encoder output: attribute past the end");
        };
        let whole = &attrs[at..at + hdr + len];
        at += hdr + len;
        match (code, v6) {
            (14, false) | (3, true) => {}
            (14, true) => {
                // AFI(2) SAFI(1) NH-LEN(1) NH ... -> NH-LEN NH
                let nh_len = usize::from(*value.get(3).ok_or("short MP_REACH_NLRI")?);
                let nh = value.get(4..4 + nh_len).ok_or("short MP_REACH_NLRI")?;
                let mut a = vec![0x80, 14, (nh_len + 1) as u8, nh_len as u8];
                a.extend_from_slice(nh);
                list.push((code, a));
            }
            _ => list.push((code, whole.to_vec())),
        }
    }
    list.sort_by_key(|a| a.0);
    Ok(list.into_iter().flat_map(|a| a.1).collect())
}

/// Re-frames one `MrtRibEncoder::export_bytes` batch for the continuous file: the
/// PEER_INDEX_TABLE only once (checked identical in every batch), records in RIB order (the
/// encoder emits them in hash-map order), entries by peer index, the dump time in every header
/// and one running sequence number.
fn reframe(bytes: &[u8], pit: &mut Option<Vec<u8>>, seq: &mut u32, out: &mut Vec<u8>) -> Res<()> {
    let mut records: Vec<(PrefixKey, Vec<u8>)> = Vec::new();
    let mut off = 0;
    while off < bytes.len() {
        let subtype = be16(bytes, off + 6)? as u16;
        let len = be32(bytes, off + 8)?;
        let Some(body) = bytes.get(off + 12..off + 12 + len) else {
            return fail("encoder output: record past the end");
        };
        off += 12 + len;
        match subtype {
            1 => match pit {
                Some(p) if p.as_slice() == body => {}
                Some(_) => return fail("encoder output: the peer index table changed"),
                None => {
                    put_header(out, 1, body.len());
                    out.extend_from_slice(body);
                    *pit = Some(body.to_vec());
                }
            },
            2 | 4 => {
                let plen = usize::from(body[4]);
                let pbytes = plen.div_ceil(8);
                let mut addr = [0u8; 16];
                addr[..pbytes].copy_from_slice(&body[5..5 + pbytes]);
                let count = be16(body, 5 + pbytes)?;
                let mut entries: Vec<(usize, Vec<u8>)> = Vec::with_capacity(count);
                let mut at = 7 + pbytes;
                for _ in 0..count {
                    let end = at + 8 + be16(body, at + 6)?;
                    let Some(attrs) = body.get(at + 8..end) else {
                        return fail("encoder output: entry past the end");
                    };
                    let mut e = body[at..at + 6].to_vec();
                    let attrs = rib_attributes(attrs, subtype == 4)?;
                    e.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
                    e.extend_from_slice(&attrs);
                    entries.push((be16(body, at)?, e));
                    at = end;
                }
                entries.sort_by_key(|e| e.0);
                let mut rec = Vec::with_capacity(12 + body.len());
                put_header(&mut rec, subtype, 0); // length set below
                rec.extend_from_slice(&[0; 4]); // sequence number, set below
                rec.extend_from_slice(&body[4..7 + pbytes]);
                for (_, e) in entries {
                    rec.extend_from_slice(&e);
                }
                let len = (rec.len() - 12) as u32;
                rec[8..12].copy_from_slice(&len.to_be_bytes());
                let fam = if subtype == 2 { 4 } else { 6 };
                records.push(((fam, addr, plen as u8), rec));
            }
            other => return fail(format!("encoder output: unexpected subtype {other}")),
        }
    }
    records.sort_by_key(|a| a.0);
    for (_, mut rec) in records {
        rec[12..16].copy_from_slice(&seq.to_be_bytes());
        *seq = seq.wrapping_add(1);
        out.extend_from_slice(&rec);
    }
    Ok(())
}

struct SynthFiles {
    label: String,
    raw: PathBuf,
    gz: PathBuf,
    bz2: PathBuf,
    origins: PathBuf,
    marker: PathBuf,
}

impl SynthFiles {
    fn new(cache: &Path, n: usize) -> Self {
        let label = if n.is_multiple_of(1_000_000) {
            format!("synth-{}M", n / 1_000_000)
        } else if n.is_multiple_of(1000) {
            format!("synth-{}k", n / 1000)
        } else {
            format!("synth-{n}")
        };
        let base = format!("synth-rib-{n}");
        SynthFiles {
            label,
            raw: cache.join(format!("{base}.mrt")),
            gz: cache.join(format!("{base}.mrt.gz")),
            bz2: cache.join(format!("{base}.mrt.bz2")),
            origins: cache.join(format!("{base}.origins.txt")),
            marker: cache.join(format!("{base}.done")),
        }
    }

    /// The marker's fields when the cached files are complete (sizes as recorded).
    fn cached(&self, n: usize) -> Option<BTreeMap<String, String>> {
        let text = fs::read_to_string(&self.marker).ok()?;
        let m: BTreeMap<String, String> = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        let size = |p: &Path| fs::metadata(p).map(|m| m.len().to_string()).ok();
        let ok = m.get("version") == Some(&GEN_VERSION.to_string())
            && m.get("prefixes") == Some(&n.to_string())
            && m.get("raw_bytes") == size(&self.raw).as_ref()
            && m.get("gz_bytes") == size(&self.gz).as_ref()
            && m.get("bz2_bytes") == size(&self.bz2).as_ref()
            && m.get("origins_bytes") == size(&self.origins).as_ref();
        ok.then_some(m)
    }
}

fn tmp_name(p: &Path) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(".tmp");
    PathBuf::from(s)
}

/// Writes the synthetic RIB (plain, gz, bz2; compressed on two threads while encoding), its
/// origins sidecar and the marker, then checks the plain file with `bgpdump -m`.
fn generate(files: &SynthFiles, n: usize) -> Res<BTreeMap<String, String>> {
    let t0 = Instant::now();
    eprintln!(
        "e2e: generating the synthetic RIB: {n} prefixes × {} peers into {}",
        PEERS.len(),
        files.raw.display()
    );
    let _ = fs::remove_file(&files.marker);
    let data = synth(n);
    let t_prefixes = t0.elapsed().as_secs_f64();

    let mut raw = BufWriter::with_capacity(1 << 20, File::create(tmp_name(&files.raw))?);
    let spawn_compressor = |path: PathBuf, gz: bool| {
        let (tx, rx) = mpsc::sync_channel::<Arc<Vec<u8>>>(4);
        let handle = thread::spawn(move || -> io::Result<f64> {
            let file = BufWriter::with_capacity(1 << 20, File::create(&path)?);
            let mut busy = 0.0;
            if gz {
                let mut w = flate2::write::GzEncoder::new(file, flate2::Compression::default());
                for chunk in rx {
                    let t = Instant::now();
                    w.write_all(&chunk)?;
                    busy += t.elapsed().as_secs_f64();
                }
                w.finish()?.flush()?;
            } else {
                let mut w = bzip2::write::BzEncoder::new(file, bzip2::Compression::best());
                for chunk in rx {
                    let t = Instant::now();
                    w.write_all(&chunk)?;
                    busy += t.elapsed().as_secs_f64();
                }
                w.finish()?.flush()?;
            }
            Ok(busy)
        });
        (tx, handle)
    };
    let (gz_tx, gz_thread) = spawn_compressor(tmp_name(&files.gz), true);
    let (bz_tx, bz_thread) = spawn_compressor(tmp_name(&files.bz2), false);

    let mut pit = None;
    let mut seq = 0u32;
    let mut encode_s = 0.0;
    for batch in data.prefixes.chunks(ENCODE_BATCH) {
        let t = Instant::now();
        let mut enc = MrtRibEncoder::new();
        for &(prefix, origin) in batch {
            for k in 0..PEERS.len() {
                enc.process_elem(&synth_elem(k, prefix, origin, &data.transit))?;
            }
        }
        let bytes = enc.export_bytes()?;
        let mut out = Vec::with_capacity(bytes.len() + 4096);
        reframe(&bytes, &mut pit, &mut seq, &mut out)?;
        encode_s += t.elapsed().as_secs_f64();
        raw.write_all(&out)?;
        let out = Arc::new(out);
        gz_tx.send(out.clone())?;
        bz_tx.send(out)?;
    }
    raw.flush()?;
    drop(raw);
    drop(gz_tx);
    drop(bz_tx);
    let gz_busy = gz_thread.join().map_err(|_| "gzip thread panicked")??;
    let bz_busy = bz_thread.join().map_err(|_| "bzip2 thread panicked")??;
    let t_encoded = t0.elapsed().as_secs_f64();

    let mut side = BufWriter::new(File::create(tmp_name(&files.origins))?);
    writeln!(
        side,
        "# prefix origin-asn (synthetic RIB, generator v{GEN_VERSION}, seed {SEED:#x})"
    )?;
    for (p, o) in &data.prefixes {
        writeln!(side, "{p} {o}")?;
    }
    side.flush()?;
    drop(side);
    for p in [&files.raw, &files.gz, &files.bz2, &files.origins] {
        fs::rename(tmp_name(p), p)?;
    }

    // Independent check: bgpdump must read every entry, with the intended prefix and origin.
    let t = Instant::now();
    let (lines, mismatches) = bgpdump_check(&files.raw, &data.prefixes)?;
    let check_s = t.elapsed().as_secs_f64();
    let expected = (data.prefixes.len() * PEERS.len()) as u64;
    if lines != expected || mismatches != 0 {
        return fail(format!(
            "bgpdump read {lines} entries of {} (expected {expected}), {mismatches} with another prefix or origin",
            files.raw.display()
        ));
    }
    let size = |p: &Path| fs::metadata(p).map(|m| m.len());
    let mut m = BTreeMap::new();
    m.insert("version".into(), GEN_VERSION.to_string());
    m.insert("prefixes".into(), n.to_string());
    m.insert("entries".into(), expected.to_string());
    m.insert("raw_bytes".into(), size(&files.raw)?.to_string());
    m.insert("gz_bytes".into(), size(&files.gz)?.to_string());
    m.insert("bz2_bytes".into(), size(&files.bz2)?.to_string());
    m.insert("origins_bytes".into(), size(&files.origins)?.to_string());
    m.insert("bgpdump_lines".into(), lines.to_string());
    m.insert("prefix_gen_s".into(), format!("{t_prefixes:.1}"));
    m.insert("encode_s".into(), format!("{encode_s:.1}"));
    m.insert("gzip_busy_s".into(), format!("{gz_busy:.1}"));
    m.insert("bzip2_busy_s".into(), format!("{bz_busy:.1}"));
    m.insert("write_all_s".into(), format!("{t_encoded:.1}"));
    m.insert("bgpdump_check_s".into(), format!("{check_s:.1}"));
    m.insert(
        "total_s".into(),
        format!("{:.1}", t0.elapsed().as_secs_f64()),
    );
    let mut text = String::new();
    for (k, v) in &m {
        let _ = writeln!(text, "{k}={v}");
    }
    fs::write(&files.marker, text)?;
    eprintln!(
        "e2e: synthetic RIB written in {:.1} s (bgpdump check {check_s:.1} s)",
        t0.elapsed().as_secs_f64()
    );
    Ok(m)
}

/// Runs `bgpdump -m` over the synthetic RIB: entries read, and entries whose prefix or origin
/// differ from the generator's (the file order is the prefix order, 18 entries each).
fn bgpdump_check(path: &Path, prefixes: &[(IpNet, u32)]) -> Res<(u64, u64)> {
    let mut child = Command::new("bgpdump")
        .arg("-m")
        .arg(path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let out = BufReader::with_capacity(1 << 20, child.stdout.take().ok_or("no stdout")?);
    let (mut lines, mut bad) = (0u64, 0u64);
    for line in out.lines() {
        let line = line?;
        let f: Vec<&str> = line.split('|').collect();
        let i = (lines / PEERS.len() as u64) as usize;
        lines += 1;
        let ok = match (prefixes.get(i), f.get(5), f.get(6)) {
            (Some((p, o)), Some(pf), Some(path)) => {
                pf.parse::<IpNet>().ok() == Some(*p)
                    && path
                        .split(' ')
                        .next_back()
                        .and_then(|a| a.parse::<u32>().ok())
                        == Some(*o)
            }
            _ => false,
        };
        if !ok {
            bad += 1;
        }
    }
    child.wait()?;
    Ok((lines, bad))
}

// ---------------------------------------------------------------------------------------------
// Registries
// ---------------------------------------------------------------------------------------------

/// A prefix of an input with every origin it was announced with (empty: only AS_SET or empty
/// paths, not registrable with a known origin).
struct Announced {
    net: IpNet,
    origins: Vec<u32>,
}

struct RegistryCfg {
    label: &'static str,
    registered: usize,
    locations: usize,
    path: PathBuf,
}

/// Writes the registries of one input: `REGISTRY_SIZES` prefixes drawn deterministically from
/// its announced prefixes, with their origins. Prefixes that cover another announced prefix are
/// drawn last, so a partial registry does not turn the unregistered more-specifics into
/// sub-prefix hijacks; every prefix of a MOAS goes into a location listing all its origins.
fn write_registries(
    dir: &Path,
    name: &str,
    mut all: Vec<Announced>,
    note: &str,
) -> Res<Vec<RegistryCfg>> {
    all.sort_by_key(|a| prefix_key(&a.net));
    all.dedup_by(|b, a| {
        if a.net == b.net {
            a.origins.append(&mut b.origins);
            true
        } else {
            false
        }
    });
    for a in &mut all {
        a.origins.sort_unstable();
        a.origins.dedup();
    }
    let leaf: Vec<bool> = (0..all.len())
        .map(|i| {
            all.get(i + 1)
                .is_none_or(|next| !contains(&all[i].net, &next.net))
        })
        .collect();
    // AS0 is not a valid origin (RFC 7607), and a default route or an IPv4-mapped IPv6 prefix
    // is no registered prefix: routewatch rejects them in a registry.
    let mapped: IpNet = "::ffff:0:0/96".parse()?;
    let registrable = |a: &Announced| {
        !a.origins.is_empty()
            && !a.origins.contains(&0)
            && a.net.prefix_len() > 0
            && !contains(&mapped, &a.net)
    };
    let mut leaves: Vec<usize> = (0..all.len())
        .filter(|&i| leaf[i] && registrable(&all[i]))
        .collect();
    let mut covering: Vec<usize> = (0..all.len())
        .filter(|&i| !leaf[i] && registrable(&all[i]))
        .collect();
    let mut rng = Rng::new(hash(&name.bytes().map(u64::from).collect::<Vec<_>>()));
    for v in [&mut leaves, &mut covering] {
        for i in (1..v.len()).rev() {
            let j = rng.below(i as u64 + 1) as usize;
            v.swap(i, j);
        }
    }
    let order: Vec<usize> = leaves.into_iter().chain(covering).collect();
    let mut out = Vec::new();
    for (label, want) in REGISTRY_SIZES {
        let take = want.min(order.len());
        let mut chosen: Vec<usize> = order[..take].to_vec();
        chosen.sort_unstable();
        let mut locations: BTreeMap<&[u32], Vec<IpNet>> = BTreeMap::new();
        for &i in &chosen {
            locations
                .entry(all[i].origins.as_slice())
                .or_default()
                .push(all[i].net);
        }
        let path = dir.join(format!("{name}-{label}.toml"));
        let mut w = BufWriter::new(File::create(&path)?);
        writeln!(
            w,
            "# Written by benches/e2e.rs: {take} prefixes of {name} ({note}), registered with\n\
             # their origins; one location per origin set. Regenerated on every run."
        )?;
        for (origins, prefixes) in &locations {
            let asns: Vec<String> = origins.iter().map(u32::to_string).collect();
            let lname = if origins.len() == 1 {
                format!("as{}", asns[0])
            } else {
                format!("moas-{}", asns.join("-"))
            };
            writeln!(w, "\n[[location]]\nname = \"{lname}\"")?;
            writeln!(w, "origin-asns = [{}]", asns.join(", "))?;
            write!(w, "prefixes = [")?;
            for (i, p) in prefixes.iter().enumerate() {
                write!(w, "{}\"{p}\"", if i == 0 { "" } else { ", " })?;
            }
            writeln!(w, "]")?;
        }
        w.flush()?;
        out.push(RegistryCfg {
            label,
            registered: take,
            locations: locations.len(),
            path,
        });
    }
    Ok(out)
}

/// The synthetic RIB's prefixes and origins, from its sidecar.
fn read_sidecar(path: &Path) -> Res<Vec<Announced>> {
    let mut v = Vec::new();
    for line in BufReader::new(File::open(path)?).lines() {
        let line = line?;
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let Some((p, o)) = line.split_once(' ') else {
            return fail(format!("{}: bad line {line:?}", path.display()));
        };
        v.push(Announced {
            net: p.parse()?,
            origins: vec![o.parse()?],
        });
    }
    Ok(v)
}

/// What `bgpdump -m` says about a file: lines by type and announced prefixes with origins.
#[derive(Default)]
struct BgpdumpScan {
    by_type: BTreeMap<String, u64>,
    announced: Vec<Announced>,
    as_set_paths: u64,
    one_member_sets: u64,
    as0_paths: u64,
    empty_paths: u64,
    stderr_lines: usize,
    status: i32,
}

impl BgpdumpScan {
    fn entries(&self) -> u64 {
        ["A", "B", "W"]
            .iter()
            .map(|t| self.by_type.get(*t).copied().unwrap_or(0))
            .sum()
    }
}

/// Origins from `bgpdump -m`: the last AS of each A/B line's path; AS_SET (and confederation)
/// endings and empty paths give no origin.
fn bgpdump_scan(path: &Path, tmp: &Path) -> Res<BgpdumpScan> {
    let err_path = tmp.join("bgpdump-scan.stderr");
    let mut child = Command::new("bgpdump")
        .arg("-m")
        .arg(path)
        .stdout(Stdio::piped())
        .stderr(File::create(&err_path)?)
        .spawn()?;
    let out = BufReader::with_capacity(1 << 20, child.stdout.take().ok_or("no stdout")?);
    let mut scan = BgpdumpScan::default();
    let mut origins: HashMap<IpNet, Vec<u32>> = HashMap::new();
    for line in out.split(b'\n') {
        let line = String::from_utf8_lossy(&line?).into_owned();
        let f: Vec<&str> = line.split('|').collect();
        let Some(t) = f.get(2) else { continue };
        *scan.by_type.entry((*t).to_string()).or_insert(0) += 1;
        if *t != "A" && *t != "B" {
            continue;
        }
        let (Some(pf), Some(aspath)) = (f.get(5), f.get(6)) else {
            continue;
        };
        let Ok(net) = pf.parse::<IpNet>() else {
            continue;
        };
        let net = net.trunc();
        let entry = origins.entry(net).or_default();
        let origin = match aspath.split(' ').next_back() {
            Some(last) if !last.is_empty() => match last.parse::<u32>() {
                Ok(o) => Some(o),
                // A one-member AS_SET names its origin (as routewatch reads it); a larger set
                // or a confederation segment does not.
                Err(_) => match last.strip_prefix('{').and_then(|l| l.strip_suffix('}')) {
                    Some(one) if !one.contains(',') => {
                        scan.one_member_sets += 1;
                        one.parse::<u32>().ok()
                    }
                    _ => {
                        scan.as_set_paths += 1;
                        None
                    }
                },
            },
            _ => {
                scan.empty_paths += 1;
                None
            }
        };
        if let Some(o) = origin {
            if o == 0 {
                scan.as0_paths += 1;
            }
            if !entry.contains(&o) {
                entry.push(o);
            }
        }
    }
    scan.status = child.wait()?.code().unwrap_or(-1);
    scan.stderr_lines = fs::read_to_string(&err_path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.contains("logging to"))
        .count();
    scan.announced = origins
        .into_iter()
        .map(|(net, origins)| Announced { net, origins })
        .collect();
    Ok(scan)
}

// ---------------------------------------------------------------------------------------------
// Children: bgpkit-parser iterators and in-process decompression, one process per measurement
// ---------------------------------------------------------------------------------------------

/// Opens an MRT file the way routewatch does (`src/ingest/mrt.rs::open`): magic-byte detection,
/// flate2 (zlib-rs) multi-member gzip or bzip2 multi-stream, 256 KiB buffers.
fn open_mrt(path: &Path) -> io::Result<Box<dyn BufRead + Send>> {
    let mut magic = [0u8; 3];
    let mut f = File::open(path)?;
    let mut n = 0;
    while n < 3 {
        match f.read(&mut magic[n..])? {
            0 => break,
            k => n += k,
        }
    }
    let raw = BufReader::with_capacity(256 * 1024, File::open(path)?);
    Ok(match &magic[..n] {
        [0x1f, 0x8b, _] => Box::new(BufReader::with_capacity(
            256 * 1024,
            flate2::read::MultiGzDecoder::new(raw),
        )),
        b"BZh" => Box::new(BufReader::with_capacity(
            256 * 1024,
            bzip2::read::MultiBzDecoder::new(raw),
        )),
        _ => Box::new(raw),
    })
}

/// `e2e --child KIND FILE`: prints one count on stdout.
fn child(kind: &str, path: &Path) -> Res<()> {
    let parser = || -> Res<BgpkitParser<Box<dyn BufRead + Send>>> {
        Ok(BgpkitParser::from_reader(open_mrt(path)?).disable_warnings())
    };
    let n: u64 = match kind {
        "bgpkit-elem" => parser()?.into_elem_iter().count() as u64,
        "bgpkit-route" => parser()?.into_route_iter().count() as u64,
        "bgpkit-raw" => parser()?.into_raw_record_iter().count() as u64,
        "inflate" => {
            // Decompressed bytes to a sink; a stream cut short ends the count (reported).
            let mut r = open_mrt(path)?;
            let mut total = 0u64;
            loop {
                let len = match r.fill_buf() {
                    Ok([]) => break,
                    Ok(buf) => buf.len(),
                    Err(e) => {
                        eprintln!("inflate: {e} after {total} bytes");
                        break;
                    }
                };
                total += len as u64;
                r.consume(len);
            }
            total
        }
        _ => return fail(format!("unknown child kind {kind}")),
    };
    println!("{n}");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Measurements
// ---------------------------------------------------------------------------------------------

#[derive(Clone)]
struct Sample {
    wall: f64,
    rss_kib: u64,
    status: i32,
    stdout: String,
    stderr: String,
}

/// Runs `argv` under `/usr/bin/time -f '%e %M'`: wall time measured here around the child
/// (millisecond resolution; includes the time(1) fork/exec, ~1 ms), peak RSS from time(1).
fn measure(argv: &[OsString], capture: bool, tmp: &Path) -> Res<Sample> {
    let tfile = tmp.join("time.txt");
    let efile = tmp.join("stderr.txt");
    let _ = fs::remove_file(&tfile);
    let mut cmd = Command::new("/usr/bin/time");
    cmd.arg("-f")
        .arg("%e %M")
        .arg("-o")
        .arg(&tfile)
        .args(argv)
        .stdin(Stdio::null())
        .stdout(if capture {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stderr(File::create(&efile)?);
    let t = Instant::now();
    let out = cmd.spawn()?.wait_with_output()?;
    let wall = t.elapsed().as_secs_f64();
    let text = fs::read_to_string(&tfile)?;
    let last = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    let rss_kib = match last.split_whitespace().nth(1).map(str::parse::<u64>) {
        Some(Ok(v)) => v,
        _ => return fail(format!("/usr/bin/time output {text:?} for {argv:?}")),
    };
    let stderr = String::from_utf8_lossy(&fs::read(&efile).unwrap_or_default()).into_owned();
    Ok(Sample {
        wall,
        rss_kib,
        status: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).trim().to_string(),
        stderr,
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Compression {
    Gzip,
    Bzip2,
    Plain,
}

/// The binaries measured (copies made at the start of the run).
struct Bins {
    routewatch: PathBuf,
    me: PathBuf,
}

fn snapshot(from: &Path, to: &Path) -> Res<PathBuf> {
    let tmp = tmp_name(to);
    fs::copy(from, &tmp)?;
    fs::rename(&tmp, to)?;
    Ok(to.to_path_buf())
}

struct Input {
    name: String,
    path: PathBuf,
    compression: Compression,
    /// Synthetic: shares the registries of its plain file.
    synthetic: bool,
}

#[derive(Clone)]
enum Tool {
    Routewatch(usize),
    Bgpdump,
    Elem,
    Route,
    Raw,
    CliDecompress,
    InProcess,
}

impl Tool {
    fn id(&self, input: &Input) -> String {
        match self {
            Tool::Routewatch(i) => format!("routewatch-{}", REGISTRY_SIZES[*i].0),
            Tool::Bgpdump => "bgpdump".into(),
            Tool::Elem => "bgpkit-elem".into(),
            Tool::Route => "bgpkit-route".into(),
            Tool::Raw => "bgpkit-raw".into(),
            Tool::CliDecompress => match input.compression {
                Compression::Gzip => "gzip-dc".into(),
                Compression::Bzip2 => "bzip2-dc".into(),
                Compression::Plain => "cat".into(),
            },
            Tool::InProcess => "inflate-inproc".into(),
        }
    }

    fn describe(&self, input: &Input, regs: &[RegistryCfg]) -> String {
        match self {
            Tool::Routewatch(i) => match regs.get(*i) {
                Some(r) => format!(
                    "routewatch replay, registry {}: {} prefixes, {} locations",
                    r.label,
                    thousands(r.registered as u64),
                    thousands(r.locations as u64)
                ),
                None => "routewatch replay".into(),
            },
            Tool::Bgpdump => "bgpdump -m".into(),
            Tool::Elem => "bgpkit BgpElem iter".into(),
            Tool::Route => "bgpkit route iter (fastest)".into(),
            Tool::Raw => "bgpkit raw record iter".into(),
            Tool::CliDecompress => match input.compression {
                Compression::Gzip => "gzip -dc".into(),
                Compression::Bzip2 => "bzip2 -dc".into(),
                Compression::Plain => "cat".into(),
            },
            Tool::InProcess => match input.compression {
                Compression::Gzip => "flate2 (zlib-rs) to sink".into(),
                Compression::Bzip2 => "bzip2 crate to sink".into(),
                Compression::Plain => "read to sink".into(),
            },
        }
    }

    fn argv(&self, input: &Input, regs: &[RegistryCfg], bins: &Bins) -> Vec<OsString> {
        let me = bins.me.as_path();
        let file = input.path.clone().into_os_string();
        let child = |kind: &str| vec![me.into(), "--child".into(), kind.into(), file.clone()];
        match self {
            Tool::Routewatch(i) => vec![
                bins.routewatch.clone().into_os_string(),
                "replay".into(),
                "-c".into(),
                regs[*i].path.clone().into_os_string(),
                "--format".into(),
                "none".into(),
                file,
            ],
            Tool::Bgpdump => vec!["bgpdump".into(), "-m".into(), file],
            Tool::Elem => child("bgpkit-elem"),
            Tool::Route => child("bgpkit-route"),
            Tool::Raw => child("bgpkit-raw"),
            Tool::CliDecompress => match input.compression {
                Compression::Gzip => vec!["gzip".into(), "-dc".into(), file],
                Compression::Bzip2 => vec!["bzip2".into(), "-dc".into(), file],
                Compression::Plain => vec!["cat".into(), file],
            },
            Tool::InProcess => child("inflate"),
        }
    }

    fn captures(&self) -> bool {
        matches!(self, Tool::Elem | Tool::Route | Tool::Raw | Tool::InProcess)
    }
}

/// What routewatch's untimed check run (`--metrics-out`) reports.
#[derive(Default)]
struct RwCheck {
    status: i32,
    processed: f64,
    matched: f64,
    registered: f64,
    tracked: f64,
    errors: BTreeMap<String, f64>,
    anomalies: BTreeMap<String, f64>,
    stderr_lines: usize,
    stderr_head: String,
    wall: f64,
    rss_kib: u64,
}

fn label<'a>(labels: &'a str, key: &str) -> Option<&'a str> {
    let pat = format!("{key}=\"");
    let start = labels.find(&pat)? + pat.len();
    let rest = &labels[start..];
    Some(&rest[..rest.find('"')?])
}

fn routewatch_check(input: &Input, reg: &RegistryCfg, bins: &Bins, tmp: &Path) -> Res<RwCheck> {
    let metrics = tmp.join("check-metrics.prom");
    let _ = fs::remove_file(&metrics);
    let argv: Vec<OsString> = vec![
        bins.routewatch.clone().into_os_string(),
        "replay".into(),
        "-c".into(),
        reg.path.clone().into_os_string(),
        "--format".into(),
        "none".into(),
        "--metrics-out".into(),
        metrics.clone().into_os_string(),
        input.path.clone().into_os_string(),
    ];
    let s = measure(&argv, false, tmp)?;
    let mut c = RwCheck {
        status: s.status,
        wall: s.wall,
        rss_kib: s.rss_kib,
        stderr_lines: s.stderr.lines().count(),
        stderr_head: s.stderr.lines().take(3).collect::<Vec<_>>().join(" / "),
        ..RwCheck::default()
    };
    let text = fs::read_to_string(&metrics).unwrap_or_default();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(v) = value.parse::<f64>() else {
            continue;
        };
        let (name, labels) = series.split_once('{').unwrap_or((series, ""));
        match name {
            "routewatch_routes_processed_total" => c.processed += v,
            "routewatch_routes_matched_total" => c.matched += v,
            "routewatch_registered_prefixes" => c.registered += v,
            "routewatch_tracked_routes" => c.tracked += v,
            "routewatch_parse_errors_total" if v > 0.0 => {
                *c.errors
                    .entry(label(labels, "error").unwrap_or("?").to_string())
                    .or_insert(0.0) += v;
            }
            "routewatch_anomalies_opened_total" if v > 0.0 => {
                *c.anomalies
                    .entry(label(labels, "kind").unwrap_or("?").to_string())
                    .or_insert(0.0) += v;
            }
            _ => {}
        }
    }
    Ok(c)
}

// ---------------------------------------------------------------------------------------------
// Formatting
// ---------------------------------------------------------------------------------------------

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / 1_048_576.0)
}

fn secs(s: f64) -> String {
    if s.is_nan() {
        "–".into()
    } else if s < 10.0 {
        format!("{s:.3}")
    } else {
        format!("{s:.1}")
    }
}

fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    // "2026-11-26T21:17:05Z" -> "2026-11-26 21:17 UTC"
    let t = routewatch::time_fmt::format_rfc3339(secs);
    format!("{} {} UTC", &t[..10], &t[11..16])
}

fn machine() -> String {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|r| r.trim_start_matches([' ', '\t', ':']))
        })
        .unwrap_or("unknown")
        .to_string();
    let nproc = Command::new("nproc")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let mem = fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:").map(|r| r.trim().to_string()))
        .and_then(|r| {
            r.split_whitespace()
                .next()
                .and_then(|k| k.parse::<u64>().ok())
        })
        .map(|kib| format!("{:.1} GiB", kib as f64 / 1_048_576.0))
        .unwrap_or_default();
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "`nproc` = {nproc}, CPU \"{model}\", {mem} RAM, Linux {}",
        kernel.trim()
    )
}

// ---------------------------------------------------------------------------------------------
// The harness
// ---------------------------------------------------------------------------------------------

struct Opts {
    runs: usize,
    quick: bool,
    prefixes: usize,
    only: Vec<String>,
    regen: bool,
    raw: bool,
    check: bool,
}

fn env_flag(name: &str, default: bool) -> bool {
    match env::var(name) {
        Ok(v) => !matches!(v.trim(), "" | "0" | "false" | "no"),
        Err(_) => default,
    }
}

impl Opts {
    fn from_env() -> Res<Opts> {
        let quick = env_flag("E2E_QUICK", false);
        let num = |name: &str, default: usize| -> Res<usize> {
            match env::var(name) {
                Ok(v) => Ok(v.trim().replace('_', "").parse()?),
                Err(_) => Ok(default),
            }
        };
        let runs = num("E2E_RUNS", 3)?.max(1);
        let prefixes = num("E2E_PREFIXES", if quick { 50_000 } else { 1_000_000 })?.max(1);
        let only = env::var("E2E_ONLY")
            .unwrap_or_default()
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        Ok(Opts {
            runs,
            quick,
            prefixes,
            only,
            regen: env_flag("E2E_REGEN", false),
            raw: env_flag("E2E_RAW", true),
            check: env_flag("E2E_CHECK", true),
        })
    }

    fn selects(&self, id: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|s| id.contains(s.as_str()))
    }

    fn command(&self) -> String {
        let mut parts: Vec<String> = [
            "E2E_RUNS",
            "E2E_QUICK",
            "E2E_PREFIXES",
            "E2E_ONLY",
            "E2E_REGEN",
            "E2E_RAW",
            "E2E_CHECK",
        ]
        .iter()
        .filter_map(|k| env::var(k).ok().map(|v| format!("{k}={v}")))
        .collect();
        parts.push("cargo bench --bench e2e".into());
        parts.join(" ")
    }
}

struct InputState {
    input: Input,
    tools: Vec<Tool>,
    regs: Vec<RegistryCfg>,
    entries: u64,
    prep_s: f64,
    bgpdump_entries: Option<u64>,
    bgpdump_note: String,
    checks: Vec<(usize, RwCheck)>,
}

fn main() {
    let args: Vec<String> = env::args().collect();
    if args.get(1).map(String::as_str) == Some("--child") {
        let (Some(kind), Some(file)) = (args.get(2), args.get(3)) else {
            eprintln!("usage: e2e --child KIND FILE");
            std::process::exit(2);
        };
        if let Err(e) = child(kind, Path::new(file)) {
            eprintln!("e2e child {kind}: {e}");
            std::process::exit(1);
        }
        return;
    }
    if let Err(e) = run() {
        eprintln!("e2e: {e}");
        std::process::exit(1);
    }
}

fn run() -> Res<()> {
    let t_start = Instant::now();
    let opts = Opts::from_env()?;
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let cache = root.join("target").join("bench-cache");
    let tmp = cache.join("tmp");
    let regdir = cache.join("registries");
    fs::create_dir_all(&tmp)?;
    fs::create_dir_all(&regdir)?;
    // Snapshots of the binaries, so a rebuild in the shared target directory during the run
    // (src/ is being changed) cannot swap what is measured half-way.
    let bins = Bins {
        routewatch: snapshot(
            Path::new(env!("CARGO_BIN_EXE_routewatch")),
            &tmp.join("routewatch"),
        )?,
        me: snapshot(&env::current_exe()?, &tmp.join("e2e-child"))?,
    };
    let rw_version = Command::new(&bins.routewatch)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();

    let synth_files = SynthFiles::new(&cache, opts.prefixes);
    let mut inputs: Vec<Input> = vec![
        Input {
            name: format!("{}.gz", synth_files.label),
            path: synth_files.gz.clone(),
            compression: Compression::Gzip,
            synthetic: true,
        },
        Input {
            name: format!("{}.bz2", synth_files.label),
            path: synth_files.bz2.clone(),
            compression: Compression::Bzip2,
            synthetic: true,
        },
    ];
    for (name, rel) in FIXTURES {
        let compression = if rel.ends_with(".gz") {
            Compression::Gzip
        } else if rel.ends_with(".bz2") {
            Compression::Bzip2
        } else {
            Compression::Plain
        };
        inputs.push(Input {
            name: name.to_string(),
            path: root.join(rel),
            compression,
            synthetic: false,
        });
    }
    let mut all_tools: Vec<Tool> = (0..REGISTRY_SIZES.len()).map(Tool::Routewatch).collect();
    all_tools.extend([Tool::Bgpdump, Tool::Elem, Tool::Route]);
    if opts.raw {
        all_tools.push(Tool::Raw);
    }
    all_tools.extend([Tool::CliDecompress, Tool::InProcess]);

    let mut states: Vec<InputState> = Vec::new();
    for input in inputs {
        let tools: Vec<Tool> = all_tools
            .iter()
            .filter(|t| opts.selects(&format!("{}/{}", input.name, t.id(&input))))
            .cloned()
            .collect();
        if !tools.is_empty() {
            states.push(InputState {
                input,
                tools,
                regs: Vec::new(),
                entries: 0,
                prep_s: 0.0,
                bgpdump_entries: None,
                bgpdump_note: String::new(),
                checks: Vec::new(),
            });
        }
    }
    if states.is_empty() {
        return fail("E2E_ONLY selects nothing");
    }
    eprintln!(
        "e2e: {} mode, {} run(s), {rw_version} ({}, copied to {})",
        if opts.quick { "quick" } else { "full" },
        opts.runs,
        env!("CARGO_BIN_EXE_routewatch"),
        bins.routewatch.display()
    );

    // 1. The synthetic RIB (written once) and its registries.
    let mut notes: Vec<String> = Vec::new();
    let mut synth_marker = None;
    let mut synth_regs: Option<(Vec<RegistryCfg>, f64)> = None;
    if states.iter().any(|s| s.input.synthetic) {
        let marker = match (opts.regen, synth_files.cached(opts.prefixes)) {
            (false, Some(m)) => {
                eprintln!("e2e: reusing {}", synth_files.raw.display());
                m
            }
            _ => generate(&synth_files, opts.prefixes)?,
        };
        let t = Instant::now();
        let regs = write_registries(
            &regdir,
            &synth_files.label,
            read_sidecar(&synth_files.origins)?,
            "synthetic RIB, origins from its sidecar",
        )?;
        synth_regs = Some((regs, t.elapsed().as_secs_f64()));
        synth_marker = Some(marker);
    }

    // 2. Per input: entry count, registries, routewatch check run.
    for st in &mut states {
        let t = Instant::now();
        eprintln!("e2e: preparing {}", st.input.name);
        if st.input.synthetic {
            if let (Some((regs, _)), Some(m)) = (&synth_regs, &synth_marker) {
                st.regs = regs
                    .iter()
                    .map(|r| RegistryCfg {
                        label: r.label,
                        registered: r.registered,
                        locations: r.locations,
                        path: r.path.clone(),
                    })
                    .collect();
                st.bgpdump_entries = m.get("bgpdump_lines").and_then(|v| v.parse().ok());
                st.bgpdump_note = "checked on the plain file when generated".into();
            }
        } else {
            let scan = bgpdump_scan(&st.input.path, &tmp)?;
            st.bgpdump_entries = Some(scan.entries());
            let types: Vec<String> = scan
                .by_type
                .iter()
                .map(|(k, v)| format!("{k} {}", thousands(*v)))
                .collect();
            st.bgpdump_note = format!(
                "{}; exit {}, {} stderr line(s); origins for the registries: {} paths ending in \
                 a one-member AS_SET taken as that origin, {} ending in a larger AS_SET and {} \
                 empty paths skipped, {} with origin AS0 (prefixes with an AS0 origin are not \
                 registered: routewatch rejects AS0)",
                types.join(", "),
                scan.status,
                scan.stderr_lines,
                thousands(scan.one_member_sets),
                thousands(scan.as_set_paths),
                thousands(scan.empty_paths),
                thousands(scan.as0_paths)
            );
            let stem = st.input.name.replace('.', "_");
            st.regs = write_registries(&regdir, &stem, scan.announced, "origins from bgpdump -m")?;
        }
        // Entries: bgpkit-parser's BgpElem count (also warms the page cache).
        let s = measure(&Tool::Elem.argv(&st.input, &st.regs, &bins), true, &tmp)?;
        st.entries = s.stdout.parse().unwrap_or(0);
        if s.status != 0 || st.entries == 0 {
            notes.push(format!(
                "{}: bgpkit BgpElem count failed (exit {}): {}",
                st.input.name,
                s.status,
                s.stderr.trim()
            ));
        }
        if opts.check {
            for (i, reg) in st.regs.iter().enumerate() {
                if st
                    .tools
                    .iter()
                    .any(|t| matches!(t, Tool::Routewatch(j) if *j == i))
                {
                    let c = routewatch_check(&st.input, reg, &bins, &tmp)?;
                    st.checks.push((i, c));
                }
            }
        }
        st.prep_s = t.elapsed().as_secs_f64();
    }

    // 3. Measurements, round robin: every run measures every row once.
    let t_measure = Instant::now();
    let mut samples: HashMap<(usize, String), Vec<Sample>> = HashMap::new();
    for run in 0..opts.runs {
        for (si, st) in states.iter().enumerate() {
            for tool in &st.tools {
                let id = tool.id(&st.input);
                let s = measure(
                    &tool.argv(&st.input, &st.regs, &bins),
                    tool.captures(),
                    &tmp,
                )?;
                eprintln!(
                    "e2e: run {}/{} {}/{id}: {:.3} s, {:.1} MiB{}",
                    run + 1,
                    opts.runs,
                    st.input.name,
                    s.wall,
                    s.rss_kib as f64 / 1024.0,
                    if s.status == 0 {
                        String::new()
                    } else {
                        format!(", exit {}", s.status)
                    }
                );
                samples.entry((si, id)).or_default().push(s);
            }
        }
    }
    let measure_s = t_measure.elapsed().as_secs_f64();

    // 4. The report.
    let mut md = String::new();
    let _ = writeln!(md, "### e2e results, {}\n", utc_now());
    let _ = writeln!(md, "- command: `{}`", opts.command());
    let _ = writeln!(md, "- machine: {}", machine());
    let _ = writeln!(
        md,
        "- binaries: `{rw_version}` (cargo's bench profile = release settings) and this harness, \
         both copied before the first measurement; bgpdump 1.6.2 (Debian), gzip/bzip2 (Debian)"
    );
    let mode = format!(
        "{} ({} prefixes × {} peers)",
        if opts.quick { "quick" } else { "full" },
        thousands(opts.prefixes as u64),
        PEERS.len()
    );
    let _ = writeln!(
        md,
        "- mode: {mode}; medians over {} run(s), rows measured round robin",
        opts.runs
    );
    let _ = writeln!(
        md,
        "- wall: measured around each child process; peak RSS: `/usr/bin/time -f '%e %M'`; \
         entries = route entries counted by bgpkit-parser's BgpElem iterator; \
         ratios = median over runs of (row wall / reference wall in the same run)"
    );
    if let Some(m) = &synth_marker {
        let g = |k: &str| m.get(k).cloned().unwrap_or_default();
        let size = |k: &str| mib(g(k).parse().unwrap_or(0));
        let _ = writeln!(
            md,
            "- synthetic RIB: {} entries, {} plain, {} gz, {} bz2; written once in {} s \
             (prefixes {} s, encode {} s, gzip thread busy {} s, bzip2 thread busy {} s, \
             all files {} s, bgpdump check {} s)",
            thousands(g("entries").parse().unwrap_or(0)),
            size("raw_bytes"),
            size("gz_bytes"),
            size("bz2_bytes"),
            g("total_s"),
            g("prefix_gen_s"),
            g("encode_s"),
            g("gzip_busy_s"),
            g("bzip2_busy_s"),
            g("write_all_s"),
            g("bgpdump_check_s")
        );
    }
    let _ = writeln!(md);
    let _ = writeln!(
        md,
        "| input | tool | wall s | M entries/s | peak RSS MiB | vs BgpElem | vs bgpdump | vs inflate |"
    );
    let _ = writeln!(md, "|---|---|---:|---:|---:|---:|---:|---:|");
    let mut failures: Vec<String> = Vec::new();
    for (si, st) in states.iter().enumerate() {
        let get = |id: &str| samples.get(&(si, id.to_string()));
        for tool in &st.tools {
            let id = tool.id(&st.input);
            let Some(v) = get(&id) else { continue };
            let wall = median(v.iter().map(|s| s.wall).collect());
            let rss = median(v.iter().map(|s| s.rss_kib as f64).collect()) / 1024.0;
            let ratio = |ref_id: &str| -> String {
                let Some(r) = get(ref_id) else {
                    return "–".into();
                };
                let per_run: Vec<f64> = v.iter().zip(r).map(|(a, b)| a.wall / b.wall).collect();
                format!("{:.2}×", median(per_run))
            };
            let bad: Vec<i32> = v.iter().map(|s| s.status).filter(|&c| c != 0).collect();
            if !bad.is_empty() {
                let msg = v
                    .iter()
                    .find(|s| s.status != 0)
                    .map(|s| {
                        s.stderr
                            .lines()
                            .map(str::trim)
                            .filter(|l| !l.is_empty())
                            .take(2)
                            .collect::<Vec<_>>()
                            .join(" / ")
                    })
                    .unwrap_or_default();
                failures.push(format!(
                    "{}/{id}: exit status {:?}: {}",
                    st.input.name, bad, msg
                ));
            }
            let counts: Vec<&str> = v.iter().map(|s| s.stdout.as_str()).collect();
            if tool.captures() && counts.windows(2).any(|w| w[0] != w[1]) {
                failures.push(format!(
                    "{}/{id}: counts differ between runs: {counts:?}",
                    st.input.name
                ));
            }
            let _ = writeln!(
                md,
                "| {} | {}{} | {} | {:.2} | {:.1} | {} | {} | {} |",
                st.input.name,
                tool.describe(&st.input, &st.regs),
                if bad.is_empty() { "" } else { " †" },
                secs(wall),
                st.entries as f64 / wall / 1e6,
                rss,
                ratio("bgpkit-elem"),
                ratio("bgpdump"),
                ratio("inflate-inproc"),
            );
        }
    }

    // The headline ratios, routewatch with the 10k registry (per-run ratios, medians).
    let _ = writeln!(
        md,
        "\n#### {RATIO_REGISTRY} (registry of 10,000 prefixes, capped at the file's) vs the references\n"
    );
    let _ = writeln!(
        md,
        "| input | wall s | M entries/s | × BgpElem iter | × route iter | × bgpdump -m | × in-process decompression |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|");
    for (si, st) in states.iter().enumerate() {
        let Some(v) = samples.get(&(si, RATIO_REGISTRY.to_string())) else {
            continue;
        };
        let ratio = |ref_id: &str| -> String {
            samples
                .get(&(si, ref_id.to_string()))
                .map_or("–".into(), |r| {
                    let per_run: Vec<f64> = v.iter().zip(r).map(|(a, b)| a.wall / b.wall).collect();
                    format!("{:.2}", median(per_run))
                })
        };
        let wall = median(v.iter().map(|s| s.wall).collect());
        let _ = writeln!(
            md,
            "| {} | {} | {:.2} | {} | {} | {} | {} |",
            st.input.name,
            secs(wall),
            st.entries as f64 / wall / 1e6,
            ratio("bgpkit-elem"),
            ratio("bgpkit-route"),
            ratio("bgpdump"),
            ratio("inflate-inproc")
        );
    }

    let _ = writeln!(md, "\n#### Inputs and entry counts\n");
    let _ = writeln!(
        md,
        "| input | file | decompressed | BgpElem entries | route iter | raw records | bgpdump A/B/W lines | prep s |"
    );
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|---:|");
    for (si, st) in states.iter().enumerate() {
        let first = |id: &str| -> String {
            samples
                .get(&(si, id.to_string()))
                .and_then(|v| v.first())
                .and_then(|s| s.stdout.parse::<u64>().ok())
                .map_or("–".into(), |n| {
                    if id == "inflate-inproc" {
                        mib(n)
                    } else {
                        thousands(n)
                    }
                })
        };
        let size = fs::metadata(&st.input.path).map(|m| m.len()).unwrap_or(0);
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {:.1} |",
            st.input.name,
            mib(size),
            first("inflate-inproc"),
            thousands(st.entries),
            first("bgpkit-route"),
            first("bgpkit-raw"),
            st.bgpdump_entries.map_or("–".into(), thousands),
            st.prep_s
        );
        if st.bgpdump_entries.is_some_and(|b| b != st.entries) {
            notes.push(format!(
                "{}: bgpdump prints {} A/B/W lines, bgpkit-parser yields {} elems",
                st.input.name,
                thousands(st.bgpdump_entries.unwrap_or(0)),
                thousands(st.entries)
            ));
        }
    }
    for st in &states {
        if !st.bgpdump_note.is_empty() {
            notes.push(format!(
                "{}: bgpdump -m: {}",
                st.input.name, st.bgpdump_note
            ));
        }
    }

    if states.iter().any(|s| !s.checks.is_empty()) {
        let _ = writeln!(
            md,
            "\n#### routewatch check run (untimed, `--metrics-out`)\n"
        );
        let _ = writeln!(
            md,
            "| input | registry | registered | processed | matched | tracked routes | parse errors | anomalies opened | stderr lines | wall s | RSS MiB |"
        );
        let _ = writeln!(md, "|---|---|---:|---:|---:|---:|---|---|---:|---:|---:|");
        for st in &states {
            for (i, c) in &st.checks {
                let fmt_map = |m: &BTreeMap<String, f64>| {
                    if m.is_empty() {
                        "0".to_string()
                    } else {
                        m.iter()
                            .map(|(k, v)| format!("{k} {}", thousands(*v as u64)))
                            .collect::<Vec<_>>()
                            .join(", ")
                    }
                };
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.1} |",
                    st.input.name,
                    REGISTRY_SIZES[*i].0,
                    thousands(c.registered as u64),
                    thousands(c.processed as u64),
                    thousands(c.matched as u64),
                    thousands(c.tracked as u64),
                    fmt_map(&c.errors),
                    fmt_map(&c.anomalies),
                    c.stderr_lines,
                    secs(c.wall),
                    c.rss_kib as f64 / 1024.0
                );
                if c.status != 0 {
                    failures.push(format!(
                        "{}: routewatch check with registry {} exited {}: {}",
                        st.input.name, REGISTRY_SIZES[*i].0, c.status, c.stderr_head
                    ));
                }
                if c.processed as u64 != st.entries {
                    notes.push(format!(
                        "{}: routewatch processed {} entries, bgpkit-parser's BgpElem iterator yields {}",
                        st.input.name,
                        thousands(c.processed as u64),
                        thousands(st.entries)
                    ));
                }
                if c.registered as usize != st.regs[*i].registered {
                    notes.push(format!(
                        "{}: registry {} lists {} prefixes, routewatch_registered_prefixes says {}",
                        st.input.name, REGISTRY_SIZES[*i].0, st.regs[*i].registered, c.registered
                    ));
                }
            }
        }
    }
    notes.dedup();
    if !failures.is_empty() || !notes.is_empty() {
        let _ = writeln!(md, "\nNotes:\n");
        for f in failures.iter().map(|f| format!("† {f}")).chain(notes) {
            let _ = writeln!(md, "- {f}");
        }
    }
    let _ = writeln!(
        md,
        "\nHarness wall time: {:.0} s (measurements {:.0} s{}).",
        t_start.elapsed().as_secs_f64(),
        measure_s,
        synth_regs
            .as_ref()
            .map(|(_, s)| format!(", synthetic registries {s:.1} s"))
            .unwrap_or_default()
    );
    print!("{md}");
    io::stdout().flush()?;
    fs::write(cache.join("e2e-results.md"), &md)?;
    eprintln!("e2e: written {}", cache.join("e2e-results.md").display());
    Ok(())
}
