//! `GET /api/v1/events`: the stored events, newest first, with cursor pagination.
//!
//! | parameter | value | meaning |
//! |---|---|---|
//! | `since` | seconds since the epoch (`1700000000`, `1700000000.5`) or RFC 3339 (`2024-01-01T00:00:00Z`, `2024-01-01T01:00:00+01:00`) | BGP time ≥ since |
//! | `until` | the same; later than `since` | BGP time < until |
//! | `kind` | an event kind (`anomaly_opened`, `path_change`, …) or an anomaly kind (`origin_mismatch`, …) | that kind only |
//! | `location` | a location name | that location only |
//! | `prefix` | a registered prefix, host bits zero (`203.0.113.0/24`) | that registered prefix only |
//! | `severity` | `information`, `warning`, `error`, `critical` | that severity **or higher** |
//! | `limit` | 1..=1000, default 100 | page size |
//! | `cursor` | `next_cursor` of the previous page | the next (older) page |
//!
//! The answer is `{"events": [...], "next_cursor": "..." | null}`. Any bad parameter — an
//! unknown name, a value that does not parse or is out of range, an empty value or a parameter
//! given twice — is `400 {"error": "...", "parameter": "<name>"}`. A store that cannot be read
//! (not created yet) is `503 {"error": "..."}`.

use axum::extract::{Query, State};
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
    let pairs = match Query::<Vec<(String, String)>>::try_from_uri(&uri) {
        Ok(Query(p)) => p,
        Err(e) => {
            return bad_request(ParamError::new(
                "query",
                format!("unreadable query string: {e}"),
            ))
        }
    };
    let query = match parse_query(&pairs) {
        Ok(q) => q,
        Err(e) => return bad_request(e),
    };
    match tokio::task::spawn_blocking(move || reader.query(&query)).await {
        Ok(Ok(page)) => Json(page).into_response(),
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
            "location" => {
                if value.chars().count() > 128 || value.chars().any(char::is_control) {
                    return Err(bad("must be 1 to 128 printable characters".into()));
                }
                q.location = Some(value.to_string());
            }
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

/// Echoes a client's text back safely: at most 64 characters, control characters escaped.
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
    parse_rfc3339(s).ok_or_else(|| format!("'{}': {hint}", printable(s)))
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)` (RFC 3339; `t`/space separator and `z`
/// accepted) into seconds since the epoch. Times before 1970 are refused.
pub fn parse_rfc3339(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let part = b.get(from..from + len)?;
        if !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(part).ok()?.parse().ok()
    };
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&month)
        || day < 1
        || day > month_days[(month - 1) as usize]
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut i = 19;
    let mut frac = 0.0;
    if b[i] == b'.' {
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return None;
        }
        frac = format!("0.{}", std::str::from_utf8(&b[start..i]).ok()?)
            .parse()
            .ok()?;
    }
    let offset = match b.get(i..)? {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (h, m) = (num(i + 1, 2)?, num(i + 4, 2)?);
            if h > 23 || m > 59 {
                return None;
            }
            let o = h * 3600 + m * 60;
            if *sign == b'-' {
                -o
            } else {
                o
            }
        }
        _ => return None,
    };
    // Days from the civil date (Howard Hinnant's algorithm), proleptic Gregorian.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    // A leap second (:60) counts as the last second of the minute.
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second.min(59) - offset;
    (secs >= 0).then_some(secs as f64 + frac)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_times() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0.0));
        assert_eq!(parse_rfc3339("2024-01-01T00:00:00Z"), Some(1_704_067_200.0));
        assert_eq!(parse_rfc3339("2024-01-01t00:00:00z"), Some(1_704_067_200.0));
        assert_eq!(parse_rfc3339("2024-01-01 00:00:00Z"), Some(1_704_067_200.0));
        assert_eq!(
            parse_rfc3339("2024-01-01T01:00:00+01:00"),
            Some(1_704_067_200.0)
        );
        assert_eq!(
            parse_rfc3339("2023-12-31T19:00:00-05:00"),
            Some(1_704_067_200.0)
        );
        assert_eq!(
            parse_rfc3339("2024-02-29T12:00:00.25Z"),
            Some(1_709_208_000.25)
        );
        assert_eq!(parse_rfc3339("2014-05-23T06:00:00Z"), Some(1_400_824_800.0));
        assert_eq!(
            crate::report::format_time(parse_rfc3339("2100-03-01T23:59:59Z").unwrap_or(0.0)),
            "2100-03-01T23:59:59Z"
        );
        for bad in [
            "2023-02-29T00:00:00Z",
            "2024-13-01T00:00:00Z",
            "2024-00-01T00:00:00Z",
            "2024-01-32T00:00:00Z",
            "2024-01-01T24:00:00Z",
            "2024-01-01T00:60:00Z",
            "2024-01-01T00:00:00",
            "2024-01-01T00:00:00+0100",
            "2024-01-01T00:00:00+24:00",
            "2024-01-01T00:00:00.Z",
            "2024-01-01T00:00:00ZZ",
            "2024-1-01T00:00:00Z",
            "1969-12-31T23:59:59Z",
            "2024-01-01",
            "yesterday",
            "２024-01-01T00:00:00Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

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
