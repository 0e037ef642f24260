//! The RIS Live feed task (`[ris-live]`): the baseline RIB files first, then the WebSocket
//! stream, reconnected for ever with exponential backoff and jitter.
//!
//! Everything goes to the engine task over one bounded channel, in order: the baseline's
//! batches (MRT RIBs read with the collector's route source, `ris-live/rrc00`, so that the
//! stream's updates and withdrawals of the same (collector, peer address, peer AS) apply to
//! their routes), `BaselineDone` (readiness), then the stream's batches. A slow engine slows the
//! reading of the socket; RIS Live then drops a client that cannot keep up (a `ris_error` and a
//! close), which is counted and reconnected like any failure.
//!
//! Staleness is failure: an open stream that brings no message from a collector for
//! `stale-seconds` (the subscription includes one collector's BGP KEEPALIVEs, so a healthy
//! stream never goes quiet for long; `pong`s do not count) is closed and reconnected, counted as
//! `reason="stale"`. On any disconnection the routes are kept: RIS Live does not replay state on
//! reconnection, so withdrawing them would report every prefix lost on each network blip and
//! never get them back. Visibility can therefore be stale while the feed is down (the
//! `routewatch_ris_live_connected` gauge and the RoutewatchRisLiveDown alert say so); a session
//! going down while disconnected is missed until the peer's routes change again.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::http::Uri;
use tokio_tungstenite::tungstenite::Message;
use tracing::{error, info, warn};

use super::stopped;
use crate::config::RisLiveConfig;
use crate::ingest::mrt::{self, FileReport, Limits};
use crate::ingest::ris_live::metrics::{Reason, RisLiveMetrics};
use crate::ingest::ris_live::{
    client_message, subscriptions, Backoff, Decoder, Filter, MessageType, SubscribeSettings, PING,
};
use crate::ingest::Batch;
use crate::log::LogBudget;
use crate::model::RouteSource;
use crate::registry::SharedRegistry;

/// Messages from the RIS Live task to the engine task.
pub enum RisLiveInput {
    /// Routes of a baseline RIB file (attributed to the collector's route source).
    Baseline(Batch),
    /// A baseline file was read to its end.
    BaselineFile(FileReport),
    /// A baseline file could not be read.
    BaselineFailed(String),
    /// Every baseline file is in: the stream starts.
    BaselineDone,
    /// Routes, sessions down and counts from the stream.
    Stream(Batch),
}

/// Longest wait for the TCP connection, the TLS handshake and the WebSocket upgrade together.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// How often the stream's counts are handed on when nothing matched, and the registry's
/// generation is checked (subscriptions renewed after a reload).
const FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// A batch with this many routes is handed on at once.
const MAX_BATCH: usize = 512;

/// What the task runs with.
pub struct RisLiveTask {
    /// `[ris-live]`.
    pub config: RisLiveConfig,
    /// The registry in force (a reload swaps it; subscriptions follow).
    pub registry: SharedRegistry,
    /// `[mrt]` bounds, for the baseline files.
    pub limits: Limits,
    /// To the engine task.
    pub tx: mpsc::Sender<RisLiveInput>,
    /// The feed's metrics.
    pub metrics: RisLiveMetrics,
    /// Shutdown.
    pub shutdown: watch::Receiver<bool>,
}

/// How a connection ended.
enum End {
    /// Counted, then reconnected.
    Failed(Reason),
    /// Shutdown, or the engine task is gone.
    Stop,
}

impl RisLiveTask {
    /// The baseline, then the stream until shutdown.
    pub async fn run(mut self) {
        if !self.baseline().await {
            return;
        }
        if self.tx.send(RisLiveInput::BaselineDone).await.is_err() {
            return;
        }
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            ^ u64::from(std::process::id());
        let mut backoff = Backoff::new(
            Duration::from_millis(self.config.backoff_min_ms),
            Duration::from_millis(self.config.backoff_max_ms),
            seed,
        );
        let mut decoder = Decoder::new(Filter {
            host: self.config.host.clone(),
            peers: self.config.peers.clone(),
        });
        loop {
            let started = Instant::now();
            let end = self.connection(&mut decoder).await;
            self.metrics.set_connected(false);
            self.metrics.set_subscriptions(0);
            let reason = match end {
                End::Stop => return,
                End::Failed(r) => r,
            };
            self.metrics.reconnect(reason);
            // A session that lasted longer than the longest backoff was healthy: start over.
            if started.elapsed() >= Duration::from_millis(self.config.backoff_max_ms) {
                backoff.reset();
            }
            let wait = backoff.next_delay();
            warn!(
                reason = reason.as_str(),
                retry_in_ms = wait.as_millis() as u64,
                "RIS Live disconnected; reconnecting"
            );
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stopped(&mut self.shutdown) => return,
            }
        }
    }

    /// Reads the baseline files; false when the engine is gone or shutdown came.
    async fn baseline(&mut self) -> bool {
        for b in self.config.baseline.clone() {
            if *self.shutdown.borrow() {
                return false;
            }
            let (tx, registry, limits) = (self.tx.clone(), self.registry.current(), self.limits);
            let source = Arc::new(RouteSource::ris_live(&b.collector));
            let path = b.file.clone();
            let read = tokio::task::spawn_blocking(move || {
                let mut open = true;
                let r = mrt::read_file_as(&path, &registry, limits, source, |batch| {
                    open = tx.blocking_send(RisLiveInput::Baseline(batch)).is_ok();
                    open
                });
                let msg = match r {
                    Ok(report) => RisLiveInput::BaselineFile(report),
                    Err(e) => RisLiveInput::BaselineFailed(e.to_string()),
                };
                open && tx.blocking_send(msg).is_ok()
            });
            let ok = tokio::select! {
                r = read => r.unwrap_or(false),
                _ = stopped(&mut self.shutdown) => false,
            };
            if !ok {
                return false;
            }
            info!(file = %b.file.display(), collector = %b.collector, "RIS Live baseline file read");
        }
        true
    }

    /// One connection: connect, subscribe, read until it ends.
    async fn connection(&mut self, decoder: &mut Decoder) -> End {
        let url = self.config.url.clone();
        let uri: Uri = match url.parse() {
            Ok(u) => u,
            Err(e) => {
                error!(url, error = %e, "RIS Live URL not usable");
                return End::Failed(Reason::Connect);
            }
        };
        let tls = uri.scheme_str() == Some("wss");
        let host = uri.host().unwrap_or("").to_string();
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let bare = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let tcp = tokio::select! {
            r = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect((bare.as_str(), port))) => r,
            _ = stopped(&mut self.shutdown) => return End::Stop,
        };
        let tcp = match tcp {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                warn!(host, port, error = %e, "RIS Live: connection failed");
                return End::Failed(Reason::Connect);
            }
            Err(_) => {
                warn!(host, port, "RIS Live: connection timed out");
                return End::Failed(Reason::Connect);
            }
        };
        let _ = tcp.set_nodelay(true);
        if !tls {
            return self.websocket(tcp, &url, decoder).await;
        }
        let config = match client_tls(self.config.ca_file.as_deref()) {
            Ok(c) => c,
            Err(e) => {
                error!(error = %e, "RIS Live: TLS configuration");
                return End::Failed(Reason::Tls);
            }
        };
        let Ok(name) = ServerName::try_from(bare.clone()) else {
            error!(host, "RIS Live: not a TLS server name");
            return End::Failed(Reason::Tls);
        };
        let connector = tokio_rustls::TlsConnector::from(config);
        let stream = tokio::select! {
            r = tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(name, tcp)) => r,
            _ = stopped(&mut self.shutdown) => return End::Stop,
        };
        match stream {
            Ok(Ok(s)) => self.websocket(s, &url, decoder).await,
            Ok(Err(e)) => {
                warn!(host, error = %e, "RIS Live: TLS handshake failed");
                End::Failed(Reason::Tls)
            }
            Err(_) => {
                warn!(host, "RIS Live: TLS handshake timed out");
                End::Failed(Reason::Tls)
            }
        }
    }

    /// The WebSocket upgrade, the subscriptions and the read loop over `stream`.
    async fn websocket<S>(&mut self, stream: S, url: &str, decoder: &mut Decoder) -> End
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let handshake = tokio::select! {
            r = tokio::time::timeout(CONNECT_TIMEOUT, tokio_tungstenite::client_async_with_config(url, stream, Some(ws_config()))) => r,
            _ = stopped(&mut self.shutdown) => return End::Stop,
        };
        let ws = match handshake {
            Ok(Ok((ws, _response))) => ws,
            Ok(Err(e)) => {
                warn!(url, error = %e, "RIS Live: WebSocket handshake failed");
                return End::Failed(Reason::Handshake);
            }
            Err(_) => {
                warn!(url, "RIS Live: WebSocket handshake timed out");
                return End::Failed(Reason::Handshake);
            }
        };
        let (mut sink, mut frames) = ws.split();
        let settings = SubscribeSettings {
            filter: Filter {
                host: self.config.host.clone(),
                peers: self.config.peers.clone(),
            },
            max_prefix_subscriptions: self.config.max_prefix_subscriptions,
        };
        let mut registry = self.registry.current();
        let mut subscribed: BTreeSet<String> = subscriptions(&registry, &settings);
        for data in &subscribed {
            let msg = client_message("ris_subscribe", data);
            if let Err(e) = sink.send(Message::Text(msg.into())).await {
                warn!(error = %e, "RIS Live: subscribing failed");
                return End::Failed(Reason::Error);
            }
        }
        self.metrics.set_connected(true);
        self.metrics.set_subscriptions(subscribed.len());
        info!(
            url,
            subscriptions = subscribed.len(),
            "RIS Live connected and subscribed"
        );

        let stale = Duration::from_secs(self.config.stale_seconds);
        let mut last_data = Instant::now();
        let mut ping =
            tokio::time::interval(Duration::from_secs(self.config.ping_interval_seconds));
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ping.tick().await;
        let mut flush = tokio::time::interval(FLUSH_INTERVAL);
        flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut batch = Batch {
            generation: registry.generation(),
            ..Batch::default()
        };
        let mut saw_ris_error = false;
        let mut budget = LogBudget::new(10, Duration::from_secs(60), Instant::now());
        loop {
            let stale_at = tokio::time::Instant::from_std(last_data + stale);
            // Not biased: a stream that always has a frame ready must not starve the ping, the
            // flush and the stale timer.
            let end = tokio::select! {
                _ = stopped(&mut self.shutdown) => {
                    let _ = sink.send(Message::Close(None)).await;
                    Some(End::Stop)
                }
                frame = frames.next() => match frame {
                    Some(Ok(Message::Text(text))) => {
                        let current = self.registry.current();
                        if current.generation() != batch.generation {
                            // Matched with another registry: hand on what was matched with
                            // the old one first.
                            if !self.hand_on(&mut batch).await {
                                return End::Stop;
                            }
                            batch.generation = current.generation();
                        }
                        let d = decoder.decode(text.as_str(), &current, &mut batch);
                        self.metrics.message(d.kind);
                        if d.kind.is_data() {
                            last_data = Instant::now();
                        }
                        match d.kind {
                            MessageType::RisError => {
                                saw_ris_error = true;
                                warn!(message = d.detail.as_deref().unwrap_or(""), "RIS Live sent an error");
                            }
                            MessageType::Malformed if budget.allow() => {
                                warn!(error = d.detail.as_deref().unwrap_or(""), "RIS Live: malformed message skipped");
                            }
                            _ => {}
                        }
                        if batch.updates.len() + batch.sources_down.len() > 0
                            && !self.hand_on(&mut batch).await
                        {
                            return End::Stop;
                        }
                        None
                    }
                    Some(Ok(Message::Binary(_))) => {
                        self.metrics.message(MessageType::Malformed);
                        *batch.errors.entry(crate::ingest::ris_live::ERROR_MALFORMED_JSON).or_insert(0) += 1;
                        None
                    }
                    Some(Ok(Message::Close(frame))) => {
                        info!(close = ?frame, "RIS Live closed the stream");
                        Some(End::Failed(if saw_ris_error { Reason::RisError } else { Reason::Closed }))
                    }
                    Some(Ok(_)) => None,
                    None => Some(End::Failed(if saw_ris_error { Reason::RisError } else { Reason::Closed })),
                    Some(Err(e)) => {
                        warn!(error = %e, "RIS Live: read failed");
                        Some(End::Failed(if saw_ris_error { Reason::RisError } else { Reason::Error }))
                    }
                },
                _ = tokio::time::sleep_until(stale_at) => {
                    warn!(stale_seconds = self.config.stale_seconds, "RIS Live stream silent: treated as down");
                    Some(End::Failed(Reason::Stale))
                }
                _ = ping.tick() => match sink.send(Message::Text(PING.into())).await {
                    Ok(()) => None,
                    Err(e) => {
                        warn!(error = %e, "RIS Live: ping failed");
                        Some(End::Failed(Reason::Error))
                    }
                },
                _ = flush.tick() => {
                    if let Some(n) = budget.due(Instant::now()) {
                        warn!(suppressed = n, "RIS Live: more malformed messages were skipped");
                    }
                    let current = self.registry.current();
                    if !Arc::ptr_eq(&current, &registry) {
                        registry = current;
                        let next = subscriptions(&registry, &settings);
                        match renew(&mut sink, &subscribed, &next).await {
                            Ok((gone, added)) => {
                                info!(removed = gone, added, subscriptions = next.len(), "RIS Live subscriptions renewed after a reload");
                                subscribed = next;
                                self.metrics.set_subscriptions(subscribed.len());
                            }
                            Err(e) => {
                                warn!(error = %e, "RIS Live: renewing subscriptions failed");
                                return End::Failed(Reason::Error);
                            }
                        }
                    }
                    if (batch.processed > 0 || !batch.errors.is_empty()) && !self.hand_on(&mut batch).await {
                        return End::Stop;
                    }
                    None
                }
            };
            if let Some(end) = end {
                // What was read before the end still counts.
                if !self.hand_on(&mut batch).await {
                    return End::Stop;
                }
                return end;
            }
        }
    }

    /// Sends the batch to the engine (if it holds anything); false when the engine is gone.
    async fn hand_on(&mut self, batch: &mut Batch) -> bool {
        if batch.updates.is_empty()
            && batch.sources_down.is_empty()
            && batch.processed == 0
            && batch.errors.is_empty()
        {
            return true;
        }
        let generation = batch.generation;
        let full = std::mem::replace(
            batch,
            Batch {
                generation,
                updates: Vec::with_capacity(MAX_BATCH.min(64)),
                ..Batch::default()
            },
        );
        self.tx.send(RisLiveInput::Stream(full)).await.is_ok()
    }
}

/// Largest WebSocket message (and frame) accepted: a RIS Live message is a few kilobytes; a
/// larger one ends the connection (`reason="error"`) instead of growing a buffer.
const MAX_MESSAGE_BYTES: usize = 4 << 20;

fn ws_config() -> tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
    tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE_BYTES))
        .max_frame_size(Some(MAX_MESSAGE_BYTES))
}

/// Sends `ris_unsubscribe` for the filters that went and `ris_subscribe` for the new ones.
async fn renew<S>(
    sink: &mut S,
    old: &BTreeSet<String>,
    new: &BTreeSet<String>,
) -> Result<(usize, usize), tokio_tungstenite::tungstenite::Error>
where
    S: futures_util::Sink<Message, Error = tokio_tungstenite::tungstenite::Error> + Unpin,
{
    let (mut gone, mut added) = (0, 0);
    for data in old.difference(new) {
        sink.send(Message::Text(
            client_message("ris_unsubscribe", data).into(),
        ))
        .await?;
        gone += 1;
    }
    for data in new.difference(old) {
        sink.send(Message::Text(client_message("ris_subscribe", data).into()))
            .await?;
        added += 1;
    }
    Ok((gone, added))
}

/// The TLS client configuration: the webpki roots plus `ca_file`'s certificates (ring).
fn client_tls(ca_file: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(file) = ca_file {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(file)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("{}: {e}", file.display()))?;
        if certs.is_empty() {
            return Err(format!(
                "{}: no PEM certificate in the file",
                file.display()
            ));
        }
        for c in certs {
            roots
                .add(c)
                .map_err(|e| format!("{}: {e}", file.display()))?;
        }
    }
    // ring, as for the HTTP listener (src/http/tls.rs).
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}
