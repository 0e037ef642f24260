//! `[ris-live]`: the RIPE RIS Live WebSocket feed (off unless `enabled = true`); validated here
//! with the same `file:line:col: key: message` errors as the rest of the configuration.

use std::net::IpAddr;
use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use super::{positive, ConfigError, Source};

/// The public RIS Live endpoint (its manual: `wss://ris-live.ripe.net/v1/ws/`).
pub const DEFAULT_RIS_LIVE_URL: &str = "wss://ris-live.ripe.net/v1/ws/";
/// Default of `stale-seconds`: a stream silent this long while connected is down. The default
/// subscription includes the BGP KEEPALIVEs of one collector's peers (several a second on a
/// healthy stream), so two minutes of silence is an outage, not a quiet registry.
pub const DEFAULT_RIS_LIVE_STALE_SECONDS: u64 = 120;
/// Default of `ping-interval-seconds` (RIS Live's JSON `ping`, answered with `pong`).
pub const DEFAULT_RIS_LIVE_PING_INTERVAL_SECONDS: u64 = 30;
/// Default of `backoff-min-ms`: the first reconnection waits about this long.
pub const DEFAULT_RIS_LIVE_BACKOFF_MIN_MS: u64 = 1_000;
/// Default of `backoff-max-ms`: reconnections back off to at most this (one attempt a minute
/// against a public service that is down).
pub const DEFAULT_RIS_LIVE_BACKOFF_MAX_MS: u64 = 60_000;
/// Default of `max-prefix-subscriptions`. RIS Live's manual documents no cap on subscriptions
/// per connection (each prefix is its own subscription, "stopped independently"); the limit it
/// documents is the slow consumer: a client that cannot keep up gets a final `ris_error` and is
/// disconnected. Past about a thousand prefixes the per-prefix filters sent at every connection
/// cost the server more than one UPDATE subscription (optionally per collector, `host`) that
/// routewatch filters itself with the registry lookup it runs anyway; the firehose of one
/// collector is a few hundred messages a second, well within what the decoder does
/// (BENCHMARKS.md).
pub const DEFAULT_RIS_LIVE_MAX_PREFIX_SUBSCRIPTIONS: u64 = 1_000;
/// The collector whose peers' KEEPALIVEs are the heartbeat when no `host` is given.
pub const DEFAULT_RIS_LIVE_HEARTBEAT_HOST: &str = "rrc00";

/// `[ris-live]`, when `enabled = true`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RisLiveConfig {
    /// The WebSocket URL (`ws://` or `wss://`), with `client=<client>` in its query.
    pub url: String,
    /// The client name sent as `?client=` (RIS Live asks every client to identify itself).
    pub client: String,
    /// Only this collector (`rrc00`), in the subscription and checked on every message.
    pub host: Option<String>,
    /// Only these peers (checked on every message; with one, also in the subscription).
    pub peers: Vec<IpAddr>,
    /// No message from a collector for this long while connected: the stream is down and is
    /// reconnected.
    pub stale_seconds: u64,
    /// How often a `ping` is sent.
    pub ping_interval_seconds: u64,
    /// The first reconnection's wait (before jitter), milliseconds.
    pub backoff_min_ms: u64,
    /// The longest wait between reconnections, milliseconds.
    pub backoff_max_ms: u64,
    /// Extra trusted CA certificates (PEM) for a private endpoint, besides the webpki roots.
    pub ca_file: Option<PathBuf>,
    /// RIB files read before the stream starts, each as the routes of its collector.
    pub baseline: Vec<BaselineFile>,
    /// Registries with more prefixes than this are subscribed with one UPDATE subscription and
    /// filtered by routewatch.
    pub max_prefix_subscriptions: usize,
}

/// One `[[ris-live.baseline]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaselineFile {
    /// The MRT RIB file.
    pub file: PathBuf,
    /// The RIS collector it was dumped from (`rrc00`).
    pub collector: String,
}

/// `[ris-live]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawRisLive {
    enabled: Option<bool>,
    url: Option<Spanned<String>>,
    client: Option<Spanned<String>>,
    host: Option<Spanned<String>>,
    peers: Option<Vec<Spanned<String>>>,
    stale_seconds: Option<Spanned<i64>>,
    ping_interval_seconds: Option<Spanned<i64>>,
    backoff_min_ms: Option<Spanned<i64>>,
    backoff_max_ms: Option<Spanned<i64>>,
    ca_file: Option<Spanned<String>>,
    #[serde(default)]
    baseline: Vec<RawBaseline>,
    max_prefix_subscriptions: Option<Spanned<i64>>,
}

/// `[[ris-live.baseline]]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawBaseline {
    file: Spanned<String>,
    collector: Spanned<String>,
}

/// A RIS collector name (`rrc00`), a client name: letters, digits, `-`, `_`, `.`; 1..=64.
pub fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// `[ris-live]` validated; `None` when absent or not enabled.
pub(super) fn convert(
    src: &Source,
    raw: &RawRisLive,
    resolve: &dyn Fn(&str) -> PathBuf,
) -> Result<Option<RisLiveConfig>, ConfigError> {
    if raw.enabled != Some(true) {
        return Ok(None);
    }
    let client = match &raw.client {
        Some(c) if is_name(c.get_ref()) => c.get_ref().clone(),
        Some(c) => {
            return Err(src.invalid(
                &c.span(),
                "ris-live.client",
                format!(
                    "'{}' is not a client name (1 to 64 letters, digits, '-', '_', '.')",
                    c.get_ref()
                ),
            ))
        }
        None => {
            return Err(src.invalid(
                &(0..0),
                "ris-live.client",
                "required when [ris-live] is enabled: a name that identifies this deployment \
                 (RIS Live asks every client for one), e.g. client = \"routewatch-example-net\"",
            ))
        }
    };
    let url = match &raw.url {
        Some(u) => {
            check_url(u.get_ref()).map_err(|m| src.invalid(&u.span(), "ris-live.url", m))?;
            u.get_ref().clone()
        }
        None => DEFAULT_RIS_LIVE_URL.to_string(),
    };
    let url = with_client(&url, &client);
    let host = match &raw.host {
        Some(h) if is_name(h.get_ref()) => Some(h.get_ref().to_ascii_lowercase()),
        Some(h) => {
            return Err(src.invalid(
                &h.span(),
                "ris-live.host",
                format!("'{}' is not a collector name such as rrc00", h.get_ref()),
            ))
        }
        None => None,
    };
    let mut peers = Vec::new();
    for p in raw.peers.iter().flatten() {
        let ip = p.get_ref().trim().parse::<IpAddr>().map_err(|_| {
            src.invalid(
                &p.span(),
                "ris-live.peers",
                format!("'{}' is not an IP address", p.get_ref()),
            )
        })?;
        peers.push(ip);
    }
    let num = |v: &Option<Spanned<i64>>, key: &str, min: i64, max: i64, default: u64| match v {
        Some(v) => positive(src, v, key, min, max),
        None => Ok(default),
    };
    let stale_seconds = num(
        &raw.stale_seconds,
        "ris-live.stale-seconds",
        1,
        86_400,
        DEFAULT_RIS_LIVE_STALE_SECONDS,
    )?;
    let ping_interval_seconds = num(
        &raw.ping_interval_seconds,
        "ris-live.ping-interval-seconds",
        1,
        3_600,
        DEFAULT_RIS_LIVE_PING_INTERVAL_SECONDS,
    )?;
    let backoff_min_ms = num(
        &raw.backoff_min_ms,
        "ris-live.backoff-min-ms",
        10,
        3_600_000,
        DEFAULT_RIS_LIVE_BACKOFF_MIN_MS,
    )?;
    let backoff_max_ms = num(
        &raw.backoff_max_ms,
        "ris-live.backoff-max-ms",
        10,
        3_600_000,
        DEFAULT_RIS_LIVE_BACKOFF_MAX_MS.max(backoff_min_ms),
    )?;
    if backoff_max_ms < backoff_min_ms {
        let span = raw.backoff_max_ms.as_ref().map_or(0..0, Spanned::span);
        return Err(src.invalid(
            &span,
            "ris-live.backoff-max-ms",
            format!("{backoff_max_ms} is below backoff-min-ms ({backoff_min_ms})"),
        ));
    }
    let max_prefix_subscriptions = num(
        &raw.max_prefix_subscriptions,
        "ris-live.max-prefix-subscriptions",
        0,
        100_000,
        DEFAULT_RIS_LIVE_MAX_PREFIX_SUBSCRIPTIONS,
    )? as usize;
    let ca_file = match &raw.ca_file {
        Some(f) => {
            let path = resolve(f.get_ref());
            if !path.is_file() {
                return Err(src.invalid(
                    &f.span(),
                    "ris-live.ca-file",
                    format!("{} is not a readable file", path.display()),
                ));
            }
            Some(path)
        }
        None => None,
    };
    let mut baseline = Vec::new();
    for b in &raw.baseline {
        let collector = b.collector.get_ref().to_ascii_lowercase();
        if !is_name(&collector) {
            return Err(src.invalid(
                &b.collector.span(),
                "ris-live.baseline.collector",
                format!("'{}' is not a collector name such as rrc00", collector),
            ));
        }
        if let Some(h) = host.as_ref().filter(|h| **h != collector) {
            return Err(src.invalid(
                &b.collector.span(),
                "ris-live.baseline.collector",
                format!(
                    "{collector} is not the stream's host ({h}): the live stream would never \
                     update or withdraw these routes"
                ),
            ));
        }
        baseline.push(BaselineFile {
            file: resolve(b.file.get_ref()),
            collector,
        });
    }
    Ok(Some(RisLiveConfig {
        url,
        client,
        host,
        peers,
        stale_seconds,
        ping_interval_seconds,
        backoff_min_ms,
        backoff_max_ms,
        ca_file,
        baseline,
        max_prefix_subscriptions,
    }))
}

/// Whether `url` is a `ws://` or `wss://` URL with a host.
fn check_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("wss://")
        .or_else(|| url.strip_prefix("ws://"))
        .ok_or_else(|| format!("'{url}' is not a ws:// or wss:// URL"))?;
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    if authority.is_empty() || authority.contains('@') {
        return Err(format!(
            "'{url}' has no host (or has credentials, not supported)"
        ));
    }
    if url.contains('#') || url.chars().any(char::is_whitespace) {
        return Err(format!("'{url}' has a fragment or a blank"));
    }
    Ok(())
}

/// `url` with `client=<client>` in its query (unless it has one).
fn with_client(url: &str, client: &str) -> String {
    let query = url.split_once('?').map(|(_, q)| q).unwrap_or("");
    if query.split('&').any(|kv| kv.starts_with("client=")) {
        return url.to_string();
    }
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}client={client}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_name_goes_into_the_query_once() {
        assert_eq!(
            with_client("wss://ris-live.ripe.net/v1/ws/", "rw-test"),
            "wss://ris-live.ripe.net/v1/ws/?client=rw-test"
        );
        assert_eq!(
            with_client("ws://127.0.0.1:9/v1/ws/?x=1", "a"),
            "ws://127.0.0.1:9/v1/ws/?x=1&client=a"
        );
        assert_eq!(
            with_client("ws://h/?client=mine", "a"),
            "ws://h/?client=mine"
        );
    }

    #[test]
    fn urls_are_checked() {
        assert!(check_url("wss://ris-live.ripe.net/v1/ws/").is_ok());
        assert!(check_url("ws://127.0.0.1:8080/").is_ok());
        assert!(check_url("https://ris-live.ripe.net/").is_err());
        assert!(check_url("wss:///v1").is_err());
        assert!(check_url("wss://user:pw@host/").is_err());
    }
}
