//! Feed-independent route model: what every feed (MRT, BMP, later RIS Live) normalises to.
//!
//! A [`RouteUpdate`] exists only for routes that matched the registry: feeds run the
//! longest-prefix match first and carry the [`Match`] along, so the engine never looks up twice
//! and unrelated routes never cost an allocation.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use ipnet::IpNet;

use crate::registry::Match;

/// A feed: where routes come from (the `feed` label of metrics and events).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Feed {
    /// MRT files (RIB dumps and update files, configured or from the watched directory).
    Mrt,
    /// BMP sessions from routers.
    Bmp,
    /// The RIPE RIS Live WebSocket stream (`[ris-live]`).
    RisLive,
    /// Raw BMP in OpenBMP's format from Kafka topics (`[[kafka]]`).
    Kafka,
}

impl Feed {
    /// Every feed this build knows.
    pub const ALL: [Feed; 4] = [Feed::Mrt, Feed::Bmp, Feed::RisLive, Feed::Kafka];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Feed::Mrt => "mrt",
            Feed::Bmp => "bmp",
            Feed::RisLive => "ris-live",
            Feed::Kafka => "kafka",
        }
    }
}

impl fmt::Display for Feed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A BMP RIB view (RFC 7854 §4.2 L flag, RFC 8671 O flag, RFC 9069 Loc-RIB): each view of a
/// peer is its own route source, so they never overwrite each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RibView {
    /// Adj-RIB-In before inbound policy (L flag clear).
    AdjRibInPre,
    /// Adj-RIB-In after inbound policy (L flag set).
    AdjRibInPost,
    /// Adj-RIB-Out before outbound policy (O flag set, L clear; RFC 8671).
    AdjRibOutPre,
    /// Adj-RIB-Out after outbound policy (O and L set; RFC 8671).
    AdjRibOutPost,
    /// The router's Loc-RIB (peer type 3; RFC 9069).
    LocRib,
}

impl RibView {
    /// The label used in route sources and the API.
    pub fn label(self) -> &'static str {
        match self {
            RibView::AdjRibInPre => "adj-in-pre",
            RibView::AdjRibInPost => "adj-in-post",
            RibView::AdjRibOutPre => "adj-out-pre",
            RibView::AdjRibOutPost => "adj-out-post",
            RibView::LocRib => "loc-rib",
        }
    }
}

impl fmt::Display for RibView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// A route source: routes of two sources never overwrite each other.
///
/// For MRT it is the feed alone (every collector peer is told apart by its address and AS); for
/// BMP it is the router's TCP address and port, the view, and the instance (peer distinguisher)
/// when there is one. Its text (`mrt`, `bmp/192.0.2.1:17001/adj-in-pre/rd=64499:74`) is made
/// once, is what events and the API show, and is what it compares, hashes and sorts by; it
/// reads as that text (`Deref<Target = str>`).
#[derive(Debug, Clone)]
pub struct RouteSource {
    feed: Feed,
    router: Option<SocketAddr>,
    view: Option<RibView>,
    text: Box<str>,
}

impl RouteSource {
    /// The source of a feed with no routers (MRT).
    pub fn new(feed: Feed) -> RouteSource {
        RouteSource {
            feed,
            router: None,
            view: None,
            text: feed.as_str().into(),
        }
    }

    /// A BMP router's view; `instance` is the peer distinguisher's text (`rd=64499:74`,
    /// `local=0x…`, `global-rd=…`), if any.
    pub fn bmp(router: SocketAddr, view: RibView, instance: Option<&str>) -> RouteSource {
        let mut text = format!("{}/{router}/{}", Feed::Bmp, view.label());
        if let Some(i) = instance {
            text.push('/');
            text.push_str(i);
        }
        RouteSource {
            feed: Feed::Bmp,
            router: Some(router),
            view: Some(view),
            text: text.into(),
        }
    }

    /// A router's view as an OpenBMP collector published it to Kafka: named by the collector
    /// (its admin id) and the router's address from the OpenBMP header, never by the Kafka
    /// partition, so a router keeps its routes' identity whichever instance of a consumer group
    /// reads it (text `kafka/<collector>/<router address>/<view>[/<instance>]`). `router()` is
    /// the router's address with port 0.
    pub fn kafka(
        collector: &str,
        router: IpAddr,
        view: RibView,
        instance: Option<&str>,
    ) -> RouteSource {
        let mut text = format!("{}/{collector}/{router}/{}", Feed::Kafka, view.label());
        if let Some(i) = instance {
            text.push('/');
            text.push_str(i);
        }
        RouteSource {
            feed: Feed::Kafka,
            router: Some(SocketAddr::new(router, 0)),
            view: Some(view),
            text: text.into(),
        }
    }

    /// A RIS Live collector (`rrc00`): its peers are told apart by address and AS, as in the
    /// collector's MRT dumps, so a baseline RIB of that collector read with this source and the
    /// live stream hold the same routes (text `ris-live/rrc00`).
    pub fn ris_live(collector: &str) -> RouteSource {
        RouteSource {
            feed: Feed::RisLive,
            router: None,
            view: None,
            text: format!("{}/{collector}", Feed::RisLive).into(),
        }
    }

    /// The feed.
    pub fn feed(&self) -> Feed {
        self.feed
    }

    /// The BMP router's TCP address and port.
    pub fn router(&self) -> Option<SocketAddr> {
        self.router
    }

    /// The BMP view.
    pub fn view(&self) -> Option<RibView> {
        self.view
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl std::ops::Deref for RouteSource {
    type Target = str;
    fn deref(&self) -> &str {
        &self.text
    }
}

impl AsRef<str> for RouteSource {
    fn as_ref(&self) -> &str {
        &self.text
    }
}

impl PartialEq for RouteSource {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for RouteSource {}

impl Hash for RouteSource {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.text.hash(state);
    }
}

impl PartialOrd for RouteSource {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for RouteSource {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.text.cmp(&other.text)
    }
}

impl fmt::Display for RouteSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A BGP peer's role relative to the router that receives its routes (RFC 9234 §4.1, the BGP
/// Role capability's values: the role the peer announces for itself in its OPEN).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PeerRole {
    /// The peer is the receiver's provider (capability value 0).
    Provider,
    /// The peer is a route server, the receiver its client (1).
    Rs,
    /// The peer is a route-server client, the receiver its route server (2).
    RsClient,
    /// The peer is the receiver's customer (3).
    Customer,
    /// The peer is a lateral peer (4).
    Peer,
}

impl PeerRole {
    /// Every role, in capability-value order.
    pub const ALL: [PeerRole; 5] = [
        PeerRole::Provider,
        PeerRole::Rs,
        PeerRole::RsClient,
        PeerRole::Customer,
        PeerRole::Peer,
    ];

    /// The role of a BGP Role capability value (RFC 9234 §4.1); `None` for an unassigned one.
    pub fn from_capability(value: u8) -> Option<PeerRole> {
        PeerRole::ALL.get(usize::from(value)).copied()
    }

    /// The stable name, as written in the configuration (`provider`, `rs`, `rs-client`,
    /// `customer`, `peer`).
    pub const fn as_str(self) -> &'static str {
        match self {
            PeerRole::Provider => "provider",
            PeerRole::Rs => "rs",
            PeerRole::RsClient => "rs-client",
            PeerRole::Customer => "customer",
            PeerRole::Peer => "peer",
        }
    }

    /// Parses a name written by [`PeerRole::as_str`].
    pub fn parse(s: &str) -> Option<PeerRole> {
        PeerRole::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl fmt::Display for PeerRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Identity of a BGP peer as seen by one route source.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerKey {
    /// Route source (shared by the peers of one MRT file or one BMP view).
    pub source: Arc<RouteSource>,
    /// Peer address.
    pub address: IpAddr,
    /// Peer AS.
    pub asn: u32,
}

impl fmt::Display for PeerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} AS{} ({})", self.address, self.asn, self.source)
    }
}

/// The origin of a route as far as the AS path tells.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Origin {
    /// The last AS of the path.
    Asn(u32),
    /// The path ends in an AS_SET (aggregation): the origin is ambiguous.
    Set(Box<[u32]>),
    /// Empty AS path (a route originated inside the peer's own AS, seen over iBGP).
    Unknown,
}

/// An AS path reduced to what the detectors need, compared as a whole for path changes
/// (prepending counts as a change). Equality and hashing cover `asns`, `origin`, `otc` and
/// whether the path had an AS_SET.
#[derive(Debug, Clone)]
pub struct AsPath {
    /// AS_SEQUENCE members in order (an AS_SET that is not last is kept as its sorted members;
    /// confederation segments are left out, as RFC 5065 excludes them from the path).
    pub asns: Box<[u32]>,
    /// The origin.
    pub origin: Origin,
    /// The id the engine's path table last gave this allocation (see [`AsPath::intern_hint`]).
    hint: InternHint,
    /// [`AsPath::upstream`], found once when the path is made: the detectors ask for it on
    /// every route, and reading it here spares a visit to `asns` (another allocation).
    upstream: Option<u32>,
    /// The route's Only-to-Customer attribute (RFC 9234 §5, type 35), when it carries one. Part
    /// of equality and hashing (two routes with the same AS path but different OTC are
    /// different paths to the path table), but not of the path text.
    pub otc: Option<u32>,
    /// The AS_PATH had an AS_SET segment, wherever it was: also when `asns` holds its members
    /// (one before the end, or a final one of one member, which names the origin). ASPA path
    /// verification needs it: a path with any AS_SET is Invalid
    /// (draft-ietf-sidrops-aspa-verification §6). Part of equality and hashing, not of the
    /// path text.
    as_set: bool,
}

/// Where a path table found a path last time; only a hint, checked before use.
#[derive(Debug)]
struct InternHint(AtomicU32);

impl Clone for InternHint {
    fn clone(&self) -> Self {
        InternHint(AtomicU32::new(self.0.load(Ordering::Relaxed)))
    }
}

impl PartialEq for AsPath {
    fn eq(&self, other: &Self) -> bool {
        self.asns == other.asns
            && self.origin == other.origin
            && self.otc == other.otc
            && self.as_set == other.as_set
    }
}

impl Eq for AsPath {}

impl Hash for AsPath {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.asns.hash(state);
        self.origin.hash(state);
        self.otc.hash(state);
        self.as_set.hash(state);
    }
}

impl AsPath {
    /// A path from its parts.
    pub fn new(asns: Box<[u32]>, origin: Origin) -> AsPath {
        let upstream = match origin {
            Origin::Asn(o) => asns.iter().rev().copied().find(|&a| a != o),
            _ => None,
        };
        let as_set = matches!(origin, Origin::Set(_));
        AsPath {
            asns,
            origin,
            hint: InternHint(AtomicU32::new(u32::MAX)),
            upstream,
            otc: None,
            as_set,
        }
    }

    /// The same path, marked as having had an AS_SET segment (see [`AsPath::has_as_set`]):
    /// for a decoder that folded a set's members into `asns`.
    pub fn with_as_set(mut self) -> AsPath {
        self.as_set = true;
        self
    }

    /// Whether the AS_PATH had an AS_SET segment anywhere (a final set of several members is
    /// also the [`Origin::Set`]; other sets are folded into `asns`).
    #[inline]
    pub fn has_as_set(&self) -> bool {
        self.as_set
    }

    /// The same path carrying the Only-to-Customer attribute `otc`.
    pub fn with_otc(mut self, otc: Option<u32>) -> AsPath {
        self.otc = otc;
        self
    }

    /// Whether the AS paths (AS numbers and origin) are the same, whatever the OTC attribute:
    /// what a path change is.
    pub fn same_path(&self, other: &AsPath) -> bool {
        self.asns == other.asns && self.origin == other.origin && self.as_set == other.as_set
    }

    /// A plain AS_SEQUENCE path; the last AS is the origin.
    pub fn from_sequence(asns: &[u32]) -> AsPath {
        let origin = asns.last().map_or(Origin::Unknown, |&o| Origin::Asn(o));
        AsPath::new(asns.into(), origin)
    }

    /// The id a path table recorded with [`AsPath::set_intern_hint`] (`u32::MAX`: none). Feeds
    /// hand the same `Arc` for a path they saw before, so the engine finds its interned id here
    /// instead of hashing the path and probing a table of hundreds of thousands of paths; it
    /// checks that the id still holds this very allocation, so a stale hint (another engine,
    /// a freed id) only costs the slow path.
    #[inline]
    pub fn intern_hint(&self) -> u32 {
        self.hint.0.load(Ordering::Relaxed)
    }

    /// Records the id a path table gave this path.
    #[inline]
    pub fn set_intern_hint(&self, id: u32) {
        self.hint.0.store(id, Ordering::Relaxed);
    }

    /// The origin ASN when it is a single AS.
    #[inline]
    pub fn origin_asn(&self) -> Option<u32> {
        match self.origin {
            Origin::Asn(a) => Some(a),
            _ => None,
        }
    }

    /// The AS adjacent to the origin (prepending of the origin skipped); `None` when the path is
    /// only the origin (a direct peer) or the origin is not a single AS.
    #[inline]
    pub fn upstream(&self) -> Option<u32> {
        self.upstream
    }
}

impl fmt::Display for AsPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for a in self.asns.iter() {
            if !first {
                f.write_str(" ")?;
            }
            write!(f, "{a}")?;
            first = false;
        }
        if let Origin::Set(set) = &self.origin {
            if !first {
                f.write_str(" ")?;
            }
            f.write_str("{")?;
            for (i, a) in set.iter().enumerate() {
                if i > 0 {
                    f.write_str(",")?;
                }
                write!(f, "{a}")?;
            }
            f.write_str("}")?;
        }
        Ok(())
    }
}

/// In JSON (the API, the replay report) a path is an array read left to right, from the peer
/// to the origin: a number per AS of the AS_SEQUENCE, and a final AS_SET (aggregation, an
/// ambiguous origin) as a nested array of its members: `[3356, 174, [64500, 64501]]` for the
/// text `3356 174 {64500,64501}`. An empty path is `[]`.
impl serde::Serialize for AsPath {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let set = match &self.origin {
            Origin::Set(members) => Some(members),
            _ => None,
        };
        let mut seq = s.serialize_seq(Some(self.asns.len() + usize::from(set.is_some())))?;
        for a in self.asns.iter() {
            seq.serialize_element(a)?;
        }
        if let Some(members) = set {
            seq.serialize_element(&members[..])?;
        }
        seq.end()
    }
}

impl AsPath {
    /// Reads the text [`AsPath`]'s `Display` writes (`3356 174 {64500,64501}`), as the event
    /// store keeps it; `None` for anything else (a set that is not last, an empty set, a word
    /// that is not an AS number).
    pub fn from_text(text: &str) -> Option<AsPath> {
        let mut asns = Vec::new();
        let mut set: Option<Box<[u32]>> = None;
        for word in text.split_ascii_whitespace() {
            if set.is_some() {
                return None;
            }
            match word.strip_prefix('{').and_then(|w| w.strip_suffix('}')) {
                Some(members) => {
                    let members: Option<Vec<u32>> =
                        members.split(',').map(|m| m.parse().ok()).collect();
                    set = Some(members?.into());
                }
                None => asns.push(word.parse().ok()?),
            }
        }
        Some(match set {
            Some(members) => AsPath::new(asns.into(), Origin::Set(members)),
            None => AsPath::from_sequence(&asns),
        })
    }
}

/// `#[serde(with = "crate::model::path_text")]` on an `Option<String>` holding an AS path's text
/// (the event store's form): written in [`AsPath`]'s JSON shape (`null` when absent, or for
/// text that is not a path), read from that shape or from the text.
pub mod path_text {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::{AsPath, Origin};

    /// Writes the path as an array.
    pub fn serialize<S: Serializer>(text: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
        text.as_deref().and_then(AsPath::from_text).serialize(s)
    }

    /// One element of the JSON shape: an AS, or the final AS_SET.
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Element {
        Asn(u32),
        Set(Vec<u32>),
    }

    /// Either form of a path.
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Form {
        Text(String),
        Array(Vec<Element>),
    }

    /// Reads `null`, the array or the text.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        Ok(match Option::<Form>::deserialize(d)? {
            None => None,
            Some(Form::Text(t)) => Some(t),
            Some(Form::Array(elements)) => {
                let mut asns = Vec::new();
                let mut origin = None;
                for e in elements {
                    match e {
                        Element::Asn(a) => asns.push(a),
                        Element::Set(m) => origin = Some(Origin::Set(m.into())),
                    }
                }
                Some(match origin {
                    Some(o) => AsPath::new(asns.into(), o).to_string(),
                    None => AsPath::from_sequence(&asns).to_string(),
                })
            }
        })
    }
}

/// What happened to a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteChange {
    /// Announced (or replaced) with this path.
    Announce(Arc<AsPath>),
    /// Withdrawn.
    Withdraw,
}

/// One matched route update, normalised from any feed.
#[derive(Debug, Clone)]
pub struct RouteUpdate {
    /// BGP time of the update (seconds since the epoch).
    pub timestamp: f64,
    /// The peer.
    pub peer: Arc<PeerKey>,
    /// The announced (or withdrawn) prefix.
    pub prefix: IpNet,
    /// ADD-PATH path identifier (0 without ADD-PATH).
    pub path_id: u32,
    /// The registry match, computed by the feed's prefilter.
    pub matched: Match,
    /// Announcement or withdrawal.
    pub change: RouteChange,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn as_paths_in_json_are_arrays_with_a_final_set_nested() {
        let seq = AsPath::from_sequence(&[3356, 174, 64500]);
        let set = AsPath::new(
            vec![3356, 174].into(),
            Origin::Set(vec![64500, 64501].into()),
        );
        let empty = AsPath::from_sequence(&[]);
        for (path, json, text) in [
            (&seq, "[3356,174,64500]", "3356 174 64500"),
            (&set, "[3356,174,[64500,64501]]", "3356 174 {64500,64501}"),
            (&empty, "[]", ""),
        ] {
            assert_eq!(serde_json::to_string(path).ok().as_deref(), Some(json));
            assert_eq!(path.to_string(), text);
            assert_eq!(AsPath::from_text(text).as_ref(), Some(path), "{text}");
        }
        for bad in ["{1,2} 3", "1 {}", "1 x", "1 {2,x}", "-1"] {
            assert_eq!(AsPath::from_text(bad), None, "{bad}");
        }
    }

    #[test]
    fn stored_path_text_is_written_as_the_array_and_read_back() {
        #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
        struct E {
            #[serde(with = "path_text")]
            p: Option<String>,
        }
        for (text, json) in [
            (Some("64500 64496"), r#"{"p":[64500,64496]}"#),
            (Some("1 {2,3}"), r#"{"p":[1,[2,3]]}"#),
            (None, r#"{"p":null}"#),
        ] {
            let e = E {
                p: text.map(String::from),
            };
            assert_eq!(serde_json::to_string(&e).ok().as_deref(), Some(json));
            let back: Option<E> = serde_json::from_str(json).ok();
            assert_eq!(back, Some(e));
        }
        let from_text: Option<E> = serde_json::from_str(r#"{"p":"1 2"}"#).ok();
        assert_eq!(from_text.and_then(|e| e.p).as_deref(), Some("1 2"));
    }
}
