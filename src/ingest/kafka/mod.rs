//! Raw BMP from Kafka in OpenBMP's format (`[[kafka]]`): the pure part.
//!
//! An OpenBMP collector (OpenBMP, goBMP) publishes every BMP message a router sends as one Kafka
//! message on a topic such as `openbmp.bmp_raw`, keyed by router: a binary header, then the BMP
//! message as the router sent it. The header (OpenBMP message bus API, "BMP RAW", version 1.7;
//! parsed by bgpkit-parser's `parse_openbmp_header`, checked here against its own lengths):
//!
//! ```text
//!  "OBMP" | major 1 | minor 7 | header length u16 | BMP message length u32
//!  | flags u8 (0x80 router message, 0x40 router address is IPv6) | object type u8 (12 = BMP_RAW)
//!  | collector timestamp s u32, µs u32 | collector hash [16] | admin id length u16, admin id
//!  | router hash [16] | router address [16] (IPv4 in the first 4 bytes) | group length u16, group
//!  | row count u32 (1)
//! ```
//!
//! [`Routers`] turns such messages into the same [`Output`] the TCP listener produces: the
//! router is the header's (collector admin id, router address) pair, **never the Kafka
//! partition**; each has its own [`RouterSession`] (the one BMP state machine, with route
//! sources `kafka/<collector>/<router>/<view>[/<instance>]`), and the BMP body goes through the
//! same [`FrameReader`]. A message whose header or body cannot be used is counted under a
//! bounded label ([`ERROR_LABELS`], plus the BMP session's own) and skipped; it never stops the
//! partition. The partitions each router was read from are remembered, so that when the
//! consumer group takes partitions away ([`Routers::revoke`]) exactly their routers are closed
//! (every route withdrawn); a router seen again later starts a fresh session.
//!
//! The consumer, the offsets and the group are `daemon/kafka.rs`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use bgpkit_parser::parser::bmp::error::ParserBmpError;
use bgpkit_parser::parser::bmp::openbmp::parse_openbmp_header;
use smallvec::SmallVec;

use super::bmp::{FrameError, FrameReader, Output, RouterSession};
use crate::registry::Registry;

pub mod metrics;

#[cfg(test)]
mod tests;

/// The OpenBMP magic number.
pub const MAGIC: &[u8; 4] = b"OBMP";

/// `error` labels of `routewatch_parse_errors_total{feed="kafka"}` added by this module (the
/// BMP session's labels, [`crate::ingest::bmp::metrics::error_labels`], come on top):
///
/// * `openbmp_not_openbmp`: the message does not start with `OBMP` (another format on the topic);
/// * `openbmp_version`: a header version other than 1.7;
/// * `openbmp_object_type`: not a router's BMP_RAW message (a collector or router object);
/// * `openbmp_malformed_header`: fields that do not fit the header length or the message;
/// * `openbmp_truncated`: fewer bytes than the header says;
/// * `bmp_unsupported_version`, `bmp_bad_length`, `bmp_truncated`: the BMP body does not frame
///   as whole BMP messages;
/// * `too_many_routers`: a new router past `max-routers` (its messages are skipped).
pub const ERROR_LABELS: [&str; 9] = [
    "openbmp_not_openbmp",
    "openbmp_version",
    "openbmp_object_type",
    "openbmp_malformed_header",
    "openbmp_truncated",
    "bmp_unsupported_version",
    "bmp_bad_length",
    "bmp_truncated",
    "too_many_routers",
];

/// Default of `max-routers`: routers one instance keeps sessions for.
pub const DEFAULT_MAX_ROUTERS: usize = 10_000;

/// What the OpenBMP header of one message says.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenBmpMessage<'a> {
    /// The collector's admin id (its name), empty if the collector sends none.
    pub collector: String,
    /// The monitored router's address.
    pub router: IpAddr,
    /// When the collector received the message (seconds since the epoch; 0 when unset).
    pub timestamp: f64,
    /// The BMP message(s) as the router sent them.
    pub bmp: &'a [u8],
}

/// Why a message was skipped; [`HeaderError::label`] is its bounded label.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// No `OBMP` magic.
    #[error("not an OpenBMP message (no OBMP magic)")]
    NotOpenBmp,
    /// Another header version.
    #[error("OpenBMP header version {0}.{1} (1.7 is read)")]
    Version(u8, u8),
    /// Not a router's raw BMP message.
    #[error("not a router's BMP_RAW message (flags 0x{flags:02x}, object type {object_type})")]
    ObjectType {
        /// The flags byte.
        flags: u8,
        /// The object type.
        object_type: u8,
    },
    /// Inconsistent header fields.
    #[error("malformed OpenBMP header: {0}")]
    Malformed(String),
    /// The message is shorter than its header says.
    #[error("OpenBMP message truncated: {have} bytes, header says {want}")]
    Truncated {
        /// Bytes present.
        have: usize,
        /// Bytes the header announces (header and BMP message).
        want: usize,
    },
}

impl HeaderError {
    /// The bounded label (one of [`ERROR_LABELS`]).
    pub fn label(&self) -> &'static str {
        match self {
            HeaderError::NotOpenBmp => "openbmp_not_openbmp",
            HeaderError::Version(..) => "openbmp_version",
            HeaderError::ObjectType { .. } => "openbmp_object_type",
            HeaderError::Malformed(_) => "openbmp_malformed_header",
            HeaderError::Truncated { .. } => "openbmp_truncated",
        }
    }
}

/// Parses the OpenBMP header of `payload` (a Kafka message's value) and finds its BMP message.
/// The fixed part is checked here first (magic, version, lengths, flags, object type), so each
/// problem gets its own label; the variable part is read by bgpkit-parser and must end exactly
/// at the header length the message declares (longer headers, with fields added by a later
/// minor version, are skipped over to that length).
pub fn parse_header(payload: &[u8]) -> Result<OpenBmpMessage<'_>, HeaderError> {
    if payload.len() < 4 || &payload[..4] != MAGIC {
        return Err(HeaderError::NotOpenBmp);
    }
    let fixed = payload.get(..14).ok_or(HeaderError::Truncated {
        have: payload.len(),
        want: 14,
    })?;
    let (major, minor) = (fixed[4], fixed[5]);
    if (major, minor) != (1, 7) {
        return Err(HeaderError::Version(major, minor));
    }
    let header_len = usize::from(u16::from_be_bytes([fixed[6], fixed[7]]));
    let msg_len = u32::from_be_bytes([fixed[8], fixed[9], fixed[10], fixed[11]]) as usize;
    let (flags, object_type) = (fixed[12], fixed[13]);
    if flags & 0x80 == 0 || object_type != 12 {
        return Err(HeaderError::ObjectType { flags, object_type });
    }
    let want = header_len.saturating_add(msg_len);
    if payload.len() < want {
        return Err(HeaderError::Truncated {
            have: payload.len(),
            want,
        });
    }
    if msg_len == 0 {
        return Err(HeaderError::Malformed("BMP message length 0".into()));
    }
    let mut header = bytes::Bytes::copy_from_slice(&payload[..header_len]);
    let h = parse_openbmp_header(&mut header).map_err(|e| {
        HeaderError::Malformed(match e {
            ParserBmpError::InvalidOpenBmpHeader => "row count is not 1".to_string(),
            other => format!("{other} (within the declared header length {header_len})"),
        })
    })?;
    if h.msg_len as usize != msg_len {
        return Err(HeaderError::Malformed("message length changed".into()));
    }
    Ok(OpenBmpMessage {
        collector: h.admin_id,
        router: h.router_ip,
        timestamp: h.timestamp,
        bmp: &payload[header_len..want],
    })
}

/// A Kafka partition: topic and number.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Partition {
    /// The topic.
    pub topic: Arc<str>,
    /// The partition number.
    pub partition: i32,
}

/// A router as the OpenBMP header names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RouterId {
    /// The collector's admin id.
    pub collector: Arc<str>,
    /// The router's address.
    pub router: IpAddr,
}

impl std::fmt::Display for RouterId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.collector, self.router)
    }
}

struct Entry {
    session: RouterSession,
    /// The partitions its messages came from (one, when the collector keys by router).
    partitions: SmallVec<[Partition; 1]>,
}

/// Limits of one consumer's routers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Routers with a session at once; messages of further routers are skipped and counted.
    pub max_routers: usize,
    /// Peers per router ([`RouterSession::with_max_peers`]).
    pub max_peers_per_router: usize,
    /// The largest BMP message accepted ([`FrameReader::new`]).
    pub max_frame_bytes: u32,
}

/// What one message did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    /// Its BMP message(s) went through the router's session.
    Applied {
        /// The router.
        router: RouterId,
        /// Whether this message started the router's session on this instance.
        new_router: bool,
    },
    /// Skipped: the label counted in the output's errors, and the details.
    Skipped {
        /// The bounded label.
        label: &'static str,
        /// Details for the log.
        detail: String,
    },
}

/// The routers one consumer reads, each with its BMP session. See the module documentation.
pub struct Routers {
    sessions: HashMap<RouterId, Entry>,
    limits: Limits,
}

impl Routers {
    /// No routers yet.
    pub fn new(limits: Limits) -> Self {
        Routers {
            sessions: HashMap::new(),
            limits,
        }
    }

    /// Routers with a session.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// The session of `router`, if it has one.
    pub fn session(&self, router: &RouterId) -> Option<&RouterSession> {
        self.sessions.get(router).map(|e| &e.session)
    }

    /// Handles one Kafka message read from `from`: its routes, peer-downs and errors go to
    /// `out` (in stream order). `now` (seconds since the epoch) stands in for a zero collector
    /// timestamp, which in turn stands in for zero BMP timestamps.
    pub fn handle(
        &mut self,
        from: &Partition,
        payload: &[u8],
        registry: &Registry,
        now: f64,
        out: &mut Output,
    ) -> Handled {
        let msg = match parse_header(payload) {
            Ok(m) => m,
            Err(e) => return skip(out, e.label(), e.to_string()),
        };
        let id = RouterId {
            collector: Arc::from(msg.collector.as_str()),
            router: msg.router,
        };
        let new_router = !self.sessions.contains_key(&id);
        if new_router && self.sessions.len() >= self.limits.max_routers {
            let detail = format!("router {id} not tracked: {} routers", self.sessions.len());
            return skip(out, "too_many_routers", detail);
        }
        let limits = self.limits;
        let entry = self.sessions.entry(id.clone()).or_insert_with(|| Entry {
            session: RouterSession::kafka(&id.collector, id.router)
                .with_max_peers(limits.max_peers_per_router),
            partitions: SmallVec::new(),
        });
        if !entry.partitions.contains(from) {
            entry.partitions.push(from.clone());
        }
        let now = if msg.timestamp > 0.0 {
            msg.timestamp
        } else {
            now
        };
        let mut frames = FrameReader::new(limits.max_frame_bytes);
        let session = &mut entry.session;
        let framed = frames
            .feed(msg.bmp, |frame| {
                session.handle_frame(frame, registry, now, out)
            })
            .and_then(|()| frames.finish());
        if let Err(e) = framed {
            let label = match e {
                FrameError::UnsupportedVersion(_) => "bmp_unsupported_version",
                FrameError::BadLength { .. } => "bmp_bad_length",
                FrameError::Truncated { .. } => "bmp_truncated",
            };
            return skip(out, label, format!("router {id}: {e}"));
        }
        Handled::Applied {
            router: id,
            new_router,
        }
    }

    /// The group took `partitions` away: the routers read from any of them are closed (every
    /// route of every peer withdrawn into `out`) and forgotten. Returns them.
    pub fn revoke(
        &mut self,
        partitions: &[Partition],
        now: f64,
        out: &mut Output,
    ) -> Vec<RouterId> {
        let gone: Vec<RouterId> = self
            .sessions
            .iter()
            .filter(|(_, e)| e.partitions.iter().any(|p| partitions.contains(p)))
            .map(|(id, _)| id.clone())
            .collect();
        for id in &gone {
            if let Some(mut e) = self.sessions.remove(id) {
                e.session.close(now, out);
            }
        }
        gone
    }
}

fn skip(out: &mut Output, label: &'static str, detail: String) -> Handled {
    *out.batch.errors.entry(label).or_insert(0) += 1;
    Handled::Skipped { label, detail }
}

/// Builds an OpenBMP raw BMP message (header version 1.7, object type 12) around `bmp`, as an
/// OpenBMP collector publishes it: for tests, benchmarks and tools that produce to Kafka.
pub fn encode(collector: &str, router: IpAddr, timestamp: f64, bmp: &[u8]) -> Vec<u8> {
    let group: &[u8] = b"";
    let header_len =
        4 + 2 + 2 + 4 + 1 + 1 + 8 + 16 + 2 + collector.len() + 16 + 16 + 2 + group.len() + 4;
    let mut v = Vec::with_capacity(header_len + bmp.len());
    v.extend_from_slice(MAGIC);
    v.extend_from_slice(&[1, 7]);
    v.extend_from_slice(&(header_len as u16).to_be_bytes());
    v.extend_from_slice(&(bmp.len() as u32).to_be_bytes());
    let v6 = router.is_ipv6();
    v.push(0x80 | if v6 { 0x40 } else { 0 });
    v.push(12);
    let secs = timestamp.max(0.0);
    v.extend_from_slice(&(secs as u32).to_be_bytes());
    v.extend_from_slice(&((secs.fract() * 1e6) as u32).to_be_bytes());
    v.extend_from_slice(&[0u8; 16]);
    v.extend_from_slice(&(collector.len() as u16).to_be_bytes());
    v.extend_from_slice(collector.as_bytes());
    v.extend_from_slice(&router_hash(collector, router));
    let mut ip = [0u8; 16];
    match router {
        IpAddr::V4(a) => ip[..4].copy_from_slice(&a.octets()),
        IpAddr::V6(a) => ip.copy_from_slice(&a.octets()),
    }
    v.extend_from_slice(&ip);
    v.extend_from_slice(&(group.len() as u16).to_be_bytes());
    v.extend_from_slice(group);
    v.extend_from_slice(&1u32.to_be_bytes());
    v.extend_from_slice(bmp);
    v
}

/// A stable 16-byte stand-in for OpenBMP's router hash (which is an MD5 of the router address
/// and collector hash; routewatch does not read it).
fn router_hash(collector: &str, router: IpAddr) -> [u8; 16] {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (collector, router).hash(&mut h);
    let a = h.finish().to_be_bytes();
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&a);
    out[8..].copy_from_slice(&a);
    out
}

/// The BMP messages of a raw stream (a router's TCP bytes, as in `fixtures/bmp/raw/`), each
/// whole, framed by [`FrameReader`]: what a collector publishes one Kafka message each. Stops at
/// the first message that does not frame.
pub fn split_messages(stream: &[u8], max_frame_bytes: u32) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut frames = FrameReader::new(max_frame_bytes);
    let _ = frames.feed(stream, |frame| out.push(frame.to_vec()));
    out
}
