//! The BMP TCP listener: the I/O edge of the BMP feed.
//!
//! One task accepts connections (allowlist, session caps in all and per source address, one
//! slot reserved per configured router: refusals counted; TCP keepalive set), and one task per
//! connection reads the stream (closing it when no Initiation arrives in time, when no message
//! arrives for the idle timeout, or when keepalive probes go unanswered), frames it, runs the
//! router's [`RouterSession`] and sends each read's [`Output`] to the engine over a
//! bounded channel: when the engine is slow, the send waits and so does the next TCP read, so
//! memory stays bounded and nothing is dropped. When the connection ends for any reason, the
//! session is closed, which withdraws every route of every peer of that router.
//!
//! Log lines about a session's messages are bounded by a [`LogBudget`] per session (and one for
//! refused connections); what is left out is counted.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::clock::unix_now;

use serde::Serialize;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use crate::log::LogBudget;

/// Lines each session (and the accept loop) may write per interval.
pub const LOG_BURST: u32 = 10;

/// The interval of [`LOG_BURST`]; one summary line per interval at most.
pub const LOG_INTERVAL: Duration = Duration::from_secs(60);
use super::message::{format_distinguisher, MessageType};
use super::metrics::BmpMetrics;
use super::session::{Output, PeerState, RouterSession, SessionState};
use super::FrameReader;
use crate::config::BmpConfig;
use crate::registry::SharedRegistry;

/// A router as shown by `/api/v1/status`.
#[derive(Debug, Clone, Serialize)]
pub struct RouterStatus {
    /// The `router` label.
    pub router: String,
    /// Source address and port of the session.
    pub remote: SocketAddr,
    /// sysName from the Initiation.
    pub sys_name: Option<String>,
    /// sysDescr from the Initiation.
    pub sys_descr: Option<String>,
    /// The reverse-DNS name of the router's address, for routers without a configured name
    /// (DNS enrichment; filled in by the API from the name cache).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns_name: Option<String>,
    /// Whether `[[bmp.router]]` names it (then no reverse-DNS name is looked up).
    #[serde(skip)]
    pub configured: bool,
    /// `up`, `terminated` or `down` (a configured router not connected).
    pub state: &'static str,
    /// When the session started (or ended, for `down`); RFC 3339 in JSON.
    #[serde(with = "crate::time_fmt::serde")]
    pub since: f64,
    /// Whether every up peer has sent End-of-RIB for its tables.
    pub initial_tables_complete: bool,
    /// When its last BMP message arrived (wall clock; `null`: none yet).
    #[serde(with = "crate::time_fmt::serde::option")]
    pub last_message: Option<f64>,
    /// Messages received per type.
    pub messages: BTreeMap<&'static str, u64>,
    /// Route entries decoded and matched.
    pub routes_processed: u64,
    /// Route entries that matched a registered prefix.
    pub routes_matched: u64,
    /// Monitored peers.
    pub peers: Vec<PeerStatus>,
}

/// A monitored peer as shown by `/api/v1/status`.
#[derive(Debug, Clone, Serialize)]
pub struct PeerStatus {
    /// Peer address.
    pub address: std::net::IpAddr,
    /// Peer AS.
    pub asn: u32,
    /// BGP identifier.
    pub bgp_id: std::net::Ipv4Addr,
    /// `global`, `rd_instance`, `local_instance`, `loc_rib` or `other`.
    pub peer_type: &'static str,
    /// Route distinguisher (RD instance peers).
    pub distinguisher: Option<String>,
    /// `up` or `down`.
    pub state: &'static str,
    /// Time of the last state change; RFC 3339 in JSON.
    #[serde(with = "crate::time_fmt::serde")]
    pub since: f64,
    /// Whether its initial tables are complete (End-of-RIB).
    pub initial_table_complete: bool,
    /// Its BGP Role relative to the router (RFC 9234 capability in the OPEN it sent, from the
    /// latest Peer Up); `null` when unknown.
    pub role: Option<crate::model::PeerRole>,
}

/// A connected router's session, shared between its task (which feeds it) and the board (which
/// builds its status only when the API asks: nothing is copied per read, whatever the size of
/// the router's peer table).
type SharedSession = Arc<Mutex<RouterSession>>;

fn lock(session: &SharedSession) -> std::sync::MutexGuard<'_, RouterSession> {
    session
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Shared view of the connected routers, for the API and `/ready`.
#[derive(Debug, Default)]
pub struct RouterBoard {
    /// Live sessions by id, with the time each started.
    routers: Mutex<BTreeMap<u64, (SharedSession, f64)>>,
    /// Configured routers, with the time their last session ended (listed as `down` while not
    /// connected).
    configured: Mutex<Vec<(crate::config::BmpRouter, f64)>>,
    /// Connected routers whose initial tables are neither complete nor timed out.
    pending: AtomicUsize,
}

impl RouterBoard {
    /// A board that lists `configured` routers even while they are not connected.
    pub fn new(configured: &[crate::config::BmpRouter]) -> RouterBoard {
        let started = unix_now();
        RouterBoard {
            configured: Mutex::new(configured.iter().map(|r| (r.clone(), started)).collect()),
            ..RouterBoard::default()
        }
    }

    /// Connected routers by session, then configured routers that are not connected. Each
    /// session's status (its peer list included) is built here, on demand.
    pub fn snapshot(&self) -> Vec<RouterStatus> {
        let sessions: Vec<(SharedSession, f64)> = self
            .routers
            .lock()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        let mut list: Vec<RouterStatus> = sessions
            .iter()
            .map(|(s, since)| status_of(&lock(s), *since))
            .collect();
        if let Ok(configured) = self.configured.lock() {
            for (r, since) in configured.iter() {
                if !list
                    .iter()
                    .any(|s| s.remote.ip() == r.address && s.configured)
                {
                    list.push(RouterStatus {
                        router: r.name.clone(),
                        remote: SocketAddr::new(r.address, 0),
                        sys_name: None,
                        sys_descr: None,
                        dns_name: None,
                        configured: true,
                        state: "down",
                        since: *since,
                        initial_tables_complete: false,
                        last_message: None,
                        messages: BTreeMap::new(),
                        routes_processed: 0,
                        routes_matched: 0,
                        peers: Vec::new(),
                    });
                }
            }
        }
        list
    }

    /// Whether no connected router is still sending its initial tables.
    pub fn initial_tables_in(&self) -> bool {
        self.pending.load(Ordering::Acquire) == 0
    }

    fn put(&self, id: u64, session: SharedSession, since: f64) {
        if let Ok(mut m) = self.routers.lock() {
            m.insert(id, (session, since));
        }
    }

    fn remove(&self, id: u64, remote: SocketAddr) {
        if let Ok(mut m) = self.routers.lock() {
            m.remove(&id);
        }
        if let Ok(mut configured) = self.configured.lock() {
            for (r, since) in configured.iter_mut() {
                if r.address == remote.ip() {
                    *since = unix_now();
                }
            }
        }
    }
}

fn status_of(session: &RouterSession, since: f64) -> RouterStatus {
    RouterStatus {
        router: session.label().to_string(),
        remote: session.remote(),
        sys_name: session.sys_name().map(String::from),
        sys_descr: session.sys_descr().map(String::from),
        dns_name: None,
        configured: session.configured_name().is_some(),
        state: match session.state() {
            SessionState::Open => "up",
            SessionState::Terminated => "terminated",
            SessionState::Closed => "down",
        },
        since,
        initial_tables_complete: session.initial_tables_complete(),
        last_message: session.last_received(),
        messages: session
            .counts()
            .iter()
            .map(|(t, n)| (t.label(), n))
            .collect(),
        routes_processed: session.processed(),
        routes_matched: session.matched(),
        peers: session
            .peers()
            .iter()
            .map(|p| PeerStatus {
                address: p.id.address,
                asn: p.id.asn,
                bgp_id: p.bgp_id,
                peer_type: p.id.peer_type.label(),
                distinguisher: (p.id.distinguisher != 0)
                    .then(|| format_distinguisher(p.id.distinguisher)),
                state: match p.state {
                    PeerState::Up => "up",
                    PeerState::Down => "down",
                },
                since: p.since,
                initial_table_complete: p.initial_table_complete(),
                role: p.role(),
            })
            .collect(),
    }
}

/// Everything a session task needs.
#[derive(Clone)]
pub struct ListenerContext {
    /// `[bmp]` settings.
    pub config: Arc<BmpConfig>,
    /// The registry routes are matched against (the one in force at each read).
    pub registry: SharedRegistry,
    /// BMP metrics.
    pub metrics: BmpMetrics,
    /// Connected routers.
    pub board: Arc<RouterBoard>,
    /// Where session outputs go (the engine task).
    pub outputs: mpsc::Sender<Output>,
    /// Set to true on shutdown.
    pub shutdown: watch::Receiver<bool>,
    /// Reverse DNS of routers without a configured name (looked up in the background when
    /// they connect; the API reads the cache).
    pub dns: crate::dns::Enricher,
}

/// Session slots in use: in all, by sources that are not configured routers, per address.
#[derive(Debug, Default)]
struct Slots {
    total: usize,
    unknown: usize,
    per_address: HashMap<IpAddr, usize>,
}

/// One session's slot, given back when the session task ends.
struct SlotGuard {
    slots: Arc<Mutex<Slots>>,
    address: IpAddr,
    configured: bool,
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        let Ok(mut s) = self.slots.lock() else {
            return;
        };
        s.total = s.total.saturating_sub(1);
        if !self.configured {
            s.unknown = s.unknown.saturating_sub(1);
        }
        if let Some(n) = s.per_address.get_mut(&self.address) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                s.per_address.remove(&self.address);
            }
        }
    }
}

/// Takes a slot for a connection from `address`, or says why not (a `reject` reason). One
/// slot per configured router is reserved: other sources may use `max_sessions - routers`.
fn take_slot(
    slots: &Arc<Mutex<Slots>>,
    config: &BmpConfig,
    address: IpAddr,
    configured: bool,
) -> Result<SlotGuard, &'static str> {
    let Ok(mut s) = slots.lock() else {
        return Err("too_many_sessions");
    };
    if s.total >= config.max_sessions {
        return Err("too_many_sessions");
    }
    if s.per_address.get(&address).copied().unwrap_or(0) >= config.max_sessions_per_address {
        return Err("too_many_from_address");
    }
    if !configured && s.unknown >= config.max_sessions.saturating_sub(config.routers.len()) {
        return Err("reserved_for_configured");
    }
    s.total += 1;
    if !configured {
        s.unknown += 1;
    }
    *s.per_address.entry(address).or_insert(0) += 1;
    Ok(SlotGuard {
        slots: slots.clone(),
        address,
        configured,
    })
}

/// TCP keepalive on an accepted connection: probes after `seconds` of silence, then every
/// quarter of it; four unanswered probes end the connection (a read error `TimedOut`, closed
/// as `keepalive_timeout`). A router that vanished without FIN or RST is so detected in about
/// twice `seconds`.
fn set_keepalive(stream: &TcpStream, seconds: u64) -> std::io::Result<()> {
    if seconds == 0 {
        return Ok(());
    }
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(Duration::from_secs(seconds))
        .with_interval(Duration::from_secs((seconds / 4).max(1)));
    #[cfg(any(
        target_os = "linux",
        target_os = "android",
        target_os = "freebsd",
        target_os = "macos"
    ))]
    let keepalive = keepalive.with_retries(4);
    socket2::SockRef::from(stream).set_tcp_keepalive(&keepalive)
}

/// Writes the summary of suppressed log lines, if any are due (or `force`d at the end).
fn summarise(budget: &mut LogBudget, metrics: &BmpMetrics, what: &str, force: bool) {
    let n = if force {
        budget.take()
    } else {
        budget.due(Instant::now())
    };
    if let Some(n) = n {
        metrics.log_suppressed(n);
        warn!(
            suppressed = n,
            "{what}: {n} more log lines not written (at most {LOG_BURST} per {} s)",
            LOG_INTERVAL.as_secs()
        );
    }
}

/// Accepts BMP sessions until shutdown.
pub async fn serve(listener: TcpListener, ctx: ListenerContext) {
    let slots = Arc::new(Mutex::new(Slots::default()));
    let reserved: Arc<[String]> = ctx.config.routers.iter().map(|r| r.name.clone()).collect();
    // Refusals are logged within one budget (an outsider can connect in a loop).
    let mut budget = LogBudget::new(LOG_BURST, LOG_INTERVAL, Instant::now());
    let mut next_id = 0u64;
    let mut shutdown = ctx.shutdown.clone();
    loop {
        let summary_due = budget.pending();
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.wait_for(|s| *s) => return,
            _ = tokio::time::sleep_until(budget.interval_end().into()), if summary_due => {
                summarise(&mut budget, &ctx.metrics, "BMP connections refused", false);
                continue;
            }
        };
        summarise(&mut budget, &ctx.metrics, "BMP connections refused", false);
        let (stream, remote) = match accepted {
            Ok(x) => x,
            Err(e) => {
                if budget.allow() {
                    warn!(error = %e, "BMP accept failed");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if !ctx.config.allow.iter().any(|n| n.contains(&remote.ip())) {
            ctx.metrics.rejected("not_allowed");
            if budget.allow() {
                warn!(%remote, "BMP connection from outside the allowed networks; closed");
            }
            continue;
        }
        let configured = ctx.config.routers.iter().any(|r| r.address == remote.ip());
        let slot = match take_slot(&slots, &ctx.config, remote.ip(), configured) {
            Ok(slot) => slot,
            Err(reason) => {
                ctx.metrics.rejected(reason);
                if budget.allow() {
                    warn!(%remote, reason, max = ctx.config.max_sessions,
                        per_address = ctx.config.max_sessions_per_address,
                        reserved = ctx.config.routers.len(),
                        "BMP session limit reached; connection closed");
                }
                continue;
            }
        };
        if let Err(e) = set_keepalive(&stream, ctx.config.tcp_keepalive_seconds) {
            warn!(%remote, error = %e, "TCP keepalive not set on the BMP connection");
        }
        next_id += 1;
        let (ctx, id, reserved) = (ctx.clone(), next_id, reserved.clone());
        tokio::spawn(async move {
            session(stream, remote, id, ctx, reserved).await;
            drop(slot);
        });
    }
}

/// While a router's initial tables are pending, the session wakes up this often to check the
/// initial-table timeout even when no data arrives.
const STATUS_EVERY: Duration = Duration::from_millis(250);

/// What one read did, taken out of the shared session (so that no lock is held across an
/// await).
struct ReadResult {
    framed: Result<(), super::FrameError>,
    label: String,
    counts: Vec<(MessageType, u64)>,
    oddities: Vec<(&'static str, u64, bool)>,
    peers_up: usize,
    complete: bool,
    terminated: bool,
    initiated: bool,
    sys_name: Option<String>,
}

async fn session(
    mut stream: TcpStream,
    remote: SocketAddr,
    id: u64,
    mut ctx: ListenerContext,
    reserved: Arc<[String]>,
) {
    let configured = ctx
        .config
        .routers
        .iter()
        .find(|r| r.address == remote.ip())
        .map(|r| r.name.clone());
    let keep_series = configured.is_some();
    if configured.is_none() {
        ctx.dns.prefetch_router_names([remote.ip()]);
    }
    let shared: SharedSession = Arc::new(Mutex::new(
        RouterSession::new(remote, configured)
            .with_max_peers(ctx.config.max_peers_per_router)
            .with_reserved_names(reserved),
    ));
    let mut frames = FrameReader::new(ctx.config.max_frame_bytes);
    let started = unix_now();
    let connected = Instant::now();
    let timeout = Duration::from_secs(ctx.config.initial_table_timeout_seconds);
    let initiation_deadline =
        connected + Duration::from_secs(ctx.config.initiation_timeout_seconds);
    let idle = (ctx.config.idle_timeout_seconds > 0)
        .then(|| Duration::from_secs(ctx.config.idle_timeout_seconds));
    let mut last_message = connected;
    let mut initiated = false;
    let mut pending = true;
    ctx.board.pending.fetch_add(1, Ordering::AcqRel);
    let mut label = lock(&shared).label().to_string();
    ctx.board.put(id, shared.clone(), started);
    ctx.metrics.session_started(&label);
    info!(%remote, router = %label, "BMP session started");
    let mut budget = LogBudget::new(LOG_BURST, LOG_INTERVAL, Instant::now());
    let mut buf = vec![0u8; 64 * 1024];
    let mut reported = [0u64; MessageType::ALL.len()];
    let mut reported_oddities: BTreeMap<&'static str, u64> = BTreeMap::new();
    let reason: &'static str = loop {
        let now = Instant::now();
        let deadline = if !initiated {
            Some(initiation_deadline)
        } else {
            idle.map(|d| last_message + d)
        };
        let mut wake = deadline.unwrap_or(now + Duration::from_secs(3600));
        if pending {
            wake = wake.min(now + STATUS_EVERY);
        }
        if budget.pending() {
            wake = wake.min(budget.interval_end());
        }
        let read = tokio::select! {
            r = stream.read(&mut buf) => Some(r),
            _ = ctx.shutdown.wait_for(|s| *s) => break "shutdown",
            _ = tokio::time::sleep_until(wake.into()) => None,
        };
        let n = match read {
            None => {
                // A timer: deadlines, readiness, the log summary.
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    break if initiated {
                        "idle_timeout"
                    } else {
                        "initiation_timeout"
                    };
                }
                0
            }
            Some(Ok(0)) => {
                break match frames.finish() {
                    Err(_) => "truncated",
                    Ok(()) => "tcp_close",
                }
            }
            Some(Ok(n)) => n,
            Some(Err(e)) => {
                let keepalive = e.kind() == std::io::ErrorKind::TimedOut;
                warn!(router = %label, error = %e, "BMP read failed");
                break if keepalive {
                    "keepalive_timeout"
                } else {
                    "read_error"
                };
            }
        };
        summarise(
            &mut budget,
            &ctx.metrics,
            &format!("BMP session {label}"),
            false,
        );
        let t = unix_now();
        let mut out = Output::default();
        let registry = ctx.registry.current();
        let frames_before = frames.frames();
        let r = {
            let mut session = lock(&shared);
            let framed = frames.feed(&buf[..n], |frame| {
                session.handle_frame(frame, &registry, t, &mut out)
            });
            let counts = session
                .counts()
                .iter()
                .map(|(t, c)| {
                    let delta = c - reported[t.index()];
                    reported[t.index()] = c;
                    (t, delta)
                })
                .collect();
            let oddities = session
                .anomalies()
                .iter()
                .filter_map(|(&k, &c)| {
                    let before = reported_oddities.insert(k, c).unwrap_or(0);
                    (c > before).then_some((k, c - before, before == 0))
                })
                .collect();
            ReadResult {
                framed,
                label: session.label().to_string(),
                counts,
                oddities,
                peers_up: session.peers_up(),
                complete: session.initial_tables_complete(),
                terminated: session.state() == SessionState::Terminated,
                initiated: session.initiated(),
                sys_name: session.sys_name().map(String::from),
            }
        };
        if frames.frames() > frames_before {
            last_message = Instant::now();
        }
        initiated = r.initiated;
        for e in &out.errors {
            if budget.allow() {
                warn!(router = %label, error = e.label, detail = %e.detail, "BMP message problem");
            }
        }
        // The label may become the sysName once the Initiation arrives.
        if r.label != label {
            ctx.metrics.relabeled(&label, &r.label);
            label = r.label;
        }
        for &(kind, n, first) in &r.oddities {
            ctx.metrics.oddities(kind, n);
            if first && budget.allow() {
                if kind == "name_conflict" {
                    warn!(%remote, router = %label, sys_name = r.sys_name.as_deref().unwrap_or(""),
                        "BMP sysName is the configured name of another router's address; \
                         labelled by its own address instead");
                } else {
                    warn!(router = %label, kind,
                        "BMP protocol oddity (data used; logged once per session, counted in \
                         routewatch_bmp_protocol_oddities_total)");
                }
            }
        }
        ctx.metrics
            .received(&label, n as u64, &r.counts, r.peers_up);
        if !out.is_empty() && ctx.outputs.send(out).await.is_err() {
            break "shutdown";
        }
        if pending && (r.complete || connected.elapsed() >= timeout) {
            pending = false;
            ctx.board.pending.fetch_sub(1, Ordering::AcqRel);
            info!(router = %label, complete = r.complete, "BMP initial tables in");
        }
        if let Err(e) = r.framed {
            warn!(router = %label, error = %e, "BMP framing error; session closed");
            break super::metrics::frame_error_reason(&e);
        }
        if r.terminated {
            break "termination";
        }
    };
    // Whatever ended the session, every route of every peer of this router goes.
    let mut out = Output::default();
    lock(&shared).close(unix_now(), &mut out);
    if !out.is_empty() {
        let _ = ctx.outputs.send(out).await;
    }
    if pending {
        ctx.board.pending.fetch_sub(1, Ordering::AcqRel);
    }
    ctx.board.remove(id, remote);
    summarise(
        &mut budget,
        &ctx.metrics,
        &format!("BMP session {label}"),
        true,
    );
    ctx.metrics.session_ended(&label, reason, keep_series);
    info!(%remote, router = %label, reason, "BMP session ended");
}
