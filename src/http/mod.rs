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
    /// DNS names for the answers, read from its cache only (disabled: no names).
    pub dns: crate::resolver::Enricher,
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

// Names are added here, from the DNS cache (never waiting), after the engine answered.

async fn prefixes(State(s): State<AppState>) -> Response {
    ask(&s, Query::Prefixes, |mut v| {
        crate::enrich::name_prefixes(&s.dns, &mut v);
        serde_json::json!({ "prefixes": v })
    })
    .await
}

async fn anomalies(State(s): State<AppState>) -> Response {
    ask(&s, Query::Anomalies, |mut v| {
        crate::enrich::name_anomalies(&s.dns, &mut v);
        serde_json::json!({ "anomalies": v })
    })
    .await
}

async fn status(State(s): State<AppState>) -> Response {
    ask(&s, Query::Status, |mut v: StatusBody| {
        crate::enrich::name_routers(&s.dns, &mut v.routers);
        serde_json::to_value(v).unwrap_or_default()
    })
    .await
}
