//! `[[notify]]`: notification targets (see [`crate::notify`]).

use super::*;

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawNotify {
    pub(super) name: Spanned<String>,
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

/// A `[[notify]]` table; `registry` is the configuration's (its location names are the ones a
/// `locations` filter may use).
pub(super) fn convert_notify(
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
