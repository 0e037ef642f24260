//! The unit of work every feed hands to the pipeline: matched routes with the counts of what was
//! read to produce them.

use std::collections::BTreeMap;

use crate::model::RouteUpdate;

/// A group of matched routes with the counts of what was read to produce them.
#[derive(Debug, Default)]
pub struct Batch {
    /// Matched route updates, in feed order.
    pub updates: Vec<RouteUpdate>,
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
