//! `[bmp]` and `[[bmp.router]]`: the BMP listener's settings and the routers' static names.

use super::*;

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct RawBmp {
    pub(super) listen: Option<Spanned<String>>,
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
pub(super) struct RawBmpRouter {
    address: Spanned<String>,
    name: Spanned<String>,
}

pub(super) fn convert_bmp(src: &Source, raw: &RawBmp) -> Result<BmpConfig, ConfigError> {
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
