//! The API's own description: the index at `/api/v1/` (also answered at `/api`, `/api/` and
//! `/api/v1`), a JSON list of the endpoints with their parameters and links, and the OpenAPI
//! 3.0 document at `/api/v1/openapi.json` — the hand-written `docs/openapi.json`, embedded at
//! build time, which `tests/openapi_conformance.rs` holds the running server to. An unknown path
//! under `/api/` is a JSON 404 pointing at the index.
//!
//! The index's parameter names are the ones the handlers accept (the same constants), and a
//! unit test checks them against the OpenAPI document, so the three cannot drift apart.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::{Json, Router};
use serde::Serialize;

use super::{events, pages};

/// The index's path.
pub const INDEX_PATH: &str = "/api/v1/";
/// The OpenAPI document's path.
pub const OPENAPI_PATH: &str = "/api/v1/openapi.json";
/// The OpenAPI document (`docs/openapi.json`).
pub const OPENAPI_JSON: &str = include_str!("../../docs/openapi.json");

/// One parameter of an endpoint.
#[derive(Debug, Clone, Serialize)]
pub struct ParameterDoc {
    /// Its name in the query string.
    pub name: &'static str,
    /// What it does and what it takes.
    pub description: &'static str,
}

/// One endpoint.
#[derive(Debug, Clone, Serialize)]
pub struct EndpointDoc {
    /// Its path.
    pub path: &'static str,
    /// The HTTP method.
    pub method: &'static str,
    /// Where to get it (the path, as a link relative to the server).
    pub link: &'static str,
    /// What it answers.
    pub description: &'static str,
    /// The query parameters it accepts (any other is a 400).
    pub parameters: Vec<ParameterDoc>,
}

/// `/api/v1/`.
#[derive(Debug, Clone, Serialize)]
pub struct ApiIndex {
    /// `routewatch`.
    pub name: &'static str,
    /// Version of this build.
    pub version: &'static str,
    /// The OpenAPI document.
    pub openapi: &'static str,
    /// How the answers are written.
    pub conventions: Conventions,
    /// The endpoints this server answers.
    pub endpoints: Vec<EndpointDoc>,
}

/// What holds for every answer.
#[derive(Debug, Clone, Serialize)]
pub struct Conventions {
    /// How times are written.
    pub times: &'static str,
    /// How AS paths are written.
    pub as_paths: &'static str,
    /// Paging.
    pub paging: &'static str,
    /// Error answers.
    pub errors: &'static str,
    /// Authentication.
    pub authentication: &'static str,
}

fn describe(name: &'static str) -> ParameterDoc {
    let description = match name {
        "location" => "a location name: only its registered prefixes (1 to 128 characters)",
        "prefix" => "a registered prefix with host bits zero (203.0.113.0/24): only that prefix",
        "kind" => {
            "an anomaly kind (origin_mismatch, subprefix_hijack, unexpected_more_specific, \
                   unexpected_upstream, moas, as_set_origin, rpki_invalid, visibility_lost, \
                   withdrawn): only that kind"
        }
        "open" => {
            "true: open instances (opened and not resolved, waiting out the hold-down \
                   included); false: instances below min-peers, not opened"
        }
        "state" => "pending, open or resolving: only that lifecycle phase",
        "limit" => "page size, 1 to 1000 (default 100)",
        "cursor" => "next_cursor of the previous page",
        "since" => "only events at or after this BGP time (RFC 3339 or epoch seconds)",
        "until" => "only events before this BGP time (RFC 3339 or epoch seconds)",
        "severity" => "information, warning, error or critical: that severity or higher",
        _ => "",
    };
    ParameterDoc { name, description }
}

fn endpoint(
    path: &'static str,
    description: &'static str,
    parameters: &[&'static str],
) -> EndpointDoc {
    EndpointDoc {
        path,
        method: "GET",
        link: path,
        description,
        parameters: parameters.iter().map(|&p| describe(p)).collect(),
    }
}

impl ApiIndex {
    /// The index of a server with (`events`) or without the event history.
    pub fn new(events: bool) -> ApiIndex {
        let mut endpoints = vec![
            endpoint(INDEX_PATH, "this index", &[]),
            endpoint(OPENAPI_PATH, "the OpenAPI 3.0 document of this API", &[]),
            endpoint(
                pages::PREFIXES,
                "the registered prefixes: visibility, origins, sample AS paths, more-specifics \
                 and anomaly instances, in registry order",
                &pages::PREFIXES_PARAMETERS,
            ),
            endpoint(
                pages::ANOMALIES,
                "the anomaly instances (pending, open, resolving), in (kind, registered prefix, \
                 announced prefix, ASN) order",
                &pages::ANOMALIES_PARAMETERS,
            ),
            endpoint(
                "/api/v1/status",
                "version, readiness, registry size, routes, peers, feeds and BMP routers",
                &[],
            ),
        ];
        if events {
            endpoints.push(endpoint(
                events::EVENTS_PATH,
                "the event history, newest first",
                &events::PARAMETERS,
            ));
        }
        ApiIndex {
            name: "routewatch",
            version: env!("CARGO_PKG_VERSION"),
            openapi: OPENAPI_PATH,
            conventions: Conventions {
                times: "RFC 3339 UTC strings (2024-01-01T00:00:00Z; fractional seconds only \
                        when the time has them)",
                as_paths: "arrays from the peer to the origin: a number per AS, a final AS_SET \
                           as a nested array ([3356, 174, [64500, 64501]])",
                paging: "lists answer next_cursor and next (the path of the next page, with the \
                         same parameters); both null on the last page",
                errors: "JSON {\"error\"}; a bad parameter is 400 {\"error\", \"parameter\"}; \
                         401 without a valid bearer token when tokens are configured; 503 \
                         (Retry-After) when busy or shutting down",
                authentication: "Authorization: Bearer <token> on every /api/ path when \
                                 [http] token-file is set",
            },
            endpoints,
        }
    }
}

/// The index (four paths), the OpenAPI document, and the JSON 404 of the rest of `/api/`.
pub fn router(index: ApiIndex) -> Router {
    let index = std::sync::Arc::new(index);
    let answer = move || {
        let index = index.clone();
        async move { Json(index.as_ref().clone()) }
    };
    Router::new()
        .route("/api", get(answer.clone()))
        .route("/api/", get(answer.clone()))
        .route("/api/v1", get(answer.clone()))
        .route(INDEX_PATH, get(answer))
        .route(OPENAPI_PATH, get(openapi))
        .route("/api/{*rest}", any(not_found))
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI_JSON).into_response()
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(serde_json::json!({
            "error": format!("no such API endpoint; the endpoints are listed at {INDEX_PATH}")
        })),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn document() -> Value {
        serde_json::from_str(OPENAPI_JSON).unwrap_or_else(|e| panic!("docs/openapi.json: {e}"))
    }

    /// Every endpoint of the index is in the OpenAPI document with the same parameters, and
    /// the document has no other path.
    #[test]
    fn the_index_and_the_openapi_document_agree() {
        let doc = document();
        assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
        let paths = doc["paths"].as_object().unwrap_or_else(|| panic!("paths"));
        let index = ApiIndex::new(true);
        let mut listed: Vec<&str> = index.endpoints.iter().map(|e| e.path).collect();
        let mut documented: Vec<&str> = paths.keys().map(String::as_str).collect();
        listed.sort_unstable();
        documented.sort_unstable();
        assert_eq!(listed, documented);
        for e in &index.endpoints {
            assert!(!e.description.is_empty());
            let op = &paths[e.path]["get"];
            let mut params: Vec<&str> = op["parameters"]
                .as_array()
                .map(|ps| {
                    ps.iter()
                        .filter(|p| p["in"] == "query")
                        .filter_map(|p| p["name"].as_str())
                        .collect()
                })
                .unwrap_or_default();
            let mut mine: Vec<&str> = e.parameters.iter().map(|p| p.name).collect();
            params.sort_unstable();
            mine.sort_unstable();
            assert_eq!(mine, params, "{}", e.path);
            assert!(
                e.parameters.iter().all(|p| !p.description.is_empty()),
                "{}",
                e.path
            );
            for status in ["200", "401", "503"] {
                assert!(op["responses"][status].is_object(), "{} {status}", e.path);
            }
        }
        assert_eq!(
            doc["components"]["securitySchemes"]["bearerAuth"]["scheme"],
            "bearer"
        );
    }

    /// The kinds and states the document lists are the ones the handlers accept.
    #[test]
    fn the_document_lists_every_kind_and_state() {
        use crate::engine::{AnomalyKind, AnomalyPhase};
        let doc = document();
        let kinds: Vec<&str> = doc["components"]["schemas"]["AnomalyKind"]["enum"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let want: Vec<&str> = AnomalyKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(kinds, want);
        let states: Vec<&str> = doc["components"]["schemas"]["AnomalyState"]["enum"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let want: Vec<&str> = AnomalyPhase::ALL.iter().map(|p| p.as_str()).collect();
        assert_eq!(states, want);
    }
}
