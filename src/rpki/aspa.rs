//! ASPA-based AS_PATH verification: draft-ietf-sidrops-aspa-verification-27 (July 2026), §5.2
//! to §5.6 (the procedure is unchanged in -28 of August 2026, and its ramp form dates from -16).
//! Pure: an [`AspaSet`] is built from (customer, providers) records, whichever source they came
//! from (an RTR v2 cache, an rpki-client or Routinator JSON file), and verifies paths.
//!
//! # What the draft says, as implemented here
//!
//! - **COMPRESSED_AS_PATH** (§5.2): consecutive duplicates (prepending) removed, so `64500
//!   64500 64501` is the two-AS path `64500 64501` (a loop such as `A B A` is not reduced).
//!   Indexed as the draft does: AS(1) is the origin, AS(N) the AS that sent the route.
//! - **`authorized(x, y)`** (§5.3): "No Attestation" when `x` has no ASPA, "Provider+" when `y`
//!   is in `x`'s provider set, "Not Provider+" otherwise. AS0 in a provider set has no influence
//!   (§4): it matches no AS of a path.
//! - **Ramp bounds** (§5.4): `max_up` = the lowest I with `authorized(AS(I), AS(I+1))` "Not
//!   Provider+" (N if none); `min_up` the same with "No Attestation" too; `max_down` = N − J + 1
//!   for the highest J with `authorized(AS(J), AS(J−1))` "Not Provider+" (N if none); `min_down`
//!   likewise.
//! - **Upstream** (§5.5: a route from a customer or a lateral peer, received by a route server
//!   from its client, or by a client from its route server): an AS_SET is Invalid;
//!   `max_up < N` Invalid; `min_up < N` Unknown; else Valid.
//! - **Downstream** (§5.6: a route from a provider): an AS_SET is Invalid; `max_up + max_down <
//!   N` Invalid; `min_up + min_down < N` Unknown; else Valid.
//!
//! What a monitor does differently from a router, and why:
//!
//! - Steps 1 and 2 of both procedures (an empty AS_PATH is Invalid; so is one whose most
//!   recently added AS is not the neighbour AS) are the receiving router's checks (§5.1 places
//!   them before verification). A monitor sees routes from collector peers and route servers
//!   that do not prepend themselves, so the neighbour check would raise leaks that are not
//!   there; an empty path (a route from inside the peer's AS) is not verified at all
//!   ([`AspaSet::verify`] answers `None`).
//! - The procedure is the caller's choice ([`Procedure`]): by the peer's BGP Role (RFC 9234, as
//!   §6.3 recommends) when it is known, else [`Procedure::Downstream`], the procedure that cannot
//!   raise a false leak (every path Invalid under it is Invalid under the upstream procedure
//!   too; §6.4 allows it where the relationship is not known for sure).
//!
//! Per-AFI records (older drafts and StayRTR 0.5.1's `provider_authorizations` carry one
//! provider list per address family) are merged by customer: the union of the providers, which
//! is what the current draft's U-SPAS is (§7.1: "the union of Providers for a CAS for both IPv4
//! and IPv6").

use std::fmt;

use rustc_hash::FxHashMap;
use serde::Serialize;

/// The result of a hop check, `authorized(customer, provider)` (draft §5.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hop {
    /// The customer AS has no ASPA.
    NoAttestation,
    /// The second AS is in the customer's provider set.
    ProviderPlus,
    /// The customer has an ASPA and the second AS is not in it.
    NotProviderPlus,
}

/// Which verification procedure (draft §5.5 and §5.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Procedure {
    /// For a route received from a customer, a lateral peer or a route server.
    Upstream,
    /// For a route received from a provider; also the default when the peer's role is unknown.
    Downstream,
}

impl Procedure {
    /// The stable name (`upstream`, `downstream`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Procedure::Upstream => "upstream",
            Procedure::Downstream => "downstream",
        }
    }
}

/// The outcome of a path verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AspaState {
    /// Every hop that matters is attested.
    Valid,
    /// Not enough ASPAs to tell.
    Unknown,
    /// The path cannot be valley-free given the attested providers (a leak or a forged path).
    Invalid,
}

impl AspaState {
    /// Every state, in a stable order (metric labels).
    pub const ALL: [AspaState; 3] = [AspaState::Valid, AspaState::Unknown, AspaState::Invalid];

    /// The stable name (`valid`, `unknown`, `invalid`).
    pub const fn as_str(self) -> &'static str {
        match self {
            AspaState::Valid => "valid",
            AspaState::Unknown => "unknown",
            AspaState::Invalid => "invalid",
        }
    }
}

impl fmt::Display for AspaState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A verification's outcome with what an operator needs to act on an Invalid one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// The outcome.
    pub state: AspaState,
    /// For Invalid, the AS that leaked: AS(k+1) for the lowest k whose hop to AS(k+1) is "Not
    /// Provider+" (the first AS that took the route from a non-customer and passed it on);
    /// `None` for an AS_SET path and for Valid and Unknown.
    pub leaker: Option<u32>,
    /// The path had an AS_SET (Invalid by rule, not by a hop).
    pub as_set: bool,
}

/// A set of ASPAs: customer AS → its authorised providers (sorted, no duplicates).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct AspaSet {
    by_customer: FxHashMap<u32, Box<[u32]>>,
}

impl fmt::Debug for AspaSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AspaSet({} customers)", self.by_customer.len())
    }
}

impl AspaSet {
    /// An empty set (no AS has an ASPA: every path is Unknown, or Valid when short).
    pub fn new() -> Self {
        Self::default()
    }

    /// A set from (customer, providers) records; several records of one customer (one per
    /// address family, or from several sources) are merged into the union of their providers.
    pub fn from_records<I, P>(records: I) -> Self
    where
        I: IntoIterator<Item = (u32, P)>,
        P: IntoIterator<Item = u32>,
    {
        let mut acc: FxHashMap<u32, Vec<u32>> = FxHashMap::default();
        for (customer, providers) in records {
            acc.entry(customer).or_default().extend(providers);
        }
        let by_customer = acc
            .into_iter()
            .map(|(c, mut p)| {
                p.sort_unstable();
                p.dedup();
                (c, p.into_boxed_slice())
            })
            .collect();
        AspaSet { by_customer }
    }

    /// The union of two sets (a VRP file and an RTR cache both configured).
    pub fn union(&self, other: &AspaSet) -> AspaSet {
        AspaSet::from_records(
            self.iter()
                .chain(other.iter())
                .map(|(c, p)| (c, p.iter().copied())),
        )
    }

    /// Customers with an ASPA.
    pub fn len(&self) -> usize {
        self.by_customer.len()
    }

    /// Whether no AS has an ASPA.
    pub fn is_empty(&self) -> bool {
        self.by_customer.is_empty()
    }

    /// The providers `customer` authorised, sorted; `None`: it has no ASPA.
    pub fn providers(&self, customer: u32) -> Option<&[u32]> {
        self.by_customer.get(&customer).map(|p| &p[..])
    }

    /// Every (customer, providers) record, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &[u32])> + '_ {
        self.by_customer.iter().map(|(c, p)| (*c, &p[..]))
    }

    /// The customers whose record differs between `self` and `other` (added, removed or
    /// changed), sorted.
    pub fn changed_customers(&self, other: &AspaSet) -> Vec<u32> {
        let mut out: Vec<u32> = self
            .iter()
            .filter(|(c, p)| other.providers(*c) != Some(*p))
            .map(|(c, _)| c)
            .chain(
                other
                    .iter()
                    .filter(|(c, _)| self.providers(*c).is_none())
                    .map(|(c, _)| c),
            )
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The hop check `authorized(customer, provider)`.
    #[inline]
    pub fn hop(&self, customer: u32, provider: u32) -> Hop {
        match self.by_customer.get(&customer) {
            None => Hop::NoAttestation,
            Some(p) if p.binary_search(&provider).is_ok() => Hop::ProviderPlus,
            Some(_) => Hop::NotProviderPlus,
        }
    }

    /// Verifies a path given left to right as it is in the AS_PATH (`asns[0]` the AS that sent
    /// the route, the last the origin); `as_set`: the path has an AS_SET. `None` for an empty
    /// path with no AS_SET (a route from inside the peer's AS: nothing to verify).
    pub fn verify(&self, asns: &[u32], as_set: bool, procedure: Procedure) -> Option<Verdict> {
        if as_set {
            return Some(Verdict {
                state: AspaState::Invalid,
                leaker: None,
                as_set: true,
            });
        }
        if asns.is_empty() {
            return None;
        }
        // AS(1) = origin … AS(N) = sender: the path reversed, prepends collapsed. Paths are
        // short; a fixed buffer keeps verification allocation-free for all but absurd ones.
        let mut buf = [0u32; 32];
        let mut long = Vec::new();
        let mut n = 0;
        for &a in asns.iter().rev() {
            if n > 0 && last(&buf, &long, n) == a {
                continue;
            }
            if n < buf.len() {
                buf[n] = a;
            } else {
                if long.is_empty() {
                    long.extend_from_slice(&buf);
                }
                long.push(a);
            }
            n += 1;
        }
        let path: &[u32] = if n <= buf.len() { &buf[..n] } else { &long };
        Some(self.verify_collapsed(path, procedure))
    }

    /// The procedures on a collapsed path, `path[0]` = AS(1) the origin.
    fn verify_collapsed(&self, path: &[u32], procedure: Procedure) -> Verdict {
        let n = path.len();
        // Up-ramp: hops AS(i) → AS(i+1), i = 1..N-1 (0-based k = i-1).
        let mut max_up = n;
        let mut min_up = n;
        for k in 0..n.saturating_sub(1) {
            match self.hop(path[k], path[k + 1]) {
                Hop::ProviderPlus => {}
                Hop::NoAttestation => min_up = min_up.min(k + 1),
                Hop::NotProviderPlus => {
                    min_up = min_up.min(k + 1);
                    max_up = k + 1;
                    break;
                }
            }
        }
        let leaker = (max_up < n).then(|| path[max_up]);
        let valid = |state| Verdict {
            state,
            leaker: None,
            as_set: false,
        };
        match procedure {
            Procedure::Upstream => {
                if max_up < n {
                    Verdict {
                        state: AspaState::Invalid,
                        leaker,
                        as_set: false,
                    }
                } else if min_up < n {
                    valid(AspaState::Unknown)
                } else {
                    valid(AspaState::Valid)
                }
            }
            Procedure::Downstream => {
                if n <= 2 {
                    return valid(AspaState::Valid);
                }
                // Down-ramp: hops AS(j) → AS(j-1), from j = N down to 2.
                let mut max_down = n;
                let mut min_down = n;
                for j in (1..n).rev() {
                    match self.hop(path[j], path[j - 1]) {
                        Hop::ProviderPlus => {}
                        Hop::NoAttestation => min_down = min_down.min(n - j),
                        Hop::NotProviderPlus => {
                            min_down = min_down.min(n - j);
                            max_down = n - j;
                            break;
                        }
                    }
                }
                if max_up + max_down < n {
                    Verdict {
                        state: AspaState::Invalid,
                        leaker,
                        as_set: false,
                    }
                } else if min_up + min_down < n {
                    valid(AspaState::Unknown)
                } else {
                    valid(AspaState::Valid)
                }
            }
        }
    }
}

#[inline]
fn last(buf: &[u32; 32], long: &[u32], n: usize) -> u32 {
    if n <= buf.len() {
        buf[n - 1]
    } else {
        long[n - 1]
    }
}

#[cfg(test)]
mod tests;
