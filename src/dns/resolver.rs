//! DNS enrichment: AS names through the Team Cymru DNS interface and router names through
//! reverse DNS, with [hickory-resolver](https://docs.rs/hickory-resolver).
//!
//! The [`Enricher`] answers two questions:
//!
//! - [`Enricher::as_name`]: the holder name of an AS, from the TXT record of
//!   `AS<n>.asn.cymru.com` (`"15169 | US | arin | 2000-03-30 | GOOGLE, US"` → `GOOGLE, US`);
//! - [`Enricher::router_name`]: the PTR name of an address (BMP routers without a configured name).
//!
//! Nothing here may slow the route pipeline down:
//!
//! - the async lookups never keep their caller waiting longer than the configured timeout, even
//!   when the DNS server never answers or every query slot is busy (they then return `None`; the
//!   lookup carries on in the background and fills the cache for the next caller);
//! - [`Enricher::cached_as_name`] / [`Enricher::cached_router_name`] only read the cache (no I/O,
//!   no `.await`), for the engine's hot path; [`Enricher::prefetch`] /
//!   [`Enricher::prefetch_router_names`] start background lookups and return at once;
//! - at most `max-in-flight` queries are outstanding (a [`tokio::sync::Semaphore`]); concurrent
//!   requests for the same name share one query; at most [`MAX_PENDING`] lookups wait for a slot,
//!   more are dropped (counted in [`EnricherStats::dropped`]) rather than queued without bound.
//!
//! Answers are cached: a name for its record TTL (clamped to `min_ttl..=max_ttl`), a negative
//! answer (NXDOMAIN, no data, an unusable record, SERVFAIL, a timeout) for the negative TTL. The
//! cache holds at most `cache-entries` names; when full, the oldest inserted entry goes. The
//! resolver's own cache is turned off so that this one is the only one.
//!
//! Answers are untrusted input: TXT data that is not UTF-8 is decoded lossily, control characters
//! are removed, names are cut at [`MAX_NAME_CHARS`] characters, records with missing fields or
//! another AS number are skipped; nothing in an answer can make a lookup panic.
//!
//! Private, documentation and reserved AS numbers (RFC 6996, RFC 5398, RFC 7300, AS0, AS_TRANS)
//! are never looked up: they have no public holder.
//!
//! [`Enricher::disabled`] (or `[dns] enabled = false`, the default) gives an enricher that
//! answers `None` to everything without touching the network.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use hickory_resolver::config::{NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};
use hickory_resolver::TokioResolver;
use tokio::sync::{watch, Semaphore};

use crate::config::DnsConfig;

/// The Team Cymru zone of AS descriptions (`AS<n>.asn.cymru.com` TXT).
pub const CYMRU_ASN_ZONE: &str = "asn.cymru.com.";
/// Longest name kept, in characters; longer names are cut.
pub const MAX_NAME_CHARS: usize = 256;
/// Default shortest time a name is cached, whatever its record TTL says (a TTL of 0 would
/// otherwise send a query for every lookup).
pub const DEFAULT_MIN_TTL: Duration = Duration::from_secs(60);
/// Most lookups waiting for a query slot or in flight; more are dropped, not queued.
pub const MAX_PENDING: usize = 10_000;

/// What an [`Enricher`] was built with; [`EnricherSettings::from_config`] maps `[dns]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnricherSettings {
    /// Look names up at all; `false` gives [`Enricher::disabled`].
    pub enabled: bool,
    /// Name servers (UDP, TCP for truncated answers); `None`: those of `/etc/resolv.conf`.
    pub servers: Option<Vec<SocketAddr>>,
    /// Longest wait of a caller, and the resolver's timeout per query attempt.
    pub timeout: Duration,
    /// Queries per lookup, the first included (later ones are retries after a timeout, an I/O
    /// error or SERVFAIL, not after an answer or NXDOMAIN); callers wait for at most the
    /// timeout, later attempts fill the cache in the background.
    pub attempts: usize,
    /// Most queries outstanding at once.
    pub max_in_flight: usize,
    /// Most cached names (positive and negative); the oldest inserted goes first.
    pub cache_entries: usize,
    /// How long a negative answer (NXDOMAIN, no data, SERVFAIL, timeout) is cached.
    pub negative_ttl: Duration,
    /// Longest time a name is cached (caps the record TTL).
    pub max_ttl: Duration,
    /// Shortest time a name is cached (floors the record TTL).
    pub min_ttl: Duration,
}

impl EnricherSettings {
    /// The settings of a `[dns]` section.
    pub fn from_config(c: &DnsConfig) -> EnricherSettings {
        let max_ttl = Duration::from_secs(c.max_ttl_seconds);
        EnricherSettings {
            enabled: c.enabled,
            servers: c.servers.clone(),
            timeout: Duration::from_millis(c.timeout_ms),
            attempts: c.attempts as usize,
            max_in_flight: c.max_in_flight,
            cache_entries: c.cache_entries,
            negative_ttl: Duration::from_secs(c.negative_ttl_seconds),
            max_ttl,
            min_ttl: DEFAULT_MIN_TTL.min(max_ttl),
        }
    }
}

impl Default for EnricherSettings {
    fn default() -> Self {
        EnricherSettings::from_config(&DnsConfig::default())
    }
}

/// Why an [`Enricher`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ResolverError {
    /// `Enricher::new` was called outside a tokio runtime.
    #[error("DNS enrichment needs a tokio runtime (create the enricher inside one)")]
    NoRuntime,
    /// No servers configured and the system configuration could not be read.
    #[error("[dns] servers not set and the system resolver configuration is unusable: {0}")]
    SystemConfig(String),
    /// No name server to ask.
    #[error("[dns]: no name servers (set `servers` or add nameserver lines to /etc/resolv.conf)")]
    NoServers,
    /// The resolver refused the configuration.
    #[error("cannot build the DNS resolver: {0}")]
    Build(String),
}

/// Counters of an [`Enricher`] since it was built (for metrics and tests).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EnricherStats {
    /// Lookups sent to the resolver (each may be several datagrams with retries).
    pub queries: u64,
    /// Lookups that gave a name.
    pub found: u64,
    /// Lookups answered NXDOMAIN, with no data, or with no usable record.
    pub not_found: u64,
    /// Lookups that timed out.
    pub timeouts: u64,
    /// Lookups that failed otherwise (SERVFAIL, REFUSED, I/O errors).
    pub failures: u64,
    /// Cache reads that found a fresh entry.
    pub cache_hits: u64,
    /// Cache reads that found nothing (or an expired entry).
    pub cache_misses: u64,
    /// Lookups not started because [`MAX_PENDING`] were already waiting.
    pub dropped: u64,
    /// Entries now in the cache (some may have expired).
    pub cache_entries: usize,
    /// Lookups now waiting for a query slot or in flight.
    pub pending: usize,
}

/// AS-name and router-name lookups, cached; cheap to clone (all clones share one cache).
#[derive(Clone)]
pub struct Enricher {
    inner: Option<Arc<Inner>>,
}

impl fmt::Debug for Enricher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner {
            None => f.write_str("Enricher(disabled)"),
            Some(i) => f
                .debug_struct("Enricher")
                .field("settings", &i.settings)
                .field("stats", &self.stats())
                .finish(),
        }
    }
}

/// What is looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    Asn(u32),
    Router(IpAddr),
}

/// The outcome of one lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// A name, with its record TTL in seconds.
    Found(String, u32),
    /// NXDOMAIN, no data, or no usable record.
    NotFound,
    /// No answer in time.
    Timeout,
    /// Any other failure.
    Failed,
}

struct Inner {
    settings: EnricherSettings,
    resolver: TokioResolver,
    runtime: tokio::runtime::Handle,
    permits: Arc<Semaphore>,
    cache: Mutex<Cache>,
    pending: Mutex<Pending>,
    counters: Counters,
}

/// Where waiters get the answer of a lookup under way: `None` until it is done.
type AnswerRx = watch::Receiver<Option<Option<String>>>;

#[derive(Default)]
struct Pending {
    next_id: u64,
    map: HashMap<Key, (u64, AnswerRx)>,
}

#[derive(Default)]
struct Counters {
    queries: AtomicU64,
    found: AtomicU64,
    not_found: AtomicU64,
    timeouts: AtomicU64,
    failures: AtomicU64,
    cache_hits: AtomicU64,
    cache_misses: AtomicU64,
    dropped: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Locks, ignoring poisoning: the protected maps stay consistent at every await-free step.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Enricher {
    /// An enricher that never looks anything up: every answer is `None`.
    pub fn disabled() -> Enricher {
        Enricher { inner: None }
    }

    /// The enricher of a `[dns]` section (see [`Enricher::new`]).
    pub fn from_config(c: &DnsConfig) -> Result<Enricher, ResolverError> {
        Enricher::new(EnricherSettings::from_config(c))
    }

    /// Builds an enricher; its background lookups run on the current tokio runtime, so this must
    /// be called inside one (unless `settings.enabled` is false). Reads `/etc/resolv.conf` when
    /// no servers are given.
    pub fn new(settings: EnricherSettings) -> Result<Enricher, ResolverError> {
        if !settings.enabled {
            return Ok(Enricher::disabled());
        }
        let runtime =
            tokio::runtime::Handle::try_current().map_err(|_| ResolverError::NoRuntime)?;
        Enricher::with_runtime(settings, runtime)
    }

    /// Builds an enricher whose background lookups run on `runtime`; it may then be used from
    /// any thread, inside a runtime or not (only the async lookups need one to be awaited).
    pub fn with_runtime(
        settings: EnricherSettings,
        runtime: tokio::runtime::Handle,
    ) -> Result<Enricher, ResolverError> {
        if !settings.enabled {
            return Ok(Enricher::disabled());
        }
        let name_servers: Vec<NameServerConfig> = match &settings.servers {
            Some(list) => list
                .iter()
                .map(|addr| {
                    let mut ns = NameServerConfig::udp_and_tcp(addr.ip());
                    for c in &mut ns.connections {
                        c.port = addr.port();
                    }
                    ns
                })
                .collect(),
            None => {
                let (config, _) = hickory_resolver::system_conf::read_system_conf()
                    .map_err(|e| ResolverError::SystemConfig(e.to_string()))?;
                config.name_servers().to_vec()
            }
        };
        if name_servers.is_empty() {
            return Err(ResolverError::NoServers);
        }
        let mut opts = ResolverOpts::default();
        opts.timeout = settings.timeout;
        // hickory's `attempts` counts the retries after the first query.
        opts.attempts = settings.attempts.max(1) - 1;
        // This module caches (with its own TTL rules); a second cache below would only hide
        // expiry and cost memory.
        opts.cache_size = 0;
        // DNS only: /etc/hosts is not a source of AS names, and static router names belong in
        // [[bmp.router]].
        opts.use_hosts_file = ResolveHosts::Never;
        // Every name asked is fully qualified: no search list.
        opts.ndots = 0;
        opts.max_active_requests = opts.max_active_requests.max(settings.max_in_flight);
        let resolver = TokioResolver::builder_with_config(
            ResolverConfig::from_name_servers(name_servers),
            TokioRuntimeProvider::default(),
        )
        .with_options(opts)
        .build()
        .map_err(|e| ResolverError::Build(e.to_string()))?;
        Ok(Enricher {
            inner: Some(Arc::new(Inner {
                permits: Arc::new(Semaphore::new(settings.max_in_flight.max(1))),
                cache: Mutex::new(Cache::new(settings.cache_entries.max(1))),
                settings,
                resolver,
                runtime,
                pending: Mutex::new(Pending::default()),
                counters: Counters::default(),
            })),
        })
    }

    /// Whether lookups are made at all.
    pub fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// The longest an async lookup keeps its caller waiting (zero when disabled).
    pub fn timeout(&self) -> Duration {
        self.inner
            .as_ref()
            .map_or(Duration::ZERO, |i| i.settings.timeout)
    }

    /// The holder name of `asn` (`GOOGLE, US`), from the cache or the Team Cymru DNS interface.
    ///
    /// Returns within the configured timeout: `None` when the AS has no name, the answer is
    /// unusable, the server did not answer in time (the lookup then finishes in the background
    /// and caches its result), lookups are disabled, or the AS number is private/reserved.
    pub async fn as_name(&self, asn: u32) -> Option<String> {
        if is_reserved_asn(asn) {
            return None;
        }
        self.lookup(Key::Asn(asn)).await
    }

    /// The reverse-DNS (PTR) name of `ip` without the trailing dot (`edge1.example.net`), from
    /// the cache or the name servers; `None` as for [`Enricher::as_name`].
    pub async fn router_name(&self, ip: IpAddr) -> Option<String> {
        if ip.is_unspecified() {
            return None;
        }
        self.lookup(Key::Router(ip)).await
    }

    /// The cached holder name of `asn`, without waiting or any I/O: `None` when unknown (never
    /// looked up, expired, or lookups disabled; see [`Enricher::prefetch`]), `Some(None)` when
    /// known to have no name (negative answer, or a private/reserved AS number),
    /// `Some(Some(name))` otherwise.
    pub fn cached_as_name(&self, asn: u32) -> Option<Option<String>> {
        let inner = self.inner.as_ref()?;
        if is_reserved_asn(asn) {
            return Some(None);
        }
        inner.cached(Key::Asn(asn))
    }

    /// The cached reverse-DNS name of `ip`, as [`Enricher::cached_as_name`].
    pub fn cached_router_name(&self, ip: IpAddr) -> Option<Option<String>> {
        let inner = self.inner.as_ref()?;
        if ip.is_unspecified() {
            return Some(None);
        }
        inner.cached(Key::Router(ip))
    }

    /// Starts background lookups of the AS names not cached yet and returns at once (no
    /// `.await`; callable from any thread). Returns how many lookups it started (names cached,
    /// already being looked up, reserved or dropped because too many are pending are not).
    pub fn prefetch(&self, asns: impl IntoIterator<Item = u32>) -> usize {
        let Some(inner) = &self.inner else {
            return 0;
        };
        asns.into_iter()
            .filter(|&a| !is_reserved_asn(a))
            .filter(|&a| inner.prefetch(Key::Asn(a)))
            .count()
    }

    /// Starts background reverse-DNS lookups of the addresses not cached yet, as
    /// [`Enricher::prefetch`].
    pub fn prefetch_router_names(&self, ips: impl IntoIterator<Item = IpAddr>) -> usize {
        let Some(inner) = &self.inner else {
            return 0;
        };
        ips.into_iter()
            .filter(|ip| !ip.is_unspecified())
            .filter(|&ip| inner.prefetch(Key::Router(ip)))
            .count()
    }

    /// The counters so far (all zero when disabled).
    pub fn stats(&self) -> EnricherStats {
        let Some(i) = &self.inner else {
            return EnricherStats::default();
        };
        let c = &i.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        // One lock at a time (start() takes pending, then cache).
        let cache_entries = lock(&i.cache).len();
        let pending = lock(&i.pending).map.len();
        EnricherStats {
            queries: get(&c.queries),
            found: get(&c.found),
            not_found: get(&c.not_found),
            timeouts: get(&c.timeouts),
            failures: get(&c.failures),
            cache_hits: get(&c.cache_hits),
            cache_misses: get(&c.cache_misses),
            dropped: get(&c.dropped),
            cache_entries,
            pending,
        }
    }

    async fn lookup(&self, key: Key) -> Option<String> {
        let inner = self.inner.as_ref()?;
        if let Some(v) = inner.cached(key) {
            return v;
        }
        let mut rx = match Inner::start(inner, key) {
            Started::Cached(v) => return v,
            Started::Waiting(rx, _) => rx,
            Started::Dropped => return None,
        };
        let wait = async {
            rx.wait_for(Option::is_some)
                .await
                .ok()
                .and_then(|v| v.clone())
        };
        // `None` on timeout (the lookup goes on in the background) or when its task is gone.
        tokio::time::timeout(inner.settings.timeout, wait)
            .await
            .ok()
            .flatten()
            .flatten()
    }
}

/// What [`Inner::start`] did.
enum Started {
    /// The answer was cached meanwhile.
    Cached(Option<String>),
    /// A lookup is under way (started now if the flag is true, else earlier): wait on this.
    Waiting(AnswerRx, bool),
    /// Too many lookups pending: not started.
    Dropped,
}

impl Inner {
    fn cached(&self, key: Key) -> Option<Option<String>> {
        let v = lock(&self.cache).get(&key, Instant::now());
        bump(if v.is_some() {
            &self.counters.cache_hits
        } else {
            &self.counters.cache_misses
        });
        v
    }

    /// Starts a background lookup unless one is cached or under way; true if started.
    fn prefetch(self: &Arc<Self>, key: Key) -> bool {
        if lock(&self.cache).get(&key, Instant::now()).is_some() {
            return false;
        }
        matches!(Inner::start(self, key), Started::Waiting(_, true))
    }

    /// Joins the lookup of `key` under way, or spawns one.
    fn start(this: &Arc<Self>, key: Key) -> Started {
        let mut pending = lock(&this.pending);
        if let Some((_, rx)) = pending.map.get(&key) {
            return Started::Waiting(rx.clone(), false);
        }
        // Checked under the pending lock: a lookup that just finished has cached its answer
        // before leaving the pending map, so it is seen here and not asked again.
        if let Some(v) = lock(&this.cache).get(&key, Instant::now()) {
            return Started::Cached(v);
        }
        if pending.map.len() >= MAX_PENDING {
            bump(&this.counters.dropped);
            return Started::Dropped;
        }
        let id = pending.next_id;
        pending.next_id += 1;
        let (tx, rx) = watch::channel(None);
        pending.map.insert(key, (id, rx.clone()));
        drop(pending);
        let guard = PendingGuard {
            inner: Arc::clone(this),
            key,
            id,
        };
        this.runtime.spawn(async move {
            let inner = Arc::clone(&guard.inner);
            let outcome = match Arc::clone(&inner.permits).acquire_owned().await {
                Ok(_permit) => inner.resolve(key).await,
                Err(_) => Outcome::Failed,
            };
            let value = inner.finish(key, id, outcome);
            // Nobody waiting is fine.
            let _ = tx.send(Some(value));
            drop(guard);
        });
        Started::Waiting(rx, true)
    }

    /// Caches the outcome and retires the pending entry; returns the cached value.
    fn finish(&self, key: Key, id: u64, outcome: Outcome) -> Option<String> {
        let now = Instant::now();
        let s = &self.settings;
        let (value, ttl) = match outcome {
            Outcome::Found(name, ttl) => (
                Some(name),
                Duration::from_secs(u64::from(ttl)).clamp(s.min_ttl.min(s.max_ttl), s.max_ttl),
            ),
            Outcome::NotFound | Outcome::Timeout | Outcome::Failed => (None, s.negative_ttl),
        };
        let mut pending = lock(&self.pending);
        lock(&self.cache).insert(key, value.clone(), now + ttl);
        if pending.map.get(&key).is_some_and(|(i, _)| *i == id) {
            pending.map.remove(&key);
        }
        value
    }

    async fn resolve(&self, key: Key) -> Outcome {
        bump(&self.counters.queries);
        let (name, rtype) = match key {
            Key::Asn(asn) => match Name::from_ascii(format!("AS{asn}.{CYMRU_ASN_ZONE}")) {
                Ok(n) => (n, RecordType::TXT),
                Err(_) => return self.count(Outcome::Failed),
            },
            Key::Router(ip) => {
                let mut n = Name::from(ip);
                n.set_fqdn(true);
                (n, RecordType::PTR)
            }
        };
        // The resolver times out each attempt itself; this bounds the whole lookup in case
        // retries over several servers add up.
        let whole = self
            .settings
            .timeout
            .saturating_mul(2 * self.settings.attempts.max(1) as u32);
        let result = tokio::time::timeout(whole, self.resolver.lookup(name, rtype)).await;
        let outcome = match result {
            Err(_) => Outcome::Timeout,
            Ok(Ok(lookup)) => {
                let found = match key {
                    Key::Asn(asn) => name_from_txt(asn, lookup.answers()),
                    Key::Router(_) => name_from_ptr(lookup.answers()),
                };
                found.map_or(Outcome::NotFound, |(n, ttl)| Outcome::Found(n, ttl))
            }
            Ok(Err(e)) => classify(&e),
        };
        if let Outcome::Timeout | Outcome::Failed = outcome {
            tracing::debug!(?key, ?outcome, "DNS enrichment lookup failed");
        }
        self.count(outcome)
    }

    fn count(&self, outcome: Outcome) -> Outcome {
        bump(match outcome {
            Outcome::Found(..) => &self.counters.found,
            Outcome::NotFound => &self.counters.not_found,
            Outcome::Timeout => &self.counters.timeouts,
            Outcome::Failed => &self.counters.failures,
        });
        outcome
    }
}

/// Removes the pending entry if its task ends without [`Inner::finish`] (cancelled at runtime
/// shutdown), so the key is not stuck "under way".
struct PendingGuard {
    inner: Arc<Inner>,
    key: Key,
    id: u64,
}

impl Drop for PendingGuard {
    fn drop(&mut self) {
        let mut pending = lock(&self.inner.pending);
        if pending
            .map
            .get(&self.key)
            .is_some_and(|(i, _)| *i == self.id)
        {
            pending.map.remove(&self.key);
        }
    }
}

fn classify(e: &NetError) -> Outcome {
    match e {
        NetError::Timeout => Outcome::Timeout,
        NetError::Dns(DnsError::NoRecordsFound(nr)) => match nr.response_code {
            ResponseCode::NoError | ResponseCode::NXDomain => Outcome::NotFound,
            _ => Outcome::Failed,
        },
        _ => Outcome::Failed,
    }
}

/// Whether `asn` is private, documentation or reserved, so has no public holder: AS0 (RFC 7607),
/// AS_TRANS 23456 (RFC 6793), 64496–64511 and 65536–65551 (documentation, RFC 5398),
/// 64512–65534 and 4200000000–4294967294 (private use, RFC 6996), 65535 and 4294967295
/// (RFC 7300).
pub fn is_reserved_asn(asn: u32) -> bool {
    matches!(
        asn,
        0 | 23_456 | 64_496..=65_535 | 65_536..=65_551 | 4_200_000_000..=u32::MAX
    )
}

/// The AS name in TXT answers for `asn`: the first record whose first field is `asn` and that has
/// all five fields (`ASN | CC | registry | date | name`), with its TTL.
fn name_from_txt(asn: u32, answers: &[Record]) -> Option<(String, u32)> {
    answers.iter().find_map(|r| match &r.data {
        RData::TXT(txt) => {
            let bytes: Vec<u8> = txt
                .txt_data
                .iter()
                .flat_map(|s| s.iter().copied())
                .collect();
            parse_cymru_txt(asn, &bytes).map(|n| (n, r.ttl))
        }
        _ => None,
    })
}

/// The first usable PTR name in `answers`, without its trailing dot, with its TTL.
fn name_from_ptr(answers: &[Record]) -> Option<(String, u32)> {
    answers.iter().find_map(|r| match &r.data {
        RData::PTR(ptr) => {
            let s = ptr.0.to_string();
            clean_name(s.strip_suffix('.').unwrap_or(&s)).map(|n| (n, r.ttl))
        }
        _ => None,
    })
}

/// Parses one Team Cymru AS description, `"15169 | US | arin | 2000-03-30 | GOOGLE, US"`, into
/// the name (everything after the fourth `|`); `None` if the fields are missing, the first is not
/// `asn`, or the name is empty.
pub fn parse_cymru_txt(asn: u32, txt: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(txt);
    let mut fields = text.splitn(5, '|');
    let first = fields.next()?.trim();
    if first.parse::<u32>().ok()? != asn {
        return None;
    }
    let name = fields.nth(3)?;
    clean_name(name)
}

/// Removes control characters and surrounding blanks, cuts at [`MAX_NAME_CHARS`]; `None` if
/// nothing is left.
fn clean_name(s: &str) -> Option<String> {
    let cleaned: String = s.chars().filter(|c| !c.is_control()).collect();
    let t: String = cleaned.trim().chars().take(MAX_NAME_CHARS).collect();
    let t = t.trim_end();
    (!t.is_empty()).then(|| t.to_string())
}

/// A bounded TTL cache; when full, the oldest inserted entry is evicted.
struct Cache {
    capacity: usize,
    map: HashMap<Key, CacheEntry>,
    /// Insertion sequence → key, oldest first.
    order: BTreeMap<u64, Key>,
    next_seq: u64,
}

struct CacheEntry {
    value: Option<String>,
    expires: Instant,
    seq: u64,
}

impl Cache {
    fn new(capacity: usize) -> Cache {
        Cache {
            capacity,
            map: HashMap::new(),
            order: BTreeMap::new(),
            next_seq: 0,
        }
    }

    fn len(&self) -> usize {
        self.map.len()
    }

    /// The fresh value of `key`; an expired entry is removed.
    fn get(&mut self, key: &Key, now: Instant) -> Option<Option<String>> {
        let e = self.map.get(key)?;
        if e.expires > now {
            return Some(e.value.clone());
        }
        let seq = e.seq;
        self.map.remove(key);
        self.order.remove(&seq);
        None
    }

    fn insert(&mut self, key: Key, value: Option<String>, expires: Instant) {
        let seq = self.next_seq;
        self.next_seq += 1;
        if let Some(old) = self.map.insert(
            key,
            CacheEntry {
                value,
                expires,
                seq,
            },
        ) {
            self.order.remove(&old.seq);
        }
        self.order.insert(seq, key);
        while self.map.len() > self.capacity {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            self.map.remove(&oldest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cymru_txt_parsing() {
        let p = |asn, s: &[u8]| parse_cymru_txt(asn, s);
        assert_eq!(
            p(15169, b"15169 | US | arin | 2000-03-30 | GOOGLE, US").as_deref(),
            Some("GOOGLE, US")
        );
        // No spaces, trailing blanks.
        assert_eq!(
            p(3356, b"3356|US|arin|2000-03-10|LEVEL3, US  ").as_deref(),
            Some("LEVEL3, US")
        );
        // A '|' inside the name is kept.
        assert_eq!(
            p(1, b"1 | US | arin | 2001-09-20 | A | B").as_deref(),
            Some("A | B")
        );
        // Missing fields, another AS, a non-number, empty name, empty record.
        assert_eq!(p(15169, b"15169 | US | arin | 2000-03-30"), None);
        assert_eq!(
            p(15169, b"3356 | US | arin | 2000-03-10 | LEVEL3, US"),
            None
        );
        assert_eq!(p(15169, b"AS15169 | US | arin | 2000-03-30 | X"), None);
        assert_eq!(p(15169, b"15169 | US | arin | 2000-03-30 |   "), None);
        assert_eq!(p(15169, b""), None);
        // Not UTF-8: decoded lossily; control characters removed.
        assert_eq!(
            p(6, b"6 | FR | ripencc | 1990-01-01 | CAF\xc9\x07, FR").as_deref(),
            Some("CAF\u{FFFD}, FR")
        );
        // Long names are cut.
        let long = format!("7 | US | arin | 2000-01-01 | {}", "x".repeat(1000));
        assert_eq!(
            p(7, long.as_bytes()).map(|n| n.chars().count()),
            Some(MAX_NAME_CHARS)
        );
    }

    #[test]
    fn reserved_asns() {
        for a in [
            0,
            23456,
            64496,
            64511,
            64512,
            65534,
            65535,
            65536,
            65551,
            4_200_000_000,
        ] {
            assert!(is_reserved_asn(a), "{a}");
        }
        assert!(is_reserved_asn(u32::MAX));
        for a in [1, 3356, 15169, 23455, 64495, 65552, 399_999, 4_199_999_999] {
            assert!(!is_reserved_asn(a), "{a}");
        }
    }

    #[test]
    fn cache_expires_and_evicts_the_oldest() {
        let now = Instant::now();
        let later = now + Duration::from_secs(10);
        let mut c = Cache::new(2);
        c.insert(Key::Asn(1), Some("one".into()), later);
        c.insert(Key::Asn(2), None, later);
        assert_eq!(c.get(&Key::Asn(1), now), Some(Some("one".into())));
        assert_eq!(c.get(&Key::Asn(2), now), Some(None));
        // Re-inserting 1 makes 2 the oldest.
        c.insert(Key::Asn(1), Some("uno".into()), later);
        c.insert(Key::Asn(3), Some("three".into()), later);
        assert_eq!(c.len(), 2);
        assert_eq!(c.get(&Key::Asn(2), now), None);
        assert_eq!(c.get(&Key::Asn(1), now), Some(Some("uno".into())));
        assert_eq!(c.order.len(), 2);
        // Expired entries are misses and are removed.
        assert_eq!(c.get(&Key::Asn(3), later), None);
        assert_eq!((c.len(), c.order.len()), (1, 1));
    }

    #[test]
    fn disabled_answers_nothing() {
        let e = Enricher::disabled();
        assert!(!e.is_enabled());
        assert_eq!(e.cached_as_name(15169), None);
        assert_eq!(e.prefetch([15169, 3356]), 0);
        assert_eq!(e.stats(), EnricherStats::default());
        let e = Enricher::new(EnricherSettings::default()).unwrap();
        assert!(!e.is_enabled(), "[dns] is off by default");
    }

    #[test]
    fn needs_a_runtime() {
        let s = EnricherSettings {
            enabled: true,
            servers: Some(vec!["127.0.0.1:53".parse().unwrap()]),
            ..EnricherSettings::default()
        };
        assert!(matches!(Enricher::new(s), Err(ResolverError::NoRuntime)));
    }
}
