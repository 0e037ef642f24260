//! # routewatch — BGP route telemetry for registered customer prefixes
//!
//! A tour of the crate, following the data (see also `docs/ARCHITECTURE.md`):
//!
//! 1. [`config`] reads the TOML configuration: daemon settings and the *locations* an operator
//!    registers (provider, region, prefixes, expected origin and upstream ASes). Errors name
//!    file, line and key.
//! 2. [`registry`] turns the locations into an immutable [`registry::Registry`] with a
//!    longest-prefix-match trie. Pure, no I/O.
//! 3. [`ingest`] reads BGP data (MRT dumps and BMP sessions, their BGP messages through one wire
//!    layer, [`ingest::bgp`]), matches every route against the registry *before* building
//!    anything for it, and hands only matched routes on as [`model::RouteUpdate`]s, in batches.
//! 4. [`engine`] is the single owner of route state: per (peer, announced prefix) paths,
//!    visibility, path changes and the anomaly lifecycle (origin mismatch, sub-prefix hijack,
//!    unexpected more-specific, unexpected upstream, MOAS, AS_SET origin). Pure, no I/O.
//! 5. [`metrics`] mirrors the engine's per-prefix statistics into Prometheus series, synced per
//!    batch from the prefixes the engine marked dirty; label values for prefixes come from the
//!    registry only.
//! 6. [`http`] serves `/metrics`, `/live`, `/ready` and the JSON API; [`report`] prints the
//!    one-shot replay report; [`service`] wires it all into the `run` daemon and the `replay`
//!    command; [`reload`] swaps in a new configuration (SIGHUP, `POST /-/reload`) without losing
//!    route state; [`enrich`] adds DNS names ([`resolver`]) to the daemon's events and API
//!    answers.
#![forbid(unsafe_code)]

pub mod cli;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod dns;
pub mod engine;
pub mod error;
pub mod events;
pub mod http;
pub mod ingest;
pub mod log;
pub mod metrics;
pub mod model;
pub mod pipeline;
pub mod registry;
pub mod reload;
pub mod replay;
pub mod report;
pub mod rpki;
pub mod systemd;
pub mod util;
