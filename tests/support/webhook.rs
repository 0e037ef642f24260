//! A webhook receiver for notification tests: a std `TcpListener` on 127.0.0.1 (a free port)
//! that records every request (path, headers, body, arrival time) and answers as the test says
//! per path and per request number — a status with headers, or no answer at all (a hung
//! server). Stopped and joined on drop; a hung connection ends at the drop or after 60 s.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One request received.
#[derive(Clone, Debug)]
pub struct Received {
    /// Request target (path and query).
    pub path: String,
    /// Header fields, in order.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
    /// When it arrived.
    pub at: Instant,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{}: not JSON ({e}): {:?}", self.path, self.body))
    }
}

/// How the receiver answers a request.
#[derive(Clone, Debug)]
pub enum Answer {
    /// This status with these extra header fields.
    Status(u16, Vec<(String, String)>),
    /// No answer (the connection is held open).
    Hang,
}

impl Answer {
    pub fn ok() -> Answer {
        Answer::Status(200, Vec::new())
    }
}

type Answering = dyn Fn(&str, usize) -> Answer + Send + Sync;

/// The running receiver.
pub struct WebhookServer {
    /// Its port on 127.0.0.1.
    pub port: u16,
    received: Arc<Mutex<Vec<Received>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl WebhookServer {
    /// Starts the receiver; `answer(path, n)` says how to answer the `n`-th (from 0) request
    /// to `path`.
    pub fn start(answer: impl Fn(&str, usize) -> Answer + Send + Sync + 'static) -> WebhookServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let answer: Arc<Answering> = Arc::new(answer);
        let thread = {
            let (received, stop) = (received.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut handlers = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let (received, stop, answer) =
                                (received.clone(), stop.clone(), answer.clone());
                            handlers.push(std::thread::spawn(move || {
                                serve(stream, &received, &stop, &*answer)
                            }));
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(5));
                        }
                        Err(e) => panic!("accept: {e}"),
                    }
                }
                for h in handlers {
                    let _ = h.join();
                }
            })
        };
        WebhookServer {
            port,
            received,
            stop,
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The requests received so far on `path`, in arrival order.
    pub fn on(&self, path: &str) -> Vec<Received> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    /// Waits (at most `timeout`) until the requests on `path` satisfy `check`; returns them.
    pub fn wait(
        &self,
        path: &str,
        what: &str,
        timeout: Duration,
        check: impl Fn(&[Received]) -> bool,
    ) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.on(path);
            if check(&got) {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: not so after {timeout:?}; {path} received {:#?}",
                got.iter()
                    .map(|r| String::from_utf8_lossy(&r.body).into_owned())
                    .collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for WebhookServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(
    mut stream: TcpStream,
    received: &Mutex<Vec<Received>>,
    stop: &AtomicBool,
    answer: &Answering,
) {
    stream.set_nonblocking(false).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(p) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
        }
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let path = request_line
        .split(' ')
        .nth(1)
        .unwrap_or_default()
        .to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = raw[head_end + 4..].to_vec();
    while body.len() < length {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => body.extend_from_slice(&buf[..n]),
        }
    }
    let nth = {
        let mut r = received.lock().unwrap();
        let nth = r.iter().filter(|x| x.path == path).count();
        r.push(Received {
            path: path.clone(),
            headers,
            body,
            at: Instant::now(),
        });
        nth
    };
    match answer(&path, nth) {
        Answer::Status(code, extra) => {
            let body = format!("answer {code}\n");
            let mut response = format!(
                "HTTP/1.1 {code} X\r\nContent-Length: {}\r\nConnection: close\r\n",
                body.len()
            );
            for (k, v) in extra {
                response.push_str(&format!("{k}: {v}\r\n"));
            }
            response.push_str("\r\n");
            response.push_str(&body);
            let _ = stream.write_all(response.as_bytes());
        }
        Answer::Hang => {
            let until = Instant::now() + Duration::from_secs(60);
            while !stop.load(Ordering::Relaxed) && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}
