//! `[rpki]`: the VRP file and the RTR servers (`rtr`, RFC 8210), validated here with the same
//! `file:line:col: key: message` errors as the rest of the configuration. Both sources may be
//! set (the engine validates against their union), or either alone.

use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use super::{positive, ConfigError, Source};
use crate::rpki::rtr::{Timers, DEFAULT_TIMERS};

/// Default interval between checks of the VRP file.
pub const DEFAULT_RPKI_RELOAD_INTERVAL_SECONDS: u64 = 60;
/// Default `[rpki] roa-expiry-warning-days`.
pub const DEFAULT_ROA_EXPIRY_WARNING_DAYS: u64 = 7;
/// Default of `rtr-connect-timeout-seconds`.
pub const DEFAULT_RTR_CONNECT_TIMEOUT_SECONDS: u64 = 10;
/// At most this many `rtr` servers (they are metric label values).
pub const MAX_RTR_SERVERS: usize = 16;

/// `[rpki]`
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RpkiConfig {
    /// JSON file of validated ROA payloads (Routinator `json`/`jsonext`, rpki-client `json`);
    /// `None`: no VRP file.
    pub vrp_file: Option<PathBuf>,
    /// How often the daemon checks the file for changes (it reloads when it changed).
    pub reload_interval_seconds: u64,
    /// A `roa_expiring` event when a ROA covering a registered prefix expires within this many
    /// days (sources with expiry times: rpki-client); 0: no warnings.
    pub roa_expiry_warning_days: u64,
    /// RTR servers; `None`: no RTR.
    pub rtr: Option<RtrConfig>,
    /// `[rpki.peer-roles]`: peers' roles (RFC 9234) by address or AS, for ASPA verification
    /// and the OTC rules where the session does not announce a BGP Role.
    pub peer_roles: crate::engine::RolePolicy,
}

/// `[rpki] rtr` and its settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtrConfig {
    /// `host:port` as written (an IPv4 address, a bracketed IPv6 address or a name), in order
    /// of preference.
    pub servers: Vec<String>,
    /// How long a connection attempt (name lookup and TCP) may take.
    pub connect_timeout_seconds: u64,
    /// Refresh, retry and expire intervals used until a server's End of Data gives its own
    /// (never, with RTR version 0).
    pub default_timers: Timers,
}

/// `[rpki]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawRpki {
    vrp_file: Option<String>,
    reload_interval_seconds: Option<Spanned<i64>>,
    roa_expiry_warning_days: Option<Spanned<i64>>,
    rtr: Option<Spanned<Vec<Spanned<String>>>>,
    rtr_connect_timeout_seconds: Option<Spanned<i64>>,
    rtr_refresh_seconds: Option<Spanned<i64>>,
    rtr_retry_seconds: Option<Spanned<i64>>,
    rtr_expire_seconds: Option<Spanned<i64>>,
    peer_roles: Option<std::collections::BTreeMap<String, Spanned<String>>>,
}

/// Whether `s` is `host:port` with a port in 1..=65535 and a host that is an IPv4 address, a
/// bracketed IPv6 address or a DNS name; `Err` says what is wrong.
pub fn check_server(s: &str) -> Result<(), String> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let Some((h, p)) = rest.split_once("]:") else {
            return Err(format!(
                "'{s}' is not [IPv6]:port (an IPv6 address needs brackets)"
            ));
        };
        if h.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("'{h}' is not an IPv6 address"));
        }
        (h, p)
    } else {
        let Some((h, p)) = s.rsplit_once(':') else {
            return Err(format!(
                "'{s}' has no port: write host:port, e.g. 127.0.0.1:3323"
            ));
        };
        if h.contains(':') {
            return Err(format!(
                "'{s}': an IPv6 address needs brackets, [addr]:port"
            ));
        }
        let name_ok = !h.is_empty()
            && h.len() <= 253
            && h.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if !name_ok {
            return Err(format!("'{h}' is not an IPv4 address or a host name"));
        }
        (h, p)
    };
    let _ = host;
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(()),
        _ => Err(format!("'{port}' is not a port (1..=65535)")),
    }
}

/// `[rpki]` validated (`raw`: `None` when the section is absent).
pub(super) fn convert(
    src: &Source,
    raw: Option<&RawRpki>,
    resolve: &dyn Fn(&str) -> PathBuf,
) -> Result<RpkiConfig, ConfigError> {
    let mut rpki = RpkiConfig {
        vrp_file: None,
        reload_interval_seconds: DEFAULT_RPKI_RELOAD_INTERVAL_SECONDS,
        roa_expiry_warning_days: DEFAULT_ROA_EXPIRY_WARNING_DAYS,
        rtr: None,
        peer_roles: Default::default(),
    };
    let Some(r) = raw else {
        return Ok(rpki);
    };
    rpki.vrp_file = r.vrp_file.as_deref().map(resolve);
    if let Some(i) = &r.reload_interval_seconds {
        rpki.reload_interval_seconds = positive(src, i, "rpki.reload-interval-seconds", 1, 86_400)?;
    }
    if let Some(d) = &r.roa_expiry_warning_days {
        rpki.roa_expiry_warning_days = positive(src, d, "rpki.roa-expiry-warning-days", 0, 3650)?;
    }
    if let Some(roles) = &r.peer_roles {
        rpki.peer_roles = super::peer_roles(src, roles)?;
    }
    let num = |v: &Option<Spanned<i64>>, key: &str, max: i64, default: u64| match v {
        Some(v) => positive(src, v, key, 1, max),
        None => Ok(default),
    };
    let connect_timeout_seconds = num(
        &r.rtr_connect_timeout_seconds,
        "rpki.rtr-connect-timeout-seconds",
        300,
        DEFAULT_RTR_CONNECT_TIMEOUT_SECONDS,
    )?;
    // RFC 8210 §6 maxima; minima of 1 s (the RFC's are larger) so that tests can be quick.
    let default_timers = Timers {
        refresh: num(
            &r.rtr_refresh_seconds,
            "rpki.rtr-refresh-seconds",
            86_400,
            u64::from(DEFAULT_TIMERS.refresh),
        )? as u32,
        retry: num(
            &r.rtr_retry_seconds,
            "rpki.rtr-retry-seconds",
            7_200,
            u64::from(DEFAULT_TIMERS.retry),
        )? as u32,
        expire: num(
            &r.rtr_expire_seconds,
            "rpki.rtr-expire-seconds",
            172_800,
            u64::from(DEFAULT_TIMERS.expire),
        )? as u32,
    };
    let Some(list) = &r.rtr else {
        let set = [
            (
                &r.rtr_connect_timeout_seconds,
                "rpki.rtr-connect-timeout-seconds",
            ),
            (&r.rtr_refresh_seconds, "rpki.rtr-refresh-seconds"),
            (&r.rtr_retry_seconds, "rpki.rtr-retry-seconds"),
            (&r.rtr_expire_seconds, "rpki.rtr-expire-seconds"),
        ];
        if let Some((Some(v), key)) = set.into_iter().find(|(v, _)| v.is_some()) {
            return Err(src.invalid(
                &v.span(),
                key,
                "only meaningful with rpki.rtr (no RTR server is configured)",
            ));
        }
        return Ok(rpki);
    };
    if list.get_ref().is_empty() {
        return Err(src.invalid(
            &list.span(),
            "rpki.rtr",
            "an empty list: give at least one host:port, or leave rtr out",
        ));
    }
    if list.get_ref().len() > MAX_RTR_SERVERS {
        return Err(src.invalid(
            &list.span(),
            "rpki.rtr",
            format!(
                "{} servers; at most {MAX_RTR_SERVERS}",
                list.get_ref().len()
            ),
        ));
    }
    let mut servers: Vec<String> = Vec::new();
    for s in list.get_ref() {
        let text = s.get_ref().trim();
        check_server(text).map_err(|m| src.invalid(&s.span(), "rpki.rtr", m))?;
        if servers.iter().any(|x| x == text) {
            return Err(src.invalid(&s.span(), "rpki.rtr", format!("'{text}' is listed twice")));
        }
        servers.push(text.to_string());
    }
    rpki.rtr = Some(RtrConfig {
        servers,
        connect_timeout_seconds,
        default_timers,
    });
    Ok(rpki)
}

#[cfg(test)]
mod tests {
    use super::check_server;

    #[test]
    fn servers_are_host_port() {
        for ok in [
            "127.0.0.1:3323",
            "[::1]:8282",
            "rpki.example.net:323",
            "localhost:1",
        ] {
            assert!(check_server(ok).is_ok(), "{ok}");
        }
        for bad in [
            "127.0.0.1",
            "::1:3323",
            "[::1]3323",
            "[zz]:1",
            "host:0",
            "host:65536",
            ":3323",
            "bad_name:1",
            "a..b:1",
        ] {
            assert!(check_server(bad).is_err(), "{bad}");
        }
    }
}
