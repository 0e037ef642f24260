//! RIPE RIS Live: the protocol without the I/O (the connection is `daemon/ris_live.rs`).
//!
//! - [`subscriptions`]: the `ris_subscribe` filters derived from the registry — one UPDATE
//!   subscription per registered prefix with its more-specifics (prefixes covered by another
//!   registered prefix are left out), or one broad UPDATE subscription when there are more than
//!   `max-prefix-subscriptions`, plus the peers' session states and a heartbeat (the BGP
//!   KEEPALIVEs of one collector's peers, so that a healthy stream is never silent for long).
//! - [`Decoder`]: one WebSocket text frame → the [`MessageType`] it counts as, and for an UPDATE
//!   the matched routes appended to a [`Batch`]. The prefilter reads only the frame's envelope
//!   and prefix strings and looks them up in the registry; only a frame with a match is decoded
//!   in full, by bgpkit-parser's RIS Live support (AS path, origin). A `RIS_PEER_STATE` (or
//!   `STATE`) `down` is a [`SourceDown`] of that (collector, peer address, peer AS) among the
//!   batch's updates. Malformed frames are counted, never fatal. RIS Live's JSON UPDATE has no
//!   Only-to-Customer attribute (RFC 9234; only the raw UPDATE of `socketOptions.includeRaw`,
//!   not requested, would have it) and no BGP Role: these routes carry no OTC.
//! - [`Backoff`]: exponential reconnection delays with jitter.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::ingest::bgp::as_path::convert_path;
use crate::ingest::{Batch, SourceDown};
use crate::model::{AsPath, PeerKey, RouteChange, RouteSource, RouteUpdate};
use crate::registry::Registry;
use crate::util::FxMap;

pub mod metrics;

/// Values of the `type` label of `routewatch_ris_live_messages_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// A BGP UPDATE (`ris_message`, type `UPDATE`).
    Update,
    /// A peer's session state (`RIS_PEER_STATE` / `STATE`).
    PeerState,
    /// A BGP KEEPALIVE (the heartbeat subscription).
    Keepalive,
    /// A BGP OPEN or NOTIFICATION, or another `ris_message` type.
    OtherBgp,
    /// The answer to a `ping`.
    Pong,
    /// `ris_subscribe_ok` (a subscription acknowledged).
    SubscribeOk,
    /// `ris_error`: the server refused something or is about to close the connection.
    RisError,
    /// Another server message type (`ris_rrc_list`, ...).
    Other,
    /// A `ris_message` from a collector or peer outside the `host` / `peers` filters.
    Filtered,
    /// Not JSON, not a RIS Live message, or a message with bad fields (counted in
    /// `routewatch_parse_errors_total{feed="ris-live"}` too).
    Malformed,
}

impl MessageType {
    /// Every value.
    pub const ALL: [MessageType; 10] = [
        MessageType::Update,
        MessageType::PeerState,
        MessageType::Keepalive,
        MessageType::OtherBgp,
        MessageType::Pong,
        MessageType::SubscribeOk,
        MessageType::RisError,
        MessageType::Other,
        MessageType::Filtered,
        MessageType::Malformed,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageType::Update => "update",
            MessageType::PeerState => "peer_state",
            MessageType::Keepalive => "keepalive",
            MessageType::OtherBgp => "other_bgp",
            MessageType::Pong => "pong",
            MessageType::SubscribeOk => "ris_subscribe_ok",
            MessageType::RisError => "ris_error",
            MessageType::Other => "other",
            MessageType::Filtered => "filtered",
            MessageType::Malformed => "malformed",
        }
    }

    /// Whether it is data from a collector (a `ris_message`): only these prove the stream is
    /// alive (a `pong` proves only the WebSocket server is).
    pub fn is_data(self) -> bool {
        matches!(
            self,
            MessageType::Update
                | MessageType::PeerState
                | MessageType::Keepalive
                | MessageType::OtherBgp
                | MessageType::Filtered
        )
    }
}

/// Frame that is not JSON or not a RIS Live envelope (`error` label).
pub const ERROR_MALFORMED_JSON: &str = "malformed_json";
/// A `ris_message` with a bad field (peer, prefix, path, collector name).
pub const ERROR_MALFORMED_MESSAGE: &str = "malformed_message";
/// Values of the `error` label of `routewatch_parse_errors_total{feed="ris-live"}`.
pub const ERROR_LABELS: [&str; 2] = [ERROR_MALFORMED_JSON, ERROR_MALFORMED_MESSAGE];

/// What one frame was.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    /// How it is counted.
    pub kind: MessageType,
    /// The server's text for a `ris_error`, or what was wrong with a malformed frame (bounded).
    pub detail: Option<String>,
}

impl Decoded {
    fn of(kind: MessageType) -> Decoded {
        Decoded { kind, detail: None }
    }
}

/// The outer envelope: `{"type": ..., "data": ...}`.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default, borrow)]
    data: Option<&'a RawValue>,
}

/// The fields of a `ris_message` the prefilter reads (everything else is skipped unparsed).
#[derive(Deserialize)]
struct Data<'a> {
    #[serde(rename = "type", default, borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(default)]
    timestamp: Option<f64>,
    #[serde(default, borrow)]
    peer: Option<Cow<'a, str>>,
    #[serde(default, deserialize_with = "de_asn")]
    peer_asn: Option<u32>,
    #[serde(default, borrow)]
    host: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    state: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    announcements: Option<Vec<Announcement<'a>>>,
    #[serde(default, borrow)]
    withdrawals: Option<Vec<Cow<'a, str>>>,
}

#[derive(Deserialize)]
struct Announcement<'a> {
    #[serde(default, borrow)]
    prefixes: Vec<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct ErrorData<'a> {
    #[serde(default, borrow)]
    message: Option<Cow<'a, str>>,
}

/// `peer_asn` as RIS Live writes it (a string of digits) or as a number.
fn de_asn<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    struct V;
    impl serde::de::Visitor<'_> for V {
        type Value = Option<u32>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an AS number")
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
            u32::try_from(v).map(Some).map_err(E::custom)
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
            v.trim_start_matches("AS")
                .parse()
                .map(Some)
                .map_err(E::custom)
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    }
    d.deserialize_any(V)
}

/// Text of a detail, cut to a bounded length (a hostile server's strings go to the log).
fn bounded(s: &str) -> String {
    const MAX: usize = 200;
    if s.len() <= MAX {
        return s.to_string();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// The collector's short name: `rrc03.ripe.net` → `rrc03`, lower case; `None` if it is not a
/// name.
pub fn collector_name(host: &str) -> Option<String> {
    let short = host.split('.').next().unwrap_or("").to_ascii_lowercase();
    crate::config::ris_live_name(&short).then_some(short)
}

/// Interned peers are forgotten past this many (a hostile endpoint inventing peers cannot grow
/// the table without bound; forgetting costs only new allocations).
const MAX_INTERNED_PEERS: usize = 65_536;

/// The `host` and `peers` filters, applied to every message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only this collector.
    pub host: Option<String>,
    /// Only these peers (empty: all).
    pub peers: Vec<IpAddr>,
}

/// Decodes frames, interning route sources and peers across them.
#[derive(Default)]
pub struct Decoder {
    filter: Filter,
    sources: FxMap<String, Arc<RouteSource>>,
    peers: FxMap<(Arc<str>, IpAddr, u32), Arc<PeerKey>>,
    empty_path: Option<Arc<AsPath>>,
}

impl Decoder {
    /// A decoder applying `filter`.
    pub fn new(filter: Filter) -> Decoder {
        Decoder {
            filter,
            ..Decoder::default()
        }
    }

    /// The route source of `collector`.
    pub fn source(&mut self, collector: &str) -> Arc<RouteSource> {
        if let Some(s) = self.sources.get(collector) {
            return s.clone();
        }
        if self.sources.len() >= 1024 {
            self.sources.clear();
        }
        let s = Arc::new(RouteSource::ris_live(collector));
        self.sources.insert(collector.to_string(), s.clone());
        s
    }

    fn peer(&mut self, collector: &str, address: IpAddr, asn: u32) -> Arc<PeerKey> {
        let source = self.source(collector);
        let key = (Arc::<str>::from(source.as_str()), address, asn);
        if let Some(p) = self.peers.get(&key) {
            return p.clone();
        }
        if self.peers.len() >= MAX_INTERNED_PEERS {
            self.peers.clear();
        }
        let p = Arc::new(PeerKey {
            source,
            address,
            asn,
        });
        self.peers.insert(key, p.clone());
        p
    }

    /// Decodes one text frame: matched routes and sessions down go into `batch` (whose
    /// `processed`, `errors` and `last_timestamp` are counted too).
    pub fn decode(&mut self, text: &str, registry: &Registry, batch: &mut Batch) -> Decoded {
        let malformed = |batch: &mut Batch, label: &'static str, why: String| {
            *batch.errors.entry(label).or_insert(0) += 1;
            Decoded {
                kind: MessageType::Malformed,
                detail: Some(bounded(&why)),
            }
        };
        let env: Envelope = match serde_json::from_str(text) {
            Ok(e) => e,
            Err(e) => return malformed(batch, ERROR_MALFORMED_JSON, e.to_string()),
        };
        match env.kind.as_ref() {
            "ris_message" => {}
            "pong" => return Decoded::of(MessageType::Pong),
            "ris_subscribe_ok" => return Decoded::of(MessageType::SubscribeOk),
            "ris_error" => {
                let message = env
                    .data
                    .and_then(|d| serde_json::from_str::<ErrorData>(d.get()).ok())
                    .and_then(|d| d.message.map(|m| bounded(&m)));
                return Decoded {
                    kind: MessageType::RisError,
                    detail: message,
                };
            }
            _ => return Decoded::of(MessageType::Other),
        }
        let Some(raw) = env.data else {
            return malformed(
                batch,
                ERROR_MALFORMED_MESSAGE,
                "ris_message without data".into(),
            );
        };
        let data: Data = match serde_json::from_str(raw.get()) {
            Ok(d) => d,
            Err(e) => return malformed(batch, ERROR_MALFORMED_MESSAGE, e.to_string()),
        };
        let Some(collector) = data.host.as_deref().and_then(collector_name) else {
            return malformed(batch, ERROR_MALFORMED_MESSAGE, "no collector (host)".into());
        };
        let Some(peer) = data.peer.as_deref().and_then(|p| p.parse::<IpAddr>().ok()) else {
            return malformed(batch, ERROR_MALFORMED_MESSAGE, "no peer address".into());
        };
        if self.filter.host.as_ref().is_some_and(|h| *h != collector)
            || (!self.filter.peers.is_empty() && !self.filter.peers.contains(&peer))
        {
            return Decoded::of(MessageType::Filtered);
        }
        let timestamp = data.timestamp.unwrap_or(0.0);
        let kind = data.kind.as_deref().unwrap_or("");
        let Some(asn) = data.peer_asn else {
            return malformed(batch, ERROR_MALFORMED_MESSAGE, "no peer_asn".into());
        };
        match kind {
            "UPDATE" => {}
            "RIS_PEER_STATE" | "STATE" => {
                if data
                    .state
                    .as_deref()
                    .is_some_and(|s| s.eq_ignore_ascii_case("down"))
                {
                    let key = self.peer(&collector, peer, asn);
                    batch.sources_down.push(SourceDown {
                        key,
                        timestamp,
                        after: batch.updates.len(),
                    });
                    note_time(batch, timestamp);
                }
                return Decoded::of(MessageType::PeerState);
            }
            "KEEPALIVE" => return Decoded::of(MessageType::Keepalive),
            _ => return Decoded::of(MessageType::OtherBgp),
        }
        // The prefilter: the prefixes alone, looked up; nothing else is decoded unless one
        // matched.
        let announced = data
            .announcements
            .iter()
            .flatten()
            .flat_map(|a| &a.prefixes);
        let withdrawn = data.withdrawals.iter().flatten();
        let mut entries = 0u64;
        let mut any = false;
        for p in announced.chain(withdrawn) {
            if let Ok(net) = p.parse::<IpNet>() {
                entries += 1;
                any = any || registry.lookup(&net.trunc()).is_some();
            }
        }
        batch.processed += entries;
        note_time(batch, timestamp);
        if !any {
            return Decoded::of(MessageType::Update);
        }
        let elems = match bgpkit_parser::parse_ris_live_message_iter(text) {
            Ok(it) => it,
            Err(e) => return malformed(batch, ERROR_MALFORMED_MESSAGE, e.to_string()),
        };
        let key = self.peer(&collector, peer, asn);
        // One path per message (every announcement of an UPDATE shares it).
        let mut path: Option<Arc<AsPath>> = None;
        for elem in elems {
            let prefix = elem.prefix.prefix.trunc();
            let Some(matched) = registry.lookup(&prefix) else {
                continue;
            };
            let change = match elem.elem_type {
                bgpkit_parser::models::ElemType::ANNOUNCE => {
                    let p = match (&path, &elem.as_path) {
                        (Some(p), _) => p.clone(),
                        (None, Some(a)) => Arc::new(convert_path(a)),
                        (None, None) => self
                            .empty_path
                            .get_or_insert_with(|| Arc::new(AsPath::from_sequence(&[])))
                            .clone(),
                    };
                    path = Some(p.clone());
                    RouteChange::Announce(p)
                }
                bgpkit_parser::models::ElemType::WITHDRAW => RouteChange::Withdraw,
            };
            batch.updates.push(RouteUpdate {
                timestamp,
                peer: key.clone(),
                prefix,
                path_id: 0,
                matched,
                change,
            });
        }
        Decoded::of(MessageType::Update)
    }
}

fn note_time(batch: &mut Batch, t: f64) {
    if t > 0.0 && batch.last_timestamp.is_none_or(|l| t > l) {
        batch.last_timestamp = Some(t);
    }
}

/// What the subscriptions are derived from besides the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscribeSettings {
    /// The collector filter.
    pub filter: Filter,
    /// Past this many prefixes, one UPDATE subscription for everything.
    pub max_prefix_subscriptions: usize,
}

/// The registered prefixes to subscribe to: each with its more-specifics, so a prefix inside
/// another registered prefix is covered already and left out. Sorted.
pub fn subscribed_prefixes(registry: &Registry) -> Vec<IpNet> {
    let mut out: Vec<IpNet> = registry
        .prefixes()
        .iter()
        .map(|p| p.prefix)
        .filter(|p| {
            p.supernet()
                .is_none_or(|parent| registry.lookup(&parent).is_none())
        })
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// The `data` of every `ris_subscribe` to send (compact JSON with sorted keys; the same filter
/// is the same text, so a renewal can diff them and `ris_unsubscribe` the ones that went).
pub fn subscriptions(registry: &Registry, settings: &SubscribeSettings) -> BTreeSet<String> {
    let mut base = serde_json::Map::new();
    if let Some(h) = &settings.filter.host {
        base.insert("host".into(), h.clone().into());
    }
    if let [one] = settings.filter.peers.as_slice() {
        base.insert("peer".into(), one.to_string().into());
    }
    let with = |pairs: &[(&str, serde_json::Value)]| {
        let mut m = base.clone();
        for (k, v) in pairs {
            m.insert((*k).into(), v.clone());
        }
        serde_json::Value::Object(m).to_string()
    };
    let mut out = BTreeSet::new();
    let prefixes = subscribed_prefixes(registry);
    if prefixes.len() > settings.max_prefix_subscriptions {
        out.insert(with(&[("type", "UPDATE".into())]));
    } else {
        for p in prefixes {
            out.insert(with(&[
                ("type", "UPDATE".into()),
                ("prefix", p.to_string().into()),
                ("moreSpecific", true.into()),
            ]));
        }
    }
    out.insert(with(&[("type", "RIS_PEER_STATE".into())]));
    // The heartbeat: the keepalives of the configured collector and/or peer; with neither, one
    // collector's (not every collector's).
    let mut heartbeat = base.clone();
    if heartbeat.is_empty() {
        heartbeat.insert(
            "host".into(),
            crate::config::DEFAULT_RIS_LIVE_HEARTBEAT_HOST.into(),
        );
    }
    heartbeat.insert("type".into(), "KEEPALIVE".into());
    out.insert(serde_json::Value::Object(heartbeat).to_string());
    out
}

/// A client message: `{"type": kind, "data": data}` (`data` is JSON text from
/// [`subscriptions`]).
pub fn client_message(kind: &str, data: &str) -> String {
    format!("{{\"type\":\"{kind}\",\"data\":{data}}}")
}

/// RIS Live's application-level ping.
pub const PING: &str = "{\"type\":\"ping\"}";

/// Exponential backoff with jitter: each wait is drawn in [d/2, d] where d doubles from `min`
/// up to `max`; [`Backoff::reset`] after a healthy session.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
    rng: u64,
}

impl Backoff {
    /// A backoff between `min` and `max`, jitter seeded by `seed`.
    pub fn new(min: Duration, max: Duration, seed: u64) -> Backoff {
        Backoff {
            min,
            max: max.max(min),
            next: min,
            rng: seed | 1,
        }
    }

    /// The next wait.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        // xorshift64
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let frac = (self.rng >> 11) as f64 / (1u64 << 53) as f64;
        d.mul_f64(0.5 + 0.5 * frac)
    }

    /// Back to the shortest wait.
    pub fn reset(&mut self) {
        self.next = self.min;
    }
}

#[cfg(test)]
mod tests;
