//! What a notification says, built without I/O: the [`Notice`] (one anomaly transition with
//! everything an operator needs) and its two bodies — the generic JSON webhook
//! ([`webhook_body`]) and the Slack incoming-webhook payload ([`slack_body`], `text` plus
//! `blocks`, which Mattermost and Rocket.Chat accept as well).

use ipnet::IpNet;
use serde_json::{json, Value};

use crate::engine::{AnomalyEvent, Severity, Transition};
use crate::model::AsPath;
use crate::registry::Registry;
use crate::time_fmt::format_rfc3339;

/// Version of the JSON webhook body (`"version"`); a field is only ever added within a version.
pub const WEBHOOK_VERSION: u32 = 1;

/// Longest AS path put in a message (characters); a longer one is cut with `…`.
const MAX_PATH_CHARS: usize = 400;

/// Which transition a notice reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeEvent {
    /// The anomaly opened.
    Open,
    /// The anomaly resolved (after its hold-down).
    Resolve,
    /// `routewatch notify --test`.
    Test,
}

impl NoticeEvent {
    /// The stable name (`"event"` of the webhook body).
    pub fn as_str(self) -> &'static str {
        match self {
            NoticeEvent::Open => "open",
            NoticeEvent::Resolve => "resolve",
            NoticeEvent::Test => "test",
        }
    }
}

/// One anomaly transition as a notification reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    /// Open, resolve or test.
    pub event: NoticeEvent,
    /// Anomaly kind (`origin_mismatch`, ...; `test` for a test notice).
    pub kind: String,
    /// Severity of the anomaly kind (a resolve keeps its opening's severity).
    pub severity: Severity,
    /// Location name.
    pub location: String,
    /// Registered prefix.
    pub prefix: IpNet,
    /// Announced prefix.
    pub announced: IpNet,
    /// The offending (observed) origin AS, when the kind has one.
    pub origin: Option<u32>,
    /// The location's expected origin ASes.
    pub expected_origins: Vec<u32>,
    /// An AS path that carried it (an array in the JSON body, as in the API).
    pub as_path: Option<std::sync::Arc<AsPath>>,
    /// Peers carrying it at the transition (0 at a resolve).
    pub peers: u32,
    /// The peer whose update caused the transition.
    pub peer: Option<String>,
    /// When it opened (BGP time, seconds since the epoch).
    pub opened_at: Option<f64>,
    /// When it resolved (BGP time), for a resolve.
    pub resolved_at: Option<f64>,
    /// Times it came back within the hold-down (a resolve's flap count).
    pub flaps: u32,
    /// For a resolve: why (`withdrawn`, `peer_down`, ...).
    pub reason: Option<&'static str>,
    /// RPKI state of the example route, when VRPs are loaded.
    pub rpki: Option<String>,
    /// The history's description of the transition.
    pub description: String,
}

impl Notice {
    /// The notice of an engine transition; the expected origins come from `registry` (empty
    /// when the registered prefix is no longer in it, e.g. removed by a reload).
    pub fn from_anomaly(a: &AnomalyEvent, registry: &Registry, received: f64) -> Notice {
        let expected_origins = registry
            .find(&a.prefix)
            .map(|id| registry.location_of(id).origin_asns.clone())
            .unwrap_or_default();
        let (event, resolved_at) = match a.transition {
            Transition::Opened => (NoticeEvent::Open, None),
            Transition::Resolved => (NoticeEvent::Resolve, Some(a.time)),
        };
        Notice {
            event,
            kind: a.kind.as_str().to_string(),
            severity: a.kind.severity(),
            location: a.location.clone(),
            prefix: a.prefix,
            announced: a.announced,
            origin: a.asn,
            expected_origins,
            as_path: a.example_path.clone(),
            peers: a.peers,
            peer: Some(a.peer.clone()),
            opened_at: a.opened_at,
            resolved_at,
            flaps: a.flaps,
            reason: a.reason.map(|r| r.as_str()),
            rpki: a.rpki.map(|r| r.to_string()),
            description: crate::events::Event::from_anomaly(a, received).description,
        }
    }

    /// The notice `routewatch notify --test` sends to target `target` at `now`.
    pub fn test(target: &str, now: f64) -> Notice {
        let doc = |s: &str| s.parse::<IpNet>().unwrap_or_default();
        Notice {
            event: NoticeEvent::Test,
            kind: "test".to_string(),
            severity: Severity::Information,
            location: "test".to_string(),
            // Documentation prefix and AS (RFC 5737, RFC 5398).
            prefix: doc("192.0.2.0/24"),
            announced: doc("192.0.2.0/24"),
            origin: Some(64496),
            expected_origins: vec![64496],
            as_path: Some(std::sync::Arc::new(AsPath::from_sequence(&[64511, 64496]))),
            peers: 0,
            peer: None,
            opened_at: Some(now),
            resolved_at: None,
            flaps: 0,
            reason: None,
            rpki: None,
            description: format!(
                "test notification from routewatch to target '{target}' (routewatch notify --test); no anomaly"
            ),
        }
    }

    /// Seconds from opening to resolve, for a resolve whose opening time is known.
    pub fn duration(&self) -> Option<f64> {
        Some((self.resolved_at? - self.opened_at?).max(0.0))
    }

    /// One line in plain words: what, where, who, since when.
    pub fn summary(&self) -> String {
        let what = self.what();
        let asn = self
            .origin
            .map_or_else(String::new, |a| format!(" by AS{a}"));
        let expected = if self.expected_origins.is_empty() {
            String::new()
        } else {
            format!(" (expected {})", as_list(&self.expected_origins))
        };
        match self.event {
            NoticeEvent::Open => format!(
                "{} {} opened at location {}: {what} announced{asn}{expected}, seen by {} peer(s){}",
                self.severity.as_str().to_uppercase(),
                self.kind,
                self.location,
                self.peers,
                self.as_path.as_deref().map_or_else(String::new, |p| format!(
                    ", path {}",
                    short_path(&p.to_string())
                ))
            ),
            NoticeEvent::Resolve => format!(
                "RESOLVED {} at location {}: {what}{asn}{} ({}){}",
                self.kind,
                self.location,
                self.duration().map_or_else(String::new, |d| format!(
                    " resolved after {}",
                    format_duration(d)
                )),
                self.reason.unwrap_or("gone"),
                flaps_text(self.flaps)
            ),
            NoticeEvent::Test => self.description.clone(),
        }
    }

    /// The announced prefix, and the registered one when they differ.
    fn what(&self) -> String {
        if self.announced == self.prefix {
            self.prefix.to_string()
        } else {
            format!("{} (inside registered {})", self.announced, self.prefix)
        }
    }
}

fn flaps_text(flaps: u32) -> String {
    match flaps {
        0 => String::new(),
        n => format!("; flapped {n} time(s) within the hold-down"),
    }
}

fn as_list(asns: &[u32]) -> String {
    asns.iter()
        .map(|a| format!("AS{a}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn short_path(p: &str) -> String {
    if p.chars().count() <= MAX_PATH_CHARS {
        return p.to_string();
    }
    let mut s: String = p.chars().take(MAX_PATH_CHARS).collect();
    s.push('…');
    s
}

/// `3725` → `1h 2m 5s`; under a minute `42s`.
pub fn format_duration(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    let (d, h, m, sec) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60, s % 60);
    let parts = [(d, "d"), (h, "h"), (m, "m"), (sec, "s")];
    let first = parts.iter().position(|(v, _)| *v > 0).unwrap_or(3);
    parts[first..]
        .iter()
        .map(|(v, u)| format!("{v}{u}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Percent-encodes a query value (everything but RFC 3986 unreserved characters).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The link to the notice in the API under `base` (`https://host:port`, no trailing slash):
/// the event history of its registered prefix and kind from its opening on; a test notice links
/// to `/api/v1/status`.
pub fn link(base: &str, n: &Notice) -> String {
    if n.event == NoticeEvent::Test {
        return format!("{base}/api/v1/status");
    }
    let mut url = format!(
        "{base}{}?prefix={}&kind={}",
        crate::http::events::EVENTS_PATH,
        encode(&n.prefix.to_string()),
        encode(&n.kind)
    );
    if let Some(t) = n.opened_at {
        url.push_str(&format!("&since={}", t.floor() as i64));
    }
    url
}

fn time(t: Option<f64>) -> Value {
    t.map_or(Value::Null, |t| Value::String(format_rfc3339(t)))
}

/// The generic JSON webhook body (`"version": 1`).
pub fn webhook_body(n: &Notice, link: Option<&str>) -> Value {
    json!({
        "version": WEBHOOK_VERSION,
        "source": "routewatch",
        "event": n.event.as_str(),
        "kind": n.kind,
        "severity": n.severity.as_str(),
        "location": n.location,
        "prefix": n.prefix.to_string(),
        "announced": n.announced.to_string(),
        "origin_asn": n.origin,
        "expected_origins": n.expected_origins,
        "as_path": n.as_path,
        "peers": n.peers,
        "peer": n.peer,
        "opened_at": time(n.opened_at),
        "resolved_at": time(n.resolved_at),
        "duration_seconds": n.duration().map(|d| d.round() as u64),
        "flaps": n.flaps,
        "reason": n.reason,
        "rpki": n.rpki,
        "summary": n.summary(),
        "description": n.description,
        "link": link,
    })
}

/// Escapes the three characters Slack's mrkdwn reserves.
fn mrkdwn(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The Slack incoming-webhook payload: `text` (the summary; what notifications and clients
/// without blocks show) and `blocks` (title, fields, link).
pub fn slack_body(n: &Notice, link: Option<&str>) -> Value {
    let icon = match (n.event, n.severity) {
        (NoticeEvent::Test, _) => ":information_source:",
        (NoticeEvent::Resolve, _) => ":white_check_mark:",
        (_, Severity::Critical | Severity::Error) => ":rotating_light:",
        _ => ":warning:",
    };
    let text = format!("{icon} {}", mrkdwn(&n.summary()));
    let field = |name: &str, value: String| json!({"type": "mrkdwn", "text": format!("*{name}*\n{}", mrkdwn(&value))});
    let mut fields = vec![
        field("Severity", n.severity.as_str().to_string()),
        field("Location", n.location.clone()),
        field("Registered prefix", n.prefix.to_string()),
        field("Announced prefix", n.announced.to_string()),
        field(
            "Origin AS",
            n.origin
                .map_or_else(|| "—".to_string(), |a| format!("AS{a}")),
        ),
        field("Expected origins", as_list(&n.expected_origins)),
    ];
    if let Some(p) = &n.as_path {
        fields.push(field("AS path", short_path(&p.to_string())));
    }
    match n.event {
        NoticeEvent::Resolve => {
            let mut when = n.resolved_at.map(format_rfc3339).unwrap_or_default();
            if let Some(d) = n.duration() {
                when.push_str(&format!(" (after {})", format_duration(d)));
            }
            fields.push(field("Resolved", when));
            fields.push(field("Flaps", n.flaps.to_string()));
        }
        _ => {
            fields.push(field("Peers", n.peers.to_string()));
            fields.push(field(
                "Opened",
                n.opened_at.map(format_rfc3339).unwrap_or_default(),
            ));
        }
    }
    let mut blocks = vec![
        json!({"type": "section", "text": {"type": "mrkdwn", "text": text}}),
        json!({"type": "section", "fields": fields}),
    ];
    if let Some(l) = link {
        blocks.push(json!({
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": format!("<{l}|Event history> · routewatch")}],
        }));
    }
    json!({"text": text, "blocks": blocks})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{AnomalyKind, RemovalReason};
    use crate::model::{PeerKey, RibView, RouteSource};
    use crate::registry::Location;
    use std::sync::Arc;

    fn registry() -> Registry {
        Registry::new(vec![Location {
            name: "victim <&>".into(),
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
        .unwrap()
    }

    fn event(transition: Transition) -> AnomalyEvent {
        let peer = Arc::new(PeerKey {
            source: Arc::new(RouteSource::bmp(
                "192.0.2.1:17001".parse().unwrap(),
                RibView::AdjRibInPre,
                None,
            )),
            address: "198.51.100.1".parse().unwrap(),
            asn: 64500,
        });
        let resolved = transition == Transition::Resolved;
        AnomalyEvent {
            time: if resolved {
                1_700_003_725.0
            } else {
                1_700_000_000.0
            },
            transition,
            kind: AnomalyKind::SubprefixHijack,
            severity: Severity::Critical,
            location: "victim <&>".into(),
            prefix: "203.0.113.0/24".parse().unwrap(),
            announced: "203.0.113.128/25".parse().unwrap(),
            asn: Some(666),
            peers: if resolved { 0 } else { 3 },
            peer: peer.to_string(),
            peer_key: peer,
            example_path: Some(std::sync::Arc::new(AsPath::from_sequence(&[64500, 666]))),
            reason: resolved.then_some(RemovalReason::Withdrawn),
            rpki: None,
            leak: None,
            flaps: if resolved { 2 } else { 0 },
            opened_at: Some(1_700_000_000.0),
        }
    }

    #[test]
    fn an_opening_says_what_where_who_and_when() {
        let n = Notice::from_anomaly(&event(Transition::Opened), &registry(), 1.0);
        assert_eq!(n.event, NoticeEvent::Open);
        assert_eq!(n.expected_origins, vec![64496, 64497]);
        let base = "https://rw.example:9179";
        let l = link(base, &n);
        assert_eq!(
            l,
            "https://rw.example:9179/api/v1/events?prefix=203.0.113.0%2F24&kind=subprefix_hijack&since=1700000000"
        );
        let b = webhook_body(&n, Some(&l));
        assert_eq!(b["version"], 1);
        assert_eq!(b["event"], "open");
        assert_eq!(b["kind"], "subprefix_hijack");
        assert_eq!(b["severity"], "critical");
        assert_eq!(b["location"], "victim <&>");
        assert_eq!(b["prefix"], "203.0.113.0/24");
        assert_eq!(b["announced"], "203.0.113.128/25");
        assert_eq!(b["origin_asn"], 666);
        assert_eq!(b["expected_origins"], json!([64496, 64497]));
        assert_eq!(b["as_path"], json!([64500, 666]));
        assert_eq!(b["peers"], 3);
        assert_eq!(b["opened_at"], "2023-11-14T22:13:20Z");
        assert_eq!(b["resolved_at"], Value::Null);
        assert_eq!(b["duration_seconds"], Value::Null);
        assert_eq!(b["link"], l);
        assert!(b["peer"].as_str().unwrap().contains("198.51.100.1"));
        let s = b["summary"].as_str().unwrap();
        assert_eq!(
            s,
            "CRITICAL subprefix_hijack opened at location victim <&>: 203.0.113.128/25 (inside \
             registered 203.0.113.0/24) announced by AS666 (expected AS64496, AS64497), seen by \
             3 peer(s), path 64500 666"
        );
        assert!(b["description"]
            .as_str()
            .unwrap()
            .starts_with("subprefix_hijack opened"));
    }

    #[test]
    fn a_resolve_has_its_duration_and_flap_count() {
        let n = Notice::from_anomaly(&event(Transition::Resolved), &registry(), 1.0);
        assert_eq!(n.duration(), Some(3725.0));
        let b = webhook_body(&n, None);
        assert_eq!(b["event"], "resolve");
        assert_eq!(
            b["severity"], "critical",
            "a resolve keeps its kind's severity"
        );
        assert_eq!(b["resolved_at"], "2023-11-14T23:15:25Z");
        assert_eq!(b["opened_at"], "2023-11-14T22:13:20Z");
        assert_eq!(b["duration_seconds"], 3725);
        assert_eq!(b["flaps"], 2);
        assert_eq!(b["reason"], "withdrawn");
        assert_eq!(b["link"], Value::Null);
        assert_eq!(
            b["summary"],
            "RESOLVED subprefix_hijack at location victim <&>: 203.0.113.128/25 (inside \
             registered 203.0.113.0/24) by AS666 resolved after 1h 2m 5s (withdrawn); flapped 2 \
             time(s) within the hold-down"
        );
    }

    #[test]
    fn slack_text_names_prefix_and_as_and_escapes_mrkdwn() {
        let n = Notice::from_anomaly(&event(Transition::Opened), &registry(), 1.0);
        let b = slack_body(&n, Some("http://h:1/x?a=1&b=2"));
        let text = b["text"].as_str().unwrap();
        assert!(text.starts_with(":rotating_light: CRITICAL"), "{text}");
        assert!(
            text.contains("203.0.113.128/25") && text.contains("AS666"),
            "{text}"
        );
        assert!(text.contains("victim &lt;&amp;&gt;"), "{text}");
        let blocks = b["blocks"].as_array().unwrap();
        assert_eq!(blocks.len(), 3);
        let fields = blocks[1]["fields"].as_array().unwrap();
        assert!(fields.len() <= 10, "Slack takes at most 10 fields");
        assert!(fields
            .iter()
            .any(|f| f["text"] == "*Expected origins*\nAS64496, AS64497"));
        assert_eq!(
            blocks[2]["elements"][0]["text"],
            "<http://h:1/x?a=1&b=2|Event history> · routewatch"
        );
        let r = Notice::from_anomaly(&event(Transition::Resolved), &registry(), 1.0);
        let b = slack_body(&r, None);
        assert!(b["text"]
            .as_str()
            .unwrap()
            .starts_with(":white_check_mark: RESOLVED"));
        assert_eq!(b["blocks"].as_array().unwrap().len(), 2, "no link block");
    }

    #[test]
    fn a_prefix_gone_from_the_registry_has_no_expected_origins() {
        let mut e = event(Transition::Resolved);
        e.prefix = "198.51.100.0/24".parse().unwrap();
        let n = Notice::from_anomaly(&e, &registry(), 1.0);
        assert!(n.expected_origins.is_empty());
        assert!(!n.summary().contains("expected"));
    }

    #[test]
    fn long_paths_are_cut_and_durations_read_well() {
        let mut e = event(Transition::Opened);
        e.example_path = Some(std::sync::Arc::new(AsPath::from_sequence(&[64500; 200])));
        let n = Notice::from_anomaly(&e, &registry(), 1.0);
        let s = n.summary();
        assert!(s.ends_with('…') && s.len() < 700, "{s}");
        assert_eq!(format_duration(0.0), "0s");
        assert_eq!(format_duration(42.4), "42s");
        assert_eq!(format_duration(60.0), "1m 0s");
        assert_eq!(format_duration(90_061.0), "1d 1h 1m 1s");
        let ipv6 = Notice {
            prefix: "2001:db8::/32".parse().unwrap(),
            ..n
        };
        assert!(link("http://x", &ipv6).contains("prefix=2001%3Adb8%3A%3A%2F32&"));
    }

    #[test]
    fn a_test_notice_is_labelled_as_such() {
        let n = Notice::test("ops", 1_700_000_000.0);
        let b = webhook_body(&n, Some(&link("http://h:1", &n)));
        assert_eq!(b["event"], "test");
        assert_eq!(b["link"], "http://h:1/api/v1/status");
        assert!(b["summary"].as_str().unwrap().contains("target 'ops'"));
        let s = slack_body(&n, None);
        assert!(s["text"]
            .as_str()
            .unwrap()
            .starts_with(":information_source: test notification"));
    }
}
