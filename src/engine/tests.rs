//! Engine unit tests with hand-built routes.

use super::*;
use crate::model::Origin;
use crate::registry::Location;
use crate::rpki::RpkiDelta;

fn registry(min_peers: u32) -> Arc<Registry> {
    Arc::new(
        Registry::new(vec![Location {
            name: "contoso-seattle".into(),
            provider: Some("Example ISP".into()),
            provider_asns: vec![64500],
            region: Some("US-WA".into()),
            origin_asns: vec![64496],
            prefixes: vec![
                "203.0.113.0/24".parse().unwrap(),
                "2001:db8:100::/48".parse().unwrap(),
            ],
            max_length: Some(24),
            max_length_v6: Some(56),
            min_peers,
            min_visibility: 0,
        }])
        .unwrap(),
    )
}

fn peer(n: u8) -> Arc<PeerKey> {
    Arc::new(PeerKey {
        source: Arc::new(crate::model::RouteSource::new(crate::model::Feed::Mrt)),
        address: format!("192.0.2.{n}").parse().unwrap(),
        asn: 65000 + n as u32,
    })
}

struct Harness {
    engine: Engine,
    ts: f64,
}

impl Harness {
    fn new(min_peers: u32) -> Self {
        Harness {
            engine: Engine::new(registry(min_peers)),
            ts: 1000.0,
        }
    }

    fn update(&mut self, p: u8, prefix: &str, change: RouteChange) {
        let prefix: IpNet = prefix.parse().unwrap();
        let matched = self
            .engine
            .registry()
            .lookup(&prefix)
            .expect("test prefix must match");
        self.ts += 1.0;
        self.engine.apply(&RouteUpdate {
            timestamp: self.ts,
            peer: peer(p),
            prefix,
            path_id: 0,
            matched,
            change,
        });
    }

    fn announce(&mut self, p: u8, prefix: &str, path: &[u32]) {
        self.update(
            p,
            prefix,
            RouteChange::Announce(Arc::new(AsPath::from_sequence(path))),
        );
    }

    fn withdraw(&mut self, p: u8, prefix: &str) {
        self.update(p, prefix, RouteChange::Withdraw);
    }

    /// (transition, kind, announced, asn) of the events since the last call.
    fn events(&mut self) -> Vec<(Transition, AnomalyKind, String, Option<u32>)> {
        self.engine
            .drain_events()
            .into_iter()
            .map(|e| (e.transition, e.kind, e.announced.to_string(), e.asn))
            .collect()
    }

    fn active(&self, r: PrefixId, kind: AnomalyKind) -> u32 {
        self.engine.stats(r).anomalies_active[kind.index()]
    }
}

use Transition::{Opened, Resolved};

fn rpki(vrps: crate::rpki::VrpSet) -> Arc<RpkiData> {
    Arc::new(RpkiData::new(vrps, crate::rpki::aspa::AspaSet::new()))
}

fn aspa(vrps: crate::rpki::VrpSet, records: &[(u32, &[u32])]) -> Arc<RpkiData> {
    let set = crate::rpki::aspa::AspaSet::from_records(
        records.iter().map(|(c, p)| (*c, p.iter().copied())),
    );
    Arc::new(RpkiData::new(vrps, set))
}

#[test]
fn expected_routes_give_visibility_and_no_anomaly() {
    let mut h = Harness::new(1);
    h.announce(1, "203.0.113.0/24", &[3356, 64500, 64496]);
    h.announce(2, "203.0.113.0/24", &[174, 64500, 64496]);
    let s = h.engine.stats(0);
    assert_eq!(
        (s.visibility, s.origins, s.announcements, s.path_changes),
        (2, 1, 2, 0)
    );
    assert!(h.events().is_empty());
    assert_eq!(h.engine.tracked_routes(), 2);
    assert_eq!(h.engine.prefix_summary(0).origins, vec![64496]);
}

#[test]
fn exact_prefix_hijack_opens_and_resolves_on_withdraw() {
    let mut h = Harness::new(1);
    h.announce(1, "203.0.113.0/24", &[3356, 64500, 64496]);
    h.announce(2, "203.0.113.0/24", &[3356, 666]);
    assert_eq!(
        h.events(),
        vec![
            (
                Opened,
                AnomalyKind::OriginMismatch,
                "203.0.113.0/24".into(),
                Some(666)
            ),
            (Opened, AnomalyKind::Moas, "203.0.113.0/24".into(), None),
        ]
    );
    assert_eq!(h.active(0, AnomalyKind::OriginMismatch), 1);
    assert_eq!(h.engine.stats(0).origins, 2);
    h.withdraw(2, "203.0.113.0/24");
    assert_eq!(
        h.events(),
        vec![
            (
                Resolved,
                AnomalyKind::OriginMismatch,
                "203.0.113.0/24".into(),
                Some(666)
            ),
            (Resolved, AnomalyKind::Moas, "203.0.113.0/24".into(), None),
        ]
    );
    assert_eq!(h.active(0, AnomalyKind::OriginMismatch), 0);
    assert_eq!(
        h.engine.stats(0).anomalies_opened[AnomalyKind::OriginMismatch.index()],
        1
    );
    assert_eq!(h.engine.stats(0).visibility, 1);
}

#[test]
fn subprefix_hijack_and_more_specific_ipv6() {
    let mut h = Harness::new(1);
    h.announce(1, "203.0.113.128/25", &[3356, 666]);
    assert_eq!(
        h.events(),
        vec![(
            Opened,
            AnomalyKind::SubprefixHijack,
            "203.0.113.128/25".into(),
            Some(666)
        )]
    );
    // Visibility counts exact routes only.
    assert_eq!(h.engine.stats(0).visibility, 0);
    // IPv6: /56 allowed by max-length-v6, /64 is not.
    h.announce(1, "2001:db8:100:ff00::/56", &[3356, 64500, 64496]);
    assert!(h.events().is_empty());
    h.announce(1, "2001:db8:100:1::/64", &[3356, 64500, 64496]);
    assert_eq!(
        h.events(),
        vec![(
            Opened,
            AnomalyKind::UnexpectedMoreSpecific,
            "2001:db8:100:1::/64".into(),
            Some(64496)
        )]
    );
    let summary = h.engine.prefix_summary(1);
    assert_eq!(summary.more_specifics.len(), 2);
    assert_eq!(summary.anomalies.len(), 1);
}

#[test]
fn unexpected_upstream_resolves_when_path_returns_to_provider() {
    let mut h = Harness::new(1);
    h.announce(1, "203.0.113.0/24", &[3356, 174, 64496]);
    assert_eq!(
        h.events(),
        vec![(
            Opened,
            AnomalyKind::UnexpectedUpstream,
            "203.0.113.0/24".into(),
            Some(174)
        )]
    );
    h.announce(1, "203.0.113.0/24", &[3356, 64500, 64496]);
    assert_eq!(
        h.events(),
        vec![(
            Resolved,
            AnomalyKind::UnexpectedUpstream,
            "203.0.113.0/24".into(),
            Some(174)
        )]
    );
    assert_eq!(h.engine.stats(0).path_changes, 1);
}

#[test]
fn prepending_is_a_path_change_and_duplicates_are_not() {
    let mut h = Harness::new(1);
    h.announce(1, "203.0.113.0/24", &[3356, 64500, 64496]);
    h.announce(1, "203.0.113.0/24", &[3356, 64500, 64496]);
    assert_eq!(h.engine.stats(0).path_changes, 0);
    h.announce(1, "203.0.113.0/24", &[3356, 64500, 64496, 64496]);
    assert_eq!(h.engine.stats(0).path_changes, 1);
    assert_eq!(h.engine.stats(0).announcements, 3);
    assert!(
        h.events().is_empty(),
        "prepending by the origin is not an upstream change"
    );
}

#[test]
fn withdraw_then_reannounce_is_a_baseline_not_a_change() {
    let mut h = Harness::new(1);
    h.announce(1, "203.0.113.0/24", &[3356, 64500, 64496]);
    h.withdraw(1, "203.0.113.0/24");
    assert_eq!(h.engine.stats(0).visibility, 0);
    assert_eq!(h.engine.tracked_routes(), 0);
    h.announce(1, "203.0.113.0/24", &[174, 64500, 64496]);
    let s = h.engine.stats(0);
    assert_eq!(
        (s.visibility, s.path_changes, s.announcements, s.withdrawals),
        (1, 0, 2, 1)
    );
    // A withdrawal of a route never held is counted but changes nothing.
    h.withdraw(3, "203.0.113.0/24");
    assert_eq!(h.engine.stats(0).visibility, 1);
    assert_eq!(h.engine.stats(0).withdrawals, 2);
}

#[test]
fn min_peers_holds_an_anomaly_until_enough_peers_carry_it() {
    let mut h = Harness::new(2);
    h.announce(1, "203.0.113.0/25", &[3356, 666]);
    assert!(h.events().is_empty());
    assert_eq!(h.active(0, AnomalyKind::SubprefixHijack), 0);
    let held = h.engine.anomalies();
    assert_eq!(held.len(), 1);
    assert!(!held[0].open);
    h.announce(2, "203.0.113.0/25", &[174, 666]);
    assert_eq!(
        h.events(),
        vec![(
            Opened,
            AnomalyKind::SubprefixHijack,
            "203.0.113.0/25".into(),
            Some(666)
        )]
    );
    // Stays open while any peer carries it.
    h.withdraw(1, "203.0.113.0/25");
    assert!(h.events().is_empty());
    assert_eq!(h.active(0, AnomalyKind::SubprefixHijack), 1);
    h.withdraw(2, "203.0.113.0/25");
    assert_eq!(
        h.events(),
        vec![(
            Resolved,
            AnomalyKind::SubprefixHijack,
            "203.0.113.0/25".into(),
            Some(666)
        )]
    );
    assert!(h.engine.anomalies().is_empty());
}

#[test]
fn as_set_origin() {
    let mut h = Harness::new(1);
    let path = AsPath::new(
        vec![3356, 64500].into(),
        Origin::Set(vec![64496, 64511].into()),
    );
    h.update(1, "203.0.113.0/24", RouteChange::Announce(Arc::new(path)));
    assert_eq!(
        h.events(),
        vec![(
            Opened,
            AnomalyKind::AsSetOrigin,
            "203.0.113.0/24".into(),
            None
        )]
    );
    assert_eq!(h.engine.stats(0).visibility, 1);
    assert_eq!(
        h.engine.stats(0).origins,
        0,
        "an AS_SET is not a single origin"
    );
    let ev = h.engine.prefix_summary(0).anomalies;
    assert_eq!(
        ev[0]
            .example_path
            .as_ref()
            .map(|p| p.to_string())
            .as_deref(),
        Some("3356 64500 {64496,64511}")
    );
    assert_eq!(
        serde_json::to_value(&ev[0].example_path).unwrap(),
        serde_json::json!([3356, 64500, [64496, 64511]]),
        "in JSON the final AS_SET is a nested array"
    );
}

#[test]
fn moas_with_two_expected_looking_origins_resolves_when_one_leaves() {
    let mut h = Harness::new(1);
    h.announce(1, "203.0.113.0/24", &[3356, 64500, 64496]);
    h.announce(2, "203.0.113.0/24", &[3356, 64497]);
    let kinds: Vec<_> = h.events().into_iter().map(|e| (e.0, e.1)).collect();
    assert_eq!(
        kinds,
        vec![
            (Opened, AnomalyKind::OriginMismatch),
            (Opened, AnomalyKind::Moas)
        ]
    );
    // Peer 2 switches to the expected origin: both resolve, reason "replaced".
    h.announce(2, "203.0.113.0/24", &[3356, 64500, 64496]);
    let evs = h.engine.drain_events();
    assert_eq!(evs.len(), 2);
    assert!(evs
        .iter()
        .all(|e| e.transition == Resolved && e.reason == Some(RemovalReason::Replaced)));
}

#[test]
fn peer_down_withdraws_everything_of_that_peer_only() {
    let mut h = Harness::new(1);
    h.announce(1, "203.0.113.0/24", &[3356, 64500, 64496]);
    h.announce(1, "203.0.113.128/25", &[3356, 666]);
    h.announce(2, "203.0.113.0/24", &[174, 64500, 64496]);
    h.events();
    assert_eq!(h.engine.peers_with_routes(), 2);
    let removed = h.engine.peer_down(&peer(1), 2000.0);
    assert_eq!(removed, 2);
    let evs = h.engine.drain_events();
    assert_eq!(evs.len(), 1);
    assert_eq!(evs[0].reason, Some(RemovalReason::PeerDown));
    assert_eq!(h.engine.stats(0).visibility, 1);
    assert_eq!(h.engine.tracked_routes(), 1);
    assert_eq!(h.engine.peers_with_routes(), 1);
    assert_eq!(h.engine.peer_down(&peer(9), 2001.0), 0);
}

#[test]
fn add_path_routes_of_one_peer_count_once_for_visibility() {
    let mut h = Harness::new(1);
    let prefix: IpNet = "203.0.113.0/24".parse().unwrap();
    let matched = h.engine.registry().lookup(&prefix).unwrap();
    for (id, origin) in [(1, 64496), (2, 666)] {
        h.engine.apply(&RouteUpdate {
            timestamp: 1.0,
            peer: peer(1),
            prefix,
            path_id: id,
            matched,
            change: RouteChange::Announce(Arc::new(AsPath::from_sequence(&[64500, origin]))),
        });
    }
    let s = h.engine.stats(0);
    assert_eq!((s.visibility, s.origins), (1, 2));
    assert_eq!(h.engine.tracked_routes(), 2);
    // Withdrawals name the path id: one never announced changes nothing, path id 2 takes the
    // second origin away and leaves path id 1.
    for id in [3, 2] {
        h.engine.apply(&RouteUpdate {
            timestamp: 2.0,
            peer: peer(1),
            prefix,
            path_id: id,
            matched,
            change: RouteChange::Withdraw,
        });
    }
    let s = h.engine.stats(0);
    assert_eq!((s.visibility, s.origins), (1, 1));
    assert_eq!(h.engine.tracked_routes(), 1);
    // The peer going down takes its ADD-PATH route too.
    assert_eq!(h.engine.peer_down(&peer(1), 3.0), 1);
    assert_eq!(
        (h.engine.stats(0).visibility, h.engine.tracked_routes()),
        (0, 0)
    );
}

#[test]
fn dirty_set_lists_each_changed_prefix_once() {
    let mut h = Harness::new(1);
    h.announce(1, "203.0.113.0/24", &[3356, 64500, 64496]);
    h.announce(2, "203.0.113.0/24", &[3356, 64500, 64496]);
    h.announce(1, "2001:db8:100::/48", &[3356, 64500, 64496]);
    assert_eq!(h.engine.take_dirty(), vec![0, 1]);
    assert!(h.engine.take_dirty().is_empty());
}

#[test]
fn moas_needs_min_peers_on_the_second_origin() {
    let mut h = Harness::new(2);
    h.announce(1, "203.0.113.0/24", &[3356, 64500, 64496]);
    h.announce(2, "203.0.113.0/24", &[174, 64500, 64496]);
    h.announce(3, "203.0.113.0/24", &[3356, 64497]);
    assert!(
        h.events().is_empty(),
        "one peer seeing a second origin is below min-peers"
    );
    h.announce(4, "203.0.113.0/24", &[6939, 64497]);
    let kinds: Vec<_> = h.events().into_iter().map(|e| e.1).collect();
    assert_eq!(kinds, vec![AnomalyKind::OriginMismatch, AnomalyKind::Moas]);
}

#[test]
fn route_events_first_peer_last_peer_origin_and_rate_limited_path_changes() {
    let mut h = Harness::new(1);
    let kinds = |h: &mut Harness| -> Vec<(RouteEventKind, String, Option<String>)> {
        h.engine
            .drain_route_events()
            .into_iter()
            .map(|e| (e.kind, e.announced.to_string(), e.previous_path))
            .collect()
    };
    h.announce(1, "203.0.113.0/24", &[3356, 64500, 64496]);
    h.announce(2, "203.0.113.0/24", &[174, 64500, 64496]);
    assert_eq!(
        kinds(&mut h),
        vec![(
            RouteEventKind::PrefixAnnounced,
            "203.0.113.0/24".into(),
            None
        )]
    );
    // A path change (and an origin change) by peer 1.
    h.announce(1, "203.0.113.0/24", &[3356, 666]);
    assert_eq!(
        kinds(&mut h),
        vec![
            (
                RouteEventKind::OriginChange,
                "203.0.113.0/24".into(),
                Some("3356 64500 64496".into())
            ),
            (
                RouteEventKind::PathChange,
                "203.0.113.0/24".into(),
                Some("3356 64500 64496".into())
            ),
        ]
    );
    // Another path change within a minute: counted, but no event.
    h.announce(1, "203.0.113.0/24", &[3356, 1299, 666]);
    assert!(kinds(&mut h).is_empty());
    assert_eq!(h.engine.stats(0).path_changes, 2);
    h.ts += PATH_CHANGE_EVENT_INTERVAL;
    h.announce(1, "203.0.113.0/24", &[3356, 174, 666]);
    assert_eq!(kinds(&mut h).len(), 1);
    // Last peers leave: withdrawn once visibility reaches 0.
    h.withdraw(1, "203.0.113.0/24");
    assert!(kinds(&mut h).is_empty());
    h.withdraw(2, "203.0.113.0/24");
    assert_eq!(
        kinds(&mut h),
        vec![(
            RouteEventKind::PrefixWithdrawn,
            "203.0.113.0/24".into(),
            None
        )]
    );
    // More-specifics do not change the registered prefix's visibility.
    h.announce(1, "203.0.113.0/25", &[3356, 64500, 64496]);
    assert!(kinds(&mut h).is_empty());
}

#[test]
fn visibility_lost_and_withdrawn_open_on_the_way_down_and_resolve_on_recovery() {
    let reg = Arc::new(
        Registry::new(vec![Location {
            name: "l".into(),
            provider: None,
            provider_asns: vec![],
            region: None,
            origin_asns: vec![64496],
            prefixes: vec!["203.0.113.0/24".parse().unwrap()],
            max_length: None,
            max_length_v6: None,
            min_peers: 1,
            min_visibility: 2,
        }])
        .unwrap(),
    );
    let mut h = Harness {
        engine: Engine::new(reg),
        ts: 0.0,
    };
    h.announce(1, "203.0.113.0/24", &[3356, 64496]);
    // Below min-visibility from the start: it never was at 2, so nothing is lost yet.
    assert!(h.events().is_empty());
    h.announce(2, "203.0.113.0/24", &[174, 64496]);
    h.announce(3, "203.0.113.0/24", &[1299, 64496]);
    h.withdraw(3, "203.0.113.0/24");
    assert!(h.events().is_empty(), "3 -> 2 is still at min-visibility");
    h.withdraw(2, "203.0.113.0/24");
    assert_eq!(
        h.events(),
        vec![(
            Opened,
            AnomalyKind::VisibilityLost,
            "203.0.113.0/24".into(),
            None
        )]
    );
    h.withdraw(1, "203.0.113.0/24");
    assert_eq!(
        h.events(),
        vec![(
            Opened,
            AnomalyKind::Withdrawn,
            "203.0.113.0/24".into(),
            None
        )]
    );
    assert_eq!(h.active(0, AnomalyKind::Withdrawn), 1);
    let summary = h.engine.prefix_summary(0);
    assert_eq!(summary.anomalies.len(), 2);
    assert!(summary.anomalies.iter().all(|a| a.open && a.peers == 0));
    h.announce(1, "203.0.113.0/24", &[3356, 64496]);
    assert_eq!(
        h.events(),
        vec![(
            Resolved,
            AnomalyKind::Withdrawn,
            "203.0.113.0/24".into(),
            None
        )]
    );
    h.announce(2, "203.0.113.0/24", &[174, 64496]);
    assert_eq!(
        h.events(),
        vec![(
            Resolved,
            AnomalyKind::VisibilityLost,
            "203.0.113.0/24".into(),
            None
        )]
    );
    assert_eq!(h.active(0, AnomalyKind::VisibilityLost), 0);
    assert_eq!(
        h.engine.stats(0).anomalies_opened[AnomalyKind::Withdrawn.index()],
        1
    );
}

#[test]
fn rpki_invalid_routes_open_rpki_invalid_and_reloads_revalidate() {
    use crate::rpki::{RovState, Vrp, VrpSet};
    let mut h = Harness::new(1);
    let vrps = VrpSet::from_vrps([
        Vrp::new("203.0.113.0/24".parse().unwrap(), 24, 64496).unwrap(),
        // A second, authorised origin the registry does not know about.
        Vrp::new("203.0.113.0/24".parse().unwrap(), 24, 64497).unwrap(),
    ]);
    h.engine.set_rpki(Some(rpki(vrps)), None, 1.0);
    h.announce(1, "203.0.113.0/24", &[3356, 64500, 64496]);
    assert!(h.events().is_empty(), "valid and expected");
    // Too long for the ROA (max-length 24) from the expected origin.
    h.announce(1, "203.0.113.0/25", &[3356, 64500, 64496]);
    let evs = h.events();
    assert!(evs.contains(&(
        Opened,
        AnomalyKind::RpkiInvalid,
        "203.0.113.0/25".into(),
        Some(64496)
    )));
    // An unexpected origin that RPKI authorises: origin_mismatch, marked RPKI-valid.
    h.announce(2, "203.0.113.0/24", &[174, 64497]);
    let opened = h.engine.drain_events();
    let mismatch = opened
        .iter()
        .find(|e| e.kind == AnomalyKind::OriginMismatch)
        .unwrap();
    assert_eq!(mismatch.rpki, Some(RovState::Valid));
    // A hijack: invalid (origin) too.
    h.announce(3, "203.0.113.0/24", &[1299, 666]);
    let kinds: Vec<_> = h.events().into_iter().map(|e| (e.1, e.3)).collect();
    assert!(kinds.contains(&(AnomalyKind::RpkiInvalid, Some(666))));
    let s = h.engine.stats(0);
    // valid: 64496 and 64497 exact routes; invalid_origin: 666; invalid_length: the /25.
    assert_eq!(s.rpki_routes, [2, 1, 1, 0]);
    assert_eq!(s.anomalies_active[AnomalyKind::RpkiInvalid.index()], 2);
    // RPKI switched off: every rpki_invalid resolves (revalidated), the counts return to 0.
    h.engine.set_rpki(None, None, 2.0);
    let evs = h.engine.drain_events();
    assert_eq!(evs.len(), 2);
    assert!(evs.iter().all(
        |e| e.kind == AnomalyKind::RpkiInvalid && e.reason == Some(RemovalReason::Revalidated)
    ));
    assert_eq!(h.engine.stats(0).rpki_routes, [0, 0, 0, 0]);
}

// ---- registry reload ----

/// A registry with the test location changed by `edit`, plus `extra` locations.
fn edited(edit: impl FnOnce(&mut Location), extra: Vec<Location>) -> Arc<Registry> {
    let mut loc = registry(1).locations()[0].clone();
    edit(&mut loc);
    let mut all = vec![loc];
    all.extend(extra);
    Arc::new(Registry::new(all).unwrap())
}

/// (transition, kind, announced, asn, reason) of the events since the last call.
fn reload_events(h: &mut Harness) -> Vec<(Transition, AnomalyKind, String, Option<RemovalReason>)> {
    h.engine
        .drain_events()
        .into_iter()
        .map(|e| (e.transition, e.kind, e.announced.to_string(), e.reason))
        .collect()
}

#[test]
fn reload_with_the_same_registry_changes_nothing() {
    let mut h = Harness::new(1);
    h.announce(1, "203.0.113.0/24", &[3356, 64500, 64496]);
    h.announce(2, "203.0.113.0/24", &[174, 64500, 64496]);
    h.announce(1, "2001:db8:100::/48", &[3356, 64500, 64666]);
    h.withdraw(2, "203.0.113.0/24");
    h.announce(2, "203.0.113.0/24", &[174, 64500, 64496]);
    assert_eq!(h.events().len(), 1);
    h.engine.drain_route_events();
    let (before_prefixes, before_anomalies) = (h.engine.prefix_summaries(), h.engine.anomalies());
    let stats_before: Vec<PrefixStats> = (0..2).map(|r| h.engine.stats(r)).collect();

    let summary = h.engine.reload(registry(1), 5000.0);
    assert_eq!(
        summary,
        ReloadSummary {
            prefixes_kept: 2,
            routes_kept: 3,
            ..Default::default()
        }
    );
    assert!(h.events().is_empty());
    assert!(h.engine.drain_route_events().is_empty());
    assert_eq!(h.engine.prefix_summaries(), before_prefixes);
    assert_eq!(h.engine.anomalies(), before_anomalies);
    for r in 0..2 {
        assert_eq!(h.engine.stats(r), stats_before[r as usize]);
    }
    assert_eq!(h.engine.tracked_routes(), 3);
    assert_eq!(h.engine.take_dirty().len(), 2);
    // Updates keep working on the new registry.
    h.withdraw(1, "2001:db8:100::/48");
    assert_eq!(
        reload_events(&mut h),
        vec![
            (
                Resolved,
                AnomalyKind::OriginMismatch,
                "2001:db8:100::/48".into(),
                Some(RemovalReason::Withdrawn)
            ),
            (
                Opened,
                AnomalyKind::Withdrawn,
                "2001:db8:100::/48".into(),
                None
            )
        ]
    );
}

#[test]
fn reload_resolves_anomalies_of_removed_prefixes_as_unregistered() {
    let mut h = Harness::new(1);
    h.announce(1, "203.0.113.0/24", &[3356, 64500, 64496]);
    h.announce(1, "2001:db8:100::/48", &[3356, 64500, 64666]);
    h.events();
    let new = edited(|l| l.prefixes.retain(|p| p.addr().is_ipv4()), vec![]);
    let summary = h.engine.reload(new, 5000.0);
    assert_eq!(
        (
            summary.prefixes_kept,
            summary.prefixes_removed,
            summary.routes_dropped,
            summary.anomalies_resolved,
            summary.anomalies_opened
        ),
        (1, 1, 1, 1, 0)
    );
    let events = h.engine.drain_events();
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(
        (e.transition, e.kind, e.reason, e.time, e.prefix.to_string()),
        (
            Resolved,
            AnomalyKind::OriginMismatch,
            Some(RemovalReason::Unregistered),
            5000.0,
            "2001:db8:100::/48".to_string()
        )
    );
    assert_eq!(e.location, "contoso-seattle");
    assert!(h.engine.anomalies().is_empty());
    assert_eq!(h.engine.tracked_routes(), 1);
    assert_eq!(h.engine.prefix_summaries().len(), 1);
    assert_eq!(h.engine.stats(0).visibility, 1);
    assert_eq!(h.active(0, AnomalyKind::OriginMismatch), 0);
}

#[test]
fn reload_with_a_new_policy_resolves_and_opens() {
    let mut h = Harness::new(1);
    h.announce(1, "2001:db8:100::/48", &[3356, 64500, 64666]);
    h.announce(2, "203.0.113.0/24", &[3356, 64501, 64496]);
    assert_eq!(h.events().len(), 2); // origin mismatch, unexpected upstream
    let upstream_opened_at = h
        .engine
        .anomalies()
        .iter()
        .find(|a| a.kind == AnomalyKind::UnexpectedUpstream)
        .unwrap()
        .opened_at;
    // AS64666 becomes an expected origin; AS64501 stays unexpected; min-peers 2 does not close
    // what is open.
    let new = edited(
        |l| {
            l.origin_asns.push(64666);
            l.min_peers = 2;
        },
        vec![],
    );
    h.engine.reload(new, 5000.0);
    assert_eq!(
        reload_events(&mut h),
        vec![(
            Resolved,
            AnomalyKind::OriginMismatch,
            "2001:db8:100::/48".into(),
            Some(RemovalReason::Reconfigured)
        )]
    );
    let left = h.engine.anomalies();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].kind, AnomalyKind::UnexpectedUpstream);
    assert!(left[0].open);
    assert_eq!(left[0].opened_at, upstream_opened_at);
    assert_eq!(h.active(0, AnomalyKind::UnexpectedUpstream), 1);
    assert_eq!(
        h.engine.stats(0).anomalies_opened[AnomalyKind::UnexpectedUpstream.index()],
        1
    );

    // Another expected upstream: AS64501 is still unexpected (the same instance stays open), and
    // the IPv6 route's upstream AS64500 is now unexpected too.
    let new = edited(
        |l| {
            l.origin_asns.push(64666);
            l.provider_asns = vec![64502];
        },
        vec![],
    );
    h.engine.reload(new, 6000.0);
    assert_eq!(
        reload_events(&mut h),
        vec![(
            Opened,
            AnomalyKind::UnexpectedUpstream,
            "2001:db8:100::/48".into(),
            None
        )]
    );
    // A policy that now flags held routes opens them at the reload's time.
    let new = edited(|l| l.origin_asns = vec![64497], vec![]);
    h.engine.reload(new, 7000.0);
    let events = h.engine.drain_events();
    let opened: Vec<_> = events
        .iter()
        .filter(|e| e.transition == Opened)
        .map(|e| (e.kind, e.announced.to_string(), e.time))
        .collect();
    assert!(opened.contains(&(AnomalyKind::OriginMismatch, "203.0.113.0/24".into(), 7000.0)));
    assert!(opened.contains(&(
        AnomalyKind::OriginMismatch,
        "2001:db8:100::/48".into(),
        7000.0
    )));
    assert_eq!(h.active(0, AnomalyKind::OriginMismatch), 1);
    assert_eq!(
        h.engine.stats(0).anomalies_opened[AnomalyKind::OriginMismatch.index()],
        1
    );
}

#[test]
fn reload_evaluates_a_newly_registered_prefix_against_held_routes() {
    let mut h = Harness::new(1);
    h.announce(1, "203.0.113.0/24", &[3356, 64500, 64496]);
    // A more-specific of the expected origin beyond max-length 24.
    h.announce(1, "203.0.113.128/25", &[3356, 64500, 64496]);
    h.announce(2, "203.0.113.128/25", &[174, 64500, 64496]);
    assert_eq!(
        h.events(),
        vec![(
            Opened,
            AnomalyKind::UnexpectedMoreSpecific,
            "203.0.113.128/25".into(),
            Some(64496)
        )]
    );
    let mut other = registry(1).locations()[0].clone();
    other.name = "fabrikam".into();
    other.prefixes = vec!["203.0.113.128/25".parse().unwrap()];
    other.origin_asns = vec![64999];
    other.provider_asns = vec![];
    other.max_length = None;
    let summary = h.engine.reload(edited(|_| {}, vec![other]), 5000.0);
    assert_eq!((summary.prefixes_added, summary.routes_kept), (1, 3));
    let events = reload_events(&mut h);
    assert_eq!(
        events,
        vec![
            (
                Resolved,
                AnomalyKind::UnexpectedMoreSpecific,
                "203.0.113.128/25".into(),
                Some(RemovalReason::Reconfigured)
            ),
            (
                Opened,
                AnomalyKind::OriginMismatch,
                "203.0.113.128/25".into(),
                None
            ),
        ]
    );
    let new = h
        .engine
        .registry()
        .find(&"203.0.113.128/25".parse().unwrap())
        .unwrap();
    let s = h.engine.prefix_summary(new);
    assert_eq!(
        (s.location.as_str(), s.visibility, s.origins.clone()),
        ("fabrikam", 2, vec![64496])
    );
    assert_eq!(
        s.announcements, 0,
        "held routes are not counted as new announcements"
    );
    assert!(h.engine.prefix_summary(0).more_specifics.is_empty());
    assert_eq!(h.engine.tracked_routes(), 3);
}

#[test]
fn updates_matched_against_an_older_registry_are_matched_again() {
    let mut h = Harness::new(1);
    let old = h.engine.registry().clone();
    let new = edited(|l| l.prefixes.retain(|p| p.addr().is_ipv6()), vec![]);
    h.engine.reload(new, 10.0);
    // The IPv6 prefix had id 1 in the old registry and has id 0 now.
    for (prefix, path) in [
        ("2001:db8:100::/48", [1, 64496]),
        ("203.0.113.0/24", [1, 64496]),
    ] {
        let prefix: IpNet = prefix.parse().unwrap();
        let update = RouteUpdate {
            timestamp: 20.0,
            peer: peer(1),
            prefix,
            path_id: 0,
            matched: old.lookup(&prefix).unwrap(),
            change: RouteChange::Announce(Arc::new(AsPath::from_sequence(&path))),
        };
        h.engine.apply_matched(&update, old.generation());
    }
    assert_eq!(h.engine.tracked_routes(), 1);
    assert_eq!(h.engine.stats(0).visibility, 1);
    assert_eq!(
        h.engine.prefix_summary(0).prefix.to_string(),
        "2001:db8:100::/48"
    );
}

#[test]
fn reload_carries_visibility_anomalies_under_the_new_thresholds() {
    let mut h = Harness::new(1);
    h.announce(1, "203.0.113.0/24", &[3356, 64500, 64496]);
    h.withdraw(1, "203.0.113.0/24");
    h.announce(1, "2001:db8:100::/48", &[3356, 64500, 64496]);
    assert_eq!(
        h.events(),
        vec![(
            Opened,
            AnomalyKind::Withdrawn,
            "203.0.113.0/24".into(),
            None
        )]
    );
    // Same thresholds: withdrawn stays open, nothing else happens.
    h.engine.reload(registry(1), 100.0);
    assert!(h.events().is_empty());
    assert_eq!(h.active(0, AnomalyKind::Withdrawn), 1);
    // min-visibility 3 with one peer on the IPv6 prefix: visibility_lost opens there; the
    // unseen IPv4 prefix stays withdrawn (not visibility-lost: it is simply not seen).
    h.engine
        .reload(edited(|l| l.min_visibility = 3, vec![]), 200.0);
    assert_eq!(
        h.events(),
        vec![(
            Opened,
            AnomalyKind::VisibilityLost,
            "2001:db8:100::/48".into(),
            None
        )]
    );
    // Back to no threshold: it resolves as reconfigured.
    h.engine.reload(registry(1), 300.0);
    assert_eq!(
        reload_events(&mut h),
        vec![(
            Resolved,
            AnomalyKind::VisibilityLost,
            "2001:db8:100::/48".into(),
            Some(RemovalReason::Reconfigured)
        )]
    );
    // The IPv4 prefix comes back: withdrawn resolves as usual.
    h.announce(2, "203.0.113.0/24", &[174, 64500, 64496]);
    assert_eq!(
        h.events(),
        vec![(
            Resolved,
            AnomalyKind::Withdrawn,
            "203.0.113.0/24".into(),
            None
        )]
    );
}

/// A hijacker announcing and withdrawing a more-specific in a loop, with a hold-down: one
/// incident (one opening, one resolution after it stops), its flaps counted, the active count
/// at 1 throughout; the resolution carries the time the last carrier went away.
#[test]
fn a_flapping_hijack_is_one_incident_with_its_flap_count() {
    let mut h = Harness::new(1);
    h.engine.set_hold_down(60.0);
    h.announce(1, "203.0.113.0/24", &[3356, 64500, 64496]);
    for _ in 0..10 {
        h.announce(2, "203.0.113.128/25", &[3356, 666]);
        h.withdraw(2, "203.0.113.128/25");
        assert_eq!(h.active(0, AnomalyKind::SubprefixHijack), 1);
    }
    let last_withdrawal = h.ts;
    let events = h.engine.drain_events();
    let hijack: Vec<&AnomalyEvent> = events
        .iter()
        .filter(|e| e.kind == AnomalyKind::SubprefixHijack)
        .collect();
    assert_eq!(hijack.len(), 1, "{events:?}");
    assert_eq!(hijack[0].transition, Opened);
    assert_eq!(h.engine.flaps()[AnomalyKind::SubprefixHijack.index()], 9);
    // Waiting out the hold-down: listed as resolving, with its flaps.
    let listed: Vec<AnomalySummary> = h
        .engine
        .anomalies()
        .into_iter()
        .filter(|a| a.kind == AnomalyKind::SubprefixHijack)
        .collect();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].resolving_since, Some(last_withdrawal));
    assert_eq!(
        (listed[0].flaps, listed[0].peers, listed[0].open),
        (9, 0, true)
    );
    assert!(h
        .engine
        .prefix_summary(0)
        .anomalies
        .iter()
        .any(|a| a.kind == AnomalyKind::SubprefixHijack && a.resolving_since.is_some()));
    // Not yet due.
    assert_eq!(h.engine.release_due(last_withdrawal + 59.0), 0);
    assert_eq!(h.active(0, AnomalyKind::SubprefixHijack), 1);
    assert_eq!(h.engine.release_due(last_withdrawal + 60.0), 1);
    let resolved: Vec<AnomalyEvent> = h
        .engine
        .drain_events()
        .into_iter()
        .filter(|e| e.kind == AnomalyKind::SubprefixHijack)
        .collect();
    assert_eq!(resolved.len(), 1);
    assert_eq!(resolved[0].transition, Resolved);
    assert_eq!(resolved[0].time, last_withdrawal);
    assert_eq!(resolved[0].flaps, 9);
    assert_eq!(resolved[0].reason, Some(RemovalReason::Withdrawn));
    assert_eq!(h.active(0, AnomalyKind::SubprefixHijack), 0);
    assert_eq!(
        h.engine.stats(0).anomalies_opened[AnomalyKind::SubprefixHijack.index()],
        1
    );
    assert!(h
        .engine
        .anomalies()
        .iter()
        .all(|a| a.kind != AnomalyKind::SubprefixHijack));
}

/// A carrier replaced by another path carrying the same anomaly, in one update, is no flap;
/// without a hold-down an instance resolves at once, as before.
#[test]
fn a_replaced_carrier_is_no_flap_and_no_hold_down_resolves_at_once() {
    let mut h = Harness::new(1);
    h.engine.set_hold_down(60.0);
    h.announce(1, "203.0.113.0/24", &[3356, 64500, 64496]);
    h.events();
    h.announce(2, "203.0.113.0/24", &[3356, 666]);
    h.announce(2, "203.0.113.0/24", &[174, 666]);
    assert_eq!(h.engine.flaps(), &[0; KINDS]);
    let opened: Vec<Transition> = h.events().into_iter().map(|e| e.0).collect();
    assert_eq!(
        opened,
        vec![Opened, Opened],
        "origin mismatch and MOAS, once each"
    );
    // Released, then flushed (end of a replay): resolved with the withdrawal's time.
    h.withdraw(2, "203.0.113.0/24");
    let withdrawn_at = h.ts;
    assert!(h.events().is_empty());
    assert_eq!(h.engine.flush_releases(), 2);
    let ev = h.engine.drain_events();
    assert!(ev
        .iter()
        .all(|e| e.transition == Resolved && e.time == withdrawn_at && e.flaps == 0));

    let mut h = Harness::new(1);
    h.announce(1, "203.0.113.0/24", &[3356, 64500, 64496]);
    h.events();
    h.announce(2, "203.0.113.0/24", &[3356, 666]);
    h.withdraw(2, "203.0.113.0/24");
    let origin: Vec<Transition> = h
        .events()
        .into_iter()
        .filter(|e| e.1 == AnomalyKind::OriginMismatch)
        .map(|e| e.0)
        .collect();
    assert_eq!(origin, vec![Opened, Resolved]);
    assert_eq!(h.engine.releasing(), 0);
}

/// `withdrawn` damps like the rest, and its resolution says visibility came back.
#[test]
fn a_flapping_withdrawal_resolves_once_as_recovered() {
    let mut h = Harness::new(1);
    h.engine.set_hold_down(30.0);
    h.announce(1, "203.0.113.0/24", &[3356, 64500, 64496]);
    for _ in 0..3 {
        h.withdraw(1, "203.0.113.0/24");
        h.announce(1, "203.0.113.0/24", &[3356, 64500, 64496]);
    }
    let withdrawn: Vec<AnomalyEvent> = h
        .engine
        .drain_events()
        .into_iter()
        .filter(|e| e.kind == AnomalyKind::Withdrawn)
        .collect();
    assert_eq!(withdrawn.len(), 1, "{withdrawn:?}");
    h.engine.release_due(h.ts + 30.0);
    let resolved = h.engine.drain_events();
    assert_eq!(resolved.len(), 1);
    assert_eq!(resolved[0].reason, Some(RemovalReason::Recovered));
    assert_eq!(resolved[0].flaps, 2);
}

/// Loading the same VRPs again (SIGHUP with an unchanged file) changes nothing: no transition,
/// the same counts, the anomaly keeps its opening time.
#[test]
fn an_unchanged_vrp_set_causes_no_transition() {
    use crate::rpki::{Vrp, VrpSet};
    let set = || {
        rpki(VrpSet::from_vrps([Vrp::new(
            "203.0.113.0/24".parse().unwrap(),
            24,
            64496,
        )
        .unwrap()]))
    };
    let mut h = Harness::new(1);
    h.engine.set_rpki(Some(set()), None, 1.0);
    h.announce(1, "203.0.113.0/24", &[3356, 64500, 64496]);
    h.announce(3, "203.0.113.0/24", &[1299, 666]);
    assert!(h.events().contains(&(
        Opened,
        AnomalyKind::RpkiInvalid,
        "203.0.113.0/24".into(),
        Some(666)
    )));
    let before = (h.engine.stats(0), h.engine.anomalies());
    h.engine.set_rpki(Some(set()), None, 5000.0);
    assert!(h.events().is_empty());
    assert_eq!((h.engine.stats(0), h.engine.anomalies()), before);
}

/// The wall clock ends an incident whose feed went quiet, and only after the hold-down on the
/// wall clock: a flood whose BGP times are old (an old file, a router with a wrong clock) is
/// not resolved early by a wall clock far ahead of them.
#[test]
fn the_wall_clock_hold_down_counts_from_the_release() {
    let mut h = Harness::new(1);
    h.engine.set_hold_down(60.0);
    h.engine.release_idle(1_000_000.0);
    h.announce(1, "203.0.113.0/24", &[3356, 64500, 64496]);
    h.announce(2, "203.0.113.0/24", &[3356, 666]);
    h.withdraw(2, "203.0.113.0/24");
    h.events();
    // Far ahead of the BGP times, but only 30 s after the release on the wall clock.
    assert_eq!(h.engine.release_idle(1_000_030.0), 0);
    h.announce(2, "203.0.113.0/24", &[3356, 666]);
    h.withdraw(2, "203.0.113.0/24");
    assert!(h.events().is_empty(), "still one incident");
    assert_eq!(h.engine.release_idle(1_000_050.0), 0);
    assert_eq!(
        h.engine.release_idle(1_000_100.0),
        2,
        "origin mismatch and MOAS"
    );
    let resolved = h.engine.drain_events();
    assert!(resolved
        .iter()
        .all(|e| e.transition == Resolved && e.time < 2000.0));
}

/// Two origins that are both registered for the location (a multihomed customer, or one
/// ADD-PATH peer carrying both) are no MOAS; a third, unregistered one is.
#[test]
fn moas_needs_an_origin_the_location_did_not_register() {
    let registry = Arc::new(
        Registry::new(vec![Location {
            name: "multihomed".into(),
            provider: None,
            provider_asns: vec![],
            region: None,
            origin_asns: vec![64496, 64497],
            prefixes: vec!["203.0.113.0/24".parse().unwrap()],
            max_length: None,
            max_length_v6: None,
            min_peers: 1,
            min_visibility: 0,
        }])
        .unwrap(),
    );
    let mut h = Harness {
        engine: Engine::new(registry),
        ts: 1000.0,
    };
    h.announce(1, "203.0.113.0/24", &[3356, 64496]);
    h.announce(2, "203.0.113.0/24", &[3356, 64497]);
    assert!(h.events().is_empty(), "both origins registered");
    h.announce(3, "203.0.113.0/24", &[3356, 666]);
    let kinds: Vec<_> = h.events().into_iter().map(|e| (e.0, e.1)).collect();
    assert!(kinds.contains(&(Opened, AnomalyKind::Moas)), "{kinds:?}");
    h.withdraw(3, "203.0.113.0/24");
    let kinds: Vec<_> = h.events().into_iter().map(|e| (e.0, e.1)).collect();
    assert!(kinds.contains(&(Resolved, AnomalyKind::Moas)), "{kinds:?}");
}

#[test]
fn pages_concatenate_to_the_whole_lists() {
    let mut h = Harness::new(1);
    h.announce(1, "203.0.113.0/24", &[3356, 666]);
    h.announce(2, "203.0.113.0/25", &[174, 667]);
    h.announce(3, "203.0.113.128/25", &[174, 64500, 668]);
    h.announce(1, "2001:db8:100::/48", &[3356, 669]);
    h.announce(2, "2001:db8:100::/49", &[3356, 670]);
    let all = h.engine.anomalies();
    assert!(all.len() >= 5, "{all:?}");
    for limit in [1, 2, 3, all.len(), all.len() + 1, 1000] {
        let (mut got, mut after) = (Vec::new(), None);
        for _ in 0..=all.len() {
            let page = h
                .engine
                .anomalies_page(after, limit, &AnomalyFilter::default());
            assert!(page.items.len() <= limit);
            got.extend(page.items);
            after = page.next;
            if after.is_none() {
                break;
            }
        }
        assert_eq!(after, None, "limit {limit}: ended");
        assert_eq!(got, all, "limit {limit}");
    }
    let prefixes = h.engine.prefix_summaries();
    for limit in [1, 2, 1000] {
        let (mut got, mut from) = (Vec::new(), 0);
        loop {
            let page = h
                .engine
                .prefix_summaries_page(from, limit, &PrefixFilter::default());
            got.extend(page.items);
            match page.next {
                Some(n) => from = n,
                None => break,
            }
        }
        assert_eq!(got, prefixes, "limit {limit}");
    }
    assert!(h
        .engine
        .prefix_summaries_page(99, 10, &PrefixFilter::default())
        .items
        .is_empty());
}

/// The status page's overview: counts by state and severity, the most severe first.
#[test]
fn anomaly_overview_counts_and_puts_the_most_severe_first() {
    let mut h = Harness::new(1);
    h.engine.set_hold_down(60.0);
    h.announce(1, "203.0.113.0/24", &[3356, 666]);
    h.announce(2, "203.0.113.0/25", &[174, 667]);
    h.announce(3, "203.0.113.128/25", &[174, 64500, 668]);
    h.announce(1, "2001:db8:100::/48", &[3356, 669]);
    h.announce(2, "2001:db8:100::/49", &[3356, 670]);
    h.announce(3, "203.0.113.64/26", &[3356, 671]);
    h.withdraw(3, "203.0.113.64/26");
    // Warnings: an upstream that is not a provider, a more-specific beyond max-length.
    h.announce(4, "203.0.113.0/24", &[3356, 64501, 64496]);
    h.announce(4, "203.0.113.192/26", &[3356, 64500, 64496]);
    assert_eq!(h.engine.releasing(), 1);
    let all = h.engine.anomalies();
    let mut by_severity = all.clone();
    by_severity.sort_by_key(|a| std::cmp::Reverse(a.severity));
    assert!(
        by_severity.first().map(|a| a.severity) > by_severity.last().map(|a| a.severity),
        "mixed severities: {all:?}"
    );
    for limit in [0, 1, 3, all.len(), all.len() + 5] {
        let o = h.engine.anomaly_overview(limit);
        assert_eq!(o.total, all.len());
        assert_eq!(o.resolving, 1);
        assert_eq!(o.pending, 0, "min-peers 1");
        assert_eq!(o.open + o.pending + o.resolving, o.total);
        assert_eq!(o.by_severity.iter().sum::<usize>(), o.total);
        let critical = all.iter().filter(|a| a.severity == Severity::Critical);
        assert_eq!(o.by_severity[3], critical.count());
        let want: Vec<_> = by_severity.iter().take(limit).cloned().collect();
        assert_eq!(o.top, want, "limit {limit}");
    }
}

/// The hold-down set is bounded: past its cap an instance resolves at once, counted.
#[test]
fn the_hold_down_set_is_capped_and_what_it_skips_is_counted() {
    let mut h = Harness::new(1);
    h.engine.set_hold_down(60.0);
    h.engine.max_releasing = 2;
    h.announce(1, "203.0.113.0/24", &[3356, 64500, 64496]);
    for (i, prefix) in ["203.0.113.0/25", "203.0.113.128/25", "203.0.113.64/26"]
        .iter()
        .enumerate()
    {
        h.announce(2, prefix, &[3356, 600 + i as u32]);
        h.withdraw(2, prefix);
    }
    assert_eq!(h.engine.releasing(), 2);
    assert_eq!(h.engine.holds_skipped(), 1);
    let resolved: Vec<AnomalyEvent> = h
        .engine
        .drain_events()
        .into_iter()
        .filter(|e| e.transition == Resolved)
        .collect();
    assert_eq!(resolved.len(), 1, "the third resolved at once");
    assert_eq!(resolved[0].announced.to_string(), "203.0.113.64/26");
}

/// The carriers of one instance come in no time order (RIB entries carry their originated
/// times; a BMP message without a timestamp gets the wall clock): `first_seen` is the earliest
/// time seen, `last_seen` the latest, and `opened_at` lies between, whatever the order —
/// before, a carrier older than the first put `last_seen` before `first_seen`.
#[test]
fn first_seen_is_never_after_last_seen_whatever_order_the_routes_come_in() {
    let mut h = Harness::new(2);
    h.engine.set_hold_down(60.0);
    let at = |h: &mut Harness, p: u8, prefix: &str, path: &[u32], ts: f64| {
        let prefix: IpNet = prefix.parse().unwrap();
        let matched = h.engine.registry().lookup(&prefix).unwrap();
        h.engine.apply(&RouteUpdate {
            timestamp: ts,
            peer: peer(p),
            prefix,
            path_id: 0,
            matched,
            change: RouteChange::Announce(Arc::new(AsPath::from_sequence(path))),
        });
    };
    // A RIB's entries: the registered prefix from its origin, then a hijacked sub-prefix and
    // a second origin of the exact prefix, from peers whose routes are older than the first.
    at(&mut h, 1, "203.0.113.0/24", &[3356, 64500, 64496], 5000.0);
    at(&mut h, 1, "203.0.113.0/25", &[3356, 666], 4000.0);
    at(&mut h, 2, "203.0.113.0/25", &[174, 666], 1000.0);
    at(&mut h, 3, "203.0.113.0/25", &[2914, 666], 3000.0);
    at(&mut h, 2, "203.0.113.0/24", &[174, 777], 2000.0);
    at(&mut h, 3, "203.0.113.0/24", &[2914, 777], 1500.0);
    let check = |h: &Harness| {
        let all = h.engine.anomalies();
        assert!(!all.is_empty());
        for a in &all {
            assert!(a.first_seen <= a.last_seen, "{a:?}");
            if let Some(o) = a.opened_at {
                assert!(a.first_seen <= o && o <= a.last_seen, "{a:?}");
            }
        }
        all
    };
    let all = check(&h);
    let find = |all: &[AnomalySummary], kind: AnomalyKind| {
        all.iter()
            .find(|a| a.kind == kind)
            .map(|a| (a.first_seen, a.opened_at, a.last_seen))
            .unwrap()
    };
    assert_eq!(
        find(&all, AnomalyKind::SubprefixHijack),
        (1000.0, Some(1000.0), 4000.0),
        "opened by the second carrier (min-peers 2), at its time"
    );
    assert_eq!(
        find(&all, AnomalyKind::OriginMismatch),
        (1500.0, Some(1500.0), 2000.0)
    );
    assert_eq!(
        find(&all, AnomalyKind::Moas),
        (1500.0, None, 2000.0),
        "pending: the registered origin has one route, fewer than min-peers"
    );
    // Back within the hold-down with an older time: the same incident, times still ordered.
    for p in 1..=3 {
        let prefix: IpNet = "203.0.113.0/25".parse().unwrap();
        let matched = h.engine.registry().lookup(&prefix).unwrap();
        h.engine.apply(&RouteUpdate {
            timestamp: 6000.0,
            peer: peer(p),
            prefix,
            path_id: 0,
            matched,
            change: RouteChange::Withdraw,
        });
    }
    assert_eq!(h.engine.releasing(), 1);
    at(&mut h, 2, "203.0.113.0/25", &[174, 666], 500.0);
    let all = check(&h);
    assert_eq!(
        find(&all, AnomalyKind::SubprefixHijack),
        (500.0, Some(1000.0), 4000.0)
    );
    // After a reload, the kept instances keep their times.
    let reg = h.engine.registry().clone();
    h.engine.reload(reg, 7000.0);
    check(&h);
}

/// Filtered pages list exactly what the filter admits, in list order, across pages.
#[test]
fn filtered_pages_list_what_the_filter_admits() {
    let mut h = Harness::new(2);
    h.engine.set_hold_down(60.0);
    // Open: a /25 hijack carried by two peers; pending: a /26 by one; resolving: a v6 /49
    // that opened and lost its carriers.
    for p in [1, 2] {
        h.announce(p, "203.0.113.0/25", &[3356, 666]);
        h.announce(p, "2001:db8:100::/49", &[3356, 670]);
    }
    h.announce(3, "203.0.113.64/26", &[174, 667]);
    for p in [1, 2] {
        h.withdraw(p, "2001:db8:100::/49");
    }
    let all = h.engine.anomalies();
    let phase_of = |a: &AnomalySummary| a.state;
    assert!(all.iter().any(|a| phase_of(a) == AnomalyPhase::Open));
    assert!(all.iter().any(|a| phase_of(a) == AnomalyPhase::Pending));
    assert!(all.iter().any(|a| phase_of(a) == AnomalyPhase::Resolving));
    let v4: IpNet = "203.0.113.0/24".parse().unwrap();
    type Admits = Box<dyn Fn(&AnomalySummary) -> bool>;
    let cases: Vec<(AnomalyFilter, Admits)> = vec![
        (AnomalyFilter::default(), Box::new(|_| true)),
        (
            AnomalyFilter {
                open: Some(true),
                ..Default::default()
            },
            Box::new(|a| a.open),
        ),
        (
            AnomalyFilter {
                open: Some(false),
                ..Default::default()
            },
            Box::new(|a| !a.open && a.state == AnomalyPhase::Pending),
        ),
        (
            AnomalyFilter {
                state: Some(AnomalyPhase::Resolving),
                ..Default::default()
            },
            Box::new(|a| a.resolving_since.is_some()),
        ),
        (
            AnomalyFilter {
                prefix: Some(v4),
                kind: Some(AnomalyKind::SubprefixHijack),
                ..Default::default()
            },
            Box::new(move |a| a.prefix == v4 && a.kind == AnomalyKind::SubprefixHijack),
        ),
        (
            AnomalyFilter {
                location: Some("contoso-seattle".into()),
                ..Default::default()
            },
            Box::new(|_| true),
        ),
        (
            AnomalyFilter {
                location: Some("elsewhere".into()),
                ..Default::default()
            },
            Box::new(|_| false),
        ),
        (
            AnomalyFilter {
                prefix: Some("198.51.100.0/24".parse().unwrap()),
                ..Default::default()
            },
            Box::new(|_| false),
        ),
    ];
    for (filter, admitted) in &cases {
        let want: Vec<&AnomalySummary> = all.iter().filter(|a| admitted(a)).collect();
        for limit in [1, 2, 1000] {
            let (mut got, mut after) = (Vec::new(), None);
            for _ in 0..=all.len() {
                let page = h.engine.anomalies_page(after, limit, filter);
                got.extend(page.items);
                after = page.next;
                if after.is_none() {
                    break;
                }
            }
            assert_eq!(after, None, "{filter:?} limit {limit}: ended");
            let got: Vec<&AnomalySummary> = got.iter().collect();
            assert_eq!(got, want, "{filter:?} limit {limit}");
        }
    }
    // Prefixes: by location and by prefix.
    let by_prefix = PrefixFilter {
        prefix: Some("2001:db8:100::/48".parse().unwrap()),
        ..Default::default()
    };
    let page = h.engine.prefix_summaries_page(0, 10, &by_prefix);
    let got: Vec<String> = page.items.iter().map(|p| p.prefix.to_string()).collect();
    assert_eq!(
        (got, page.next),
        (vec!["2001:db8:100::/48".to_string()], None)
    );
    let by_location = PrefixFilter {
        location: Some("contoso-seattle".into()),
        ..Default::default()
    };
    let first = h.engine.prefix_summaries_page(0, 1, &by_location);
    assert_eq!(first.items.len(), 1);
    let next = first.next.unwrap();
    let second = h.engine.prefix_summaries_page(next, 1, &by_location);
    assert_eq!((second.items.len(), second.next), (1, None));
    let nowhere = PrefixFilter {
        location: Some("elsewhere".into()),
        ..Default::default()
    };
    let none = h.engine.prefix_summaries_page(0, 10, &nowhere);
    assert!(none.items.is_empty() && none.next.is_none());
}

// ---- route leaks (ASPA, OTC) ----

/// The registered origin 64496 buys transit from 64500; 64500 from 64510 and 64511. A path
/// 64511 64500 64496 is up-up: fine. 64520 64501 64500 64496 has 64501 (a customer of 64500)
/// passing its provider's route on to its other provider 64520: a leak by 64501. (The
/// downstream procedure sees it only because 64520 has an ASPA too, not naming 64501: it uses
/// each AS's own record, never the reverse of another's.)
fn leak_aspas() -> Arc<RpkiData> {
    aspa(
        crate::rpki::VrpSet::new(),
        &[
            (64496, &[64500]),
            (64500, &[64510, 64511]),
            (64501, &[64500, 64520]),
            (64520, &[64530]),
        ],
    )
}

#[test]
fn an_aspa_invalid_path_opens_route_leak_naming_the_leaker_and_resolves_on_withdraw() {
    let mut h = Harness::new(1);
    h.engine.set_rpki(Some(leak_aspas()), None, 1.0);
    h.announce(1, "203.0.113.0/24", &[64511, 64500, 64496]);
    assert!(h.events().is_empty(), "a valley-free path");
    h.announce(2, "203.0.113.0/24", &[64520, 64501, 64500, 64496]);
    let evs = h.engine.drain_events();
    assert_eq!(evs.len(), 1, "{evs:?}");
    let e = &evs[0];
    assert_eq!(
        (e.transition, e.kind, e.asn),
        (Opened, AnomalyKind::RouteLeak, Some(64501))
    );
    let leak = e.leak.expect("the event says why");
    assert_eq!(
        leak.reason,
        LeakReason::AspaDownstream,
        "role unknown: downstream"
    );
    assert_eq!(h.active(0, AnomalyKind::RouteLeak), 1);
    h.withdraw(2, "203.0.113.0/24");
    assert_eq!(
        h.events(),
        vec![(
            Resolved,
            AnomalyKind::RouteLeak,
            "203.0.113.0/24".into(),
            Some(64501)
        )]
    );
}

#[test]
fn an_rpki_delta_revalidates_only_the_routes_it_touches() {
    use crate::rpki::{Vrp, VrpSet};
    let mut h = Harness::new(1);
    let vrp = |p: &str, asn| Vrp::new(p.parse().unwrap(), 48, asn).unwrap();
    let v6 = "2001:db8:100::/48";
    h.engine.set_rpki(
        Some(aspa(VrpSet::from_vrps([vrp(v6, 64496)]), &[])),
        None,
        1.0,
    );
    h.announce(1, "203.0.113.0/24", &[64511, 64500, 64496]);
    h.announce(2, "203.0.113.0/24", &[64520, 64501, 64500, 64496]);
    h.announce(1, v6, &[64511, 64500, 64496]);
    assert!(h.events().is_empty(), "no ASPA yet, RPKI-valid v6");
    // The ASPAs arrive: only routes whose path has a changed customer are looked at (all
    // three here), and the leak opens.
    let records: [(u32, &[u32]); 4] = [
        (64496, &[64500]),
        (64500, &[64510, 64511]),
        (64501, &[64500, 64520]),
        (64520, &[64530]),
    ];
    let delta = RpkiDelta::new(vec![], vec![64496, 64500, 64501, 64520]);
    let next = aspa(VrpSet::from_vrps([vrp(v6, 64496)]), &records);
    assert_eq!(h.engine.set_rpki(Some(next.clone()), Some(&delta), 2.0), 3);
    assert_eq!(
        h.events(),
        vec![(
            Opened,
            AnomalyKind::RouteLeak,
            "203.0.113.0/24".into(),
            Some(64501)
        )]
    );
    // A VRP change for the v6 prefix only touches the one v6 route: it turns invalid.
    let moved = aspa(VrpSet::from_vrps([vrp(v6, 64497)]), &records);
    let delta = RpkiDelta::new(vec![v6.parse().unwrap()], vec![]);
    assert_eq!(h.engine.set_rpki(Some(moved), Some(&delta), 3.0), 1);
    assert_eq!(
        h.events(),
        vec![(Opened, AnomalyKind::RpkiInvalid, v6.into(), Some(64496))]
    );
    // An empty delta touches nothing; an unrelated one nothing held.
    assert_eq!(
        h.engine
            .set_rpki(Some(next.clone()), Some(&RpkiDelta::default()), 4.0),
        0
    );
    let far = RpkiDelta::new(
        vec!["198.51.100.0/24".parse().unwrap()],
        vec![4_200_000_000],
    );
    assert_eq!(h.engine.set_rpki(Some(next), Some(&far), 4.0), 0);
    // 64520's ASPA goes away: the hop 64501 → 64520 is "no attestation", 64520 might be
    // 64501's customer, the path is no longer provably a leak and the instance resolves.
    let gone = aspa(VrpSet::new(), &records[..3]);
    let delta = RpkiDelta::new(vec![v6.parse().unwrap()], vec![64520]);
    h.engine.set_rpki(Some(gone), Some(&delta), 5.0);
    let evs = h.engine.drain_events();
    assert!(
        evs.iter().any(|e| e.kind == AnomalyKind::RouteLeak
            && e.transition == Resolved
            && e.reason == Some(RemovalReason::Revalidated)),
        "{evs:?}"
    );
}

#[test]
fn the_peer_role_picks_the_procedure_and_otc_counts_only_with_a_role() {
    let mut h = Harness::new(1);
    h.engine.set_rpki(Some(leak_aspas()), None, 1.0);
    // 64501 sends us its provider 64500's route: fine if 64501 were our provider (down the
    // ramp), a leak if it is our customer (upstream procedure).
    h.announce(3, "203.0.113.0/24", &[64501, 64500, 64496]);
    assert!(h.events().is_empty(), "role unknown: downstream, valid");
    h.engine
        .set_peer_role(&peer(3), Some(PeerRole::Customer), 2.0);
    assert_eq!(
        h.events(),
        vec![(
            Opened,
            AnomalyKind::RouteLeak,
            "203.0.113.0/24".into(),
            Some(64501)
        )]
    );
    // The configured role does not override the session's.
    let mut policy = RolePolicy::default();
    policy.by_asn.insert(65003, PeerRole::Provider);
    h.engine.set_role_policy(Arc::new(policy.clone()), 3.0);
    assert!(h.events().is_empty());
    // Without the session's role the configured one applies: provider, downstream, resolved.
    h.engine.set_peer_role(&peer(3), None, 4.0);
    let evs = h.engine.drain_events();
    assert_eq!(evs.len(), 1, "{evs:?}");
    assert_eq!(
        (evs[0].kind, evs[0].transition),
        (AnomalyKind::RouteLeak, Resolved)
    );

    // OTC (no ASPA needed): a route with OTC from a configured customer is a leak.
    let mut h = Harness::new(1);
    policy.by_asn.insert(65004, PeerRole::Customer);
    h.engine.set_role_policy(Arc::new(policy), 1.0);
    let otc = |o| Arc::new(AsPath::from_sequence(&[64500, 64496]).with_otc(Some(o)));
    h.update(4, "203.0.113.0/24", RouteChange::Announce(otc(64500)));
    let evs = h.engine.drain_events();
    assert_eq!(evs.len(), 1, "{evs:?}");
    assert_eq!(evs[0].asn, Some(65004), "the peer leaked");
    assert_eq!(
        evs[0].leak.map(|l| l.reason),
        Some(LeakReason::OtcFromCustomer)
    );
    // The same route from a peer of unknown role: nothing.
    h.update(5, "203.0.113.0/24", RouteChange::Announce(otc(64500)));
    assert!(h.events().is_empty());
}

#[test]
fn an_otc_only_change_is_not_a_path_change() {
    let mut h = Harness::new(1);
    let path = |o| Arc::new(AsPath::from_sequence(&[64500, 64496]).with_otc(o));
    h.update(1, "203.0.113.0/24", RouteChange::Announce(path(None)));
    h.update(
        1,
        "203.0.113.0/24",
        RouteChange::Announce(path(Some(64500))),
    );
    assert_eq!(h.engine.stats(0).path_changes, 0);
    h.update(
        1,
        "203.0.113.0/24",
        RouteChange::Announce(Arc::new(AsPath::from_sequence(&[64500, 64500, 64496]))),
    );
    assert_eq!(h.engine.stats(0).path_changes, 1);
}

#[test]
fn a_session_role_reaches_every_view_of_the_peer_until_it_goes_down() {
    use crate::model::{RibView, RouteSource};
    let router: std::net::SocketAddr = "192.0.2.200:17001".parse().unwrap();
    let view = |v| {
        Arc::new(PeerKey {
            source: Arc::new(RouteSource::bmp(router, v, None)),
            address: "198.51.100.1".parse().unwrap(),
            asn: 64501,
        })
    };
    let (pre, post) = (view(RibView::AdjRibInPre), view(RibView::AdjRibInPost));
    let mut h = Harness::new(1);
    h.engine.set_rpki(Some(leak_aspas()), None, 1.0);
    // The Peer Up names the peer a customer before any route arrives.
    h.engine.set_peer_role(&pre, Some(PeerRole::Customer), 1.0);
    let route = |peer: &Arc<PeerKey>, ts| RouteUpdate {
        timestamp: ts,
        peer: peer.clone(),
        prefix: "203.0.113.0/24".parse().unwrap(),
        path_id: 0,
        matched: h_match(),
        change: RouteChange::Announce(Arc::new(AsPath::from_sequence(&[64501, 64500, 64496]))),
    };
    h.engine.apply(&route(&post, 2.0));
    let evs = h.engine.drain_events();
    assert_eq!(
        evs.len(),
        1,
        "the post-policy view is a customer's too: {evs:?}"
    );
    assert_eq!(
        evs[0].leak.map(|l| l.reason),
        Some(LeakReason::AspaUpstream)
    );
    // The peer goes down: its routes go, and so does the role; a later session without the
    // capability is unknown (downstream: no leak).
    h.engine.peer_down(&post, 3.0);
    h.engine.drain_events();
    h.engine.apply(&route(&post, 4.0));
    let evs = h.engine.drain_events();
    assert!(
        evs.iter().all(|e| e.kind != AnomalyKind::RouteLeak),
        "{evs:?}"
    );
}

fn h_match() -> crate::registry::Match {
    registry(1)
        .lookup(&"203.0.113.0/24".parse().unwrap())
        .unwrap()
}
