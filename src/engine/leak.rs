//! The `route_leak` rule: a route is a leak when its AS path is Invalid under ASPA verification
//! (draft-ietf-sidrops-aspa-verification, [`crate::rpki::aspa`]) with the procedure the peer's
//! role selects, or when it breaks the Only-to-Customer rules of RFC 9234 §5. Pure: a function
//! of the route's path, the peer (its AS and role) and the ASPA set, so the engine stores
//! nothing per route and recomputes the verdict to take a route's carriage back.
//!
//! # Which procedure
//!
//! The role is the peer's relative to the monitored router (RFC 9234 §4.1): from the BGP Role
//! capability of the peer's OPEN in a BMP Peer Up, else from `[rpki.peer-roles]`, else unknown.
//!
//! | peer role | procedure | why |
//! |---|---|---|
//! | provider | downstream | draft-ietf-sidrops-aspa-verification-27 §5.6: a route received from a provider |
//! | customer, peer, rs, rs-client | upstream | §5.5: from a customer, a lateral peer, a route server (received by its client), or by a route server from its client |
//! | unknown (MRT and RIS Live collector peers, BMP without the capability) | downstream | the procedure that cannot raise a false leak: a path Invalid under it is Invalid under every procedure (§6.4 allows it where the relationship is not known) |
//!
//! # Only-to-Customer (RFC 9234 §5)
//!
//! Only with a known role: a route carrying OTC received from a customer or a route-server
//! client is a leak (rule 1 of §5's receiver procedure), and one received from a lateral peer
//! whose OTC is not that peer's AS is a leak (rule 2). Routes from providers and route servers
//! are not judged by OTC (the receiver would add OTC to them, not drop them).

use std::net::IpAddr;

use serde::Serialize;

use crate::model::{AsPath, PeerKey, PeerRole};
use crate::rpki::aspa::{AspaSet, AspaState, Procedure};
use crate::util::FxMap;

/// Why a route is a leak (the `reason` of a `route_leak` event).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LeakReason {
    /// ASPA upstream verification: Invalid.
    AspaUpstream,
    /// ASPA downstream verification: Invalid.
    AspaDownstream,
    /// The path has an AS_SET: Invalid under ASPA verification by rule.
    AspaAsSet,
    /// RFC 9234 §5: OTC on a route from a customer or a route-server client.
    OtcFromCustomer,
    /// RFC 9234 §5: OTC on a route from a lateral peer, not naming that peer.
    OtcFromPeer,
}

impl LeakReason {
    /// The stable name.
    pub const fn as_str(self) -> &'static str {
        match self {
            LeakReason::AspaUpstream => "aspa_upstream",
            LeakReason::AspaDownstream => "aspa_downstream",
            LeakReason::AspaAsSet => "aspa_as_set",
            LeakReason::OtcFromCustomer => "otc_from_customer",
            LeakReason::OtcFromPeer => "otc_from_peer",
        }
    }
}

/// A leak: why, and the AS that leaked (the anomaly instance's offending ASN).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Leak {
    /// Why.
    pub reason: LeakReason,
    /// The AS that leaked, when the rule names one: for ASPA the first AS that is not an attested
    /// provider of the AS before it ([`crate::rpki::aspa::Verdict::leaker`]); for OTC the peer.
    pub leaker: Option<u32>,
    /// The ASPA procedure applied (`None` for an OTC leak).
    pub procedure: Option<Procedure>,
    /// The peer's role as known (`None`: unknown).
    pub role: Option<PeerRole>,
}

/// Configured peer roles (`[rpki.peer-roles]`): by peer address, else by peer AS.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RolePolicy {
    /// Roles by peer address.
    pub by_address: FxMap<IpAddr, PeerRole>,
    /// Roles by peer AS.
    pub by_asn: FxMap<u32, PeerRole>,
}

impl RolePolicy {
    /// The configured role of `peer`, if any.
    pub fn role_of(&self, peer: &PeerKey) -> Option<PeerRole> {
        self.by_address
            .get(&peer.address)
            .or_else(|| self.by_asn.get(&peer.asn))
            .copied()
    }
}

/// The ASPA procedure for a peer of `role` (see the module table).
pub fn procedure_for(role: Option<PeerRole>) -> Procedure {
    match role {
        Some(PeerRole::Customer | PeerRole::Peer | PeerRole::Rs | PeerRole::RsClient) => {
            Procedure::Upstream
        }
        Some(PeerRole::Provider) | None => Procedure::Downstream,
    }
}

/// Whether a route with `path` from a peer of AS `peer_asn` and `role` is a leak. `aspas`:
/// `None` or empty when no ASPA is loaded (path verification off; OTC is still checked).
pub fn check(
    aspas: Option<&AspaSet>,
    path: &AsPath,
    peer_asn: u32,
    role: Option<PeerRole>,
) -> Option<Leak> {
    if let Some(set) = aspas.filter(|s| !s.is_empty()) {
        let procedure = procedure_for(role);
        if let Some(v) = set.verify(&path.asns, path.has_as_set(), procedure) {
            if v.state == AspaState::Invalid {
                let reason = match (v.as_set, procedure) {
                    (true, _) => LeakReason::AspaAsSet,
                    (false, Procedure::Upstream) => LeakReason::AspaUpstream,
                    (false, Procedure::Downstream) => LeakReason::AspaDownstream,
                };
                return Some(Leak {
                    reason,
                    leaker: v.leaker,
                    procedure: Some(procedure),
                    role,
                });
            }
        }
    }
    let otc = path.otc?;
    let reason = match role? {
        PeerRole::Customer | PeerRole::RsClient => LeakReason::OtcFromCustomer,
        PeerRole::Peer if otc != peer_asn => LeakReason::OtcFromPeer,
        _ => return None,
    };
    Some(Leak {
        reason,
        leaker: Some(peer_asn),
        procedure: None,
        role,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aspas() -> AspaSet {
        // 64501 → provider 64502; 64503 → providers 64502 and 64504; 64502 → provider 64510.
        AspaSet::from_records([
            (64501u32, vec![64502u32]),
            (64503, vec![64502, 64504]),
            (64502, vec![64510]),
            (64504, vec![64599]),
        ])
    }

    #[test]
    fn a_valley_is_a_leak_whatever_the_role_and_names_the_leaker() {
        let leak = AsPath::from_sequence(&[64504, 64503, 64502, 64501]);
        for role in [None, Some(PeerRole::Provider), Some(PeerRole::Customer)] {
            let l = check(Some(&aspas()), &leak, 64504, role);
            assert_eq!(l.map(|l| l.leaker), Some(Some(64503)), "{role:?}");
        }
        let l = check(Some(&aspas()), &leak, 64504, None);
        assert_eq!(l.map(|l| l.reason), Some(LeakReason::AspaDownstream));
    }

    #[test]
    fn a_path_down_from_a_provider_is_a_leak_only_when_the_peer_is_a_customer() {
        // 64510 sends 64502's customer route down to us: fine from a provider, a leak from a
        // customer (our customer may not send us its provider's routes... here 64510 is 64502's
        // provider, so a path 64510 64502 64501 came down from 64510).
        let path = AsPath::from_sequence(&[64510, 64502, 64501]);
        assert_eq!(check(Some(&aspas()), &path, 64510, None), None);
        assert_eq!(
            check(Some(&aspas()), &path, 64510, Some(PeerRole::Provider)),
            None
        );
        // Received from 64510 as our customer: 64510 is up the ramp from 64502, fine too.
        assert_eq!(
            check(Some(&aspas()), &path, 64510, Some(PeerRole::Customer)),
            None
        );
        // 64503 sending 64502's route (its provider's) to us as a customer: a leak.
        let up = AsPath::from_sequence(&[64503, 64502, 64501]);
        let l = check(Some(&aspas()), &up, 64503, Some(PeerRole::Customer));
        assert_eq!(
            l.map(|l| (l.reason, l.leaker)),
            Some((LeakReason::AspaUpstream, Some(64503)))
        );
        assert_eq!(check(Some(&aspas()), &up, 64503, None), None);
    }

    #[test]
    fn a_path_with_a_set_the_decoder_folded_is_invalid_by_rule() {
        // `64510 64502 {64501}`: the one-member set names the origin, and is still an AS_SET.
        let plain = AsPath::from_sequence(&[64510, 64502, 64501]);
        assert_eq!(check(Some(&aspas()), &plain, 64510, None), None);
        let folded = plain.clone().with_as_set();
        let l = check(Some(&aspas()), &folded, 64510, None);
        assert_eq!(
            l.map(|l| (l.reason, l.leaker)),
            Some((LeakReason::AspaAsSet, None))
        );
    }

    #[test]
    fn otc_rules_apply_only_with_a_known_role() {
        let path = AsPath::from_sequence(&[64520, 64521]).with_otc(Some(64530));
        assert_eq!(check(None, &path, 64520, None), None);
        assert_eq!(check(None, &path, 64520, Some(PeerRole::Provider)), None);
        let c = check(None, &path, 64520, Some(PeerRole::Customer));
        assert_eq!(
            c.map(|l| (l.reason, l.leaker)),
            Some((LeakReason::OtcFromCustomer, Some(64520)))
        );
        let p = check(None, &path, 64520, Some(PeerRole::Peer));
        assert_eq!(p.map(|l| l.reason), Some(LeakReason::OtcFromPeer));
        // A lateral peer's own OTC value is the normal case.
        let own = AsPath::from_sequence(&[64520, 64521]).with_otc(Some(64520));
        assert_eq!(check(None, &own, 64520, Some(PeerRole::Peer)), None);
        assert_eq!(
            check(None, &own, 64520, Some(PeerRole::RsClient)).map(|l| l.reason),
            Some(LeakReason::OtcFromCustomer)
        );
    }
}
