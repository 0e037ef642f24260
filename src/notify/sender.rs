//! Delivery: one HTTP/1.1 POST per attempt ([`Client::post`]: hyper's client connection over
//! TCP, rustls with the system's trust store for `https`), retries with backoff
//! ([`deliver`]), and the per-target task ([`worker`]).
//!
//! No connection is kept between notifications (they are rare; a pool would hold sockets to
//! every target for nothing). Every attempt is bounded by the target's `timeout-seconds` from
//! the name lookup to the answer's head; the answer's body is read only on failure, at most
//! [`MAX_REPLY_BYTES`], for the log.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{CONTENT_TYPE, HOST, RETRY_AFTER, USER_AGENT};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::metrics::TargetMetrics;
use super::payload::{self, Notice};
use super::Format;
use crate::config::NotifyTarget;
use crate::log::LogBudget;

/// The wait before the first retry; it doubles up to [`MAX_BACKOFF`].
pub const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
/// The longest wait between attempts (without `Retry-After`).
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// The longest `Retry-After` honoured (a longer one is cut to this).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);
/// The most of a failed answer's body read for the log.
pub const MAX_REPLY_BYTES: usize = 4096;
/// Failure log lines per target per [`LOG_INTERVAL`] at most (the rest are counted).
const LOG_BURST: u32 = 20;
const LOG_INTERVAL: Duration = Duration::from_secs(60);

/// Why an attempt failed (the `reason` label of `routewatch_notify_failed_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// No answer within `timeout-seconds`.
    Timeout,
    /// The name did not resolve or no address accepted the connection.
    Connect,
    /// The TLS handshake failed (certificate, protocol) or no trust store was loaded.
    Tls,
    /// A 4xx answer other than 429 (not retried, but for 408).
    Http4xx,
    /// A 5xx answer.
    Http5xx,
    /// 429 Too Many Requests.
    RateLimited,
    /// Anything else: a broken HTTP exchange, a redirect (not followed), a 1xx/3xx answer.
    Protocol,
}

impl Reason {
    /// Every reason, in label order.
    pub const ALL: [Reason; 7] = [
        Reason::Timeout,
        Reason::Connect,
        Reason::Tls,
        Reason::Http4xx,
        Reason::Http5xx,
        Reason::RateLimited,
        Reason::Protocol,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Timeout => "timeout",
            Reason::Connect => "connect",
            Reason::Tls => "tls",
            Reason::Http4xx => "http_4xx",
            Reason::Http5xx => "http_5xx",
            Reason::RateLimited => "rate_limited",
            Reason::Protocol => "protocol",
        }
    }
}

/// A failed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Why.
    pub reason: Reason,
    /// In words (never the URL's path or a header value).
    pub detail: String,
    /// Whether another attempt may succeed.
    pub retryable: bool,
    /// The answer's `Retry-After` (seconds form), if any.
    pub retry_after: Option<Duration>,
}

impl Failure {
    fn new(reason: Reason, detail: impl Into<String>) -> Failure {
        Failure {
            reason,
            detail: detail.into(),
            retryable: !matches!(reason, Reason::Http4xx | Reason::Protocol),
            retry_after: None,
        }
    }
}

/// The JSON body of `notice` in `format`.
pub fn body(format: Format, notice: &Notice, link: Option<&str>) -> Bytes {
    let value = match format {
        Format::Webhook => payload::webhook_body(notice, link),
        Format::Slack => payload::slack_body(notice, link),
    };
    Bytes::from(serde_json::to_vec(&value).unwrap_or_default())
}

/// The HTTP client: a TLS connector when a target is `https`.
pub struct Client {
    tls: Result<tokio_rustls::TlsConnector, String>,
}

impl Client {
    /// A client; with `https`, the system's trust store is loaded (rustls-native-certs:
    /// `SSL_CERT_FILE`/`SSL_CERT_DIR`, else the distribution's bundle).
    pub fn new(https: bool) -> Client {
        if !https {
            return Client {
                tls: Err("no https target configured".into()),
            };
        }
        let tls = tls_connector();
        if let Err(e) = &tls {
            warn!(error = %e, "no TLS trust store: https notification targets will fail");
        }
        Client { tls }
    }

    /// One attempt: POSTs `body` to `target`. `Ok` is the 2xx status.
    pub async fn post(&self, target: &NotifyTarget, body: Bytes) -> Result<u16, Failure> {
        let limit = Duration::from_secs(target.timeout_seconds);
        match tokio::time::timeout(limit, self.exchange(target, body)).await {
            Ok(r) => r,
            Err(_) => Err(Failure::new(
                Reason::Timeout,
                format!("no answer within {} s", target.timeout_seconds),
            )),
        }
    }

    async fn exchange(&self, t: &NotifyTarget, body: Bytes) -> Result<u16, Failure> {
        let e = &t.endpoint;
        let tcp = connect(&e.host, e.port).await?;
        if !e.https {
            return request(TokioIo::new(tcp), t, body).await;
        }
        let tls = self
            .tls
            .as_ref()
            .map_err(|m| Failure::new(Reason::Tls, m.clone()))?;
        let name = rustls::pki_types::ServerName::try_from(e.host.clone())
            .map_err(|_| Failure::new(Reason::Tls, format!("'{}' is not a TLS name", e.host)))?;
        let stream = tls
            .connect(name, tcp)
            .await
            .map_err(|err| Failure::new(Reason::Tls, err.to_string()))?;
        request(TokioIo::new(stream), t, body).await
    }
}

fn tls_connector() -> Result<tokio_rustls::TlsConnector, String> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = rustls::RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let why = found
            .errors
            .first()
            .map_or_else(|| "no certificate found".to_string(), |e| e.to_string());
        return Err(format!(
            "the system trust store is empty ({why}); install ca-certificates or set SSL_CERT_FILE"
        ));
    }
    // ring, as for the HTTP listener (src/http/tls.rs).
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// A connection to the first address of `host` that accepts one.
async fn connect(host: &str, port: u16) -> Result<TcpStream, Failure> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| Failure::new(Reason::Connect, format!("cannot resolve {host}: {e}")))?
        .collect();
    let mut last = format!("{host} has no address");
    for a in addrs {
        match TcpStream::connect(a).await {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Err(e) => last = format!("{a}: {e}"),
        }
    }
    Err(Failure::new(Reason::Connect, last))
}

/// Aborts the connection task when the exchange ends (a hung server must not keep it).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn protocol(e: impl std::fmt::Display) -> Failure {
    Failure::new(Reason::Protocol, e.to_string())
}

async fn request<I>(io: I, t: &NotifyTarget, body: Bytes) -> Result<u16, Failure>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(protocol)?;
    let _conn = AbortOnDrop(tokio::spawn(async move {
        let _ = conn.await;
    }));
    let mut req = hyper::Request::post(t.endpoint.path.as_str())
        .header(HOST, t.endpoint.authority())
        .header(CONTENT_TYPE, "application/json")
        .header(
            USER_AGENT,
            concat!("routewatch/", env!("CARGO_PKG_VERSION")),
        );
    for (name, value) in t.headers.iter() {
        req = req.header(name, value);
    }
    let req = req.body(Full::new(body)).map_err(protocol)?;
    let resp = sender.send_request(req).await.map_err(|e| {
        // A closed or reset connection before an answer: the server's side failed.
        Failure::new(Reason::Connect, format!("no answer: {e}"))
    })?;
    let status = resp.status();
    if status.is_success() {
        return Ok(status.as_u16());
    }
    let retry_after = resp
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|s| Duration::from_secs(s).min(MAX_RETRY_AFTER));
    let snippet = read_snippet(resp.into_body()).await;
    let detail = if snippet.is_empty() {
        format!("HTTP {}", status.as_u16())
    } else {
        format!("HTTP {}: {snippet}", status.as_u16())
    };
    let mut f = match status.as_u16() {
        429 => Failure::new(Reason::RateLimited, detail),
        500..=599 => Failure::new(Reason::Http5xx, detail),
        408 => Failure {
            retryable: true,
            ..Failure::new(Reason::Http4xx, detail)
        },
        400..=499 => Failure::new(Reason::Http4xx, detail),
        _ => Failure::new(
            Reason::Protocol,
            format!("{detail} (redirects are not followed)"),
        ),
    };
    f.retry_after = retry_after;
    Err(f)
}

/// At most [`MAX_REPLY_BYTES`] of a body, printable, on one line (for the log).
async fn read_snippet(mut body: hyper::body::Incoming) -> String {
    let mut buf = Vec::new();
    let read = async {
        while buf.len() < MAX_REPLY_BYTES {
            match body.frame().await {
                Some(Ok(frame)) => {
                    if let Some(d) = frame.data_ref() {
                        buf.extend_from_slice(d);
                    }
                }
                _ => break,
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), read).await;
    buf.truncate(MAX_REPLY_BYTES);
    let text = String::from_utf8_lossy(&buf);
    let one_line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect();
    one_line.trim().to_string()
}

/// Delivers `body` to `target`: up to `max-attempts` attempts, waiting between them the
/// answer's `Retry-After`, else a backoff from [`INITIAL_BACKOFF`] doubling up to
/// [`MAX_BACKOFF`]; `retried` is called before each attempt after the first.
pub async fn deliver(
    client: &Client,
    target: &NotifyTarget,
    body: Bytes,
    mut retried: impl FnMut(),
) -> Result<u16, Failure> {
    let mut backoff = INITIAL_BACKOFF;
    let mut attempt = 1;
    loop {
        match client.post(target, body.clone()).await {
            Ok(status) => return Ok(status),
            Err(f) if !f.retryable || attempt >= target.max_attempts => return Err(f),
            Err(f) => {
                let wait = f.retry_after.unwrap_or(backoff);
                debug!(
                    target = %target.name,
                    attempt,
                    reason = f.reason.as_str(),
                    detail = %f.detail,
                    wait_ms = wait.as_millis() as u64,
                    "notification attempt failed; retrying"
                );
                tokio::time::sleep(wait).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                attempt += 1;
                retried();
            }
        }
    }
}

/// The task of one target: sends its queued notices one at a time, in order, until the queue
/// closes. `link_base` is where the notices' links point.
pub async fn worker(
    client: Arc<Client>,
    target: Arc<NotifyTarget>,
    link_base: String,
    mut queue: mpsc::Receiver<Notice>,
    metrics: TargetMetrics,
) {
    let mut budget = LogBudget::new(LOG_BURST, LOG_INTERVAL, Instant::now());
    while let Some(notice) = queue.recv().await {
        metrics.depth.dec();
        let link = payload::link(&link_base, &notice);
        let body = body(target.format, &notice, Some(&link));
        let result = deliver(&client, &target, body, || metrics.retries.inc()).await;
        if let Some(n) = budget.due(Instant::now()) {
            warn!(target = %target.name, lines = n, "notification failure lines left out");
        }
        match result {
            Ok(status) => {
                metrics.sent.inc();
                debug!(
                    target = %target.name,
                    status,
                    event = notice.event.as_str(),
                    kind = %notice.kind,
                    prefix = %notice.prefix,
                    "notification sent"
                );
            }
            Err(f) => {
                metrics.failed(f.reason);
                if budget.allow() {
                    warn!(
                        target = %target.name,
                        url = %target.endpoint.redacted(),
                        reason = f.reason.as_str(),
                        detail = %f.detail,
                        event = notice.event.as_str(),
                        kind = %notice.kind,
                        prefix = %notice.prefix,
                        "notification not delivered"
                    );
                }
            }
        }
    }
}
