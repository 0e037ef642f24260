//! The BGP UPDATE carried by a Route Monitoring message (RFC 4271 §4.3, RFC 4760, RFC 7911).
//!
//! Two readers, for two jobs:
//!
//! * a bounds-checked walker of our own ([`Update::for_each_route`]) lists the prefixes
//!   (withdrawn routes, MP_UNREACH_NLRI, MP_REACH_NLRI, NLRI, in that order) *with the ADD-PATH
//!   setting of each address family*, which the caller derives from the peer's negotiated
//!   capabilities. It allocates nothing, so the registry prefilter runs before anything is
//!   built, and it never guesses: bgpkit-parser takes one ADD-PATH flag per message and
//!   second-guesses a `false` flag when an NLRI starts with a zero byte;
//! * bgpkit-parser's `parse_bgp_message` ([`decode_as_path`]) decodes the path attributes, with
//!   the 2- or 4-byte AS number length the per-peer header's A flag gives (merging AS4_PATH for
//!   2-byte sessions, RFC 6793). It runs at most once per message, and only when a matched
//!   announcement needs the path.
//!
//! Only unicast and multicast IPv4/IPv6 NLRI are routes here (as in the MRT feed, bgpdump and
//! bgpkit-parser); other families (labelled unicast, VPN, EVPN, ...) are skipped, though their
//! End-of-RIB markers are recognised. NLRI with host bits set are masked.

use std::fmt;

use bgpkit_parser::models::{AsPath as BgpkitPath, AsnLength, BgpMessage};
use bgpkit_parser::parser::bgp::messages::parse_bgp_message;
use bgpkit_parser::ParserError;
use ipnet::IpNet;

use crate::ingest::mrt::wire::{self, Cursor, WireError};

/// BGP message header length (marker, length, type).
pub const BGP_HEADER_LEN: usize = 19;

const ATTR_MP_REACH: u8 = 14;
const ATTR_MP_UNREACH: u8 = 15;

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

/// Why a Route Monitoring message's BGP PDU was not used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UpdateError {
    /// The BGP message is not an UPDATE (RFC 7854 allows only UPDATEs here).
    #[error("BGP message type {0} where an UPDATE was expected")]
    NotUpdate(u8),
    /// The UPDATE does not add up.
    #[error("malformed UPDATE: {0}")]
    Malformed(WireError),
}

impl UpdateError {
    /// Bounded error label.
    pub fn label(&self) -> &'static str {
        match self {
            UpdateError::NotUpdate(_) => "not_update",
            UpdateError::Malformed(_) => "malformed_update",
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
    let mut c = Cursor::new(pdu);
    c.take(16, "BGP marker")?;
    let len = c.u16("BGP length")? as usize;
    let ty = c.u8("BGP type")?;
    if len < BGP_HEADER_LEN || len > pdu.len() {
        return Err(WireError::Invalid("BGP message length").into());
    }
    if ty != 2 {
        return Err(UpdateError::NotUpdate(ty));
    }
    let msg = &pdu[..len];
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
        trailing: pdu.len() - len,
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
    /// or either appears twice (RFC 7606 §3.g).
    fn mp_attributes(&self) -> Result<MpAttributes<'a>, WireError> {
        let (mut reach, mut unreach) = (None, None);
        for a in wire::attributes(self.attributes) {
            let (code, value) = a?;
            let slot = match code {
                ATTR_MP_REACH => &mut reach,
                ATTR_MP_UNREACH => &mut unreach,
                _ => continue,
            };
            if slot.replace(value).is_some() {
                return Err(WireError::Invalid("repeated MP_REACH/MP_UNREACH attribute"));
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
    /// whether that family's NLRI carry path identifiers. On error, some prefixes may already
    /// have been visited: the caller discards them.
    pub fn for_each_route(
        &self,
        add_path: impl Fn(Family) -> bool,
        mut visit: impl FnMut(Nlri),
    ) -> Result<Sections, WireError> {
        let v4 = Family::IPV4_UNICAST;
        let mut sections = Sections {
            ipv4_unicast: !self.withdrawn.is_empty() || !self.nlri.is_empty(),
            ..Sections::default()
        };
        nlri_list(self.withdrawn, v4, add_path(v4), true, &mut visit)?;
        let (reach, unreach) = self.mp_attributes()?;
        if let Some(value) = unreach {
            let mut c = Cursor::new(value);
            let family = Family {
                afi: c.u16("MP_UNREACH AFI")?,
                safi: c.u8("MP_UNREACH SAFI")?,
            };
            sections.unreach = Some(family);
            if family.carries_routes() {
                let rest = c.take(c.remaining(), "MP_UNREACH NLRI")?;
                nlri_list(rest, family, add_path(family), true, &mut visit)?;
            }
        }
        if let Some(value) = reach {
            let mut c = Cursor::new(value);
            let family = Family {
                afi: c.u16("MP_REACH AFI")?,
                safi: c.u8("MP_REACH SAFI")?,
            };
            sections.reach = Some(family);
            if family.carries_routes() {
                let nh = c.u8("next hop length")? as usize;
                c.take(nh, "next hop")?;
                c.u8("MP_REACH reserved")?;
                let rest = c.take(c.remaining(), "MP_REACH NLRI")?;
                nlri_list(rest, family, add_path(family), false, &mut visit)?;
            }
        }
        nlri_list(self.nlri, v4, add_path(v4), false, &mut visit)?;
        Ok(sections)
    }
}

fn nlri_list(
    data: &[u8],
    family: Family,
    add_path: bool,
    withdrawn: bool,
    visit: &mut impl FnMut(Nlri),
) -> Result<(), WireError> {
    let mut c = Cursor::new(data);
    let v6 = family.afi == 2;
    while c.remaining() > 0 {
        let path_id = if add_path { c.u32("path id")? } else { 0 };
        let prefix = c.prefix(v6)?;
        visit(Nlri {
            family,
            prefix,
            path_id,
            withdrawn,
        });
    }
    Ok(())
}

/// Decodes an UPDATE's AS path with bgpkit-parser's `parse_bgp_message`.
///
/// `legacy_as_path` (the per-peer header's A flag) selects 2-byte AS numbers, and then the
/// AS4_PATH is merged in (RFC 6793 §4.2.3); otherwise ASNs are 4 bytes and an AS4_PATH is
/// ignored (RFC 7854 §4.2: a router re-encoding to 4 bytes should not send one). `add_path` is
/// passed for the announced family; the NLRI bgpkit-parser decodes are not used (see the
/// module documentation). `Ok(None)`: the UPDATE has no (readable) AS_PATH.
pub fn decode_as_path(
    pdu: &[u8],
    add_path: bool,
    legacy_as_path: bool,
) -> Result<Option<BgpkitPath>, ParserError> {
    let asn_len = if legacy_as_path {
        AsnLength::Bits16
    } else {
        AsnLength::Bits32
    };
    let mut data = pdu.to_vec().into();
    match parse_bgp_message(&mut data, add_path, &asn_len)? {
        BgpMessage::Update(u) if legacy_as_path => Ok(u.attributes.effective_as_path()),
        BgpMessage::Update(u) => Ok(u.attributes.as_path().cloned()),
        _ => Err(ParserError::ParseError("not an UPDATE".to_string())),
    }
}
