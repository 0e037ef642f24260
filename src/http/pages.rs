//! Paging of `/api/v1/prefixes` and `/api/v1/anomalies`.
//!
//! | parameter | value | meaning |
//! |---|---|---|
//! | `limit` | 1..=1000, default 100 | page size |
//! | `cursor` | `next_cursor` of the previous page | the next page |
//!
//! The answer is `{"prefixes" | "anomalies": [...], "next_cursor": "..." | null, "next":
//! "/api/v1/...?limit=..&cursor=.." | null}`; `null` on the last page. Prefixes come in
//! registry order, anomalies in (kind, registered prefix, announced prefix, ASN) order; a cursor
//! is a position in that order, so a page after an item that went away still continues where it
//! was (a configuration reload between pages renumbers the prefixes: start again). Bad
//! parameters are `400 {"error", "parameter"}` as in `/api/v1/events`.

use std::net::IpAddr;

use axum::extract::Query;
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use super::events::{checked_params, ParamError};
use super::names::{AnomalyBody, PrefixBody};
use crate::engine::{AnomalyKey, AnomalyKind};
use crate::registry::PrefixId;

/// Default page size.
pub const DEFAULT_LIMIT: usize = 100;
/// Largest page size.
pub const MAX_LIMIT: usize = 1000;
/// The prefixes list.
pub const PREFIXES: &str = "/api/v1/prefixes";
/// The anomalies list.
pub const ANOMALIES: &str = "/api/v1/anomalies";
/// The parameters a list accepts.
pub const PARAMETERS: [&str; 2] = ["limit", "cursor"];

/// A page asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// Page size.
    pub limit: usize,
    /// Where to continue, as given.
    pub cursor: Option<String>,
}

impl PageRequest {
    /// Reads `limit` and `cursor` from the query string; anything else is refused.
    pub fn parse(uri: &Uri, _list: &str) -> Result<PageRequest, ParamError> {
        let pairs = match Query::<Vec<(String, String)>>::try_from_uri(uri) {
            Ok(Query(p)) => p,
            Err(e) => {
                return Err(ParamError::new(
                    "query",
                    format!("unreadable query string: {e}"),
                ))
            }
        };
        PageRequest::from_pairs(&pairs)
    }

    /// [`PageRequest::parse`] on decoded pairs.
    pub fn from_pairs(pairs: &[(String, String)]) -> Result<PageRequest, ParamError> {
        let mut req = PageRequest {
            limit: DEFAULT_LIMIT,
            cursor: None,
        };
        for (param, value) in checked_params(pairs, &PARAMETERS)? {
            match param {
                "limit" => {
                    req.limit = value
                        .parse::<usize>()
                        .ok()
                        .filter(|l| {
                            (1..=MAX_LIMIT).contains(l) && value.bytes().all(|b| b.is_ascii_digit())
                        })
                        .ok_or_else(|| {
                            ParamError::new(param, format!("must be an integer in 1..={MAX_LIMIT}"))
                        })?
                }
                _ => {
                    if value.len() > 256 {
                        return Err(bad_cursor());
                    }
                    req.cursor = Some(value.to_string());
                }
            }
        }
        Ok(req)
    }
}

/// The 400 of a cursor this API did not give.
pub fn bad_cursor() -> ParamError {
    ParamError::new(
        "cursor",
        "not a cursor returned by this API (use next_cursor as given)",
    )
}

/// `400` with the parameter's error.
pub fn bad_request(e: ParamError) -> Response {
    (StatusCode::BAD_REQUEST, Json(e)).into_response()
}

/// The cursor of the prefixes page starting at `id`.
pub fn encode_prefix_cursor(id: PrefixId) -> String {
    format!("p1~{id:x}")
}

/// Parses [`encode_prefix_cursor`]'s output.
pub fn decode_prefix_cursor(s: &str) -> Option<PrefixId> {
    let hex = s.strip_prefix("p1~")?;
    if hex.is_empty() || hex.len() > 8 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    PrefixId::from_str_radix(hex, 16).ok()
}

/// The cursor after the anomaly instance `k`.
pub fn encode_anomaly_cursor(k: &AnomalyKey) -> String {
    let asn = k.asn.map_or_else(|| "-".to_string(), |a| a.to_string());
    format!(
        "a1~{}~{:x}~{}~{asn}",
        k.kind.as_str(),
        k.registered,
        k.announced
    )
}

/// Parses [`encode_anomaly_cursor`]'s output.
pub fn decode_anomaly_cursor(s: &str) -> Option<AnomalyKey> {
    let mut parts = s.strip_prefix("a1~")?.split('~');
    let kind = parts.next()?;
    let kind = *AnomalyKind::ALL.iter().find(|k| k.as_str() == kind)?;
    let registered = parts.next()?;
    if registered.is_empty() || registered.len() > 8 {
        return None;
    }
    let registered = PrefixId::from_str_radix(registered, 16).ok()?;
    let announced: ipnet::IpNet = parts.next()?.parse().ok()?;
    // Only what this API writes: host bits zero, no IPv4-mapped oddities.
    if announced != announced.trunc()
        || matches!(announced.addr(), IpAddr::V6(v) if v.to_ipv4_mapped().is_some())
    {
        return None;
    }
    let asn = match parts.next()? {
        "-" => None,
        a if a.bytes().all(|b| b.is_ascii_digit()) && a.len() <= 10 => Some(a.parse().ok()?),
        _ => return None,
    };
    if parts.next().is_some() {
        return None;
    }
    Some(AnomalyKey {
        kind,
        registered,
        announced,
        asn,
    })
}

/// The path of the next page.
pub fn next_link(list: &str, limit: usize, cursor: &str) -> String {
    format!("{list}?limit={limit}&cursor={cursor}")
}

/// `/api/v1/prefixes`.
#[derive(Debug, Serialize)]
pub struct PrefixesBody {
    /// The page.
    pub prefixes: Vec<PrefixBody>,
    /// The cursor of the next page.
    pub next_cursor: Option<String>,
    /// The path of the next page.
    pub next: Option<String>,
}

/// `/api/v1/anomalies`.
#[derive(Debug, Serialize)]
pub struct AnomaliesBody {
    /// The page.
    pub anomalies: Vec<AnomalyBody>,
    /// The cursor of the next page.
    pub next_cursor: Option<String>,
    /// The path of the next page.
    pub next: Option<String>,
}

/// Builds and serialises an answer on a blocking thread: `200 application/json`.
pub async fn json_off_task<T: Serialize + 'static>(
    build: impl FnOnce() -> T + Send + 'static,
) -> Response {
    match tokio::task::spawn_blocking(move || serde_json::to_vec(&build())).await {
        Ok(Ok(body)) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        _ => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(serde_json::json!({"error": "the answer could not be built"})),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(q: &[(&str, &str)]) -> Vec<(String, String)> {
        q.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn page_parameters() {
        let d = PageRequest::from_pairs(&[]).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!((d.limit, d.cursor), (DEFAULT_LIMIT, None));
        let r = PageRequest::from_pairs(&pairs(&[("limit", "1000"), ("cursor", "p1~a")]));
        assert_eq!(r.map(|r| r.limit), Ok(1000));
        for (bad, param) in [
            (vec![("limit", "0")], "limit"),
            (vec![("limit", "1001")], "limit"),
            (vec![("limit", "+5")], "limit"),
            (vec![("limit", "")], "limit"),
            (vec![("limit", "5"), ("limit", "6")], "limit"),
            (vec![("offset", "5")], "offset"),
        ] {
            assert_eq!(
                PageRequest::from_pairs(&pairs(&bad)).map_err(|e| e.parameter),
                Err(param.to_string()),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn cursors_round_trip_and_refuse_others() {
        assert_eq!(decode_prefix_cursor(&encode_prefix_cursor(300)), Some(300));
        for k in [
            AnomalyKey {
                kind: AnomalyKind::SubprefixHijack,
                registered: 7,
                announced: "8.8.8.0/25".parse().unwrap_or_else(|_| unreachable!()),
                asn: Some(64666),
            },
            AnomalyKey {
                kind: AnomalyKind::Moas,
                registered: 0,
                announced: "2001:db8::/32".parse().unwrap_or_else(|_| unreachable!()),
                asn: None,
            },
        ] {
            assert_eq!(decode_anomaly_cursor(&encode_anomaly_cursor(&k)), Some(k));
        }
        for bad in [
            "",
            "p1~",
            "p1~zz",
            "v1.5",
            "a1~nope~0~8.8.8.0/24~-",
            "a1~moas~0~8.8.8.1/24~-",
            "a1~moas~0~8.8.8.0/24~x",
            "a1~moas~0~8.8.8.0/24~-~more",
        ] {
            assert_eq!(decode_prefix_cursor(bad), None, "{bad}");
            assert_eq!(decode_anomaly_cursor(bad), None, "{bad}");
        }
    }
}
