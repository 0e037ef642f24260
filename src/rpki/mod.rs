//! RPKI route origin validation (RFC 6811) against Validated ROA Payloads (VRPs) read from a JSON
//! file. Pure apart from [`VrpFile`], which only stats and reads the file it is given: the daemon
//! decides when to poll it, logs the [`LoadReport`] and keeps the previous [`VrpSet`] on error.
//!
//! # Input formats
//!
//! Three producers are accepted; all put the VRPs in a top-level `roas` array of objects with
//! `asn`, `prefix` and `maxLength` members. Everything else — other top-level members, other
//! members of a VRP object — is ignored at every level. What the sources say (checked against
//! their code and documentation, not guessed):
//!
//! - **Routinator `--format json`** (NLnetLabs/routinator `src/output.rs`, `Json` formatter, and
//!   `doc/manual/source/output-formats.rst`): `{"metadata": {"generated": <unix>,
//!   "generatedTime": "<iso>"}, "roas": [{"asn": "AS196615", "prefix": "93.175.147.0/24",
//!   "maxLength": 24, "ta": "ripe"}]}`. The ASN is a *string* with the `AS` prefix. Routinator
//!   0.15's own test outputs (`test/output/*.json`) add `routerKeys` and `aspas` arrays next to
//!   `roas`.
//! - **Routinator `--format jsonext`** (same file, `ExtendedJson` formatter): the same three
//!   members without `ta`, plus `"source": [...]`, one object per source: `{"type": "roa", "uri":
//!   "rsync://…", "validity": {"notBefore": …, "notAfter": …}, "chainValidity": {"notBefore": …,
//!   "notAfter": …}}` or, for a local exception (SLURM), `{"type": "exception", "path": …,
//!   "comment": …}`. Ignored here.
//! - **rpki-client `-j`** (openbsd/src `usr.sbin/rpki-client/output-json.c`, rev. 1.57 of
//!   2025-09): `{"metadata": {"buildmachine": …, "buildtime": …, "roas": <count>, …,
//!   "talfiles": [...], …}, "roas": [{"asn": 13335, "prefix": "1.1.1.0/24", "maxLength": 24,
//!   "ta": "apnic", "expires": <unix>}], "bgpsec_keys": [...], "nonfunc_cas": [...], "aspas":
//!   [...]}`. The ASN is a JSON *number* (`json_do_int("asn", …)`). Older rpki-client releases
//!   (output-json.c rev. 1.13, 2020) wrote `"asn": "AS13335"` and no `expires`, like Routinator.
//!   Note that `metadata` also has a member called `roas` (a count): only the top-level one is
//!   the VRP list.
//!
//! So `asn` is accepted as a number, as `"AS<n>"` (any case) and as a plain numeric string.
//! `maxLength` must be present: all three producers always write it.
//!
//! # Bad input
//!
//! A file that is not JSON, not a JSON object, or has no top-level `roas` array is an error
//! ([`ParseError`]); the caller keeps its previous set. A bad *entry* (not an object, bad ASN,
//! unparsable prefix, host bits set, `maxLength` missing or outside prefix length..=32/128) is
//! counted in the [`LoadReport`] under its [`SkipReason`] and skipped; the rest of the file is
//! used. Duplicate VRPs (the same prefix, maxLength and ASN from several ROAs or trust anchors)
//! are merged and counted.
//!
//! # Data structure
//!
//! One prefix-trie `PrefixMap` per family keyed by VRP prefix; each value is a span into one
//! flat `Vec` of (ASN, maxLength) pairs sorted by ASN, so a prefix with several VRPs costs one
//! trie entry and one binary search. A validation walks only the VRP prefixes that cover the
//! route, most specific first, with repeated `get_lpm` calls: each returns the most specific
//! stored prefix covering the query, and the next query is that prefix shortened by one bit.
//!
//! Its throughput, and that of the alternatives it was chosen over, is measured by
//! `cargo bench --bench rpki_validate` (BENCHMARKS.md, "RPKI validation").

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use prefix_trie::{Prefix, PrefixMap};
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::model::AsPath;

pub mod aspa;
pub mod data;
pub mod metrics;
pub mod rtr;

pub use data::{RpkiData, RpkiDelta};

#[cfg(test)]
mod tests;

/// The RFC 6811 validation state of a route, with the two reasons for "Invalid" kept apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RovState {
    /// A covering VRP has the route's origin AS and a maxLength ≥ the route's prefix length.
    Valid,
    /// VRPs cover the route, but none has its origin AS (or the route has no single origin).
    InvalidOrigin,
    /// A covering VRP has the route's origin AS, but every such VRP's maxLength is shorter than
    /// the route's prefix length.
    InvalidLength,
    /// No VRP covers the route.
    NotFound,
}

impl RovState {
    /// Every state, in a stable order: for pre-initialising metric label sets.
    pub const ALL: [RovState; 4] = [
        RovState::Valid,
        RovState::InvalidOrigin,
        RovState::InvalidLength,
        RovState::NotFound,
    ];

    /// The stable snake_case name (`valid`, `invalid_origin`, `invalid_length`, `not_found`),
    /// used as a metric label value and in JSON.
    pub const fn as_str(self) -> &'static str {
        match self {
            RovState::Valid => "valid",
            RovState::InvalidOrigin => "invalid_origin",
            RovState::InvalidLength => "invalid_length",
            RovState::NotFound => "not_found",
        }
    }

    /// Whether this is one of the two RFC 6811 "Invalid" states.
    pub const fn is_invalid(self) -> bool {
        matches!(self, RovState::InvalidOrigin | RovState::InvalidLength)
    }
}

impl fmt::Display for RovState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One Validated ROA Payload: `prefix` may be originated by `asn` with any length up to
/// `max_length`. Always well-formed (host bits clear, prefix length ≤ maxLength ≤ 32/128).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Vrp {
    prefix: IpNet,
    max_length: u8,
    asn: u32,
}

impl Vrp {
    /// A VRP, or why it is not one: [`SkipReason::HostBits`] when `prefix` has bits set past
    /// its length, [`SkipReason::BadMaxLength`] when `max_length` is shorter than the prefix or
    /// longer than the family allows. AS0 is allowed (RFC 6483 §4: it validates nothing).
    pub fn new(prefix: IpNet, max_length: u8, asn: u32) -> Result<Vrp, SkipReason> {
        if prefix.trunc() != prefix {
            return Err(SkipReason::HostBits);
        }
        if max_length < prefix.prefix_len() || max_length > prefix.max_prefix_len() {
            return Err(SkipReason::BadMaxLength);
        }
        Ok(Vrp {
            prefix,
            max_length,
            asn,
        })
    }

    /// The ROA prefix.
    pub fn prefix(&self) -> IpNet {
        self.prefix
    }

    /// The longest announced prefix length this VRP authorises.
    pub fn max_length(&self) -> u8 {
        self.max_length
    }

    /// The authorised origin AS (0: nobody).
    pub fn asn(&self) -> u32 {
        self.asn
    }
}

impl fmt::Display for Vrp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{} AS{}", self.prefix, self.max_length, self.asn)
    }
}

/// Why a VRP entry of a file was skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// The `roas` element is not a JSON object.
    NotObject,
    /// `asn` missing, not an integer / `"AS<n>"` / numeric string, or above 2^32-1.
    BadAsn,
    /// `prefix` missing, not a string, or not an address/length.
    BadPrefix,
    /// `prefix` has bits set past its length (e.g. `192.0.2.1/24`).
    HostBits,
    /// `maxLength` missing, not an integer, shorter than the prefix or longer than 32/128.
    BadMaxLength,
}

impl SkipReason {
    /// Every reason, in a stable order (the index of [`LoadReport::skipped`]).
    pub const ALL: [SkipReason; 5] = [
        SkipReason::NotObject,
        SkipReason::BadAsn,
        SkipReason::BadPrefix,
        SkipReason::HostBits,
        SkipReason::BadMaxLength,
    ];

    /// The stable snake_case name, for logs and metric labels.
    pub const fn as_str(self) -> &'static str {
        match self {
            SkipReason::NotObject => "not_object",
            SkipReason::BadAsn => "bad_asn",
            SkipReason::BadPrefix => "bad_prefix",
            SkipReason::HostBits => "host_bits",
            SkipReason::BadMaxLength => "bad_max_length",
        }
    }

    const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What loading a VRP file found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LoadReport {
    /// Elements of the `roas` array.
    pub entries: usize,
    /// Distinct VRPs in the resulting set (IPv4 + IPv6).
    pub loaded: usize,
    /// Of those, IPv4.
    pub loaded_v4: usize,
    /// Of those, IPv6.
    pub loaded_v6: usize,
    /// Well-formed entries equal to an earlier one (merged, not counted in `loaded`).
    pub duplicates: usize,
    /// Skipped entries per reason, indexed like [`SkipReason::ALL`].
    pub skipped: [usize; 5],
    /// The first [`LoadReport::MAX_EXAMPLES`] skipped entries, as `roas[i]: reason: detail`.
    pub examples: Vec<String>,
}

impl LoadReport {
    /// How many skipped entries are described in `examples`.
    pub const MAX_EXAMPLES: usize = 5;

    /// Skipped entries for one reason.
    pub fn skipped_for(&self, reason: SkipReason) -> usize {
        self.skipped[reason.index()]
    }

    /// All skipped entries.
    pub fn skipped_total(&self) -> usize {
        self.skipped.iter().sum()
    }

    fn skip(&mut self, index: usize, reason: SkipReason, detail: impl FnOnce() -> String) {
        self.skipped[reason.index()] += 1;
        if self.examples.len() < Self::MAX_EXAMPLES {
            self.examples
                .push(format!("roas[{index}]: {}: {}", reason.as_str(), detail()));
        }
    }
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} entries: {} VRPs loaded ({} IPv4, {} IPv6), {} duplicates, {} skipped",
            self.entries,
            self.loaded,
            self.loaded_v4,
            self.loaded_v6,
            self.duplicates,
            self.skipped_total()
        )?;
        let mut first = true;
        for reason in SkipReason::ALL {
            let n = self.skipped_for(reason);
            if n > 0 {
                f.write_str(if first { " (" } else { ", " })?;
                write!(f, "{reason}: {n}")?;
                first = false;
            }
        }
        if !first {
            f.write_str(")")?;
        }
        Ok(())
    }
}

/// Why a VRP file could not be used at all.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// Not JSON, not a JSON object, or `roas` is not an array.
    #[error("not a VRP JSON file: {0}")]
    Json(#[from] serde_json::Error),
    /// A JSON object without a top-level `roas` member.
    #[error(
        "no top-level `roas` array (expected Routinator `json`/`jsonext` or rpki-client `json` \
         output)"
    )]
    NoRoas,
}

/// Errors of [`VrpFile::load`], naming the file.
#[derive(Debug, thiserror::Error)]
pub enum RpkiError {
    /// The file could not be stat'ed or read.
    #[error("VRP file {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: io::Error,
    },
    /// The file was read but is not a usable VRP file.
    #[error("VRP file {}: {source}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// Cause.
        source: ParseError,
    },
}

/// One VRP of a prefix, as stored: 8 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Entry {
    asn: u32,
    max_length: u8,
}

/// A slice of [`VrpSet::entries`]: the VRPs of one prefix.
#[derive(Debug, Clone, Copy)]
struct Span {
    start: u32,
    len: u32,
}

/// An immutable set of VRPs indexed for origin validation.
#[derive(Clone, Default)]
pub struct VrpSet {
    v4: PrefixMap<Ipv4Net, Span>,
    v6: PrefixMap<Ipv6Net, Span>,
    entries: Vec<Entry>,
    len_v4: usize,
    len_v6: usize,
}

impl fmt::Debug for VrpSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VrpSet")
            .field("len_v4", &self.len_v4)
            .field("len_v6", &self.len_v6)
            .finish_non_exhaustive()
    }
}

/// What a walk over the covering VRPs has found so far.
#[derive(Default)]
struct Walk {
    covered: bool,
    origin_matched: bool,
}

impl Walk {
    /// Looks at the VRPs of one covering prefix; true when one of them makes the route valid.
    #[inline]
    fn visit(&mut self, vrps: &[Entry], len: u8, origin: Option<u32>) -> bool {
        self.covered = true;
        let Some(origin) = origin else {
            return false;
        };
        if origin == 0 {
            // AS0 is never a valid origin and an AS0 VRP must never validate anything.
            return false;
        }
        // A prefix's VRPs are sorted by (ASN, maxLength): binary search, so a prefix with
        // thousands of VRPs costs no more than a few comparisons.
        let from = vrps.partition_point(|e| e.asn < origin);
        for e in vrps[from..].iter().take_while(|e| e.asn == origin) {
            if len <= e.max_length {
                return true;
            }
            self.origin_matched = true;
        }
        false
    }

    fn finish(self) -> RovState {
        if !self.covered {
            RovState::NotFound
        } else if self.origin_matched {
            RovState::InvalidLength
        } else {
            RovState::InvalidOrigin
        }
    }
}

impl VrpSet {
    /// An empty set: every route is [`RovState::NotFound`].
    pub fn new() -> Self {
        Self::default()
    }

    /// A set of the given VRPs (duplicates merged).
    pub fn from_vrps(vrps: impl IntoIterator<Item = Vrp>) -> Self {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for v in vrps {
            let e = Entry {
                asn: v.asn,
                max_length: v.max_length,
            };
            match v.prefix {
                IpNet::V4(p) => v4.push((p, e)),
                IpNet::V6(p) => v6.push((p, e)),
            }
        }
        Self::build(v4, v6).0
    }

    /// Builds the tries; returns the set and the number of duplicates merged.
    fn build(mut v4: Vec<(Ipv4Net, Entry)>, mut v6: Vec<(Ipv6Net, Entry)>) -> (Self, usize) {
        let before = v4.len() + v6.len();
        v4.sort_unstable();
        v4.dedup();
        v6.sort_unstable();
        v6.dedup();
        let mut set = VrpSet {
            entries: Vec::with_capacity(v4.len() + v6.len()),
            len_v4: v4.len(),
            len_v6: v6.len(),
            ..Self::default()
        };
        let dups = before - set.len();
        fill(&mut set.v4, &mut set.entries, &v4);
        fill(&mut set.v6, &mut set.entries, &v6);
        (set, dups)
    }

    /// Parses a VRP file's bytes (Routinator `json`/`jsonext`, rpki-client `json`).
    pub fn from_json(bytes: &[u8]) -> Result<(VrpSet, LoadReport), ParseError> {
        let file: FileShape = serde_json::from_slice(bytes)?;
        let list = file.roas.ok_or(ParseError::NoRoas)?;
        let RoaList { v4, v6, mut report } = list;
        let (set, duplicates) = Self::build(v4, v6);
        report.duplicates = duplicates;
        report.loaded = set.len();
        report.loaded_v4 = set.len_v4;
        report.loaded_v6 = set.len_v6;
        Ok((set, report))
    }

    /// The union of two sets (duplicates merged).
    pub fn union(&self, other: &VrpSet) -> VrpSet {
        VrpSet::from_vrps(self.iter().chain(other.iter()))
    }

    /// Distinct VRPs.
    pub fn len(&self) -> usize {
        self.len_v4 + self.len_v6
    }

    /// Whether the set has no VRP.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// RFC 6811 origin validation of a route for `prefix` originated by `origin`: `None` when
    /// the route has no single origin AS (AS_SET or empty AS path), which matches no VRP.
    ///
    /// Covering VRPs are those whose prefix equals or is less specific than `prefix`. None:
    /// [`RovState::NotFound`]. One with `asn == origin` (never AS0) and `maxLength ≥` the
    /// route's length: [`RovState::Valid`]. Otherwise [`RovState::InvalidLength`] when a
    /// covering VRP has the origin AS, else [`RovState::InvalidOrigin`]. Host bits of `prefix`
    /// are ignored.
    #[inline]
    pub fn validate(&self, prefix: &IpNet, origin: Option<u32>) -> RovState {
        match prefix {
            IpNet::V4(p) => walk_lpm(&self.v4, &self.entries, &p.trunc(), origin),
            IpNet::V6(p) => walk_lpm(&self.v6, &self.entries, &p.trunc(), origin),
        }
    }

    /// Every VRP, IPv4 first, each family in prefix order.
    pub fn iter(&self) -> impl Iterator<Item = Vrp> + '_ {
        let v4 = self
            .v4
            .iter()
            .flat_map(|(p, s)| self.vrps_of(IpNet::V4(p), s));
        let v6 = self
            .v6
            .iter()
            .flat_map(|(p, s)| self.vrps_of(IpNet::V6(p), s));
        v4.chain(v6)
    }

    fn vrps_of<'a>(&'a self, prefix: IpNet, s: &Span) -> impl Iterator<Item = Vrp> + 'a {
        slice(&self.entries, s).iter().map(move |e| Vrp {
            prefix,
            max_length: e.max_length,
            asn: e.asn,
        })
    }

    /// [`VrpSet::validate`] for a route's AS path (its origin when it is a single AS).
    pub fn validate_path(&self, prefix: &IpNet, path: &AsPath) -> RovState {
        self.validate(prefix, path.origin_asn())
    }

    /// Every VRP covering `prefix`, least specific first: the VRPs behind a validation result,
    /// for event descriptions and the API.
    pub fn covering(&self, prefix: &IpNet) -> Vec<Vrp> {
        match prefix {
            IpNet::V4(p) => self
                .v4
                .cover(&p.trunc())
                .flat_map(|(k, s)| self.vrps_of(IpNet::V4(k), s))
                .collect(),
            IpNet::V6(p) => self
                .v6
                .cover(&p.trunc())
                .flat_map(|(k, s)| self.vrps_of(IpNet::V6(k), s))
                .collect(),
        }
    }
}

/// Inserts sorted, deduplicated (prefix, entry) pairs: one trie entry per prefix.
fn fill<P: Prefix + Copy + Eq>(
    map: &mut PrefixMap<P, Span>,
    entries: &mut Vec<Entry>,
    sorted: &[(P, Entry)],
) {
    let mut i = 0;
    while i < sorted.len() {
        let prefix = sorted[i].0;
        let start = entries.len();
        while i < sorted.len() && sorted[i].0 == prefix {
            entries.push(sorted[i].1);
            i += 1;
        }
        // Fewer than 2^32 entries: a JSON file that large would not fit in memory first.
        let span = Span {
            start: start as u32,
            len: (entries.len() - start) as u32,
        };
        map.insert(prefix, span);
    }
}

#[inline]
fn slice<'a>(entries: &'a [Entry], s: &Span) -> &'a [Entry] {
    &entries[s.start as usize..(s.start + s.len) as usize]
}

/// Walks the covering prefixes most specific first with `get_lpm`.
#[inline]
fn walk_lpm<P: Prefix>(
    map: &PrefixMap<P, Span>,
    entries: &[Entry],
    prefix: &P,
    origin: Option<u32>,
) -> RovState {
    let len = prefix.prefix_len();
    let mut walk = Walk::default();
    let Some((mut key, mut span)) = map.get_lpm(prefix) else {
        return RovState::NotFound;
    };
    loop {
        if walk.visit(slice(entries, span), len, origin) {
            return RovState::Valid;
        }
        let klen = key.prefix_len();
        if klen == 0 {
            break;
        }
        match map.get_lpm(&P::from_repr_len(key.repr(), klen - 1)) {
            Some((k, s)) => {
                key = k;
                span = s;
            }
            None => break,
        }
    }
    walk.finish()
}

// ---------------------------------------------------------------------------------------------
// Parsing: a streaming visitor over `roas`, so a 500k-entry file is never held as a JSON tree
// and one bad entry costs one count, not the file.

/// The top level of all three formats: only `roas` is kept, other members are skipped.
struct FileShape {
    roas: Option<RoaList>,
}

impl<'de> Deserialize<'de> for FileShape {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // `deserialize_map`, not a derived struct: serde_json would also accept a JSON array
        // as a struct written positionally.
        d.deserialize_map(FileVisitor)
    }
}

/// Top-level member names.
#[derive(Deserialize)]
#[serde(field_identifier)]
enum TopField {
    #[serde(rename = "roas")]
    Roas,
    #[serde(other)]
    Other,
}

struct FileVisitor;

impl<'de> Visitor<'de> for FileVisitor {
    type Value = FileShape;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object with a `roas` array (a VRP file)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<FileShape, A::Error> {
        let mut roas: Option<Option<RoaList>> = None;
        while let Some(k) = map.next_key::<TopField>()? {
            match k {
                TopField::Roas if roas.is_some() => {
                    return Err(de::Error::duplicate_field("roas"));
                }
                // `"roas": null` counts as no `roas`.
                TopField::Roas => roas = Some(map.next_value()?),
                TopField::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(FileShape {
            roas: roas.flatten(),
        })
    }
}

/// The parsed `roas` array: well-formed VRPs per family, and the report so far.
struct RoaList {
    v4: Vec<(Ipv4Net, Entry)>,
    v6: Vec<(Ipv6Net, Entry)>,
    report: LoadReport,
}

impl<'de> Deserialize<'de> for RoaList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_seq(RoaListVisitor)
    }
}

struct RoaListVisitor;

impl<'de> Visitor<'de> for RoaListVisitor {
    type Value = RoaList;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("`roas` to be an array of VRP objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RoaList, A::Error> {
        let mut list = RoaList {
            v4: Vec::with_capacity(seq.size_hint().unwrap_or(0)),
            v6: Vec::new(),
            report: LoadReport::default(),
        };
        while let Some(raw) = seq.next_element::<RawEntry>()? {
            let index = list.report.entries;
            list.report.entries += 1;
            match raw.into_vrp() {
                Ok(v) => {
                    let e = Entry {
                        asn: v.asn,
                        max_length: v.max_length,
                    };
                    match v.prefix {
                        IpNet::V4(p) => list.v4.push((p, e)),
                        IpNet::V6(p) => list.v6.push((p, e)),
                    }
                }
                Err((reason, detail)) => list.report.skip(index, reason, || detail),
            }
        }
        Ok(list)
    }
}

/// One element of `roas`, kept only as far as validation needs it.
enum RawEntry {
    Object {
        asn: Option<serde_json::Value>,
        prefix: Option<serde_json::Value>,
        max_length: Option<serde_json::Value>,
    },
    NotObject(&'static str),
}

impl<'de> Deserialize<'de> for RawEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(RawEntryVisitor)
    }
}

/// Member names of a VRP object that matter; the rest are skipped without being built.
#[derive(Deserialize)]
#[serde(field_identifier)]
enum Field {
    #[serde(rename = "asn")]
    Asn,
    #[serde(rename = "prefix")]
    Prefix,
    #[serde(rename = "maxLength")]
    MaxLength,
    #[serde(other)]
    Other,
}

struct RawEntryVisitor;

impl<'de> Visitor<'de> for RawEntryVisitor {
    type Value = RawEntry;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a VRP object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawEntry, A::Error> {
        let (mut asn, mut prefix, mut max_length) = (None, None, None);
        while let Some(k) = map.next_key::<Field>()? {
            // A repeated member: the last one wins, as in most JSON readers.
            match k {
                Field::Asn => asn = Some(map.next_value()?),
                Field::Prefix => prefix = Some(map.next_value()?),
                Field::MaxLength => max_length = Some(map.next_value()?),
                Field::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(RawEntry::Object {
            asn,
            prefix,
            max_length,
        })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawEntry, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(RawEntry::NotObject("an array"))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<RawEntry, E> {
        Ok(RawEntry::NotObject("a boolean"))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<RawEntry, E> {
        Ok(RawEntry::NotObject("a number"))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<RawEntry, E> {
        Ok(RawEntry::NotObject("a number"))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<RawEntry, E> {
        Ok(RawEntry::NotObject("a number"))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<RawEntry, E> {
        Ok(RawEntry::NotObject("a string"))
    }

    fn visit_unit<E: de::Error>(self) -> Result<RawEntry, E> {
        Ok(RawEntry::NotObject("null"))
    }
}

impl RawEntry {
    fn into_vrp(self) -> Result<Vrp, (SkipReason, String)> {
        let (asn, prefix, max_length) = match self {
            RawEntry::Object {
                asn,
                prefix,
                max_length,
            } => (asn, prefix, max_length),
            RawEntry::NotObject(what) => {
                return Err((SkipReason::NotObject, format!("{what}, not an object")))
            }
        };
        let asn = match asn {
            None => return Err((SkipReason::BadAsn, "no `asn`".into())),
            Some(v) => parse_asn(&v).ok_or_else(|| (SkipReason::BadAsn, format!("asn {v}")))?,
        };
        let prefix = match prefix {
            None => return Err((SkipReason::BadPrefix, "no `prefix`".into())),
            Some(serde_json::Value::String(s)) => s
                .parse::<IpNet>()
                .map_err(|_| (SkipReason::BadPrefix, format!("prefix {s:?}")))?,
            Some(v) => return Err((SkipReason::BadPrefix, format!("prefix {v}"))),
        };
        let max_length = match max_length {
            None => {
                return Err((
                    SkipReason::BadMaxLength,
                    format!("{prefix}: no `maxLength`"),
                ))
            }
            Some(v) => v
                .as_u64()
                .and_then(|n| u8::try_from(n).ok())
                .ok_or_else(|| (SkipReason::BadMaxLength, format!("{prefix}: maxLength {v}")))?,
        };
        Vrp::new(prefix, max_length, asn).map_err(|reason| {
            let detail = match reason {
                SkipReason::HostBits => format!("prefix {prefix} has host bits set"),
                _ => format!("{prefix}: maxLength {max_length}"),
            };
            (reason, detail)
        })
    }
}

/// `13335`, `"AS13335"` (any case) or `"13335"`.
fn parse_asn(v: &serde_json::Value) -> Option<u32> {
    match v {
        serde_json::Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        serde_json::Value::String(s) => {
            let digits = match s.get(..2) {
                Some(p) if p.eq_ignore_ascii_case("AS") => &s[2..],
                _ => s.as_str(),
            };
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            digits.parse().ok()
        }
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------

/// A VRP file the daemon polls: remembers the modification time and size it last loaded, so
/// [`VrpFile::changed`] is one `stat`.
#[derive(Debug, Clone)]
pub struct VrpFile {
    /// The file.
    pub path: PathBuf,
    /// Modification time seen just before the last load (`None`: never loaded).
    pub last_modified: Option<SystemTime>,
    /// Size seen just before the last load (`None`: never loaded).
    pub len: Option<u64>,
}

impl VrpFile {
    /// A file not loaded yet: [`VrpFile::changed`] is true while it exists.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        VrpFile {
            path: path.into(),
            last_modified: None,
            len: None,
        }
    }

    /// Whether the file's modification time or size differs from what the last load saw (or
    /// nothing was loaded yet). Errors when the file cannot be stat'ed (e.g. it is missing).
    pub fn changed(&self) -> io::Result<bool> {
        let (mtime, len) = stat(&self.path)?;
        Ok(self.last_modified != Some(mtime) || self.len != Some(len))
    }

    /// Reads and parses the file. The modification time and size are taken *before* reading, so
    /// a writer that is still busy shows up as a change at the next poll. They are remembered
    /// when the file could be read, even if it does not parse, so a broken file is not re-read
    /// at every poll but as soon as it is rewritten; on an I/O error nothing is remembered.
    pub fn load(&mut self) -> Result<(VrpSet, LoadReport), RpkiError> {
        let io_err = |source| RpkiError::Io {
            path: self.path.clone(),
            source,
        };
        let (mtime, len) = stat(&self.path).map_err(io_err)?;
        let bytes = fs::read(&self.path).map_err(io_err)?;
        self.last_modified = Some(mtime);
        self.len = Some(len);
        VrpSet::from_json(&bytes).map_err(|source| RpkiError::Parse {
            path: self.path.clone(),
            source,
        })
    }
}

fn stat(path: &Path) -> io::Result<(SystemTime, u64)> {
    let m = fs::metadata(path)?;
    Ok((m.modified()?, m.len()))
}
