//! The HTTP listener: an accept loop over hyper's HTTP/1.1 connections with the limits that
//! `axum::serve` does not have.
//!
//! - **Connection cap** (`max-connections`): at the cap, a new connection closes the open
//!   connection that has been idle longest (no request in progress; counted `evicted`), so idle
//!   or slow connections cannot lock Prometheus out; when every connection has a request in
//!   progress the new one is closed at once (`max_connections`).
//! - **Header-read timeout** (`header-read-timeout-seconds`): a request head must be complete
//!   this long after the connection was accepted, or after the first byte of a later request on
//!   a kept-alive connection (a slowloris is closed: `header_timeout`). A TLS handshake must
//!   finish within it too (`tls_handshake`).
//! - **Idle timeout** (`idle-timeout-seconds`): a connection with no request in progress and no
//!   byte read or written for this long is closed (`idle_timeout`): kept-alive connections, and
//!   clients that stop reading their answer.
//! - Accept errors (out of file descriptors) are counted and retried after a pause.
//!
//! At shutdown the listener closes, idle connections close, and requests in progress get a few
//! seconds to finish.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tokio::time::Instant;
use tower_service::Service;
use tracing::{debug, warn};

use super::metrics::HttpMetrics;

/// How long requests in progress may take to finish at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Pause after a failed accept (e.g. EMFILE), so that the loop does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// The listener's limits.
#[derive(Clone)]
pub struct Limits {
    /// Open connections at most.
    pub max_connections: usize,
    /// Request head deadline.
    pub header_read_timeout: Duration,
    /// Idle deadline.
    pub idle_timeout: Duration,
}

impl Limits {
    /// The limits of `[http]`.
    pub fn from_config(c: &crate::config::HttpConfig) -> Limits {
        Limits {
            max_connections: c.max_connections,
            header_read_timeout: Duration::from_secs(c.header_read_timeout_seconds),
            idle_timeout: Duration::from_secs(c.idle_timeout_seconds),
        }
    }
}

/// What a connection is doing, for its deadlines and for eviction.
#[derive(Debug)]
struct Activity {
    /// Since when a request head is awaited (set at accept and by the first byte read while no
    /// request is in progress; cleared when a request starts).
    head_since: Option<Instant>,
    /// Requests being handled.
    in_flight: u32,
    /// Last byte read or written (or request finished).
    last_io: Instant,
}

/// One connection's shared state: its activity and the signal that closes it.
struct ConnState {
    activity: Mutex<Activity>,
    close: Notify,
}

impl ConnState {
    fn new(now: Instant) -> ConnState {
        ConnState {
            activity: Mutex::new(Activity {
                head_since: Some(now),
                in_flight: 0,
                last_io: now,
            }),
            close: Notify::new(),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Activity) -> T) -> T {
        let mut a = self
            .activity
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut a)
    }

    fn read(&self, n: usize) {
        if n == 0 {
            return;
        }
        let now = Instant::now();
        self.with(|a| {
            a.last_io = now;
            if a.in_flight == 0 && a.head_since.is_none() {
                a.head_since = Some(now);
            }
        });
    }

    fn wrote(&self, n: usize) {
        if n > 0 {
            let now = Instant::now();
            self.with(|a| a.last_io = now);
        }
    }

    /// A request head was read: the request is in progress until the guard drops.
    fn begin(self: &Arc<Self>) -> RequestGuard {
        self.with(|a| {
            a.head_since = None;
            a.in_flight += 1;
        });
        RequestGuard(self.clone())
    }

    /// Idle since when, if no request is in progress.
    fn idle_since(&self) -> Option<Instant> {
        self.with(|a| (a.in_flight == 0).then_some(a.last_io))
    }

    /// The next deadline and what it is, or `None` while a request is in progress.
    fn deadline(&self, limits: &Limits) -> Option<(Instant, &'static str)> {
        self.with(|a| {
            if a.in_flight > 0 {
                return None;
            }
            let idle = (a.last_io + limits.idle_timeout, "idle_timeout");
            Some(match a.head_since {
                Some(t) if t + limits.header_read_timeout < idle.0 => {
                    (t + limits.header_read_timeout, "header_timeout")
                }
                _ => idle,
            })
        })
    }
}

/// Ends a request's "in progress" state when dropped (also when the handler is cancelled).
struct RequestGuard(Arc<ConnState>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let now = Instant::now();
        self.0.with(|a| {
            a.in_flight = a.in_flight.saturating_sub(1);
            a.last_io = now;
        });
    }
}

/// A stream that reports its reads and writes to the connection state.
struct Tracked<T> {
    inner: T,
    state: Arc<ConnState>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Tracked<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = r {
            self.state.read(buf.filled().len() - before);
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tracked<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r {
            self.state.wrote(n);
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = r {
            self.state.wrote(n);
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The open connections, for the cap and eviction.
#[derive(Default)]
struct Table {
    next_id: AtomicU64,
    open: Mutex<std::collections::HashMap<u64, Arc<ConnState>>>,
}

impl Table {
    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<u64, Arc<ConnState>>> {
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Admits a connection: below the cap at once; at the cap by closing the longest-idle
    /// connection (which leaves the table now, its task closes it); `None` when every open
    /// connection has a request in progress.
    fn admit(&self, max: usize, metrics: &HttpMetrics) -> Option<(u64, Arc<ConnState>)> {
        let mut open = self.lock();
        if open.len() >= max {
            let victim = open
                .iter()
                .filter_map(|(id, c)| c.idle_since().map(|t| (t, *id)))
                .min()
                .map(|(_, id)| id)?;
            if let Some(c) = open.remove(&victim) {
                c.close.notify_one();
                metrics.connection_rejected("evicted");
            }
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let state = Arc::new(ConnState::new(Instant::now()));
        open.insert(id, state.clone());
        Some((id, state))
    }

    fn remove(&self, id: u64) {
        self.lock().remove(&id);
    }
}

/// Serves `app` on `listener` with `limits` (and TLS when `tls` is set) until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    tls: Option<tokio_rustls::TlsAcceptor>,
    metrics: HttpMetrics,
    mut shutdown: watch::Receiver<bool>,
) {
    let table = Arc::new(Table::default());
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = crate::daemon::stopped(&mut shutdown) => break,
            // Reap finished connection tasks as they end.
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                metrics.connection_rejected("accept_error");
                warn!(error = %e, "HTTP accept failed");
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                continue;
            }
        };
        let Some((id, state)) = table.admit(limits.max_connections, &metrics) else {
            metrics.connection_rejected("max_connections");
            debug!(%peer, "HTTP connection refused: every connection busy");
            drop(stream);
            continue;
        };
        metrics.accepted.inc();
        metrics.open.inc();
        let (app, limits, tls, metrics, table) = (
            app.clone(),
            limits.clone(),
            tls.clone(),
            metrics.clone(),
            table.clone(),
        );
        let shutdown = shutdown.clone();
        tasks.spawn(async move {
            connection(stream, peer, app, &limits, tls, state, &metrics, shutdown).await;
            table.remove(id);
            metrics.open.dec();
        });
    }
    drop(listener);
    // Connections finish their requests in progress (bounded by SHUTDOWN_GRACE each).
    while tasks.join_next().await.is_some() {}
}

#[allow(clippy::too_many_arguments)]
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    limits: &Limits,
    tls: Option<tokio_rustls::TlsAcceptor>,
    state: Arc<ConnState>,
    metrics: &HttpMetrics,
    shutdown: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    match tls {
        None => serve_io(stream, peer, app, limits, state, metrics, shutdown).await,
        Some(acceptor) => {
            let handshake = tokio::time::timeout(limits.header_read_timeout, async {
                tokio::select! {
                    r = acceptor.accept(stream) => r.ok(),
                    _ = state.close.notified() => None,
                }
            })
            .await;
            match handshake {
                Ok(Some(tls_stream)) => {
                    serve_io(tls_stream, peer, app, limits, state, metrics, shutdown).await
                }
                _ => metrics.connection_rejected("tls_handshake"),
            }
        }
    }
}

async fn serve_io<I>(
    io: I,
    peer: SocketAddr,
    app: Router,
    limits: &Limits,
    state: Arc<ConnState>,
    metrics: &HttpMetrics,
    mut shutdown: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(Tracked {
        inner: io,
        state: state.clone(),
    });
    let svc_state = state.clone();
    let service =
        hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            let guard = svc_state.begin();
            req.extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
            let fut = app.clone().call(req);
            async move {
                let r = fut.await;
                drop(guard);
                r
            }
        });
    let conn = hyper::server::conn::http1::Builder::new()
        .header_read_timeout(None)
        .serve_connection(io, service);
    tokio::pin!(conn);
    loop {
        let deadline = state.deadline(limits);
        let wake = deadline.map_or_else(|| Instant::now() + limits.idle_timeout, |(t, _)| t);
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    debug!(%peer, error = %e, "HTTP connection ended with an error");
                }
                return;
            }
            _ = tokio::time::sleep_until(wake) => {
                if let Some((t, reason)) = state.deadline(limits) {
                    if t <= Instant::now() {
                        metrics.connection_rejected(reason);
                        debug!(%peer, reason, "HTTP connection closed");
                        return;
                    }
                }
            }
            _ = state.close.notified() => {
                debug!(%peer, "HTTP connection evicted");
                return;
            }
            _ = crate::daemon::stopped(&mut shutdown) => {
                conn.as_mut().graceful_shutdown();
                let _ = tokio::time::timeout(SHUTDOWN_GRACE, conn.as_mut()).await;
                return;
            }
        }
    }
}
