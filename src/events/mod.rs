//! The event history: what happened to the registered prefixes, for investigation.
//!
//! [`Event`] is the record every producer (the engine's transitions) turns into and every consumer
//! (the SQLite store, the API, the log, the replay report) reads. Pure types here; storage lives
//! in [`store`].

pub mod metrics;
pub mod store;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// What kind of event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// An anomaly instance opened (see [`Event::anomaly`]).
    AnomalyOpened,
    /// An anomaly instance resolved.
    AnomalyResolved,
    /// The first peer announced the registered prefix.
    PrefixAnnounced,
    /// The last peer withdrew the registered prefix.
    PrefixWithdrawn,
    /// A peer's AS path for a prefix changed.
    PathChange,
    /// A peer's origin AS for a prefix changed.
    OriginChange,
    /// A ROA overlapping a registered prefix appeared (RPKI watch; see [`Event::rpki`]).
    RoaAdded,
    /// A ROA overlapping a registered prefix went away.
    RoaRemoved,
    /// A ROA overlapping a registered prefix changed its maxLength or origin AS.
    RoaChanged,
    /// The ASPA of a registered origin AS was added, removed or changed.
    AspaChanged,
    /// A ROA covering a registered prefix expires within `[rpki] roa-expiry-warning-days`.
    RoaExpiring,
}

impl EventKind {
    /// Every kind.
    pub const ALL: [EventKind; 11] = [
        EventKind::AnomalyOpened,
        EventKind::AnomalyResolved,
        EventKind::PrefixAnnounced,
        EventKind::PrefixWithdrawn,
        EventKind::PathChange,
        EventKind::OriginChange,
        EventKind::RoaAdded,
        EventKind::RoaRemoved,
        EventKind::RoaChanged,
        EventKind::AspaChanged,
        EventKind::RoaExpiring,
    ];

    /// The stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::AnomalyOpened => "anomaly_opened",
            EventKind::AnomalyResolved => "anomaly_resolved",
            EventKind::PrefixAnnounced => "prefix_announced",
            EventKind::PrefixWithdrawn => "prefix_withdrawn",
            EventKind::PathChange => "path_change",
            EventKind::OriginChange => "origin_change",
            EventKind::RoaAdded => "roa_added",
            EventKind::RoaRemoved => "roa_removed",
            EventKind::RoaChanged => "roa_changed",
            EventKind::AspaChanged => "aspa_changed",
            EventKind::RoaExpiring => "roa_expiring",
        }
    }

    /// Parses a name written by [`EventKind::as_str`].
    pub fn parse(s: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

pub use crate::engine::Severity;

/// The peer an event came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventPeer {
    /// Feed (`mrt`, `bmp`).
    pub feed: String,
    /// Route source (`mrt`, or the BMP router session and view).
    pub source: String,
    /// Peer address.
    pub address: String,
    /// Peer AS.
    pub asn: u32,
}

/// One event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Store id (0 until stored); ids grow with insertion order.
    pub id: i64,
    /// BGP time of the update that caused it (seconds since the epoch; RFC 3339 in JSON).
    #[serde(with = "crate::time_fmt::serde")]
    pub time: f64,
    /// When routewatch received it (seconds since the epoch; RFC 3339 in JSON).
    #[serde(with = "crate::time_fmt::serde")]
    pub received: f64,
    /// Kind.
    pub kind: EventKind,
    /// For anomaly events: the anomaly kind (`origin_mismatch`, ...).
    pub anomaly: Option<String>,
    /// Severity.
    pub severity: Severity,
    /// Location name.
    pub location: String,
    /// Registered prefix.
    pub prefix: IpNet,
    /// Announced prefix.
    pub announced: IpNet,
    /// The peer whose update caused it.
    pub peer: Option<EventPeer>,
    /// The holder name of the peer's AS (DNS enrichment, `[dns]`), when known in time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_as_name: Option<String>,
    /// Origin AS (the offending AS for anomalies).
    pub origin: Option<u32>,
    /// The holder name of the origin AS (DNS enrichment, `[dns]`), when known in time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin_as_name: Option<String>,
    /// AS path, as its text (`64500 64496 {1,2}`); an array in JSON
    /// ([`crate::model::path_text`]).
    #[serde(with = "crate::model::path_text")]
    pub as_path: Option<String>,
    /// Previous AS path (path and origin changes), as `as_path`.
    #[serde(with = "crate::model::path_text")]
    pub previous_path: Option<String>,
    /// In plain words.
    pub description: String,
    /// RPKI watch events: the ROA or ASPA (absent in JSON for other kinds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpki: Option<WatchDetail>,
}

use crate::rpki::watch::{WatchDetail, WatchEvent, WatchKind};

use crate::engine::{AnomalyEvent, RouteEvent, RouteEventKind, Transition};
use crate::model::PeerKey;

fn event_peer(k: &PeerKey) -> EventPeer {
    EventPeer {
        feed: k.source.feed().as_str().to_string(),
        source: k.source.to_string(),
        address: k.address.to_string(),
        asn: k.asn,
    }
}

impl Event {
    /// The event of an anomaly transition; `received` is the wall-clock time.
    pub fn from_anomaly(a: &AnomalyEvent, received: f64) -> Event {
        let asn = a.asn.map_or_else(String::new, |x| format!(" AS{x}"));
        let (kind, severity, description) = match a.transition {
            Transition::Opened => (
                EventKind::AnomalyOpened,
                a.kind.severity(),
                format!(
                    "{} opened: {} announced{asn} inside {} of location {}; {} peer(s) carry it{}{}{}",
                    a.kind,
                    a.announced,
                    a.prefix,
                    a.location,
                    a.peers,
                    a.example_path
                        .as_ref()
                        .map_or_else(String::new, |p| format!(", e.g. path {p}")),
                    match a.rpki {
                        Some(crate::rpki::RovState::Valid) => {
                            "; RPKI valid: a ROA authorises this origin (registry out of date?)"
                                .to_string()
                        }
                        Some(state) => format!("; RPKI {state}"),
                        None => String::new(),
                    },
                    a.leak.map_or_else(String::new, |l| {
                        let role = l.role.map_or("unknown", |r| r.as_str());
                        let how = l.procedure.map_or_else(
                            || "Only-to-Customer, RFC 9234".to_string(),
                            |p| format!("ASPA {} verification", p.as_str()),
                        );
                        let who = l
                            .leaker
                            .map_or_else(String::new, |x| format!("; AS{x} leaked it"));
                        format!("; leak: {} ({how}, peer role {role}){who}", l.reason.as_str())
                    })
                ),
            ),
            Transition::Resolved => (
                EventKind::AnomalyResolved,
                Severity::Information,
                {
                    use crate::engine::RemovalReason as R;
                    let why = match a.reason {
                        Some(R::Unregistered) => {
                            "is no longer flagged: its prefix was removed from the configuration (unregistered)"
                        }
                        Some(R::Reconfigured) => {
                            "is no longer flagged by the reloaded configuration (reconfigured)"
                        }
                        Some(R::Withdrawn) => "is no longer carried by any peer (withdrawn)",
                        Some(R::Replaced) => "is no longer carried by any peer (replaced)",
                        Some(R::PeerDown) => "is no longer carried by any peer (peer down)",
                        Some(R::Revalidated) => {
                            "is no longer carried by any peer (RPKI data or the peer's role changed)"
                        }
                        Some(R::Recovered) => "is visible again (visibility recovered)",
                        None => "is no longer carried by any peer (gone)",
                    };
                    let flaps = match a.flaps {
                        0 => String::new(),
                        n => format!(
                            "; it came back {n} time(s) within the hold-down before it resolved (flapping)"
                        ),
                    };
                    format!(
                        "{} resolved: {}{asn} inside {} of location {} {why}{flaps}",
                        a.kind, a.announced, a.prefix, a.location
                    )
                },
            ),
        };
        Event {
            id: 0,
            time: a.time,
            received,
            kind,
            anomaly: Some(a.kind.as_str().to_string()),
            severity,
            location: a.location.clone(),
            prefix: a.prefix,
            announced: a.announced,
            peer: Some(event_peer(&a.peer_key)),
            peer_as_name: None,
            origin: a.asn,
            origin_as_name: None,
            as_path: a.example_path.as_ref().map(|p| p.to_string()),
            previous_path: None,
            description,
            rpki: None,
        }
    }

    /// The event of a route change; `received` is the wall-clock time.
    pub fn from_route(r: &RouteEvent, received: f64) -> Event {
        let peer = r.peer.to_string();
        let (kind, severity, description) = match r.kind {
            RouteEventKind::PrefixAnnounced => (
                EventKind::PrefixAnnounced,
                Severity::Information,
                format!(
                    "{} of location {} announced: first peer {peer}",
                    r.prefix, r.location
                ),
            ),
            RouteEventKind::PrefixWithdrawn => (
                EventKind::PrefixWithdrawn,
                Severity::Error,
                format!(
                    "{} of location {} withdrawn: the last peer ({peer}) no longer has a route",
                    r.prefix, r.location
                ),
            ),
            RouteEventKind::PathChange => (
                EventKind::PathChange,
                Severity::Information,
                format!(
                    "path of {} via {peer} changed from [{}] to [{}]",
                    r.announced,
                    r.previous_path.as_deref().unwrap_or(""),
                    r.path.as_deref().unwrap_or("")
                ),
            ),
            RouteEventKind::OriginChange => (
                EventKind::OriginChange,
                Severity::Warning,
                format!(
                    "origin of {} via {peer} changed: path [{}] became [{}]",
                    r.announced,
                    r.previous_path.as_deref().unwrap_or(""),
                    r.path.as_deref().unwrap_or("")
                ),
            ),
        };
        Event {
            id: 0,
            time: r.time,
            received,
            kind,
            anomaly: None,
            severity,
            location: r.location.clone(),
            prefix: r.prefix,
            announced: r.announced,
            peer: Some(event_peer(&r.peer)),
            peer_as_name: None,
            origin: r.origin,
            origin_as_name: None,
            as_path: r.path.clone(),
            previous_path: r.previous_path.clone(),
            description,
            rpki: None,
        }
    }

    /// The event of an RPKI watch finding at wall-clock time `now` (its BGP time too): the
    /// registered prefix and location, `announced` the ROA's prefix (the registered prefix for
    /// an ASPA), `origin` the ROA's AS (after a change; before a removal) or the ASPA's
    /// customer.
    pub fn from_watch(w: &WatchEvent, now: f64) -> Event {
        let (kind, severity) = match w.kind {
            WatchKind::RoaAdded => (EventKind::RoaAdded, Severity::Information),
            WatchKind::RoaRemoved => (EventKind::RoaRemoved, Severity::Warning),
            WatchKind::RoaChanged => (EventKind::RoaChanged, Severity::Warning),
            WatchKind::AspaChanged => (EventKind::AspaChanged, Severity::Warning),
            WatchKind::RoaExpiring => (EventKind::RoaExpiring, Severity::Warning),
        };
        let d = &w.detail;
        let roa = d.roa.or(d.previous_roa);
        Event {
            id: 0,
            time: now,
            received: now,
            kind,
            anomaly: None,
            severity,
            location: w.location.clone(),
            prefix: w.prefix,
            announced: roa.map_or(w.prefix, |r| r.prefix),
            peer: None,
            peer_as_name: None,
            origin: roa.map(|r| r.asn).or(d.customer),
            origin_as_name: None,
            as_path: None,
            previous_path: None,
            description: w.description.clone(),
            rpki: Some(d.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::AnomalyKind;
    use std::sync::Arc;

    fn peer() -> Arc<PeerKey> {
        Arc::new(PeerKey {
            source: Arc::new(crate::model::RouteSource::bmp(
                "192.0.2.1:17001".parse().unwrap(),
                crate::model::RibView::AdjRibInPre,
                None,
            )),
            address: "198.51.100.1".parse().unwrap(),
            asn: 64500,
        })
    }

    fn anomaly(kind: AnomalyKind, transition: Transition) -> AnomalyEvent {
        AnomalyEvent {
            time: 10.0,
            transition,
            kind,
            severity: kind.severity(),
            location: "l".into(),
            prefix: "203.0.113.0/24".parse().unwrap(),
            announced: "203.0.113.0/25".parse().unwrap(),
            asn: Some(666),
            peers: 1,
            peer: peer().to_string(),
            peer_key: peer(),
            example_path: Some(Arc::new(crate::model::AsPath::from_sequence(&[64500, 666]))),
            reason: (transition == Transition::Resolved)
                .then_some(crate::engine::RemovalReason::Withdrawn),
            rpki: None,
            leak: None,
            flaps: 0,
            opened_at: Some(5.0),
        }
    }

    fn route(kind: RouteEventKind) -> RouteEvent {
        RouteEvent {
            time: 10.0,
            kind,
            location: "l".into(),
            prefix: "203.0.113.0/24".parse().unwrap(),
            announced: "203.0.113.0/24".parse().unwrap(),
            peer: peer(),
            origin: Some(64496),
            path: Some("64500 64496".into()),
            previous_path: Some("64500 174 64496".into()),
        }
    }

    #[test]
    fn every_kind_gets_its_severity_and_a_description() {
        let cases = [
            (
                anomaly(AnomalyKind::OriginMismatch, Transition::Opened),
                EventKind::AnomalyOpened,
                Severity::Critical,
            ),
            (
                anomaly(AnomalyKind::SubprefixHijack, Transition::Opened),
                EventKind::AnomalyOpened,
                Severity::Critical,
            ),
            (
                anomaly(AnomalyKind::RpkiInvalid, Transition::Opened),
                EventKind::AnomalyOpened,
                Severity::Error,
            ),
            (
                anomaly(AnomalyKind::Withdrawn, Transition::Opened),
                EventKind::AnomalyOpened,
                Severity::Error,
            ),
            (
                anomaly(AnomalyKind::VisibilityLost, Transition::Opened),
                EventKind::AnomalyOpened,
                Severity::Warning,
            ),
            (
                anomaly(AnomalyKind::Moas, Transition::Opened),
                EventKind::AnomalyOpened,
                Severity::Warning,
            ),
            (
                anomaly(AnomalyKind::UnexpectedUpstream, Transition::Opened),
                EventKind::AnomalyOpened,
                Severity::Warning,
            ),
            (
                anomaly(AnomalyKind::OriginMismatch, Transition::Resolved),
                EventKind::AnomalyResolved,
                Severity::Information,
            ),
        ];
        for (a, kind, severity) in cases {
            let e = Event::from_anomaly(&a, 20.0);
            assert_eq!((e.kind, e.severity), (kind, severity), "{:?}", a.kind);
            assert_eq!(e.anomaly.as_deref(), Some(a.kind.as_str()));
            assert_eq!((e.time, e.received, e.origin), (10.0, 20.0, Some(666)));
            let p = e.peer.unwrap();
            assert_eq!(
                (p.feed.as_str(), p.address.as_str(), p.asn),
                ("bmp", "198.51.100.1", 64500)
            );
            assert!(
                e.description.starts_with(a.kind.as_str()),
                "{}",
                e.description
            );
        }
        let routes = [
            (
                RouteEventKind::PrefixAnnounced,
                EventKind::PrefixAnnounced,
                Severity::Information,
            ),
            (
                RouteEventKind::PrefixWithdrawn,
                EventKind::PrefixWithdrawn,
                Severity::Error,
            ),
            (
                RouteEventKind::PathChange,
                EventKind::PathChange,
                Severity::Information,
            ),
            (
                RouteEventKind::OriginChange,
                EventKind::OriginChange,
                Severity::Warning,
            ),
        ];
        for (rk, kind, severity) in routes {
            let e = Event::from_route(&route(rk), 20.0);
            assert_eq!((e.kind, e.severity), (kind, severity));
            assert_eq!(e.previous_path.as_deref(), Some("64500 174 64496"));
            assert!(!e.description.is_empty());
        }
        // Names round-trip.
        for k in EventKind::ALL {
            assert_eq!(EventKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(Severity::parse("critical"), Some(Severity::Critical));
        assert!(Severity::Warning < Severity::Error);
    }
}
