//! The list endpoints' parameters: paging and filters of `/api/v1/prefixes` and
//! `/api/v1/anomalies` (`/api/v1/events` has its own, in [`super::events`]).
//!
//! | parameter | lists | value | meaning |
//! |---|---|---|---|
//! | `location` | both | a location name | that location's registered prefixes only |
//! | `prefix` | both | a registered prefix, host bits zero | that registered prefix only (for anomalies: its more-specifics' too) |
//! | `kind` | anomalies | an anomaly kind (`origin_mismatch`, …) | that kind only |
//! | `open` | anomalies | `true` / `false` | opened and not resolved (waiting out the hold-down included) / held below min-peers |
//! | `state` | anomalies | `pending`, `open`, `resolving` | that lifecycle phase only |
//! | `limit` | both | 1..=1000, default 100 | page size |
//! | `cursor` | both | `next_cursor` of the previous page | the next page |
//!
//! The answer is `{"prefixes" | "anomalies": [...], "next_cursor": "..." | null, "next":
//! "/api/v1/...?...&cursor=.." | null}`; `null` on the last page; `next` repeats the request's
//! filters and limit. Prefixes come in registry order, anomalies in (kind, registered prefix,
//! announced prefix, ASN) order; a cursor is a position in that order, so a page after an item
//! that went away still continues where it was (a configuration reload between pages
//! renumbers the prefixes: start again). Bad parameters — unknown, given twice, empty, or a
//! value that does not parse — are `400 {"error", "parameter"}` as in `/api/v1/events`. A
//! location or prefix that is not registered is no error: nothing matches it.

use std::net::IpAddr;

use axum::extract::Query;
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use super::events::{checked_params, parse_location, printable, ParamError};
use super::names::{AnomalyBody, PrefixBody};
use crate::engine::{AnomalyFilter, AnomalyKey, AnomalyKind, AnomalyPhase, PrefixFilter};
use crate::registry::PrefixId;

/// Default page size.
pub const DEFAULT_LIMIT: usize = 100;
/// Largest page size.
pub const MAX_LIMIT: usize = 1000;
/// The prefixes list.
pub const PREFIXES: &str = "/api/v1/prefixes";
/// The anomalies list.
pub const ANOMALIES: &str = "/api/v1/anomalies";
/// The parameters `/api/v1/prefixes` accepts.
pub const PREFIXES_PARAMETERS: [&str; 4] = ["location", "prefix", "limit", "cursor"];
/// The parameters `/api/v1/anomalies` accepts.
pub const ANOMALIES_PARAMETERS: [&str; 7] = [
    "location", "prefix", "kind", "open", "state", "limit", "cursor",
];

/// A page asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// Page size.
    pub limit: usize,
    /// Where to continue, as given.
    pub cursor: Option<String>,
    /// The other parameters as given (filters, `limit`), repeated in the `next` link.
    pub keep: Vec<(&'static str, String)>,
}

/// The decoded pairs of a query string (400 `query` when it cannot be read).
pub fn query_pairs(uri: &Uri) -> Result<Vec<(String, String)>, ParamError> {
    match Query::<Vec<(String, String)>>::try_from_uri(uri) {
        Ok(Query(p)) => Ok(p),
        Err(e) => Err(ParamError::new(
            "query",
            format!("unreadable query string: {e}"),
        )),
    }
}

/// `/api/v1/prefixes`' parameters.
pub fn prefixes_request(uri: &Uri) -> Result<(PageRequest, PrefixFilter), ParamError> {
    let pairs = query_pairs(uri)?;
    let mut filter = PrefixFilter::default();
    let page = PageRequest::from_pairs(&pairs, &PREFIXES_PARAMETERS, |param, value| {
        match param {
            "location" => filter.location = Some(parse_location(value)?),
            "prefix" => filter.prefix = Some(parse_registered(value)?),
            _ => {}
        }
        Ok(())
    })?;
    Ok((page, filter))
}

/// `/api/v1/anomalies`' parameters.
pub fn anomalies_request(uri: &Uri) -> Result<(PageRequest, AnomalyFilter), ParamError> {
    let pairs = query_pairs(uri)?;
    let mut filter = AnomalyFilter::default();
    let page = PageRequest::from_pairs(&pairs, &ANOMALIES_PARAMETERS, |param, value| {
        match param {
            "location" => filter.location = Some(parse_location(value)?),
            "prefix" => filter.prefix = Some(parse_registered(value)?),
            "kind" => {
                filter.kind = Some(
                    AnomalyKind::ALL
                        .into_iter()
                        .find(|k| k.as_str() == value)
                        .ok_or_else(|| {
                            let names: Vec<&str> =
                                AnomalyKind::ALL.iter().map(|k| k.as_str()).collect();
                            format!(
                                "unknown anomaly kind '{}'; accepted: {}",
                                printable(value),
                                names.join(", ")
                            )
                        })?,
                )
            }
            "open" => {
                filter.open = Some(match value {
                    "true" => true,
                    "false" => false,
                    _ => return Err("must be true or false".to_string()),
                })
            }
            "state" => {
                filter.state = Some(
                    AnomalyPhase::ALL
                        .into_iter()
                        .find(|p| p.as_str() == value)
                        .ok_or_else(|| {
                            format!(
                                "unknown state '{}'; accepted: pending, open, resolving",
                                printable(value)
                            )
                        })?,
                )
            }
            _ => {}
        }
        Ok(())
    })?;
    Ok((page, filter))
}

/// A registered prefix given as a filter: address/length with the host bits zero.
fn parse_registered(value: &str) -> Result<ipnet::IpNet, String> {
    if value.trim() != value {
        return Err(format!(
            "'{}': no spaces around the prefix",
            printable(value)
        ));
    }
    crate::config::parse_prefix(value).map_err(|e| printable(&e))
}

impl PageRequest {
    /// Reads `limit` and `cursor` from decoded pairs, hands every other accepted parameter to
    /// `filter` (whose error names that parameter), and refuses anything not in `accepted`.
    pub fn from_pairs(
        pairs: &[(String, String)],
        accepted: &[&'static str],
        mut filter: impl FnMut(&'static str, &str) -> Result<(), String>,
    ) -> Result<PageRequest, ParamError> {
        let mut req = PageRequest {
            limit: DEFAULT_LIMIT,
            cursor: None,
            keep: Vec::new(),
        };
        for (param, value) in checked_params(pairs, accepted)? {
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
                        })?;
                    req.keep.push((param, value.to_string()));
                }
                "cursor" => {
                    if value.len() > 256 {
                        return Err(bad_cursor());
                    }
                    req.cursor = Some(value.to_string());
                }
                _ => {
                    filter(param, value).map_err(|e| ParamError::new(param, e))?;
                    req.keep.push((param, value.to_string()));
                }
            }
        }
        Ok(req)
    }

    /// The path of the page after this one, at `cursor`: the same parameters.
    pub fn next_link(&self, list: &str, cursor: &str) -> String {
        next_link(list, &self.keep, cursor)
    }
}

/// The path of the next page of `list`: the parameters `keep` (as given, percent-encoded) and
/// `cursor`.
pub fn next_link(list: &str, keep: &[(&str, String)], cursor: &str) -> String {
    let mut out = format!("{list}?");
    for (name, value) in keep {
        out.push_str(name);
        out.push('=');
        percent_encode(value, &mut out);
        out.push('&');
    }
    out.push_str("cursor=");
    percent_encode(cursor, &mut out);
    out
}

/// Percent-encodes a query value: everything but RFC 3986's unreserved characters and the
/// `:`, `@` and `/` a query may hold as they are (so prefixes and cursors stay readable).
fn percent_encode(s: &str, out: &mut String) {
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b':' | b'@' | b'/')
        {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
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

    fn uri(q: &[(&str, &str)]) -> Uri {
        let mut path = format!("{ANOMALIES}?");
        for (k, v) in q {
            path.push_str(k);
            path.push('=');
            percent_encode(v, &mut path);
            path.push('&');
        }
        path.parse().unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn page_parameters() {
        let (d, f) = anomalies_request(&uri(&[])).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(
            (d.limit, d.cursor, f),
            (DEFAULT_LIMIT, None, AnomalyFilter::default())
        );
        let r = anomalies_request(&uri(&[("limit", "1000"), ("cursor", "p1~a")]));
        assert_eq!(r.map(|r| r.0.limit), Ok(1000));
        let long = "x".repeat(129);
        for (bad, param) in [
            (vec![("limit", "0")], "limit"),
            (vec![("limit", "1001")], "limit"),
            (vec![("limit", "+5")], "limit"),
            (vec![("limit", "")], "limit"),
            (vec![("limit", "5"), ("limit", "6")], "limit"),
            (vec![("offset", "5")], "offset"),
            (vec![("open", "yes")], "open"),
            (vec![("open", "True")], "open"),
            (vec![("kind", "hijack")], "kind"),
            (vec![("state", "closed")], "state"),
            (vec![("prefix", "8.8.8.1/24")], "prefix"),
            (vec![("prefix", " 8.8.8.0/24")], "prefix"),
            (vec![("prefix", "nope")], "prefix"),
            (vec![("location", long.as_str())], "location"),
            (vec![("location", "a\nb")], "location"),
        ] {
            assert_eq!(
                anomalies_request(&uri(&bad)).map_err(|e| e.parameter),
                Err(param.to_string()),
                "{bad:?}"
            );
        }
        let (page, filter) = anomalies_request(&uri(&[
            ("location", "fabrikam berlin"),
            ("prefix", "2001:db8::/32"),
            ("kind", "moas"),
            ("open", "false"),
            ("state", "pending"),
            ("limit", "5"),
        ]))
        .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(
            filter,
            AnomalyFilter {
                location: Some("fabrikam berlin".into()),
                prefix: "2001:db8::/32".parse().ok(),
                kind: Some(AnomalyKind::Moas),
                open: Some(false),
                state: Some(AnomalyPhase::Pending),
            }
        );
        assert_eq!(
            page.next_link(ANOMALIES, "a1~moas~0~2001:db8::/32~-"),
            "/api/v1/anomalies?location=fabrikam%20berlin&prefix=2001:db8::/32&kind=moas\
             &open=false&state=pending&limit=5&cursor=a1~moas~0~2001:db8::/32~-"
        );
        let mut odd = String::new();
        percent_encode("a&b=c+d#é%", &mut odd);
        assert_eq!(odd, "a%26b%3Dc%2Bd%23%C3%A9%25");
        // The prefixes list takes location and prefix, not the anomalies' filters.
        let p: Uri = "/api/v1/prefixes?location=x&prefix=8.8.8.0/24"
            .parse()
            .unwrap_or_else(|_| unreachable!());
        assert!(prefixes_request(&p).is_ok());
        let p: Uri = "/api/v1/prefixes?open=true"
            .parse()
            .unwrap_or_else(|_| unreachable!());
        assert_eq!(
            prefixes_request(&p).map_err(|e| e.parameter),
            Err("open".to_string())
        );
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
