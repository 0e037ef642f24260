//! Per-router BMP session state: a pure state machine fed with framed messages.
//!
//! A [`RouterSession`] is one TCP connection from one router. It keeps the router's identity
//! (source address and port, sysName once the Initiation names it, an optional configured
//! name), the table of monitored peers with their negotiated capabilities, per-type message
//! counters and error counts, and turns messages into [`Output`]:
//!
//! * Route Monitoring → matched [`RouteUpdate`]s. Each prefix is looked up in the registry
//!   *before* anything is built for it (as in the MRT feed); the AS path is decoded at most once
//!   per message and only if a matched announcement needs it. An announcement without a usable
//!   AS_PATH is treated as a withdrawal (RFC 7606) and counted.
//! * Peer Down → a [`SourceDown`] per route source of that peer: all its routes go.
//! * Termination, or [`RouterSession::close`] (TCP closed, framing error, shutdown) → the same
//!   for every peer that is up.
//! * End-of-RIB → that peer's view/family is marked complete ([`PeerInfo::initial_table_complete`]).
//!
//! # Route sources
//!
//! Every (peer, view) pair is its own [`PeerKey`], so pre-policy, post-policy, Loc-RIB and
//! Adj-RIB-Out routes never overwrite each other:
//!
//! ```text
//! PeerKey.source = "bmp/" <router address:port> "/" <view> [ "/" <instance> ]
//!   view     = adj-in-pre | adj-in-post | adj-out-pre | adj-out-post | loc-rib
//!   instance = (none)           global peers and Loc-RIB with a zero distinguisher
//!              rd=<RD>          RD instance peers; Loc-RIB of a non-default instance
//!              local=0x<hex>    local instance peers
//!              global-rd=<RD>   global peers with a non-zero distinguisher (RFC 7854 says
//!                               zero; kept apart rather than merged)
//! PeerKey.address / .asn = the per-peer header's peer address and AS
//!                          (Loc-RIB: 0.0.0.0 and the instance's own AS)
//! ```
//!
//! The source names the router, view and instance; the peer itself is the key's address and
//! AS, as for MRT data (where every peer shares the source `mrt`). Key and (peer type,
//! distinguisher, address, AS) determine each other, so two peers or two views never share a
//! key.
//!
//! e.g. `bmp/192.0.2.55:20/adj-in-post/rd=64499:74`, `bmp/[2001:db8::1]:17001/loc-rib`.
//! `<RD>` is written as RFC 4364 does (`64499:74`, `192.0.2.1:7`, `4200000000:12`), or as 16 hex
//! digits for other distinguisher types. The router part is the TCP source address and port, not
//! the display label: the label can change mid-session (the Initiation names the router after
//! the connection opened), while the key must not, so that later withdrawals and peer-downs hit
//! the routes already stored. Address and port also cannot collide between two concurrent
//! connections, even from one router (a reconnect overlapping the old session's teardown), and a
//! session's routes are all withdrawn when it ends, so a new connection never needs the old
//! keys. The label for display and metrics is [`RouterSession::label`].
//!
//! The Loc-RIB F flag is not part of the key (a Loc-RIB is one RIB, filtered or not), nor are
//! its reserved flag bits (FRR 10 sends each Loc-RIB message twice, once with 0x40 set: the
//! copies land on the same routes).
//!
//! Since every view is a route source, a peer monitored pre- and post-policy carries a prefix
//! twice; the engine's visibility counts route sources.
//!
//! # Message sequences
//!
//! Routers do not always follow RFC 7854's order; the session takes the data as it comes and
//! counts the oddities in [`RouterSession::anomalies`]:
//!
//! * a Peer Up repeated for the same BGP session (same local address and TCP ports) is merged
//!   into the first, nothing withdrawn: routers send one per view or per address family;
//! * a Peer Up for a new BGP session of a peer that is up first withdraws the old session's
//!   routes;
//! * Route Monitoring from a peer without a Peer Up (or after its Peer Down) is used, the peer
//!   taken as up: no ADD-PATH is assumed, the A flag gives the AS number size;
//! * an AS_PATH that does not read as 4-byte although the A flag is clear is read as 2-byte
//!   when the peer's Peer Up shows a 2-byte session (a router that forgot the flag);
//! * a Peer Down is never refused, whatever its data;
//! * after a Termination, messages are counted and ignored.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::ops::ControlFlow;
use std::sync::Arc;

use smallvec::SmallVec;

use crate::ingest::batch::PeerRoleSeen;
use crate::ingest::bgp::{
    convert_path, decode_as_path, only_to_customer, split_update, Family, Otc, MALFORMED_OTC,
};
use crate::ingest::{Batch, SourceDown};
use crate::model::{AsPath, Feed, PeerKey, PeerRole, RouteChange, RouteSource, RouteUpdate};
use crate::registry::Registry;

use super::message::{
    decode_message, format_distinguisher, Message, MessageType, OpenMessage, PeerDown,
    PeerDownReason, PeerHeader, PeerId, PeerType, PeerUp, RibView, RoleCapability, RouteMonitoring,
    Termination, ADD_PATH_RECEIVE, ADD_PATH_SEND, MALFORMED_BGP_ROLE,
};

/// Peers one router session may report by default (`[bmp] max-peers-per-router`); messages
/// about further peers are dropped and counted (`too_many_peers`), so a misbehaving router
/// cannot grow the table without bound.
pub const MAX_PEERS_PER_ROUTER: usize = 65_536;

/// Every label [`RouterSession::anomalies`] can hold (bounded: the `kind` label of
/// `routewatch_bmp_protocol_oddities_total`).
pub const ANOMALY_KINDS: [&str; 8] = [
    "route_monitoring_without_peer_up",
    "route_monitoring_while_down",
    "two_byte_as_path_without_a_flag",
    "peer_up_while_up",
    "peer_down_unknown_peer",
    "message_after_termination",
    "trailing_tlv",
    "name_conflict",
];

/// Whether `b` is a whole sequence of TLVs (2-byte type, 2-byte length, value): what routers
/// append after the UPDATE of a Route Monitoring message (draft-ietf-grow-bmp-tlv style;
/// seen from Huawei VRP).
fn is_tlv_sequence(mut b: &[u8]) -> bool {
    if b.is_empty() {
        return false;
    }
    while !b.is_empty() {
        let [_, _, l0, l1, rest @ ..] = b else {
            return false;
        };
        let len = usize::from(u16::from_be_bytes([*l0, *l1]));
        if rest.len() < len {
            return false;
        }
        b = &rest[len..];
    }
    true
}

/// Where a session is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    /// Receiving messages.
    Open,
    /// The router sent a Termination; its peers are down; the TCP close is expected.
    Terminated,
    /// [`RouterSession::close`] was called.
    Closed,
}

/// A monitored peer's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerState {
    /// Up (after a Peer Up, or after Route Monitoring from a peer without one).
    Up,
    /// Down (Peer Down, Termination or session close).
    Down,
}

/// Per-family progress of one view of a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FamilyState {
    /// The family.
    pub family: Family,
    /// Prefixes announced in this family since the peer came up (route families only).
    pub announced: u64,
    /// Prefixes withdrawn in this family since the peer came up (route families only).
    pub withdrawn: u64,
    /// Whether the End-of-RIB marker arrived: the initial table of this family is complete.
    pub end_of_rib: bool,
}

/// One RIB view of a peer: its route source and progress.
#[derive(Debug, Clone)]
pub struct ViewState {
    /// The view.
    pub view: RibView,
    /// Its route source (see the module documentation); stable for the session.
    pub key: Arc<PeerKey>,
    /// Families seen (in Route Monitoring or End-of-RIB) since the peer came up.
    pub families: Vec<FamilyState>,
}

/// A monitored peer, for the API and readiness.
#[derive(Debug, Clone)]
pub struct PeerInfo {
    /// Identity: type, distinguisher, address, AS.
    pub id: PeerId,
    /// BGP identifier (from the latest per-peer header).
    pub bgp_id: Ipv4Addr,
    /// Up or down.
    pub state: PeerState,
    /// Time of the last state change (the message's timestamp, else the time it arrived).
    pub since: f64,
    /// The latest Peer Up (local address, ports, both OPENs, table name); `None` for a peer
    /// known only from Route Monitoring.
    pub peer_up: Option<Box<PeerUp>>,
    /// Why it went down last.
    pub down_reason: Option<PeerDownReason>,
    /// Statistics Reports received about it.
    pub statistics_reports: u64,
    /// Route Monitoring messages received about it.
    pub route_monitoring: u64,
    /// Its views.
    pub views: Vec<ViewState>,
}

impl PeerInfo {
    fn new(id: PeerId, bgp_id: Ipv4Addr, since: f64) -> Self {
        PeerInfo {
            id,
            bgp_id,
            state: PeerState::Up,
            since,
            peer_up: None,
            down_reason: None,
            statistics_reports: 0,
            route_monitoring: 0,
            views: Vec::new(),
        }
    }

    /// The peer's BGP Role (RFC 9234) relative to the monitored router: the Role capability of
    /// the OPEN it sent (the Peer Up's received OPEN). `None` before a Peer Up, or when the
    /// capability is absent or unusable.
    pub fn role(&self) -> Option<PeerRole> {
        self.peer_up.as_ref()?.received_open.role.role()
    }

    /// Whether both sides advertised the 4-octet AS capability; `None` before a Peer Up.
    /// How an UPDATE encodes AS numbers is what the A flag says (RFC 7854 §4.2 lets a router
    /// re-encode a 2-byte peer's paths to 4 bytes and clear the flag); this only serves as a
    /// fallback when a path with the flag clear does not read as 4-byte.
    pub fn four_octet_as(&self) -> Option<bool> {
        let up = self.peer_up.as_ref()?;
        Some(up.sent_open.four_octet_as.is_some() && up.received_open.four_octet_as.is_some())
    }

    /// The families negotiated (multiprotocol capabilities in both OPENs; IPv4 unicast when
    /// either OPEN has none, RFC 4760 §8); empty before a Peer Up.
    pub fn negotiated_families(&self) -> Vec<Family> {
        let Some(up) = &self.peer_up else {
            return Vec::new();
        };
        let (s, r) = (&up.sent_open.multiprotocol, &up.received_open.multiprotocol);
        if s.is_empty() || r.is_empty() {
            return vec![Family::IPV4_UNICAST];
        }
        s.iter().filter(|f| r.contains(f)).copied().collect()
    }

    /// Whether this peer's Route Monitoring for `view` carries ADD-PATH path identifiers in
    /// `family`.
    ///
    /// RFC 7911 §4: a BGP speaker sends path identifiers for a family when it advertised *send*
    /// and its peer advertised *receive*. In the Peer Up, the sent OPEN is the monitored
    /// router's and the received OPEN the peer's, so:
    ///
    /// * Adj-RIB-In (routes from the peer): the received OPEN has *send* and the sent OPEN has
    ///   *receive*;
    /// * Adj-RIB-Out (routes to the peer, RFC 8671): the sent OPEN has *send* and the received
    ///   OPEN has *receive*;
    /// * Loc-RIB: the OPENs are fabricated by the router (RFC 9069 §5.3), and the presence of an
    ///   ADD-PATH entry for the family in either means path identifiers are used, whatever its
    ///   direction bits.
    ///
    /// Without a Peer Up: no ADD-PATH.
    pub fn add_path(&self, view: RibView, family: Family) -> bool {
        let Some(up) = &self.peer_up else {
            return false;
        };
        let sent = up.sent_open.add_path_mode(family);
        let received = up.received_open.add_path_mode(family);
        match view {
            RibView::AdjRibInPre | RibView::AdjRibInPost => {
                received & ADD_PATH_SEND != 0 && sent & ADD_PATH_RECEIVE != 0
            }
            RibView::AdjRibOutPre | RibView::AdjRibOutPost => {
                sent & ADD_PATH_SEND != 0 && received & ADD_PATH_RECEIVE != 0
            }
            RibView::LocRib => sent != 0 || received != 0,
        }
    }

    /// Whether End-of-RIB was seen for `family` in `view` since the peer came up.
    pub fn end_of_rib(&self, view: RibView, family: Family) -> bool {
        self.views
            .iter()
            .filter(|v| v.view == view)
            .flat_map(|v| &v.families)
            .any(|f| f.family == family && f.end_of_rib)
    }

    /// Whether the peer's initial tables are in: it is up, at least one view has reported,
    /// and every family seen in every view has had its End-of-RIB. A peer that has reported
    /// nothing yet, or a router that never sends End-of-RIB (GoBGP 3), stays incomplete: the
    /// caller's timeout decides then.
    pub fn initial_table_complete(&self) -> bool {
        self.state == PeerState::Up
            && !self.views.is_empty()
            && self
                .views
                .iter()
                .all(|v| !v.families.is_empty() && v.families.iter().all(|f| f.end_of_rib))
    }

    fn family_mut(&mut self, view: usize, family: Family) -> Option<&mut FamilyState> {
        let v = self.views.get_mut(view)?;
        let i = match v.families.iter().position(|f| f.family == family) {
            Some(i) => i,
            None => {
                v.families.push(FamilyState {
                    family,
                    announced: 0,
                    withdrawn: 0,
                    end_of_rib: false,
                });
                v.families.len() - 1
            }
        };
        v.families.get_mut(i)
    }

    fn reset_progress(&mut self) {
        for v in &mut self.views {
            v.families.clear();
        }
    }
}

/// Whether two Peer Ups describe the same BGP session: the same TCP connection (local
/// address, local and remote ports; the peer address is the same by construction). A
/// re-established session has a new ephemeral port on one side. Loc-RIB Peer Ups (all zero)
/// always describe the same instance. OPENs, flags and timestamps may differ.
fn same_bgp_session(a: &PeerUp, b: &PeerUp) -> bool {
    a.local_address == b.local_address
        && a.local_port == b.local_port
        && a.remote_port == b.remote_port
}

/// Capability entries kept per OPEN when Peer Ups are merged (bounds a router repeating Peer
/// Ups with ever new families).
const MAX_MERGED_ENTRIES: usize = 64;

/// Folds a repeated Peer Up of the same session into the stored one: families and ADD-PATH
/// entries are united (Huawei sends one Loc-RIB Peer Up per AFI), names updated.
fn merge_peer_up(into: &mut PeerUp, from: PeerUp) {
    fn merge_open(into: &mut OpenMessage, from: OpenMessage) {
        for f in from.multiprotocol {
            if !into.multiprotocol.contains(&f) && into.multiprotocol.len() < MAX_MERGED_ENTRIES {
                into.multiprotocol.push(f);
            }
        }
        for e in from.add_path {
            if !into.add_path.contains(&e) && into.add_path.len() < MAX_MERGED_ENTRIES {
                into.add_path.push(e);
            }
        }
        if into.four_octet_as.is_none() {
            into.four_octet_as = from.four_octet_as;
        }
        if into.role == RoleCapability::Absent {
            into.role = from.role;
        }
    }
    merge_open(&mut into.sent_open, from.sent_open);
    merge_open(&mut into.received_open, from.received_open);
    if from.table_name.is_some() {
        into.table_name = from.table_name;
    }
    if from.text.is_some() {
        into.text = from.text;
    }
}

/// Messages received per type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MessageCounts([u64; MessageType::ALL.len()]);

impl MessageCounts {
    /// Messages of one type.
    pub fn get(&self, t: MessageType) -> u64 {
        self.0[t.index()]
    }

    /// All types with their counts, in [`MessageType::ALL`] order (zeros included).
    pub fn iter(&self) -> impl Iterator<Item = (MessageType, u64)> + '_ {
        MessageType::ALL.iter().map(|&t| (t, self.get(t)))
    }

    /// Messages of every type.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    fn add(&mut self, t: MessageType) {
        self.0[t.index()] += 1;
    }
}

/// A problem with one message (the message, or part of it, was not used). Also counted by
/// label in [`Output::batch`]`.errors` and [`RouterSession::errors`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageError {
    /// The message's type.
    pub msg_type: MessageType,
    /// Bounded label: `malformed_<type>`, `not_update`, `malformed_update`,
    /// `malformed_bgp_role` (a Peer Up whose received OPEN has a BGP Role capability that
    /// cannot be used: the role is unknown), `malformed_mp_attribute` (a repeated or malformed
    /// MP_REACH_NLRI/MP_UNREACH_NLRI: nothing
    /// of the UPDATE used, see [`crate::ingest::bgp`]), `malformed_as_path` (announcements
    /// treated as withdrawn), `malformed_otc` (an Only-to-Customer attribute whose length is not
    /// 4: discarded, the routes kept), `trailing_data` (bytes after
    /// the UPDATE, ignored), `unknown_peer_type`, `too_many_peers`.
    pub label: &'static str,
    /// Details for the log.
    pub detail: String,
}

/// What messages produced, in stream order. Reuse one across calls to batch several messages;
/// the `after` positions keep the order ([`crate::pipeline::apply_batch`] follows them).
#[derive(Debug, Default)]
pub struct Output {
    /// Matched route updates, route sources to clear (positioned among them), route entries
    /// decoded, error counts by label, newest timestamp: the same shape the MRT feed hands to
    /// the pipeline.
    pub batch: Batch,
    /// The problems counted in `batch.errors`, with details.
    pub errors: Vec<MessageError>,
}

impl Output {
    /// Whether nothing was produced.
    pub fn is_empty(&self) -> bool {
        self.batch.updates.is_empty()
            && self.batch.processed == 0
            && self.batch.sources_down.is_empty()
            && self.batch.peer_roles.is_empty()
            && self.errors.is_empty()
    }

    fn error(&mut self, msg_type: MessageType, label: &'static str, detail: String) {
        *self.batch.errors.entry(label).or_insert(0) += 1;
        self.errors.push(MessageError {
            msg_type,
            label,
            detail,
        });
    }
}

/// One router's BMP session. See the module documentation.
#[derive(Debug)]
pub struct RouterSession {
    remote: SocketAddr,
    /// The OpenBMP collector that published this router's messages to Kafka
    /// ([`RouterSession::kafka`]); `None` for a TCP session.
    collector: Option<Arc<str>>,
    configured_name: Option<String>,
    sys_name: Option<String>,
    sys_descr: Option<String>,
    label: String,
    source_prefix: String,
    state: SessionState,
    termination: Option<Termination>,
    counts: MessageCounts,
    errors: BTreeMap<&'static str, u64>,
    anomalies: BTreeMap<&'static str, u64>,
    peers: Vec<PeerInfo>,
    peer_index: HashMap<PeerId, usize>,
    max_peers: usize,
    reserved_names: Arc<[String]>,
    initiated: bool,
    processed: u64,
    matched: u64,
    end_of_rib: u64,
    last_timestamp: Option<f64>,
    /// When the last message arrived (wall clock).
    last_received: Option<f64>,
}

impl RouterSession {
    /// A session for the TCP connection from `remote`; `configured_name` is the operator's name
    /// for the router, if configured.
    pub fn new(remote: SocketAddr, configured_name: Option<String>) -> Self {
        let mut s = RouterSession {
            remote,
            collector: None,
            configured_name,
            sys_name: None,
            sys_descr: None,
            label: String::new(),
            source_prefix: format!("{}/{remote}", Feed::Bmp),
            state: SessionState::Open,
            termination: None,
            counts: MessageCounts::default(),
            errors: BTreeMap::new(),
            anomalies: BTreeMap::new(),
            peers: Vec::new(),
            peer_index: HashMap::new(),
            max_peers: MAX_PEERS_PER_ROUTER,
            reserved_names: Arc::from(Vec::new()),
            initiated: false,
            processed: 0,
            matched: 0,
            end_of_rib: 0,
            last_timestamp: None,
            last_received: None,
        };
        s.refresh_label();
        s
    }

    /// A session for a router whose BMP messages an OpenBMP collector (`collector`, its admin
    /// id) published to Kafka: the same state machine as a TCP session, with route sources
    /// named `kafka/<collector>/<router>/<view>[/<instance>]` (see
    /// [`RouteSource::kafka`]) and the label `<collector>/<router>` until an Initiation names it.
    /// [`RouterSession::remote`] is the router's address with port 0.
    pub fn kafka(collector: &str, router: std::net::IpAddr) -> Self {
        let mut s = RouterSession::new(SocketAddr::new(router, 0), None);
        s.collector = Some(Arc::from(collector));
        s.source_prefix = format!("{}/{collector}/{router}", Feed::Kafka);
        s.refresh_label();
        s
    }

    /// Caps the peer table at `max_peers` (default [`MAX_PEERS_PER_ROUTER`]).
    pub fn with_max_peers(mut self, max_peers: usize) -> Self {
        self.max_peers = max_peers;
        self
    }

    /// Names bound to other routers (the configured `[[bmp.router]]` names): a sysName equal to
    /// one of them does not become this session's label (the label stays `address:port`) and
    /// is counted as `name_conflict`. A session with a configured name ignores this.
    pub fn with_reserved_names(mut self, names: Arc<[String]>) -> Self {
        self.reserved_names = names;
        self.refresh_label();
        self
    }

    /// Whether an Initiation message arrived (decoded).
    pub fn initiated(&self) -> bool {
        self.initiated
    }

    /// The router's TCP source address and port.
    pub fn remote(&self) -> SocketAddr {
        self.remote
    }

    /// Display label: the configured name, else the sysName, else `address:port`. May change
    /// once, when the Initiation arrives.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The configured name, if any.
    pub fn configured_name(&self) -> Option<&str> {
        self.configured_name.as_deref()
    }

    /// sysName from the Initiation.
    pub fn sys_name(&self) -> Option<&str> {
        self.sys_name.as_deref()
    }

    /// sysDescr from the Initiation.
    pub fn sys_descr(&self) -> Option<&str> {
        self.sys_descr.as_deref()
    }

    /// `bmp/<address:port>` (`kafka/<collector>/<address>` for [`RouterSession::kafka`]): the
    /// common start of this session's route sources.
    pub fn source_prefix(&self) -> &str {
        &self.source_prefix
    }

    /// Session state.
    pub fn state(&self) -> SessionState {
        self.state
    }

    /// The Termination message, if the router sent one.
    pub fn termination(&self) -> Option<&Termination> {
        self.termination.as_ref()
    }

    /// Messages received per type (undecodable ones included).
    pub fn counts(&self) -> &MessageCounts {
        &self.counts
    }

    /// Problems counted by label (see [`MessageError::label`]).
    pub fn errors(&self) -> &BTreeMap<&'static str, u64> {
        &self.errors
    }

    /// Protocol-sequence oddities handled without losing data, by label:
    /// `route_monitoring_without_peer_up` (peers first seen in Route Monitoring, taken as up),
    /// `route_monitoring_while_down` (Route Monitoring after a Peer Down without a new Peer Up:
    /// taken as up again), `two_byte_as_path_without_a_flag` (a 2-byte peer's AS_PATH that
    /// only reads as 2-byte, though the A flag is clear: decoded as 2-byte),
    /// `peer_up_while_up` (a new Peer Up without a Peer Down: the old session's routes were
    /// withdrawn), `peer_down_unknown_peer`, `message_after_termination` (ignored),
    /// `trailing_tlv` (TLVs after the UPDATE of a Route Monitoring message: ignored, the routes
    /// used), `name_conflict` (the sysName is another router's configured name: not used as
    /// the label). Every label is in [`ANOMALY_KINDS`].
    pub fn anomalies(&self) -> &BTreeMap<&'static str, u64> {
        &self.anomalies
    }

    /// The monitored peers, in order of first appearance.
    pub fn peers(&self) -> &[PeerInfo] {
        &self.peers
    }

    /// Peers currently up.
    pub fn peers_up(&self) -> usize {
        self.peers
            .iter()
            .filter(|p| p.state == PeerState::Up)
            .count()
    }

    /// Whether every up peer's initial tables are complete (and there is at least one peer).
    pub fn initial_tables_complete(&self) -> bool {
        let mut up = self
            .peers
            .iter()
            .filter(|p| p.state == PeerState::Up)
            .peekable();
        up.peek().is_some() && up.all(PeerInfo::initial_table_complete)
    }

    /// When the last message (of any type, well-formed or not) arrived: the `now` of the
    /// last [`RouterSession::handle_frame`].
    pub fn last_received(&self) -> Option<f64> {
        self.last_received
    }

    /// Route entries (unicast/multicast prefixes) decoded so far.
    pub fn processed(&self) -> u64 {
        self.processed
    }

    /// Route entries that matched the registry.
    pub fn matched(&self) -> u64 {
        self.matched
    }

    /// End-of-RIB markers received (any family, any view).
    pub fn end_of_rib_markers(&self) -> u64 {
        self.end_of_rib
    }

    /// Newest message timestamp seen in Route Monitoring.
    pub fn last_timestamp(&self) -> Option<f64> {
        self.last_timestamp
    }

    fn refresh_label(&mut self) {
        self.label = match (&self.configured_name, &self.sys_name) {
            (Some(n), _) => n.clone(),
            (None, Some(n)) if !n.is_empty() && !self.reserved_names.contains(n) => n.clone(),
            _ => match &self.collector {
                Some(c) => format!("{c}/{}", self.remote.ip()),
                None => self.remote.to_string(),
            },
        };
    }

    fn error(
        &mut self,
        out: &mut Output,
        msg_type: MessageType,
        label: &'static str,
        detail: String,
    ) {
        *self.errors.entry(label).or_insert(0) += 1;
        out.error(msg_type, label, detail);
    }

    fn anomaly(&mut self, label: &'static str) {
        *self.anomalies.entry(label).or_insert(0) += 1;
    }

    /// Decodes and handles one framed message (as [`super::FrameReader`] delivers it). `now`
    /// (seconds since the epoch) stands in for zero message timestamps.
    pub fn handle_frame(&mut self, frame: &[u8], registry: &Registry, now: f64, out: &mut Output) {
        self.last_received = Some(now);
        if self.state != SessionState::Open {
            let t = frame
                .get(5)
                .map_or(MessageType::Unknown, |&c| MessageType::from_code(c));
            self.counts.add(t);
            self.anomaly("message_after_termination");
            return;
        }
        match decode_message(frame) {
            Ok(msg) => self.handle_message(msg, registry, now, out),
            Err(e) => {
                let t = frame
                    .get(5)
                    .map_or(MessageType::Unknown, |&c| MessageType::from_code(c));
                self.counts.add(t);
                self.error(out, t, t.malformed_label(), e.to_string());
            }
        }
    }

    /// Handles one decoded message.
    pub fn handle_message(
        &mut self,
        msg: Message<'_>,
        registry: &Registry,
        now: f64,
        out: &mut Output,
    ) {
        self.counts.add(msg.msg_type());
        if self.state != SessionState::Open {
            self.anomaly("message_after_termination");
            return;
        }
        match msg {
            Message::Initiation(info) => {
                self.initiated = true;
                if info.sys_name.is_some() {
                    self.sys_name = info.sys_name;
                }
                if self.configured_name.is_none()
                    && self
                        .sys_name
                        .as_ref()
                        .is_some_and(|n| self.reserved_names.contains(n))
                {
                    self.anomaly("name_conflict");
                }
                if info.sys_descr.is_some() {
                    self.sys_descr = info.sys_descr;
                }
                self.refresh_label();
            }
            Message::Termination(t) => {
                self.termination = Some(t);
                self.all_peers_down(now, out);
                self.state = SessionState::Terminated;
            }
            Message::PeerUp(up) => self.peer_up(*up, now, out),
            Message::PeerDown(down) => self.peer_down(down, now, out),
            Message::RouteMonitoring(rm) => self.route_monitoring(rm, registry, now, out),
            Message::StatisticsReport(s) => {
                if let Some(&i) = self.peer_index.get(&s.peer.peer_id()) {
                    if let Some(p) = self.peers.get_mut(i) {
                        p.statistics_reports += 1;
                    }
                }
            }
            Message::RouteMirroring(_) | Message::Unknown(_) => {}
        }
    }

    /// The TCP connection closed (or is being closed: framing error, shutdown): every route of
    /// every peer of this router is withdrawn. Idempotent.
    pub fn close(&mut self, now: f64, out: &mut Output) {
        if self.state == SessionState::Open {
            self.all_peers_down(now, out);
        }
        self.state = SessionState::Closed;
    }

    fn all_peers_down(&mut self, ts: f64, out: &mut Output) {
        for p in &mut self.peers {
            if p.state == PeerState::Up {
                Self::withdraw_views(p, ts, out);
                p.state = PeerState::Down;
                p.since = ts;
                p.reset_progress();
            }
        }
    }

    fn withdraw_views(p: &PeerInfo, ts: f64, out: &mut Output) {
        for v in &p.views {
            out.batch.sources_down.push(SourceDown {
                key: v.key.clone(),
                timestamp: ts,
                after: out.batch.updates.len(),
            });
        }
    }

    /// Hands every view of `p` its role (see the module documentation of [`super`]), among the
    /// updates where the batch stands.
    fn announce_role(p: &PeerInfo, ts: f64, out: &mut Output) {
        let role = p.role();
        for v in &p.views {
            out.batch.peer_roles.push(PeerRoleSeen {
                peer: v.key.clone(),
                role,
                after: out.batch.updates.len(),
                timestamp: ts,
            });
        }
    }

    /// The index of the peer of `h`, created if new (up, since `ts`).
    fn peer_slot(
        &mut self,
        h: &PeerHeader,
        msg_type: MessageType,
        ts: f64,
        out: &mut Output,
    ) -> Option<usize> {
        let id = h.peer_id();
        if let Some(&i) = self.peer_index.get(&id) {
            return Some(i);
        }
        if self.peers.len() >= self.max_peers {
            self.error(
                out,
                msg_type,
                "too_many_peers",
                format!(
                    "peer {} AS{} not tracked: {} peers already",
                    id.address, id.asn, self.max_peers
                ),
            );
            return None;
        }
        self.peers.push(PeerInfo::new(id, h.bgp_id, ts));
        self.peer_index.insert(id, self.peers.len() - 1);
        Some(self.peers.len() - 1)
    }

    /// The index of `view` in peer `pi`'s views, created with its route source if new (and
    /// handed the peer's role then, if a Peer Up told it).
    fn view_slot(&mut self, pi: usize, view: RibView, ts: f64, out: &mut Output) -> Option<usize> {
        let p = self.peers.get(pi)?;
        if let Some(i) = p.views.iter().position(|v| v.view == view) {
            return Some(i);
        }
        let id = p.id;
        let d = id.distinguisher;
        let instance = match id.peer_type {
            PeerType::Global | PeerType::LocRib if d == 0 => None,
            PeerType::Global => Some(format!("global-rd={}", format_distinguisher(d))),
            PeerType::RdInstance | PeerType::LocRib => {
                Some(format!("rd={}", format_distinguisher(d)))
            }
            PeerType::LocalInstance => Some(format!("local=0x{d:016x}")),
            // Not reached: Route Monitoring of unknown peer types is refused.
            PeerType::Other(t) => Some(format!("type{t}=0x{d:016x}")),
        };
        let key = Arc::new(PeerKey {
            source: Arc::new(match &self.collector {
                Some(c) => RouteSource::kafka(c, self.remote.ip(), view, instance.as_deref()),
                None => RouteSource::bmp(self.remote, view, instance.as_deref()),
            }),
            address: id.address,
            asn: id.asn,
        });
        let p = self.peers.get_mut(pi)?;
        if p.peer_up.is_some() {
            out.batch.peer_roles.push(PeerRoleSeen {
                peer: key.clone(),
                role: p.role(),
                after: out.batch.updates.len(),
                timestamp: ts,
            });
        }
        p.views.push(ViewState {
            view,
            key,
            families: Vec::new(),
        });
        Some(p.views.len() - 1)
    }

    fn peer_up(&mut self, up: PeerUp, now: f64, out: &mut Output) {
        let h = up.peer;
        let ts = h.timestamp().unwrap_or(now);
        let Some(pi) = self.peer_slot(&h, MessageType::PeerUp, ts, out) else {
            return;
        };
        let Some(p) = self.peers.get_mut(pi) else {
            return;
        };
        match (&mut p.peer_up, p.state) {
            // The same BGP session announced again: routers send one Peer Up per monitored view
            // (Huawei VRP: per L flag, twice each) or per address family (Huawei's Loc-RIB:
            // one fabricated OPEN per AFI). Routes and initial-table progress stay; the
            // capabilities are merged.
            (Some(prev), PeerState::Up) if same_bgp_session(prev, &up) => {
                let role = prev.received_open.role;
                merge_peer_up(prev, up);
                if p.role() != role.role() {
                    Self::announce_role(p, ts, out);
                }
                return;
            }
            // A new BGP session without a Peer Down for the previous one: the router will
            // resend the table, and routes of the old session it does not resend are gone.
            (Some(_), PeerState::Up) => {
                Self::withdraw_views(p, ts, out);
                *self.anomalies.entry("peer_up_while_up").or_insert(0) += 1;
            }
            _ => {}
        }
        let Some(p) = self.peers.get_mut(pi) else {
            return;
        };
        // A peer known only from Route Monitoring keeps its routes and progress: they are this
        // session's.
        let new_session = p.state == PeerState::Down || p.peer_up.is_some();
        p.state = PeerState::Up;
        p.bgp_id = h.bgp_id;
        p.down_reason = None;
        let role = up.received_open.role;
        p.peer_up = Some(Box::new(up));
        if new_session {
            p.since = ts;
            p.reset_progress();
        }
        Self::announce_role(p, ts, out);
        if let RoleCapability::Invalid(why) = role {
            self.error(
                out,
                MessageType::PeerUp,
                MALFORMED_BGP_ROLE,
                format!(
                    "peer {} AS{}: BGP Role capability in its OPEN not used ({why}); its role is unknown",
                    h.address, h.asn
                ),
            );
        }
    }

    fn peer_down(&mut self, down: PeerDown, now: f64, out: &mut Output) {
        let h = down.peer;
        let ts = h.timestamp().unwrap_or(now);
        if !self.peer_index.contains_key(&h.peer_id()) {
            self.anomaly("peer_down_unknown_peer");
        }
        let Some(pi) = self.peer_slot(&h, MessageType::PeerDown, ts, out) else {
            return;
        };
        let Some(p) = self.peers.get_mut(pi) else {
            return;
        };
        if p.state == PeerState::Up {
            Self::withdraw_views(p, ts, out);
        }
        p.state = PeerState::Down;
        p.since = ts;
        p.down_reason = Some(down.reason);
        p.reset_progress();
    }

    fn route_monitoring(
        &mut self,
        rm: RouteMonitoring<'_>,
        registry: &Registry,
        now: f64,
        out: &mut Output,
    ) {
        const RM: MessageType = MessageType::RouteMonitoring;
        let h = rm.peer;
        if let PeerType::Other(code) = h.peer_type {
            self.error(
                out,
                RM,
                "unknown_peer_type",
                format!(
                    "peer type {code} (peer {} AS{}): routes not used",
                    h.address, h.asn
                ),
            );
            return;
        }
        let ts = h.timestamp().unwrap_or(now);
        let update = match split_update(rm.pdu) {
            Ok(u) => u,
            Err(e) => {
                self.error(
                    out,
                    RM,
                    e.label(),
                    format!("peer {} AS{}: {e}", h.address, h.asn),
                );
                return;
            }
        };
        let trailing = rm
            .pdu
            .get(rm.pdu.len() - update.trailing..)
            .unwrap_or_default();
        if update.trailing > 0 && is_tlv_sequence(trailing) {
            self.anomaly("trailing_tlv");
        } else if update.trailing > 0 {
            self.error(
                out,
                RM,
                "trailing_data",
                format!(
                    "peer {} AS{}: {} bytes after the UPDATE ignored",
                    h.address, h.asn, update.trailing
                ),
            );
        }
        let Some(pi) = self.peer_slot(&h, RM, ts, out) else {
            return;
        };
        let view = h.view();
        let Some(vi) = self.view_slot(pi, view, ts, out) else {
            return;
        };
        let Some(peer) = self.peers.get_mut(pi) else {
            return;
        };
        peer.route_monitoring += 1;
        let first_without_up = peer.peer_up.is_none() && peer.route_monitoring == 1;
        let was_down = peer.state == PeerState::Down;
        if was_down {
            // Routes from a peer reported down, with no Peer Up since: the router's word now
            // is that it is up (and its routes will go at the next Peer Down or session end).
            peer.state = PeerState::Up;
            peer.since = ts;
            peer.down_reason = None;
        }
        let end_of_rib = update.end_of_rib();
        if let Some(family) = end_of_rib {
            if let Some(f) = peer.family_mut(vi, family) {
                f.end_of_rib = true;
            }
        }
        if first_without_up {
            self.anomaly("route_monitoring_without_peer_up");
        }
        if was_down {
            self.anomaly("route_monitoring_while_down");
        }
        if end_of_rib.is_some() {
            self.end_of_rib += 1;
            return;
        }
        let Some(peer) = self.peers.get(pi) else {
            return;
        };

        // One pass: prefilter each prefix, build only for matches, decode the path once.
        let Some(key) = peer.views.get(vi).map(|v| v.key.clone()) else {
            return;
        };
        let legacy = h.legacy_as_path();
        let start = out.batch.updates.len();
        let mut processed = 0u64;
        // (family, announced, withdrawn) of this message; inline, no allocation.
        let mut counts: SmallVec<[(Family, u64, u64); 2]> = SmallVec::new();
        let mut path: Option<Result<Arc<AsPath>, String>> = None;
        let mut two_byte_fallback = false;
        // The Only-to-Customer attribute, read with the path (RFC 9234 §5).
        let mut otc = Otc::Absent;
        let walked = update.for_each_route(
            |f| peer.add_path(view, f),
            |n| {
                processed += 1;
                match counts.iter_mut().find(|c| c.0 == n.family) {
                    Some(c) if n.withdrawn => c.2 += 1,
                    Some(c) => c.1 += 1,
                    None => {
                        counts.push((n.family, u64::from(!n.withdrawn), u64::from(n.withdrawn)))
                    }
                }
                let Some(matched) = registry.lookup(&n.prefix) else {
                    return ControlFlow::<Infallible>::Continue(());
                };
                let change = if n.withdrawn {
                    RouteChange::Withdraw
                } else {
                    let p = path.get_or_insert_with(|| {
                        let family = update.reach_family().unwrap_or(Family::IPV4_UNICAST);
                        let add_path = peer.add_path(view, family);
                        let mut decoded = decode_as_path(update.pdu, add_path, legacy);
                        // The A flag is clear but the path does not read as 4-byte, and the
                        // peer's session is 2-byte (no 4-octet AS capability on one side): a
                        // router that forwarded the path as received and forgot the flag.
                        if !legacy
                            && matches!(decoded, Ok(None))
                            && peer.four_octet_as() == Some(false)
                        {
                            let retry = decode_as_path(update.pdu, add_path, true);
                            if matches!(retry, Ok(Some(_))) {
                                decoded = retry;
                                two_byte_fallback = true;
                            }
                        }
                        match decoded {
                            Ok(Some(p)) => {
                                otc = only_to_customer(update.attributes);
                                Ok(Arc::new(convert_path(&p).with_otc(otc.value())))
                            }
                            Ok(None) => Err("announcement without a usable AS_PATH".to_string()),
                            Err(e) => Err(format!("path attributes: {e}")),
                        }
                    });
                    match p {
                        Ok(p) => RouteChange::Announce(p.clone()),
                        // RFC 7606 treat-as-withdraw; counted below.
                        Err(_) => RouteChange::Withdraw,
                    }
                };
                out.batch.generation = registry.generation();
                out.batch.updates.push(RouteUpdate {
                    timestamp: ts,
                    peer: key.clone(),
                    prefix: n.prefix,
                    path_id: n.path_id,
                    matched,
                    change,
                });
                ControlFlow::Continue(())
            },
        );
        let sections = match walked {
            Ok(ControlFlow::Continue(s)) => s,
            Ok(ControlFlow::Break(never)) => match never {},
            Err(e) => {
                out.batch.updates.truncate(start);
                self.error(
                    out,
                    RM,
                    e.label(),
                    format!(
                        "peer {} AS{} ({view}): {e}; message skipped",
                        h.address, h.asn
                    ),
                );
                return;
            }
        };
        let matched = (out.batch.updates.len() - start) as u64;
        self.processed += processed;
        self.matched += matched;
        if processed > 0 {
            out.batch.processed += processed;
            out.batch.last_timestamp = Some(ts);
            self.last_timestamp = Some(self.last_timestamp.map_or(ts, |t| t.max(ts)));
        }
        if let Some(p) = self.peers.get_mut(pi) {
            for family in sections.families() {
                p.family_mut(vi, family);
            }
            for (family, a, w) in counts {
                if let Some(f) = p.family_mut(vi, family) {
                    f.announced += a;
                    f.withdrawn += w;
                }
            }
        }
        if two_byte_fallback {
            self.anomaly("two_byte_as_path_without_a_flag");
        }
        if otc.is_malformed() {
            self.error(
                out,
                RM,
                MALFORMED_OTC,
                format!(
                    "peer {} AS{} ({view}): Only-to-Customer attribute whose length is not 4; discarded, the routes kept",
                    h.address, h.asn
                ),
            );
        }
        if let Some(Err(detail)) = path {
            self.error(
                out,
                RM,
                "malformed_as_path",
                format!(
                    "peer {} AS{} ({view}): {detail}; its matched announcements treated as withdrawn",
                    h.address, h.asn
                ),
            );
        }
    }
}
