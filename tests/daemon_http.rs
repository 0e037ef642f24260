#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The `run` daemon end to end, through the real binary and its HTTP listener: readiness after
//! the configured RIB, the Prometheus exposition (checked by `promtool` and by value), the JSON
//! API, a watched-directory file processed once (also across a restart), a clean SIGTERM
//! shutdown, `/ready` staying 503 while the initial load cannot finish, and a taken port.

mod support;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use support::{fixture, repo, DEMO_RIB, DEMO_UPDATES};

const READY_TIMEOUT: Duration = Duration::from_secs(30);
const WATCH_TIMEOUT: Duration = Duration::from_secs(30);
const EXIT_TIMEOUT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(100);

/// Name the watched updates file gets in the watch directory.
const WATCHED_NAME: &str = "demo-hijack.updates.mrt";

// ---- a tiny blocking HTTP/1.1 client ----------------------------------------------------------

#[derive(Debug)]
struct HttpResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl HttpResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8(self.body.clone()).expect("UTF-8 body")
    }

    fn json(&self) -> serde_json::Value {
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
fn http_get(port: u16, path: &str) -> std::io::Result<HttpResponse> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_write_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: */*\r\nConnection: close\r\n\r\n"
    )?;
    stream.flush()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> std::io::Result<HttpResponse> {
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

type Labels = BTreeMap<String, String>;

/// Samples of one scrape, keyed by metric name and label set.
struct Exposition {
    samples: BTreeMap<(String, Labels), f64>,
}

impl Exposition {
    /// Parses `name{label="value",...} value [timestamp]` lines; comments and blanks skipped.
    fn parse(text: &str) -> Result<Exposition, String> {
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
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let labels: Labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.samples.get(&(name.to_string(), labels)).copied()
    }

    /// Like [`Exposition::get`], failing with the samples of that name when absent.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels).unwrap_or_else(|| {
            let same_name: Vec<_> = self
                .samples
                .iter()
                .filter(|((n, _), _)| n == name)
                .collect();
            panic!("no sample {name}{labels:?}; samples of that name: {same_name:#?}")
        })
    }

    /// Every sample named `name`.
    fn with_name(&self, name: &str) -> Vec<(&Labels, f64)> {
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

#[test]
fn the_exposition_parser_reads_labels_escapes_and_special_values() {
    let text = "# HELP a_total A.\n# TYPE a_total counter\n\
                a_total{feed=\"mrt\",msg=\"say \\\"hi\\\"\\n\\\\\"} 3\n\
                b 1.5e3 1700000000000\n\
                c{ } +Inf\n";
    let e = Exposition::parse(text).unwrap();
    assert_eq!(
        e.get("a_total", &[("feed", "mrt"), ("msg", "say \"hi\"\n\\")]),
        Some(3.0)
    );
    assert_eq!(
        e.get("a_total", &[("feed", "mrt")]),
        None,
        "label sets match exactly"
    );
    assert_eq!(e.get("b", &[]), Some(1500.0));
    assert_eq!(e.get("c", &[]), Some(f64::INFINITY));
    assert!(Exposition::parse("x{a=\"1\"} 1\nx{a=\"1\"} 2\n").is_err());
    assert!(Exposition::parse("x{a=1} 1\n").is_err());
    assert!(Exposition::parse("x{a=\"1\" 1\n").is_err());
    assert!(Exposition::parse("x one\n").is_err());
}

// ---- promtool --------------------------------------------------------------------------------

/// Runs `promtool check metrics` on the exposition saved at `path`.
fn promtool_check(path: &Path) {
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

/// A free port on 127.0.0.1 (bound, read, released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `path` as a TOML basic string.
fn toml_path(path: &Path) -> String {
    let s = path.to_str().expect("UTF-8 path");
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The `[[location]]` tables of `config/demo.toml`.
fn demo_locations() -> String {
    let text = std::fs::read_to_string(repo("config/demo.toml")).unwrap();
    let start = text
        .find("[[location]]")
        .expect("config/demo.toml registers locations");
    text[start..].to_string()
}

/// A daemon configuration in a temporary directory.
struct Setup {
    dir: tempfile::TempDir,
    config: PathBuf,
    state_dir: PathBuf,
    watch_dir: PathBuf,
    port: u16,
}

impl Setup {
    /// Demo locations on a free port; `files` processed at start; with a watched directory when
    /// `watch` is set.
    fn new(files: &[PathBuf], watch: bool) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let state_dir = dir.path().join("state");
        let watch_dir = dir.path().join("watch");
        let port = free_port();
        let files: Vec<String> = files.iter().map(|f| toml_path(f)).collect();
        let mut text = format!(
            "state-dir = {}\n\n[http]\nlisten = \"127.0.0.1:{port}\"\n\n[mrt]\nfiles = [{}]\n",
            toml_path(&state_dir),
            files.join(", ")
        );
        if watch {
            std::fs::create_dir(&watch_dir).unwrap();
            text += &format!(
                "watch-dir = {}\nwatch-interval-seconds = 1\n",
                toml_path(&watch_dir)
            );
        }
        text += "\n";
        text += &demo_locations();
        let config = dir.path().join("routewatch.toml");
        std::fs::write(&config, text).unwrap();
        Setup {
            dir,
            config,
            state_dir,
            watch_dir,
            port,
        }
    }

    fn start(&self, log_name: &str) -> Daemon {
        Daemon::start(&self.config, &self.dir.path().join(log_name), self.port)
    }

    /// Copies `src` into the watched directory as `name`: written under a hidden name, then
    /// renamed, so the daemon never sees it half-written.
    fn drop_into_watch_dir(&self, src: &Path, name: &str) {
        let hidden = self.watch_dir.join(format!(".{name}.partial"));
        std::fs::copy(src, &hidden).unwrap();
        std::fs::rename(&hidden, self.watch_dir.join(name)).unwrap();
    }

    fn processed_list(&self) -> Vec<String> {
        std::fs::read_to_string(self.state_dir.join("mrt-processed.txt"))
            .map(|s| s.lines().map(String::from).collect())
            .unwrap_or_default()
    }

    /// Waits until the state file lists exactly `names`.
    fn wait_processed_list(&self, names: &[&str], daemon: &mut Daemon) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let list = self.processed_list();
            if list == names {
                return;
            }
            daemon.assert_running();
            assert!(
                Instant::now() < deadline,
                "mrt-processed.txt lists {list:?}, expected {names:?}\n{}",
                daemon.log()
            );
            std::thread::sleep(POLL);
        }
    }
}

/// A running `routewatch run`; killed (by pid) when dropped while still running.
struct Daemon {
    child: Child,
    log: PathBuf,
    port: u16,
}

impl Daemon {
    fn start(config: &Path, log: &Path, port: u16) -> Daemon {
        let stderr = File::create(log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_routewatch"))
            .arg("run")
            .arg("-c")
            .arg(config)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        Daemon {
            child,
            log: log.to_path_buf(),
            port,
        }
    }

    fn log(&self) -> String {
        format!(
            "--- daemon log ({}) ---\n{}",
            self.log.display(),
            std::fs::read_to_string(&self.log).unwrap_or_default()
        )
    }

    fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("the daemon exited early ({status})\n{}", self.log());
        }
    }

    fn get(&mut self, path: &str) -> HttpResponse {
        self.assert_running();
        http_get(self.port, path).unwrap_or_else(|e| panic!("GET {path}: {e}\n{}", self.log()))
    }

    fn get_ok(&mut self, path: &str) -> HttpResponse {
        let r = self.get(path);
        assert_eq!(r.status, 200, "GET {path}: {}\n{}", r.text(), self.log());
        r
    }

    fn scrape(&mut self) -> Exposition {
        let r = self.get_ok("/metrics");
        Exposition::parse(&r.text()).unwrap_or_else(|e| panic!("/metrics: {e}"))
    }

    /// Polls `/ready` until 200. Until the listener answers, connection errors are tolerated;
    /// after that every answer must be 503 or 200.
    fn wait_ready(&mut self) {
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

    /// Scrapes until `name{labels}` equals `want`.
    fn wait_metric(&mut self, name: &str, labels: &[(&str, &str)], want: f64) -> Exposition {
        let deadline = Instant::now() + WATCH_TIMEOUT;
        loop {
            let e = self.scrape();
            let v = e.value(name, labels);
            if v == want {
                return e;
            }
            assert!(
                Instant::now() < deadline,
                "{name}{labels:?} is {v}, not {want}, after {WATCH_TIMEOUT:?}\n{}",
                self.log()
            );
            std::thread::sleep(POLL);
        }
    }

    /// SIGTERM by pid, then waits for the exit.
    fn terminate(&mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        let kill = Command::new("kill")
            .arg("-TERM")
            .arg(&pid)
            .status()
            .unwrap();
        assert!(kill.success(), "kill -TERM {pid}: {kill}");
        self.wait_exit(EXIT_TIMEOUT)
            .unwrap_or_else(|| panic!("no exit within {EXIT_TIMEOUT:?} of SIGTERM\n{}", self.log()))
    }

    fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM must end the daemon with exit code 0 after a logged shutdown.
    fn terminate_cleanly(&mut self) {
        let status = self.terminate();
        assert_eq!(status.code(), Some(0), "exit after SIGTERM\n{}", self.log());
        let log = self.log();
        assert!(log.contains("shutting down"), "{log}");
        assert!(log.contains("stopped"), "{log}");
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // Child::kill sends SIGKILL to this child's pid.
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!("{}", self.log());
        }
    }
}

const RIB_ROUTES: f64 = 270_005.0;
const UPDATES_ROUTES: f64 = 8.0;

fn google_8() -> [(&'static str, &'static str); 2] {
    [("location", "google-dns"), ("prefix", "8.8.8.0/24")]
}

fn subprefix_hijack_8() -> [(&'static str, &'static str); 3] {
    [
        ("kind", "subprefix_hijack"),
        ("location", "google-dns"),
        ("prefix", "8.8.8.0/24"),
    ]
}

/// Checks what the daemon exposes once the RIB is loaded and nothing else has been read.
fn assert_baseline(daemon: &mut Daemon, scrape_file: &Path) {
    let r = daemon.get_ok("/metrics");
    assert!(
        r.header("content-type")
            .is_some_and(|t| t.starts_with("text/plain; version=0.0.4")),
        "{:?}",
        r.headers
    );
    let text = r.text();
    std::fs::write(scrape_file, &text).unwrap();
    promtool_check(scrape_file);
    let m = Exposition::parse(&text).unwrap();

    assert_eq!(
        m.value("routewatch_prefix_visibility_peers", &google_8()),
        33.0
    );
    assert_eq!(
        m.value(
            "routewatch_anomalies_active",
            &[
                ("kind", "origin_mismatch"),
                ("location", "cernet-beijing"),
                ("prefix", "1.2.4.0/24"),
            ]
        ),
        1.0
    );
    assert_eq!(
        m.value("routewatch_routes_processed_total", &[("feed", "mrt")]),
        RIB_ROUTES
    );
    assert_eq!(
        m.value(
            "routewatch_parse_errors_total",
            &[("error", "truncated_stream"), ("feed", "mrt")]
        ),
        1.0,
        "the cut bz2 stream of the RIB"
    );
    assert_eq!(
        m.value(
            "routewatch_mrt_files_processed_total",
            &[("result", "parse_errors")]
        ),
        1.0
    );
    assert_eq!(
        m.value("routewatch_mrt_files_processed_total", &[("result", "ok")]),
        0.0
    );
    assert_eq!(
        m.value(
            "routewatch_mrt_files_processed_total",
            &[("result", "failed")]
        ),
        0.0
    );
    assert_eq!(
        m.value("routewatch_registered_prefixes", &[("afi", "ipv4")]),
        5.0
    );
    assert_eq!(
        m.value("routewatch_registered_prefixes", &[("afi", "ipv6")]),
        0.0
    );
    let build = m.with_name("routewatch_build_info");
    assert_eq!(build.len(), 1, "{build:?}");
    assert_eq!(build[0].1, 1.0);
    assert_eq!(
        build[0].0.get("version").map(String::as_str),
        Some(env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(
        m.value("routewatch_anomalies_opened_total", &subprefix_hijack_8()),
        0.0
    );
}

/// Checks the JSON API once the RIB is loaded.
fn assert_api_baseline(daemon: &mut Daemon) {
    let prefixes = daemon.get_ok("/api/v1/prefixes").json();
    let list = prefixes["prefixes"].as_array().expect("prefixes array");
    let mut names: Vec<&str> = list.iter().map(|p| p["prefix"].as_str().unwrap()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "1.0.0.0/24",
            "1.2.4.0/24",
            "12.0.120.0/24",
            "8.8.4.0/24",
            "8.8.8.0/24"
        ]
    );
    let google = list.iter().find(|p| p["prefix"] == "8.8.8.0/24").unwrap();
    assert_eq!(google["location"], "google-dns");
    assert_eq!(google["visibility"], 33);
    assert_eq!(google["origins"], serde_json::json!([15169]));

    let status = daemon.get_ok("/api/v1/status").json();
    assert_eq!(status["ready"], true, "{status}");
    assert_eq!(status["locations"], 4, "{status}");
    assert_eq!(status["registered_prefixes"], 5, "{status}");
    assert_eq!(status["mrt_files_processed"], 1, "{status}");
}

/// Drops the demo hijack updates into the watched directory and checks their effect.
fn process_watched_updates(setup: &Setup, daemon: &mut Daemon, name: &str) -> Exposition {
    setup.drop_into_watch_dir(&fixture(DEMO_UPDATES), name);
    let m = daemon.wait_metric(
        "routewatch_mrt_files_processed_total",
        &[("result", "ok")],
        1.0,
    );
    assert_eq!(
        m.value("routewatch_anomalies_opened_total", &subprefix_hijack_8()),
        1.0,
        "the /25 hijack opened"
    );
    assert_eq!(
        m.value("routewatch_anomalies_active", &subprefix_hijack_8()),
        0.0,
        "and was resolved by the withdrawal"
    );
    assert_eq!(
        m.value("routewatch_prefix_path_changes_total", &google_8()),
        2.0,
        "AT&T's path went to the hijacker and back"
    );
    assert_eq!(
        m.value("routewatch_routes_processed_total", &[("feed", "mrt")]),
        RIB_ROUTES + UPDATES_ROUTES
    );
    m
}

#[test]
fn daemon_serves_metrics_and_api_processes_a_watched_file_and_stops_on_sigterm() {
    let setup = Setup::new(&[fixture(DEMO_RIB)], true);
    let mut daemon = setup.start("daemon.log");
    daemon.wait_ready();

    let live = daemon.get_ok("/live");
    assert_eq!(live.text(), "ok\n");
    assert_baseline(&mut daemon, &setup.dir.path().join("scrape-baseline.prom"));
    assert_api_baseline(&mut daemon);

    let m = process_watched_updates(&setup, &mut daemon, WATCHED_NAME);
    assert_eq!(
        m.value(
            "routewatch_mrt_files_processed_total",
            &[("result", "parse_errors")]
        ),
        1.0,
        "the RIB is not read again"
    );
    let after = setup.dir.path().join("scrape-after-updates.prom");
    std::fs::write(&after, daemon.get_ok("/metrics").text()).unwrap();
    promtool_check(&after);
    let status = daemon.get_ok("/api/v1/status").json();
    assert_eq!(status["mrt_files_processed"], 2, "{status}");
    setup.wait_processed_list(&[WATCHED_NAME], &mut daemon);

    daemon.terminate_cleanly();
    assert_eq!(setup.processed_list(), [WATCHED_NAME]);
}

#[test]
fn restarted_daemon_does_not_reprocess_remembered_watched_files() {
    let setup = Setup::new(&[fixture(DEMO_RIB)], true);
    {
        let mut first = setup.start("first.log");
        first.wait_ready();
        process_watched_updates(&setup, &mut first, WATCHED_NAME);
        setup.wait_processed_list(&[WATCHED_NAME], &mut first);
        first.terminate_cleanly();
    }

    // Same configuration: same state directory, watched directory (still holding the file)
    // and port.
    let mut second = setup.start("second.log");
    second.wait_ready();
    let ready_at = Instant::now();
    let ok = [("result", "ok")];
    let m = second.scrape();
    assert_eq!(m.value("routewatch_mrt_files_processed_total", &ok), 0.0);
    assert_eq!(
        m.value(
            "routewatch_mrt_files_processed_total",
            &[("result", "parse_errors")]
        ),
        1.0,
        "configured files are read at every start"
    );
    // Several watch polls (interval 1 s) pass without the remembered file being read.
    while ready_at.elapsed() < Duration::from_secs(3) {
        let m = second.scrape();
        assert_eq!(
            m.value("routewatch_mrt_files_processed_total", &ok),
            0.0,
            "{WATCHED_NAME} was processed again after the restart\n{}",
            second.log()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let m = second.scrape();
    assert_eq!(m.value("routewatch_mrt_files_processed_total", &ok), 0.0);
    assert_eq!(
        m.value("routewatch_routes_processed_total", &[("feed", "mrt")]),
        RIB_ROUTES
    );
    assert_eq!(
        m.value("routewatch_anomalies_opened_total", &subprefix_hijack_8()),
        0.0
    );
    assert_eq!(setup.processed_list(), [WATCHED_NAME], "not recorded twice");

    // The watcher of the restarted daemon is alive: a new name is processed, once.
    let second_name = "second-copy.updates.mrt";
    process_watched_updates(&setup, &mut second, second_name);
    setup.wait_processed_list(&[WATCHED_NAME, second_name], &mut second);
    second.terminate_cleanly();
}

/// Keeps opening a FIFO for writing (and closing it at once), so each open of the daemon's
/// reader returns and reads an empty stream; stopped and joined on drop.
#[cfg(target_os = "linux")]
struct FifoFeeder {
    path: PathBuf,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[cfg(target_os = "linux")]
impl FifoFeeder {
    fn start(path: &Path) -> FifoFeeder {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let thread = {
            let (path, stop) = (path.to_path_buf(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Acquire) {
                    // Blocks until a reader has the FIFO open; dropping it gives that reader EOF.
                    drop(std::fs::OpenOptions::new().write(true).open(&path));
                }
            })
        };
        FifoFeeder {
            path: path.to_path_buf(),
            stop,
            thread: Some(thread),
        }
    }
}

#[cfg(target_os = "linux")]
impl Drop for FifoFeeder {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Release);
        // On Linux a read-write open of a FIFO never blocks, and releases a writer blocked in
        // open; held until the thread is joined so its last open cannot block either.
        let unblock = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.path);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        drop(unblock);
    }
}

/// The configured input is a FIFO nobody writes to, so the initial load cannot finish until the
/// test lets it: `/ready` is 503 meanwhile (deterministically), and 200 right after.
#[cfg(target_os = "linux")]
#[test]
fn ready_is_503_until_the_initial_load_is_done() {
    let tmp = tempfile::tempdir().unwrap();
    let fifo = tmp.path().join("initial.mrt");
    let mkfifo = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(mkfifo.success(), "mkfifo: {mkfifo}");
    let setup = Setup::new(std::slice::from_ref(&fifo), false);
    let mut daemon = setup.start("daemon.log");

    // The first answer, and every answer while nothing is written: 503.
    let deadline = Instant::now() + READY_TIMEOUT;
    let first = loop {
        daemon.assert_running();
        if let Ok(r) = http_get(setup.port, "/ready") {
            break r;
        }
        assert!(
            Instant::now() < deadline,
            "never answered\n{}",
            daemon.log()
        );
        std::thread::sleep(POLL);
    };
    assert_eq!(first.status, 503, "{}", first.text());
    let blocked_until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < blocked_until {
        let r = daemon.get("/ready");
        assert_eq!(r.status, 503, "{}", r.text());
        assert_eq!(r.text(), "not ready: initial data still loading\n");
        assert_eq!(daemon.get_ok("/live").text(), "ok\n", "live while loading");
        std::thread::sleep(POLL);
    }
    let status = daemon.get_ok("/api/v1/status").json();
    assert_eq!(status["ready"], false, "{status}");
    assert_eq!(status["mrt_files_processed"], 0, "{status}");
    let m = daemon.scrape();
    for result in ["ok", "parse_errors", "failed"] {
        assert_eq!(
            m.value(
                "routewatch_mrt_files_processed_total",
                &[("result", result)]
            ),
            0.0
        );
    }

    // Let the (empty) input be read: ready.
    let feeder = FifoFeeder::start(&fifo);
    daemon.wait_ready();
    drop(feeder);
    let status = daemon.get_ok("/api/v1/status").json();
    assert_eq!(status["ready"], true, "{status}");
    assert_eq!(status["mrt_files_processed"], 1, "{status}");
    let m = daemon.scrape();
    assert_eq!(
        m.value("routewatch_mrt_files_processed_total", &[("result", "ok")]),
        1.0
    );
    assert_eq!(
        m.value("routewatch_routes_processed_total", &[("feed", "mrt")]),
        0.0
    );
    daemon.terminate_cleanly();
}

#[test]
fn run_exits_1_naming_the_address_when_the_port_is_taken() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("routewatch.toml");
    std::fs::write(
        &config,
        format!(
            "state-dir = {}\n\n[http]\nlisten = \"{addr}\"\n\n{}",
            toml_path(&dir.path().join("state")),
            demo_locations()
        ),
    )
    .unwrap();
    let mut daemon = Daemon::start(&config, &dir.path().join("daemon.log"), addr.port());
    let status = daemon
        .wait_exit(EXIT_TIMEOUT)
        .unwrap_or_else(|| panic!("still running with {addr} taken\n{}", daemon.log()));
    let log = std::fs::read_to_string(&daemon.log).unwrap();
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(
        log.contains(&format!("routewatch: cannot listen on {addr}: ")),
        "the error names the address: {log}"
    );
    // The listener that holds the port was not disturbed.
    assert_eq!(taken.local_addr().unwrap(), addr);
}
