use super::*;
use crate::registry::Location;
use crate::rpki::aspa::AspaSet;

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn vrp(p: &str, max: u8, asn: u32) -> Vrp {
    Vrp::new(net(p), max, asn).unwrap()
}

fn location(name: &str, origins: &[u32], prefixes: &[&str]) -> Location {
    Location {
        name: name.into(),
        provider: None,
        provider_asns: vec![],
        region: None,
        origin_asns: origins.to_vec(),
        prefixes: prefixes.iter().map(|p| net(p)).collect(),
        max_length: None,
        max_length_v6: None,
        min_peers: 1,
        min_visibility: 0,
    }
}

/// Two locations: `a` (AS64500) with 192.0.2.0/24 and 2001:db8::/32, `b` (AS64501, AS64500)
/// with 198.51.100.0/24.
fn registry() -> Registry {
    Registry::new(vec![
        location("a", &[64500], &["192.0.2.0/24", "2001:db8::/32"]),
        location("b", &[64501, 64500], &["198.51.100.0/24"]),
    ])
    .unwrap()
}

fn data(vrps: &[Vrp]) -> RpkiData {
    RpkiData::new(VrpSet::from_vrps(vrps.iter().copied()), AspaSet::new())
}

/// (kind, registered prefix, description) of each event, sorted.
fn summary(events: &[WatchEvent]) -> Vec<(WatchKind, String, String)> {
    let mut v: Vec<_> = events
        .iter()
        .map(|e| (e.kind, e.prefix.to_string(), e.description.clone()))
        .collect();
    v.sort();
    v
}

fn base() -> Vec<Vrp> {
    vec![
        vrp("192.0.0.0/16", 24, 64500),    // covers 192.0.2.0/24
        vrp("192.0.2.0/24", 24, 64500),    // equal: covers
        vrp("192.0.2.128/25", 25, 64500),  // inside
        vrp("198.51.100.0/24", 24, 64501), // covers b
        vrp("203.0.113.0/24", 24, 64500),  // outside the registry
        vrp("2001:db8::/32", 48, 64500),   // covers a's IPv6 prefix
    ]
}

fn changes(old: &RpkiData, new: &RpkiData, delta: Option<&RpkiDelta>) -> Vec<WatchEvent> {
    RpkiWatch::new(7).changes(&registry(), old, new, delta)
}

/// Every case twice: with the delta (only what changed is looked at) and without.
fn both(old: &RpkiData, new: &RpkiData) -> Vec<WatchEvent> {
    let with = changes(old, new, Some(&old.diff(new)));
    let without = changes(old, new, None);
    assert_eq!(summary(&with), summary(&without));
    with
}

#[test]
fn an_unchanged_set_gives_no_event() {
    let d = data(&base());
    assert!(changes(&d, &d.clone(), None).is_empty());
    assert!(changes(&d, &d.clone(), Some(&RpkiDelta::default())).is_empty());
    // The same VRPs in another order, from another build.
    let mut rev = base();
    rev.reverse();
    assert!(both(&d, &data(&rev)).is_empty());
}

#[test]
fn added_and_removed_roas_of_registered_prefixes_covering_or_inside() {
    let old = data(&base());
    let mut v = base();
    v.retain(|x| *x != vrp("192.0.0.0/16", 24, 64500));
    v.push(vrp("192.0.2.0/26", 26, 64502)); // inside a's IPv4 prefix
    let new = data(&v);
    let e = both(&old, &new);
    assert_eq!(
        summary(&e),
        vec![
            (
                WatchKind::RoaAdded,
                "192.0.2.0/24".into(),
                "ROA 192.0.2.0/26-26 AS64502 added (inside 192.0.2.0/24 of location a)".into()
            ),
            (
                WatchKind::RoaRemoved,
                "192.0.2.0/24".into(),
                "ROA 192.0.0.0/16-24 AS64500 removed (covering 192.0.2.0/24 of location a)".into()
            ),
        ]
    );
    let removed = e.iter().find(|x| x.kind == WatchKind::RoaRemoved).unwrap();
    assert_eq!(removed.location, "a");
    assert_eq!(removed.detail.relation, Some(Relation::Covering));
    assert_eq!(removed.detail.roa, None);
    assert_eq!(
        removed
            .detail
            .previous_roa
            .map(|r| (r.prefix, r.max_length, r.asn)),
        Some((net("192.0.0.0/16"), 24, 64500))
    );
    let added = e.iter().find(|x| x.kind == WatchKind::RoaAdded).unwrap();
    assert_eq!(added.detail.relation, Some(Relation::Inside));
    assert_eq!(added.detail.previous_roa, None);
}

#[test]
fn changes_outside_the_registry_give_no_event() {
    let old = data(&base());
    let mut v = base();
    v.retain(|x| *x != vrp("203.0.113.0/24", 24, 64500));
    v.push(vrp("10.0.0.0/8", 8, 64666));
    // Overlaps nothing registered although it shares the first octets with a.
    v.push(vrp("192.0.3.0/24", 24, 64666));
    assert!(both(&old, &data(&v)).is_empty());
}

#[test]
fn a_changed_max_length_or_origin_is_one_change_not_a_removal_and_an_addition() {
    let old = data(&base());
    let mut v = base();
    v.retain(|x| *x != vrp("192.0.2.0/24", 24, 64500) && *x != vrp("198.51.100.0/24", 24, 64501));
    v.push(vrp("192.0.2.0/24", 25, 64500)); // same prefix and origin: maxLength
    v.push(vrp("198.51.100.0/24", 24, 64666)); // same prefix and maxLength: origin
    let e = both(&old, &data(&v));
    assert_eq!(
        summary(&e),
        vec![
            (
                WatchKind::RoaChanged,
                "192.0.2.0/24".into(),
                "ROA 192.0.2.0/24-24 AS64500 changed to 192.0.2.0/24-25 AS64500: maxLength 24 -> 25 (covering 192.0.2.0/24 of location a)".into()
            ),
            (
                WatchKind::RoaChanged,
                "198.51.100.0/24".into(),
                "ROA 198.51.100.0/24-24 AS64501 changed to 198.51.100.0/24-24 AS64666: origin AS64501 -> AS64666 (covering 198.51.100.0/24 of location b)".into()
            ),
        ]
    );
    let c = &e[0];
    assert_eq!(c.detail.previous_roa.unwrap().max_length, 24);
    assert_eq!(c.detail.roa.unwrap().max_length, 25);
}

#[test]
fn a_new_origin_next_to_an_unchanged_one_is_an_addition_and_both_changed_is_not_a_change() {
    let old = data(&base());
    let mut v = base();
    // Another origin for 198.51.100.0/24, the old one stays: added.
    v.push(vrp("198.51.100.0/24", 24, 64666));
    // Prefix, maxLength and origin all different: removed + added.
    v.retain(|x| *x != vrp("192.0.2.128/25", 25, 64500));
    v.push(vrp("192.0.2.64/26", 26, 64999));
    let e = both(&old, &data(&v));
    let kinds: Vec<WatchKind> = summary(&e).into_iter().map(|x| x.0).collect();
    assert_eq!(
        kinds,
        vec![
            WatchKind::RoaAdded,
            WatchKind::RoaAdded,
            WatchKind::RoaRemoved
        ]
    );
}

#[test]
fn aspa_of_a_registered_origin_added_changed_removed() {
    let vrps = VrpSet::from_vrps(base());
    let d =
        |records: Vec<(u32, Vec<u32>)>| RpkiData::new(vrps.clone(), AspaSet::from_records(records));
    let none = d(vec![]);
    let one = d(vec![(64501, vec![64510]), (64999, vec![1])]);
    let two = d(vec![(64501, vec![64510, 64511]), (64999, vec![2])]);
    // Added: AS64501 is an expected origin of b only; AS64999 of nobody.
    let e = both(&none, &one);
    assert_eq!(
        summary(&e),
        vec![(
            WatchKind::AspaChanged,
            "198.51.100.0/24".into(),
            "ASPA of AS64501 (an expected origin of location b) added: providers AS64510".into()
        )]
    );
    assert_eq!(e[0].detail.customer, Some(64501));
    assert_eq!(e[0].detail.previous_providers, None);
    assert_eq!(e[0].detail.providers, Some(vec![64510]));
    // Changed.
    let e = both(&one, &two);
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].detail.previous_providers, Some(vec![64510]));
    assert_eq!(e[0].detail.providers, Some(vec![64510, 64511]));
    assert!(e[0]
        .description
        .ends_with("changed: providers AS64510 -> AS64510 AS64511"));
    // Unchanged.
    assert!(both(&two, &two.clone()).is_empty());
    // AS64500 is expected by both locations: one event each, on its first prefix.
    let e = both(&none, &d(vec![(64500, vec![64510])]));
    assert_eq!(
        e.iter()
            .map(|x| (x.location.as_str(), x.prefix.to_string()))
            .collect::<Vec<_>>(),
        vec![
            ("a", "192.0.2.0/24".into()),
            ("b", "198.51.100.0/24".into())
        ]
    );
    // Removed.
    let e = both(&two, &none);
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].detail.providers, None);
    assert!(e[0].description.contains("removed"), "{}", e[0].description);
}

#[test]
fn with_a_delta_only_what_it_names_is_compared() {
    // A delta that names nothing hides a change: the delta bounds the work.
    let old = data(&base());
    let new = data(&base()[1..]);
    assert_eq!(changes(&old, &new, None).len(), 1);
    assert!(changes(&old, &new, Some(&RpkiDelta::default())).is_empty());
    let d = RpkiDelta::new(vec![net("192.0.0.0/16")], vec![]);
    assert_eq!(changes(&old, &new, Some(&d)).len(), 1);
}

fn expiring_data(now: u64) -> RpkiData {
    let vrps = VrpSet::from_vrps_expiring([
        (vrp("192.0.2.0/24", 24, 64500), Some(now + 2 * 86_400)),
        (vrp("192.0.0.0/16", 24, 64500), Some(now + 30 * 86_400)),
        (vrp("198.51.100.0/24", 24, 64501), None),
        // Inside, not covering: not an expiry of the registered prefix.
        (vrp("192.0.2.128/25", 25, 64500), Some(now + 86_400)),
        // Outside the registry.
        (vrp("203.0.113.0/24", 24, 64500), Some(now + 3600)),
    ]);
    RpkiData::new(vrps, AspaSet::new())
}

#[test]
fn earliest_expiry_per_registered_prefix() {
    let now = 1_700_000_000;
    let reg = registry();
    let mut w = RpkiWatch::new(7);
    w.index(&reg, &expiring_data(now).vrps);
    assert_eq!(
        w.earliest_expiry(&reg),
        vec![Some(now + 2 * 86_400), None, None]
    );
    // No expiry times at all: nothing indexed.
    w.index(&reg, &data(&base()).vrps);
    assert_eq!(w.earliest_expiry(&reg), vec![None, None, None]);
}

#[test]
fn an_expiring_roa_is_warned_about_once_per_crossing() {
    let now = 1_700_000_000u64;
    let reg = registry();
    let mut w = RpkiWatch::new(7);
    let d = expiring_data(now);
    w.index(&reg, &d.vrps);
    let e = w.expiring(&reg, now as f64);
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].kind, WatchKind::RoaExpiring);
    assert_eq!(e[0].prefix, net("192.0.2.0/24"));
    assert_eq!(
        e[0].detail.roa.unwrap().expires,
        Some((now + 2 * 86_400) as f64)
    );
    assert!(
        e[0].description.contains("expires in 2.0 day(s)"),
        "{}",
        e[0].description
    );
    // Again, and after a reload of the same data: nothing new.
    assert!(w.expiring(&reg, now as f64 + 60.0).is_empty());
    w.index(&reg, &d.vrps);
    assert!(w.expiring(&reg, now as f64 + 120.0).is_empty());
    // Renewed within the horizon: still warned, nothing.
    let renewed = |x: u64| {
        VrpSet::from_vrps_expiring(d.vrps.iter_expiring().map(|(v, old)| {
            (
                v,
                if v == vrp("192.0.2.0/24", 24, 64500) {
                    Some(x)
                } else {
                    old
                },
            )
        }))
    };
    w.index(&reg, &renewed(now + 3 * 86_400));
    assert!(w.expiring(&reg, now as f64 + 180.0).is_empty());
    // Renewed past the horizon: no longer warned ...
    w.index(&reg, &renewed(now + 300 * 86_400));
    assert!(w.expiring(&reg, now as f64 + 240.0).is_empty());
    // ... so the next crossing warns again (the /16's 30 days came within 7 days too).
    let later = now as f64 + 296.0 * 86_400.0;
    let e = w.expiring(&reg, later);
    assert_eq!(
        e.iter()
            .map(|x| x.detail.roa.unwrap().prefix.to_string())
            .collect::<Vec<_>>(),
        vec!["192.0.0.0/16", "192.0.2.0/24"]
    );
    // Horizon 0: off.
    let mut off = RpkiWatch::new(0);
    off.index(&reg, &d.vrps);
    assert!(off.expiring(&reg, now as f64).is_empty());
}

#[test]
fn the_expiry_check_is_due_at_most_every_minute_and_after_a_registry_swap_needs_an_index() {
    let reg = registry();
    let mut w = RpkiWatch::new(7);
    assert!(w.expiry_due(1000.0));
    w.index(&reg, &expiring_data(1000).vrps);
    assert!(w.indexed_for(&reg));
    w.expiring(&reg, 1000.0);
    assert!(!w.expiry_due(1030.0));
    assert!(w.expiry_due(1060.0));
    let swapped = registry();
    assert!(!w.indexed_for(&swapped));
    // Not indexed for it: no warning from a stale index.
    assert!(w.expiring(&swapped, 1000.0).is_empty());
}
