//! The BGP wire layer both feeds share: an MRT BGP4MP record and a BMP Route Monitoring message
//! both carry a BGP UPDATE, and a TABLE_DUMP_V2 RIB entry and an UPDATE both carry path
//! attributes; this module reads them once, for both.
//!
//! * [`wire`]: the bounds-checked [`Cursor`] (reads fail, never panic), length-framed records,
//!   path attributes, and the one BGP message header check ([`wire::split_message`]) that UPDATE
//!   splitting, the MRT BGP4MP reader and BMP's OPEN decoding all use;
//! * [`update`]: an UPDATE split into its sections ([`Update`]), its End-of-RIB marker, and the
//!   walk over its prefixes with per-family ADD-PATH and a visitor that can stop early
//!   ([`Update::for_each_route`]);
//! * [`as_path`]: AS_PATH segments, the engine's [`crate::model::AsPath`] built from raw or
//!   bgpkit-parser-decoded paths, and bgpkit-parser's decoding of an UPDATE's AS path;
//! * [`otc`]: the Only-to-Customer attribute (RFC 9234 §5) read from raw path attributes, for
//!   every decoder (a malformed one discarded and counted, [`MALFORMED_OTC`]).
//!
//! # Repeated or malformed MP_REACH_NLRI / MP_UNREACH_NLRI (RFC 7606)
//!
//! One behaviour for both feeds, decided in [`Update::for_each_route`]: an UPDATE in which
//! MP_REACH_NLRI or MP_UNREACH_NLRI appears more than once, or in which one of them does not
//! read (its AFI/SAFI; for a unicast/multicast IPv4/IPv6 family its next hop and reserved byte,
//! or its NLRI), is malformed as a whole: no route in it is used (nor counted as processed),
//! and it is counted as one parse error labelled `malformed_mp_attribute`
//! ([`UpdateError::MalformedMp`]).
//!
//! RFC 7606 §3 (g) makes a repeated MP_REACH_NLRI or MP_UNREACH_NLRI a "Malformed Attribute
//! List", to be handled by session reset; for a malformed MP_REACH_NLRI next hop (§7.11) and
//! NLRI that do not parse (§5.3) it allows only "session reset" or "AFI/SAFI disable" (§2). A
//! monitoring station cannot reset the session it watches, and the UPDATE's other routes are
//! exactly what such a reset would throw away, so none of them is used; treat-as-withdraw is
//! not an option, since which routes the UPDATE carries is what cannot be told. The family of
//! an MP attribute routewatch does not track (labelled unicast, VPN, EVPN, ...) is read no
//! further than its AFI/SAFI: whatever its content, disabling that family changes nothing here.
//!
//! In the MRT feed the prefilter decides this itself instead of handing the record to
//! bgpkit-parser (which would drop a malformed MP attribute and keep the rest of the UPDATE),
//! except for a record it already hands over as undecidable (NLRI that look like ADD-PATH
//! without an ADD-PATH subtype, see [`crate::ingest::mrt`]). The reference decoder
//! ([`crate::ingest::mrt::Decoder::Bgpkit`]) keeps bgpkit-parser's own handling.

pub mod as_path;
pub mod otc;
pub mod update;
pub mod wire;

#[cfg(test)]
pub(crate) mod tests;

pub use as_path::{convert_path, decode_as_path, path_from_segments};
pub use otc::{only_to_customer, Otc, MALFORMED_OTC};
pub use update::{
    split_update, Family, Nlri, Sections, Update, UpdateError, MALFORMED_MP_ATTRIBUTE,
};
pub use wire::{Cursor, WireError};
