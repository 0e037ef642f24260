//! The BMP TCP listener: the I/O edge of the BMP feed.
//!
//! One task accepts connections (allowlist and session cap checked first, refusals counted), and
//! one task per connection reads the stream, frames it, runs the router's
//! [`RouterSession`] and sends each read's [`Output`] to the engine over a
//! bounded channel: when the engine is slow, the send waits and so does the next TCP read, so
//! memory stays bounded and nothing is dropped. When the connection ends for any reason, the
//! session is closed, which withdraws every route of every peer of that router.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::clock::unix_now;

use serde::Serialize;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

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
    /// When the session started (or ended, for `down`), seconds since the epoch.
    pub since: f64,
    /// Whether every up peer has sent End-of-RIB for its tables.
    pub initial_tables_complete: bool,
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
    /// Time of the last state change.
    pub since: f64,
    /// Whether its initial tables are complete (End-of-RIB).
    pub initial_table_complete: bool,
}

/// Shared view of the connected routers, for the API and `/ready`.
#[derive(Debug, Default)]
pub struct RouterBoard {
    routers: Mutex<BTreeMap<u64, RouterStatus>>,
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

    /// Connected routers by session, then configured routers that are not connected.
    pub fn snapshot(&self) -> Vec<RouterStatus> {
        let mut list: Vec<RouterStatus> = self
            .routers
            .lock()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        if let Ok(configured) = self.configured.lock() {
            for (r, since) in configured.iter() {
                if !list.iter().any(|s| s.remote.ip() == r.address) {
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

    fn put(&self, id: u64, status: RouterStatus) {
        if let Ok(mut m) = self.routers.lock() {
            m.insert(id, status);
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

/// Accepts BMP sessions until shutdown.
pub async fn serve(listener: TcpListener, ctx: ListenerContext) {
    let active = Arc::new(AtomicUsize::new(0));
    let mut next_id = 0u64;
    let mut shutdown = ctx.shutdown.clone();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.wait_for(|s| *s) => return,
        };
        let (stream, remote) = match accepted {
            Ok(x) => x,
            Err(e) => {
                warn!(error = %e, "BMP accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if !ctx.config.allow.iter().any(|n| n.contains(&remote.ip())) {
            ctx.metrics.rejected("not_allowed");
            warn!(%remote, "BMP connection from outside the allowed networks; closed");
            continue;
        }
        if active.load(Ordering::Acquire) >= ctx.config.max_sessions {
            ctx.metrics.rejected("too_many_sessions");
            warn!(%remote, max = ctx.config.max_sessions, "BMP session limit reached; connection closed");
            continue;
        }
        active.fetch_add(1, Ordering::AcqRel);
        next_id += 1;
        let (ctx, active, id) = (ctx.clone(), active.clone(), next_id);
        tokio::spawn(async move {
            session(stream, remote, id, ctx).await;
            active.fetch_sub(1, Ordering::AcqRel);
        });
    }
}

/// While a router's initial tables are pending, the session wakes up this often to check the
/// initial-table timeout even when no data arrives.
const STATUS_EVERY: Duration = Duration::from_millis(250);

async fn session(mut stream: TcpStream, remote: SocketAddr, id: u64, mut ctx: ListenerContext) {
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
    let mut session = RouterSession::new(remote, configured);
    let mut frames = FrameReader::new(ctx.config.max_frame_bytes);
    let started = unix_now();
    let connected = Instant::now();
    let timeout = Duration::from_secs(ctx.config.initial_table_timeout_seconds);
    let mut pending = true;
    ctx.board.pending.fetch_add(1, Ordering::AcqRel);
    let mut label = session.label().to_string();
    ctx.metrics.session_started(&label);
    info!(%remote, router = %label, "BMP session started");
    let mut buf = vec![0u8; 64 * 1024];
    let mut reported = [0u64; MessageType::ALL.len()];
    let reason: &'static str = loop {
        let read = tokio::select! {
            r = stream.read(&mut buf) => r,
            _ = ctx.shutdown.wait_for(|s| *s) => break "shutdown",
            _ = tokio::time::sleep(STATUS_EVERY), if pending => Ok(usize::MAX),
        };
        let n = match read {
            Ok(usize::MAX) => 0, // a timer tick: only refresh readiness
            Ok(0) => break "tcp_close",
            Ok(n) => n,
            Err(e) => {
                warn!(router = %label, error = %e, "BMP read failed");
                break "read_error";
            }
        };
        let t = unix_now();
        let mut out = Output::default();
        let registry = ctx.registry.current();
        let framed = frames.feed(&buf[..n], |frame| {
            session.handle_frame(frame, &registry, t, &mut out)
        });
        for e in &out.errors {
            warn!(router = %label, error = e.label, detail = %e.detail, "BMP message problem");
        }
        // The label may become the sysName once the Initiation arrives.
        if session.label() != label {
            let new = session.label().to_string();
            ctx.metrics.relabeled(&label, &new);
            label = new;
        }
        let counts: Vec<(MessageType, u64)> = session
            .counts()
            .iter()
            .map(|(t, c)| {
                let delta = c - reported[t.index()];
                reported[t.index()] = c;
                (t, delta)
            })
            .collect();
        ctx.metrics
            .received(&label, n as u64, &counts, session.peers_up());
        if !out.is_empty() && ctx.outputs.send(out).await.is_err() {
            break "shutdown";
        }
        if pending && (session.initial_tables_complete() || connected.elapsed() >= timeout) {
            pending = false;
            ctx.board.pending.fetch_sub(1, Ordering::AcqRel);
            info!(router = %label, complete = session.initial_tables_complete(), "BMP initial tables in");
        }
        // Every read refreshes the router's status (a clone of a small record per read).
        ctx.board.put(id, status_of(&session, started));
        if let Err(e) = framed {
            warn!(router = %label, error = %e, "BMP framing error; session closed");
            break super::metrics::frame_error_reason(&e);
        }
        if session.state() == SessionState::Terminated {
            break "termination";
        }
    };
    // Whatever ended the session, every route of every peer of this router goes.
    let mut out = Output::default();
    session.close(unix_now(), &mut out);
    if !out.is_empty() {
        let _ = ctx.outputs.send(out).await;
    }
    if pending {
        ctx.board.pending.fetch_sub(1, Ordering::AcqRel);
    }
    ctx.board.remove(id, remote);
    ctx.metrics.session_ended(&label, reason, keep_series);
    info!(%remote, router = %label, reason, "BMP session ended");
}
