//! RTR, the RPKI to Router protocol (RFC 6810 version 0, RFC 8210 version 1, version 2 with
//! ASPA per draft-ietf-sidrops-8210bis-10 as StayRTR 0.5.1 speaks it): `pdu.rs` the codec,
//! `client.rs` the router side as a state machine without I/O, `metrics.rs` the subsystem's
//! metrics. The connections, timers and failover are `daemon/rtr_task.rs`.

pub mod client;
pub mod metrics;
pub mod pdu;

pub use client::{Action, Client, Close, Limits, Update, UpdateKind, DEFAULT_TIMERS};
pub use pdu::{Frame, Pdu, PduError, Timers};
