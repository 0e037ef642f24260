//! `GET /api/v1/events`: the stored events, newest first, with cursor pagination.
//!
//! | parameter | value | meaning |
//! |---|---|---|
//! | `since` | seconds since the epoch (`1700000000`, `1700000000.5`) or RFC 3339 (`2024-01-01T00:00:00Z`, `2024-01-01T01:00:00+01:00`) | BGP time ≥ since |
//! | `until` | the same; later than `since` | BGP time < until |
//! | `kind` | an event kind (`anomaly_opened`, `path_change`, `roa_changed`, …) or an anomaly kind (`origin_mismatch`, …) | that kind only |
//! | `location` | a location name | that location only |
//! | `prefix` | a registered prefix, host bits zero (`203.0.113.0/24`) | that registered prefix only |
//! | `severity` | `information`, `warning`, `error`, `critical` | that severity **or higher** |
//! | `limit` | 1..=1000, default 100 | page size |
//! | `cursor` | `next_cursor` of the previous page | the next (older) page |
//!
//! The answer is `{"events": [...], "next_cursor": "..." | null, "next": "/api/v1/events?...
//! &cursor=..." | null}` (`next` repeats the request's other parameters); times are RFC 3339 UTC
//! strings and AS paths arrays, as everywhere in the API. Any bad parameter — an
//! unknown name, a value that does not parse or is out of range, an empty value or a parameter
//! given twice — is `400 {"error": "...", "parameter": "<name>"}`. A store that cannot be read
//! (not created yet) is `503 {"error": "..."}`.

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use crate::events::store::{Cursor, EventQuery, EventReader, KindFilter, StoreError, MAX_LIMIT};
use crate::events::Severity;

/// The route's path.
pub const EVENTS_PATH: &str = "/api/v1/events";

/// The parameters `/api/v1/events` accepts.
pub const PARAMETERS: [&str; 8] = [
    "since", "until", "kind", "location", "prefix", "severity", "limit", "cursor",
];

/// A router serving [`EVENTS_PATH`] from `reader`; merge it into the main router
/// (`router.merge(events_router(reader))`).
pub fn events_router(reader: EventReader) -> Router {
    Router::new()
        .route(EVENTS_PATH, get(get_events))
        .with_state(reader)
}

/// `/api/v1/events`.
#[derive(Debug, Serialize)]
pub struct EventsBody {
    /// The page, newest first.
    pub events: Vec<crate::events::Event>,
    /// The cursor of the next (older) page.
    pub next_cursor: Option<String>,
    /// The path of the next page.
    pub next: Option<String>,
}

/// A rejected parameter: the body of the 400 answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ParamError {
    /// What is wrong, in plain words.
    pub error: String,
    /// The parameter's name (`query` when the query string itself cannot be read).
    pub parameter: String,
}

impl ParamError {
    pub(crate) fn new(parameter: &str, error: impl Into<String>) -> ParamError {
        ParamError {
            error: error.into(),
            parameter: parameter.to_string(),
        }
    }
}

/// The handler of [`EVENTS_PATH`] (the query runs on a blocking thread).
pub async fn get_events(State(reader): State<EventReader>, uri: Uri) -> Response {
    let pairs = match super::pages::query_pairs(&uri) {
        Ok(p) => p,
        Err(e) => return bad_request(e),
    };
    let query = match parse_query(&pairs) {
        Ok(q) => q,
        Err(e) => return bad_request(e),
    };
    match tokio::task::spawn_blocking(move || reader.query(&query)).await {
        Ok(Ok(page)) => {
            // The other parameters as given (checked above), for the next page's link.
            let keep: Vec<(&str, String)> = pairs
                .iter()
                .filter(|(name, _)| name != "cursor")
                .map(|(name, value)| (name.as_str(), value.clone()))
                .collect();
            let next = page
                .next_cursor
                .as_deref()
                .map(|c| super::pages::next_link(EVENTS_PATH, &keep, c));
            Json(EventsBody {
                events: page.events,
                next_cursor: page.next_cursor,
                next,
            })
            .into_response()
        }
        Ok(Err(e @ StoreError::Unavailable(_))) => error(StatusCode::SERVICE_UNAVAILABLE, &e),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, &e),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(serde_json::json!({"error": "the query did not finish"})),
        )
            .into_response(),
    }
}

fn bad_request(e: ParamError) -> Response {
    (StatusCode::BAD_REQUEST, Json(e)).into_response()
}

fn error(status: StatusCode, e: &StoreError) -> Response {
    (status, Json(serde_json::json!({"error": e.to_string()}))).into_response()
}

/// Turns decoded query pairs into an [`EventQuery`], validating every parameter.
pub fn parse_query(pairs: &[(String, String)]) -> Result<EventQuery, ParamError> {
    let mut q = EventQuery::default();
    for (param, value) in checked_params(pairs, &PARAMETERS)? {
        let bad = |msg: String| ParamError::new(param, msg);
        match param {
            "since" => q.since = Some(parse_time(value).map_err(bad)?),
            "until" => q.until = Some(parse_time(value).map_err(bad)?),
            "kind" => {
                q.kind = Some(KindFilter::parse(value).ok_or_else(|| {
                    bad(format!(
                        "unknown kind '{}'; accepted: {}",
                        printable(value),
                        KindFilter::names().join(", ")
                    ))
                })?)
            }
            "location" => q.location = Some(parse_location(value).map_err(bad)?),
            "prefix" => q.prefix = Some(crate::config::parse_prefix(value).map_err(bad)?),
            "severity" => {
                q.severity = Some(Severity::parse(value).ok_or_else(|| {
                    bad(format!(
                        "unknown severity '{}'; accepted: information, warning, error, critical \
                         (events of that severity or higher are returned)",
                        printable(value)
                    ))
                })?)
            }
            "limit" => {
                q.limit = value
                    .parse::<usize>()
                    .ok()
                    .filter(|l| {
                        (1..=MAX_LIMIT).contains(l) && value.bytes().all(|b| b.is_ascii_digit())
                    })
                    .ok_or_else(|| bad(format!("must be an integer in 1..={MAX_LIMIT}")))?
            }
            "cursor" => {
                q.cursor = Some(Cursor::decode(value).ok_or_else(|| {
                    bad("not a cursor returned by this API (use next_cursor as given)".into())
                })?)
            }
            _ => {}
        }
    }
    if let (Some(s), Some(u)) = (q.since, q.until) {
        if u <= s {
            return Err(ParamError::new("until", "must be later than since"));
        }
    }
    Ok(q)
}

/// A location name given as a filter: 1 to 128 printable characters.
pub(crate) fn parse_location(value: &str) -> Result<String, String> {
    if value.is_empty() || value.chars().count() > 128 || value.chars().any(char::is_control) {
        return Err("must be 1 to 128 printable characters".into());
    }
    Ok(value.to_string())
}

/// The query's pairs with every name one of `accepted`, none twice and no value empty (else
/// the first problem, naming the parameter), as (accepted name, value).
pub(crate) fn checked_params<'a>(
    pairs: &'a [(String, String)],
    accepted: &[&'static str],
) -> Result<Vec<(&'static str, &'a str)>, ParamError> {
    let mut out: Vec<(&'static str, &'a str)> = Vec::with_capacity(pairs.len());
    for (name, value) in pairs {
        let Some(&param) = accepted.iter().find(|p| **p == name.as_str()) else {
            return Err(ParamError::new(
                name,
                format!(
                    "unknown parameter '{}'; accepted: {}",
                    printable(name),
                    accepted.join(", ")
                ),
            ));
        };
        if out.iter().any(|(p, _)| *p == param) {
            return Err(ParamError::new(param, "given more than once"));
        }
        if value.is_empty() {
            return Err(ParamError::new(param, "empty value"));
        }
        out.push((param, value.as_str()));
    }
    Ok(out)
}

/// Echoes a client's text back safely: at most 64 characters, control characters escaped.
pub(crate) fn printable(s: &str) -> String {
    let mut out: String = s.chars().take(64).flat_map(char::escape_debug).collect();
    if s.chars().count() > 64 {
        out.push('…');
    }
    out
}

/// A time: seconds since the epoch (`1700000000`, `1700000000.25`) or RFC 3339.
pub fn parse_time(s: &str) -> Result<f64, String> {
    let hint = "expected seconds since the epoch or an RFC 3339 time like 2024-01-01T00:00:00Z";
    if s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return s
            .parse::<f64>()
            .ok()
            .filter(|t| t.is_finite())
            .ok_or_else(|| format!("'{}': {hint}", printable(s)));
    }
    crate::time_fmt::parse_rfc3339(s).ok_or_else(|| format!("'{}': {hint}", printable(s)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_seconds() {
        assert_eq!(parse_time("1700000000"), Ok(1_700_000_000.0));
        assert_eq!(parse_time("1700000000.5"), Ok(1_700_000_000.5));
        assert_eq!(parse_time("0"), Ok(0.0));
        for bad in ["-1", "1e9", "inf", "NaN", "1.2.3", ".", " 1", "0x10"] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn printable_escapes_and_shortens() {
        assert_eq!(printable("a\nb"), "a\\nb");
        assert_eq!(printable(&"x".repeat(100)).chars().count(), 65);
    }
}
