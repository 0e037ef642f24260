//! BMP ingest (RFC 7854, with RFC 8671 Adj-RIB-Out and RFC 9069 Loc-RIB): the pure part.
//!
//! No sockets, no async: the listener owns the TCP connections and drives these pieces, which
//! are deterministic functions of the bytes they are given (and so are tested byte by byte and
//! on recorded router streams).
//!
//! ```text
//!  TCP reads ──► framing::FrameReader::feed   6-byte common header checked (version 3, length in
//!                   │                           [6, max_frame]) before any body byte is buffered;
//!                   │                           a FrameError ends the session
//!                   ▼ complete messages (borrowed)
//!               session::RouterSession::handle_frame
//!                   ├─ message::decode_message  bounds-checked BMP decoding (per-peer header, Peer
//!                   │                           Up with both OPENs' capabilities, Peer Down, stats,
//!                   │                           Initiation / Termination TLVs)
//!                   ├─ bgp::Update              the shared UPDATE walker: prefixes with per-family
//!                   │                           ADD-PATH, End-of-RIB; registry.lookup before
//!                   │                           building anything
//!                   ├─ bgp::decode_as_path      bgpkit-parser parse_bgp_message, A flag → 2/4-byte
//!                   │                           ASNs; once per message, only for matched routes
//!                   ▼
//!               session::Output { batch: ingest::Batch (updates, sources_down), errors }  (stream order kept)
//!  TCP close ──► RouterSession::close           every route of every peer withdrawn
//! ```
//!
//! A listener loop, in outline:
//!
//! ```no_run
//! # use routewatch::ingest::bmp::{FrameReader, Output, RouterSession, DEFAULT_MAX_FRAME};
//! # fn demo(registry: &routewatch::registry::Registry, engine: &mut routewatch::engine::Engine,
//! #         reads: Vec<Vec<u8>>, now: f64) {
//! let mut frames = FrameReader::new(DEFAULT_MAX_FRAME);
//! let mut session = RouterSession::new("192.0.2.1:17001".parse().unwrap(), None);
//! for chunk in reads {
//!     let mut out = Output::default();
//!     let framed = frames.feed(&chunk, |frame| session.handle_frame(frame, registry, now, &mut out));
//!     if framed.is_err() {
//!         // log and count the `FrameError::label()`; the session ends here
//!         session.close(now, &mut out);
//!     }
//!     routewatch::pipeline::apply_batch(engine, &out.batch); // the pipeline does this in the daemon
//!     if framed.is_err() {
//!         return;
//!     }
//! }
//! // The router closed the connection.
//! let mut out = Output::default();
//! let _cut_short = frames.finish(); // Err(FrameError::Truncated) if it stopped mid-message
//! session.close(now, &mut out);
//! routewatch::pipeline::apply_batch(engine, &out.batch);
//! # }
//! ```
//!
//! Design decisions (details in each module):
//!
//! * **Identity.** A session is one TCP connection; route sources are keyed by its source
//!   address and port plus the peer's view and instance ([`session`] documents the exact
//!   `PeerKey.source` format). The display label is the configured name, else the sysName, else
//!   `address:port`.
//! * **Capabilities.** ADD-PATH is decided per peer, view and family from the Peer Up's two
//!   OPENs (RFC 7911 directions; RFC 9069 presence for Loc-RIB); 2- vs 4-byte AS numbers from
//!   the per-peer header's A flag, which RFC 7854 makes authoritative for each message (with
//!   one fallback: a path that only reads as 2-byte, from a peer whose Peer Up shows a 2-byte
//!   session).
//! * **BGP Role (RFC 9234).** The Peer Up's received OPEN is the peer's: its BGP Role
//!   capability is the peer's role relative to the monitored router. Each Peer Up hands every
//!   view (route source) of the peer that role, or none when the capability is absent or
//!   unusable (counted as `malformed_bgp_role`), as a [`crate::ingest::batch::PeerRoleSeen`] among the
//!   batch's updates; a view first seen later gets it before its first route. The API's BMP
//!   status lists it per peer (`role`).
//! * **Failure scope.** Framing errors end the session (the stream cannot be resynchronised);
//!   a message that cannot be decoded is counted and skipped; a Peer Down is never refused.
//!   Nothing panics on any input.
//! * **Routes.** Unicast and multicast IPv4/IPv6 only, as in the MRT feed; other families'
//!   End-of-RIB markers still count for readiness. Route Mirroring is counted and ignored.

pub mod framing;
pub mod listener;
pub mod message;
pub mod metrics;
pub mod session;

#[cfg(test)]
pub(crate) mod tests;

pub use crate::ingest::bgp::Family;
pub use framing::{FrameError, FrameReader, DEFAULT_MAX_FRAME};
pub use message::{decode_message, Message, MessageType, PeerHeader, PeerId, PeerType, RibView};
pub use session::{
    FamilyState, MessageCounts, MessageError, Output, PeerInfo, PeerState, RouterSession,
    SessionState, ViewState,
};
