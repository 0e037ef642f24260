//! `[[kafka]]`: raw BMP in OpenBMP's format from Kafka topics, read as a consumer group member
//! (see [`crate::ingest::kafka`] and `daemon/kafka.rs`); validated here with the same
//! `file:line:col: key: message` errors as the rest of the configuration.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use super::{positive, ConfigError, Source};

/// Default of `group-id`.
pub const DEFAULT_KAFKA_GROUP_ID: &str = "routewatch";
/// Default of `commit-interval-ms`: how often offsets whose routes reached the engine are
/// committed.
pub const DEFAULT_KAFKA_COMMIT_INTERVAL_MS: u64 = 1_000;
/// Default of `batch-messages`: Kafka messages handed to the engine in one batch at most.
pub const DEFAULT_KAFKA_BATCH_MESSAGES: u64 = 500;
/// Default of `queue-batches`: batches waiting for the engine at most (then the consumer
/// waits, and the lag grows in Kafka, not in memory).
pub const DEFAULT_KAFKA_QUEUE_BATCHES: u64 = 16;
/// Default of `statistics-interval-ms`: how often librdkafka reports the consumer lag.
pub const DEFAULT_KAFKA_STATISTICS_INTERVAL_MS: u64 = 5_000;
/// Default of `max-lag-partitions`: partitions with a `routewatch_kafka_consumer_lag` series.
pub const DEFAULT_KAFKA_MAX_LAG_PARTITIONS: u64 = 256;

/// librdkafka properties routewatch sets itself: `[kafka.options]` may not name them.
pub const RESERVED_OPTIONS: [&str; 8] = [
    "bootstrap.servers",
    "metadata.broker.list",
    "group.id",
    "enable.auto.commit",
    "enable.auto.offset.store",
    "auto.offset.reset",
    "statistics.interval.ms",
    "enable.partition.eof",
];

/// Where a new consumer group starts reading (`start`): a group with committed offsets always
/// resumes from them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KafkaStart {
    /// Only messages published from now on (librdkafka `auto.offset.reset=latest`).
    Latest,
    /// Everything the topics still hold (`earliest`).
    Earliest,
}

impl KafkaStart {
    /// The `auto.offset.reset` value.
    pub fn as_str(self) -> &'static str {
        match self {
            KafkaStart::Latest => "latest",
            KafkaStart::Earliest => "earliest",
        }
    }
}

/// What a `[[kafka]]` consumer subscribes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KafkaTopics {
    /// These topics.
    List(Vec<String>),
    /// Every topic matching this regular expression (librdkafka's `^` subscription).
    Pattern(String),
}

/// One `[[kafka]]` consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaConfig {
    /// Its name: the `consumer` label of its metrics (unique among `[[kafka]]`).
    pub name: String,
    /// Bootstrap brokers (`host:port`).
    pub brokers: Vec<String>,
    /// Topics or pattern.
    pub topics: KafkaTopics,
    /// The consumer group: instances with one group id split the partitions.
    pub group_id: String,
    /// Where a group without committed offsets starts.
    pub start: KafkaStart,
    /// How often applied offsets are committed, milliseconds.
    pub commit_interval_ms: u64,
    /// Kafka messages per batch to the engine at most.
    pub batch_messages: usize,
    /// Batches queued for the engine at most.
    pub queue_batches: usize,
    /// Routers with a session at once.
    pub max_routers: usize,
    /// Peers per router.
    pub max_peers_per_router: usize,
    /// The largest BMP message accepted, bytes.
    pub max_message_bytes: u32,
    /// How often librdkafka reports statistics (the lag), milliseconds.
    pub statistics_interval_ms: u64,
    /// Partitions with a lag series at most.
    pub max_lag_partitions: usize,
    /// librdkafka properties passed through (`[kafka.options]`, then the values read from the
    /// files of `[kafka.options-from-files]`), e.g. TLS and SASL settings.
    pub options: BTreeMap<String, String>,
    /// The properties whose values came from files (their values are never logged).
    pub secret_options: Vec<String>,
}

/// `[[kafka]]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawKafka {
    name: Option<Spanned<String>>,
    brokers: Option<Spanned<Vec<Spanned<String>>>>,
    topics: Option<Spanned<Vec<Spanned<String>>>>,
    topic_pattern: Option<Spanned<String>>,
    group_id: Option<Spanned<String>>,
    start: Option<Spanned<String>>,
    commit_interval_ms: Option<Spanned<i64>>,
    batch_messages: Option<Spanned<i64>>,
    queue_batches: Option<Spanned<i64>>,
    max_routers: Option<Spanned<i64>>,
    max_peers_per_router: Option<Spanned<i64>>,
    max_message_bytes: Option<Spanned<i64>>,
    statistics_interval_ms: Option<Spanned<i64>>,
    max_lag_partitions: Option<Spanned<i64>>,
    options: Option<BTreeMap<String, Spanned<String>>>,
    options_from_files: Option<BTreeMap<String, Spanned<String>>>,
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// `[[kafka]]` number `i` validated; `others` are the ones before it.
pub(super) fn convert(
    src: &Source,
    i: usize,
    raw: &RawKafka,
    others: &[KafkaConfig],
    resolve: &dyn Fn(&str) -> PathBuf,
) -> Result<KafkaConfig, ConfigError> {
    let key = |k: &str| format!("kafka[{i}].{k}");
    // Where an error about a missing key points: the first key the table has.
    let nowhere = [
        raw.name.as_ref().map(Spanned::span),
        raw.topics.as_ref().map(Spanned::span),
        raw.topic_pattern.as_ref().map(Spanned::span),
        raw.group_id.as_ref().map(Spanned::span),
        raw.start.as_ref().map(Spanned::span),
    ]
    .into_iter()
    .flatten()
    .min_by_key(|s| s.start)
    .unwrap_or(0..0);
    let brokers_span = raw.brokers.as_ref().map_or(nowhere.clone(), Spanned::span);
    let name =
        match &raw.name {
            Some(n) if is_name(n.get_ref()) => n.get_ref().clone(),
            Some(n) => return Err(src.invalid(
                &n.span(),
                key("name"),
                "must be 1 to 64 letters, digits, '-', '_' or '.' (it is the consumer label of \
                 the kafka metrics)",
            )),
            None if i == 0 => "kafka".to_string(),
            None => format!("kafka{i}"),
        };
    if let Some(j) = others.iter().position(|o| o.name == name) {
        let span = raw
            .name
            .as_ref()
            .map_or(brokers_span.clone(), Spanned::span);
        return Err(src.invalid(
            &span,
            key("name"),
            format!("'{name}' is already the name of kafka[{j}]"),
        ));
    }
    let mut brokers = Vec::new();
    match &raw.brokers {
        Some(list) if !list.get_ref().is_empty() => {
            for b in list.get_ref() {
                let s = b.get_ref().trim();
                let ok = s
                    .rsplit_once(':')
                    .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
                if !ok || s.contains(',') || s.contains(char::is_whitespace) {
                    return Err(src.invalid(
                        &b.span(),
                        key("brokers"),
                        format!("'{s}' is not host:port"),
                    ));
                }
                brokers.push(s.to_string());
            }
        }
        Some(list) => {
            return Err(src.invalid(&list.span(), key("brokers"), "the list is empty"));
        }
        None => {
            return Err(src.invalid(
                &nowhere,
                key("brokers"),
                "required: the bootstrap brokers, e.g. brokers = [\"kafka1.example.net:9092\"]",
            ))
        }
    }
    let topics =
        match (&raw.topics, &raw.topic_pattern) {
            (Some(t), None) => {
                if t.get_ref().is_empty() {
                    return Err(src.invalid(&t.span(), key("topics"), "the list is empty"));
                }
                let mut list = Vec::new();
                for x in t.get_ref() {
                    let s = x.get_ref().trim();
                    let ok = !s.is_empty()
                        && s.len() <= 249
                        && s.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
                    if !ok {
                        return Err(src.invalid(
                            &x.span(),
                            key("topics"),
                            format!(
                                "'{s}' is not a topic name (letters, digits, '.', '_', '-'; for a \
                             regular expression use topic-pattern)"
                            ),
                        ));
                    }
                    list.push(s.to_string());
                }
                KafkaTopics::List(list)
            }
            (None, Some(p)) => {
                let s = p.get_ref().trim();
                if s.is_empty() {
                    return Err(src.invalid(&p.span(), key("topic-pattern"), "empty"));
                }
                // librdkafka subscribes by regular expression when the name starts with '^'.
                let pattern = if s.starts_with('^') {
                    s.to_string()
                } else {
                    format!("^{s}")
                };
                KafkaTopics::Pattern(pattern)
            }
            (Some(t), Some(_)) => {
                return Err(src.invalid(
                    &t.span(),
                    key("topics"),
                    "give topics or topic-pattern, not both",
                ))
            }
            (None, None) => return Err(src.invalid(
                &brokers_span,
                key("topics"),
                "required: topics = [\"openbmp.bmp_raw\"] or topic-pattern = \"openbmp\\\\..*\"",
            )),
        };
    let group_id = match &raw.group_id {
        Some(g) if !g.get_ref().trim().is_empty() => g.get_ref().trim().to_string(),
        Some(g) => return Err(src.invalid(&g.span(), key("group-id"), "empty")),
        None => DEFAULT_KAFKA_GROUP_ID.to_string(),
    };
    let start = match &raw.start {
        None => KafkaStart::Latest,
        Some(s) => match s.get_ref().trim() {
            "latest" => KafkaStart::Latest,
            "earliest" => KafkaStart::Earliest,
            other => {
                return Err(src.invalid(
                    &s.span(),
                    key("start"),
                    format!("'{other}' is not a start position; accepted: latest, earliest"),
                ))
            }
        },
    };
    let num = |v: &Option<Spanned<i64>>, k: &str, min: i64, max: i64, default: u64| match v {
        Some(v) => positive(src, v, &key(k), min, max),
        None => Ok(default),
    };
    let commit_interval_ms = num(
        &raw.commit_interval_ms,
        "commit-interval-ms",
        10,
        3_600_000,
        DEFAULT_KAFKA_COMMIT_INTERVAL_MS,
    )?;
    let batch_messages = num(
        &raw.batch_messages,
        "batch-messages",
        1,
        100_000,
        DEFAULT_KAFKA_BATCH_MESSAGES,
    )? as usize;
    let queue_batches = num(
        &raw.queue_batches,
        "queue-batches",
        1,
        4096,
        DEFAULT_KAFKA_QUEUE_BATCHES,
    )? as usize;
    let max_routers = num(
        &raw.max_routers,
        "max-routers",
        1,
        1_000_000,
        crate::ingest::kafka::DEFAULT_MAX_ROUTERS as u64,
    )? as usize;
    let max_peers_per_router = num(
        &raw.max_peers_per_router,
        "max-peers-per-router",
        1,
        1_000_000,
        crate::ingest::bmp::session::MAX_PEERS_PER_ROUTER as u64,
    )? as usize;
    let max_message_bytes = num(
        &raw.max_message_bytes,
        "max-message-bytes",
        64,
        i64::from(u32::MAX),
        u64::from(crate::ingest::bmp::DEFAULT_MAX_FRAME),
    )? as u32;
    let statistics_interval_ms = num(
        &raw.statistics_interval_ms,
        "statistics-interval-ms",
        100,
        3_600_000,
        DEFAULT_KAFKA_STATISTICS_INTERVAL_MS,
    )?;
    let max_lag_partitions = num(
        &raw.max_lag_partitions,
        "max-lag-partitions",
        0,
        100_000,
        DEFAULT_KAFKA_MAX_LAG_PARTITIONS,
    )? as usize;
    let mut options = BTreeMap::new();
    let check_option = |k: &str, span: &std::ops::Range<usize>, table: &str| {
        let ok = !k.is_empty()
            && k.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if !ok {
            return Err(src.invalid(
                span,
                key(&format!("{table}.{k}")),
                "not a librdkafka property name",
            ));
        }
        if RESERVED_OPTIONS.contains(&k) {
            return Err(src.invalid(
                span,
                key(&format!("{table}.{k}")),
                "set by routewatch (brokers, group-id, start; offsets are committed after the \
                 engine applied the routes)",
            ));
        }
        Ok(())
    };
    for (k, v) in raw.options.iter().flatten() {
        check_option(k, &v.span(), "options")?;
        options.insert(k.clone(), v.get_ref().clone());
    }
    let mut secret_options = Vec::new();
    for (k, f) in raw.options_from_files.iter().flatten() {
        check_option(k, &f.span(), "options-from-files")?;
        if options.contains_key(k) {
            return Err(src.invalid(
                &f.span(),
                key(&format!("options-from-files.{k}")),
                "also set in [kafka.options]",
            ));
        }
        let path = resolve(f.get_ref());
        let text = std::fs::read_to_string(&path).map_err(|e| {
            src.invalid(
                &f.span(),
                key(&format!("options-from-files.{k}")),
                format!("{}: cannot be read: {e}", path.display()),
            )
        })?;
        let value = text.trim_end_matches(['\n', '\r']).to_string();
        if value.is_empty() {
            return Err(src.invalid(
                &f.span(),
                key(&format!("options-from-files.{k}")),
                format!("{} is empty", path.display()),
            ));
        }
        options.insert(k.clone(), value);
        secret_options.push(k.clone());
    }
    Ok(KafkaConfig {
        name,
        brokers,
        topics,
        group_id,
        start,
        commit_interval_ms,
        batch_messages,
        queue_batches,
        max_routers,
        max_peers_per_router,
        max_message_bytes,
        statistics_interval_ms,
        max_lag_partitions,
        options,
        secret_options,
    })
}
