//! HTTP: `/metrics`, `/live`, `/ready` and the JSON API under `/api/v1/`.
//!
//! Handlers never touch route state directly: API queries go to the engine task over its command
//! channel and wait for the answer (the engine stays the single owner, with no locks), and
//! `/metrics` renders the metric set, which is safe to read concurrently.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::ingest::bmp::listener::{RouterBoard, RouterStatus};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

pub mod events;
pub mod names;

use crate::engine::{AnomalySummary, PrefixSummary};

/// A question for the engine task.
#[derive(Debug)]
pub enum Query {
    /// Every registered prefix.
    Prefixes(oneshot::Sender<Vec<PrefixSummary>>),
    /// Every anomaly instance.
    Anomalies(oneshot::Sender<Vec<AnomalySummary>>),
    /// Engine and feed status.
    Status(oneshot::Sender<StatusBody>),
}

/// `/api/v1/status`.
#[derive(Debug, Clone, Serialize)]
pub struct StatusBody {
    /// Version of this build.
    pub version: &'static str,
    /// Whether `/ready` is 200.
    pub ready: bool,
    /// Registered locations.
    pub locations: usize,
    /// Registered prefixes.
    pub registered_prefixes: usize,
    /// Routes held.
    pub tracked_routes: u64,
    /// Peers holding matched routes.
    pub peers: usize,
    /// MRT files processed so far.
    pub mrt_files_processed: u64,
    /// Connected BMP routers (and configured ones that are down).
    pub routers: Vec<RouterStatus>,
}

/// What `/ready` waits for: the configured MRT files, and every connected BMP router's initial
/// tables (End-of-RIB from each peer, or the configured timeout).
#[derive(Debug, Default)]
pub struct Readiness {
    /// Set once the configured MRT files are in (the listeners are bound before anything runs).
    pub mrt_loaded: AtomicBool,
    /// The BMP routers, when the listener runs.
    pub bmp: Option<Arc<RouterBoard>>,
}

impl Readiness {
    /// Whether `/ready` is 200.
    pub fn is_ready(&self) -> bool {
        self.mrt_loaded.load(Ordering::Acquire)
            && self.bmp.as_ref().is_none_or(|b| b.initial_tables_in())
    }
}

/// Shared state of the HTTP handlers.
#[derive(Clone)]
pub struct AppState {
    /// Renders the metrics exposition.
    pub metrics: crate::metrics::Exporter,
    /// Readiness.
    pub ready: Arc<Readiness>,
    /// The engine task's query channel.
    pub queries: mpsc::Sender<Query>,
    /// Configuration reload requests (`POST /-/reload`).
    pub reloads: mpsc::Sender<crate::reload::ReloadRequest>,
    /// DNS names for the answers, read from its cache only (disabled: no names).
    pub dns: crate::dns::Enricher,
}

/// The router with every endpoint.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/live", get(|| async { "ok\n" }))
        .route("/ready", get(ready))
        .route("/api/v1/prefixes", get(prefixes))
        .route("/api/v1/anomalies", get(anomalies))
        .route("/api/v1/status", get(status))
        .route("/-/reload", axum::routing::post(reload))
        .with_state(state)
}

async fn metrics(State(s): State<AppState>) -> Response {
    // Rendering 10,000 prefixes is ~200,000 lines: do it off the async workers.
    let body = tokio::task::spawn_blocking(move || s.metrics.render())
        .await
        .unwrap_or_default();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

async fn ready(State(s): State<AppState>) -> Response {
    if s.ready.is_ready() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: initial data still loading\n",
        )
            .into_response()
    }
}

async fn ask<T: Serialize>(
    s: &AppState,
    make: impl FnOnce(oneshot::Sender<T>) -> Query,
    wrap: impl FnOnce(T) -> serde_json::Value,
) -> Response {
    let (tx, rx) = oneshot::channel();
    if s.queries.send(make(tx)).await.is_err() {
        return unavailable();
    }
    match rx.await {
        Ok(v) => Json(wrap(v)).into_response(),
        Err(_) => unavailable(),
    }
}

fn unavailable() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(serde_json::json!({"error": "engine is shutting down"})),
    )
        .into_response()
}

/// `POST /-/reload`: from loopback only (the configuration is the operator's, and a reload is
/// not free); answers when the reload is done, 200 with what it did, or 400 with the error
/// (the previous configuration stays in force).
async fn reload(
    State(s): State<AppState>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
) -> Response {
    if !peer.ip().is_loopback() && !is_mapped_loopback(peer.ip()) {
        return (
            StatusCode::FORBIDDEN,
            Json(serde_json::json!({"error": "POST /-/reload is accepted from loopback only"})),
        )
            .into_response();
    }
    let (tx, rx) = oneshot::channel();
    let req = crate::reload::ReloadRequest {
        trigger: crate::reload::Trigger::Http,
        reply: Some(tx),
    };
    if s.reloads.send(req).await.is_err() {
        return unavailable();
    }
    match rx.await {
        Ok(outcome) if outcome.ok => Json(outcome).into_response(),
        Ok(outcome) => (StatusCode::BAD_REQUEST, Json(outcome)).into_response(),
        Err(_) => unavailable(),
    }
}

fn is_mapped_loopback(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
        std::net::IpAddr::V4(_) => false,
    }
}
// Names are added here, from the DNS cache (never waiting), after the engine answered.

async fn prefixes(State(s): State<AppState>) -> Response {
    ask(
        &s,
        Query::Prefixes,
        |v| serde_json::json!({ "prefixes": names::name_prefixes(&s.dns, v) }),
    )
    .await
}

async fn anomalies(State(s): State<AppState>) -> Response {
    ask(
        &s,
        Query::Anomalies,
        |v| serde_json::json!({ "anomalies": names::name_anomalies(&s.dns, v) }),
    )
    .await
}

async fn status(State(s): State<AppState>) -> Response {
    ask(&s, Query::Status, |mut v: StatusBody| {
        names::name_routers(&s.dns, &mut v.routers);
        serde_json::to_value(v).unwrap_or_default()
    })
    .await
}
