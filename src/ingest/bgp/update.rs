//! The BGP UPDATE (RFC 4271 §4.3, RFC 4760, RFC 7911), split into its sections and walked
//! prefix by prefix, for both feeds: a BMP Route Monitoring message carries one, and so does a
//! BGP4MP record of an MRT update dump.
//!
//! Two readers, for two jobs:
//!
//! * a bounds-checked walker of our own ([`Update::for_each_route`]) lists the prefixes
//!   (withdrawn routes, MP_UNREACH_NLRI, MP_REACH_NLRI, NLRI, in that order) *with the ADD-PATH
//!   setting of each address family*, which the caller knows (BMP: from the peer's negotiated
//!   capabilities; MRT: from the record's subtype). It allocates nothing, so the registry
//!   prefilter runs before anything is built, and its visitor can stop the walk early. It never
//!   guesses: bgpkit-parser takes one ADD-PATH flag per message and second-guesses a `false`
//!   flag when an NLRI starts with a zero byte (the MRT prefilter hands such records to it);
//! * bgpkit-parser's `parse_bgp_message` ([`super::as_path::decode_as_path`]) decodes the path
//!   attributes, with the 2- or 4-byte AS number length the caller gives (merging AS4_PATH for
//!   2-byte sessions, RFC 6793). BMP runs it at most once per message, and only when a matched
//!   announcement needs the path.
//!
//! Only unicast and multicast IPv4/IPv6 NLRI are routes here (as for bgpdump and
//! bgpkit-parser); other families (labelled unicast, VPN, EVPN, ...) are skipped, though their
//! End-of-RIB markers are recognised. NLRI with host bits set are masked. Repeated or
//! malformed MP_REACH_NLRI / MP_UNREACH_NLRI attributes make the whole UPDATE unusable
//! ([`UpdateError::MalformedMp`]; the reasons are in the [`super`] documentation).

use std::fmt;
use std::ops::ControlFlow;

use ipnet::IpNet;

pub use super::wire::BGP_HEADER_LEN;
use super::wire::{
    self, message_types, split_message, Cursor, WireError, ATTR_MP_REACH, ATTR_MP_UNREACH,
};

/// An address family: AFI and SAFI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Family {
    /// Address family identifier (1 IPv4, 2 IPv6, 25 L2VPN, ...).
    pub afi: u16,
    /// Subsequent address family identifier (1 unicast, 2 multicast, 4 labelled, 128 VPN, ...).
    pub safi: u8,
}

impl Family {
    /// IPv4 unicast (the family of the classic UPDATE fields).
    pub const IPV4_UNICAST: Family = Family { afi: 1, safi: 1 };
    /// IPv6 unicast.
    pub const IPV6_UNICAST: Family = Family { afi: 2, safi: 1 };

    /// Whether NLRI of this family are routes routewatch tracks (IPv4/IPv6 unicast/multicast).
    pub fn carries_routes(self) -> bool {
        matches!(self.afi, 1 | 2) && matches!(self.safi, 1 | 2)
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let afi = match self.afi {
            1 => "ipv4",
            2 => "ipv6",
            25 => "l2vpn",
            _ => return write!(f, "afi{}-safi{}", self.afi, self.safi),
        };
        let safi = match self.safi {
            1 => "unicast",
            2 => "multicast",
            4 => "labeled-unicast",
            70 => "evpn",
            128 => "vpn",
            133 => "flowspec",
            _ => return write!(f, "{afi}-safi{}", self.safi),
        };
        write!(f, "{afi}-{safi}")
    }
}

/// Why a BGP message's routes were not used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UpdateError {
    /// The BGP message is not an UPDATE (RFC 7854 allows only UPDATEs in Route Monitoring).
    #[error("BGP message type {0} where an UPDATE was expected")]
    NotUpdate(u8),
    /// The UPDATE does not add up.
    #[error("malformed UPDATE: {0}")]
    Malformed(WireError),
    /// MP_REACH_NLRI or MP_UNREACH_NLRI appears twice (RFC 7606 §3 g), or one does not read
    /// (its AFI/SAFI, its next hop for a route family, RFC 7606 §7.11, or its NLRI, §5.3): no
    /// route of the UPDATE is used.
    #[error("malformed UPDATE: MP_REACH_NLRI/MP_UNREACH_NLRI: {0}")]
    MalformedMp(WireError),
}

/// The parse-error label of an UPDATE whose multiprotocol attributes are malformed or repeated
/// (RFC 7606 §3 g, §5.3, §7.11), in both feeds.
pub const MALFORMED_MP_ATTRIBUTE: &str = "malformed_mp_attribute";

impl UpdateError {
    /// Bounded error label (the `error` label of `routewatch_parse_errors_total`, both feeds).
    pub fn label(&self) -> &'static str {
        match self {
            UpdateError::NotUpdate(_) => "not_update",
            UpdateError::Malformed(_) => "malformed_update",
            UpdateError::MalformedMp(_) => MALFORMED_MP_ATTRIBUTE,
        }
    }
}

impl From<WireError> for UpdateError {
    fn from(e: WireError) -> Self {
        UpdateError::Malformed(e)
    }
}

/// The values of MP_REACH_NLRI and MP_UNREACH_NLRI, if present.
type MpAttributes<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

/// A BGP UPDATE split into its sections (nothing decoded yet).
#[derive(Debug, Clone, Copy)]
pub struct Update<'a> {
    /// The whole BGP message, as long as its length field says.
    pub pdu: &'a [u8],
    /// Withdrawn Routes (IPv4 unicast).
    pub withdrawn: &'a [u8],
    /// Path attributes.
    pub attributes: &'a [u8],
    /// NLRI (IPv4 unicast).
    pub nlri: &'a [u8],
    /// Bytes after the message (RFC 7854 allows none; they are ignored).
    pub trailing: usize,
}

/// One prefix of an UPDATE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Nlri {
    /// Its address family.
    pub family: Family,
    /// The prefix (host bits masked).
    pub prefix: IpNet,
    /// ADD-PATH path identifier (0 when the family does not use ADD-PATH).
    pub path_id: u32,
    /// Withdrawn (true) or announced.
    pub withdrawn: bool,
}

/// The multiprotocol families an UPDATE touched, as its sections declare them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sections {
    /// MP_REACH_NLRI's family.
    pub reach: Option<Family>,
    /// MP_UNREACH_NLRI's family.
    pub unreach: Option<Family>,
    /// Whether the classic Withdrawn Routes or NLRI fields carry IPv4 unicast prefixes.
    pub ipv4_unicast: bool,
}

impl Sections {
    /// The families touched.
    pub fn families(&self) -> impl Iterator<Item = Family> {
        self.ipv4_unicast
            .then_some(Family::IPV4_UNICAST)
            .into_iter()
            .chain(self.unreach)
            .chain(self.reach)
    }
}

/// Splits a BGP message into UPDATE sections, checking every length.
pub fn split_update(pdu: &[u8]) -> Result<Update<'_>, UpdateError> {
    let (ty, msg) = split_message(pdu)?;
    if ty != message_types::UPDATE {
        return Err(UpdateError::NotUpdate(ty));
    }
    let mut body = Cursor::new(&msg[BGP_HEADER_LEN..]);
    let wlen = body.u16("withdrawn routes length")? as usize;
    let withdrawn = body.take(wlen, "withdrawn routes")?;
    let alen = body.u16("path attributes length")? as usize;
    let attributes = body.take(alen, "path attributes")?;
    let nlri = body.take(body.remaining(), "NLRI")?;
    Ok(Update {
        pdu: msg,
        withdrawn,
        attributes,
        nlri,
        trailing: pdu.len() - msg.len(),
    })
}

impl<'a> Update<'a> {
    /// The End-of-RIB marker's family (RFC 4724 §2), if this UPDATE is one: for IPv4 unicast an
    /// UPDATE with no withdrawn routes, no attributes and no NLRI; for any other family an
    /// UPDATE whose only content is an MP_UNREACH_NLRI holding just that AFI/SAFI.
    pub fn end_of_rib(&self) -> Option<Family> {
        if !self.withdrawn.is_empty() || !self.nlri.is_empty() {
            return None;
        }
        if self.attributes.is_empty() {
            return Some(Family::IPV4_UNICAST);
        }
        let mut attrs = wire::attributes(self.attributes);
        match (attrs.next(), attrs.next()) {
            (Some(Ok((ATTR_MP_UNREACH, &[a0, a1, safi]))), None) => Some(Family {
                afi: u16::from_be_bytes([a0, a1]),
                safi,
            }),
            _ => None,
        }
    }

    /// The MP_REACH_NLRI and MP_UNREACH_NLRI values; an error if the attributes are malformed
    /// or either appears twice (RFC 7606 §3 g).
    fn mp_attributes(&self) -> Result<MpAttributes<'a>, UpdateError> {
        let (mut reach, mut unreach) = (None, None);
        for a in wire::attributes(self.attributes) {
            let (code, value) = a?;
            let slot = match code {
                ATTR_MP_REACH => &mut reach,
                ATTR_MP_UNREACH => &mut unreach,
                _ => continue,
            };
            if slot.replace(value).is_some() {
                return Err(UpdateError::MalformedMp(WireError::Invalid(
                    "repeated MP_REACH/MP_UNREACH attribute",
                )));
            }
        }
        Ok((reach, unreach))
    }

    /// The family of the MP_REACH_NLRI attribute, if present and readable.
    pub fn reach_family(&self) -> Option<Family> {
        let (reach, _) = self.mp_attributes().ok()?;
        let mut c = Cursor::new(reach?);
        let afi = c.u16("MP AFI").ok()?;
        let safi = c.u8("MP SAFI").ok()?;
        Some(Family { afi, safi })
    }

    /// Calls `visit` for every unicast/multicast IPv4/IPv6 prefix, withdrawals first (classic,
    /// then MP_UNREACH), then announcements (MP_REACH, then classic): so a prefix both withdrawn
    /// and announced ends announced (RFC 4271 §3.1 / RFC 7606 §5.3). `add_path(family)` says
    /// whether that family's NLRI carry path identifiers.
    ///
    /// `visit` may stop the walk (`Break`), which is then returned; after visiting everything the
    /// families the UPDATE touched are returned. The MP_REACH_NLRI and MP_UNREACH_NLRI
    /// attributes are found and their headers read before the first prefix is visited, so a
    /// repeated one, or one whose AFI/SAFI or next hop does not read, is an error whatever the
    /// visitor does. On error, some prefixes may already have been visited: the caller
    /// discards them.
    pub fn for_each_route<B>(
        &self,
        add_path: impl Fn(Family) -> bool,
        mut visit: impl FnMut(Nlri) -> ControlFlow<B>,
    ) -> Result<ControlFlow<B, Sections>, UpdateError> {
        let v4 = Family::IPV4_UNICAST;
        let (reach, unreach) = self.mp_attributes()?;
        let unreach = unreach
            .map(|v| mp_nlri(v, false))
            .transpose()
            .map_err(UpdateError::MalformedMp)?;
        let reach = reach
            .map(|v| mp_nlri(v, true))
            .transpose()
            .map_err(UpdateError::MalformedMp)?;
        let sections = Sections {
            reach: reach.map(|(family, _)| family),
            unreach: unreach.map(|(family, _)| family),
            ipv4_unicast: !self.withdrawn.is_empty() || !self.nlri.is_empty(),
        };
        let lists = [
            (Some((v4, self.withdrawn)), true, false),
            (unreach, true, true),
            (reach, false, true),
            (Some((v4, self.nlri)), false, false),
        ];
        for (list, withdrawn, mp) in lists {
            let Some((family, nlri)) = list else {
                continue;
            };
            let walked = nlri_list(nlri, family, add_path(family), withdrawn, &mut visit);
            match walked {
                Ok(ControlFlow::Continue(())) => {}
                Ok(ControlFlow::Break(b)) => return Ok(ControlFlow::Break(b)),
                Err(e) if mp => return Err(UpdateError::MalformedMp(e)),
                Err(e) => return Err(UpdateError::Malformed(e)),
            }
        }
        Ok(ControlFlow::Continue(sections))
    }
}

/// The family of an MP_REACH_NLRI (`reach`) or MP_UNREACH_NLRI value and its NLRI: empty for a
/// family that carries no routes here, whose rest is not read.
fn mp_nlri(value: &[u8], reach: bool) -> Result<(Family, &[u8]), WireError> {
    let mut c = Cursor::new(value);
    let family = Family {
        afi: c.u16("MP AFI")?,
        safi: c.u8("MP SAFI")?,
    };
    if !family.carries_routes() {
        return Ok((family, &[]));
    }
    if reach {
        let nh = c.u8("next hop length")? as usize;
        c.take(nh, "next hop")?;
        c.u8("MP_REACH reserved")?;
    }
    Ok((family, c.take(c.remaining(), "MP NLRI")?))
}

/// Visits the prefixes of one NLRI list (Withdrawn Routes, NLRI, or an MP attribute's).
#[inline]
fn nlri_list<B>(
    data: &[u8],
    family: Family,
    add_path: bool,
    withdrawn: bool,
    visit: &mut impl FnMut(Nlri) -> ControlFlow<B>,
) -> Result<ControlFlow<B>, WireError> {
    let mut c = Cursor::new(data);
    let v6 = family.afi == 2;
    while c.remaining() > 0 {
        let path_id = if add_path { c.u32("path id")? } else { 0 };
        let prefix = c.prefix(v6)?;
        if let ControlFlow::Break(b) = visit(Nlri {
            family,
            prefix,
            path_id,
            withdrawn,
        }) {
            return Ok(ControlFlow::Break(b));
        }
    }
    Ok(ControlFlow::Continue(()))
}
