//! The unit of work every feed hands to the pipeline: matched routes with the counts of what was
//! read to produce them.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::model::{PeerKey, PeerRole, RouteUpdate};

/// A group of matched routes with the counts of what was read to produce them.
#[derive(Debug, Default)]
pub struct Batch {
    /// Matched route updates, in feed order.
    pub updates: Vec<RouteUpdate>,
    /// Route sources whose session went down (a BMP Peer Down, an MRT BGP4MP STATE_CHANGE out
    /// of Established), positioned among `updates`: every route of each goes.
    pub sources_down: Vec<SourceDown>,
    /// Peers whose session came up with a known or unknown BGP Role (RFC 9234; from a BMP Peer
    /// Up's OPEN messages), positioned among `updates` like [`Batch::sources_down`].
    pub peer_roles: Vec<PeerRoleSeen>,
    /// Route entries decoded (matched or not) since the previous batch.
    pub processed: u64,
    /// Parse errors since the previous batch, by bounded error label.
    pub errors: BTreeMap<&'static str, u64>,
    /// BGP time of the newest route read.
    pub last_timestamp: Option<f64>,
    /// [`crate::registry::Registry::generation`] of the registry `updates` were matched against
    /// (0: none yet).
    pub generation: u64,
}

/// A peer's BGP Role as its session's OPEN messages told it (`None`: no Role capability).
#[derive(Debug, Clone, PartialEq)]
pub struct PeerRoleSeen {
    /// The peer.
    pub peer: Arc<PeerKey>,
    /// Its role relative to the monitored router.
    pub role: Option<PeerRole>,
    /// Position in the feed, as for [`SourceDown::after`].
    pub after: usize,
    /// When the session came up (the Peer Up's timestamp, else the time it arrived).
    pub timestamp: f64,
}

/// A route source whose BGP session went down: all its routes are withdrawn.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceDown {
    /// The route source (a peer's view).
    pub key: Arc<PeerKey>,
    /// When (the message's or record's timestamp).
    pub timestamp: f64,
    /// Position in the feed: apply after the first `after` entries of [`Batch::updates`] and
    /// before the rest.
    pub after: usize,
}
