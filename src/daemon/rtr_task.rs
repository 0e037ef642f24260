//! The RTR task (`[rpki] rtr`): one session at a time with the configured RTR servers, the
//! protocol done by [`crate::rpki::rtr::Client`] (one per server, so a reconnection to the same
//! server continues its session with a Serial Query), the data sent to the engine task as
//! [`RpkiUpdate`]s with [`RpkiSource::Rtr`].
//!
//! # Servers, failover and failback
//!
//! The servers are tried in the configured order, the first being the preferred one. A
//! connection attempt (name lookup with tokio's `lookup_host`, then TCP to each address in
//! turn) is bounded by `rtr-connect-timeout-seconds`. When an attempt fails or a session ends
//! (the server closed it, a read failed, a protocol error, no answer to a query for
//! [`RESPONSE_TIMEOUT`]), the next server is tried at once; once every server has failed in a
//! row, the task waits the retry interval before the next round. While a session runs with a
//! server other than the preferred one, each refresh first tries the servers before it in the
//! list: the first that accepts a connection takes over (a *failback*), the current session is
//! closed. A preferred server that accepts the connection but then fails before its first End
//! of Data (a cache still starting, without data) is not tried again for a retry interval. A
//! move to another server is counted in `routewatch_rtr_failovers_total`. The new
//! server's session starts with a Reset Query (session ids are per cache); until its End of
//! Data, the data of the previous server stays in use.
//!
//! # Timers
//!
//! Refresh, retry and expire come from the last End of Data (versions 1 and 2), else from the
//! configured defaults (`rtr-refresh-seconds` …, RFC 8210 §6's 3600 / 600 / 7200 s when not
//! set). A Serial Query is sent every refresh interval and on a Serial Notify.
//!
//! # Expiry
//!
//! When no End of Data has arrived for the expire interval (RFC 8210 §6: the data "MUST NOT"
//! be used after it), the task sends [`RpkiUpdate::Expired`]: the engine drops the RTR data and
//! validates with the other source alone (the VRP file, if one is configured; with none, RPKI
//! validation is off as if no source were configured). Expiry is
//! counted (`routewatch_rtr_expiries_total`) and shown (`routewatch_rtr_data_expired` 1,
//! `routewatch_rtr_vrps` 0) until the next End of Data, which is sent whole with no delta (every
//! route re-validated).
//!
//! Each query is one write of one PDU: StayRTR 0.5.1 decodes one PDU per read of its socket.
//!
//! # Bounds
//!
//! A PDU is at most 64 KiB ([`crate::rpki::rtr::pdu::MAX_PDU_LEN`]), so the read buffer holds
//! at most one PDU and one read; the table and each response are bounded by
//! [`Limits::default`]; failure log lines by a [`LogBudget`] (10 a minute, then one summary).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::rpki_task::{RpkiSource, RpkiUpdate};
use super::stopped;
use crate::config::RtrConfig;
use crate::log::LogBudget;
use crate::rpki::rtr::metrics::RtrMetrics;
use crate::rpki::rtr::pdu::{self, type_name, MAX_PDU_LEN};
use crate::rpki::rtr::{Action, Client, Close, Limits, Timers, Update};
use crate::rpki::RpkiData;

/// A query unanswered (no byte received) for this long ends the session.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);
/// A write that takes longer ends the session.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Immediate reconnections to one server for version negotiation (2 → 1 → 0).
const MAX_DOWNGRADES: u32 = 3;

/// How a session ended.
enum End {
    /// Shutdown requested, or the engine task is gone.
    Stop,
    /// The session failed for this reason (a label of `routewatch_rtr_errors_total`).
    Failed(&'static str),
    /// The server asked for a lower version: reconnect at once.
    Downgrade,
    /// A preferred server accepted a connection: continue there.
    Failback(usize, TcpStream),
}

/// The task's state.
struct RtrTask {
    cfg: RtrConfig,
    tx: mpsc::Sender<RpkiUpdate>,
    metrics: RtrMetrics,
    shutdown: watch::Receiver<bool>,
    clients: Vec<Client>,
    /// Timers in force: the last End of Data's, else the defaults.
    timers: Timers,
    /// When data was last delivered (`None`: never, or expired).
    fresh_since: Option<Instant>,
    /// What was last sent to the engine and from which server (`None`: nothing, or expired).
    last_sent: Option<(usize, Arc<RpkiData>)>,
    /// The server of the last session that delivered data.
    last_server: Option<usize>,
    /// Whether the current session delivered data.
    delivered: bool,
    /// No failback attempt before this (a preferred server that accepted a connection and then
    /// failed is not tried again for a retry interval).
    no_failback_until: Instant,
    budget: LogBudget,
}

/// Runs the RTR client until shutdown (or until the engine task is gone).
pub async fn rtr_task(
    cfg: RtrConfig,
    tx: mpsc::Sender<RpkiUpdate>,
    metrics: RtrMetrics,
    shutdown: watch::Receiver<bool>,
) {
    let clients = cfg
        .servers
        .iter()
        .map(|_| Client::new(cfg.default_timers, Limits::default()))
        .collect();
    let timers = cfg.default_timers;
    let mut task = RtrTask {
        cfg,
        tx,
        metrics,
        shutdown,
        clients,
        timers,
        fresh_since: None,
        last_sent: None,
        last_server: None,
        delivered: false,
        no_failback_until: Instant::now(),
        budget: LogBudget::new(10, Duration::from_secs(60), std::time::Instant::now()),
    };
    task.run().await;
}

impl RtrTask {
    async fn run(&mut self) {
        let n = self.cfg.servers.len();
        let mut current = 0usize;
        let mut failures = 0usize;
        let mut downgrades = 0u32;
        let mut pending: Option<TcpStream> = None;
        let mut failing_back = false;
        loop {
            let stream = match pending.take() {
                Some(s) => Ok(s),
                None => {
                    let server = self.cfg.servers[current].clone();
                    let timeout = Duration::from_secs(self.cfg.connect_timeout_seconds);
                    match self.guarded(connect(&server, timeout)).await {
                        None => return,
                        Some(r) => r,
                    }
                }
            };
            let end = match stream {
                Ok(stream) => self.session(current, stream).await,
                Err(reason) => End::Failed(reason),
            };
            match end {
                End::Stop => return,
                End::Downgrade if downgrades < MAX_DOWNGRADES => {
                    downgrades += 1;
                    continue;
                }
                End::Downgrade => self.failed(current, "no_common_version"),
                End::Failback(to, stream) => {
                    info!(from = %self.cfg.servers[current], to = %self.cfg.servers[to], "RTR: back to a preferred server");
                    current = to;
                    pending = Some(stream);
                    failures = 0;
                    downgrades = 0;
                    failing_back = true;
                    continue;
                }
                End::Failed(reason) => self.failed(current, reason),
            }
            let delivered = std::mem::take(&mut self.delivered);
            if std::mem::take(&mut failing_back) && !delivered {
                self.no_failback_until =
                    Instant::now() + Duration::from_secs(u64::from(self.timers.retry));
            }
            downgrades = 0;
            if delivered {
                // The session had delivered data: a fresh round of attempts.
                failures = 0;
            }
            failures += 1;
            current = (current + 1) % n;
            if failures >= n {
                failures = 0;
                let wait = Duration::from_secs(u64::from(self.timers.retry));
                debug!(
                    seconds = wait.as_secs(),
                    "RTR: every server failed; waiting the retry interval"
                );
                if self.guarded(tokio::time::sleep(wait)).await.is_none() {
                    return;
                }
            }
        }
    }

    /// Counts and logs (within the budget) a failed attempt or session.
    fn failed(&mut self, idx: usize, reason: &'static str) {
        let server = &self.cfg.servers[idx];
        self.metrics.set_up(server, false);
        self.metrics.record_error(server, reason);
        self.clients[idx].disconnected();
        let now = std::time::Instant::now();
        if let Some(n) = self.budget.due(now) {
            warn!(
                suppressed = n,
                "RTR: failure lines suppressed in the last minute"
            );
        }
        if self.budget.allow() {
            warn!(server = %server, reason, "RTR: connection failed or ended");
        } else {
            self.metrics.record_log_suppressed();
        }
    }

    /// When the data expires (`None`: no data held).
    fn expire_at(&self) -> Option<Instant> {
        self.fresh_since
            .map(|t| t + Duration::from_secs(u64::from(self.timers.expire)))
    }

    /// The data expired: the engine drops it.
    async fn expire(&mut self) -> bool {
        self.fresh_since = None;
        self.last_sent = None;
        self.metrics.record_expiry();
        warn!(
            expire_seconds = self.timers.expire,
            "RTR data expired (no successful update within the expire interval): no longer used for validation"
        );
        self.tx
            .send(RpkiUpdate::Expired {
                source: RpkiSource::Rtr,
            })
            .await
            .is_ok()
    }

    /// Runs `f` while watching the expiry and the shutdown (`None`: stop).
    async fn guarded<F: std::future::Future>(&mut self, f: F) -> Option<F::Output> {
        tokio::pin!(f);
        loop {
            let expire_at = self.expire_at();
            tokio::select! {
                out = &mut f => return Some(out),
                _ = sleep_until(expire_at) => {
                    if !self.expire().await {
                        return None;
                    }
                }
                _ = stopped(&mut self.shutdown) => return None,
            }
        }
    }

    /// One session with server `idx` over `stream`.
    async fn session(&mut self, idx: usize, stream: TcpStream) -> End {
        let server = self.cfg.servers[idx].clone();
        let _ = stream.set_nodelay(true);
        let (mut rd, mut wr) = stream.into_split();
        let first = self.clients[idx].connected();
        if !write(&mut wr, &first).await {
            return End::Failed("io");
        }
        debug!(server = %server, version = self.clients[idx].version(), "RTR: connected, query sent");
        let mut buf: Vec<u8> = Vec::with_capacity(4096);
        let mut chunk = vec![0u8; 64 * 1024];
        let mut last_read = Instant::now();
        let mut refresh_at = Instant::now() + secs(self.timers.refresh);
        let mut actions = Vec::new();
        loop {
            let busy = self.clients[idx].is_busy();
            let expire_at = self.expire_at();
            tokio::select! {
                r = rd.read(&mut chunk) => {
                    let n = match r {
                        Ok(0) => return End::Failed("closed"),
                        Ok(n) => n,
                        Err(_) => return End::Failed("io"),
                    };
                    last_read = Instant::now();
                    buf.extend_from_slice(&chunk[..n]);
                    let mut at = 0;
                    loop {
                        match pdu::decode(&buf[at..]) {
                            Ok(Some((frame, used))) => {
                                self.metrics.record_pdu(frame.pdu.type_name());
                                self.clients[idx].on_frame(frame, &buf[at..at + used], &mut actions);
                                at += used;
                            }
                            Ok(None) => break,
                            Err(e) => {
                                self.metrics.record_pdu(type_name(buf.get(at + 1).copied().unwrap_or(255)));
                                let raw = &buf[at..buf.len().min(at + 64)];
                                self.clients[idx].on_decode_error(&e, raw, &mut actions);
                                at = buf.len();
                                break;
                            }
                        }
                        if !actions.is_empty() {
                            if let Some(end) = self.act(idx, &mut wr, &mut actions).await {
                                return end;
                            }
                        }
                    }
                    if let Some(end) = self.act(idx, &mut wr, &mut actions).await {
                        return end;
                    }
                    buf.drain(..at);
                    debug_assert!(buf.len() <= MAX_PDU_LEN as usize + chunk.len());
                }
                _ = tokio::time::sleep_until(refresh_at) => {
                    refresh_at = Instant::now() + secs(self.timers.refresh);
                    if let Some(end) = self.try_failback(idx).await {
                        return end;
                    }
                    if let Some(q) = self.clients[idx].refresh() {
                        last_read = Instant::now();
                        if !write(&mut wr, &q).await {
                            return End::Failed("io");
                        }
                    }
                }
                _ = tokio::time::sleep_until(last_read + RESPONSE_TIMEOUT), if busy => {
                    return End::Failed("timeout");
                }
                _ = sleep_until(expire_at) => {
                    if !self.expire().await {
                        return End::Stop;
                    }
                }
                _ = stopped(&mut self.shutdown) => return End::Stop,
            }
        }
    }

    /// Carries out the client's actions; `Some` when the session ends.
    async fn act(
        &mut self,
        idx: usize,
        wr: &mut tokio::net::tcp::OwnedWriteHalf,
        actions: &mut Vec<Action>,
    ) -> Option<End> {
        for action in actions.drain(..) {
            match action {
                Action::Send(bytes) => {
                    if !write(wr, &bytes).await {
                        return Some(End::Failed("io"));
                    }
                }
                Action::Data(update) => {
                    if !self.deliver(idx, *update).await {
                        return Some(End::Stop);
                    }
                }
                Action::Close(close) => {
                    let _ = wr.shutdown().await;
                    return Some(match close {
                        Close::Downgrade { to } => {
                            let server = &self.cfg.servers[idx];
                            info!(server = %server, version = to, "RTR: server does not speak this version; reconnecting at a lower one");
                            self.metrics.record_error(server, close.reason());
                            self.clients[idx].disconnected();
                            End::Downgrade
                        }
                        other => End::Failed(other.reason()),
                    });
                }
            }
        }
        None
    }

    /// An End of Data: to the engine, and into the metrics. `false` when the engine is gone.
    async fn deliver(&mut self, idx: usize, u: Update) -> bool {
        let server = self.cfg.servers[idx].clone();
        let changed = match &self.last_sent {
            Some((from, _)) if *from == idx => u.changed.clone(),
            Some((_, previous)) => Some(previous.diff(&u.data)),
            None => None,
        };
        if self.last_server.is_some_and(|s| s != idx) {
            self.metrics.record_failover();
            info!(server = %server, "RTR: data now from this server");
        }
        let (vrps, aspas) = (u.data.vrps.len(), u.data.aspas.len());
        let now = crate::clock::unix_now() as i64;
        self.metrics.set_up(&server, true);
        self.metrics.set_version(&server, u.version);
        self.metrics.record_update(
            &server,
            u.kind.as_str(),
            u.session_id,
            u.serial,
            now,
            vrps,
            aspas,
        );
        self.metrics.record_dropped(u.dropped_vrps, u.dropped_aspas);
        if u.dropped_vrps + u.dropped_aspas > 0 {
            warn!(server = %server, dropped_vrps = u.dropped_vrps, dropped_aspas = u.dropped_aspas, "RTR: table limit reached; announcements dropped");
        }
        match u.kind {
            crate::rpki::rtr::UpdateKind::Reset => {
                info!(server = %server, version = u.version, session_id = u.session_id, serial = u.serial, vrps, aspas, "RTR: full data received")
            }
            crate::rpki::rtr::UpdateKind::Serial => {
                debug!(server = %server, serial = u.serial, vrps, aspas, "RTR: incremental update received")
            }
        }
        self.timers = u.timers;
        self.fresh_since = Some(Instant::now());
        self.last_server = Some(idx);
        self.delivered = true;
        self.last_sent = Some((idx, u.data.clone()));
        self.tx
            .send(RpkiUpdate::Data {
                source: RpkiSource::Rtr,
                data: u.data,
                changed,
            })
            .await
            .is_ok()
    }

    /// At a refresh with a server other than the preferred one: the first of the servers
    /// before it that accepts a connection.
    async fn try_failback(&mut self, idx: usize) -> Option<End> {
        if Instant::now() < self.no_failback_until {
            return None;
        }
        let timeout = Duration::from_secs(self.cfg.connect_timeout_seconds);
        for j in 0..idx {
            let server = self.cfg.servers[j].clone();
            match self.guarded(connect(&server, timeout)).await {
                None => return Some(End::Stop),
                Some(Ok(stream)) => {
                    self.metrics.set_up(&self.cfg.servers[idx], false);
                    self.clients[idx].disconnected();
                    return Some(End::Failback(j, stream));
                }
                Some(Err(_)) => {}
            }
        }
        None
    }
}

fn secs(s: u32) -> Duration {
    Duration::from_secs(u64::from(s))
}

/// Sleeps until `at`, or for ever when `None`.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Writes `bytes` whole within [`WRITE_TIMEOUT`].
async fn write(wr: &mut tokio::net::tcp::OwnedWriteHalf, bytes: &[u8]) -> bool {
    matches!(
        tokio::time::timeout(WRITE_TIMEOUT, wr.write_all(bytes)).await,
        Ok(Ok(()))
    )
}

/// Resolves `server` (`host:port`) and connects to its addresses in turn, all within
/// `timeout`; the error is a label of `routewatch_rtr_errors_total`.
async fn connect(server: &str, timeout: Duration) -> Result<TcpStream, &'static str> {
    let attempt = async {
        let addrs: Vec<SocketAddr> = match tokio::net::lookup_host(server).await {
            Ok(a) => a.collect(),
            Err(_) => return Err("resolve"),
        };
        if addrs.is_empty() {
            return Err("resolve");
        }
        for addr in addrs.iter().take(8) {
            if let Ok(s) = TcpStream::connect(addr).await {
                return Ok(s);
            }
        }
        Err("connect")
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(r) => r,
        Err(_) => Err("connect"),
    }
}
