//! Anomaly kinds and the per-route detection rules.
//!
//! A route's anomalies are a pure function of the route and the policy of the registered prefix
//! it matched, so the engine never stores them per route: on replace or withdraw it recomputes
//! what the old route carried and takes it back.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::model::{AsPath, Origin};
use crate::registry::{Location, MatchKind, PrefixId, RegisteredPrefix};

/// The kinds of anomaly, with their stable snake_case names (metric label, API, events).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AnomalyKind {
    /// Exact registered prefix announced by an unexpected origin (exact-prefix hijack).
    OriginMismatch,
    /// More-specific of a registered prefix announced by an unexpected origin.
    SubprefixHijack,
    /// More-specific beyond max-length, from an expected origin.
    UnexpectedMoreSpecific,
    /// The AS adjacent to the origin is not a registered provider (the ISP/IXP is bypassed).
    UnexpectedUpstream,
    /// More than one origin for the same announced prefix at the same time.
    Moas,
    /// The path ends in an AS_SET: origin ambiguous.
    AsSetOrigin,
    /// The route is RPKI-invalid (origin or length) against the loaded VRPs.
    RpkiInvalid,
    /// The route leaked: its AS path is Invalid under ASPA verification, or it breaks the
    /// Only-to-Customer rules (RFC 9234); see [`super::leak`].
    RouteLeak,
    /// Fewer peers than the location's `min-visibility` see the registered prefix, after at
    /// least that many did.
    VisibilityLost,
    /// No peer has a route for the registered prefix any more.
    Withdrawn,
}

impl AnomalyKind {
    /// Every kind, in a fixed order (index = position), for pre-initialised metric labels.
    pub const ALL: [AnomalyKind; 10] = [
        AnomalyKind::OriginMismatch,
        AnomalyKind::SubprefixHijack,
        AnomalyKind::UnexpectedMoreSpecific,
        AnomalyKind::UnexpectedUpstream,
        AnomalyKind::Moas,
        AnomalyKind::AsSetOrigin,
        AnomalyKind::RpkiInvalid,
        AnomalyKind::RouteLeak,
        AnomalyKind::VisibilityLost,
        AnomalyKind::Withdrawn,
    ];

    /// The stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            AnomalyKind::OriginMismatch => "origin_mismatch",
            AnomalyKind::SubprefixHijack => "subprefix_hijack",
            AnomalyKind::UnexpectedMoreSpecific => "unexpected_more_specific",
            AnomalyKind::UnexpectedUpstream => "unexpected_upstream",
            AnomalyKind::Moas => "moas",
            AnomalyKind::AsSetOrigin => "as_set_origin",
            AnomalyKind::RpkiInvalid => "rpki_invalid",
            AnomalyKind::RouteLeak => "route_leak",
            AnomalyKind::VisibilityLost => "visibility_lost",
            AnomalyKind::Withdrawn => "withdrawn",
        }
    }

    /// Position in [`AnomalyKind::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// Severity for alerting: hijacks are critical; RPKI-invalid routes and a prefix no peer
    /// sees are errors; the rest warnings.
    pub fn severity(self) -> Severity {
        match self {
            AnomalyKind::OriginMismatch | AnomalyKind::SubprefixHijack => Severity::Critical,
            AnomalyKind::RpkiInvalid | AnomalyKind::RouteLeak | AnomalyKind::Withdrawn => {
                Severity::Error
            }
            _ => Severity::Warning,
        }
    }
}

impl std::fmt::Display for AnomalyKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How much an operator should care.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Routine (announcements, path changes, resolutions).
    Information,
    /// Worth a look (unexpected upstream, MOAS, visibility lost).
    Warning,
    /// Something is wrong (RPKI invalid, prefix withdrawn everywhere).
    Error,
    /// Act now (exact-prefix or sub-prefix hijack).
    Critical,
}

impl Severity {
    /// The stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Information => "information",
            Severity::Warning => "warning",
            Severity::Error => "error",
            Severity::Critical => "critical",
        }
    }

    /// Parses a name written by [`Severity::as_str`].
    pub fn parse(s: &str) -> Option<Severity> {
        [
            Severity::Information,
            Severity::Warning,
            Severity::Error,
            Severity::Critical,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// Identity of an anomaly instance: (kind, registered prefix, announced prefix, offending ASN).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AnomalyKey {
    /// Kind.
    pub kind: AnomalyKind,
    /// Registered prefix.
    pub registered: PrefixId,
    /// Announced prefix.
    pub announced: IpNet,
    /// Offending ASN: the unexpected origin or upstream; none for MOAS and AS_SET.
    pub asn: Option<u32>,
}

/// The (at most two) per-route anomalies of one route. MOAS is not per route: the engine
/// derives it from all routes of an announced prefix.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RouteAnomalies {
    items: [Option<(AnomalyKind, Option<u32>)>; 2],
}

impl RouteAnomalies {
    fn push(&mut self, kind: AnomalyKind, asn: Option<u32>) {
        if let Some(slot) = self.items.iter_mut().find(|s| s.is_none()) {
            *slot = Some((kind, asn));
        }
    }

    /// The anomalies, as (kind, offending ASN).
    pub fn iter(&self) -> impl Iterator<Item = (AnomalyKind, Option<u32>)> + '_ {
        self.items.iter().flatten().copied()
    }
}

/// The anomalies one route carries against the policy of the registered prefix it matched.
pub fn classify_route(
    location: &Location,
    registered: &RegisteredPrefix,
    announced: &IpNet,
    kind: MatchKind,
    path: &AsPath,
) -> RouteAnomalies {
    let mut out = RouteAnomalies::default();
    match &path.origin {
        Origin::Set(_) => out.push(AnomalyKind::AsSetOrigin, None),
        // An empty path is a route of the peer's own AS; nothing to judge the origin by.
        Origin::Unknown => {}
        &Origin::Asn(origin) => {
            if !location.expects_origin(origin) {
                let k = match kind {
                    MatchKind::Exact => AnomalyKind::OriginMismatch,
                    MatchKind::MoreSpecific => AnomalyKind::SubprefixHijack,
                };
                out.push(k, Some(origin));
            } else {
                if kind == MatchKind::MoreSpecific && announced.prefix_len() > registered.max_length
                {
                    out.push(AnomalyKind::UnexpectedMoreSpecific, Some(origin));
                }
                // Upstream is judged only for expected origins: on a hijacked route the origin
                // anomaly already says everything.
                if let Some(up) = path.upstream() {
                    if !location.expects_upstream(up) {
                        out.push(AnomalyKind::UnexpectedUpstream, Some(up));
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn location() -> Location {
        Location {
            name: "contoso".into(),
            provider: Some("Example ISP".into()),
            provider_asns: vec![64500],
            region: Some("US-WA".into()),
            origin_asns: vec![64496],
            prefixes: vec!["203.0.113.0/24".parse().unwrap()],
            max_length: Some(25),
            max_length_v6: None,
            min_peers: 1,
            min_visibility: 0,
        }
    }

    fn reg() -> RegisteredPrefix {
        RegisteredPrefix {
            id: 0,
            prefix: "203.0.113.0/24".parse().unwrap(),
            location: 0,
            max_length: 25,
        }
    }

    fn classify(
        announced: &str,
        kind: MatchKind,
        path: &AsPath,
    ) -> Vec<(AnomalyKind, Option<u32>)> {
        classify_route(&location(), &reg(), &announced.parse().unwrap(), kind, path)
            .iter()
            .collect()
    }

    #[test]
    fn expected_origin_via_expected_upstream_is_clean() {
        let p = AsPath::from_sequence(&[3356, 64500, 64496, 64496]);
        assert!(classify("203.0.113.0/24", MatchKind::Exact, &p).is_empty());
        // Allowed more-specific (/25 <= max-length 25).
        assert!(classify("203.0.113.0/25", MatchKind::MoreSpecific, &p).is_empty());
        // Direct peer: path is only the origin (prepended): upstream not judged.
        let p = AsPath::from_sequence(&[64496, 64496]);
        assert!(classify("203.0.113.0/24", MatchKind::Exact, &p).is_empty());
    }

    #[test]
    fn each_kind() {
        let hijack = AsPath::from_sequence(&[3356, 666]);
        assert_eq!(
            classify("203.0.113.0/24", MatchKind::Exact, &hijack),
            vec![(AnomalyKind::OriginMismatch, Some(666))]
        );
        assert_eq!(
            classify("203.0.113.0/25", MatchKind::MoreSpecific, &hijack),
            vec![(AnomalyKind::SubprefixHijack, Some(666))]
        );
        let ok = AsPath::from_sequence(&[3356, 64500, 64496]);
        assert_eq!(
            classify("203.0.113.0/26", MatchKind::MoreSpecific, &ok),
            vec![(AnomalyKind::UnexpectedMoreSpecific, Some(64496))]
        );
        let bypass = AsPath::from_sequence(&[3356, 174, 64496]);
        assert_eq!(
            classify("203.0.113.0/24", MatchKind::Exact, &bypass),
            vec![(AnomalyKind::UnexpectedUpstream, Some(174))]
        );
        // Both at once: too long and bypassing the provider.
        assert_eq!(
            classify("203.0.113.0/28", MatchKind::MoreSpecific, &bypass),
            vec![
                (AnomalyKind::UnexpectedMoreSpecific, Some(64496)),
                (AnomalyKind::UnexpectedUpstream, Some(174))
            ]
        );
        let set = AsPath::new(
            vec![3356, 64500].into(),
            Origin::Set(vec![64496, 64497].into()),
        );
        assert_eq!(
            classify("203.0.113.0/24", MatchKind::Exact, &set),
            vec![(AnomalyKind::AsSetOrigin, None)]
        );
        let empty = AsPath::from_sequence(&[]);
        assert!(classify("203.0.113.0/24", MatchKind::Exact, &empty).is_empty());
    }

    #[test]
    fn names_are_stable() {
        let names: Vec<_> = AnomalyKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "origin_mismatch",
                "subprefix_hijack",
                "unexpected_more_specific",
                "unexpected_upstream",
                "moas",
                "as_set_origin",
                "rpki_invalid",
                "route_leak",
                "visibility_lost",
                "withdrawn"
            ]
        );
        for (i, k) in AnomalyKind::ALL.iter().enumerate() {
            assert_eq!(k.index(), i);
        }
    }
}
