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

mod bmp;
mod kafka;
mod location;
mod notify;
mod ris_live;
mod rpki;
mod split;
use bmp::{convert_bmp, RawBmp};
pub use bmp::{BmpConfig, BmpRouter};
pub use kafka::{KafkaConfig, KafkaStart, KafkaTopics};
pub use location::parse_prefix;
pub(crate) use location::registrable;
use location::{convert_location, registry_error_to_config, RawLocation};
pub use notify::NotifyTarget;
use notify::{convert_notify, RawNotify};
pub use ris_live::{
    is_name as ris_live_name, BaselineFile, RisLiveConfig, DEFAULT_RIS_LIVE_HEARTBEAT_HOST,
};
pub use rpki::{
    check_server as check_rtr_server, RpkiConfig, RtrConfig, DEFAULT_ROA_EXPIRY_WARNING_DAYS,
    DEFAULT_RPKI_RELOAD_INTERVAL_SECONDS, DEFAULT_RTR_CONNECT_TIMEOUT_SECONDS, MAX_RTR_SERVERS,
};
use split::parse_main;

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
    /// `[[kafka]]`: raw BMP (OpenBMP format) from Kafka consumer groups, in file order.
    pub kafka: Vec<KafkaConfig>,
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
    rpki: Option<rpki::RawRpki>,
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
    kafka: Vec<kafka::RawKafka>,
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

        let rpki = rpki::convert(&sources[0], raw.rpki.as_ref(), &resolve)?;

        let ris_live = match &raw.ris_live {
            Some(r) => ris_live::convert(&sources[0], r, &resolve)?,
            None => None,
        };
        let mut kafka = Vec::with_capacity(raw.kafka.len());
        for (i, k) in raw.kafka.iter().enumerate() {
            let c = kafka::convert(&sources[0], i, k, &kafka, &resolve)?;
            kafka.push(c);
        }

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
            kafka,
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

/// `[rpki.peer-roles]`: `"192.0.2.1" = "customer"` or `"AS64500" = "provider"`.
fn peer_roles(
    src: &Source,
    raw: &std::collections::BTreeMap<String, Spanned<String>>,
) -> Result<crate::engine::RolePolicy, ConfigError> {
    use crate::model::PeerRole;
    let mut policy = crate::engine::RolePolicy::default();
    for (peer, role) in raw {
        let key = format!("rpki.peer-roles.\"{peer}\"");
        let Some(r) = PeerRole::parse(role.get_ref()) else {
            let names: Vec<&str> = PeerRole::ALL.iter().map(|r| r.as_str()).collect();
            let msg = format!(
                "unknown role {:?}; one of {}",
                role.get_ref(),
                names.join(", ")
            );
            return Err(src.invalid(&role.span(), &key, msg));
        };
        let digits = peer
            .strip_prefix("AS")
            .or_else(|| peer.strip_prefix("as"))
            .unwrap_or(peer);
        if let Ok(ip) = peer.parse::<std::net::IpAddr>() {
            policy.by_address.insert(ip, r);
        } else if let Ok(asn) = digits.parse::<u32>() {
            policy.by_asn.insert(asn, r);
        } else {
            let msg = format!("{peer:?} is neither a peer address nor an AS number (AS64500)");
            return Err(src.invalid(&role.span(), &key, msg));
        }
    }
    Ok(policy)
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
