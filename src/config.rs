//! Configuration: the daemon settings and the registry of locations, read from TOML.
//!
//! Keys are kebab-case and unknown keys are rejected. Every error names the file, the line and
//! column, and the key (`ConfigError` renders as `FILE:LINE:COL: KEY: message`), so an operator can
//! go straight to the offending line. Locations may live in the main file or in files listed in
//! `include` (paths relative to the including file).
//!
//! Validation of the registry itself (duplicate prefixes, max-length against prefix length) is done
//! by [`crate::registry::Registry::new`]; this module only maps the registry's positional errors
//! back to source spans, so the rules live in one place. What parses but makes no sense in a
//! configuration is refused here: no location at all (unless `allow-empty-registry = true`), a
//! default route or an IPv4-mapped IPv6 prefix as a registered prefix (the library's registry
//! accepts them), `bmp.listen` clashing with `http.listen`, `[bmp] allow = []`, a `state-dir` that
//! is not a directory, two `[[bmp.router]]` with one address or one name, and a `[[notify]]`
//! target with a bad URL, an inline credential header or a filter naming no location.

use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ipnet::IpNet;
use serde::Deserialize;
use toml::Spanned;

mod ris_live;
pub use ris_live::{
    is_name as ris_live_name, BaselineFile, RisLiveConfig, DEFAULT_RIS_LIVE_HEARTBEAT_HOST,
};

use crate::registry::{Location, Registry, RegistryError};

/// Default HTTP listen address: loopback only, so metrics and the API are not exposed by accident.
pub const DEFAULT_HTTP_LISTEN: &str = "127.0.0.1:9179";
/// Default cap on open HTTP connections (`[http] max-connections`).
pub const DEFAULT_HTTP_MAX_CONNECTIONS: usize = 512;
/// Default time a request head may take (`[http] header-read-timeout-seconds`).
pub const DEFAULT_HTTP_HEADER_READ_TIMEOUT_SECONDS: u64 = 10;
/// Default time an HTTP connection may sit with no request and no bytes moving
/// (`[http] idle-timeout-seconds`).
pub const DEFAULT_HTTP_IDLE_TIMEOUT_SECONDS: u64 = 60;
/// Default cap on API requests served at once (`[http] max-api-requests`).
pub const DEFAULT_HTTP_MAX_API_REQUESTS: usize = 8;
/// Default state directory (what systemd's `StateDirectory=routewatch` provides).
pub const DEFAULT_STATE_DIR: &str = "/var/lib/routewatch";
/// Default cap on registered prefixes that get their own metric series.
pub const DEFAULT_MAX_PREFIX_SERIES: usize = 10_000;
/// Default poll interval of the watched MRT directory.
pub const DEFAULT_WATCH_INTERVAL_SECONDS: u64 = 30;
/// Default `min-peers` of a location.
pub const DEFAULT_MIN_PEERS: u32 = 1;
/// Default BMP listen address (when a `[bmp]` section is present).
pub const DEFAULT_BMP_LISTEN: &str = "[::]:11019";
/// Default cap on concurrent BMP sessions.
pub const DEFAULT_BMP_MAX_SESSIONS: usize = 64;
/// Default largest BMP message accepted: [`crate::ingest::bmp::DEFAULT_MAX_FRAME`] (the reasons
/// are there).
pub const DEFAULT_BMP_MAX_FRAME_BYTES: u32 = crate::ingest::bmp::DEFAULT_MAX_FRAME;
/// Default wait for a router's initial tables (End-of-RIB) before `/ready` stops waiting.
pub const DEFAULT_BMP_INITIAL_TABLE_TIMEOUT_SECONDS: u64 = 300;
/// Default wait for a connection's Initiation message: RFC 7854 §4.3 has routers send it first,
/// at once, so 30 s is generous; a connection that sends none is closed (`initiation_timeout`).
pub const DEFAULT_BMP_INITIATION_TIMEOUT_SECONDS: u64 = 30;
/// Default silence after which a session is closed as stale and its routes withdrawn
/// (`idle_timeout`): two hours. Routers report statistics periodically (commonly every 15 s to
/// 1 h; Junos' default is 1 h) which keeps a quiet router's session alive; twice the longest
/// common interval never closes a healthy router, while TCP keepalive catches a router that
/// vanished much sooner.
pub const DEFAULT_BMP_IDLE_TIMEOUT_SECONDS: u64 = 7200;
/// Default idle time before TCP keepalive probes start on a BMP connection (then one probe
/// every quarter of it, four unanswered probes close the session: about twice this in all).
pub const DEFAULT_BMP_TCP_KEEPALIVE_SECONDS: u64 = 60;
/// Default cap on concurrent BMP sessions from one source address (a router reconnecting while
/// its old session is torn down needs two).
pub const DEFAULT_BMP_MAX_SESSIONS_PER_ADDRESS: usize = 4;
/// Default cap on peers one router session may report
/// ([`crate::ingest::bmp::session::MAX_PEERS_PER_ROUTER`]).
pub const DEFAULT_BMP_MAX_PEERS_PER_ROUTER: usize =
    crate::ingest::bmp::session::MAX_PEERS_PER_ROUTER;
/// Default longest wait before buffered events are committed to the event store.
pub const DEFAULT_EVENTS_FLUSH_INTERVAL_MS: u64 = 1000;
/// Default age after which stored events are deleted.
pub const DEFAULT_EVENTS_RETENTION_DAYS: u64 = 30;
/// Default cap on stored events (the oldest beyond it are deleted).
pub const DEFAULT_EVENTS_MAX_ROWS: u64 = 1_000_000;
/// Default of `[dns] enabled`: off, so that a fresh install sends no queries to Team Cymru (they
/// reveal the ASNs and routers being watched) and an offline box does not wait on timeouts.
pub const DEFAULT_DNS_ENABLED: bool = false;
/// Default DNS timeout: the longest a caller waits, and the timeout of each query attempt.
pub const DEFAULT_DNS_TIMEOUT_MS: u64 = 2000;
/// Default DNS query attempts per lookup.
pub const DEFAULT_DNS_ATTEMPTS: u32 = 2;
/// Default cap on DNS queries in flight.
pub const DEFAULT_DNS_MAX_IN_FLIGHT: usize = 8;
/// Default cap on cached DNS names (the oldest beyond it are evicted).
pub const DEFAULT_DNS_CACHE_ENTRIES: usize = 100_000;
/// Default time a negative DNS answer (NXDOMAIN, no data, failure, timeout) is cached.
pub const DEFAULT_DNS_NEGATIVE_TTL_SECONDS: u64 = 300;
/// Default cap on the time a DNS name is cached (its record TTL otherwise).
pub const DEFAULT_DNS_MAX_TTL_SECONDS: u64 = 86_400;

/// A configuration error with its position in the source.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{file}: cannot read: {source}")]
    Read {
        /// File that failed.
        file: PathBuf,
        /// Underlying I/O error.
        source: std::io::Error,
    },
    /// Syntax error, type error, or unknown key, as reported by the TOML parser.
    #[error("{file}:{line}:{col}: {message}")]
    Syntax {
        /// File with the error.
        file: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        col: usize,
        /// Parser message (names the key where it can).
        message: String,
    },
    /// A value is syntactically fine but not acceptable.
    #[error("{file}:{line}:{col}: {key}: {message}")]
    Invalid {
        /// File with the error.
        file: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        col: usize,
        /// Dotted key path, e.g. `location[2].prefixes`.
        key: String,
        /// What is wrong.
        message: String,
    },
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The main configuration file.
    pub path: PathBuf,
    /// HTTP listener settings.
    pub http: HttpConfig,
    /// MRT inputs of the daemon.
    pub mrt: MrtConfig,
    /// Metric settings.
    pub metrics: MetricsConfig,
    /// Anomaly lifecycle settings.
    pub anomalies: AnomaliesConfig,
    /// BMP listener; `None` when the `[bmp]` section is absent (no listener).
    pub bmp: Option<BmpConfig>,
    /// RPKI origin validation.
    pub rpki: RpkiConfig,
    /// Directory for persistent state (processed MRT files, the event store).
    pub state_dir: PathBuf,
    /// Event store settings.
    pub events: EventsConfig,
    /// DNS enrichment (AS names, router names); see [`crate::dns`].
    pub dns: DnsConfig,
    /// `[log]`: the daemon's log format and default level.
    pub log: LogConfig,
    /// Notification targets (`[[notify]]`), in file order; see [`crate::notify`].
    pub notify: Vec<NotifyTarget>,
    /// `[ris-live]`: the RIS Live feed; `None` when absent or not enabled.
    pub ris_live: Option<RisLiveConfig>,
    /// `allow-empty-registry`: a configuration without any location is accepted (otherwise it
    /// is refused, on start and on reload, as an empty or cut file would be).
    pub allow_empty_registry: bool,
    /// The registry of the locations (main file first, then includes), built when they were
    /// validated (building it again costs seconds with a million prefixes); it owns them, so a
    /// copy of the configuration does not copy a million prefixes.
    validated: Arc<Registry>,
}

/// `[http]`
#[derive(Debug, Clone, PartialEq)]
pub struct HttpConfig {
    /// Address of the one HTTP listener (`/metrics`, `/live`, `/ready`, `/api/v1/...`).
    pub listen: SocketAddr,
    /// Open connections at most; at the cap a new connection closes the longest-idle one
    /// (no request in progress), or is closed itself when every connection is busy.
    pub max_connections: usize,
    /// A request head must be complete this long after the connection opened (or after the
    /// first byte of a later request on a kept-alive connection).
    pub header_read_timeout_seconds: u64,
    /// A connection with no request in progress and no bytes moving this long is closed.
    pub idle_timeout_seconds: u64,
    /// `/api/*` requests served at once; more are answered 503 with `Retry-After`
    /// (`/metrics`, `/live`, `/ready` are not limited by it).
    pub max_api_requests: usize,
    /// Bearer tokens for `/api/*` and `POST /-/reload`, read from `token-file`; `None`: no
    /// token is asked for.
    pub tokens: Option<crate::http::auth::Tokens>,
    /// The token file, as configured.
    pub token_file: Option<PathBuf>,
    /// TLS certificate chain and private key (PEM), both or neither.
    pub tls: Option<TlsFiles>,
}

/// `[http] tls-cert` and `tls-key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// Certificate chain, PEM, the server's certificate first.
    pub cert: PathBuf,
    /// Private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

impl HttpConfig {
    /// The defaults with `listen`.
    pub fn new(listen: SocketAddr) -> HttpConfig {
        HttpConfig {
            listen,
            max_connections: DEFAULT_HTTP_MAX_CONNECTIONS,
            header_read_timeout_seconds: DEFAULT_HTTP_HEADER_READ_TIMEOUT_SECONDS,
            idle_timeout_seconds: DEFAULT_HTTP_IDLE_TIMEOUT_SECONDS,
            max_api_requests: DEFAULT_HTTP_MAX_API_REQUESTS,
            tokens: None,
            token_file: None,
            tls: None,
        }
    }
}

/// `[mrt]`
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MrtConfig {
    /// MRT files processed once at start (RIB dumps first, then updates in the given order).
    pub files: Vec<PathBuf>,
    /// Directory watched for new MRT files (processed once each, in name order).
    pub watch_dir: Option<PathBuf>,
    /// Poll interval of `watch_dir`.
    pub watch_interval_seconds: u64,
    /// Parse errors after which the rest of a file is abandoned (0: no bound).
    pub max_errors_per_file: u64,
    /// Largest decompressed/compressed ratio of a gzip/bzip2 file (0: no bound).
    pub max_decompression_ratio: u64,
    /// How long a watched file that is still incomplete (a compressed stream or a record cut
    /// short) is waited for before it is read as it is.
    pub incomplete_file_timeout_seconds: u64,
}

/// Default `[mrt] incomplete-file-timeout-seconds`.
pub const DEFAULT_INCOMPLETE_FILE_TIMEOUT_SECONDS: u64 = 600;

impl MrtConfig {
    /// The per-file bounds.
    pub fn limits(&self) -> crate::ingest::mrt::Limits {
        crate::ingest::mrt::Limits {
            max_errors: self.max_errors_per_file,
            max_ratio: self.max_decompression_ratio,
            ..crate::ingest::mrt::Limits::default()
        }
    }
}

/// `[rpki]`
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RpkiConfig {
    /// JSON file of validated ROA payloads (Routinator `json`/`jsonext`, rpki-client `json`);
    /// `None`: no RPKI validation.
    pub vrp_file: Option<PathBuf>,
    /// How often the daemon checks the file for changes (it reloads when it changed).
    pub reload_interval_seconds: u64,
}

/// Default interval between checks of the VRP file.
pub const DEFAULT_RPKI_RELOAD_INTERVAL_SECONDS: u64 = 60;

/// `[bmp]`
#[derive(Debug, Clone, PartialEq)]
pub struct BmpConfig {
    /// Listen address.
    pub listen: SocketAddr,
    /// Router networks allowed to connect; others are closed at once and counted.
    pub allow: Vec<ipnet::IpNet>,
    /// Concurrent sessions; more are refused and counted. One slot per configured router is
    /// reserved: sources without a `[[bmp.router]]` can take at most `max_sessions - routers`.
    pub max_sessions: usize,
    /// Concurrent sessions from one source address.
    pub max_sessions_per_address: usize,
    /// A connection that sends no Initiation within this many seconds is closed.
    pub initiation_timeout_seconds: u64,
    /// A session with no complete message for this many seconds is closed as stale (0: never).
    pub idle_timeout_seconds: u64,
    /// TCP keepalive idle time on accepted connections (0: keepalive off).
    pub tcp_keepalive_seconds: u64,
    /// Peers one router session may report; messages about more are dropped and counted.
    pub max_peers_per_router: usize,
    /// Largest BMP message accepted; a larger one ends that session.
    pub max_frame_bytes: u32,
    /// How long `/ready` waits for a connected router's End-of-RIB per peer.
    pub initial_table_timeout_seconds: u64,
    /// Static router names by source address (these routers' series are kept when they leave).
    pub routers: Vec<BmpRouter>,
}

/// `[[bmp.router]]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BmpRouter {
    /// Source address of the router's BMP session.
    pub address: std::net::IpAddr,
    /// Name used as the `router` label.
    pub name: String,
}

/// `[metrics]`
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsConfig {
    /// Registered prefixes beyond this many share one aggregated series per location.
    pub max_prefix_series: usize,
}

/// `[log]`: how `routewatch run` writes its log lines (to stderr, i.e. the journal under
/// systemd).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// `format`: `text` (default) or `json` (one JSON object per line, for log shippers).
    pub format: crate::log::LogFormat,
    /// `level`: the default filter (`info`), in `RUST_LOG` syntax; `RUST_LOG` overrides it.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: crate::log::LogFormat::Text,
            level: "info".into(),
        }
    }
}

/// `[anomalies]`
#[derive(Debug, Clone, PartialEq)]
pub struct AnomaliesConfig {
    /// How long an open anomaly with no carrier left is held before it resolves; one that comes
    /// back meanwhile is the same incident (a flap). 0 resolves at once.
    pub hold_down_seconds: u64,
}

impl Default for AnomaliesConfig {
    fn default() -> Self {
        AnomaliesConfig {
            hold_down_seconds: crate::engine::DEFAULT_HOLD_DOWN as u64,
        }
    }
}

/// `[events]`: the event history in `<state-dir>/events.sqlite`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventsConfig {
    /// Whether events are stored (and `/api/v1/events` served).
    pub enabled: bool,
    /// Longest time an event waits in memory before its batch is committed.
    pub flush_interval_ms: u64,
    /// Events older than this many days (by receive time) are deleted.
    pub retention_days: u64,
    /// At most this many events are kept; the oldest beyond it are deleted.
    pub max_rows: u64,
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            enabled: true,
            flush_interval_ms: DEFAULT_EVENTS_FLUSH_INTERVAL_MS,
            retention_days: DEFAULT_EVENTS_RETENTION_DAYS,
            max_rows: DEFAULT_EVENTS_MAX_ROWS,
        }
    }
}

/// `[dns]`: DNS enrichment — AS names through Team Cymru (`AS<n>.asn.cymru.com` TXT) and
/// reverse DNS of router addresses. Off unless `enabled = true`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsConfig {
    /// Whether names are looked up at all.
    pub enabled: bool,
    /// Name servers (`address:port`, or an address for port 53); `None`: those of
    /// `/etc/resolv.conf`.
    pub servers: Option<Vec<SocketAddr>>,
    /// Longest wait of a caller, and the timeout of each query attempt, milliseconds.
    pub timeout_ms: u64,
    /// Query attempts per lookup.
    pub attempts: u32,
    /// Most queries outstanding at once.
    pub max_in_flight: usize,
    /// Most cached names; the oldest beyond it are evicted.
    pub cache_entries: usize,
    /// How long a negative answer (NXDOMAIN, no data, failure, timeout) is cached, seconds.
    pub negative_ttl_seconds: u64,
    /// Longest time a name is cached (caps its record TTL), seconds.
    pub max_ttl_seconds: u64,
}

impl Default for DnsConfig {
    fn default() -> Self {
        DnsConfig {
            enabled: DEFAULT_DNS_ENABLED,
            servers: None,
            timeout_ms: DEFAULT_DNS_TIMEOUT_MS,
            attempts: DEFAULT_DNS_ATTEMPTS,
            max_in_flight: DEFAULT_DNS_MAX_IN_FLIGHT,
            cache_entries: DEFAULT_DNS_CACHE_ENTRIES,
            negative_ttl_seconds: DEFAULT_DNS_NEGATIVE_TTL_SECONDS,
            max_ttl_seconds: DEFAULT_DNS_MAX_TTL_SECONDS,
        }
    }
}

/// `[[notify]]`: one notification target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyTarget {
    /// Name: the `target` label, `notify --target`; unique.
    pub name: String,
    /// The body sent (`type`).
    pub format: crate::notify::Format,
    /// Where (`url`, or the URL read from `url-file`).
    pub endpoint: crate::notify::Endpoint,
    /// The file the URL was read from, if any.
    pub url_file: Option<PathBuf>,
    /// Which anomaly transitions are sent (`min-severity`, `locations`, `anomalies`).
    pub filter: crate::notify::Filter,
    /// Longest time of one attempt (connect to answer), seconds.
    pub timeout_seconds: u64,
    /// Attempts per notification (1: no retry).
    pub max_attempts: u32,
    /// Notifications waiting at most; more are dropped and counted.
    pub queue_size: usize,
    /// Base of the links in the messages (`https://host[:port]`); `None`: the `[http]` listener.
    pub link_base: Option<String>,
    /// Extra request headers (`headers`, then `headers-file`).
    pub headers: crate::notify::Headers,
    /// The headers file, if any.
    pub headers_file: Option<PathBuf>,
}

// ---- raw (as written) structures -------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawFile {
    #[serde(default)]
    state_dir: Option<Spanned<String>>,
    #[serde(default)]
    allow_empty_registry: bool,
    #[serde(default)]
    include: Vec<Spanned<String>>,
    #[serde(default)]
    http: Option<RawHttp>,
    #[serde(default)]
    mrt: Option<RawMrt>,
    #[serde(default)]
    metrics: Option<RawMetrics>,
    #[serde(default)]
    anomalies: Option<RawAnomalies>,
    #[serde(default)]
    bmp: Option<RawBmp>,
    #[serde(default)]
    rpki: Option<RawRpki>,
    #[serde(default)]
    events: Option<RawEvents>,
    #[serde(default)]
    dns: Option<RawDns>,
    #[serde(default)]
    log: Option<RawLog>,
    #[serde(default, rename = "ris-live")]
    ris_live: Option<ris_live::RawRisLive>,
    #[serde(default)]
    notify: Vec<RawNotify>,
    #[serde(default)]
    location: Vec<RawLocation>,
}

/// An included file holds locations only.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawInclude {
    #[serde(default)]
    location: Vec<RawLocation>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawHttp {
    listen: Option<Spanned<String>>,
    max_connections: Option<Spanned<i64>>,
    header_read_timeout_seconds: Option<Spanned<i64>>,
    idle_timeout_seconds: Option<Spanned<i64>>,
    max_api_requests: Option<Spanned<i64>>,
    token_file: Option<Spanned<String>>,
    tls_cert: Option<Spanned<String>>,
    tls_key: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawMrt {
    #[serde(default)]
    files: Vec<String>,
    watch_dir: Option<String>,
    watch_interval_seconds: Option<Spanned<i64>>,
    max_errors_per_file: Option<Spanned<i64>>,
    max_decompression_ratio: Option<Spanned<i64>>,
    incomplete_file_timeout_seconds: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawRpki {
    vrp_file: Option<String>,
    reload_interval_seconds: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawBmp {
    listen: Option<Spanned<String>>,
    allow: Option<Spanned<Vec<Spanned<String>>>>,
    max_sessions: Option<Spanned<i64>>,
    max_frame_bytes: Option<Spanned<i64>>,
    initial_table_timeout_seconds: Option<Spanned<i64>>,
    max_sessions_per_address: Option<Spanned<i64>>,
    initiation_timeout_seconds: Option<Spanned<i64>>,
    idle_timeout_seconds: Option<Spanned<i64>>,
    tcp_keepalive_seconds: Option<Spanned<i64>>,
    max_peers_per_router: Option<Spanned<i64>>,
    #[serde(default)]
    router: Vec<RawBmpRouter>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawBmpRouter {
    address: Spanned<String>,
    name: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawEvents {
    enabled: Option<bool>,
    flush_interval_ms: Option<Spanned<i64>>,
    retention_days: Option<Spanned<i64>>,
    max_rows: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawDns {
    enabled: Option<bool>,
    servers: Option<Spanned<Vec<Spanned<String>>>>,
    timeout_ms: Option<Spanned<i64>>,
    attempts: Option<Spanned<i64>>,
    max_in_flight: Option<Spanned<i64>>,
    cache_entries: Option<Spanned<i64>>,
    negative_ttl_seconds: Option<Spanned<i64>>,
    max_ttl_seconds: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawNotify {
    name: Spanned<String>,
    #[serde(rename = "type")]
    format: Spanned<String>,
    url: Option<Spanned<String>>,
    url_file: Option<Spanned<String>>,
    allow_http: Option<bool>,
    min_severity: Option<Spanned<String>>,
    locations: Option<Spanned<Vec<Spanned<String>>>>,
    anomalies: Option<Spanned<Vec<Spanned<String>>>>,
    timeout_seconds: Option<Spanned<i64>>,
    max_attempts: Option<Spanned<i64>>,
    queue_size: Option<Spanned<i64>>,
    link_base: Option<Spanned<String>>,
    headers: Option<Spanned<std::collections::BTreeMap<String, Spanned<String>>>>,
    headers_file: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawMetrics {
    max_prefix_series: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawLog {
    format: Option<Spanned<String>>,
    level: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawAnomalies {
    hold_down_seconds: Option<Spanned<i64>>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawLocation {
    name: Spanned<String>,
    provider: Option<String>,
    #[serde(default)]
    provider_asns: Vec<Spanned<i64>>,
    region: Option<String>,
    origin_asns: Spanned<Vec<Spanned<i64>>>,
    prefixes: Spanned<Vec<Spanned<String>>>,
    max_length: Option<Spanned<i64>>,
    max_length_v6: Option<Spanned<i64>>,
    min_peers: Option<Spanned<i64>>,
    min_visibility: Option<Spanned<i64>>,
}

/// Where each location's values stand in the source, to report registry errors.
struct LocationSpans {
    file: usize,
    name: Range<usize>,
    prefixes: Vec<Range<usize>>,
    max_length: Option<Range<usize>>,
    max_length_v6: Option<Range<usize>>,
}

/// One source file and its text, for span → line:col conversion.
struct Source {
    path: PathBuf,
    text: String,
}

impl Source {
    fn read(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: path.to_path_buf(),
            source,
        })?;
        Ok(Self {
            path: path.to_path_buf(),
            text,
        })
    }

    fn line_col(&self, offset: usize) -> (usize, usize) {
        let before = &self.text[..offset.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        // Columns count characters, as editors do.
        let line_start = before.rfind('\n').map_or(0, |nl| nl + 1);
        let col = before[line_start..].chars().count() + 1;
        (line, col)
    }

    fn invalid(
        &self,
        span: &Range<usize>,
        key: impl Into<String>,
        msg: impl Into<String>,
    ) -> ConfigError {
        let (line, col) = self.line_col(span.start);
        ConfigError::Invalid {
            file: self.path.clone(),
            line,
            col,
            key: key.into(),
            message: msg.into(),
        }
    }

    fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, ConfigError> {
        toml::from_str(&self.text).map_err(|e| {
            let (line, col) = e.span().map_or((1, 1), |s| self.line_col(s.start));
            ConfigError::Syntax {
                file: self.path.clone(),
                line,
                col,
                message: e.message().trim().to_string(),
            }
        })
    }
}

/// Main files at least this large (a registry of hundreds of thousands of prefixes) are
/// parsed in pieces on two threads when [`parse_split`] can do so safely.
const SPLIT_PARSE_BYTES: usize = 4 << 20;

/// About how large each piece of a split parse is: the TOML parser holds every token and event
/// of the text it parses (about 10 bytes per byte of a registry), so pieces keep that transient
/// memory to a few megabytes instead of hundreds.
const SPLIT_PIECE_BYTES: usize = 1 << 20;

/// Table headers a main file may have besides `[[location]]` for [`parse_split`].
const SPLIT_HEADERS: [&str; 13] = [
    "[http]",
    "[mrt]",
    "[bmp]",
    "[[bmp.router]]",
    "[rpki]",
    "[events]",
    "[dns]",
    "[metrics]",
    "[log]",
    "[[notify]]",
    "[ris-live]",
    "[[ris-live.baseline]]",
    "[[location]]",
];

/// Parses the main file, in pieces on two threads when it is large (the TOML parse of a
/// million-prefix registry takes about a second on one core and, in one piece, several hundred
/// megabytes); any doubt or error falls back to the one-piece parse, which reports errors as
/// before.
fn parse_main(main: &Source) -> Result<RawFile, ConfigError> {
    if main.text.len() >= SPLIT_PARSE_BYTES {
        if let Some(raw) = parse_split(&main.text, SPLIT_PIECE_BYTES) {
            return Ok(raw);
        }
    }
    main.parse()
}

/// A table header line without its comment and trailing blanks.
fn table_header(line: &str) -> &str {
    line.split('#').next().unwrap_or_default().trim_end()
}

/// Where the pieces of a split parse start: 0, then `[[location]]` header lines about `piece`
/// bytes apart.
fn piece_starts(text: &str, piece: usize) -> Vec<usize> {
    let mut starts = vec![0];
    let mut from = piece.min(text.len());
    while let Some(found) = text.get(from..).and_then(|t| t.find("\n[[location]]")) {
        let at = from + found + 1;
        if table_header(text[at..].lines().next().unwrap_or_default()) == "[[location]]" {
            starts.push(at);
            from = at + piece;
        } else {
            from = at;
        }
        if from >= text.len() {
            break;
        }
    }
    starts
}

/// The split parse: the text is cut before `[[location]]` headers into pieces of about `piece`
/// bytes; the first piece is parsed as the main file, the others as locations only (on two
/// threads), and their spans are moved by the piece's offset so that they are offsets in the
/// whole file. A piece after the first starts at an array-of-tables header, so each of its keys
/// belongs to one of its own locations and parsing it alone cannot change the result. It is used
/// only when: no multi-line strings, every table header is one of [`SPLIT_HEADERS`], no line
/// defines a `location` key (a static array, a `[location]` table), and every piece parses.
fn parse_split(text: &str, piece: usize) -> Option<RawFile> {
    if text.contains("\"\"\"") || text.contains("'''") {
        return None;
    }
    for line in text.lines() {
        let l = line.trim_start();
        if l.starts_with('[') {
            if !SPLIT_HEADERS.contains(&table_header(l)) {
                return None;
            }
        } else if ["location", "\"location", "'location"]
            .iter()
            .any(|k| l.starts_with(k))
        {
            return None;
        }
    }
    let starts = piece_starts(text, piece);
    if starts.len() < 2 {
        return None;
    }
    let range = |i: usize| starts[i]..starts.get(i + 1).copied().unwrap_or(text.len());
    // Pieces 1.. go to whichever thread is free; each result keeps its piece number.
    let next = std::sync::atomic::AtomicUsize::new(1);
    let work = || {
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if i >= starts.len() {
                return done;
            }
            let r = range(i);
            let parsed = toml::from_str::<RawInclude>(&text[r.clone()]).ok();
            let failed = parsed.is_none();
            done.push((i, parsed.map(|p| shift_locations(p.location, r.start))));
            if failed {
                // The whole file is parsed again in one piece, which reports the error.
                next.store(starts.len(), std::sync::atomic::Ordering::Relaxed);
                return done;
            }
        }
    };
    let (first, mut rest) = std::thread::scope(|scope| {
        let helper = scope.spawn(work);
        let first = toml::from_str::<RawFile>(&text[range(0)]).ok();
        let mut rest = work();
        rest.extend(helper.join().ok()?);
        Some((first, rest))
    })?;
    let mut raw = first?;
    // A piece that failed left its `None` (and stopped the others).
    rest.sort_unstable_by_key(|(i, _)| *i);
    for (_, locations) in rest {
        raw.location.extend(locations?);
    }
    Some(raw)
}

/// `locations` parsed from a piece of text that starts at byte `by` of the file, with their
/// spans made offsets in the file.
fn shift_locations(locations: Vec<RawLocation>, by: usize) -> Vec<RawLocation> {
    fn at<T>(v: Spanned<T>, by: usize) -> Spanned<T> {
        let span = v.span();
        Spanned::new(span.start + by..span.end + by, v.into_inner())
    }
    fn all<T>(v: Vec<Spanned<T>>, by: usize) -> Vec<Spanned<T>> {
        v.into_iter().map(|x| at(x, by)).collect()
    }
    fn list<T>(v: Spanned<Vec<Spanned<T>>>, by: usize) -> Spanned<Vec<Spanned<T>>> {
        let span = v.span();
        Spanned::new(span.start + by..span.end + by, all(v.into_inner(), by))
    }
    locations
        .into_iter()
        .map(|l| RawLocation {
            name: at(l.name, by),
            provider: l.provider,
            provider_asns: all(l.provider_asns, by),
            region: l.region,
            origin_asns: list(l.origin_asns, by),
            prefixes: list(l.prefixes, by),
            max_length: l.max_length.map(|v| at(v, by)),
            max_length_v6: l.max_length_v6.map(|v| at(v, by)),
            min_peers: l.min_peers.map(|v| at(v, by)),
            min_visibility: l.min_visibility.map(|v| at(v, by)),
        })
        .collect()
}

impl Config {
    /// Reads, parses and validates the configuration at `path` and its included files.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let main = Source::read(path)?;
        let raw: RawFile = parse_main(&main)?;
        let base = path.parent().unwrap_or_else(|| Path::new("."));
        let resolve = |p: &str| -> PathBuf {
            let p = Path::new(p);
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            }
        };

        let listen = match raw.http.as_ref().and_then(|h| h.listen.as_ref()) {
            Some(l) => l.get_ref().parse::<SocketAddr>().map_err(|e| {
                main.invalid(
                    &l.span(),
                    "http.listen",
                    format!("not an address:port ({e})"),
                )
            })?,
            None => DEFAULT_HTTP_LISTEN
                .parse()
                .map_err(|_| main.invalid(&(0..0), "http.listen", "bad built-in default"))?,
        };

        let mut http = HttpConfig::new(listen);
        if let Some(h) = &raw.http {
            convert_http(&main, h, &mut http, &resolve)?;
        }

        let mut mrt = MrtConfig {
            watch_interval_seconds: DEFAULT_WATCH_INTERVAL_SECONDS,
            max_errors_per_file: crate::ingest::mrt::DEFAULT_MAX_ERRORS_PER_FILE,
            max_decompression_ratio: crate::ingest::mrt::DEFAULT_MAX_DECOMPRESSION_RATIO,
            incomplete_file_timeout_seconds: DEFAULT_INCOMPLETE_FILE_TIMEOUT_SECONDS,
            ..MrtConfig::default()
        };
        if let Some(m) = &raw.mrt {
            mrt.files = m.files.iter().map(|f| resolve(f)).collect();
            mrt.watch_dir = m.watch_dir.as_deref().map(resolve);
            if let Some(i) = &m.watch_interval_seconds {
                mrt.watch_interval_seconds =
                    positive(&main, i, "mrt.watch-interval-seconds", 1, 86_400)?;
            }
            if let Some(v) = &m.max_errors_per_file {
                mrt.max_errors_per_file =
                    positive(&main, v, "mrt.max-errors-per-file", 0, 1_000_000_000)?;
            }
            if let Some(v) = &m.max_decompression_ratio {
                mrt.max_decompression_ratio =
                    positive(&main, v, "mrt.max-decompression-ratio", 0, 1_000_000)?;
            }
            if let Some(v) = &m.incomplete_file_timeout_seconds {
                mrt.incomplete_file_timeout_seconds =
                    positive(&main, v, "mrt.incomplete-file-timeout-seconds", 0, 604_800)?;
            }
        }

        let mut metrics = MetricsConfig {
            max_prefix_series: DEFAULT_MAX_PREFIX_SERIES,
        };
        if let Some(m) = raw
            .metrics
            .as_ref()
            .and_then(|m| m.max_prefix_series.as_ref())
        {
            metrics.max_prefix_series =
                positive(&main, m, "metrics.max-prefix-series", 0, 10_000_000)? as usize;
        }

        let mut anomalies = AnomaliesConfig::default();
        if let Some(h) = raw
            .anomalies
            .as_ref()
            .and_then(|a| a.hold_down_seconds.as_ref())
        {
            anomalies.hold_down_seconds =
                positive(&main, h, "anomalies.hold-down-seconds", 0, 86_400)?;
        }

        let log = raw
            .log
            .as_ref()
            .map(|l| convert_log(&main, l))
            .transpose()?
            .unwrap_or_default();

        let events = raw
            .events
            .as_ref()
            .map(|e| convert_events(&main, e))
            .transpose()?
            .unwrap_or_default();

        let dns = raw
            .dns
            .as_ref()
            .map(|d| convert_dns(&main, d))
            .transpose()?
            .unwrap_or_default();

        let state_dir = raw.state_dir.as_ref().map_or_else(
            || PathBuf::from(DEFAULT_STATE_DIR),
            |s| resolve(s.get_ref()),
        );
        // A file where the directory should be: the daemon could neither record processed
        // files nor open the event store. (A missing directory is created at start.)
        if std::fs::metadata(&state_dir).is_ok_and(|m| !m.is_dir()) {
            let (span, default) = match &raw.state_dir {
                Some(s) => (s.span(), ""),
                None => (0..0, " (the default)"),
            };
            return Err(main.invalid(
                &span,
                "state-dir",
                format!(
                    "{}{default} exists and is not a directory; give a directory (it is created if missing)",
                    state_dir.display()
                ),
            ));
        }

        // Collect locations from the main file and the includes, keeping their spans.
        let mut sources = vec![main];
        let mut raw_locations: Vec<(usize, RawLocation)> =
            raw.location.into_iter().map(|l| (0, l)).collect();
        for inc in &raw.include {
            let inc_path = resolve(inc.get_ref());
            let src = Source::read(&inc_path).map_err(|e| match e {
                ConfigError::Read { source, .. } => sources[0].invalid(
                    &inc.span(),
                    "include",
                    format!("{}: {source}", inc_path.display()),
                ),
                other => other,
            })?;
            let parsed: RawInclude = src.parse()?;
            let idx = sources.len();
            sources.push(src);
            raw_locations.extend(parsed.location.into_iter().map(|l| (idx, l)));
        }
        // An empty, cut or emptied file would unregister every prefix (and end every anomaly)
        // on a reload: refused unless asked for.
        if raw_locations.is_empty() && !raw.allow_empty_registry {
            let text = &sources[0].text;
            let why = if text.trim().is_empty() {
                "the file is empty"
            } else if text
                .lines()
                .map(str::trim)
                .all(|l| l.is_empty() || l.starts_with('#'))
            {
                "the file is empty (blank lines and comments only)"
            } else if raw.include.is_empty() {
                "the file has no [[location]] table"
            } else {
                "neither the file nor its includes have a [[location]] table"
            };
            return Err(sources[0].invalid(
                &(0..0),
                "location",
                format!(
                    "no locations: {why}; add [[location]] tables, or set \
                     allow-empty-registry = true to run with none"
                ),
            ));
        }

        let mut locations = Vec::with_capacity(raw_locations.len());
        let mut spans = Vec::with_capacity(raw_locations.len());
        for (i, (file, raw)) in raw_locations.into_iter().enumerate() {
            let (loc, sp) = convert_location(&sources[file], file, i, raw)?;
            locations.push(loc);
            spans.push(sp);
        }

        // The registry applies the cross-location rules; map its errors to spans.
        let validated = match Registry::new(locations) {
            Ok(r) => Arc::new(r),
            Err(err) => return Err(registry_error_to_config(&sources, &spans, err)),
        };

        let bmp = raw
            .bmp
            .as_ref()
            .map(|b| convert_bmp(&sources[0], b))
            .transpose()?;
        if let Some(b) = &bmp {
            let written = |l: Option<&Spanned<String>>| l.map(Spanned::span);
            let http_span = written(raw.http.as_ref().and_then(|h| h.listen.as_ref()));
            let bmp_span = written(raw.bmp.as_ref().and_then(|r| r.listen.as_ref()));
            if let Some(same) = listeners_clash(listen, b.listen) {
                // At bmp.listen when it is written, else at http.listen (the defaults do not
                // clash, so one of them is written).
                let (key, span, this, other_key, other, other_written) = match &bmp_span {
                    Some(span) => (
                        "bmp.listen",
                        span.clone(),
                        b.listen,
                        "http.listen",
                        listen,
                        http_span.is_some(),
                    ),
                    None => (
                        "http.listen",
                        http_span.unwrap_or(0..0),
                        listen,
                        "bmp.listen",
                        b.listen,
                        false,
                    ),
                };
                let default = if other_written { "" } else { " (the default)" };
                let what = if same {
                    format!("{this} is also {other_key}{default}")
                } else {
                    format!(
                        "{this} and {other_key}{default} {other} both take port {} (a wildcard \
                         address takes its port on every address)",
                        this.port()
                    )
                };
                return Err(sources[0].invalid(
                    &span,
                    key,
                    format!("{what}; give HTTP and BMP their own ports"),
                ));
            }
        }

        let mut notify: Vec<NotifyTarget> = Vec::with_capacity(raw.notify.len());
        for (i, n) in raw.notify.iter().enumerate() {
            let target = convert_notify(&sources[0], i, n, &resolve, &validated)?;
            if let Some(j) = notify.iter().position(|t| t.name == target.name) {
                return Err(sources[0].invalid(
                    &n.name.span(),
                    format!("notify[{i}].name"),
                    format!("'{}' is already the name of notify[{j}]", target.name),
                ));
            }
            notify.push(target);
        }

        let mut rpki = RpkiConfig {
            vrp_file: None,
            reload_interval_seconds: DEFAULT_RPKI_RELOAD_INTERVAL_SECONDS,
        };
        if let Some(r) = &raw.rpki {
            rpki.vrp_file = r.vrp_file.as_deref().map(resolve);
            if let Some(i) = &r.reload_interval_seconds {
                rpki.reload_interval_seconds =
                    positive(&sources[0], i, "rpki.reload-interval-seconds", 1, 86_400)?;
            }
        }

        let ris_live = match &raw.ris_live {
            Some(r) => ris_live::convert(&sources[0], r, &resolve)?,
            None => None,
        };

        Ok(Config {
            path: path.to_path_buf(),
            http,
            mrt,
            metrics,
            anomalies,
            bmp,
            rpki,
            state_dir,
            events,
            dns,
            log,
            notify,
            ris_live,
            allow_empty_registry: raw.allow_empty_registry,
            validated,
        })
    }

    /// The registry of `locations`, built once when the configuration was loaded.
    pub fn shared_registry(&self) -> Arc<Registry> {
        self.validated.clone()
    }
}

/// Whether two listen addresses cannot both be bound: `Some(true)` for the same address,
/// `Some(false)` for the same port on a wildcard address that covers the other.
fn listeners_clash(a: SocketAddr, b: SocketAddr) -> Option<bool> {
    if a.port() != b.port() || a.port() == 0 {
        return None;
    }
    let (x, y) = (a.ip().to_canonical(), b.ip().to_canonical());
    if x == y {
        return Some(true);
    }
    // `[::]` is bound dual-stack (it takes the port on every IPv6 and IPv4 address);
    // `0.0.0.0` on every IPv4 address.
    let covers = |w: std::net::IpAddr, o: std::net::IpAddr| {
        w.is_unspecified() && (w.is_ipv6() || o.is_ipv4())
    };
    (covers(x, y) || covers(y, x)).then_some(false)
}

fn positive(
    src: &Source,
    v: &Spanned<i64>,
    key: &str,
    min: i64,
    max: i64,
) -> Result<u64, ConfigError> {
    let x = *v.get_ref();
    if x < min || x > max {
        return Err(src.invalid(&v.span(), key, format!("{x} is out of range {min}..={max}")));
    }
    Ok(x as u64)
}

fn convert_http(
    src: &Source,
    raw: &RawHttp,
    http: &mut HttpConfig,
    resolve: &dyn Fn(&str) -> PathBuf,
) -> Result<(), ConfigError> {
    if let Some(v) = &raw.max_connections {
        http.max_connections = positive(src, v, "http.max-connections", 1, 1_000_000)? as usize;
    }
    if let Some(v) = &raw.header_read_timeout_seconds {
        http.header_read_timeout_seconds =
            positive(src, v, "http.header-read-timeout-seconds", 1, 3600)?;
    }
    if let Some(v) = &raw.idle_timeout_seconds {
        http.idle_timeout_seconds = positive(src, v, "http.idle-timeout-seconds", 1, 86_400)?;
    }
    if let Some(v) = &raw.max_api_requests {
        http.max_api_requests = positive(src, v, "http.max-api-requests", 1, 4096)? as usize;
    }
    if let Some(f) = &raw.token_file {
        let path = resolve(f.get_ref());
        let tokens = crate::http::auth::Tokens::load(&path)
            .map_err(|e| src.invalid(&f.span(), "http.token-file", e))?;
        http.tokens = Some(tokens);
        http.token_file = Some(path);
    }
    match (&raw.tls_cert, &raw.tls_key) {
        (None, None) => {}
        (Some(c), None) => {
            return Err(src.invalid(
                &c.span(),
                "http.tls-cert",
                "tls-cert is set but tls-key is not; give both (PEM files) or neither",
            ))
        }
        (None, Some(k)) => {
            return Err(src.invalid(
                &k.span(),
                "http.tls-key",
                "tls-key is set but tls-cert is not; give both (PEM files) or neither",
            ))
        }
        (Some(c), Some(k)) => {
            let files = TlsFiles {
                cert: resolve(c.get_ref()),
                key: resolve(k.get_ref()),
            };
            crate::http::tls::server_config(&files).map_err(|e| match e {
                crate::http::tls::TlsError::Cert(m) => src.invalid(&c.span(), "http.tls-cert", m),
                crate::http::tls::TlsError::Key(m) => src.invalid(&k.span(), "http.tls-key", m),
            })?;
            http.tls = Some(files);
        }
    }
    Ok(())
}

fn convert_events(src: &Source, raw: &RawEvents) -> Result<EventsConfig, ConfigError> {
    let mut events = EventsConfig::default();
    if let Some(e) = raw.enabled {
        events.enabled = e;
    }
    if let Some(v) = &raw.flush_interval_ms {
        events.flush_interval_ms = positive(src, v, "events.flush-interval-ms", 10, 60_000)?;
    }
    if let Some(v) = &raw.retention_days {
        events.retention_days = positive(src, v, "events.retention-days", 1, 36_500)?;
    }
    if let Some(v) = &raw.max_rows {
        events.max_rows = positive(src, v, "events.max-rows", 1, 1_000_000_000)?;
    }
    Ok(events)
}

fn convert_log(src: &Source, raw: &RawLog) -> Result<LogConfig, ConfigError> {
    let mut log = LogConfig::default();
    if let Some(f) = &raw.format {
        log.format = match f.get_ref().as_str() {
            "text" => crate::log::LogFormat::Text,
            "json" => crate::log::LogFormat::Json,
            other => {
                return Err(src.invalid(
                    &f.span(),
                    "log.format",
                    format!("'{other}': expected \"text\" or \"json\""),
                ))
            }
        };
    }
    if let Some(l) = &raw.level {
        let text = l.get_ref().trim();
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(text) {
            return Err(src.invalid(
                &l.span(),
                "log.level",
                format!("'{text}': {e} (expected e.g. \"info\" or \"warn,routewatch=debug\")"),
            ));
        }
        log.level = text.to_string();
    }
    Ok(log)
}

fn convert_dns(src: &Source, raw: &RawDns) -> Result<DnsConfig, ConfigError> {
    let mut dns = DnsConfig::default();
    if let Some(e) = raw.enabled {
        dns.enabled = e;
    }
    if let Some(list) = &raw.servers {
        if list.get_ref().is_empty() {
            return Err(src.invalid(
                &list.span(),
                "dns.servers",
                "at least one server is required (remove the key to use /etc/resolv.conf)",
            ));
        }
        let mut servers = Vec::with_capacity(list.get_ref().len());
        for s in list.get_ref() {
            let text = s.get_ref().trim();
            let addr = text
                .parse::<SocketAddr>()
                .or_else(|_| {
                    text.parse::<std::net::IpAddr>()
                        .map(|ip| SocketAddr::new(ip, 53))
                })
                .map_err(|_| {
                    src.invalid(
                        &s.span(),
                        "dns.servers",
                        format!("'{text}' is not an address or address:port"),
                    )
                })?;
            if addr.port() == 0 {
                return Err(src.invalid(&s.span(), "dns.servers", "port 0 is not a server port"));
            }
            servers.push(addr);
        }
        dns.servers = Some(servers);
    }
    if let Some(v) = &raw.timeout_ms {
        dns.timeout_ms = positive(src, v, "dns.timeout-ms", 10, 60_000)?;
    }
    if let Some(v) = &raw.attempts {
        dns.attempts = positive(src, v, "dns.attempts", 1, 10)? as u32;
    }
    if let Some(v) = &raw.max_in_flight {
        dns.max_in_flight = positive(src, v, "dns.max-in-flight", 1, 1024)? as usize;
    }
    if let Some(v) = &raw.cache_entries {
        dns.cache_entries = positive(src, v, "dns.cache-entries", 1, 10_000_000)? as usize;
    }
    if let Some(v) = &raw.negative_ttl_seconds {
        dns.negative_ttl_seconds = positive(src, v, "dns.negative-ttl-seconds", 1, 86_400)?;
    }
    if let Some(v) = &raw.max_ttl_seconds {
        dns.max_ttl_seconds = positive(src, v, "dns.max-ttl-seconds", 1, 7 * 86_400)?;
    }
    Ok(dns)
}

/// A `[[notify]]` table; `registry` is the configuration's (its location names are the ones a
/// `locations` filter may use).
fn convert_notify(
    src: &Source,
    i: usize,
    raw: &RawNotify,
    resolve: &dyn Fn(&str) -> PathBuf,
    registry: &Registry,
) -> Result<NotifyTarget, ConfigError> {
    use crate::notify::{self, Endpoint, Filter, Format, Headers};
    let key = |k: &str| format!("notify[{i}].{k}");
    let name = raw.name.get_ref().trim().to_string();
    if name.is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(src.invalid(
            &raw.name.span(),
            key("name"),
            "must be 1 to 64 letters, digits, '-', '_' or '.' (it is a metric label and a \
             command-line argument)",
        ));
    }
    let format = Format::parse(raw.format.get_ref().trim()).ok_or_else(|| {
        src.invalid(
            &raw.format.span(),
            key("type"),
            format!(
                "'{}' is not a target type; accepted: webhook (generic JSON), slack (Slack, \
                 Mattermost, Rocket.Chat incoming webhooks)",
                raw.format.get_ref()
            ),
        )
    })?;
    let allow_http = raw.allow_http.unwrap_or(false);
    let (endpoint, url_file) = match (&raw.url, &raw.url_file) {
        (Some(u), None) => (
            Endpoint::parse(u.get_ref(), allow_http)
                .map_err(|e| src.invalid(&u.span(), key("url"), e))?,
            None,
        ),
        (None, Some(f)) => {
            let path = resolve(f.get_ref());
            let text = std::fs::read_to_string(&path).map_err(|e| {
                src.invalid(
                    &f.span(),
                    key("url-file"),
                    format!("{}: cannot be read: {e}", path.display()),
                )
            })?;
            let url = text
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty() && !l.starts_with('#'))
                .unwrap_or_default();
            let endpoint = Endpoint::parse(url, allow_http).map_err(|e| {
                src.invalid(
                    &f.span(),
                    key("url-file"),
                    format!("{}: {e}", path.display()),
                )
            })?;
            (endpoint, Some(path))
        }
        (Some(u), Some(_)) => {
            return Err(src.invalid(&u.span(), key("url"), "give url or url-file, not both"))
        }
        (None, None) => {
            return Err(src.invalid(
                &raw.name.span(),
                key("url"),
                "a target needs url (or url-file, for a URL that is a secret)",
            ))
        }
    };
    let mut filter = Filter::default();
    if let Some(s) = &raw.min_severity {
        filter.min_severity =
            crate::engine::Severity::parse(s.get_ref().trim()).ok_or_else(|| {
                src.invalid(
                    &s.span(),
                    key("min-severity"),
                    format!(
                        "'{}' is not a severity; accepted: warning, error, critical (information \
                     sends every kind too)",
                        s.get_ref()
                    ),
                )
            })?;
    }
    if let Some(list) = &raw.locations {
        if list.get_ref().is_empty() {
            return Err(src.invalid(
                &list.span(),
                key("locations"),
                "an empty list sends nothing; remove the key to send every location",
            ));
        }
        let mut names = Vec::with_capacity(list.get_ref().len());
        for l in list.get_ref() {
            let n = l.get_ref().trim();
            if !registry.locations().iter().any(|x| x.name == n) {
                return Err(src.invalid(
                    &l.span(),
                    key("locations"),
                    format!("'{n}' is not the name of a [[location]]"),
                ));
            }
            names.push(n.to_string());
        }
        filter.locations = Some(names);
    }
    if let Some(list) = &raw.anomalies {
        if list.get_ref().is_empty() {
            return Err(src.invalid(
                &list.span(),
                key("anomalies"),
                "an empty list sends nothing; remove the key to send every anomaly kind",
            ));
        }
        let mut kinds = Vec::with_capacity(list.get_ref().len());
        for k in list.get_ref() {
            let kind = crate::engine::AnomalyKind::ALL
                .into_iter()
                .find(|x| x.as_str() == k.get_ref().trim())
                .ok_or_else(|| {
                    src.invalid(
                        &k.span(),
                        key("anomalies"),
                        format!(
                            "'{}' is not an anomaly kind; accepted: {}",
                            k.get_ref(),
                            crate::engine::AnomalyKind::ALL
                                .map(|x| x.as_str())
                                .join(", ")
                        ),
                    )
                })?;
            kinds.push(kind);
        }
        filter.anomalies = Some(kinds);
    }
    let timeout_seconds = match &raw.timeout_seconds {
        Some(v) => positive(src, v, &key("timeout-seconds"), 1, 300)?,
        None => notify::DEFAULT_TIMEOUT_SECONDS,
    };
    let max_attempts = match &raw.max_attempts {
        Some(v) => positive(src, v, &key("max-attempts"), 1, 20)? as u32,
        None => notify::DEFAULT_MAX_ATTEMPTS,
    };
    let queue_size = match &raw.queue_size {
        Some(v) => positive(src, v, &key("queue-size"), 1, 100_000)? as usize,
        None => notify::DEFAULT_QUEUE_SIZE,
    };
    let link_base = match &raw.link_base {
        Some(l) => {
            let text = l.get_ref().trim().trim_end_matches('/');
            let ok = Endpoint::parse(text, true)
                .is_ok_and(|e| !text.contains('?') && !text.contains('#') && e.path == "/");
            if !ok {
                return Err(src.invalid(
                    &l.span(),
                    key("link-base"),
                    "want http(s)://host[:port] (no path or query): where the API is reached",
                ));
            }
            Some(text.to_string())
        }
        None => None,
    };
    let mut headers = Headers::default();
    if let Some(h) = &raw.headers {
        for (name, value) in h.get_ref() {
            headers
                .add(name, value.get_ref(), true)
                .map_err(|e| src.invalid(&value.span(), key("headers"), e))?;
        }
    }
    let headers_file = match &raw.headers_file {
        Some(f) => {
            let path = resolve(f.get_ref());
            headers
                .add_file(&path)
                .map_err(|e| src.invalid(&f.span(), key("headers-file"), e))?;
            Some(path)
        }
        None => None,
    };
    Ok(NotifyTarget {
        name,
        format,
        endpoint,
        url_file,
        filter,
        timeout_seconds,
        max_attempts,
        queue_size,
        link_base,
        headers,
        headers_file,
    })
}

fn convert_bmp(src: &Source, raw: &RawBmp) -> Result<BmpConfig, ConfigError> {
    let listen = match &raw.listen {
        Some(l) => l.get_ref().parse::<SocketAddr>().map_err(|e| {
            src.invalid(
                &l.span(),
                "bmp.listen",
                format!("not an address:port ({e})"),
            )
        })?,
        None => DEFAULT_BMP_LISTEN
            .parse()
            .map_err(|_| src.invalid(&(0..0), "bmp.listen", "bad built-in default"))?,
    };
    let allow = match &raw.allow {
        // Default: any address (0.0.0.0/0 and ::/0); the documented example narrows it.
        None => vec![
            ipnet::IpNet::V4(ipnet::Ipv4Net::default()),
            ipnet::IpNet::V6(ipnet::Ipv6Net::default()),
        ],
        Some(list) if list.get_ref().is_empty() => {
            return Err(src.invalid(
                &list.span(),
                "bmp.allow",
                "an empty list admits no router; list the routers' networks (e.g. \
                 [\"192.0.2.0/24\"]), or remove the key to admit any address",
            ))
        }
        Some(list) => list
            .get_ref()
            .iter()
            .map(|n| parse_prefix(n.get_ref()).map_err(|m| src.invalid(&n.span(), "bmp.allow", m)))
            .collect::<Result<_, _>>()?,
    };
    let max_sessions = match &raw.max_sessions {
        Some(v) => positive(src, v, "bmp.max-sessions", 1, 100_000)? as usize,
        None => DEFAULT_BMP_MAX_SESSIONS,
    };
    let max_frame_bytes = match &raw.max_frame_bytes {
        Some(v) => positive(src, v, "bmp.max-frame-bytes", 4096, 16 * 1024 * 1024)? as u32,
        None => DEFAULT_BMP_MAX_FRAME_BYTES,
    };
    let initial_table_timeout_seconds = match &raw.initial_table_timeout_seconds {
        Some(v) => positive(src, v, "bmp.initial-table-timeout-seconds", 0, 86_400)?,
        None => DEFAULT_BMP_INITIAL_TABLE_TIMEOUT_SECONDS,
    };
    let max_sessions_per_address = match &raw.max_sessions_per_address {
        Some(v) => positive(src, v, "bmp.max-sessions-per-address", 1, 100_000)? as usize,
        None => DEFAULT_BMP_MAX_SESSIONS_PER_ADDRESS,
    };
    let initiation_timeout_seconds = match &raw.initiation_timeout_seconds {
        Some(v) => positive(src, v, "bmp.initiation-timeout-seconds", 1, 3600)?,
        None => DEFAULT_BMP_INITIATION_TIMEOUT_SECONDS,
    };
    let idle_timeout_seconds = match &raw.idle_timeout_seconds {
        Some(v) => positive(src, v, "bmp.idle-timeout-seconds", 0, 7 * 86_400)?,
        None => DEFAULT_BMP_IDLE_TIMEOUT_SECONDS,
    };
    let tcp_keepalive_seconds = match &raw.tcp_keepalive_seconds {
        Some(v) => positive(src, v, "bmp.tcp-keepalive-seconds", 0, 7200)?,
        None => DEFAULT_BMP_TCP_KEEPALIVE_SECONDS,
    };
    let max_peers_per_router = match &raw.max_peers_per_router {
        Some(v) => positive(src, v, "bmp.max-peers-per-router", 1, 1 << 20)? as usize,
        None => DEFAULT_BMP_MAX_PEERS_PER_ROUTER,
    };
    let mut routers: Vec<BmpRouter> = Vec::with_capacity(raw.router.len());
    for (i, r) in raw.router.iter().enumerate() {
        let address = r.address.get_ref().parse().map_err(|_| {
            src.invalid(
                &r.address.span(),
                format!("bmp.router[{i}].address"),
                "not an IP address",
            )
        })?;
        let name = r.name.get_ref().trim().to_string();
        if name.is_empty() || name.len() > 128 || name.chars().any(|c| c.is_control()) {
            return Err(src.invalid(
                &r.name.span(),
                format!("bmp.router[{i}].name"),
                "must be 1 to 128 printable characters",
            ));
        }
        if let Some(j) = routers.iter().position(|x| x.address == address) {
            return Err(src.invalid(
                &r.address.span(),
                format!("bmp.router[{i}].address"),
                format!("{address} is already named by bmp.router[{j}]; one name per router"),
            ));
        }
        if let Some(j) = routers.iter().position(|x| x.name == name) {
            return Err(src.invalid(
                &r.name.span(),
                format!("bmp.router[{i}].name"),
                format!(
                    "'{name}' is already the name of bmp.router[{j}] ({}); each router needs \
                     its own name",
                    routers[j].address
                ),
            ));
        }
        routers.push(BmpRouter { address, name });
    }
    if max_sessions < routers.len() {
        let span = raw.max_sessions.as_ref().map_or(0..0, |v| v.span());
        return Err(src.invalid(
            &span,
            "bmp.max-sessions",
            format!(
                "{max_sessions} is fewer than the {} [[bmp.router]] entries; each configured \
                 router has a reserved slot",
                routers.len()
            ),
        ));
    }
    Ok(BmpConfig {
        listen,
        allow,
        max_sessions,
        max_sessions_per_address,
        initiation_timeout_seconds,
        idle_timeout_seconds,
        tcp_keepalive_seconds,
        max_peers_per_router,
        max_frame_bytes,
        initial_table_timeout_seconds,
        routers,
    })
}

fn asn(src: &Source, v: &Spanned<i64>, key: &str) -> Result<u32, ConfigError> {
    let x = *v.get_ref();
    if !(1..=u32::MAX as i64).contains(&x) {
        return Err(src.invalid(
            &v.span(),
            key,
            format!(
                "ASN {x} is out of range 1..=4294967295 (AS0 is not a valid origin or upstream)"
            ),
        ));
    }
    Ok(x as u32)
}

fn convert_location(
    src: &Source,
    file: usize,
    index: usize,
    raw: RawLocation,
) -> Result<(Location, LocationSpans), ConfigError> {
    let key = |k: &str| format!("location[{index}].{k}");
    let name = raw.name.get_ref().trim().to_string();
    if name.is_empty() || name.len() > 128 || name.chars().any(|c| c.is_control()) {
        return Err(src.invalid(
            &raw.name.span(),
            key("name"),
            "must be 1 to 128 printable characters",
        ));
    }
    let origin_asns = raw
        .origin_asns
        .get_ref()
        .iter()
        .map(|a| asn(src, a, &key("origin-asns")))
        .collect::<Result<Vec<_>, _>>()?;
    if origin_asns.is_empty() {
        return Err(src.invalid(
            &raw.origin_asns.span(),
            key("origin-asns"),
            "at least one expected origin AS is required",
        ));
    }
    let provider_asns = raw
        .provider_asns
        .iter()
        .map(|a| asn(src, a, &key("provider-asns")))
        .collect::<Result<Vec<_>, _>>()?;
    if raw.prefixes.get_ref().is_empty() {
        return Err(src.invalid(
            &raw.prefixes.span(),
            key("prefixes"),
            "at least one prefix is required",
        ));
    }
    let mut prefixes = Vec::with_capacity(raw.prefixes.get_ref().len());
    let mut prefix_spans = Vec::with_capacity(prefixes.capacity());
    for p in raw.prefixes.get_ref() {
        let net = parse_prefix(p.get_ref())
            .and_then(|net| registrable(p.get_ref(), net))
            .map_err(|m| src.invalid(&p.span(), key("prefixes"), m))?;
        prefixes.push(net);
        prefix_spans.push(p.span());
    }
    let len = |v: &Option<Spanned<i64>>, k: &str, max: i64| -> Result<Option<u8>, ConfigError> {
        v.as_ref()
            .map(|s| positive(src, s, &key(k), 0, max).map(|x| x as u8))
            .transpose()
    };
    let max_length = len(&raw.max_length, "max-length", 32)?;
    let max_length_v6 = len(&raw.max_length_v6, "max-length-v6", 128)?;
    let min_visibility = match &raw.min_visibility {
        Some(m) => positive(src, m, &key("min-visibility"), 0, 100_000)? as u32,
        None => 0,
    };
    let min_peers = match &raw.min_peers {
        Some(m) => positive(src, m, &key("min-peers"), 1, 100_000)? as u32,
        None => DEFAULT_MIN_PEERS,
    };
    Ok((
        Location {
            name,
            provider: raw.provider,
            provider_asns,
            region: raw.region,
            origin_asns,
            prefixes,
            max_length,
            max_length_v6,
            min_peers,
            min_visibility,
        },
        LocationSpans {
            file,
            name: raw.name.span(),
            prefixes: prefix_spans,
            max_length: raw.max_length.as_ref().map(|s| s.span()),
            max_length_v6: raw.max_length_v6.as_ref().map(|s| s.span()),
        },
    ))
}

/// Refuses what cannot sensibly be registered: a default route (every route would match it)
/// and an IPv4-mapped IPv6 prefix (BGP carries IPv4 routes as IPv4; it would never match).
/// Whether `net` (written `text`) may be registered: not a default route, not IPv4-mapped IPv6.
pub(crate) fn registrable(text: &str, net: IpNet) -> Result<IpNet, String> {
    if net.prefix_len() == 0 {
        let family = if net.addr().is_ipv4() { "IPv4" } else { "IPv6" };
        return Err(format!(
            "{net} is the default route: every {family} route on the Internet would match it; \
             register the location's own prefixes"
        ));
    }
    if let IpNet::V6(v6) = net {
        let mapped = ipnet::Ipv6Net::new(std::net::Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0, 0), 96)
            .map_err(|e| e.to_string())?;
        if mapped.contains(&v6) {
            let instead = match v6
                .addr()
                .to_ipv4_mapped()
                .and_then(|a| ipnet::Ipv4Net::new(a, v6.prefix_len() - 96).ok())
            {
                Some(v4) if v4.prefix_len() > 0 => format!("write the IPv4 prefix {v4} instead"),
                _ => "it stands for all of IPv4: write the location's IPv4 prefixes".to_string(),
            };
            return Err(format!(
                "'{}' is an IPv4-mapped IPv6 prefix, which no IPv4 route matches; {instead}",
                text.trim()
            ));
        }
    }
    Ok(net)
}

/// Parses a registered prefix strictly: host bits must be zero and the length in range.
pub fn parse_prefix(s: &str) -> Result<IpNet, String> {
    let net: IpNet = s.trim().parse().map_err(|_| {
        format!("'{s}' is not a prefix in address/length form (or its length is too long)")
    })?;
    if net.trunc() != net {
        return Err(format!(
            "'{s}' has host bits set beyond /{} (did you mean {}?)",
            net.prefix_len(),
            net.trunc()
        ));
    }
    Ok(net)
}

fn registry_error_to_config(
    sources: &[Source],
    spans: &[LocationSpans],
    err: RegistryError,
) -> ConfigError {
    match err {
        RegistryError::DuplicateLocationName { location, first } => {
            let sp = &spans[location];
            sources[sp.file].invalid(
                &sp.name,
                format!("location[{location}].name"),
                format!("duplicate location name (first used by location[{first}])"),
            )
        }
        RegistryError::DuplicatePrefix {
            location,
            prefix_index,
            prefix,
            first_location,
        } => {
            let sp = &spans[location];
            sources[sp.file].invalid(
                &sp.prefixes[prefix_index],
                format!("location[{location}].prefixes"),
                format!("{prefix} is already registered by location[{first_location}]"),
            )
        }
        RegistryError::MaxLengthShorterThanPrefix {
            location,
            prefix_index,
            prefix,
            max_length,
        } => {
            let sp = &spans[location];
            let (k, span) = if prefix.addr().is_ipv4() {
                ("max-length", sp.max_length.clone())
            } else {
                ("max-length-v6", sp.max_length_v6.clone())
            };
            sources[sp.file].invalid(
                &span.unwrap_or_else(|| sp.prefixes[prefix_index].clone()),
                format!("location[{location}].{k}"),
                format!("{max_length} is shorter than the registered prefix {prefix}"),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(locations: usize) -> String {
        let mut t = String::from("state-dir = \"/tmp/x\"\n\n[metrics]\nmax-prefix-series = 5\n");
        for i in 0..locations {
            t.push_str(&format!(
                "\n[[location]] # site {i}\nname = \"l{i}\"\norigin-asns = [{}]\nprefixes = [\"10.{}.{}.0/24\"]\n",
                64496 + i,
                i / 256,
                i % 256
            ));
            if i % 3 == 0 {
                // Every optional key, so that every span is compared.
                t.push_str(&format!(
                    "provider = \"p{i}\"\nprovider-asns = [64511, {}]\nregion = \"r\"\nmax-length = 24\nmax-length-v6 = 48\nmin-peers = 2\nmin-visibility = {i}\n",
                    65000 + i
                ));
            }
        }
        t
    }

    #[test]
    fn split_parse_gives_the_one_piece_result() {
        let text = doc(40);
        let whole: RawFile = toml::from_str(&text).unwrap();
        // From pieces of one location each to a piece as large as the file.
        for piece in [1, 60, 200, 1000, text.len()] {
            let split = parse_split(&text, piece);
            if piece >= text.len() {
                assert!(split.is_none(), "one piece: nothing to split");
                continue;
            }
            let split = split.expect("splittable");
            assert_eq!(split.location.len(), 40);
            // Debug output holds every value and every span.
            assert_eq!(
                format!("{:?}", split.location),
                format!("{:?}", whole.location),
                "pieces of {piece} bytes: same locations, same spans"
            );
            assert_eq!(
                split
                    .metrics
                    .unwrap()
                    .max_prefix_series
                    .unwrap()
                    .into_inner(),
                5
            );
        }
        assert_eq!(piece_starts(&text, 1).len(), 41, "a piece per location");
    }

    #[test]
    fn split_parse_declines_what_it_cannot_prove_equal() {
        for extra in [
            "location = []\n",
            "[location.x]\n",
            "s = \"\"\"\n[[location]]\n\"\"\"\n",
        ] {
            let text = format!("{extra}{}", doc(10));
            assert!(parse_split(&text, 100).is_none(), "{extra:?}");
        }
        // A second half that is not only locations.
        let text = format!("{}\n[http]\nlisten = \"127.0.0.1:1\"\n", doc(10));
        assert!(parse_split(&text, 100).is_none());
        // A piece that does not parse.
        let text = format!("{}\n[[location]]\nname = \n", doc(10));
        assert!(parse_split(&text, 100).is_none());
    }
}
