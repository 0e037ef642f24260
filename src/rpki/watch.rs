//! The ROA and ASPA watch: what changed in the RPKI data that concerns the registry, and which
//! ROAs covering a registered prefix are about to expire. Pure: the engine task calls it with
//! the registry, the data before and after a change (the union of the sources, as the engine
//! validates with it) and the wall-clock time, and turns the [`WatchEvent`]s into history events,
//! log lines and metrics.
//!
//! # What is compared
//!
//! - **ROAs (VRPs) overlapping a registered prefix**: those that *cover* it (the ROA prefix
//!   equals it or is less specific: they decide the route origin validation of the registered
//!   prefix itself, [`Relation::Covering`]) and those that lie *inside* it (more specific: they
//!   decide the validation of more-specific announcements, which an operator deaggregating or a
//!   hijacker announcing a more-specific both meet, [`Relation::Inside`]). A VRP is (prefix,
//!   maxLength, origin AS). Between the old and the new set, per registered prefix:
//!   - `roa_changed`: a VRP removed and one added with the **same prefix and origin AS** and a
//!     different maxLength (matched first), or with the **same prefix and maxLength** and a
//!     different origin AS (matched among the rest). Each VRP is matched at most once, in VRP
//!     order (prefix, maxLength, AS).
//!   - `roa_removed` / `roa_added`: every other VRP only in the old / only in the new set.
//!
//!   A ROA overlapping several registered prefixes (nested registrations) gives one event per
//!   registered prefix.
//! - **ASPAs of registered origin ASes** (the expected origins of the locations): `aspa_changed`
//!   when a customer's record was added (no providers before), removed (none after) or its
//!   provider set changed, with the sets before and after; one event per location expecting the
//!   AS, on the location's first registered prefix (an ASPA concerns an AS, not a prefix).
//! - An unchanged set gives no event. With an [`RpkiDelta`] only the registered prefixes
//!   overlapping one of its prefixes and the origins among its customers are compared (an RTR
//!   update of three VRPs costs three trie lookups, not a pass over the registry); without one,
//!   every registered prefix and origin is.
//!
//! # Expiry
//!
//! Sources that carry expiry times (rpki-client's `expires`: the earliest notAfter / nextUpdate
//! of the ROA's certificate chain, manifests and CRLs) give each covering ROA a time. The
//! earliest per registered prefix is kept ([`RpkiWatch::earliest_expiry`], the metric
//! `routewatch_rpki_roa_expiry_timestamp_seconds`). A `roa_expiring` event is raised when a
//! covering ROA's time comes within the warning horizon (`[rpki] roa-expiry-warning-days`),
//! once per ROA per crossing: the ROA stays in a bounded set of warned ROAs while it is within
//! the horizon (a reload that still finds it there raises nothing; a renewal that moves its time
//! forward but still inside the horizon raises nothing either) and leaves it when its time moves
//! past the horizon or it is gone, so a later crossing warns again. rpki-client's times follow
//! the manifest and CRL cycle (often a day or two ahead), so with a horizon longer than that
//! cycle most covering ROAs warn once and then stay warned; the metric shows the time itself.

use std::collections::BTreeMap;
use std::fmt;

use ipnet::IpNet;
use rustc_hash::FxHashSet;
use serde::{Deserialize, Serialize};

use super::data::{RpkiData, RpkiDelta};
use super::{Vrp, VrpSet};
use crate::registry::{LocationId, PrefixId, Registry};

/// At most this many ROAs are remembered as warned; past it, further expiring ROAs are not
/// warned about (counted in [`RpkiWatch::dropped_warnings`]).
pub const MAX_WARNED: usize = 10_000;

/// How often the expiry check runs without a data change (the engine task's tick asks
/// [`RpkiWatch::expiry_due`]).
pub const EXPIRY_CHECK_INTERVAL_SECONDS: f64 = 60.0;

/// What a watch event reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WatchKind {
    /// A ROA overlapping a registered prefix appeared.
    RoaAdded,
    /// A ROA overlapping a registered prefix went away.
    RoaRemoved,
    /// A ROA overlapping a registered prefix changed its maxLength or origin AS.
    RoaChanged,
    /// A registered origin AS's ASPA was added, removed or its providers changed.
    AspaChanged,
    /// A ROA covering a registered prefix expires within the warning horizon.
    RoaExpiring,
}

impl WatchKind {
    /// Every kind, in a stable order (metric labels).
    pub const ALL: [WatchKind; 5] = [
        WatchKind::RoaAdded,
        WatchKind::RoaRemoved,
        WatchKind::RoaChanged,
        WatchKind::AspaChanged,
        WatchKind::RoaExpiring,
    ];

    /// The stable snake_case name (the event kind and the metric label).
    pub const fn as_str(self) -> &'static str {
        match self {
            WatchKind::RoaAdded => "roa_added",
            WatchKind::RoaRemoved => "roa_removed",
            WatchKind::RoaChanged => "roa_changed",
            WatchKind::AspaChanged => "aspa_changed",
            WatchKind::RoaExpiring => "roa_expiring",
        }
    }
}

impl fmt::Display for WatchKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a ROA relates to the registered prefix it is reported for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Relation {
    /// The ROA prefix equals the registered prefix or is less specific.
    Covering,
    /// The ROA prefix is more specific than the registered prefix.
    Inside,
}

/// A ROA (VRP) as an event reports it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RoaRecord {
    /// ROA prefix.
    pub prefix: IpNet,
    /// maxLength.
    pub max_length: u8,
    /// Authorised origin AS.
    pub asn: u32,
    /// When it expires (seconds since the epoch; RFC 3339 in JSON), when the source said.
    #[serde(with = "crate::time_fmt::serde::option")]
    pub expires: Option<f64>,
}

impl RoaRecord {
    fn of(vrp: &Vrp, set: &VrpSet) -> RoaRecord {
        RoaRecord {
            prefix: vrp.prefix(),
            max_length: vrp.max_length(),
            asn: vrp.asn(),
            expires: set.expires(vrp).map(|x| x as f64),
        }
    }
}

impl fmt::Display for RoaRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{} AS{}", self.prefix, self.max_length, self.asn)
    }
}

/// The RPKI details of a watch event (the `rpki` member of an event in the API); members that
/// do not apply to the kind are null.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WatchDetail {
    /// The ROA now: added, changed (after), expiring.
    pub roa: Option<RoaRecord>,
    /// The ROA before: removed, changed (before).
    pub previous_roa: Option<RoaRecord>,
    /// How the ROA relates to the registered prefix.
    pub relation: Option<Relation>,
    /// `aspa_changed`: the customer AS (the registered origin).
    pub customer: Option<u32>,
    /// `aspa_changed`: its providers now (null: no ASPA any more).
    pub providers: Option<Vec<u32>>,
    /// `aspa_changed`: its providers before (null: it had no ASPA).
    pub previous_providers: Option<Vec<u32>>,
}

/// One thing the watch reports.
#[derive(Debug, Clone, PartialEq)]
pub struct WatchEvent {
    /// What.
    pub kind: WatchKind,
    /// The location.
    pub location: String,
    /// The registered prefix (ASPA: the location's first).
    pub prefix: IpNet,
    /// The ROA or ASPA.
    pub detail: WatchDetail,
    /// In plain words.
    pub description: String,
}

/// The watch's state: the registry's origins, the expiry index and the warned ROAs.
#[derive(Debug, Default)]
pub struct RpkiWatch {
    horizon_seconds: f64,
    /// Registered origin AS → the locations expecting it, for the registry of `origins_of`.
    origins: BTreeMap<u32, Vec<LocationId>>,
    origins_of: Option<u64>,
    /// Per registered prefix: its covering ROAs with an expiry time, for the registry of
    /// `index_of`.
    expiring: Vec<Vec<(Vrp, u64)>>,
    index_of: Option<u64>,
    warned: FxHashSet<Vrp>,
    dropped: u64,
    last_check: Option<f64>,
}

impl RpkiWatch {
    /// A watch warning `warning_days` ahead of a covering ROA's expiry (0: no warnings).
    pub fn new(warning_days: u64) -> Self {
        RpkiWatch {
            horizon_seconds: warning_days as f64 * 86_400.0,
            ..Self::default()
        }
    }

    /// The warning horizon (`[rpki] roa-expiry-warning-days`, a configuration reload).
    pub fn set_warning_days(&mut self, warning_days: u64) {
        self.horizon_seconds = warning_days as f64 * 86_400.0;
    }

    /// Expiring ROAs not warned about because [`MAX_WARNED`] ROAs were warned already (per
    /// check).
    pub fn dropped_warnings(&self) -> u64 {
        self.dropped
    }

    fn origins(&mut self, registry: &Registry) -> &BTreeMap<u32, Vec<LocationId>> {
        if self.origins_of != Some(registry.generation()) {
            let mut m: BTreeMap<u32, Vec<LocationId>> = BTreeMap::new();
            for (i, l) in registry.locations().iter().enumerate() {
                for &asn in &l.origin_asns {
                    m.entry(asn).or_default().push(i as LocationId);
                }
            }
            self.origins = m;
            self.origins_of = Some(registry.generation());
        }
        &self.origins
    }

    /// The ROA and ASPA changes between `old` and `new` that concern `registry` (see the module
    /// documentation); `delta`: what changed (`None`: compare everything).
    pub fn changes(
        &mut self,
        registry: &Registry,
        old: &RpkiData,
        new: &RpkiData,
        delta: Option<&RpkiDelta>,
    ) -> Vec<WatchEvent> {
        let mut out = Vec::new();
        let ids: Vec<PrefixId> = match delta {
            None => (0..registry.prefixes().len() as PrefixId).collect(),
            Some(d) => {
                let mut v: Vec<PrefixId> = d
                    .vrp_prefixes
                    .iter()
                    .flat_map(|p| registry.overlapping(p))
                    .collect();
                v.sort_unstable();
                v.dedup();
                v
            }
        };
        for id in ids {
            roa_changes(registry, id, &old.vrps, &new.vrps, &mut out);
        }
        let origins = self.origins(registry);
        let customers: Vec<u32> = match delta {
            None => origins.keys().copied().collect(),
            Some(d) => d
                .aspa_customers
                .iter()
                .copied()
                .filter(|c| origins.contains_key(c))
                .collect(),
        };
        for c in customers {
            let (before, after) = (old.aspas.providers(c), new.aspas.providers(c));
            if before == after {
                continue;
            }
            let what = match (before, after) {
                (None, Some(a)) => format!("added: providers {}", asns(a)),
                (Some(b), None) => format!("removed (its providers were {})", asns(b)),
                (Some(b), Some(a)) => format!("changed: providers {} -> {}", asns(b), asns(a)),
                (None, None) => continue,
            };
            for &loc in origins.get(&c).map(Vec::as_slice).unwrap_or(&[]) {
                let l = &registry.locations()[loc as usize];
                let Some(&prefix) = l.prefixes.first() else {
                    continue;
                };
                out.push(WatchEvent {
                    kind: WatchKind::AspaChanged,
                    location: l.name.clone(),
                    prefix,
                    detail: WatchDetail {
                        customer: Some(c),
                        providers: after.map(<[u32]>::to_vec),
                        previous_providers: before.map(<[u32]>::to_vec),
                        ..WatchDetail::default()
                    },
                    description: format!(
                        "ASPA of AS{c} (an expected origin of location {}) {what}",
                        l.name
                    ),
                });
            }
        }
        out
    }

    /// Rebuilds the expiry index for `vrps` and `registry` (after a data change or a
    /// registry swap): one walk over the covering VRPs of each registered prefix, nothing when
    /// no VRP has an expiry time (Routinator, RTR).
    pub fn index(&mut self, registry: &Registry, vrps: &VrpSet) {
        self.index_of = Some(registry.generation());
        self.expiring.clear();
        if !vrps.has_expiry() {
            return;
        }
        self.expiring = registry
            .prefixes()
            .iter()
            .map(|p| {
                vrps.covering(&p.prefix)
                    .into_iter()
                    .filter_map(|v| vrps.expires(&v).map(|x| (v, x)))
                    .collect()
            })
            .collect();
    }

    /// Whether some registered prefix has a covering ROA with an expiry time in the index (else
    /// the expiry metric is all zeros and need not be set again).
    pub fn has_expiry_times(&self) -> bool {
        self.expiring.iter().any(|l| !l.is_empty())
    }

    /// Whether the index was built for this registry (else [`RpkiWatch::index`] is due).
    pub fn indexed_for(&self, registry: &Registry) -> bool {
        self.index_of == Some(registry.generation())
    }

    /// The earliest expiry time of the ROAs covering each registered prefix (indexed by
    /// [`PrefixId`]; `None`: no covering ROA with an expiry time).
    pub fn earliest_expiry(&self, registry: &Registry) -> Vec<Option<u64>> {
        (0..registry.prefixes().len())
            .map(|i| {
                self.expiring
                    .get(i)
                    .and_then(|l| l.iter().map(|&(_, x)| x).min())
            })
            .collect()
    }

    /// Whether the periodic expiry check is due at `now` (at most every
    /// [`EXPIRY_CHECK_INTERVAL_SECONDS`]).
    pub fn expiry_due(&self, now: f64) -> bool {
        self.last_check
            .is_none_or(|t| now - t >= EXPIRY_CHECK_INTERVAL_SECONDS || now < t)
    }

    /// `roa_expiring` events for the covering ROAs whose expiry time is within the horizon of
    /// `now` and that were not warned about since they came within it. O(covering ROAs with an
    /// expiry time) over the index.
    pub fn expiring(&mut self, registry: &Registry, now: f64) -> Vec<WatchEvent> {
        self.last_check = Some(now);
        let mut out = Vec::new();
        if self.horizon_seconds <= 0.0 || !self.indexed_for(registry) {
            self.warned.clear();
            return out;
        }
        let limit = now + self.horizon_seconds;
        let mut within: FxHashSet<Vrp> = FxHashSet::default();
        let mut refused: FxHashSet<Vrp> = FxHashSet::default();
        for (i, list) in self.expiring.iter().enumerate() {
            for &(vrp, x) in list {
                if x as f64 > limit {
                    continue;
                }
                if !within.contains(&vrp) {
                    if within.len() >= MAX_WARNED {
                        refused.insert(vrp);
                        continue;
                    }
                    within.insert(vrp);
                }
                if self.warned.contains(&vrp) {
                    continue;
                }
                let rp = registry.prefix(i as PrefixId);
                let l = registry.location_of(i as PrefixId);
                let roa = RoaRecord {
                    prefix: vrp.prefix(),
                    max_length: vrp.max_length(),
                    asn: vrp.asn(),
                    expires: Some(x as f64),
                };
                let days = (x as f64 - now) / 86_400.0;
                let when = if days < 0.0 {
                    "has expired".to_string()
                } else {
                    format!("expires in {days:.1} day(s)")
                };
                out.push(WatchEvent {
                    kind: WatchKind::RoaExpiring,
                    location: l.name.clone(),
                    prefix: rp.prefix,
                    detail: WatchDetail {
                        roa: Some(roa),
                        relation: Some(Relation::Covering),
                        ..WatchDetail::default()
                    },
                    description: format!(
                        "ROA {roa} covering {} of location {} {when} ({}) unless it is renewed",
                        rp.prefix,
                        l.name,
                        crate::time_fmt::format_rfc3339(x as f64)
                    ),
                });
            }
        }
        self.dropped += refused.len() as u64;
        self.warned = within;
        out
    }
}

/// `[64497, 64498]` as `AS64497 AS64498` (`none` when empty).
fn asns(list: &[u32]) -> String {
    if list.is_empty() {
        return "none".into();
    }
    list.iter()
        .map(|a| format!("AS{a}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The VRPs overlapping `prefix` in `set`, sorted.
fn overlapping(set: &VrpSet, prefix: &IpNet) -> Vec<Vrp> {
    let mut v = set.covering(prefix);
    v.extend(set.inside(prefix));
    v.sort_unstable();
    v
}

/// The ROA events of one registered prefix.
fn roa_changes(
    registry: &Registry,
    id: PrefixId,
    old: &VrpSet,
    new: &VrpSet,
    out: &mut Vec<WatchEvent>,
) {
    let rp = registry.prefix(id);
    let (o, n) = (overlapping(old, &rp.prefix), overlapping(new, &rp.prefix));
    if o == n {
        return;
    }
    let removed: Vec<Vrp> = o
        .iter()
        .filter(|v| n.binary_search(v).is_err())
        .copied()
        .collect();
    let added: Vec<Vrp> = n
        .iter()
        .filter(|v| o.binary_search(v).is_err())
        .copied()
        .collect();
    let mut removed_used = vec![false; removed.len()];
    let mut added_used = vec![false; added.len()];
    let mut pairs: Vec<(usize, usize)> = Vec::new();
    // Same prefix and origin, another maxLength first; then same prefix and maxLength, another
    // origin.
    let rules: [fn(&Vrp, &Vrp) -> bool; 2] = [
        |a, b| a.prefix() == b.prefix() && a.asn() == b.asn(),
        |a, b| a.prefix() == b.prefix() && a.max_length() == b.max_length(),
    ];
    for same in rules {
        for (i, r) in removed.iter().enumerate() {
            if removed_used[i] {
                continue;
            }
            if let Some(j) = (0..added.len()).find(|&j| !added_used[j] && same(r, &added[j])) {
                removed_used[i] = true;
                added_used[j] = true;
                pairs.push((i, j));
            }
        }
    }
    let location = &registry.location_of(id).name;
    let relation = |v: &Vrp| {
        if v.prefix().contains(&rp.prefix) {
            Relation::Covering
        } else {
            Relation::Inside
        }
    };
    let rel_text = |r: Relation| match r {
        Relation::Covering => "covering",
        Relation::Inside => "inside",
    };
    let mut event = |kind, roa: Option<RoaRecord>, prev: Option<RoaRecord>, rel, text: String| {
        out.push(WatchEvent {
            kind,
            location: location.clone(),
            prefix: rp.prefix,
            detail: WatchDetail {
                roa,
                previous_roa: prev,
                relation: Some(rel),
                ..WatchDetail::default()
            },
            description: format!(
                "{text} ({} {} of location {location})",
                rel_text(rel),
                rp.prefix
            ),
        });
    };
    for (i, j) in pairs {
        let (r, a) = (&removed[i], &added[j]);
        let (before, after) = (RoaRecord::of(r, old), RoaRecord::of(a, new));
        let what = if r.asn() == a.asn() {
            format!("maxLength {} -> {}", r.max_length(), a.max_length())
        } else {
            format!("origin AS{} -> AS{}", r.asn(), a.asn())
        };
        event(
            WatchKind::RoaChanged,
            Some(after),
            Some(before),
            relation(a),
            format!("ROA {before} changed to {after}: {what}"),
        );
    }
    for (i, r) in removed.iter().enumerate() {
        if !removed_used[i] {
            let before = RoaRecord::of(r, old);
            event(
                WatchKind::RoaRemoved,
                None,
                Some(before),
                relation(r),
                format!("ROA {before} removed"),
            );
        }
    }
    for (j, a) in added.iter().enumerate() {
        if !added_used[j] {
            let after = RoaRecord::of(a, new);
            event(
                WatchKind::RoaAdded,
                Some(after),
                None,
                relation(a),
                format!("ROA {after} added"),
            );
        }
    }
}

#[cfg(test)]
mod tests;
