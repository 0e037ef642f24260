//! RPKI route origin validation (RFC 6811) against Validated ROA Payloads (VRPs) read from a JSON
//! file ([`file`]) or an RTR cache. Pure apart from [`VrpFile`], which only stats and reads the
//! file it is given: the daemon decides when to poll it, logs the [`LoadReport`] and keeps the
//! previous data on error. [`watch`] reports what changed in the ROAs and ASPAs of the
//! registered prefixes and origins.
//!
//! Loading (the three JSON formats, ASPAs, expiry times, bad input) is in [`file`].
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

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use prefix_trie::{Prefix, PrefixMap};
use serde::Serialize;

use crate::model::AsPath;

pub mod aspa;
pub mod data;
pub mod file;
pub mod metrics;
pub mod watch;

pub use data::{RpkiData, RpkiDelta};
pub use file::{AspaSkipReason, LoadReport, ParseError, RpkiError, SkipReason, VrpFile};

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
    /// Expiry time (unix seconds) of each of `entries`, [`file::NO_EXPIRY`] when unknown; empty
    /// when no VRP of the set has one (Routinator, RTR), so those sets cost nothing more.
    expires: Vec<u64>,
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

    /// A set of the given VRPs (duplicates merged), without expiry times.
    pub fn from_vrps(vrps: impl IntoIterator<Item = Vrp>) -> Self {
        Self::from_vrps_expiring(vrps.into_iter().map(|v| (v, None)))
    }

    /// A set of the given VRPs with their expiry times (unix seconds; `None`: unknown).
    /// Duplicates are merged, keeping the earliest known expiry time.
    pub fn from_vrps_expiring(vrps: impl IntoIterator<Item = (Vrp, Option<u64>)>) -> Self {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for (v, x) in vrps {
            let e = Entry {
                asn: v.asn,
                max_length: v.max_length,
            };
            let x = x.unwrap_or(file::NO_EXPIRY);
            match v.prefix {
                IpNet::V4(p) => v4.push((p, e, x)),
                IpNet::V6(p) => v6.push((p, e, x)),
            }
        }
        Self::build(v4, v6).0
    }

    /// Builds the tries; returns the set and the number of duplicates merged. Of duplicates
    /// (same prefix and entry) the one that sorts first stays: the earliest expiry time.
    fn build(
        mut v4: Vec<(Ipv4Net, Entry, u64)>,
        mut v6: Vec<(Ipv6Net, Entry, u64)>,
    ) -> (Self, usize) {
        let before = v4.len() + v6.len();
        v4.sort_unstable();
        v4.dedup_by(|b, a| a.0 == b.0 && a.1 == b.1);
        v6.sort_unstable();
        v6.dedup_by(|b, a| a.0 == b.0 && a.1 == b.1);
        let mut set = VrpSet {
            entries: Vec::with_capacity(v4.len() + v6.len()),
            len_v4: v4.len(),
            len_v6: v6.len(),
            ..Self::default()
        };
        let dups = before - set.len();
        let any_expiry =
            v4.iter().any(|x| x.2 != file::NO_EXPIRY) || v6.iter().any(|x| x.2 != file::NO_EXPIRY);
        let expires = any_expiry.then_some(&mut set.expires);
        let expires = fill(&mut set.v4, &mut set.entries, expires, &v4);
        fill(&mut set.v6, &mut set.entries, expires, &v6);
        (set, dups)
    }

    /// Parses a VRP file's bytes (Routinator `json`/`jsonext`, rpki-client `json`): its VRPs
    /// alone ([`file::parse`] keeps the ASPAs too).
    pub fn from_json(bytes: &[u8]) -> Result<(VrpSet, LoadReport), ParseError> {
        file::parse(bytes).map(|(data, report)| (data.vrps, report))
    }

    /// The union of two sets (duplicates merged, the earliest expiry time kept).
    pub fn union(&self, other: &VrpSet) -> VrpSet {
        VrpSet::from_vrps_expiring(self.iter_expiring().chain(other.iter_expiring()))
    }

    /// When `vrp` expires (unix seconds): `None` when it is not in the set or its source gave
    /// no expiry time. Merged duplicates: the earliest.
    pub fn expires(&self, vrp: &Vrp) -> Option<u64> {
        if self.expires.is_empty() {
            return None;
        }
        let span = match vrp.prefix {
            IpNet::V4(p) => self.v4.get(&p),
            IpNet::V6(p) => self.v6.get(&p),
        }?;
        let e = Entry {
            asn: vrp.asn,
            max_length: vrp.max_length,
        };
        let i = slice(&self.entries, span).binary_search(&e).ok()?;
        let x = self.expires[span.start as usize + i];
        (x != file::NO_EXPIRY).then_some(x)
    }

    /// Whether some VRP of the set has an expiry time.
    pub fn has_expiry(&self) -> bool {
        !self.expires.is_empty()
    }

    /// Every VRP with its expiry time, as [`VrpSet::iter`].
    pub fn iter_expiring(&self) -> impl Iterator<Item = (Vrp, Option<u64>)> + '_ {
        let v4 = self
            .v4
            .iter()
            .flat_map(|(p, s)| self.expiring_of(IpNet::V4(p), s));
        let v6 = self
            .v6
            .iter()
            .flat_map(|(p, s)| self.expiring_of(IpNet::V6(p), s));
        v4.chain(v6)
    }

    fn expiring_of<'a>(
        &'a self,
        prefix: IpNet,
        s: &Span,
    ) -> impl Iterator<Item = (Vrp, Option<u64>)> + 'a {
        let start = s.start as usize;
        slice(&self.entries, s)
            .iter()
            .enumerate()
            .map(move |(i, e)| {
                let x = self
                    .expires
                    .get(start + i)
                    .copied()
                    .filter(|&x| x != file::NO_EXPIRY);
                (
                    Vrp {
                        prefix,
                        max_length: e.max_length,
                        asn: e.asn,
                    },
                    x,
                )
            })
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

    /// Every VRP whose prefix lies strictly inside `prefix` (more specific), in prefix order:
    /// with [`VrpSet::covering`], every VRP that overlaps it.
    pub fn inside(&self, prefix: &IpNet) -> Vec<Vrp> {
        match prefix {
            IpNet::V4(p) => {
                let p = p.trunc();
                self.v4
                    .children(&p)
                    .filter(|(k, _)| *k != p)
                    .flat_map(|(k, s)| self.vrps_of(IpNet::V4(k), s))
                    .collect()
            }
            IpNet::V6(p) => {
                let p = p.trunc();
                self.v6
                    .children(&p)
                    .filter(|(k, _)| *k != p)
                    .flat_map(|(k, s)| self.vrps_of(IpNet::V6(k), s))
                    .collect()
            }
        }
    }
}

/// Inserts sorted, deduplicated (prefix, entry, expiry) triples: one trie entry per prefix; the
/// expiry times go to `expires` when it is given (returned for the next family).
fn fill<'e, P: Prefix + Copy + Eq>(
    map: &mut PrefixMap<P, Span>,
    entries: &mut Vec<Entry>,
    mut expires: Option<&'e mut Vec<u64>>,
    sorted: &[(P, Entry, u64)],
) -> Option<&'e mut Vec<u64>> {
    let mut i = 0;
    while i < sorted.len() {
        let prefix = sorted[i].0;
        let start = entries.len();
        while i < sorted.len() && sorted[i].0 == prefix {
            entries.push(sorted[i].1);
            if let Some(x) = expires.as_deref_mut() {
                x.push(sorted[i].2);
            }
            i += 1;
        }
        // Fewer than 2^32 entries: a JSON file that large would not fit in memory first.
        let span = Span {
            start: start as u32,
            len: (entries.len() - start) as u32,
        };
        map.insert(prefix, span);
    }
    expires
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
