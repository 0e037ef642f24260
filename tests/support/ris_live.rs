//! A local RIS Live server for tests: a WebSocket server on 127.0.0.1 (plain, or TLS with a
//! certificate the test generates) speaking the RIS Live protocol far enough for routewatch:
//! it records `ris_subscribe` / `ris_unsubscribe` (the subscriptions in force), answers `ping`
//! with `pong`, sends a KEEPALIVE heartbeat while asked to, and sends what the test queues, or
//! drops or closes the connection. Runs on its own thread with its own runtime; stops when
//! dropped.
#![allow(dead_code, clippy::result_large_err)]

use std::collections::{BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::Message;

/// What the test asks the connection to do next.
#[derive(Debug, Clone)]
pub enum Command {
    /// Send this text frame.
    Send(String),
    /// Close the TCP connection without a WebSocket close.
    Drop,
    /// Send a close frame and end the connection.
    Close,
}

/// What the server saw, and what it is asked to do.
#[derive(Debug, Default)]
pub struct State {
    /// Connections accepted (WebSocket handshakes completed).
    pub connections: u32,
    /// Request path and query of each connection.
    pub requests: Vec<String>,
    /// Subscriptions in force on the current connection (their `data`, as compact JSON with
    /// sorted keys).
    pub subscriptions: BTreeSet<String>,
    /// Every `ris_subscribe` / `ris_unsubscribe` received, in order, with its kind.
    pub log: Vec<(String, String)>,
    /// `ping`s received.
    pub pings: u32,
    /// While set, a KEEPALIVE is sent every 200 ms.
    pub heartbeat: bool,
    /// Queued commands for the current connection.
    pub queue: VecDeque<Command>,
    /// When the current connection was accepted.
    pub connected_at: Option<std::time::Instant>,
}

/// The running server.
pub struct RisServer {
    /// Its address.
    pub addr: SocketAddr,
    /// Shared state.
    pub state: Arc<Mutex<State>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// The heartbeat fixture.
pub fn keepalive() -> String {
    std::fs::read_to_string(crate::support::fixture("ris-live/keepalive.json"))
        .unwrap()
        .trim()
        .to_string()
}

/// The lines of a fixture file.
pub fn fixture_lines(name: &str) -> Vec<String> {
    std::fs::read_to_string(crate::support::fixture(&format!("ris-live/{name}")))
        .unwrap()
        .lines()
        .map(str::to_string)
        .filter(|l| !l.is_empty())
        .collect()
}

impl RisServer {
    /// A plain (`ws://`) server.
    pub fn start() -> RisServer {
        RisServer::start_with(None)
    }

    /// A TLS (`wss://`) server with `config`.
    pub fn start_tls(config: Arc<rustls::ServerConfig>) -> RisServer {
        RisServer::start_with(Some(config))
    }

    fn start_with(tls: Option<Arc<rustls::ServerConfig>>) -> RisServer {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let addr = std_listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State {
            heartbeat: true,
            ..State::default()
        }));
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let st = state.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
                let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
                let serve = async {
                    loop {
                        let Ok((tcp, _)) = listener.accept().await else {
                            continue;
                        };
                        // One connection at a time, as routewatch makes them.
                        match &acceptor {
                            Some(a) => {
                                if let Ok(Ok(s)) =
                                    tokio::time::timeout(Duration::from_secs(5), a.accept(tcp))
                                        .await
                                {
                                    connection(s, st.clone()).await;
                                }
                            }
                            None => connection(tcp, st.clone()).await,
                        }
                    }
                };
                tokio::select! {
                    _ = serve => {}
                    _ = stop_rx => {}
                }
            });
        });
        RisServer {
            addr,
            state,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// `ws://127.0.0.1:port/v1/ws/` (or `wss://`).
    pub fn url(&self, tls: bool) -> String {
        let scheme = if tls { "wss" } else { "ws" };
        format!("{scheme}://{}/v1/ws/", self.addr)
    }

    /// Queues commands for the current connection.
    pub fn queue(&self, cmds: impl IntoIterator<Item = Command>) {
        self.state.lock().unwrap().queue.extend(cmds);
    }

    /// Queues a fixture file's lines to be sent.
    pub fn send_fixture(&self, name: &str) {
        self.queue(fixture_lines(name).into_iter().map(Command::Send));
    }

    /// Turns the heartbeat on or off.
    pub fn heartbeat(&self, on: bool) {
        self.state.lock().unwrap().heartbeat = on;
    }

    /// Reads the state.
    pub fn with<T>(&self, f: impl FnOnce(&State) -> T) -> T {
        f(&self.state.lock().unwrap())
    }
}

impl Drop for RisServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Canonical JSON text (sorted keys, compact).
fn canonical(v: &serde_json::Value) -> String {
    serde_json::to_string(v).unwrap()
}

async fn connection<S: AsyncRead + AsyncWrite + Unpin>(stream: S, st: Arc<Mutex<State>>) {
    let path = Arc::new(Mutex::new(String::new()));
    let p2 = path.clone();
    let callback = move |req: &Request, resp: Response| {
        *p2.lock().unwrap() = req.uri().to_string();
        Ok(resp)
    };
    let Ok(Ok(ws)) = tokio::time::timeout(
        Duration::from_secs(5),
        tokio_tungstenite::accept_hdr_async(stream, callback),
    )
    .await
    else {
        return;
    };
    {
        let mut s = st.lock().unwrap();
        s.connections += 1;
        s.requests.push(path.lock().unwrap().clone());
        s.subscriptions.clear();
        s.connected_at = Some(std::time::Instant::now());
    }
    let (mut sink, mut frames) = ws.split();
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let mut last_heartbeat = std::time::Instant::now();
    let heartbeat = keepalive();
    loop {
        tokio::select! {
            frame = frames.next() => match frame {
                Some(Ok(Message::Text(t))) => {
                    let Ok(v) = serde_json::from_str::<serde_json::Value>(t.as_str()) else {
                        continue;
                    };
                    let kind = v["type"].as_str().unwrap_or("").to_string();
                    match kind.as_str() {
                        "ping" => {
                            st.lock().unwrap().pings += 1;
                            if sink.send(Message::Text(r#"{"type":"pong","data":null}"#.into())).await.is_err() {
                                return;
                            }
                        }
                        "ris_subscribe" | "ris_unsubscribe" => {
                            let data = canonical(&v["data"]);
                            let mut s = st.lock().unwrap();
                            s.log.push((kind.clone(), data.clone()));
                            if kind == "ris_subscribe" {
                                s.subscriptions.insert(data);
                            } else {
                                s.subscriptions.remove(&data);
                            }
                        }
                        _ => {}
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
            _ = tick.tick() => {
                let (cmd, beat) = {
                    let mut s = st.lock().unwrap();
                    (s.queue.pop_front(), s.heartbeat)
                };
                match cmd {
                    Some(Command::Send(text)) => {
                        let sent = sink.send(Message::Text(text.into())).await;
                        if sent.is_err() {
                            return;
                        }
                    }
                    Some(Command::Drop) => return,
                    Some(Command::Close) => {
                        let _ = sink.send(Message::Close(None)).await;
                        return;
                    }
                    None => {}
                }
                if beat && last_heartbeat.elapsed() >= Duration::from_millis(200) {
                    last_heartbeat = std::time::Instant::now();
                    if sink.send(Message::Text(heartbeat.clone().into())).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

/// A self-signed certificate for 127.0.0.1 and its server configuration; the certificate's PEM
/// is what the daemon trusts through `ca-file`.
pub fn tls_identity() -> (Arc<rustls::ServerConfig>, String) {
    let rcgen::CertifiedKey { cert, signing_key } =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .unwrap();
    let pem = cert.pem();
    let der = rustls::pki_types::CertificateDer::from(cert.der().to_vec());
    let key = rustls::pki_types::PrivateKeyDer::try_from(signing_key.serialize_der()).unwrap();
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![der], key)
        .unwrap();
    (Arc::new(config), pem)
}
