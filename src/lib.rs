//! # routewatch — BGP route telemetry for registered customer prefixes
//!
//! A tour of the crate, following the data (the same walk with file names is in
//! `docs/ARCHITECTURE.md`):
//!
//! 1. [`config`] reads the TOML configuration: daemon settings and the *locations* an operator
//!    registers (provider, region, prefixes, expected origin and upstream ASes). Errors name
//!    file, line, column and key.
//! 2. [`registry`] turns the locations into an immutable [`registry::Registry`] with a
//!    longest-prefix-match trie. Pure, no I/O.
//! 3. [`ingest`] reads BGP data — MRT dumps ([`ingest::mrt`]), BMP sessions
//!    ([`ingest::bmp`]; also raw BMP from Kafka, [`ingest::kafka`]), whose BGP messages go through one wire layer ([`ingest::bgp`]) — matches
//!    every route against the registry *before* building anything for it, and hands only
//!    matched routes on as [`model::RouteUpdate`]s in feed-neutral [`ingest::Batch`]es, each
//!    from a [`model::Feed`] and a typed [`model::RouteSource`].
//! 4. [`pipeline`] applies a batch to the [`engine`] (the single owner of route state: per
//!    (peer, announced prefix) paths, visibility, path changes, and the lifecycle of the nine
//!    anomaly kinds — origin mismatch, sub-prefix hijack, unexpected more-specific, unexpected
//!    upstream, MOAS, AS_SET origin, RPKI invalid, visibility lost, withdrawn — with flap
//!    damping; pure, no I/O), mirrors the prefixes the engine marked dirty into [`metrics`], and
//!    turns the engine's transitions into [`events`] for the log and the event store.
//! 5. [`replay`] is the one-shot command over that pipeline (its [`report`]); [`daemon`] is
//!    `routewatch run`: start-up as `start_*` steps, the engine task, the MRT feed and watched
//!    directory, the VRP file task ([`rpki`] validation), signals, [`reload`] of the
//!    configuration without losing route state.
//! 6. [`http`] serves `/metrics`, `/live`, `/ready`, the JSON API and the event history (one
//!    surface, indexed at `/api/v1/` and described by `docs/openapi.json`; every time written
//!    by [`time_fmt`], every AS path an array), and the status page for people (`/`,
//!    [`http::status_page`]);
//!    [`dns`] adds AS and router names to events and API answers without ever making the
//!    engine or a handler wait; [`notify`] sends anomaly openings and resolves to webhooks
//!    (generic JSON, Slack-compatible) from bounded per-target queues.
#![forbid(unsafe_code)]

pub mod build_info;
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
pub mod notify;
pub mod pipeline;
pub mod registry;
pub mod reload;
pub mod replay;
pub mod report;
pub mod rpki;
pub mod runbook;
pub mod systemd;
pub mod time_fmt;
pub mod util;
