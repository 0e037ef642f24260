//! Feeds: read BGP data, match it against the registry, hand matched routes to the engine.
//!
//! Each feed is an I/O edge: it decodes, prefilters with [`crate::registry::Registry::lookup`]
//! and produces batches; it holds no route state.

pub mod batch;
pub mod bgp;
pub mod bmp;
pub mod kafka;
pub mod mrt;
pub mod ris_live;

pub use batch::{Batch, SourceDown};
