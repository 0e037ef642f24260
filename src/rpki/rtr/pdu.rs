//! RTR PDUs: one codec for RFC 6810 (version 0), RFC 8210 (version 1) and version 2 with the
//! ASPA PDU (draft-ietf-sidrops-8210bis). Pure, bounds-checked, never panics on input.
//!
//! # What is on the wire
//!
//! Every PDU starts with the same 8-byte header: version (1 byte), type (1 byte), a 16-bit
//! field that is the Session ID, the Error Code, zero or (ASPA in later 8210bis revisions)
//! flags, and a 32-bit length of the whole PDU including the header.
//!
//! | type | PDU | body after the header |
//! |---|---|---|
//! | 0 | Serial Notify | serial (4) |
//! | 1 | Serial Query | serial (4) |
//! | 2 | Reset Query | — |
//! | 3 | Cache Response | — |
//! | 4 | IPv4 Prefix | flags, prefix length, max length, zero, address (4), ASN (4) |
//! | 6 | IPv6 Prefix | flags, prefix length, max length, zero, address (16), ASN (4) |
//! | 7 | End of Data | serial (4); versions 1 and 2 add refresh, retry, expire (4 each) |
//! | 8 | Cache Reset | — |
//! | 9 | Router Key | SKI (20), ASN (4), SPKI (rest); flags in the header's first byte (v1+) |
//! | 10 | Error Report | length + copy of the erroneous PDU, length + UTF-8 text |
//! | 11 | ASPA (v2) | see below |
//!
//! # The ASPA PDU and the version 2 that StayRTR 0.5.1 speaks
//!
//! StayRTR 0.5.1 (the Debian package; `lib/structs.go` at tag `v0.5.1`) implements version 2
//! as **draft-ietf-sidrops-8210bis-10** (its `-protocol` flag: "Version 2 is
//! draft-ietf-sidrops-8210bis-10", the default). Its ASPA PDU is
//!
//! ```text
//! version 2 | type 11 | zero (16) | length = 16 + 4·n
//! flags (bit 0: 1 announce, 0 withdraw) | AFI flags (0: IPv4, 1: IPv6) | provider count n (16)
//! customer ASN (32)
//! n × provider ASN (32)
//! ```
//!
//! one record per customer *and address family* (its JSON input has separate `ipv4` and `ipv6`
//! lists); a withdrawal repeats the provider list. Later 8210bis revisions dropped the AFI and
//! the count and moved the flags into the header: `version 2 | type 11 | flags | zero |
//! length = 12 + 4·n | customer | providers`, a withdrawal carrying no providers. Both are
//! decoded: the layouts differ in the header's third byte (flags, non-zero for an announcement)
//! and the length (12 for a withdrawal), so a PDU is unambiguous ([`AspaLayout`]).
//!
//! StayRTR 0.5.1 negotiates as RFC 8210 §7 says for a cache: the version of the router's first
//! PDU is taken if it is 0, 1 or 2; when it is above the cache's own (`-protocol`), the cache
//! answers at its own version (a lower-version Cache Response), which the router then uses.
//!
//! # Bounds
//!
//! A PDU longer than [`MAX_PDU_LEN`] (64 KiB) is an error before any of it is buffered: the
//! largest legitimate PDUs are ASPAs (16 KiB holds 4,000 providers; real ASPAs have a few) and
//! Router Keys (an SPKI of about 100 bytes). Every length inside a PDU is checked against the
//! PDU's own length; a PDU whose length does not match its type is an error ([`PduError`]),
//! answered with the RTR error code the RFC names ([`PduError::code`]).

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// The highest protocol version this codec speaks.
pub const MAX_VERSION: u8 = 2;

/// The longest PDU accepted, header included (64 KiB).
pub const MAX_PDU_LEN: u32 = 64 * 1024;

/// The common header's length.
pub const HEADER_LEN: usize = 8;

/// Longest Error Report text kept (the rest is cut, not an error).
const MAX_ERROR_TEXT: usize = 512;

/// RTR error codes (RFC 8210 §12, 8210bis adds 8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// 0: Corrupt Data.
    CorruptData,
    /// 1: Internal Error.
    InternalError,
    /// 2: No Data Available.
    NoDataAvailable,
    /// 3: Invalid Request.
    InvalidRequest,
    /// 4: Unsupported Protocol Version.
    UnsupportedProtocolVersion,
    /// 5: Unsupported PDU Type.
    UnsupportedPduType,
    /// 6: Withdrawal of Unknown Record.
    WithdrawalOfUnknownRecord,
    /// 7: Duplicate Announcement Received.
    DuplicateAnnouncement,
    /// 8: Unexpected Protocol Version (draft-ietf-sidrops-8210bis).
    UnexpectedProtocolVersion,
    /// Any other code.
    Other(u16),
}

impl ErrorCode {
    /// The code on the wire.
    pub const fn value(self) -> u16 {
        match self {
            ErrorCode::CorruptData => 0,
            ErrorCode::InternalError => 1,
            ErrorCode::NoDataAvailable => 2,
            ErrorCode::InvalidRequest => 3,
            ErrorCode::UnsupportedProtocolVersion => 4,
            ErrorCode::UnsupportedPduType => 5,
            ErrorCode::WithdrawalOfUnknownRecord => 6,
            ErrorCode::DuplicateAnnouncement => 7,
            ErrorCode::UnexpectedProtocolVersion => 8,
            ErrorCode::Other(v) => v,
        }
    }

    /// The code for a value.
    pub const fn from_value(v: u16) -> Self {
        match v {
            0 => ErrorCode::CorruptData,
            1 => ErrorCode::InternalError,
            2 => ErrorCode::NoDataAvailable,
            3 => ErrorCode::InvalidRequest,
            4 => ErrorCode::UnsupportedProtocolVersion,
            5 => ErrorCode::UnsupportedPduType,
            6 => ErrorCode::WithdrawalOfUnknownRecord,
            7 => ErrorCode::DuplicateAnnouncement,
            8 => ErrorCode::UnexpectedProtocolVersion,
            v => ErrorCode::Other(v),
        }
    }

    /// A stable snake_case name (logs, metric label values).
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::CorruptData => "corrupt_data",
            ErrorCode::InternalError => "internal_error",
            ErrorCode::NoDataAvailable => "no_data_available",
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::UnsupportedProtocolVersion => "unsupported_protocol_version",
            ErrorCode::UnsupportedPduType => "unsupported_pdu_type",
            ErrorCode::WithdrawalOfUnknownRecord => "withdrawal_of_unknown_record",
            ErrorCode::DuplicateAnnouncement => "duplicate_announcement",
            ErrorCode::UnexpectedProtocolVersion => "unexpected_protocol_version",
            ErrorCode::Other(_) => "other",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.as_str(), self.value())
    }
}

/// The refresh, retry and expire intervals of a version 1 or 2 End of Data, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    /// How long to wait before the next Serial Query.
    pub refresh: u32,
    /// How long to wait after a failed query before the next.
    pub retry: u32,
    /// How long data may be used without a successful refresh.
    pub expire: u32,
}

/// Which ASPA PDU layout (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AspaLayout {
    /// draft-ietf-sidrops-8210bis-10 (StayRTR 0.5.1): flags, AFI flags and provider count in
    /// the body; the AFI flags byte as sent (StayRTR: 0 IPv4, 1 IPv6).
    Afi(u8),
    /// Later revisions: flags in the header, no AFI, no count.
    Plain,
}

/// One RTR PDU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pdu {
    /// Type 0: the cache has new data.
    SerialNotify {
        /// The cache's session.
        session_id: u16,
        /// Its current serial.
        serial: u32,
    },
    /// Type 1: the router asks for what changed since `serial`.
    SerialQuery {
        /// The session the router holds.
        session_id: u16,
        /// The serial the router holds.
        serial: u32,
    },
    /// Type 2: the router asks for everything.
    ResetQuery,
    /// Type 3: the start of the cache's answer.
    CacheResponse {
        /// The cache's session.
        session_id: u16,
    },
    /// Type 4 or 6: one VRP announced or withdrawn.
    Prefix {
        /// Announce (flag bit 0 set) or withdraw.
        announce: bool,
        /// The ROA prefix (host bits clear).
        prefix: IpNet,
        /// Its maxLength (prefix length ..= 32/128).
        max_length: u8,
        /// The origin AS.
        asn: u32,
    },
    /// Type 7: the end of the cache's answer.
    EndOfData {
        /// The cache's session.
        session_id: u16,
        /// The serial the router now holds.
        serial: u32,
        /// The intervals (versions 1 and 2; `None` in version 0).
        timers: Option<Timers>,
    },
    /// Type 8: the cache cannot answer a Serial Query; the router must reset.
    CacheReset,
    /// Type 9: a BGPsec router key (parsed and not used).
    RouterKey {
        /// Announce or withdraw.
        announce: bool,
        /// The router's AS.
        asn: u32,
        /// The Subject Key Identifier.
        ski: [u8; 20],
        /// The Subject Public Key Info (DER).
        spki: Vec<u8>,
    },
    /// Type 10: an error, from either side.
    ErrorReport {
        /// The error code.
        code: ErrorCode,
        /// A copy of the PDU in error (may be empty).
        pdu: Vec<u8>,
        /// The diagnostic text (may be empty; cut at 512 bytes).
        text: String,
    },
    /// Type 11 (version 2): one customer's providers announced, or withdrawn.
    Aspa {
        /// Announce or withdraw.
        announce: bool,
        /// Which layout it came in (and the AFI of the -10 layout).
        layout: AspaLayout,
        /// The customer AS.
        customer: u32,
        /// Its providers, as sent.
        providers: Vec<u32>,
    },
}

impl Pdu {
    /// The PDU type number.
    pub const fn type_code(&self) -> u8 {
        match self {
            Pdu::SerialNotify { .. } => 0,
            Pdu::SerialQuery { .. } => 1,
            Pdu::ResetQuery => 2,
            Pdu::CacheResponse { .. } => 3,
            Pdu::Prefix { prefix, .. } => match prefix {
                IpNet::V4(_) => 4,
                IpNet::V6(_) => 6,
            },
            Pdu::EndOfData { .. } => 7,
            Pdu::CacheReset => 8,
            Pdu::RouterKey { .. } => 9,
            Pdu::ErrorReport { .. } => 10,
            Pdu::Aspa { .. } => 11,
        }
    }

    /// A stable snake_case name of the type (metric label values).
    pub const fn type_name(&self) -> &'static str {
        type_name(self.type_code())
    }
}

/// The snake_case name of a PDU type number (`unknown` for others).
pub const fn type_name(t: u8) -> &'static str {
    match t {
        0 => "serial_notify",
        1 => "serial_query",
        2 => "reset_query",
        3 => "cache_response",
        4 => "ipv4_prefix",
        6 => "ipv6_prefix",
        7 => "end_of_data",
        8 => "cache_reset",
        9 => "router_key",
        10 => "error_report",
        11 => "aspa",
        _ => "unknown",
    }
}

/// Every PDU type name, in a stable order (metric label values).
pub const TYPE_NAMES: [&str; 12] = [
    "serial_notify",
    "serial_query",
    "reset_query",
    "cache_response",
    "ipv4_prefix",
    "ipv6_prefix",
    "end_of_data",
    "cache_reset",
    "router_key",
    "error_report",
    "aspa",
    "unknown",
];

/// A PDU with the version it was (or is to be) sent in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Protocol version.
    pub version: u8,
    /// The PDU.
    pub pdu: Pdu,
}

/// Why bytes are not a PDU.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PduError {
    /// The length field is above [`MAX_PDU_LEN`].
    #[error("PDU length {0} is above the limit of {MAX_PDU_LEN} bytes")]
    TooLong(u32),
    /// The length field is below the header's.
    #[error("PDU length {0} is shorter than the 8-byte header")]
    TooShort(u32),
    /// A version this codec does not speak.
    #[error("unsupported protocol version {0}")]
    UnsupportedVersion(u8),
    /// A type number that does not exist (or not in this version).
    #[error("unsupported PDU type {pdu_type} in version {version}")]
    UnsupportedType {
        /// The type number.
        pdu_type: u8,
        /// The PDU's version.
        version: u8,
    },
    /// The length does not fit the type, or a field is out of range.
    #[error("malformed {}: {detail}", type_name(*.pdu_type))]
    Malformed {
        /// The type number.
        pdu_type: u8,
        /// What is wrong.
        detail: &'static str,
    },
}

impl PduError {
    /// The error code to report to the cache (RFC 8210 §12).
    pub const fn code(&self) -> ErrorCode {
        match self {
            PduError::UnsupportedVersion(_) => ErrorCode::UnsupportedProtocolVersion,
            PduError::UnsupportedType { .. } => ErrorCode::UnsupportedPduType,
            PduError::TooLong(_) | PduError::TooShort(_) | PduError::Malformed { .. } => {
                ErrorCode::CorruptData
            }
        }
    }
}

/// The declared length of the PDU at the start of `buf`, checked against the bounds, once its
/// header is there (`Ok(None)`: fewer than 8 bytes so far).
pub fn peek_len(buf: &[u8]) -> Result<Option<usize>, PduError> {
    let Some(h) = buf.get(..HEADER_LEN) else {
        return Ok(None);
    };
    let len = u32::from_be_bytes([h[4], h[5], h[6], h[7]]);
    if len > MAX_PDU_LEN {
        return Err(PduError::TooLong(len));
    }
    if (len as usize) < HEADER_LEN {
        return Err(PduError::TooShort(len));
    }
    Ok(Some(len as usize))
}

/// Decodes the PDU at the start of `buf`: `Ok(None)` when it is not complete yet, else the
/// frame and the bytes it took.
pub fn decode(buf: &[u8]) -> Result<Option<(Frame, usize)>, PduError> {
    let Some(len) = peek_len(buf)? else {
        return Ok(None);
    };
    let Some(bytes) = buf.get(..len) else {
        return Ok(None);
    };
    decode_one(bytes).map(|f| Some((f, len)))
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Decodes exactly one PDU (`bytes` is the whole PDU, its length already checked).
fn decode_one(bytes: &[u8]) -> Result<Frame, PduError> {
    let version = bytes[0];
    let pdu_type = bytes[1];
    let field = be16(bytes, 2);
    let body = &bytes[HEADER_LEN..];
    if version > MAX_VERSION {
        return Err(PduError::UnsupportedVersion(version));
    }
    let malformed = |detail| PduError::Malformed { pdu_type, detail };
    let exact = |n: usize| {
        if body.len() == n {
            Ok(())
        } else {
            Err(malformed("length does not match the PDU type"))
        }
    };
    let pdu = match pdu_type {
        0 | 1 => {
            exact(4)?;
            let serial = be32(body, 0);
            if pdu_type == 0 {
                Pdu::SerialNotify {
                    session_id: field,
                    serial,
                }
            } else {
                Pdu::SerialQuery {
                    session_id: field,
                    serial,
                }
            }
        }
        2 => {
            exact(0)?;
            Pdu::ResetQuery
        }
        3 => {
            exact(0)?;
            Pdu::CacheResponse { session_id: field }
        }
        4 | 6 => {
            let addr_len = if pdu_type == 4 { 4 } else { 16 };
            exact(4 + addr_len + 4)?;
            let (flags, plen, max) = (body[0], body[1], body[2]);
            let addr = &body[4..4 + addr_len];
            let asn = be32(body, 4 + addr_len);
            let prefix = if pdu_type == 4 {
                let mut a = [0u8; 4];
                a.copy_from_slice(addr);
                Ipv4Net::new(Ipv4Addr::from(a), plen)
                    .map(IpNet::V4)
                    .map_err(|_| malformed("prefix length above 32"))?
            } else {
                let mut a = [0u8; 16];
                a.copy_from_slice(addr);
                Ipv6Net::new(Ipv6Addr::from(a), plen)
                    .map(IpNet::V6)
                    .map_err(|_| malformed("prefix length above 128"))?
            };
            if prefix.trunc() != prefix {
                return Err(malformed("host bits set past the prefix length"));
            }
            if max < plen || max > prefix.max_prefix_len() {
                return Err(malformed("max length outside prefix length..=32/128"));
            }
            Pdu::Prefix {
                announce: flags & 1 == 1,
                prefix,
                max_length: max,
                asn,
            }
        }
        7 => {
            let serial;
            let timers = if version == 0 {
                exact(4)?;
                serial = be32(body, 0);
                None
            } else {
                exact(16)?;
                serial = be32(body, 0);
                Some(Timers {
                    refresh: be32(body, 4),
                    retry: be32(body, 8),
                    expire: be32(body, 12),
                })
            };
            Pdu::EndOfData {
                session_id: field,
                serial,
                timers,
            }
        }
        8 => {
            exact(0)?;
            Pdu::CacheReset
        }
        9 if version >= 1 => {
            if body.len() < 24 {
                return Err(malformed("shorter than SKI and ASN"));
            }
            let mut ski = [0u8; 20];
            ski.copy_from_slice(&body[..20]);
            Pdu::RouterKey {
                announce: bytes[2] & 1 == 1,
                asn: be32(body, 20),
                ski,
                spki: body[24..].to_vec(),
            }
        }
        10 => {
            if body.len() < 8 {
                return Err(malformed("shorter than its two length fields"));
            }
            let pdu_len = be32(body, 0) as usize;
            let rest = &body[4..];
            let Some(copy) = rest.get(..pdu_len) else {
                return Err(malformed("encapsulated PDU longer than the PDU"));
            };
            let rest = &rest[pdu_len..];
            let Some(text_len) = rest.get(..4).map(|b| be32(b, 0) as usize) else {
                return Err(malformed("no error text length"));
            };
            let rest = &rest[4..];
            if rest.len() != text_len {
                return Err(malformed("error text length does not match the PDU"));
            }
            let shown = &rest[..text_len.min(MAX_ERROR_TEXT)];
            let text = String::from_utf8_lossy(shown)
                .trim_end_matches('\0')
                .to_string();
            Pdu::ErrorReport {
                code: ErrorCode::from_value(field),
                pdu: copy.to_vec(),
                text,
            }
        }
        11 if version >= 2 => decode_aspa(bytes[2], body).map_err(malformed)?,
        _ => return Err(PduError::UnsupportedType { pdu_type, version }),
    };
    Ok(Frame { version, pdu })
}

/// The ASPA PDU in either layout (module documentation): the header's third byte is the flags
/// of the later layout (non-zero: an announcement in it); a 4-byte body is its withdrawal.
fn decode_aspa(header_flags: u8, body: &[u8]) -> Result<Pdu, &'static str> {
    if header_flags != 0 || body.len() == 4 {
        if body.len() < 4 || !body.len().is_multiple_of(4) {
            return Err("length not 12 + 4 × providers");
        }
        if header_flags & 1 == 0 && body.len() > 4 {
            // In this layout a withdrawal names the customer only.
            return Err("a withdrawal that lists providers");
        }
        let providers = body[4..].chunks_exact(4).map(|c| be32(c, 0)).collect();
        return Ok(Pdu::Aspa {
            announce: header_flags & 1 == 1,
            layout: AspaLayout::Plain,
            customer: be32(body, 0),
            providers,
        });
    }
    if body.len() < 8 {
        return Err("shorter than flags, count and customer");
    }
    let count = be16(body, 2) as usize;
    let list = &body[8..];
    if list.len() != count * 4 {
        return Err("provider count does not match the length");
    }
    Ok(Pdu::Aspa {
        announce: body[0] & 1 == 1,
        layout: AspaLayout::Afi(body[1]),
        customer: be32(body, 4),
        providers: list.chunks_exact(4).map(|c| be32(c, 0)).collect(),
    })
}

impl Frame {
    /// A frame.
    pub fn new(version: u8, pdu: Pdu) -> Self {
        Frame { version, pdu }
    }

    /// The PDU's bytes. (An Error Report's copy and text, an ASPA's providers and a Router
    /// Key's SPKI are the caller's; lengths past [`MAX_PDU_LEN`] are not checked here.)
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(32);
        let mut header = |field: u16| {
            out.push(self.version);
            out.push(self.pdu.type_code());
            out.extend_from_slice(&field.to_be_bytes());
            out.extend_from_slice(&[0; 4]);
        };
        match &self.pdu {
            Pdu::SerialNotify { session_id, serial } | Pdu::SerialQuery { session_id, serial } => {
                header(*session_id);
                out.extend_from_slice(&serial.to_be_bytes());
            }
            Pdu::ResetQuery | Pdu::CacheReset => header(0),
            Pdu::CacheResponse { session_id } => header(*session_id),
            Pdu::Prefix {
                announce,
                prefix,
                max_length,
                asn,
            } => {
                header(0);
                out.extend_from_slice(&[u8::from(*announce), prefix.prefix_len(), *max_length, 0]);
                match prefix {
                    IpNet::V4(p) => out.extend_from_slice(&p.addr().octets()),
                    IpNet::V6(p) => out.extend_from_slice(&p.addr().octets()),
                }
                out.extend_from_slice(&asn.to_be_bytes());
            }
            Pdu::EndOfData {
                session_id,
                serial,
                timers,
            } => {
                header(*session_id);
                out.extend_from_slice(&serial.to_be_bytes());
                if self.version > 0 {
                    let t = timers.unwrap_or(Timers {
                        refresh: 3600,
                        retry: 600,
                        expire: 7200,
                    });
                    for v in [t.refresh, t.retry, t.expire] {
                        out.extend_from_slice(&v.to_be_bytes());
                    }
                }
            }
            Pdu::RouterKey {
                announce,
                asn,
                ski,
                spki,
            } => {
                header(u16::from(*announce) << 8);
                out.extend_from_slice(ski);
                out.extend_from_slice(&asn.to_be_bytes());
                out.extend_from_slice(spki);
            }
            Pdu::ErrorReport { code, pdu, text } => {
                header(code.value());
                out.extend_from_slice(&(pdu.len() as u32).to_be_bytes());
                out.extend_from_slice(pdu);
                out.extend_from_slice(&(text.len() as u32).to_be_bytes());
                out.extend_from_slice(text.as_bytes());
            }
            Pdu::Aspa {
                announce,
                layout,
                customer,
                providers,
            } => {
                match layout {
                    AspaLayout::Afi(afi) => {
                        header(0);
                        out.extend_from_slice(&[u8::from(*announce), *afi]);
                        out.extend_from_slice(&(providers.len() as u16).to_be_bytes());
                    }
                    AspaLayout::Plain => header(u16::from(*announce) << 8),
                }
                out.extend_from_slice(&customer.to_be_bytes());
                for p in providers {
                    out.extend_from_slice(&p.to_be_bytes());
                }
            }
        }
        let len = out.len() as u32;
        out[4..8].copy_from_slice(&len.to_be_bytes());
        out
    }
}

#[cfg(test)]
mod tests;
