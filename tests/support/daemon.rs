//! Helpers for tests that run the `routewatch run` daemon: a tiny blocking HTTP/1.1 client, a
//! Prometheus text-exposition parser, `promtool check metrics`, free loopback ports, and the
//! daemon process itself (a [`ChildGuard`]: killed by pid when dropped, its log printed when a
//! test fails).

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use super::config::ConfigFile;
use super::process::ChildGuard;

/// How long `/ready` may take.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a metric may take to reach its expected value.
pub const WATCH_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the daemon may take to exit after SIGTERM.
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(10);
/// Poll interval.
pub const POLL: Duration = Duration::from_millis(100);

// ---- a tiny blocking HTTP/1.1 client ----------------------------------------------------------

#[derive(Debug)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Header fields, in order.
    pub headers: Vec<(String, String)>,
    /// The body (chunked transfer decoded).
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.body.clone()).expect("UTF-8 body")
    }

    pub fn json(&self) -> serde_json::Value {
        assert_eq!(
            self.header("content-type"),
            Some("application/json"),
            "JSON content type"
        );
        serde_json::from_slice(&self.body).expect("JSON body")
    }
}

fn invalid(msg: impl Into<String>) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg.into())
}

/// `GET path` on 127.0.0.1:`port` with `Connection: close`, read to the end.
pub fn http_get(port: u16, path: &str) -> std::io::Result<HttpResponse> {
    http_request(port, "GET", path)
}

/// `METHOD path` (no body) on 127.0.0.1:`port` with `Connection: close`, read to the end.
pub fn http_request(port: u16, method: &str, path: &str) -> std::io::Result<HttpResponse> {
    http_request_with(port, method, path, &[])
}

/// [`http_request`] with more header fields.
pub fn http_request_with(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<HttpResponse> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.set_write_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: */*\r\nContent-Length: 0\r\nConnection: close\r\n{}\r\n",
        headers.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect::<String>()
    )?;
    stream.flush()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    parse_response(&raw)
}

pub fn parse_response(raw: &[u8]) -> std::io::Result<HttpResponse> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| invalid("no end of the response head"))?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| invalid("head is not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(invalid(format!("bad status line {status_line:?}")));
    }
    let status = parts
        .next()
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| invalid(format!("bad status line {status_line:?}")))?;
    let mut headers = Vec::new();
    for line in lines {
        let (k, v) = line
            .split_once(':')
            .ok_or_else(|| invalid(format!("bad header line {line:?}")))?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let mut response = HttpResponse {
        status,
        headers,
        body: Vec::new(),
    };
    let rest = &raw[end + 4..];
    let chunked = response
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
    response.body = if chunked {
        decode_chunked(rest)?
    } else if let Some(len) = response.header("content-length") {
        let len: usize = len.parse().map_err(|_| invalid("bad content-length"))?;
        if rest.len() != len {
            return Err(invalid(format!(
                "content-length {len} but {} body bytes",
                rest.len()
            )));
        }
        rest.to_vec()
    } else {
        rest.to_vec()
    };
    Ok(response)
}

fn decode_chunked(mut rest: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let eol = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| invalid("unterminated chunk size"))?;
        let size_text = std::str::from_utf8(&rest[..eol]).map_err(|_| invalid("chunk size"))?;
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| invalid("bad chunk size"))?;
        rest = &rest[eol + 2..];
        if size == 0 {
            return Ok(body);
        }
        if rest.len() < size + 2 || &rest[size..size + 2] != b"\r\n" {
            return Err(invalid("truncated chunk"));
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

// ---- the Prometheus text exposition ----------------------------------------------------------

pub type Labels = BTreeMap<String, String>;

/// Samples of one scrape, keyed by metric name and label set.
pub struct Exposition {
    /// Values by (name, labels).
    pub samples: BTreeMap<(String, Labels), f64>,
}

impl Exposition {
    /// Parses `name{label="value",...} value [timestamp]` lines; comments and blanks skipped.
    pub fn parse(text: &str) -> Result<Exposition, String> {
        let mut samples = BTreeMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (key, value) =
                parse_sample(line).map_err(|e| format!("line {}: {e}: {line:?}", i + 1))?;
            if samples.insert(key.clone(), value).is_some() {
                return Err(format!("line {}: duplicate sample {key:?}", i + 1));
            }
        }
        Ok(Exposition { samples })
    }

    /// The value of the sample with exactly this name and label set.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let labels: Labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.samples.get(&(name.to_string(), labels)).copied()
    }

    /// Like [`Exposition::get`], failing with the samples of that name when absent.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels).unwrap_or_else(|| {
            let same_name: Vec<_> = self
                .samples
                .iter()
                .filter(|((n, _), _)| n == name)
                .collect();
            panic!("no sample {name}{labels:?}; samples of that name: {same_name:#?}")
        })
    }

    /// Every sample with the label `key` set to `value`, as (name, labels, value).
    pub fn with_label(&self, key: &str, value: &str) -> Vec<(&str, &Labels, f64)> {
        self.samples
            .iter()
            .filter(|((_, l), _)| l.get(key).is_some_and(|v| v == value))
            .map(|((n, l), v)| (n.as_str(), l, *v))
            .collect()
    }

    /// Every sample named `name`.
    pub fn with_name(&self, name: &str) -> Vec<(&Labels, f64)> {
        self.samples
            .iter()
            .filter(|((n, _), _)| n == name)
            .map(|((_, l), v)| (l, *v))
            .collect()
    }
}

fn is_name_char(c: char, first: bool) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':' || (!first && c.is_ascii_digit())
}

fn parse_sample(line: &str) -> Result<((String, Labels), f64), String> {
    let name_end = line
        .char_indices()
        .find(|&(i, c)| !is_name_char(c, i == 0))
        .map_or(line.len(), |(i, _)| i);
    if name_end == 0 {
        return Err("no metric name".into());
    }
    let name = line[..name_end].to_string();
    let mut rest = &line[name_end..];
    let mut labels = Labels::new();
    if let Some(after) = rest.strip_prefix('{') {
        let mut chars = after.char_indices().peekable();
        let consumed = loop {
            while chars.next_if(|(_, c)| *c == ' ').is_some() {}
            let Some((i, c)) = chars.next() else {
                return Err("unterminated label set".into());
            };
            if c == '}' {
                break i + 1;
            }
            let mut label = String::from(c);
            loop {
                match chars.next() {
                    Some((_, '=')) => break,
                    Some((_, c)) if is_name_char(c, false) => label.push(c),
                    _ => return Err(format!("bad label name after {label:?}")),
                }
            }
            if chars.next().map(|(_, c)| c) != Some('"') {
                return Err(format!("label {label} has no quoted value"));
            }
            let mut value = String::new();
            loop {
                match chars.next() {
                    Some((_, '"')) => break,
                    Some((_, '\\')) => match chars.next() {
                        Some((_, 'n')) => value.push('\n'),
                        Some((_, '\\')) => value.push('\\'),
                        Some((_, '"')) => value.push('"'),
                        other => return Err(format!("bad escape {other:?} in {label}")),
                    },
                    Some((_, c)) => value.push(c),
                    None => return Err(format!("unterminated value of {label}")),
                }
            }
            if labels.insert(label.clone(), value).is_some() {
                return Err(format!("label {label} repeated"));
            }
            match chars.next() {
                Some((_, ',')) => {}
                Some((i, '}')) => break i + 1,
                other => return Err(format!("expected ',' or '}}' after a label, got {other:?}")),
            }
        };
        rest = &after[consumed..];
    }
    if !rest.starts_with(' ') {
        return Err("no space before the value".into());
    }
    let mut fields = rest.split_whitespace();
    let value_text = fields.next().ok_or("no value")?;
    let value: f64 = value_text
        .parse()
        .map_err(|_| format!("bad value {value_text:?}"))?;
    if let Some(ts) = fields.next() {
        ts.parse::<i64>()
            .map_err(|_| format!("bad timestamp {ts:?}"))?;
    }
    if fields.next().is_some() {
        return Err("trailing fields".into());
    }
    Ok(((name, labels), value))
}

// ---- promtool --------------------------------------------------------------------------------

/// Runs `promtool check metrics` on the exposition saved at `path`.
pub fn promtool_check(path: &Path) {
    let input = File::open(path).unwrap();
    let out = match Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(input)
        .output()
    {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "promtool is not installed; it validates the /metrics exposition: \
             apt-get install prometheus"
        ),
        Err(e) => panic!("cannot run promtool: {e}"),
    };
    assert!(
        out.status.success(),
        "promtool check metrics {} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        path.display(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---- the daemon ------------------------------------------------------------------------------

/// A free port on 127.0.0.1 (bound, read, released), never one this test process handed out
/// before: the kernel may offer a just-released port again, and two listeners of one daemon
/// (HTTP and BMP) must not get the same one.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// `path` as a TOML basic string.
pub fn toml_path(path: &Path) -> String {
    let s = path.to_str().expect("UTF-8 path");
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Calls `probe` every [`POLL`] until it returns `Ok`, for at most `timeout`; then panics with
/// `what` and the last `Err` (the logs of the processes are printed when their guards drop).
pub fn poll<T>(what: &str, timeout: Duration, mut probe: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match probe() {
            Ok(v) => return v,
            Err(e) => assert!(
                Instant::now() < deadline,
                "{what}: not so after {timeout:?}: {e}"
            ),
        }
        std::thread::sleep(POLL);
    }
}

/// A running `routewatch run` (a [`ChildGuard`]: killed by pid when dropped while still
/// running, its log printed when the test fails).
pub struct Daemon {
    /// The process; its log is its stdout and stderr.
    pub process: ChildGuard,
    /// Its HTTP port on 127.0.0.1.
    pub port: u16,
}

impl Daemon {
    /// Runs `routewatch run -c` on `config`, logging to a new `routewatch[.N].log` beside it.
    pub fn start(config: &ConfigFile) -> Daemon {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_routewatch"));
        cmd.arg("run").arg("-c").arg(&config.path);
        Daemon::spawn(config, cmd)
    }

    /// [`Daemon::start`] the way some supervisors and CI runners start it: SIGHUP ignored
    /// (inherited across exec), with `env` added.
    pub fn start_with_sighup_ignored(config: &ConfigFile, env: &[(&str, &OsStr)]) -> Daemon {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "trap '' HUP; exec \"$0\" run -c \"$1\""])
            .arg(env!("CARGO_BIN_EXE_routewatch"))
            .arg(&config.path)
            .envs(env.iter().copied());
        Daemon::spawn(config, cmd)
    }

    fn spawn(config: &ConfigFile, mut cmd: Command) -> Daemon {
        let log = (1..)
            .map(|n| match n {
                1 => config.dir.join("routewatch.log"),
                n => config.dir.join(format!("routewatch.{n}.log")),
            })
            .find(|p| !p.exists())
            .unwrap();
        cmd.env("RUST_LOG", "info");
        Daemon {
            process: ChildGuard::start("routewatch", &mut cmd, Some(&log), "cargo build"),
            port: config.http_port.expect("[http] listen"),
        }
    }

    /// Its log file.
    pub fn log_path(&self) -> &Path {
        self.process.log_path().unwrap()
    }

    /// Sends `kill -SIGNAL` to its pid.
    pub fn signal(&self, signal: &str) {
        self.process.signal(signal);
    }

    pub fn log(&self) -> String {
        self.process.log()
    }

    pub fn assert_running(&mut self) {
        self.process.assert_running();
    }

    pub fn get(&mut self, path: &str) -> HttpResponse {
        self.assert_running();
        http_get(self.port, path).unwrap_or_else(|e| panic!("GET {path}: {e}\n{}", self.log()))
    }

    pub fn get_ok(&mut self, path: &str) -> HttpResponse {
        let r = self.get(path);
        assert_eq!(r.status, 200, "GET {path}: {}\n{}", r.text(), self.log());
        r
    }

    pub fn scrape(&mut self) -> Exposition {
        let r = self.get_ok("/metrics");
        Exposition::parse(&r.text()).unwrap_or_else(|e| panic!("/metrics: {e}"))
    }

    /// Polls `/ready` until 200. Until the listener answers, connection errors are tolerated;
    /// after that every answer must be 503 or 200.
    pub fn wait_ready(&mut self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut answered = false;
        loop {
            self.assert_running();
            match http_get(self.port, "/ready") {
                Ok(r) if r.status == 200 => {
                    assert_eq!(r.text(), "ready\n");
                    return;
                }
                Ok(r) if r.status == 503 => {
                    answered = true;
                    assert!(r.text().contains("not ready"), "503 body: {}", r.text());
                }
                Ok(r) => panic!(
                    "/ready answered {} ({}); only 503 or 200 are allowed\n{}",
                    r.status,
                    r.text(),
                    self.log()
                ),
                Err(_) if !answered => {} // not listening yet
                Err(e) => panic!("/ready failed after answering before: {e}\n{}", self.log()),
            }
            assert!(
                Instant::now() < deadline,
                "/ready not 200 within {READY_TIMEOUT:?}\n{}",
                self.log()
            );
            std::thread::sleep(POLL);
        }
    }

    /// [`poll`] with the daemon.
    pub fn poll<T>(
        &mut self,
        what: &str,
        timeout: Duration,
        mut probe: impl FnMut(&mut Daemon) -> Result<T, String>,
    ) -> T {
        poll(what, timeout, || probe(self))
    }

    /// Scrapes until `check` accepts the exposition (see [`Daemon::poll`]).
    pub fn wait_scrape(
        &mut self,
        what: &str,
        timeout: Duration,
        check: impl Fn(&Exposition) -> Result<(), String>,
    ) -> Exposition {
        self.poll(what, timeout, |d| {
            let m = d.scrape();
            check(&m).map(|()| m)
        })
    }

    /// Scrapes until `name{labels}` equals `want` (within [`WATCH_TIMEOUT`]).
    pub fn wait_metric(&mut self, name: &str, labels: &[(&str, &str)], want: f64) -> Exposition {
        self.poll(&format!("{name}{labels:?} == {want}"), WATCH_TIMEOUT, |d| {
            let e = d.scrape();
            match e.value(name, labels) {
                v if v == want => Ok(e),
                v => Err(format!("it is {v}")),
            }
        })
    }

    /// SIGTERM by pid, then waits for the exit.
    pub fn terminate(&mut self) -> ExitStatus {
        self.signal("TERM");
        self.wait_exit(EXIT_TIMEOUT)
            .unwrap_or_else(|| panic!("no exit within {EXIT_TIMEOUT:?} of SIGTERM\n{}", self.log()))
    }

    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.process.wait_exit(timeout)
    }

    /// SIGTERM must end the daemon with exit code 0 after a logged shutdown.
    pub fn terminate_cleanly(&mut self) {
        let status = self.terminate();
        assert_eq!(status.code(), Some(0), "exit after SIGTERM\n{}", self.log());
        let log = self.log();
        assert!(log.contains("shutting down"), "{log}");
        assert!(log.contains("stopped"), "{log}");
    }
}
