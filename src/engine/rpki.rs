//! RPKI in the engine: a route's RPKI state (`rpki_invalid`) and leak verdict (`route_leak`,
//! see [`super::leak`]), the peer roles that pick the ASPA procedure, and re-validation when
//! the RPKI data or a role changes — only of the routes a [`RpkiDelta`] can touch.

use std::sync::Arc;

use ipnet::IpNet;

use super::leak::{self, Leak, RolePolicy};
use super::state::PathId;
use super::{session_key, AnomalyKey, AnomalyKind, Engine, PeerIdx, RemovalReason};
use crate::model::{AsPath, PeerKey, PeerRole};
use crate::registry::PrefixId;
use crate::rpki::{RovState, RpkiData, RpkiDelta};
use crate::util::FxMap;

impl Engine {
    /// Counts a route under its RPKI state and carries `rpki_invalid` for an invalid one
    /// (`removal: None`), or takes that back (`Some(reason)`).
    pub(super) fn rpki_contribution(
        &mut self,
        r: PrefixId,
        q: IpNet,
        peer: PeerIdx,
        path: &Arc<AsPath>,
        ts: f64,
        removal: Option<RemovalReason>,
    ) {
        let Some(rpki) = &self.rpki else {
            return;
        };
        let state = rpki.vrps.validate_path(&q, path);
        self.rpki_state_change(r, q, peer, path, ts, state, removal);
    }

    /// Counts a route of state `state` in (`removal` none) or out, and adds or removes it as an
    /// `rpki_invalid` carrier when the state is invalid.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn rpki_state_change(
        &mut self,
        r: PrefixId,
        q: IpNet,
        peer: PeerIdx,
        path: &Arc<AsPath>,
        ts: f64,
        state: RovState,
        removal: Option<RemovalReason>,
    ) {
        let i = RovState::ALL.iter().position(|s| *s == state).unwrap_or(0);
        self.prefixes[r as usize]
            .stats
            .rpki_route(i, removal.is_none());
        if state.is_invalid() {
            let key = AnomalyKey {
                kind: AnomalyKind::RpkiInvalid,
                registered: r,
                announced: q,
                asn: path.origin_asn(),
            };
            self.carry(key, peer, path, ts, removal)
        }
    }

    /// The leak verdict of a route of `peer` with `path` (see [`leak`]).
    pub(super) fn leak_of(&self, peer: PeerIdx, path: &AsPath) -> Option<Leak> {
        let key = &self.peers[peer as usize];
        leak::check(
            self.rpki.as_ref().map(|r| &r.aspas),
            path,
            key.asn,
            self.role_of(peer),
        )
    }

    /// A peer's role: its session's BGP Role, else the configured one, else unknown.
    pub(super) fn role_of(&self, peer: PeerIdx) -> Option<PeerRole> {
        self.bgp_roles
            .get(peer as usize)
            .copied()
            .flatten()
            .or_else(|| self.role_policy.role_of(&self.peers[peer as usize]))
    }

    /// Carries `route_leak` for a leaking route (`removal: None`), or takes that back.
    pub(super) fn leak_contribution(
        &mut self,
        r: PrefixId,
        q: IpNet,
        peer: PeerIdx,
        path: &Arc<AsPath>,
        ts: f64,
        removal: Option<RemovalReason>,
    ) {
        if let Some(l) = self.leak_of(peer, path) {
            self.leak_change(r, q, peer, path, ts, l, removal);
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn leak_change(
        &mut self,
        r: PrefixId,
        q: IpNet,
        peer: PeerIdx,
        path: &Arc<AsPath>,
        ts: f64,
        leak: Leak,
        removal: Option<RemovalReason>,
    ) {
        let key = AnomalyKey {
            kind: AnomalyKind::RouteLeak,
            registered: r,
            announced: q,
            asn: leak.leaker,
        };
        self.carry(key, peer, path, ts, removal)
    }

    /// Replaces the RPKI data (`None`: RPKI off). `changed` bounds the work: only routes whose
    /// prefix is covered by a changed VRP prefix, or whose path has a changed ASPA customer, are
    /// validated again (`None`: every held route). A route is validated against the old and the
    /// new data, and only one whose RPKI state or leak verdict changed moves (its per-state
    /// count, its `rpki_invalid` and `route_leak` carriage); so reloading an unchanged set
    /// changes nothing, and an instance keeps its carriers (and stays open) while any route
    /// still carries it. Returns the number of routes validated again.
    pub fn set_rpki(
        &mut self,
        rpki: Option<Arc<RpkiData>>,
        changed: Option<&RpkiDelta>,
        ts: f64,
    ) -> usize {
        let routes = self.routes_touched_by(changed);
        let old = std::mem::replace(&mut self.rpki, rpki);
        let new = self.rpki.clone();
        let n = routes.len();
        self.revalidate(
            routes,
            |e, peer, q, path| {
                let rov =
                    |d: &Option<Arc<RpkiData>>| d.as_ref().map(|d| d.vrps.validate_path(q, path));
                let leak = |d: &Option<Arc<RpkiData>>| {
                    leak::check(
                        d.as_ref().map(|d| &d.aspas),
                        path,
                        e.peers[peer as usize].asn,
                        e.role_of(peer),
                    )
                };
                ((rov(&old), leak(&old)), (rov(&new), leak(&new)))
            },
            ts,
        );
        n
    }

    /// Records the BGP Role a peer's session announced (`None`: none), from a BMP Peer Up:
    /// for every view of the peer (the same router, address and AS), now and later. Routes
    /// those views hold are checked for leaks again when their effective role changed.
    pub fn set_peer_role(&mut self, peer: &PeerKey, role: Option<PeerRole>, ts: f64) {
        let key = session_key(peer);
        match role {
            Some(r) => self.session_roles.insert(key, r),
            None => self.session_roles.remove(&key),
        };
        for i in 0..self.peers.len() {
            if session_key(&self.peers[i]) != key || self.bgp_roles[i] == role {
                continue;
            }
            let before = self.role_of(i as PeerIdx);
            self.bgp_roles[i] = role;
            if self.role_of(i as PeerIdx) != before && self.peer_routes[i] > 0 {
                self.revalidate_roles(Some(i as PeerIdx), before, ts);
            }
        }
    }

    /// Sets the configured peer roles; the routes of peers whose effective role changed are
    /// checked for leaks again.
    pub fn set_role_policy(&mut self, policy: Arc<RolePolicy>, ts: f64) {
        let before: Vec<Option<PeerRole>> = (0..self.peers.len() as PeerIdx)
            .map(|i| self.role_of(i))
            .collect();
        self.role_policy = policy;
        for (i, b) in before.into_iter().enumerate() {
            let i = i as PeerIdx;
            if self.role_of(i) != b && self.peer_routes[i as usize] > 0 {
                self.revalidate_roles(Some(i), b, ts);
            }
        }
    }

    /// The leak verdicts of `only`'s routes again, its role having been `before`.
    pub(super) fn revalidate_roles(
        &mut self,
        only: Option<PeerIdx>,
        before: Option<PeerRole>,
        ts: f64,
    ) {
        let routes: Vec<_> = self
            .all_routes()
            .into_iter()
            .filter(|(_, _, p, _)| only.is_none_or(|o| o == *p))
            .collect();
        self.revalidate(
            routes,
            |e, peer, q, path| {
                let rov = e.rpki.as_ref().map(|d| d.vrps.validate_path(q, path));
                let aspas = e.rpki.as_ref().map(|d| &d.aspas);
                let asn = e.peers[peer as usize].asn;
                let old = leak::check(aspas, path, asn, before);
                let new = leak::check(aspas, path, asn, e.role_of(peer));
                ((rov, old), (rov, new))
            },
            ts,
        );
    }

    /// Every held route as (registered prefix, announced prefix, peer, path).
    pub(super) fn all_routes(&self) -> Vec<(PrefixId, IpNet, PeerIdx, PathId)> {
        let mut routes = Vec::new();
        for (r, st) in self.prefixes.iter().enumerate() {
            let registered = self.registry.prefix(r as PrefixId).prefix;
            for (q, a) in st.all_announced() {
                let q = q.copied().unwrap_or(registered);
                let keys = &self.route_keys;
                routes.extend(
                    a.routes
                        .iter()
                        .map(|s| (r as PrefixId, q, keys.peer(s.key), s.path)),
                );
            }
        }
        routes
    }

    /// The held routes an RPKI change can affect (all of them for `None`).
    pub(super) fn routes_touched_by(
        &self,
        changed: Option<&RpkiDelta>,
    ) -> Vec<(PrefixId, IpNet, PeerIdx, PathId)> {
        let Some(d) = changed else {
            return self.all_routes();
        };
        if d.is_empty() {
            return Vec::new();
        }
        let mut v4 = prefix_trie::PrefixSet::<ipnet::Ipv4Net>::new();
        let mut v6 = prefix_trie::PrefixSet::<ipnet::Ipv6Net>::new();
        for p in &d.vrp_prefixes {
            match p {
                IpNet::V4(p) => {
                    v4.insert(*p);
                }
                IpNet::V6(p) => {
                    v6.insert(*p);
                }
            }
        }
        // A VRP matters to a route when its prefix covers the route's.
        let covered = |q: &IpNet| match q {
            IpNet::V4(q) => v4.get_spm(&q.trunc()).is_some(),
            IpNet::V6(q) => v6.get_spm(&q.trunc()).is_some(),
        };
        let mut path_hit: FxMap<PathId, bool> = FxMap::default();
        let mut out = Vec::new();
        for (r, st) in self.prefixes.iter().enumerate() {
            let registered = self.registry.prefix(r as PrefixId).prefix;
            for (q, a) in st.all_announced() {
                let q = q.copied().unwrap_or(registered);
                let by_vrp = !d.vrp_prefixes.is_empty() && covered(&q);
                for s in &a.routes {
                    let hit = by_vrp
                        || (!d.aspa_customers.is_empty()
                            && *path_hit.entry(s.path).or_insert_with(|| {
                                self.paths
                                    .get(s.path)
                                    .asns
                                    .iter()
                                    .any(|a| d.aspa_customers.binary_search(a).is_ok())
                            }));
                    if hit {
                        out.push((r as PrefixId, q, self.route_keys.peer(s.key), s.path));
                    }
                }
            }
        }
        out
    }

    /// Moves every route of `routes` whose (RPKI state, leak) verdict `verdicts` gives as
    /// different before and after. Routes that gain a verdict are added before those that
    /// lose one are taken away, so an instance carried by both an old and a new route does
    /// not resolve.
    #[allow(clippy::type_complexity)]
    pub(super) fn revalidate(
        &mut self,
        routes: Vec<(PrefixId, IpNet, PeerIdx, PathId)>,
        verdicts: impl Fn(
            &Engine,
            PeerIdx,
            &IpNet,
            &AsPath,
        ) -> (
            (Option<RovState>, Option<Leak>),
            (Option<RovState>, Option<Leak>),
        ),
        ts: f64,
    ) {
        let mut losing = Vec::new();
        for (r, q, peer, path) in routes {
            let path = self.paths.get(path).clone();
            let ((rov_before, leak_before), (rov_after, leak_after)) =
                verdicts(self, peer, &q, &path);
            if rov_before == rov_after && leak_before == leak_after {
                continue;
            }
            if rov_before != rov_after {
                if let Some(state) = rov_after {
                    self.rpki_state_change(r, q, peer, &path, ts, state, None);
                }
            }
            let leak_moved = leak_before.map(|l| l.leaker) != leak_after.map(|l| l.leaker)
                || leak_before.is_some() != leak_after.is_some();
            if leak_moved {
                if let Some(l) = leak_after {
                    self.leak_change(r, q, peer, &path, ts, l, None);
                }
            }
            losing.push((
                r,
                q,
                peer,
                path,
                (rov_before != rov_after).then_some(rov_before).flatten(),
                leak_moved.then_some(leak_before).flatten(),
            ));
            self.mark_dirty(r);
        }
        for (r, q, peer, path, rov, leak) in losing {
            let removal = Some(RemovalReason::Revalidated);
            if let Some(state) = rov {
                self.rpki_state_change(r, q, peer, &path, ts, state, removal);
            }
            if let Some(l) = leak {
                self.leak_change(r, q, peer, &path, ts, l, removal);
            }
        }
    }
}
