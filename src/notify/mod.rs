//! Notifications straight from the monitor (`[[notify]]`): a generic JSON webhook and a
//! Slack-compatible incoming webhook (Mattermost and Rocket.Chat accept the same payload), on
//! anomaly open and resolve.
//!
//! * **What notifies.** The anomaly transitions of live processing, as the history records
//!   them: one opening and one resolve per incident, the resolve carrying the incident's flap
//!   count and duration ([`crate::engine`]'s hold-down turns a flapping hijack into one
//!   incident). The pipeline hands them to [`Notifier::offer`] on the engine task; a quiet
//!   re-read after a restart ([`crate::pipeline::Pipeline::ingest_quietly`]) offers nothing,
//!   and `routewatch replay` has no notifier.
//! * **Filters** per target ([`Filter`]): a minimum severity (of the anomaly kind; a resolve
//!   passes where its opening did), and optionally locations and anomaly kinds.
//! * **Never in the engine's way.** Each target has a bounded queue (`queue-size`) drained by
//!   its own task ([`sender::worker`]), one request at a time, so its notifications arrive in
//!   order; [`Notifier::offer`] only tries to enqueue, and a full queue drops the notification
//!   and counts it (`routewatch_notify_dropped_total{target}`).
//! * **Delivery** ([`sender`]): hyper's HTTP/1.1 client over TCP, rustls for `https` with the
//!   system's trust store; a per-target timeout over connect, TLS, request and answer; retries
//!   with exponential backoff (1 s doubling to 60 s) up to `max-attempts` for timeouts,
//!   connection errors, 5xx and 429 (whose `Retry-After` is honoured, up to 5 minutes); other
//!   answers fail at once. Metrics in [`metrics`].
//! * **Secrets** stay out of the configuration and the logs: headers such as `Authorization`
//!   come from `headers-file`, the URL (a Slack webhook URL is a secret) may come from
//!   `url-file`, and logs and errors show only the scheme, host and port of a URL.
//! * `routewatch notify --test` ([`test_targets`]) sends one test notice to each target.

pub mod metrics;
pub mod payload;
pub mod sender;

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::config::{HttpConfig, NotifyTarget};
use crate::engine::{AnomalyEvent, AnomalyKind, Severity};
use crate::error::Error;
use crate::registry::Registry;

pub use payload::{Notice, NoticeEvent};

/// Default `timeout-seconds` of a target.
pub const DEFAULT_TIMEOUT_SECONDS: u64 = 10;
/// Default `max-attempts` of a target.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;
/// Default `queue-size` of a target.
pub const DEFAULT_QUEUE_SIZE: usize = 1000;
/// Default `min-severity` of a target: every anomaly kind is at least a warning.
pub const DEFAULT_MIN_SEVERITY: Severity = Severity::Warning;

/// The body a target is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The generic JSON body ([`payload::webhook_body`]).
    Webhook,
    /// The Slack incoming-webhook payload ([`payload::slack_body`]).
    Slack,
}

impl Format {
    /// Every format, by name.
    pub const ALL: [Format; 2] = [Format::Webhook, Format::Slack];

    /// The name in the configuration (`type = "..."`).
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Webhook => "webhook",
            Format::Slack => "slack",
        }
    }

    /// Parses a name written by [`Format::as_str`].
    pub fn parse(s: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.as_str() == s)
    }
}

/// A target URL, checked: `https`, or `http` to a loopback host (or with `allow-http`); no
/// user info; no fragment. `Debug` shows scheme, host and port only (the path of a Slack
/// webhook URL is its secret).
#[derive(Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `https`?
    pub https: bool,
    /// Host name or address (an IPv6 address without brackets).
    pub host: String,
    /// Port (the scheme's default when not written).
    pub port: u16,
    /// Path and query, at least `/`.
    pub path: String,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl Endpoint {
    /// Parses and checks `url`; errors never repeat the URL's path or query.
    pub fn parse(url: &str, allow_http: bool) -> Result<Endpoint, String> {
        let url = url.trim();
        let uri: hyper::Uri = url
            .parse()
            .map_err(|_| "not a URL (want https://host[:port]/path)".to_string())?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            Some(other) => return Err(format!("scheme '{other}' is not http or https")),
            None => return Err("not an absolute URL (want https://host[:port]/path)".into()),
        };
        let authority = uri.authority().ok_or("the URL has no host")?;
        if authority.as_str().contains('@') {
            return Err(
                "user info in the URL is not accepted; put credentials in headers-file".into(),
            );
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        if host.is_empty() {
            return Err("the URL has no host".into());
        }
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        if port == 0 {
            return Err("port 0 is not a server port".into());
        }
        let endpoint = Endpoint {
            https,
            host,
            port,
            path: uri
                .path_and_query()
                .map_or_else(|| "/".to_string(), |p| p.as_str().to_string()),
        };
        if !https && !allow_http && !endpoint.is_loopback() {
            return Err(format!(
                "{} is plain http to a host that is not loopback: notifications would cross the \
                 network unencrypted; use https, or set allow-http = true",
                endpoint.redacted()
            ));
        }
        Ok(endpoint)
    }

    /// Whether the host is `localhost` or a loopback address.
    pub fn is_loopback(&self) -> bool {
        self.host.eq_ignore_ascii_case("localhost")
            || self.host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }

    /// `host[:port]` for the `Host` header (an IPv6 address in brackets; the port only when it
    /// is not the scheme's default).
    pub fn authority(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == if self.https { 443 } else { 80 } {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }

    /// `scheme://host:port`, without the path (for logs and errors).
    pub fn redacted(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        format!("{scheme}://{host}:{}", self.port)
    }
}

/// Header names a target may not set: the client writes them itself.
const RESERVED_HEADERS: [&str; 6] = [
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "te",
];

/// Header names that carry credentials: only from `headers-file`, never inline.
const SECRET_HEADERS: [&str; 4] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "x-api-key",
];

/// Extra request headers of a target. `Debug` shows their names, never their values.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Headers(Vec<(String, String)>);

impl std::fmt::Debug for Headers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.0.iter().map(|(n, _)| n.as_str()).collect();
        write!(f, "Headers({names:?})")
    }
}

impl Headers {
    /// Adds a header after checking it; `inline` (in the main configuration) refuses the
    /// credential headers. Errors never repeat the value.
    pub fn add(&mut self, name: &str, value: &str, inline: bool) -> Result<(), String> {
        let name = name.trim();
        let value = value.trim();
        if hyper::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(format!("'{name}' is not a header name"));
        }
        let lower = name.to_ascii_lowercase();
        if RESERVED_HEADERS.contains(&lower.as_str()) {
            return Err(format!("{name} is set by routewatch itself"));
        }
        if inline && SECRET_HEADERS.contains(&lower.as_str()) {
            return Err(format!(
                "{name} carries credentials: put it in headers-file (one 'Name: value' per \
                 line), not in the configuration"
            ));
        }
        if hyper::header::HeaderValue::from_str(value).is_err() || value.is_empty() {
            return Err(format!(
                "the value of {name} is empty or not a header value (visible ASCII and spaces)"
            ));
        }
        if self.0.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) {
            return Err(format!("{name} is given twice"));
        }
        self.0.push((name.to_string(), value.to_string()));
        Ok(())
    }

    /// Adds the headers of a headers file: one `Name: value` per line; blank lines and lines
    /// starting with `#` are ignored. The error names the line.
    pub fn add_file_text(&mut self, text: &str) -> Result<(), String> {
        let mut any = false;
        for (i, line) in text.lines().enumerate() {
            let l = line.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            let (name, value) = l
                .split_once(':')
                .ok_or_else(|| format!("line {}: want 'Name: value'", i + 1))?;
            self.add(name, value, false)
                .map_err(|e| format!("line {}: {e}", i + 1))?;
            any = true;
        }
        if !any {
            return Err("no header in the file (one 'Name: value' per line)".into());
        }
        Ok(())
    }

    /// Reads a headers file ([`Headers::add_file_text`]); the error names the file.
    pub fn add_file(&mut self, path: &Path) -> Result<(), String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{}: cannot be read: {e}", path.display()))?;
        self.add_file_text(&text)
            .map_err(|e| format!("{}: {e}", path.display()))
    }

    /// The headers, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// Number of headers.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// No extra header.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Which anomaly transitions a target is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    /// The anomaly kind's severity must be at least this.
    pub min_severity: Severity,
    /// Only these locations (`None`: all).
    pub locations: Option<Vec<String>>,
    /// Only these anomaly kinds (`None`: all).
    pub anomalies: Option<Vec<AnomalyKind>>,
}

impl Default for Filter {
    fn default() -> Self {
        Filter {
            min_severity: DEFAULT_MIN_SEVERITY,
            locations: None,
            anomalies: None,
        }
    }
}

impl Filter {
    /// Whether `ev` is sent (a resolve is judged by its kind, as its opening was).
    pub fn accepts(&self, ev: &AnomalyEvent) -> bool {
        ev.kind.severity() >= self.min_severity
            && self
                .locations
                .as_ref()
                .is_none_or(|l| l.contains(&ev.location))
            && self.anomalies.as_ref().is_none_or(|k| k.contains(&ev.kind))
    }
}

/// One target's queue, as the engine task sees it.
struct Route {
    filter: Filter,
    queue: mpsc::Sender<Notice>,
    metrics: metrics::TargetMetrics,
}

/// The engine task's handle: filters each transition and enqueues it for each target that
/// wants it, never waiting.
pub struct Notifier {
    routes: Vec<Route>,
}

impl Notifier {
    /// Offers the transitions of one batch (oldest first); `received` is the wall clock.
    pub fn offer(&self, events: &[AnomalyEvent], registry: &Registry, received: f64) {
        for ev in events {
            let mut notice: Option<Notice> = None;
            for r in &self.routes {
                if !r.filter.accepts(ev) {
                    continue;
                }
                let n = notice
                    .get_or_insert_with(|| Notice::from_anomaly(ev, registry, received))
                    .clone();
                match r.queue.try_send(n) {
                    Ok(()) => r.metrics.depth.inc(),
                    // Full, or the worker is gone (shutdown): dropped either way.
                    Err(_) => r.metrics.dropped.inc(),
                }
            }
        }
    }
}

/// The running target tasks.
pub struct NotifyTasks {
    workers: Vec<(String, JoinHandle<()>, metrics::TargetMetrics)>,
}

impl NotifyTasks {
    /// Waits at most `within` for the targets to send what is queued (their queues close
    /// when the [`Notifier`] is dropped with the engine task), then stops them; what is left
    /// is logged.
    pub async fn finish(self, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        for (name, mut task, m) in self.workers {
            if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
                task.abort();
                warn!(
                    target = %name,
                    queued = m.depth.get(),
                    "notification target still busy at shutdown; its queued notifications are not sent"
                );
            }
        }
    }
}

/// The link base of `target`: its `link-base`, else the `[http]` listener (`https` with TLS;
/// a wildcard address replaced by the host name).
pub fn link_base(target: &NotifyTarget, http: &HttpConfig) -> String {
    if let Some(b) = &target.link_base {
        return b.clone();
    }
    let scheme = if http.tls.is_some() { "https" } else { "http" };
    let ip = http.listen.ip();
    let host = if ip.is_unspecified() {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".to_string())
    } else if ip.is_ipv6() {
        format!("[{ip}]")
    } else {
        ip.to_string()
    };
    format!("{scheme}://{host}:{}", http.listen.port())
}

/// Starts one task per target (inside the daemon's runtime) and returns the engine task's
/// handle; the metrics are registered on `registry`.
pub fn start(
    targets: &[NotifyTarget],
    http: &HttpConfig,
    registry: &prometheus::Registry,
) -> Result<(Notifier, NotifyTasks), Error> {
    let names: Vec<&str> = targets.iter().map(|t| t.name.as_str()).collect();
    let m = metrics::NotifyMetrics::new(registry, &names)?;
    let client = Arc::new(sender::Client::new(
        targets.iter().any(|t| t.endpoint.https),
    ));
    let mut routes = Vec::with_capacity(targets.len());
    let mut workers = Vec::with_capacity(targets.len());
    for t in targets {
        let (tx, rx) = mpsc::channel(t.queue_size);
        let tm = m.target(&t.name);
        let base = link_base(t, http);
        info!(
            target = %t.name,
            r#type = t.format.as_str(),
            url = %t.endpoint.redacted(),
            min_severity = t.filter.min_severity.as_str(),
            "notification target"
        );
        workers.push((
            t.name.clone(),
            tokio::spawn(sender::worker(
                client.clone(),
                Arc::new(t.clone()),
                base,
                rx,
                tm.clone(),
            )),
            tm.clone(),
        ));
        routes.push(Route {
            filter: t.filter.clone(),
            queue: tx,
            metrics: tm,
        });
    }
    Ok((Notifier { routes }, NotifyTasks { workers }))
}

/// `routewatch notify --test`: one test notice to each target of `targets` (or only to the one
/// named `only`), one attempt each; prints a line per target. Fails naming every target that
/// did not accept it.
pub fn test_targets(
    targets: &[NotifyTarget],
    http: &HttpConfig,
    only: Option<&str>,
) -> Result<(), Error> {
    let chosen: Vec<&NotifyTarget> = targets
        .iter()
        .filter(|t| only.is_none_or(|o| o == t.name))
        .collect();
    if chosen.is_empty() {
        let known: Vec<&str> = targets.iter().map(|t| t.name.as_str()).collect();
        return Err(Error::Usage(match only {
            Some(o) => format!(
                "no [[notify]] target named '{o}' (configured: {})",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ),
            None => "the configuration has no [[notify]] target".to_string(),
        }));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| Error::Io {
            context: "starting the async runtime".into(),
            source,
        })?;
    let client = sender::Client::new(chosen.iter().any(|t| t.endpoint.https));
    let now = crate::clock::unix_now();
    let mut failed = Vec::new();
    for t in chosen {
        let notice = Notice::test(&t.name, now);
        let link = payload::link(&link_base(t, http), &notice);
        let body = sender::body(t.format, &notice, Some(&link));
        match runtime.block_on(client.post(t, body)) {
            Ok(status) => println!(
                "{}: OK: {} answered HTTP {status}",
                t.name,
                t.endpoint.redacted()
            ),
            Err(f) => {
                println!(
                    "{}: FAILED: {} ({}): {}",
                    t.name,
                    t.endpoint.redacted(),
                    f.reason.as_str(),
                    f.detail
                );
                failed.push(format!("{} ({})", t.name, f.reason.as_str()));
            }
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Error::Notify(format!(
            "test notification failed for target(s): {}",
            failed.join(", ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{RemovalReason, Transition};
    use crate::model::{PeerKey, RibView, RouteSource};

    #[test]
    fn urls_are_checked_and_never_shown_whole() {
        let e = Endpoint::parse("https://hooks.example.com/services/T0/B0/secret", false)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (e.https, e.host.as_str(), e.port, e.path.as_str()),
            (true, "hooks.example.com", 443, "/services/T0/B0/secret")
        );
        assert_eq!(e.authority(), "hooks.example.com");
        assert_eq!(format!("{e:?}"), "https://hooks.example.com:443");
        let e = Endpoint::parse("http://[::1]:8080/hook?x=1", false).unwrap();
        assert_eq!((e.host.as_str(), e.path.as_str()), ("::1", "/hook?x=1"));
        assert_eq!(e.authority(), "[::1]:8080");
        assert!(Endpoint::parse("http://localhost:9/", false).is_ok());
        assert!(Endpoint::parse("http://127.0.0.2/", false).is_ok());
        let err = Endpoint::parse("http://hooks.example.com/secret", false).unwrap_err();
        assert!(
            err.contains("allow-http") && !err.contains("secret"),
            "{err}"
        );
        assert!(Endpoint::parse("http://hooks.example.com/secret", true).is_ok());
        for (bad, want) in [
            ("ftp://x/y", "scheme"),
            ("/just/a/path", "absolute"),
            ("https://user:pw@x/y", "user info"),
            ("not a url", "not a URL"),
            ("https://x:0/", "port 0"),
        ] {
            let err = Endpoint::parse(bad, false).unwrap_err();
            assert!(err.contains(want), "{bad}: {err}");
            assert!(!err.contains("pw"), "{err}");
        }
    }

    #[test]
    fn headers_are_checked_and_credentials_come_from_a_file() {
        let mut h = Headers::default();
        h.add("X-Team", "netops", true).unwrap();
        let err = h.add("Authorization", "Bearer s3cret", true).unwrap_err();
        assert!(
            err.contains("headers-file") && !err.contains("s3cret"),
            "{err}"
        );
        assert!(h.add("Host", "x", false).unwrap_err().contains("itself"));
        assert!(h
            .add("x-team", "again", false)
            .unwrap_err()
            .contains("twice"));
        assert!(h.add("bad name", "v", false).is_err());
        h.add_file_text("# creds\n\nAuthorization: Bearer s3cret-token\n")
            .unwrap();
        assert_eq!(
            h.iter().collect::<Vec<_>>(),
            vec![
                ("X-Team", "netops"),
                ("Authorization", "Bearer s3cret-token")
            ]
        );
        assert!(!format!("{h:?}").contains("s3cret"));
        let err = Headers::default()
            .add_file_text("Authorization Bearer x\n")
            .unwrap_err();
        assert!(err.starts_with("line 1:"), "{err}");
        assert!(Headers::default().add_file_text("# none\n").is_err());
    }

    fn event(kind: AnomalyKind, location: &str) -> AnomalyEvent {
        let peer = Arc::new(PeerKey {
            source: Arc::new(RouteSource::bmp(
                "192.0.2.1:17001".parse().unwrap(),
                RibView::AdjRibInPre,
                None,
            )),
            address: "198.51.100.1".parse().unwrap(),
            asn: 64500,
        });
        AnomalyEvent {
            time: 10.0,
            transition: Transition::Resolved,
            kind,
            severity: kind.severity(),
            location: location.into(),
            prefix: "203.0.113.0/24".parse().unwrap(),
            announced: "203.0.113.0/24".parse().unwrap(),
            asn: None,
            peers: 0,
            peer: peer.to_string(),
            peer_key: peer,
            example_path: None,
            reason: Some(RemovalReason::Withdrawn),
            rpki: None,
            leak: None,
            flaps: 0,
            opened_at: Some(5.0),
        }
    }

    #[test]
    fn filters_by_kind_severity_location_and_kind() {
        let f = Filter {
            min_severity: Severity::Error,
            ..Filter::default()
        };
        assert!(f.accepts(&event(AnomalyKind::OriginMismatch, "a")));
        assert!(f.accepts(&event(AnomalyKind::Withdrawn, "a")));
        assert!(
            !f.accepts(&event(AnomalyKind::Moas, "a")),
            "a warning kind is below error"
        );
        let f = Filter {
            min_severity: Severity::Warning,
            locations: Some(vec!["a".into()]),
            anomalies: Some(vec![AnomalyKind::Moas]),
        };
        assert!(f.accepts(&event(AnomalyKind::Moas, "a")));
        assert!(!f.accepts(&event(AnomalyKind::Moas, "b")));
        assert!(!f.accepts(&event(AnomalyKind::OriginMismatch, "a")));
    }
}
