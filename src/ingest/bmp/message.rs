//! Bounds-checked decoding of BMP v3 messages (RFC 7854, RFC 8671 Adj-RIB-Out, RFC 9069
//! Loc-RIB) and of the BGP OPEN capabilities a Peer Up carries.
//!
//! Every field is read through [`Cursor`], whose reads fail instead of panicking; every count
//! read from the wire bounds an allocation only after being capped by the bytes actually
//! present. The BGP UPDATE inside a Route Monitoring message is left as a slice here and decoded
//! in [`crate::ingest::bgp::update`], where the peer's negotiated capabilities are known.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::ingest::bgp::wire::{self, message_types, split_message};
use crate::ingest::bgp::{Cursor, WireError};

use super::framing::{CommonHeader, BMP_VERSION, COMMON_HEADER_LEN};
use crate::ingest::bgp::Family;
use crate::model::PeerRole;

/// Length of the per-peer header (RFC 7854 §4.2).
pub const PER_PEER_HEADER_LEN: usize = 42;

/// Longest string kept from an information TLV (sysName, sysDescr, table name, free text);
/// longer values are cut (they are labels and log fields, not data).
pub const MAX_STRING_LEN: usize = 255;

/// BMP message types (RFC 7854 §4.1), plus one bucket for codes no RFC defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MessageType {
    /// 0: Route Monitoring.
    RouteMonitoring,
    /// 1: Statistics Report.
    StatisticsReport,
    /// 2: Peer Down Notification.
    PeerDown,
    /// 3: Peer Up Notification.
    PeerUp,
    /// 4: Initiation.
    Initiation,
    /// 5: Termination.
    Termination,
    /// 6: Route Mirroring.
    RouteMirroring,
    /// Any other code (counted, otherwise ignored).
    Unknown,
}

impl MessageType {
    /// Every type, in code order (for pre-initialised metrics).
    pub const ALL: [MessageType; 8] = [
        MessageType::RouteMonitoring,
        MessageType::StatisticsReport,
        MessageType::PeerDown,
        MessageType::PeerUp,
        MessageType::Initiation,
        MessageType::Termination,
        MessageType::RouteMirroring,
        MessageType::Unknown,
    ];

    /// The type of a wire code.
    pub fn from_code(code: u8) -> MessageType {
        match code {
            0 => MessageType::RouteMonitoring,
            1 => MessageType::StatisticsReport,
            2 => MessageType::PeerDown,
            3 => MessageType::PeerUp,
            4 => MessageType::Initiation,
            5 => MessageType::Termination,
            6 => MessageType::RouteMirroring,
            _ => MessageType::Unknown,
        }
    }

    /// Dense index (position in [`MessageType::ALL`]).
    pub fn index(self) -> usize {
        self as usize
    }

    /// Bounded label (the `type` label of the message counter).
    pub fn label(self) -> &'static str {
        match self {
            MessageType::RouteMonitoring => "route_monitoring",
            MessageType::StatisticsReport => "statistics_report",
            MessageType::PeerDown => "peer_down",
            MessageType::PeerUp => "peer_up",
            MessageType::Initiation => "initiation",
            MessageType::Termination => "termination",
            MessageType::RouteMirroring => "route_mirroring",
            MessageType::Unknown => "unknown",
        }
    }

    /// The error label used when a message of this type cannot be decoded.
    pub fn malformed_label(self) -> &'static str {
        match self {
            MessageType::RouteMonitoring => "malformed_route_monitoring",
            MessageType::StatisticsReport => "malformed_statistics_report",
            MessageType::PeerDown => "malformed_peer_down",
            MessageType::PeerUp => "malformed_peer_up",
            MessageType::Initiation => "malformed_initiation",
            MessageType::Termination => "malformed_termination",
            MessageType::RouteMirroring => "malformed_route_mirroring",
            MessageType::Unknown => "malformed_unknown",
        }
    }
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// Per-peer header peer types (RFC 7854 §4.2, RFC 9069 §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PeerType {
    /// 0: Global Instance Peer.
    Global,
    /// 1: RD Instance Peer (a VRF; the distinguisher is its route distinguisher).
    RdInstance,
    /// 2: Local Instance Peer (the distinguisher is a locally defined value).
    LocalInstance,
    /// 3: Loc-RIB Instance Peer (RFC 9069).
    LocRib,
    /// A reserved code.
    Other(u8),
}

impl PeerType {
    /// The type of a wire code.
    pub fn from_code(code: u8) -> PeerType {
        match code {
            0 => PeerType::Global,
            1 => PeerType::RdInstance,
            2 => PeerType::LocalInstance,
            3 => PeerType::LocRib,
            c => PeerType::Other(c),
        }
    }

    /// The wire code.
    pub fn code(self) -> u8 {
        match self {
            PeerType::Global => 0,
            PeerType::RdInstance => 1,
            PeerType::LocalInstance => 2,
            PeerType::LocRib => 3,
            PeerType::Other(c) => c,
        }
    }

    /// Bounded label for the API.
    pub fn label(self) -> &'static str {
        match self {
            PeerType::Global => "global",
            PeerType::RdInstance => "rd_instance",
            PeerType::LocalInstance => "local_instance",
            PeerType::LocRib => "loc_rib",
            PeerType::Other(_) => "other",
        }
    }
}

pub use crate::model::RibView;

/// The per-peer header (RFC 7854 §4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerHeader {
    /// Peer type.
    pub peer_type: PeerType,
    /// Raw flags; see the `FLAG_*` constants and the accessors.
    pub flags: u8,
    /// Peer distinguisher (route distinguisher for RD instance peers; 0 for global peers).
    pub distinguisher: u64,
    /// Peer address (zero for Loc-RIB peers, shown as `0.0.0.0`).
    pub address: IpAddr,
    /// Peer AS (for Loc-RIB: the instance's own AS).
    pub asn: u32,
    /// Peer BGP identifier (for Loc-RIB: the instance's router id).
    pub bgp_id: Ipv4Addr,
    /// Timestamp, seconds (0 when the router has none).
    pub timestamp_sec: u32,
    /// Timestamp, microseconds.
    pub timestamp_usec: u32,
}

impl PeerHeader {
    /// V flag: the peer address is IPv6 (not for Loc-RIB peers).
    pub const FLAG_V: u8 = 0x80;
    /// L flag: post-policy (not for Loc-RIB peers).
    pub const FLAG_L: u8 = 0x40;
    /// A flag: the UPDATE uses the legacy 2-byte AS_PATH format (not for Loc-RIB peers).
    pub const FLAG_A: u8 = 0x20;
    /// O flag: Adj-RIB-Out (RFC 8671; not for Loc-RIB peers).
    pub const FLAG_O: u8 = 0x10;
    /// F flag of Loc-RIB peers: the Loc-RIB is filtered (RFC 9069 §4.2). Same bit as V.
    pub const FLAG_F: u8 = 0x80;

    /// Decodes the 42 bytes of a per-peer header.
    pub fn decode(c: &mut Cursor<'_>) -> Result<PeerHeader, WireError> {
        let peer_type = PeerType::from_code(c.u8("peer type")?);
        let flags = c.u8("peer flags")?;
        let hi = c.u32("peer distinguisher")?;
        let lo = c.u32("peer distinguisher")?;
        let raw = c.take(16, "peer address")?;
        let address = if peer_type == PeerType::LocRib {
            // RFC 9069: zero-filled, and the V bit means F; read a non-zero value by its shape.
            ip_by_shape(raw)
        } else {
            ip16(raw, flags & Self::FLAG_V != 0)
        };
        let asn = c.u32("peer AS")?;
        let id = c.take(4, "peer BGP id")?;
        let timestamp_sec = c.u32("timestamp")?;
        let timestamp_usec = c.u32("timestamp")?;
        Ok(PeerHeader {
            peer_type,
            flags,
            distinguisher: (u64::from(hi) << 32) | u64::from(lo),
            address,
            asn,
            bgp_id: Ipv4Addr::new(id[0], id[1], id[2], id[3]),
            timestamp_sec,
            timestamp_usec,
        })
    }

    /// Whether this is a Loc-RIB instance peer.
    pub fn is_loc_rib(&self) -> bool {
        self.peer_type == PeerType::LocRib
    }

    /// L flag (post-policy); always false for Loc-RIB peers.
    pub fn post_policy(&self) -> bool {
        !self.is_loc_rib() && self.flags & Self::FLAG_L != 0
    }

    /// A flag (legacy 2-byte AS_PATH); always false for Loc-RIB peers, whose UPDATEs are
    /// 4-byte (RFC 9069 §5.3 requires the 4-octet AS capability).
    pub fn legacy_as_path(&self) -> bool {
        !self.is_loc_rib() && self.flags & Self::FLAG_A != 0
    }

    /// O flag (Adj-RIB-Out); always false for Loc-RIB peers.
    pub fn adj_rib_out(&self) -> bool {
        !self.is_loc_rib() && self.flags & Self::FLAG_O != 0
    }

    /// F flag (filtered Loc-RIB); only for Loc-RIB peers.
    pub fn filtered(&self) -> bool {
        self.is_loc_rib() && self.flags & Self::FLAG_F != 0
    }

    /// The RIB this header's routes belong to.
    pub fn view(&self) -> RibView {
        if self.is_loc_rib() {
            return RibView::LocRib;
        }
        match (self.adj_rib_out(), self.post_policy()) {
            (false, false) => RibView::AdjRibInPre,
            (false, true) => RibView::AdjRibInPost,
            (true, false) => RibView::AdjRibOutPre,
            (true, true) => RibView::AdjRibOutPost,
        }
    }

    /// The timestamp in seconds, `None` when the router sent zero (allowed by RFC 7854 and
    /// common for Loc-RIB, Adj-RIB-Out and End-of-RIB messages).
    pub fn timestamp(&self) -> Option<f64> {
        if self.timestamp_sec == 0 && self.timestamp_usec == 0 {
            None
        } else {
            Some(f64::from(self.timestamp_sec) + f64::from(self.timestamp_usec.min(999_999)) / 1e6)
        }
    }

    /// The identity of the monitored peer: flags (policy, direction, encoding) and timestamp
    /// are left out, so all views of one peer share it.
    pub fn peer_id(&self) -> PeerId {
        PeerId {
            peer_type: self.peer_type,
            distinguisher: self.distinguisher,
            address: self.address,
            asn: self.asn,
        }
    }
}

/// Identity of a monitored peer within one router session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId {
    /// Peer type.
    pub peer_type: PeerType,
    /// Peer distinguisher.
    pub distinguisher: u64,
    /// Peer address.
    pub address: IpAddr,
    /// Peer AS.
    pub asn: u32,
}

/// Formats a distinguisher as a route distinguisher (RFC 4364 §4.2) when its type field is 0,
/// 1 or 2 (`64499:74`, `192.0.2.1:7`, `4200000000:12`), otherwise as 16 hex digits.
pub fn format_distinguisher(d: u64) -> String {
    let ty = (d >> 48) as u16;
    let v = d & 0xffff_ffff_ffff;
    match ty {
        0 => format!("{}:{}", v >> 32, v & 0xffff_ffff),
        1 => {
            let ip = Ipv4Addr::from((v >> 16) as u32);
            format!("{ip}:{}", v & 0xffff)
        }
        2 => format!("{}:{}", v >> 16, v & 0xffff),
        _ => format!("0x{d:016x}"),
    }
}

/// A 16-byte address field: IPv6 when `v6`, else IPv4 in the last four bytes (RFC 7854).
fn ip16(raw: &[u8], v6: bool) -> IpAddr {
    let mut a = [0u8; 16];
    let n = raw.len().min(16);
    a[..n].copy_from_slice(&raw[..n]);
    if v6 {
        IpAddr::V6(Ipv6Addr::from(a))
    } else {
        IpAddr::V4(Ipv4Addr::new(a[12], a[13], a[14], a[15]))
    }
}

/// A 16-byte address field whose family no flag gives: IPv4 when the first 12 bytes are zero
/// (including the all-zero Loc-RIB address, `0.0.0.0`), else IPv6.
fn ip_by_shape(raw: &[u8]) -> IpAddr {
    let v6 = raw.iter().take(12).any(|&b| b != 0);
    ip16(raw, v6)
}

/// Reads an information-TLV string: lossy UTF-8, cut at [`MAX_STRING_LEN`] bytes, control
/// characters and trailing NULs/whitespace dropped.
pub fn tlv_string(v: &[u8]) -> String {
    let v = &v[..v.len().min(MAX_STRING_LEN)];
    let s = String::from_utf8_lossy(v);
    s.trim_end_matches(|c: char| c == '\0' || c.is_whitespace())
        .chars()
        .filter(|c| !c.is_control())
        .collect::<String>()
        .trim()
        .to_string()
}

/// Iterates type-length-value records with 2-byte type and 2-byte length (RFC 7854 §4.4):
/// `(type, value)`; an error ends the iteration.
pub fn tlvs(data: &[u8]) -> impl Iterator<Item = Result<(u16, &[u8]), WireError>> + '_ {
    wire::records(data, |c| {
        let ty = c.u16("TLV type")?;
        let len = c.u16("TLV length")? as usize;
        Ok((ty, c.take(len, "TLV value")?))
    })
}

/// Initiation message information (RFC 7854 §4.3).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Initiation {
    /// sysName (TLV type 2).
    pub sys_name: Option<String>,
    /// sysDescr (TLV type 1).
    pub sys_descr: Option<String>,
    /// The first free-form string (TLV type 0), if any.
    pub text: Option<String>,
}

/// Termination reasons (RFC 7854 §4.5, TLV type 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TerminationReason {
    /// 0: administratively closed.
    AdminClose,
    /// 1: unspecified.
    Unspecified,
    /// 2: out of resources.
    OutOfResources,
    /// 3: redundant connection.
    RedundantConnection,
    /// 4: permanently administratively closed.
    PermanentlyAdminClose,
    /// Another code.
    Other(u16),
}

impl TerminationReason {
    /// The reason of a wire code.
    pub fn from_code(code: u16) -> Self {
        match code {
            0 => TerminationReason::AdminClose,
            1 => TerminationReason::Unspecified,
            2 => TerminationReason::OutOfResources,
            3 => TerminationReason::RedundantConnection,
            4 => TerminationReason::PermanentlyAdminClose,
            c => TerminationReason::Other(c),
        }
    }

    /// Bounded label.
    pub fn label(self) -> &'static str {
        match self {
            TerminationReason::AdminClose => "admin_close",
            TerminationReason::Unspecified => "unspecified",
            TerminationReason::OutOfResources => "out_of_resources",
            TerminationReason::RedundantConnection => "redundant_connection",
            TerminationReason::PermanentlyAdminClose => "permanently_admin_close",
            TerminationReason::Other(_) => "other",
        }
    }
}

/// Termination message information (RFC 7854 §4.5).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Termination {
    /// Reason (TLV type 1), if given.
    pub reason: Option<TerminationReason>,
    /// The first free-form string (TLV type 0), if any.
    pub text: Option<String>,
}

/// ADD-PATH Send/Receive values (RFC 7911 §4): the sender of the OPEN is willing to receive
/// multiple paths.
pub const ADD_PATH_RECEIVE: u8 = 1;
/// The sender of the OPEN would like to send multiple paths.
pub const ADD_PATH_SEND: u8 = 2;

/// The BGP Role capability of an OPEN (RFC 9234 §4.1: code 9, length 1): the role the OPEN's
/// sender announces for itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RoleCapability {
    /// No BGP Role capability.
    #[default]
    Absent,
    /// A role.
    Role(PeerRole),
    /// A capability that cannot be used (why, for the log): a length other than 1, an
    /// unassigned value, or two capabilities with different values (RFC 9234 §4.2 makes that a
    /// Role Mismatch). The role is unknown; counted as `malformed_bgp_role`.
    Invalid(&'static str),
}

impl RoleCapability {
    /// The role, when one is known.
    pub fn role(self) -> Option<PeerRole> {
        match self {
            RoleCapability::Role(r) => Some(r),
            RoleCapability::Absent | RoleCapability::Invalid(_) => None,
        }
    }

    /// This capability seen again with `value`: a repeat with the same role changes nothing,
    /// anything else makes it invalid.
    fn and(self, value: &[u8]) -> RoleCapability {
        let seen = match *value {
            [v] => PeerRole::from_capability(v).map_or(
                RoleCapability::Invalid("unassigned value"),
                RoleCapability::Role,
            ),
            _ => RoleCapability::Invalid("length other than 1"),
        };
        match (self, seen) {
            (RoleCapability::Absent, seen) => seen,
            (RoleCapability::Role(a), RoleCapability::Role(b)) if a == b => self,
            (RoleCapability::Invalid(why), _) | (_, RoleCapability::Invalid(why)) => {
                RoleCapability::Invalid(why)
            }
            _ => RoleCapability::Invalid("two capabilities with different roles"),
        }
    }
}

/// The parse-error label of a BGP Role capability that cannot be used ([`RoleCapability::Invalid`]
/// in a Peer Up's received OPEN).
pub const MALFORMED_BGP_ROLE: &str = "malformed_bgp_role";

/// What routewatch needs from a BGP OPEN (RFC 4271 §4.2, RFC 5492 capabilities, RFC 9072
/// extended optional parameters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenMessage {
    /// BGP version.
    pub version: u8,
    /// "My Autonomous System" (23456 = AS_TRANS when the real AS is 4-byte).
    pub my_as: u16,
    /// Hold time.
    pub hold_time: u16,
    /// BGP identifier.
    pub bgp_id: Ipv4Addr,
    /// The 4-octet AS number capability (code 65), if advertised.
    pub four_octet_as: Option<u32>,
    /// Multiprotocol capabilities (code 1).
    pub multiprotocol: Vec<Family>,
    /// ADD-PATH capability entries (code 69): family and Send/Receive bits.
    pub add_path: Vec<(Family, u8)>,
    /// The BGP Role capability (code 9, RFC 9234).
    pub role: RoleCapability,
}

impl OpenMessage {
    /// The speaker's AS: the 4-octet capability's value, else "My Autonomous System".
    pub fn asn(&self) -> u32 {
        self.four_octet_as.unwrap_or(u32::from(self.my_as))
    }

    /// The ADD-PATH Send/Receive bits advertised for `family` (0 if none).
    pub fn add_path_mode(&self, family: Family) -> u8 {
        self.add_path
            .iter()
            .filter(|(f, _)| *f == family)
            .fold(0, |acc, (_, m)| {
                acc | (m & (ADD_PATH_RECEIVE | ADD_PATH_SEND))
            })
    }

    /// Decodes a whole BGP OPEN message (marker, length, type 1, body). Returns the message and
    /// the bytes it occupies (its length field).
    pub fn decode(data: &[u8]) -> Result<(OpenMessage, usize), WireError> {
        let (ty, msg) = split_message(data)?;
        let len = msg.len();
        if len < 29 {
            return Err(WireError::Invalid("OPEN length"));
        }
        if ty != message_types::OPEN {
            return Err(WireError::Invalid("OPEN type"));
        }
        let mut body = Cursor::new(&msg[wire::BGP_HEADER_LEN..]);
        let version = body.u8("OPEN version")?;
        let my_as = body.u16("OPEN AS")?;
        let hold_time = body.u16("hold time")?;
        let id = body.take(4, "BGP identifier")?;
        let mut open = OpenMessage {
            version,
            my_as,
            hold_time,
            bgp_id: Ipv4Addr::new(id[0], id[1], id[2], id[3]),
            four_octet_as: None,
            multiprotocol: Vec::new(),
            add_path: Vec::new(),
            role: RoleCapability::Absent,
        };
        let opt_len = body.u8("optional parameters length")?;
        // RFC 9072: a non-extended length of 255 and a first parameter type of 255 announce a
        // 2-byte length, and 2-byte parameter lengths.
        let mut rest = body;
        let extended = opt_len == 255 && rest.remaining() >= 3 && {
            let mut peek = rest;
            peek.u8("parameter type")? == 255
        };
        let params = if extended {
            rest.u8("extended marker")?;
            let n = rest.u16("extended parameters length")? as usize;
            rest.take(n, "optional parameters")?
        } else {
            rest.take(opt_len as usize, "optional parameters")?
        };
        let mut p = Cursor::new(params);
        while p.remaining() > 0 {
            let ty = p.u8("parameter type")?;
            let plen = if extended {
                p.u16("parameter length")? as usize
            } else {
                p.u8("parameter length")? as usize
            };
            let value = p.take(plen, "parameter value")?;
            if ty == 2 {
                open.read_capabilities(value)?;
            }
        }
        Ok((open, len))
    }

    fn read_capabilities(&mut self, value: &[u8]) -> Result<(), WireError> {
        let mut c = Cursor::new(value);
        while c.remaining() > 0 {
            let code = c.u8("capability code")?;
            let len = c.u8("capability length")? as usize;
            let raw = c.take(len, "capability value")?;
            let mut v = Cursor::new(raw);
            match code {
                9 => self.role = self.role.and(raw),
                1 if len == 4 => {
                    let afi = v.u16("MP AFI")?;
                    v.u8("MP reserved")?;
                    let safi = v.u8("MP SAFI")?;
                    let f = Family { afi, safi };
                    if !self.multiprotocol.contains(&f) {
                        self.multiprotocol.push(f);
                    }
                }
                65 if len == 4 => self.four_octet_as = Some(v.u32("4-octet AS")?),
                69 => {
                    while v.remaining() >= 4 {
                        let afi = v.u16("ADD-PATH AFI")?;
                        let safi = v.u8("ADD-PATH SAFI")?;
                        let mode = v.u8("ADD-PATH send/receive")?;
                        self.add_path.push((Family { afi, safi }, mode));
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// A Peer Up Notification (RFC 7854 §4.10, RFC 9069 §5.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerUp {
    /// The per-peer header.
    pub peer: PeerHeader,
    /// Local address of the BGP session (zero for Loc-RIB).
    pub local_address: IpAddr,
    /// Local TCP port.
    pub local_port: u16,
    /// Remote TCP port.
    pub remote_port: u16,
    /// The OPEN the monitored router sent to the peer.
    pub sent_open: OpenMessage,
    /// The OPEN the monitored router received from the peer.
    pub received_open: OpenMessage,
    /// VRF/table name (information TLV type 3, RFC 9069), if given.
    pub table_name: Option<String>,
    /// The first free-form string (information TLV type 0), if any.
    pub text: Option<String>,
}

/// Why a peer went down (RFC 7854 §4.9, RFC 9069 §5.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerDownReason {
    /// 1: the local system closed the session with this NOTIFICATION (code, subcode), if it
    /// could be read.
    LocalNotification(Option<(u8, u8)>),
    /// 2: the local system closed the session without a NOTIFICATION; the FSM event, if given.
    LocalNoNotification(Option<u16>),
    /// 3: the remote system closed the session with this NOTIFICATION, if it could be read.
    RemoteNotification(Option<(u8, u8)>),
    /// 4: the remote system closed the session without a NOTIFICATION.
    RemoteNoNotification,
    /// 5: the peer is no longer monitored (configuration).
    Deconfigured,
    /// 6: the Loc-RIB instance is no longer monitored (RFC 9069), TLVs follow.
    LocalTlv,
    /// Another code.
    Other(u8),
}

impl PeerDownReason {
    /// The wire code.
    pub fn code(self) -> u8 {
        match self {
            PeerDownReason::LocalNotification(_) => 1,
            PeerDownReason::LocalNoNotification(_) => 2,
            PeerDownReason::RemoteNotification(_) => 3,
            PeerDownReason::RemoteNoNotification => 4,
            PeerDownReason::Deconfigured => 5,
            PeerDownReason::LocalTlv => 6,
            PeerDownReason::Other(c) => c,
        }
    }

    /// Bounded label.
    pub fn label(self) -> &'static str {
        match self {
            PeerDownReason::LocalNotification(_) => "local_notification",
            PeerDownReason::LocalNoNotification(_) => "local_no_notification",
            PeerDownReason::RemoteNotification(_) => "remote_notification",
            PeerDownReason::RemoteNoNotification => "remote_no_notification",
            PeerDownReason::Deconfigured => "deconfigured",
            PeerDownReason::LocalTlv => "local_tlv",
            PeerDownReason::Other(_) => "other",
        }
    }
}

/// A Peer Down Notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerDown {
    /// The per-peer header.
    pub peer: PeerHeader,
    /// The reason.
    pub reason: PeerDownReason,
}

/// The value of one statistic (RFC 7854 §4.8, RFC 8671 per-AFI/SAFI gauges), by its length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatValue {
    /// A 32-bit counter.
    Counter(u32),
    /// A 64-bit gauge.
    Gauge(u64),
    /// A 64-bit gauge for one address family (AFI, SAFI, value).
    FamilyGauge(Family, u64),
    /// Some other length (kept as the length only).
    Other(u16),
}

/// A Statistics Report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatisticsReport {
    /// The per-peer header.
    pub peer: PeerHeader,
    /// Stats count as declared.
    pub count: u32,
    /// The statistics decoded: (stat type, value).
    pub stats: Vec<(u16, StatValue)>,
}

/// A Route Monitoring message: the peer, and the BGP UPDATE PDU (decoded by the session,
/// which knows the peer's capabilities).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteMonitoring<'a> {
    /// The per-peer header.
    pub peer: PeerHeader,
    /// The BGP message (marker, length, type, body), and anything after it.
    pub pdu: &'a [u8],
}

/// One decoded BMP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message<'a> {
    /// Route Monitoring.
    RouteMonitoring(RouteMonitoring<'a>),
    /// Statistics Report.
    StatisticsReport(StatisticsReport),
    /// Peer Down Notification.
    PeerDown(PeerDown),
    /// Peer Up Notification.
    PeerUp(Box<PeerUp>),
    /// Initiation.
    Initiation(Initiation),
    /// Termination.
    Termination(Termination),
    /// Route Mirroring (only its peer is decoded; the content is ignored).
    RouteMirroring(PeerHeader),
    /// A message type no RFC defines (the code).
    Unknown(u8),
}

impl Message<'_> {
    /// The message type.
    pub fn msg_type(&self) -> MessageType {
        match self {
            Message::RouteMonitoring(_) => MessageType::RouteMonitoring,
            Message::StatisticsReport(_) => MessageType::StatisticsReport,
            Message::PeerDown(_) => MessageType::PeerDown,
            Message::PeerUp(_) => MessageType::PeerUp,
            Message::Initiation(_) => MessageType::Initiation,
            Message::Termination(_) => MessageType::Termination,
            Message::RouteMirroring(_) => MessageType::RouteMirroring,
            Message::Unknown(_) => MessageType::Unknown,
        }
    }
}

/// A message that could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{msg_type} message: {error}")]
pub struct DecodeError {
    /// The message's type.
    pub msg_type: MessageType,
    /// What was wrong.
    pub error: WireError,
}

/// Decodes one framed BMP message (common header included, as [`super::FrameReader`] delivers
/// it). The header is checked again (version 3, length equal to the frame's), so the function
/// is safe on any byte slice.
pub fn decode_message(frame: &[u8]) -> Result<Message<'_>, DecodeError> {
    let Some(header) = CommonHeader::parse(frame) else {
        return Err(DecodeError {
            msg_type: MessageType::Unknown,
            error: WireError::Truncated("common header"),
        });
    };
    let msg_type = MessageType::from_code(header.msg_type);
    let err = |error| DecodeError { msg_type, error };
    if header.version != BMP_VERSION {
        return Err(err(WireError::Invalid("BMP version")));
    }
    if header.length as usize != frame.len() {
        return Err(err(WireError::Invalid("BMP message length")));
    }
    let mut c = Cursor::new(&frame[COMMON_HEADER_LEN..]);
    let msg = match msg_type {
        MessageType::Initiation => Message::Initiation(decode_initiation(&mut c).map_err(err)?),
        MessageType::Termination => Message::Termination(decode_termination(&mut c).map_err(err)?),
        MessageType::Unknown => Message::Unknown(header.msg_type),
        _ => {
            let peer = PeerHeader::decode(&mut c).map_err(err)?;
            match msg_type {
                MessageType::RouteMonitoring => {
                    let pdu = c.take(c.remaining(), "BGP UPDATE").map_err(err)?;
                    Message::RouteMonitoring(RouteMonitoring { peer, pdu })
                }
                MessageType::StatisticsReport => {
                    Message::StatisticsReport(decode_stats(peer, &mut c).map_err(err)?)
                }
                MessageType::PeerDown => Message::PeerDown(decode_peer_down(peer, &mut c)),
                MessageType::PeerUp => {
                    Message::PeerUp(Box::new(decode_peer_up(peer, &mut c).map_err(err)?))
                }
                _ => Message::RouteMirroring(peer),
            }
        }
    };
    Ok(msg)
}

fn decode_initiation(c: &mut Cursor<'_>) -> Result<Initiation, WireError> {
    let mut info = Initiation::default();
    for tlv in tlvs(c.take(c.remaining(), "TLVs")?) {
        let (ty, v) = tlv?;
        match ty {
            0 if info.text.is_none() => info.text = Some(tlv_string(v)),
            1 => info.sys_descr = Some(tlv_string(v)),
            2 => info.sys_name = Some(tlv_string(v)),
            _ => {}
        }
    }
    Ok(info)
}

fn decode_termination(c: &mut Cursor<'_>) -> Result<Termination, WireError> {
    let mut t = Termination::default();
    for tlv in tlvs(c.take(c.remaining(), "TLVs")?) {
        let (ty, v) = tlv?;
        match ty {
            0 if t.text.is_none() => t.text = Some(tlv_string(v)),
            1 => {
                let code = Cursor::new(v).u16("termination reason")?;
                t.reason = Some(TerminationReason::from_code(code));
            }
            _ => {}
        }
    }
    Ok(t)
}

fn decode_peer_up(peer: PeerHeader, c: &mut Cursor<'_>) -> Result<PeerUp, WireError> {
    let raw = c.take(16, "local address")?;
    let local_address = if peer.is_loc_rib() {
        ip_by_shape(raw)
    } else {
        ip16(raw, peer.flags & PeerHeader::FLAG_V != 0)
    };
    let local_port = c.u16("local port")?;
    let remote_port = c.u16("remote port")?;
    let rest = c.take(c.remaining(), "OPEN messages")?;
    let (sent_open, n) = OpenMessage::decode(rest)?;
    let rest = &rest[n..];
    let (received_open, n) = OpenMessage::decode(rest)?;
    let mut up = PeerUp {
        peer,
        local_address,
        local_port,
        remote_port,
        sent_open,
        received_open,
        table_name: None,
        text: None,
    };
    for tlv in tlvs(&rest[n..]) {
        let (ty, v) = tlv?;
        match ty {
            0 if up.text.is_none() => up.text = Some(tlv_string(v)),
            3 => up.table_name = Some(tlv_string(v)),
            _ => {}
        }
    }
    Ok(up)
}

/// The (code, subcode) of a BGP NOTIFICATION PDU, if it reads as one.
fn notification(data: &[u8]) -> Option<(u8, u8)> {
    let mut c = Cursor::new(data);
    c.take(16, "marker").ok()?;
    let len = c.u16("length").ok()?;
    if len < 21 || c.u8("type").ok()? != 3 {
        return None;
    }
    Some((c.u8("code").ok()?, c.u8("subcode").ok()?))
}

/// A Peer Down is never refused: whatever its data, the peer is down. A missing reason byte
/// reads as `Other(0)`; unreadable NOTIFICATION data as `None`.
fn decode_peer_down(peer: PeerHeader, c: &mut Cursor<'_>) -> PeerDown {
    let code = c.u8("reason").unwrap_or(0);
    let data = c.take(c.remaining(), "data").unwrap_or(&[]);
    let reason = match code {
        1 => PeerDownReason::LocalNotification(notification(data)),
        2 => PeerDownReason::LocalNoNotification(Cursor::new(data).u16("FSM event").ok()),
        3 => PeerDownReason::RemoteNotification(notification(data)),
        4 => PeerDownReason::RemoteNoNotification,
        5 => PeerDownReason::Deconfigured,
        6 => PeerDownReason::LocalTlv,
        c => PeerDownReason::Other(c),
    };
    PeerDown { peer, reason }
}

fn decode_stats(peer: PeerHeader, c: &mut Cursor<'_>) -> Result<StatisticsReport, WireError> {
    let count = c.u32("stats count")?;
    // Each statistic takes at least 4 bytes: the declared count cannot allocate more than the
    // bytes present allow.
    let mut stats = Vec::with_capacity((count as usize).min(c.remaining() / 4));
    for _ in 0..count {
        let ty = c.u16("stat type")?;
        let len = c.u16("stat length")?;
        let mut v = Cursor::new(c.take(len as usize, "stat value")?);
        let value = match len {
            4 => StatValue::Counter(v.u32("stat")?),
            8 => {
                let hi = v.u32("stat")?;
                let lo = v.u32("stat")?;
                StatValue::Gauge((u64::from(hi) << 32) | u64::from(lo))
            }
            11 => {
                let afi = v.u16("stat AFI")?;
                let safi = v.u8("stat SAFI")?;
                let hi = v.u32("stat")?;
                let lo = v.u32("stat")?;
                StatValue::FamilyGauge(Family { afi, safi }, (u64::from(hi) << 32) | u64::from(lo))
            }
            n => StatValue::Other(n),
        };
        stats.push((ty, value));
    }
    Ok(StatisticsReport { peer, count, stats })
}
