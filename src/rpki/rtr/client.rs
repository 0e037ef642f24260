//! The RTR router side as a state machine without I/O: it is handed the PDUs one server sends
//! and answers with what to send, the data at each End of Data, and when to close. The daemon's
//! task (`daemon/rtr_task.rs`) does the sockets, the timers and the failover.
//!
//! # What it does, per RFC 8210 (and RFC 6810, draft-ietf-sidrops-8210bis)
//!
//! - **Queries.** On a connection it sends a Serial Query when it holds a session id and a
//!   serial from this cache, else a Reset Query ([`Client::connected`]); later queries at every
//!   refresh ([`Client::refresh`]) and on a Serial Notify while idle. A Cache Reset answering a
//!   Serial Query is followed by a Reset Query.
//! - **Version negotiation** (RFC 8210 §7, 8210bis §7). It starts at the highest version it
//!   speaks (2). An answer at a lower version before anything was agreed (StayRTR run with
//!   `-protocol 1` answers a version 2 query with a version 1 Cache Response) sets the version
//!   for this cache. An Error Report "Unsupported Protocol Version" makes it close and connect
//!   again at the Error Report's version when that is lower, else one below the current one;
//!   below 0 there is nothing to try ([`Close::NoVersion`]). A reconnection that continues a
//!   session keeps its version; one that starts over (no session held) negotiates again from 2.
//! - **The table.** A reset response builds a new table that replaces the held one at End of
//!   Data; a serial response changes the held one. VRPs are a set: announcing one already held
//!   is "Duplicate Announcement Received", withdrawing one not held "Withdrawal of Unknown
//!   Record". ASPAs are keyed by customer (and, in the 8210bis-10 layout, by address family: a
//!   record per AFI, merged by customer into one provider set as [`AspaSet::from_records`]
//!   does). An ASPA announcement replaces the held record of its key (8210bis: "replaces the
//!   previous one"); a withdrawal removes it. A withdrawal whose provider list differs from the
//!   held record's withdraws a record that an announcement in the same response has already
//!   replaced (StayRTR 0.5.1 sends a change as "announce the new record, withdraw the old"),
//!   and is ignored.
//! - **Protocol errors** (an unexpected PDU, a session id that changed, a withdrawal of what is
//!   not held, a duplicate announcement, a malformed PDU, a PDU of another version) are answered
//!   with an Error Report (the offending PDU copied in), then the connection is closed and the
//!   session forgotten, so the next connection starts with a Reset Query (RFC 8210 §8.4, §12).
//!   The data delivered at the last End of Data stays in use until replaced or expired.
//! - **End of Data** yields an [`Update`]: the complete [`RpkiData`], what changed since the
//!   previous End of Data ([`RpkiDelta`]: prefixes of VRPs added or removed, customers whose
//!   ASPA changed), and the timers: the End of Data's (versions 1, 2), else the defaults
//!   (version 0 has none: RFC 8210 §6's 3600 / 600 / 7200 s unless configured). Timers are
//!   bounded to 1 s ..= the maxima of RFC 8210 §6 (refresh 86400, retry 7200, expire 172800);
//!   smaller minima than §6's are accepted so that a test cache can use second-long timers.
//! - **Bounds** ([`Limits`]): VRPs and ASPA records held, PDUs in one response. Past the table
//!   limits announcements are dropped and counted ([`Update::dropped_vrps`],
//!   [`Update::dropped_aspas`]) and withdrawals of unknown records are then tolerated; a
//!   response with more PDUs than the limit is an error.
//!
//! An interrupted serial response leaves the table half-changed, so a connection lost in the
//! middle of one (or of a reset response, whose new table is discarded) also forgets the
//! session: the next query is a Reset Query.

use std::sync::Arc;

use ipnet::IpNet;
use rustc_hash::{FxHashMap, FxHashSet};

use super::pdu::{AspaLayout, ErrorCode, Frame, Pdu, PduError, Timers, MAX_VERSION};
use crate::rpki::aspa::AspaSet;
use crate::rpki::{RpkiData, RpkiDelta, Vrp, VrpSet};

/// RFC 8210 §6 defaults, used when the cache gives none (version 0) and none is configured.
pub const DEFAULT_TIMERS: Timers = Timers {
    refresh: 3600,
    retry: 600,
    expire: 7200,
};

/// RFC 8210 §6 maxima (refresh, retry, expire).
const MAX_TIMERS: Timers = Timers {
    refresh: 86_400,
    retry: 7_200,
    expire: 172_800,
};

/// Bounds on what one cache can make the client hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// VRPs held; past it announcements are dropped and counted.
    pub max_vrps: usize,
    /// ASPA records held (one per customer, or per customer and AFI).
    pub max_aspas: usize,
    /// PDUs in one response (Cache Response to End of Data); past it the response is an error.
    pub max_pdus_per_response: usize,
}

impl Default for Limits {
    /// 4 million VRPs (several times the global RPKI's few hundred thousand), 1 million ASPA records, and
    /// 8 million PDUs per response.
    fn default() -> Self {
        Limits {
            max_vrps: 4_000_000,
            max_aspas: 1_000_000,
            max_pdus_per_response: 8_000_000,
        }
    }
}

/// Which kind of response an update came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateKind {
    /// The answer to a Reset Query: everything.
    Reset,
    /// The answer to a Serial Query: what changed.
    Serial,
}

impl UpdateKind {
    /// `reset` or `serial` (metric label values).
    pub const fn as_str(self) -> &'static str {
        match self {
            UpdateKind::Reset => "reset",
            UpdateKind::Serial => "serial",
        }
    }
}

/// What an End of Data delivers.
#[derive(Debug, Clone)]
pub struct Update {
    /// Everything held now.
    pub data: Arc<RpkiData>,
    /// What changed since the previous End of Data (`None`: there was none on this client).
    pub changed: Option<RpkiDelta>,
    /// Reset or serial.
    pub kind: UpdateKind,
    /// The cache's session id.
    pub session_id: u16,
    /// The serial now held.
    pub serial: u32,
    /// The timers in force (bounded; defaults in version 0).
    pub timers: Timers,
    /// The protocol version in use.
    pub version: u8,
    /// VRP announcements dropped at the table limit in this response.
    pub dropped_vrps: u64,
    /// ASPA announcements dropped at the table limit in this response.
    pub dropped_aspas: u64,
    /// ASPA records held (per customer and AFI as sent; `data.aspas` merges them by customer).
    pub aspa_records: usize,
}

/// Why the client wants the connection closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Close {
    /// The cache sent something wrong; an Error Report with this code was sent first.
    Protocol {
        /// The code reported.
        code: ErrorCode,
        /// What was wrong.
        detail: String,
    },
    /// The cache reported an error.
    ServerError {
        /// Its code.
        code: ErrorCode,
        /// Its text.
        text: String,
    },
    /// The cache has no data yet (Error Report "No Data Available"): try again after the
    /// retry interval.
    NoData,
    /// The cache does not speak this version: connect again at `to`.
    Downgrade {
        /// The version to use next.
        to: u8,
    },
    /// The cache speaks no version this client does.
    NoVersion,
}

impl Close {
    /// A bounded snake_case reason (metric label values).
    pub fn reason(&self) -> &'static str {
        match self {
            Close::Protocol { code, .. } => match code {
                ErrorCode::WithdrawalOfUnknownRecord => "withdrawal_of_unknown_record",
                ErrorCode::DuplicateAnnouncement => "duplicate_announcement",
                ErrorCode::UnsupportedPduType => "unsupported_pdu_type",
                ErrorCode::UnsupportedProtocolVersion | ErrorCode::UnexpectedProtocolVersion => {
                    "unexpected_version"
                }
                ErrorCode::InternalError => "response_too_large",
                _ => "corrupt_data",
            },
            Close::ServerError { .. } => "server_error_report",
            Close::NoData => "no_data",
            Close::Downgrade { .. } => "version_downgrade",
            Close::NoVersion => "no_common_version",
        }
    }
}

/// What the client asks its caller to do, in order.
#[derive(Debug, Clone)]
pub enum Action {
    /// Write these bytes.
    Send(Vec<u8>),
    /// New data (End of Data).
    Data(Box<Update>),
    /// Close the connection (after writing what was asked before).
    Close(Close),
}

/// Where in a conversation the client is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Not connected.
    Down,
    /// Connected, nothing outstanding.
    Idle,
    /// A query sent, no Cache Response yet.
    Awaiting { reset: bool },
    /// Within a response.
    Receiving {
        reset: bool,
        session_id: u16,
        pdus: usize,
    },
}

/// ASPA record key: customer, and the AFI byte of the 8210bis-10 layout (`None`: later layout).
type AspaKey = (u32, Option<u8>);

/// What the client holds.
#[derive(Debug, Clone, Default)]
struct Table {
    vrps: FxHashSet<Vrp>,
    aspas: FxHashMap<AspaKey, Box<[u32]>>,
    /// An announcement was dropped at a limit: withdrawals of unknown records are tolerated.
    overflow: bool,
}

impl Table {
    fn to_data(&self) -> RpkiData {
        RpkiData::new(
            VrpSet::from_vrps(self.vrps.iter().copied()),
            AspaSet::from_records(
                self.aspas
                    .iter()
                    .map(|((customer, _), providers)| (*customer, providers.iter().copied())),
            ),
        )
    }
}

/// The router side of RTR with one cache.
#[derive(Debug)]
pub struct Client {
    version: u8,
    /// A response at `version` was received on this connection: the version is agreed.
    agreed: bool,
    /// The version the cache asked for with an Error Report, for the next connection.
    next_version: Option<u8>,
    session: Option<(u16, u32)>,
    phase: Phase,
    held: Table,
    /// The table a reset response is building.
    fresh: Option<Table>,
    /// Changes seen in the current serial response.
    prefixes: Vec<IpNet>,
    customers: Vec<u32>,
    dropped_vrps: u64,
    dropped_aspas: u64,
    /// What the last End of Data delivered.
    last: Option<Arc<RpkiData>>,
    defaults: Timers,
    limits: Limits,
}

impl Client {
    /// A client that starts at the highest version, with `defaults` for version 0 caches.
    pub fn new(defaults: Timers, limits: Limits) -> Self {
        Client {
            version: MAX_VERSION,
            agreed: false,
            next_version: None,
            session: None,
            phase: Phase::Down,
            held: Table::default(),
            fresh: None,
            prefixes: Vec::new(),
            customers: Vec::new(),
            dropped_vrps: 0,
            dropped_aspas: 0,
            last: None,
            defaults,
            limits,
        }
    }

    /// The version in use (or to be tried next).
    pub fn version(&self) -> u8 {
        self.version
    }

    /// The session id and serial held (`None`: the next query is a Reset Query).
    pub fn session(&self) -> Option<(u16, u32)> {
        self.session
    }

    /// Whether connected with no query outstanding.
    pub fn is_idle(&self) -> bool {
        self.phase == Phase::Idle
    }

    /// Whether a query is outstanding (a response is awaited or being received).
    pub fn is_busy(&self) -> bool {
        matches!(self.phase, Phase::Awaiting { .. } | Phase::Receiving { .. })
    }

    /// A connection is up: the first query's bytes. A session held is continued at its version;
    /// without one the version is negotiated again from the highest (a cache may have been
    /// upgraded), unless the cache just asked for a lower one.
    pub fn connected(&mut self) -> Vec<u8> {
        self.agreed = false;
        if let Some(v) = self.next_version.take() {
            self.version = v;
        } else if self.session.is_none() {
            self.version = MAX_VERSION;
        }
        self.phase = Phase::Idle;
        self.query()
    }

    /// The refresh timer fired: a Serial Query (or a Reset Query without a session) when idle;
    /// `None` while a query is outstanding or when not connected.
    pub fn refresh(&mut self) -> Option<Vec<u8>> {
        (self.phase == Phase::Idle).then(|| self.query())
    }

    /// The connection is gone: a response in progress is abandoned (and the session forgotten,
    /// as the held table may be half-changed).
    pub fn disconnected(&mut self) {
        if let Phase::Receiving { .. } = self.phase {
            self.session = None;
        }
        self.fresh = None;
        self.prefixes.clear();
        self.customers.clear();
        self.dropped_vrps = 0;
        self.dropped_aspas = 0;
        self.phase = Phase::Down;
    }

    fn query(&mut self) -> Vec<u8> {
        let (reset, pdu) = match self.session {
            Some((session_id, serial)) => (false, Pdu::SerialQuery { session_id, serial }),
            None => (true, Pdu::ResetQuery),
        };
        self.phase = Phase::Awaiting { reset };
        Frame::new(self.version, pdu).encode()
    }

    /// A PDU that did not decode (`raw`: its bytes as far as they are known): an Error Report,
    /// then close.
    pub fn on_decode_error(&mut self, err: &PduError, raw: &[u8], out: &mut Vec<Action>) {
        let code = err.code();
        // A cache that answers a version 2 query in a version above ours is broken; one that
        // speaks only a lower version answers with its own: handled as a PDU, not here.
        self.fail(code, err.to_string(), raw, out);
    }

    /// Sends an Error Report and asks to close, forgetting the session.
    fn fail(&mut self, code: ErrorCode, detail: String, raw: &[u8], out: &mut Vec<Action>) {
        let copy = raw.get(..raw.len().min(64)).unwrap_or_default().to_vec();
        let mut text = detail.clone();
        text.truncate(200);
        out.push(Action::Send(
            Frame::new(
                self.version,
                Pdu::ErrorReport {
                    code,
                    pdu: copy,
                    text,
                },
            )
            .encode(),
        ));
        self.session = None;
        self.fresh = None;
        self.phase = Phase::Down;
        out.push(Action::Close(Close::Protocol { code, detail }));
    }

    /// One PDU from the cache (`raw`: its bytes, copied into an Error Report if it is wrong).
    pub fn on_frame(&mut self, frame: Frame, raw: &[u8], out: &mut Vec<Action>) {
        if let Pdu::ErrorReport { code, text, .. } = &frame.pdu {
            self.on_error_report(frame.version, *code, text, out);
            return;
        }
        if frame.version != self.version {
            let first_answer = !self.agreed && matches!(self.phase, Phase::Awaiting { .. });
            if frame.version < self.version && first_answer {
                // The cache answers at its own, lower version: use it (RFC 8210 §7).
                self.version = frame.version;
            } else {
                let code = if self.version >= 2 {
                    ErrorCode::UnexpectedProtocolVersion
                } else {
                    ErrorCode::UnsupportedProtocolVersion
                };
                let detail = format!(
                    "PDU of version {} in a version {} session",
                    frame.version, self.version
                );
                return self.fail(code, detail, raw, out);
            }
        }
        match frame.pdu {
            Pdu::SerialNotify { .. } => {
                // A hint: ask now when nothing is outstanding, else the answer covers it.
                if self.phase == Phase::Idle {
                    out.push(Action::Send(self.query()));
                }
            }
            Pdu::CacheResponse { session_id } => self.on_cache_response(session_id, raw, out),
            Pdu::Prefix {
                announce,
                prefix,
                max_length,
                asn,
            } => {
                if !self.count_pdu(raw, out) {
                    return;
                }
                match Vrp::new(prefix, max_length, asn) {
                    Ok(vrp) => self.on_vrp(announce, vrp, raw, out),
                    // The decoder checked both; kept as an error rather than a panic.
                    Err(_) => self.fail(ErrorCode::CorruptData, "bad VRP".into(), raw, out),
                }
            }
            Pdu::RouterKey { .. } => {
                // BGPsec keys are not used; they still count against the response's bound.
                self.count_pdu(raw, out);
            }
            Pdu::Aspa {
                announce,
                layout,
                customer,
                providers,
            } => {
                if !self.count_pdu(raw, out) {
                    return;
                }
                let afi = match layout {
                    AspaLayout::Afi(a) => Some(a),
                    AspaLayout::Plain => None,
                };
                self.on_aspa(announce, (customer, afi), providers, raw, out);
            }
            Pdu::EndOfData {
                session_id,
                serial,
                timers,
            } => self.on_end_of_data(session_id, serial, timers, raw, out),
            Pdu::CacheReset => {
                if self.phase == (Phase::Awaiting { reset: false }) {
                    self.agreed = true;
                    self.session = None;
                    out.push(Action::Send(self.query()));
                } else {
                    self.fail(
                        ErrorCode::CorruptData,
                        "Cache Reset not in answer to a Serial Query".into(),
                        raw,
                        out,
                    );
                }
            }
            Pdu::SerialQuery { .. } | Pdu::ResetQuery => self.fail(
                ErrorCode::InvalidRequest,
                "a query sent by the cache".into(),
                raw,
                out,
            ),
            Pdu::ErrorReport { .. } => {}
        }
    }

    fn on_error_report(&mut self, version: u8, code: ErrorCode, text: &str, out: &mut Vec<Action>) {
        // Never answered with an Error Report (RFC 8210 §12).
        let was_receiving = matches!(self.phase, Phase::Receiving { .. });
        self.phase = Phase::Down;
        self.fresh = None;
        if was_receiving {
            self.session = None;
        }
        let close = match code {
            ErrorCode::UnsupportedProtocolVersion if !self.agreed || version < self.version => {
                let to = if version < self.version {
                    Some(version)
                } else {
                    self.version.checked_sub(1)
                };
                match to {
                    Some(to) => {
                        self.version = to;
                        self.next_version = Some(to);
                        self.agreed = false;
                        // A session of another version is not continued.
                        self.session = None;
                        Close::Downgrade { to }
                    }
                    None => Close::NoVersion,
                }
            }
            ErrorCode::NoDataAvailable => Close::NoData,
            code => {
                // The cache found fault with our query (StayRTR answers a Serial Query of a
                // session it does not know, after its restart, with Corrupt Data): start over.
                self.session = None;
                Close::ServerError {
                    code,
                    text: text.chars().take(200).collect(),
                }
            }
        };
        out.push(Action::Close(close));
    }

    fn on_cache_response(&mut self, session_id: u16, raw: &[u8], out: &mut Vec<Action>) {
        let Phase::Awaiting { reset } = self.phase else {
            return self.fail(
                ErrorCode::CorruptData,
                "Cache Response with no query outstanding".into(),
                raw,
                out,
            );
        };
        self.agreed = true;
        if !reset {
            if let Some((held, _)) = self.session {
                if held != session_id {
                    let detail = format!("session id changed from {held} to {session_id}");
                    return self.fail(ErrorCode::CorruptData, detail, raw, out);
                }
            }
        }
        if reset {
            self.fresh = Some(Table::default());
        }
        self.prefixes.clear();
        self.customers.clear();
        self.dropped_vrps = 0;
        self.dropped_aspas = 0;
        self.phase = Phase::Receiving {
            reset,
            session_id,
            pdus: 0,
        };
    }

    /// Counts a data PDU against the response's bound; `false` (after failing) when it is not
    /// in a response or past the bound.
    fn count_pdu(&mut self, raw: &[u8], out: &mut Vec<Action>) -> bool {
        match &mut self.phase {
            Phase::Receiving { pdus, .. } => {
                *pdus += 1;
                if *pdus > self.limits.max_pdus_per_response {
                    let detail = format!(
                        "more than {} PDUs in one response",
                        self.limits.max_pdus_per_response
                    );
                    self.fail(ErrorCode::InternalError, detail, raw, out);
                    return false;
                }
                true
            }
            _ => {
                self.fail(
                    ErrorCode::CorruptData,
                    "data PDU outside a Cache Response".into(),
                    raw,
                    out,
                );
                false
            }
        }
    }

    fn table(&mut self) -> &mut Table {
        match &mut self.fresh {
            Some(t) => t,
            None => &mut self.held,
        }
    }

    fn on_vrp(&mut self, announce: bool, vrp: Vrp, raw: &[u8], out: &mut Vec<Action>) {
        let max = self.limits.max_vrps;
        let t = self.table();
        if announce {
            if t.vrps.contains(&vrp) {
                let detail = format!("duplicate announcement of {vrp}");
                return self.fail(ErrorCode::DuplicateAnnouncement, detail, raw, out);
            }
            if t.vrps.len() >= max {
                t.overflow = true;
                self.dropped_vrps += 1;
                return;
            }
            t.vrps.insert(vrp);
        } else if !t.vrps.remove(&vrp) {
            if t.overflow {
                return;
            }
            let detail = format!("withdrawal of {vrp}, not held");
            return self.fail(ErrorCode::WithdrawalOfUnknownRecord, detail, raw, out);
        }
        self.prefixes.push(vrp.prefix());
    }

    fn on_aspa(
        &mut self,
        announce: bool,
        key: AspaKey,
        mut providers: Vec<u32>,
        raw: &[u8],
        out: &mut Vec<Action>,
    ) {
        let max = self.limits.max_aspas;
        let t = self.table();
        if announce {
            if !t.aspas.contains_key(&key) && t.aspas.len() >= max {
                t.overflow = true;
                self.dropped_aspas += 1;
                return;
            }
            providers.sort_unstable();
            providers.dedup();
            let new = providers.into_boxed_slice();
            if t.aspas.get(&key) == Some(&new) {
                return;
            }
            t.aspas.insert(key, new);
        } else {
            let Some(held) = t.aspas.get(&key) else {
                if t.overflow {
                    return;
                }
                let detail = format!("withdrawal of the ASPA of AS{}, not held", key.0);
                return self.fail(ErrorCode::WithdrawalOfUnknownRecord, detail, raw, out);
            };
            providers.sort_unstable();
            providers.dedup();
            if !providers.is_empty() && **held != *providers {
                // The withdrawal of a record already replaced in this response.
                return;
            }
            t.aspas.remove(&key);
        }
        self.customers.push(key.0);
    }

    fn on_end_of_data(
        &mut self,
        session_id: u16,
        serial: u32,
        timers: Option<Timers>,
        raw: &[u8],
        out: &mut Vec<Action>,
    ) {
        let Phase::Receiving {
            reset,
            session_id: started,
            ..
        } = self.phase
        else {
            return self.fail(
                ErrorCode::CorruptData,
                "End of Data outside a Cache Response".into(),
                raw,
                out,
            );
        };
        if session_id != started {
            let detail = format!("End of Data of session {session_id} in session {started}");
            return self.fail(ErrorCode::CorruptData, detail, raw, out);
        }
        if let Some(fresh) = self.fresh.take() {
            self.held = fresh;
        }
        let data = Arc::new(self.held.to_data());
        let changed = self.last.as_ref().map(|last| {
            if reset {
                last.diff(&data)
            } else {
                RpkiDelta::new(
                    std::mem::take(&mut self.prefixes),
                    std::mem::take(&mut self.customers),
                )
            }
        });
        self.prefixes.clear();
        self.customers.clear();
        self.last = Some(data.clone());
        self.session = Some((session_id, serial));
        self.phase = Phase::Idle;
        let timers = bounded(timers.unwrap_or(self.defaults));
        out.push(Action::Data(Box::new(Update {
            data,
            changed,
            kind: if reset {
                UpdateKind::Reset
            } else {
                UpdateKind::Serial
            },
            session_id,
            serial,
            timers,
            version: self.version,
            dropped_vrps: std::mem::take(&mut self.dropped_vrps),
            dropped_aspas: std::mem::take(&mut self.dropped_aspas),
            aspa_records: self.held.aspas.len(),
        })));
    }
}

/// Timers bounded to 1 s ..= RFC 8210 §6's maxima.
pub fn bounded(t: Timers) -> Timers {
    Timers {
        refresh: t.refresh.clamp(1, MAX_TIMERS.refresh),
        retry: t.retry.clamp(1, MAX_TIMERS.retry),
        expire: t.expire.clamp(1, MAX_TIMERS.expire),
    }
}

#[cfg(test)]
mod tests;
