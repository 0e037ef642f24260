//! The engine's read side: per-prefix statistics and summaries, anomaly summaries for the API
//! and the replay report, and the memory account.

use std::sync::Arc;

use ipnet::IpNet;
use serde::Serialize;

use super::lifecycle::{AnomalyState, Release};
use super::state::{map_bytes, Announced, PrefixState};
use super::{AnomalyKey, AnomalyKind, Engine, FxMap, PrefixCounters, PrefixStats, Severity};
use crate::model::{AsPath, Feed};
use crate::registry::PrefixId;

/// An active (or held, below min-peers) anomaly instance, for the API.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AnomalySummary {
    /// Kind.
    pub kind: AnomalyKind,
    /// Severity.
    pub severity: Severity,
    /// Location name.
    pub location: String,
    /// Registered prefix.
    pub prefix: IpNet,
    /// Announced prefix.
    pub announced: IpNet,
    /// Offending ASN.
    pub asn: Option<u32>,
    /// Open: it reached min-peers and has not resolved (also while it waits out its hold-down,
    /// as `routewatch_anomalies_active` counts it); `false` while it is held below min-peers.
    pub open: bool,
    /// `pending` (below min-peers, not opened), `open` (carried now) or `resolving` (lost its
    /// carriers, waiting out the hold-down).
    pub state: AnomalyPhase,
    /// Peers carrying it now.
    pub peers: u32,
    /// BGP time first seen.
    #[serde(with = "crate::time_fmt::serde")]
    pub first_seen: f64,
    /// BGP time it opened.
    #[serde(with = "crate::time_fmt::serde::option")]
    pub opened_at: Option<f64>,
    /// BGP time of the latest route carrying it (never before `first_seen`).
    #[serde(with = "crate::time_fmt::serde")]
    pub last_seen: f64,
    /// An AS path carrying it.
    pub example_path: Option<Arc<AsPath>>,
    /// Times it came back within the hold-down after losing its last carrier.
    pub flaps: u32,
    /// Set while it waits out its hold-down: when its last carrier went away (it resolves at
    /// this time plus the hold-down unless a carrier comes back).
    #[serde(
        with = "crate::time_fmt::serde::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub resolving_since: Option<f64>,
    /// For `route_leak`: why the example route is a leak (reason, procedure, peer role).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leak: Option<super::Leak>,
}

/// Where an anomaly instance is in its lifecycle ([`AnomalySummary::state`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AnomalyPhase {
    /// Seen, but carried by fewer than min-peers peers: not opened.
    Pending,
    /// Opened and carried now.
    Open,
    /// Opened, lost its last carrier, waiting out the hold-down (it resolves unless a carrier
    /// comes back).
    Resolving,
}

impl AnomalyPhase {
    /// Every phase.
    pub const ALL: [AnomalyPhase; 3] = [
        AnomalyPhase::Pending,
        AnomalyPhase::Open,
        AnomalyPhase::Resolving,
    ];

    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            AnomalyPhase::Pending => "pending",
            AnomalyPhase::Open => "open",
            AnomalyPhase::Resolving => "resolving",
        }
    }
}

/// Routes of one announced prefix, for the API.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AnnouncedSummary {
    /// Announced prefix.
    pub prefix: IpNet,
    /// Peers with a route for it.
    pub peers: u32,
    /// Distinct single-AS origins.
    pub origins: Vec<u32>,
}

/// Everything known about one registered prefix, for the API and the replay report. The HTTP API
/// answers with its more-specifics and anomalies wrapped (`M`, `A`) in types that add DNS names.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PrefixSummary<M = AnnouncedSummary, A = AnomalySummary> {
    /// Location name.
    pub location: String,
    /// Registered prefix.
    pub prefix: IpNet,
    /// Peers with a route for exactly the prefix.
    pub visibility: u32,
    /// Origins seen for exactly the prefix.
    pub origins: Vec<u32>,
    /// Up to three distinct AS paths for exactly the prefix.
    pub sample_paths: Vec<Arc<AsPath>>,
    /// More-specifics currently announced.
    pub more_specifics: Vec<M>,
    /// Announcements received.
    pub announcements: u64,
    /// Withdrawals received.
    pub withdrawals: u64,
    /// Path changes.
    pub path_changes: u64,
    /// BGP time of the last change.
    #[serde(with = "crate::time_fmt::serde::option")]
    pub last_change: Option<f64>,
    /// Anomaly instances of this prefix (open or held).
    pub anomalies: Vec<A>,
}

impl<M, A> PrefixSummary<M, A> {
    /// The same summary with each more-specific and anomaly turned into another type.
    pub fn map<M2, A2>(
        self,
        more_specific: impl FnMut(M) -> M2,
        anomaly: impl FnMut(A) -> A2,
    ) -> PrefixSummary<M2, A2> {
        PrefixSummary {
            location: self.location,
            prefix: self.prefix,
            visibility: self.visibility,
            origins: self.origins,
            sample_paths: self.sample_paths,
            more_specifics: self.more_specifics.into_iter().map(more_specific).collect(),
            announcements: self.announcements,
            withdrawals: self.withdrawals,
            path_changes: self.path_changes,
            last_change: self.last_change,
            anomalies: self.anomalies.into_iter().map(anomaly).collect(),
        }
    }
}

/// Engine memory by part, in bytes requested from the allocator ([`Engine::memory`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct EngineMemory {
    /// Routes held.
    pub tracked_routes: u64,
    /// Distinct AS paths interned.
    pub distinct_paths: u64,
    /// Route slots (8 bytes per route, plus the ADD-PATH pairs of their keys) and
    /// per-announced-prefix origin lists that spilled to the heap.
    pub route_slots: usize,
    /// The containers holding the slots: one inline per registered prefix, plus the
    /// more-specific maps.
    pub route_containers: usize,
    /// The interned AS path table and the paths.
    pub paths: usize,
    /// Per-registered-prefix counters and bookkeeping (besides the route containers).
    pub prefix_stats: usize,
    /// Anomaly instance maps.
    pub anomalies: usize,
}

impl EngineMemory {
    /// Route state: the slots and the containers holding them.
    pub fn route_state(&self) -> usize {
        self.route_slots + self.route_containers
    }

    /// Route state per tracked route (0 without routes).
    pub fn route_state_per_route(&self) -> f64 {
        if self.tracked_routes == 0 {
            0.0
        } else {
            self.route_state() as f64 / self.tracked_routes as f64
        }
    }

    /// Everything counted.
    pub fn total(&self) -> usize {
        self.route_state() + self.paths + self.prefix_stats + self.anomalies
    }
}

impl Engine {
    /// Statistics of one registered prefix.
    pub fn stats(&self, r: PrefixId) -> PrefixStats {
        self.prefixes[r as usize].stats.to_stats()
    }

    /// The compact counters of one registered prefix (what [`Engine::stats`] expands).
    pub fn counters(&self, r: PrefixId) -> &PrefixCounters {
        &self.prefixes[r as usize].stats
    }

    /// Bytes of engine state by part, as requested from the allocator (size-class rounding
    /// and allocator metadata not included). O(prefixes + paths): for reports, not per batch.
    pub fn memory(&self) -> EngineMemory {
        use std::mem::size_of;
        let mut m = EngineMemory {
            tracked_routes: self.tracked_routes,
            distinct_paths: self.paths.distinct() as u64,
            // The ADD-PATH pairs belong to the route slots' keys.
            route_slots: self.route_keys.heap_bytes(),
            ..EngineMemory::default()
        };
        for st in &self.prefixes {
            m.route_slots += st.exact.heap_bytes();
            m.route_containers += size_of::<Announced>();
            if let Some(ms) = &st.more_specifics {
                m.route_containers += size_of::<FxMap<IpNet, Announced>>()
                    + map_bytes::<IpNet, Announced>(ms.capacity());
                m.route_slots += ms.values().map(Announced::heap_bytes).sum::<usize>();
            }
            if let Some(an) = &st.anomalies {
                m.anomalies += size_of::<FxMap<AnomalyKey, AnomalyState>>()
                    + map_bytes::<AnomalyKey, AnomalyState>(an.capacity());
            }
            m.prefix_stats += size_of::<PrefixState>() - size_of::<Announced>();
            m.prefix_stats += st.stats.heap_bytes();
        }
        m.prefix_stats += self.last_path_event.capacity() * size_of::<f64>();
        m.paths = self.paths.heap_bytes();
        m
    }

    /// Number of (peer, announced prefix, path id) routes held.
    pub fn tracked_routes(&self) -> u64 {
        self.tracked_routes
    }

    /// Peers currently holding at least one matched route.
    pub fn peers_with_routes(&self) -> usize {
        self.peer_routes.iter().filter(|&&n| n > 0).count()
    }

    /// Peers holding matched routes, per feed (indexed like [`Feed::ALL`]).
    pub fn peers_with_routes_by_feed(&self) -> [usize; Feed::ALL.len()] {
        let mut counts = [0; Feed::ALL.len()];
        for (k, &n) in self.peers.iter().zip(&self.peer_routes) {
            if n > 0 {
                counts[k.source.feed() as usize] += 1;
            }
        }
        counts
    }

    /// The summary of the instance `key`, held or waiting out its hold-down.
    fn summary_of(&self, key: &AnomalyKey) -> Option<AnomalySummary> {
        let held = self.prefixes[key.registered as usize]
            .anomalies
            .as_ref()
            .and_then(|m| m.get(key));
        match held {
            Some(st) => Some(self.anomaly_summary(key, st)),
            None => self
                .releasing
                .get(key)
                .map(|r| self.released_summary(key, r)),
        }
    }

    pub(super) fn anomaly_summary(&self, key: &AnomalyKey, st: &AnomalyState) -> AnomalySummary {
        let peers = if matches!(
            key.kind,
            AnomalyKind::VisibilityLost | AnomalyKind::Withdrawn
        ) {
            self.prefixes[key.registered as usize].stats.visibility
        } else if key.kind == AnomalyKind::Moas {
            let exact = self.is_exact(key.registered, &key.announced);
            self.prefixes[key.registered as usize]
                .announced(&key.announced, exact)
                .map_or(0, |a| a.peers)
        } else {
            st.carriers.len() as u32
        };
        AnomalySummary {
            kind: key.kind,
            severity: key.kind.severity(),
            location: self.registry.location_of(key.registered).name.clone(),
            prefix: self.registry.prefix(key.registered).prefix,
            announced: key.announced,
            asn: key.asn,
            open: st.open,
            state: if st.open {
                AnomalyPhase::Open
            } else {
                AnomalyPhase::Pending
            },
            peers,
            first_seen: st.first_seen,
            opened_at: st.opened_at,
            last_seen: st.last_seen,
            example_path: st.example.as_ref().map(|e| e.1.clone()),
            flaps: st.flaps,
            resolving_since: None,
            leak: match &st.example {
                Some((peer, path)) if key.kind == AnomalyKind::RouteLeak => {
                    self.leak_of(*peer, path)
                }
                _ => None,
            },
        }
    }

    /// The summary of an instance waiting out its hold-down.
    fn released_summary(&self, key: &AnomalyKey, r: &Release) -> AnomalySummary {
        let mut s = self.anomaly_summary(key, &r.state);
        if !matches!(
            key.kind,
            AnomalyKind::VisibilityLost | AnomalyKind::Withdrawn
        ) {
            s.peers = 0;
        }
        s.resolving_since = Some(r.since);
        s.state = AnomalyPhase::Resolving;
        s
    }

    /// The released instances by registered prefix.
    fn released_by_prefix(&self) -> FxMap<PrefixId, Vec<(&AnomalyKey, &Release)>> {
        let mut by: FxMap<PrefixId, Vec<(&AnomalyKey, &Release)>> = FxMap::default();
        for (k, r) in &self.releasing {
            by.entry(k.registered).or_default().push((k, r));
        }
        by
    }

    /// All anomaly instances (open, held below min-peers, and waiting out their hold-down),
    /// sorted by prefix then kind.
    pub fn anomalies(&self) -> Vec<AnomalySummary> {
        let mut all: Vec<(&AnomalyKey, AnomalySummary)> = self
            .prefixes
            .iter()
            .flat_map(|p| p.anomaly_iter())
            .map(|(k, s)| (k, self.anomaly_summary(k, s)))
            .chain(
                self.releasing
                    .iter()
                    .map(|(k, r)| (k, self.released_summary(k, r))),
            )
            .collect();
        all.sort_by_key(|(k, _)| **k);
        all.into_iter().map(|(_, s)| s).collect()
    }

    /// The summary of one registered prefix.
    pub fn prefix_summary(&self, r: PrefixId) -> PrefixSummary {
        let released: Vec<(&AnomalyKey, &Release)> = self
            .releasing
            .iter()
            .filter(|(k, _)| k.registered == r)
            .collect();
        self.summarise_prefix(r, &released)
    }

    fn summarise_prefix(&self, r: PrefixId, released: &[(&AnomalyKey, &Release)]) -> PrefixSummary {
        let reg = self.registry.prefix(r);
        let st = &self.prefixes[r as usize];
        let mut paths: Vec<&Arc<AsPath>> = st
            .exact
            .routes
            .iter()
            .map(|s| self.paths.get(s.path))
            .collect();
        paths.sort_by(|a, b| (a.asns.len(), &a.asns).cmp(&(b.asns.len(), &b.asns)));
        paths.dedup();
        let sample_paths = paths.into_iter().take(3).cloned().collect();
        let mut more_specifics: Vec<AnnouncedSummary> = st
            .all_announced()
            .filter_map(|(q, a)| q.map(|q| (q, a)))
            .map(|(q, a)| AnnouncedSummary {
                prefix: *q,
                peers: a.peers,
                origins: a.origin_list(),
            })
            .collect();
        more_specifics.sort_by_key(|m| m.prefix);
        let mut anomalies: Vec<AnomalySummary> = st
            .anomaly_iter()
            .map(|(k, s)| self.anomaly_summary(k, s))
            .chain(
                released
                    .iter()
                    .map(|(k, rel)| self.released_summary(k, rel)),
            )
            .collect();
        anomalies.sort_by_key(|a| (a.kind, a.announced, a.asn));
        PrefixSummary {
            location: self.registry.location_of(r).name.clone(),
            prefix: reg.prefix,
            visibility: st.stats.visibility,
            origins: st.exact.origin_list(),
            sample_paths,
            more_specifics,
            announcements: st.stats.announcements,
            withdrawals: st.stats.withdrawals,
            path_changes: st.stats.path_changes,
            last_change: st.stats.last_change(),
            anomalies,
        }
    }

    /// Summaries of every registered prefix, in registry order.
    pub fn prefix_summaries(&self) -> Vec<PrefixSummary> {
        let released = self.released_by_prefix();
        (0..self.prefixes.len() as PrefixId)
            .map(|r| self.summarise_prefix(r, released.get(&r).map_or(&[], Vec::as_slice)))
            .collect()
    }
}

/// One page of a list the API answers: the items, and where the next page starts (`None` on
/// the last page).
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T, C> {
    /// The items, in list order.
    pub items: Vec<T>,
    /// The position after the last item, when more follow.
    pub next: Option<C>,
}

/// Which registered prefixes a page of [`Engine::prefix_summaries_page`] lists (all when every
/// field is `None`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrefixFilter {
    /// Only the prefixes of the location of this name.
    pub location: Option<String>,
    /// Only this registered prefix.
    pub prefix: Option<IpNet>,
}

/// Which anomaly instances a page of [`Engine::anomalies_page`] lists (all when every field is
/// `None`); the fields combine (and).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AnomalyFilter {
    /// Only instances of the registered prefixes of the location of this name.
    pub location: Option<String>,
    /// Only instances of this registered prefix (its more-specifics' included).
    pub prefix: Option<IpNet>,
    /// Only this kind.
    pub kind: Option<AnomalyKind>,
    /// Only open instances (`true`: opened and not resolved, waiting out the hold-down
    /// included) or only those not opened yet (`false`: below min-peers).
    pub open: Option<bool>,
    /// Only instances in this phase.
    pub state: Option<AnomalyPhase>,
}

impl AnomalyFilter {
    fn admits_phase(&self, phase: AnomalyPhase) -> bool {
        self.open
            .is_none_or(|o| o == (phase != AnomalyPhase::Pending))
            && self.state.is_none_or(|s| s == phase)
    }
}

impl Engine {
    /// Whether registered prefix `r` passes a location and prefix filter (the location's name
    /// and the prefix looked up once, here).
    fn registered_filter(
        &self,
        location: Option<&str>,
        prefix: Option<&IpNet>,
    ) -> impl Fn(PrefixId) -> bool + '_ {
        let location = location.map(|name| {
            self.registry
                .locations()
                .iter()
                .position(|l| l.name == name)
        });
        let prefix = prefix.map(|p| self.registry.find(p));
        move |r: PrefixId| {
            location.is_none_or(|l| l == Some(self.registry.prefix(r).location as usize))
                && prefix.is_none_or(|p| p == Some(r))
        }
    }

    /// At most `limit` summaries of the registered prefixes `filter` admits, from id `from` on,
    /// in registry order; `next` is the id the following page starts at (only when another
    /// admitted prefix follows). Only the page is built: O(limit + instances waiting out their
    /// hold-down) for an unfiltered page, plus a pass over the ids when filtered by location.
    pub fn prefix_summaries_page(
        &self,
        from: PrefixId,
        limit: usize,
        filter: &PrefixFilter,
    ) -> Page<PrefixSummary, PrefixId> {
        let n = self.prefixes.len();
        let start = (from as usize).min(n);
        let admits = self.registered_filter(filter.location.as_deref(), filter.prefix.as_ref());
        let mut ids: Box<dyn Iterator<Item = PrefixId>> =
            match filter.prefix.as_ref().map(|p| self.registry.find(p)) {
                // One prefix at most: no pass over the registry.
                Some(found) => Box::new(
                    found
                        .filter(|&r| r as usize >= start && admits(r))
                        .into_iter(),
                ),
                None => Box::new((start..n).map(|r| r as PrefixId).filter(|&r| admits(r))),
            };
        let page: Vec<PrefixId> = ids.by_ref().take(limit).collect();
        let next = if page.len() == limit {
            ids.next()
        } else {
            None
        };
        let mut released: FxMap<PrefixId, Vec<(&AnomalyKey, &Release)>> = FxMap::default();
        if !self.releasing.is_empty() {
            for (k, r) in &self.releasing {
                if page.binary_search(&k.registered).is_ok() {
                    released.entry(k.registered).or_default().push((k, r));
                }
            }
        }
        let items = page
            .iter()
            .map(|&r| self.summarise_prefix(r, released.get(&r).map_or(&[], Vec::as_slice)))
            .collect();
        Page { items, next }
    }

    /// At most `limit` anomaly instances `filter` admits (as [`Engine::anomalies`] lists them,
    /// in key order) after `after`; `next` is the key of the page's last item when more follow.
    /// One pass over the instances keeping the `limit + 1` smallest admitted keys
    /// (O(n log limit)); only the page's summaries are built.
    pub fn anomalies_page(
        &self,
        after: Option<AnomalyKey>,
        limit: usize,
        filter: &AnomalyFilter,
    ) -> Page<AnomalySummary, AnomalyKey> {
        use std::collections::BinaryHeap;
        let keep = limit.saturating_add(1);
        let mut heap: BinaryHeap<AnomalyKey> = BinaryHeap::with_capacity(keep.min(4096) + 1);
        let admits = self.registered_filter(filter.location.as_deref(), filter.prefix.as_ref());
        let held = self.prefixes.iter().flat_map(|p| {
            p.anomaly_iter().map(|(k, st)| {
                let phase = if st.open {
                    AnomalyPhase::Open
                } else {
                    AnomalyPhase::Pending
                };
                (k, phase)
            })
        });
        let keys = held.chain(self.releasing.keys().map(|k| (k, AnomalyPhase::Resolving)));
        for (k, phase) in keys {
            if after.is_some_and(|a| *k <= a)
                || filter.kind.is_some_and(|kind| kind != k.kind)
                || !filter.admits_phase(phase)
                || !admits(k.registered)
            {
                continue;
            }
            if heap.len() < keep {
                heap.push(*k);
            } else if heap.peek().is_some_and(|top| k < top) {
                heap.pop();
                heap.push(*k);
            }
        }
        let mut page = heap.into_sorted_vec();
        let more = page.len() > limit;
        page.truncate(limit);
        let items = page.iter().filter_map(|k| self.summary_of(k)).collect();
        Page {
            items,
            next: if more { page.last().copied() } else { None },
        }
    }
}

/// The anomaly instances at a glance, for the status page: counts by state and severity, and
/// the first few instances, most severe first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AnomalyOverview {
    /// At most the `limit` asked for: by severity (highest first), then in key order (kind,
    /// registered prefix, announced prefix, ASN).
    pub top: Vec<AnomalySummary>,
    /// Every instance held (open, below min-peers, waiting out its hold-down).
    pub total: usize,
    /// Open instances (at or above min-peers, a carrier present).
    pub open: usize,
    /// Instances still below min-peers.
    pub pending: usize,
    /// Instances waiting out their hold-down.
    pub resolving: usize,
    /// Instances by severity: information, warning, error, critical.
    pub by_severity: [usize; 4],
}

fn severity_index(s: Severity) -> usize {
    match s {
        Severity::Information => 0,
        Severity::Warning => 1,
        Severity::Error => 2,
        Severity::Critical => 3,
    }
}

impl Engine {
    /// [`AnomalyOverview`] with at most `limit` instances: one pass over the instances keeping
    /// the `limit` most severe (O(n log limit)); only those summaries are built.
    pub fn anomaly_overview(&self, limit: usize) -> AnomalyOverview {
        use std::cmp::Reverse;
        use std::collections::BinaryHeap;
        let mut o = AnomalyOverview::default();
        let mut heap: BinaryHeap<(Reverse<Severity>, AnomalyKey)> =
            BinaryHeap::with_capacity(limit.min(4096) + 1);
        let keep = |k: &AnomalyKey, heap: &mut BinaryHeap<(Reverse<Severity>, AnomalyKey)>| {
            let entry = (Reverse(k.kind.severity()), *k);
            if heap.len() < limit {
                heap.push(entry);
            } else if heap.peek().is_some_and(|top| entry < *top) {
                heap.pop();
                heap.push(entry);
            }
        };
        for (k, st) in self.prefixes.iter().flat_map(|p| p.anomaly_iter()) {
            o.total += 1;
            o.by_severity[severity_index(k.kind.severity())] += 1;
            if st.open {
                o.open += 1;
            } else {
                o.pending += 1;
            }
            keep(k, &mut heap);
        }
        for k in self.releasing.keys() {
            o.total += 1;
            o.resolving += 1;
            o.by_severity[severity_index(k.kind.severity())] += 1;
            keep(k, &mut heap);
        }
        o.top = heap
            .into_sorted_vec()
            .iter()
            .filter_map(|(_, k)| self.summary_of(k))
            .collect();
        o
    }
}
