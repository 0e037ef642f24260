//! HTTP: `/metrics`, `/live`, `/ready`, the JSON API under `/api/v1/` and the status page `/`
//! ([`status_page`], behind the API's token and concurrency cap). The API's index is at
//! `/api/v1/` (also `/api`, `/api/`, `/api/v1`) and its OpenAPI document at
//! `/api/v1/openapi.json` ([`index`]); times are RFC 3339 UTC strings ([`crate::time_fmt`]) and
//! AS paths arrays ([`crate::model::AsPath`]) in every answer.
//!
//! Handlers never touch route state directly: API queries go to the engine task over its command
//! channel and wait for the answer (the engine stays the single owner, with no locks), and
//! `/metrics` renders the metric set, which is safe to read concurrently.
//!
//! `/api/*` is behind `api_guard`: the bearer token when `[http] token-file` is set (401
//! otherwise), then a cap on API requests in progress (`[http] max-api-requests`; beyond it 503
//! with `Retry-After`). `/metrics`, `/live` and `/ready` pass neither, so they are answered while
//! the API is saturated. The lists (`/api/v1/prefixes`, `/api/v1/anomalies`) are paged and
//! filtered ([`pages`]): the engine builds only the requested page, and the JSON is written on a
//! blocking thread. An unknown path under `/api/` is a JSON 404. The listener itself
//! (connection cap, timeouts, TLS) is [`server`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::ingest::bmp::listener::{RouterBoard, RouterStatus};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot, Semaphore};

pub mod auth;
pub mod events;
pub mod index;
pub mod metrics;
pub mod names;
pub mod pages;
pub mod runbook;
pub mod server;
pub mod status_page;
pub mod tls;

use crate::engine::{AnomalyFilter, AnomalyKey, AnomalySummary, Page, PrefixFilter, PrefixSummary};
use crate::registry::PrefixId;

/// A question for the engine task.
#[derive(Debug)]
pub enum Query {
    /// A page of registered prefixes: at most `limit` from id `from` on.
    Prefixes {
        /// The first prefix id.
        from: PrefixId,
        /// Page size.
        limit: usize,
        /// Which prefixes.
        filter: PrefixFilter,
        /// The answer.
        reply: oneshot::Sender<Page<PrefixSummary, PrefixId>>,
    },
    /// A page of anomaly instances: at most `limit` after `after`, in key order.
    Anomalies {
        /// The last key of the previous page.
        after: Option<AnomalyKey>,
        /// Page size.
        limit: usize,
        /// Which instances.
        filter: AnomalyFilter,
        /// The answer.
        reply: oneshot::Sender<Page<AnomalySummary, AnomalyKey>>,
    },
    /// Engine and feed status.
    Status(oneshot::Sender<StatusBody>),
    /// What the status page (`/`) shows.
    StatusPage(oneshot::Sender<status_page::Snapshot>),
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
    /// With `[ris-live]`: set once its baseline RIB files are in (the stream's connection is
    /// not waited for: a third-party service being down is an alert, not a reason to restart).
    pub ris_live_baseline: Option<AtomicBool>,
}

impl Readiness {
    /// Whether `/ready` is 200.
    pub fn is_ready(&self) -> bool {
        self.mrt_loaded.load(Ordering::Acquire)
            && self.bmp.as_ref().is_none_or(|b| b.initial_tables_in())
            && self
                .ris_live_baseline
                .as_ref()
                .is_none_or(|b| b.load(Ordering::Acquire))
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
    /// Bearer tokens for `/api/*` and `POST /-/reload` (`None`: none asked for).
    pub tokens: Option<auth::Tokens>,
    /// API requests in progress at most (`[http] max-api-requests`).
    pub api_permits: Arc<Semaphore>,
    /// The listener's metrics.
    pub http_metrics: metrics::HttpMetrics,
}

/// The router with every endpoint; `/api/v1/events` too when `events` is given.
pub fn router(state: AppState, events: Option<crate::events::store::EventReader>) -> Router {
    let page = status_page::router(state.clone(), events.clone());
    let index = index::ApiIndex::new(events.is_some());
    let mut api = Router::new()
        .route("/api/v1/prefixes", get(prefixes))
        .route("/api/v1/anomalies", get(anomalies))
        .route("/api/v1/status", get(status))
        .with_state(state.clone())
        .merge(index::router(index));
    if let Some(reader) = events {
        api = api.merge(events::events_router(reader));
    }
    let api = api.layer(axum::middleware::from_fn_with_state(
        state.clone(),
        api_guard,
    ));
    Router::new()
        .route("/metrics", get(metrics))
        .route("/live", get(|| async { "ok\n" }))
        .route("/ready", get(ready))
        .route("/runbook", get(runbook::runbook))
        .route("/-/reload", axum::routing::post(reload))
        .with_state(state)
        .merge(api)
        .merge(page)
}

/// In front of `/api/*`: the bearer token (when tokens are configured), then a permit of the
/// API's concurrency cap, held while the request is handled.
async fn api_guard(
    State(s): State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if let Some(denied) = check_token(&s, &req) {
        return denied;
    }
    let Ok(permit) = s.api_permits.clone().try_acquire_owned() else {
        s.http_metrics.request_rejected("api_busy");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "1")],
            Json(serde_json::json!({
                "error": "the API is busy (too many requests in progress); retry shortly"
            })),
        )
            .into_response();
    };
    let response = next.run(req).await;
    drop(permit);
    response
}

/// 401 (counted) unless tokens are off or the request carries one of them.
fn check_token<B>(s: &AppState, req: &axum::http::Request<B>) -> Option<Response> {
    let tokens = s.tokens.as_ref()?;
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes());
    if tokens.authorizes(presented) {
        return None;
    }
    s.http_metrics.request_rejected("unauthorized");
    Some(
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer realm=\"routewatch\"")],
            Json(serde_json::json!({
                "error": "a bearer token is required (Authorization: Bearer <token>)"
            })),
        )
            .into_response(),
    )
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

/// Asks the engine task: `query` built around the reply channel, then its answer; `None` when the
/// engine task is gone (shutting down).
pub(crate) async fn ask<T>(
    s: &AppState,
    query: impl FnOnce(oneshot::Sender<T>) -> Query,
) -> Option<T> {
    let (tx, rx) = oneshot::channel();
    s.queries.send(query(tx)).await.ok()?;
    rx.await.ok()
}

fn unavailable() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(serde_json::json!({"error": "engine is shutting down"})),
    )
        .into_response()
}

/// `POST /-/reload`: without tokens configured, from loopback only (the configuration is the
/// operator's, and a reload is not free); with tokens, from any address with a valid token
/// (loopback too). Answers when the reload is done, 200 with what it did, or 400 with the
/// error (the previous configuration stays in force).
async fn reload(
    State(s): State<AppState>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
    req: axum::extract::Request,
) -> Response {
    if s.tokens.is_some() {
        if let Some(denied) = check_token(&s, &req) {
            return denied;
        }
    } else if !peer.ip().is_loopback() && !is_mapped_loopback(peer.ip()) {
        s.http_metrics.request_rejected("forbidden");
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
// Names are added here, from the DNS cache (never waiting), after the engine answered; the
// JSON is written on a blocking thread (a page of 1,000 prefixes is megabytes).

async fn prefixes(State(s): State<AppState>, uri: axum::http::Uri) -> Response {
    let (req, filter) = match pages::prefixes_request(&uri) {
        Ok(r) => r,
        Err(e) => return pages::bad_request(e),
    };
    let from = match &req.cursor {
        Some(c) => match pages::decode_prefix_cursor(c) {
            Some(id) => id,
            None => return pages::bad_request(pages::bad_cursor()),
        },
        None => 0,
    };
    let limit = req.limit;
    let query = |reply| Query::Prefixes {
        from,
        limit,
        filter,
        reply,
    };
    let Some(page) = ask(&s, query).await else {
        return unavailable();
    };
    let dns = s.dns.clone();
    pages::json_off_task(move || {
        let next_cursor = page.next.map(pages::encode_prefix_cursor);
        pages::PrefixesBody {
            next: next_cursor
                .as_deref()
                .map(|c| req.next_link(pages::PREFIXES, c)),
            prefixes: names::name_prefixes(&dns, page.items),
            next_cursor,
        }
    })
    .await
}

async fn anomalies(State(s): State<AppState>, uri: axum::http::Uri) -> Response {
    let (req, filter) = match pages::anomalies_request(&uri) {
        Ok(r) => r,
        Err(e) => return pages::bad_request(e),
    };
    let after = match &req.cursor {
        Some(c) => match pages::decode_anomaly_cursor(c) {
            Some(k) => Some(k),
            None => return pages::bad_request(pages::bad_cursor()),
        },
        None => None,
    };
    let limit = req.limit;
    let query = |reply| Query::Anomalies {
        after,
        limit,
        filter,
        reply,
    };
    let Some(page) = ask(&s, query).await else {
        return unavailable();
    };
    let dns = s.dns.clone();
    pages::json_off_task(move || {
        let next_cursor = page.next.as_ref().map(pages::encode_anomaly_cursor);
        pages::AnomaliesBody {
            next: next_cursor
                .as_deref()
                .map(|c| req.next_link(pages::ANOMALIES, c)),
            anomalies: names::name_anomalies(&dns, page.items),
            next_cursor,
        }
    })
    .await
}

async fn status(State(s): State<AppState>, uri: axum::http::Uri) -> Response {
    // No parameters: anything given is refused, as on the lists.
    if let Err(e) =
        pages::query_pairs(&uri).and_then(|p| events::checked_params(&p, &[]).map(|_| ()))
    {
        return pages::bad_request(e);
    }
    match ask(&s, Query::Status).await {
        Some(mut v) => {
            names::name_routers(&s.dns, &mut v.routers);
            Json(v).into_response()
        }
        None => unavailable(),
    }
}
