//! The README demo: the bundled RouteViews RIB followed by the synthetic hijack scenario.
//! Asserts the committed scenario file is what the generator writes, and the exact anomaly
//! transitions and final per-prefix state the replay reports.

mod support;

use routewatch::engine::{AnomalyKind, RemovalReason, Transition};
use routewatch::events::{EventKind, Severity};
use routewatch::replay::{replay, ReplayOptions};
use support::*;

#[test]
fn committed_demo_updates_file_is_what_the_generator_writes() {
    let bytes = encode_updates(&demo_scenario());
    let path = fixture(DEMO_UPDATES);
    if std::env::var_os("ROUTEWATCH_BLESS").is_some() {
        std::fs::write(&path, &bytes).unwrap();
    }
    let committed = std::fs::read(&path).expect("fixture present (ROUTEWATCH_BLESS=1 writes it)");
    assert_eq!(
        committed, bytes,
        "regenerate with ROUTEWATCH_BLESS=1 cargo test --test demo_scenario"
    );
}

#[test]
fn demo_replay_opens_and_resolves_the_injected_hijacks() {
    let files = vec![fixture(DEMO_UPDATES), fixture(DEMO_RIB)];
    // Files are given updates-first on purpose: replay must still load the RIB first.
    let report = replay(&ReplayOptions::new(repo("config/demo.toml"), &files)).unwrap();
    assert_eq!(report.files[0].path, fixture(DEMO_RIB));
    assert_eq!(
        report.files[0].processed, 270_005,
        "complete records of the truncated RIB"
    );
    assert_eq!(
        report.files[0].error_count(),
        1,
        "the cut bz2 stream is one counted error"
    );
    assert_eq!(report.files[1].processed, 8);
    assert_eq!(report.files[1].error_count(), 0);

    let after_rib: Vec<_> = report
        .events
        .iter()
        .filter(|e| e.time > DEMO_RIB_TIME)
        .map(|e| {
            (
                e.transition,
                e.kind,
                e.announced.to_string(),
                e.asn,
                e.reason,
            )
        })
        .collect();
    use AnomalyKind::*;
    use Transition::*;
    let s = |x: &str| x.to_string();
    assert_eq!(
        after_rib,
        vec![
            (Opened, OriginMismatch, s("8.8.8.0/24"), Some(64666), None),
            (Opened, Moas, s("8.8.8.0/24"), None, None),
            (Opened, SubprefixHijack, s("8.8.8.0/25"), Some(64666), None),
            // 1.0.0.0/24 has min-peers = 2: both open with the second peer.
            (Opened, OriginMismatch, s("1.0.0.0/24"), Some(64666), None),
            (Opened, Moas, s("1.0.0.0/24"), None, None),
            (
                Resolved,
                SubprefixHijack,
                s("8.8.8.0/25"),
                Some(64666),
                Some(RemovalReason::Withdrawn)
            ),
            (
                Resolved,
                OriginMismatch,
                s("8.8.8.0/24"),
                Some(64666),
                Some(RemovalReason::Replaced)
            ),
            (
                Resolved,
                Moas,
                s("8.8.8.0/24"),
                None,
                Some(RemovalReason::Replaced)
            ),
            (
                Resolved,
                OriginMismatch,
                s("1.0.0.0/24"),
                Some(64666),
                Some(RemovalReason::Replaced)
            ),
            (
                Resolved,
                Moas,
                s("1.0.0.0/24"),
                None,
                Some(RemovalReason::Replaced)
            ),
        ]
    );

    let google = report
        .prefixes
        .iter()
        .find(|p| p.prefix.to_string() == "8.8.8.0/24")
        .unwrap();
    assert_eq!(google.location, "google-dns");
    assert_eq!(google.visibility, 33);
    assert_eq!(google.origins, vec![15169]);
    assert_eq!(
        google.path_changes, 2,
        "AT&T's path went to the hijacker and back"
    );
    assert_eq!(google.withdrawals, 1);
    assert!(google.more_specifics.is_empty());
    assert!(google.anomalies.is_empty());
    // The full event history: same transitions, plus route events, in BGP-time order.
    let history: Vec<_> = report
        .history
        .iter()
        .filter(|e| e.time > DEMO_RIB_TIME)
        .collect();
    assert!(report.history.windows(2).all(|w| w[0].time <= w[1].time));
    let count = |k: EventKind| history.iter().filter(|e| e.kind == k).count();
    assert_eq!(count(EventKind::AnomalyOpened), 5);
    assert_eq!(count(EventKind::AnomalyResolved), 5);
    // AT&T's 8.8.8.0/24 went to AS64666 and back; NTT's and HE's 1.0.0.0/24 likewise.
    assert_eq!(count(EventKind::OriginChange), 6);
    // Path-change events are at most one per registered prefix per minute: 2 per prefix here.
    assert_eq!(count(EventKind::PathChange), 4);
    let hijack = history
        .iter()
        .find(|e| {
            e.kind == EventKind::AnomalyOpened && e.anomaly.as_deref() == Some("origin_mismatch")
        })
        .unwrap();
    assert_eq!(hijack.severity, Severity::Critical);
    assert_eq!(hijack.origin, Some(64666));
    assert_eq!(hijack.peer.as_ref().unwrap().address, "12.0.1.63");
    assert_eq!(hijack.as_path.as_deref(), Some("7018 64666"));
    // RIB load: each registered prefix announced once (first peer), none withdrawn.
    let announced = report
        .history
        .iter()
        .filter(|e| e.kind == EventKind::PrefixAnnounced)
        .count();
    assert_eq!(announced, 5);

    let apnic = report
        .prefixes
        .iter()
        .find(|p| p.prefix.to_string() == "1.0.0.0/24")
        .unwrap();
    assert_eq!(apnic.path_changes, 4);
    assert!(apnic.anomalies.is_empty());

    // The transitions are in BGP-time order although the RIB's entries (loaded first) carry
    // their peers' own times, and the table explains its columns.
    assert!(report.events.len() > 10, "RIB-time openings too");
    assert!(report.events.windows(2).all(|w| w[0].time <= w[1].time));
    let table = report.to_table();
    let section = table.split("Anomaly transitions").nth(1).unwrap();
    let mut lines = section.lines().skip(1);
    assert!(lines
        .next()
        .unwrap()
        .trim_start()
        .starts_with("columns: BGP time (UTC)"));
    let times: Vec<&str> = lines
        .filter(|l| l.contains("OPENED") || l.contains("RESOLVED"))
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(times.len(), report.events.len());
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "RFC 3339 UTC sorts as text"
    );
}
