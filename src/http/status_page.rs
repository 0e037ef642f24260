//! `GET /`: the status page for people — one server-rendered HTML page, no JavaScript, no
//! external assets (the CSS is inline), refreshing itself every [`REFRESH_SECONDS`] seconds
//! (`<meta http-equiv="refresh">`).
//!
//! It shows, in this order: a header (host name, version, readiness, when the page was built),
//! counts, the anomaly instances (most severe first: kind, state, location, registered and
//! announced prefix, offending AS, peers, since, a sample AS path), the registered prefixes by
//! location (visibility, origins seen against the expected ones, more-specifics, anomalies, last
//! change), the feeds (MRT, BMP, RPKI: counters, last data), the BMP routers (state, since, last
//! message, peers, initial tables) and the latest events of the history. Times are RFC 3339 UTC
//! with how long ago.
//!
//! **Bounded.** Each section shows at most a fixed number of rows ([`MAX_ANOMALY_ROWS`],
//! [`MAX_PREFIX_ROWS`], [`MAX_ROUTER_ROWS`], [`MAX_EVENT_ROWS`]) and says how many more there
//! are, with a link to the JSON list that has them all; text that comes from the network
//! (sysName, sysDescr, AS names, reverse-DNS names, AS paths) is cut at [`MAX_TEXT`] characters.
//!
//! **Escaped.** Every string is written through [`esc`] (`& < > " '`), whatever its origin:
//! location names, sysNames, AS and DNS names come from configuration files and from the
//! network. The answer also carries a `Content-Security-Policy` that allows no script at all,
//! so markup that slipped through could still not run.
//!
//! **Built like the API's answers.** The engine task builds a bounded [`Snapshot`] (one page of
//! prefixes, the [`AnomalyOverview`], router and feed status) and the HTML is written on a
//! blocking thread, after the DNS names are read from their cache and the latest events from
//! the store. `/` is behind the same guard as `/api/*`: the tokens of `[http] token-file` when
//! configured (401 otherwise, with a `Basic` challenge so that a browser asks for them: any
//! user name, a token as the password), and a permit of `[http] max-api-requests` (503 with
//! `Retry-After` when the API is saturated).

use std::fmt::{self, Write as _};

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::names::{self, AnomalyBody, PrefixBody};
use super::{AppState, Query, StatusBody};
use crate::engine::{AnomalyOverview, Page, PrefixSummary, Severity};
use crate::events::store::{EventQuery, EventReader};
use crate::events::Event;
use crate::ingest::bmp::listener::RouterStatus;
use crate::metrics::FeedStatus;
use crate::model::Feed;
use crate::registry::{Location, PrefixId};

/// Seconds between the page's reloads of itself.
pub const REFRESH_SECONDS: u32 = 30;
/// Anomaly instances shown (the most severe); the rest are counted and linked.
pub const MAX_ANOMALY_ROWS: usize = 50;
/// Registered prefixes shown (the first in registry order).
pub const MAX_PREFIX_ROWS: usize = 50;
/// BMP routers shown.
pub const MAX_ROUTER_ROWS: usize = 50;
/// Events shown (the newest).
pub const MAX_EVENT_ROWS: usize = 25;
/// Characters shown of one string (longer ones end in `…`).
pub const MAX_TEXT: usize = 160;
/// Characters shown of an event's description.
pub const MAX_DESCRIPTION: usize = 600;
/// ASNs shown in one cell (the rest counted).
const MAX_ASNS: usize = 8;

/// What the page shows of a location (its prefix list left out).
#[derive(Debug, Clone, PartialEq)]
pub struct LocationInfo {
    /// Name.
    pub name: String,
    /// Provider (ISP, IXP).
    pub provider: Option<String>,
    /// Region.
    pub region: Option<String>,
    /// Expected origin ASes.
    pub origin_asns: Vec<u32>,
    /// Registered prefixes.
    pub prefixes: usize,
}

impl LocationInfo {
    /// The page's view of `l`.
    pub fn of(l: &Location) -> LocationInfo {
        LocationInfo {
            name: l.name.clone(),
            provider: l.provider.clone(),
            region: l.region.clone(),
            origin_asns: l.origin_asns.clone(),
            prefixes: l.prefixes.len(),
        }
    }
}

/// What the engine task hands over for one page (bounded: see the module documentation).
#[derive(Debug)]
pub struct Snapshot {
    /// What `/api/v1/status` says.
    pub status: StatusBody,
    /// The anomaly counts and the most severe instances.
    pub anomalies: AnomalyOverview,
    /// The first registered prefixes.
    pub prefixes: Page<PrefixSummary, PrefixId>,
    /// The locations of those prefixes.
    pub locations: Vec<LocationInfo>,
    /// The feeds' counters.
    pub feeds: Vec<FeedStatus>,
    /// RPKI: VRPs loaded from the file, the last good load, failed loads.
    pub rpki: (u64, Option<f64>, u64),
    /// The RTR servers (`[rpki] rtr`), and whether their data expired.
    pub rtr: (Vec<crate::rpki::rtr::metrics::RtrServerState>, bool),
    /// When it was taken (wall clock).
    pub taken_at: f64,
}

/// The latest events, or why there are none.
#[derive(Debug, Clone, PartialEq)]
pub enum RecentEvents {
    /// `[events] enabled = false`.
    Disabled,
    /// The store could not be read.
    Unavailable(String),
    /// The newest events, and whether older ones exist.
    Loaded(Vec<Event>, bool),
}

/// Everything the HTML is written from.
#[derive(Debug)]
pub struct PageData {
    /// This host's name.
    pub host: String,
    /// The engine's snapshot (its anomalies moved to `anomalies`, named).
    pub snapshot: Snapshot,
    /// The most severe anomaly instances, with AS names.
    pub anomalies: Vec<AnomalyBody>,
    /// The first prefixes, with AS names.
    pub prefixes: Vec<PrefixBody>,
    /// The latest events.
    pub events: RecentEvents,
    /// Now (wall clock), for "… ago".
    pub now: f64,
}

#[derive(Clone)]
struct PageState {
    app: AppState,
    events: Option<EventReader>,
}

/// The router serving `/` (merge it into the main router), behind [`page_guard`].
pub fn router(app: AppState, events: Option<EventReader>) -> Router {
    Router::new()
        .route("/", get(page))
        .with_state(PageState {
            app: app.clone(),
            events,
        })
        .layer(axum::middleware::from_fn_with_state(app, page_guard))
}

/// The API's guard with answers for a browser: the token when tokens are configured (401 with
/// a `Basic` challenge, so the browser asks for it), then a permit of the API's concurrency cap
/// (503 with `Retry-After`); both counted as for the API.
async fn page_guard(
    State(s): State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if let Some(tokens) = &s.tokens {
        let presented = req
            .headers()
            .get(header::AUTHORIZATION)
            .map(|v| v.as_bytes());
        if !tokens.authorizes(presented) {
            s.http_metrics.request_rejected("unauthorized");
            let mut r = message_page(
                StatusCode::UNAUTHORIZED,
                "Sign-in required",
                "This routewatch asks for a token ([http] token-file). In a browser: any user \
                 name, a token as the password. API clients: Authorization: Bearer <token>.",
            );
            let h = r.headers_mut();
            h.append(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"routewatch\", charset=\"UTF-8\""),
            );
            h.append(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"routewatch\""),
            );
            return r;
        }
    }
    let Ok(permit) = s.api_permits.clone().try_acquire_owned() else {
        s.http_metrics.request_rejected("api_busy");
        let mut r = message_page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Busy",
            "Too many requests in progress ([http] max-api-requests); this page retries by \
             itself.",
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return r;
    };
    let response = next.run(req).await;
    drop(permit);
    response
}

async fn page(State(s): State<PageState>) -> Response {
    let Some(mut snapshot) = super::ask(&s.app, Query::StatusPage).await else {
        return shutting_down();
    };
    let (dns, reader) = (s.app.dns.clone(), s.events);
    let built = tokio::task::spawn_blocking(move || {
        let events = recent_events(reader.as_ref());
        let anomalies = names::name_anomalies(&dns, std::mem::take(&mut snapshot.anomalies.top));
        let prefixes = names::name_prefixes(&dns, std::mem::take(&mut snapshot.prefixes.items));
        names::name_routers(&dns, &mut snapshot.status.routers);
        render(&PageData {
            host: host_name(),
            snapshot,
            anomalies,
            prefixes,
            events,
            now: crate::clock::unix_now(),
        })
    })
    .await;
    match built {
        Ok(html) => html_response(StatusCode::OK, html),
        Err(_) => message_page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Error",
            "The page could not be built.",
        ),
    }
}

fn shutting_down() -> Response {
    message_page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Unavailable",
        "The engine is shutting down.",
    )
}

/// The newest [`MAX_EVENT_ROWS`] events (blocking: the store is SQLite).
fn recent_events(reader: Option<&EventReader>) -> RecentEvents {
    let Some(reader) = reader else {
        return RecentEvents::Disabled;
    };
    let q = EventQuery {
        limit: MAX_EVENT_ROWS,
        ..EventQuery::default()
    };
    match reader.query(&q) {
        Ok(page) => RecentEvents::Loaded(page.events, page.next_cursor.is_some()),
        Err(e) => RecentEvents::Unavailable(e.to_string()),
    }
}

/// This host's name (Linux: the kernel's host name), read once.
fn host_name() -> String {
    static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NAME.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "routewatch".to_string())
    })
    .clone()
}

const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; \
                   form-action 'none'; frame-ancestors 'none'";

fn html_response(status: StatusCode, html: String) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        html,
    )
        .into_response()
}

/// A small page with one message (401, 503, errors), refreshing itself like the status page.
fn message_page(status: StatusCode, title: &str, text: &str) -> Response {
    let mut out = String::with_capacity(2048);
    head(&mut out, title);
    let _ = writeln!(
        out,
        "<header class=\"top\"><div class=\"brand\">routewatch</div></header>\
         <main><section><h2>{}</h2><p>{}</p></section></main></body></html>",
        esc(title),
        esc(text)
    );
    html_response(status, out)
}

// ---- HTML helpers -------------------------------------------------------------------------------

/// `s` escaped for HTML text and attribute values (`& < > " '`), at most [`MAX_TEXT`]
/// characters (then `…`).
pub fn esc(s: &str) -> Escaped<'_> {
    Escaped(s, MAX_TEXT)
}

/// [`esc`] for an event's description (our sentence around names and a path): at most
/// [`MAX_DESCRIPTION`] characters.
pub fn esc_description(s: &str) -> Escaped<'_> {
    Escaped(s, MAX_DESCRIPTION)
}

/// See [`esc`].
pub struct Escaped<'a>(&'a str, usize);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, c) in self.0.chars().enumerate() {
            if i == self.1 {
                return f.write_char('…');
            }
            match c {
                '&' => f.write_str("&amp;")?,
                '<' => f.write_str("&lt;")?,
                '>' => f.write_str("&gt;")?,
                '"' => f.write_str("&quot;")?,
                '\'' => f.write_str("&#39;")?,
                c if c.is_control() && c != '\n' && c != '\t' => f.write_char('\u{fffd}')?,
                c => f.write_char(c)?,
            }
        }
        Ok(())
    }
}

/// `n` with thousands separators (`270,005`).
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// How long ago `t` was, seen at `now`: `12 s ago`, `5 min ago`, `3 h ago`, `12 d ago` (`in …`
/// for a time ahead of the clock).
pub fn ago(t: f64, now: f64) -> String {
    let d = now - t;
    let (future, d) = (d < 0.0, d.abs());
    let text = if d < 60.0 {
        format!("{} s", d.floor() as u64)
    } else if d < 3600.0 {
        format!("{} min", (d / 60.0).floor() as u64)
    } else if d < 2.0 * 86_400.0 {
        format!("{} h", (d / 3600.0).floor() as u64)
    } else {
        format!("{} d", thousands((d / 86_400.0).floor() as u64))
    };
    if future {
        format!("in {text}")
    } else {
        format!("{text} ago")
    }
}

/// A time cell: RFC 3339 UTC and how long ago (`—` for none).
fn time_cell(out: &mut String, t: Option<f64>, now: f64) {
    match t {
        Some(t) if t.is_finite() && t > 0.0 => {
            let iso = crate::time_fmt::format_rfc3339(t.floor());
            let _ = write!(
                out,
                "<td class=\"time\"><time datetime=\"{iso}\">{iso}</time>\
                 <span class=\"ago\">{}</span></td>",
                ago(t, now)
            );
        }
        _ => out.push_str("<td class=\"time muted\">—</td>"),
    }
}

/// `AS64666` and its name, if known.
fn asn_html(out: &mut String, asn: u32, name: Option<&str>, class: &str) {
    let _ = write!(out, "<span class=\"asn {class}\">AS{asn}");
    if let Some(n) = name {
        let _ = write!(out, " <span class=\"asname\">{}</span>", esc(n));
    }
    out.push_str("</span>");
}

fn badge(out: &mut String, class: &str, text: &str) {
    let _ = write!(
        out,
        "<span class=\"badge {}\">{}</span>",
        esc(class),
        esc(text)
    );
}

/// Short names stay on one line; long ones wrap anywhere.
fn name_class(name: &str) -> &'static str {
    if name.chars().count() <= 24 {
        "nw"
    } else {
        "name"
    }
}

fn severity_class(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "crit",
        Severity::Error => "err",
        Severity::Warning => "warn",
        Severity::Information => "info",
    }
}

/// "Showing N of M — see …" under a capped table.
fn more_note(out: &mut String, shown: usize, total: usize, what: &str, link: &str) {
    if total > shown {
        let _ = write!(
            out,
            "<p class=\"more\">{} more {what} not shown — see <a href=\"{}\">{}</a></p>",
            thousands((total - shown) as u64),
            esc(link),
            esc(link)
        );
    }
}

fn section_head(out: &mut String, id: &str, title: &str, count: &str) {
    let _ = write!(
        out,
        "<section id=\"{id}\"><h2>{} <span class=\"count\">{}</span></h2>",
        esc(title),
        esc(count)
    );
}

// ---- the page -----------------------------------------------------------------------------------

const STYLE: &str = r#"
:root{--bg:#f4f6f9;--card:#fff;--ink:#1b2430;--muted:#667085;--line:#e3e8ef;--head:#14213d;
--crit:#b42318;--crit-bg:#fde8e6;--err:#c4320a;--err-bg:#ffead5;--warn:#8a5a00;--warn-bg:#fdf2c8;
--ok:#067647;--ok-bg:#dcfae6;--info:#175cd3;--info-bg:#e0ecff;--off:#475467;--off-bg:#eef0f3}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--ink);
font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
.top{background:var(--head);color:#fff;padding:14px 28px;display:flex;flex-wrap:wrap;
align-items:center;gap:10px 22px}
.brand{font-size:20px;font-weight:700;letter-spacing:.3px}
.top .meta{color:#c7d0e0;font-size:13px}.top .meta b{color:#fff;font-weight:600}
.top .right{margin-left:auto;color:#c7d0e0;font-size:13px;text-align:right}
main{padding:18px 28px 28px;max-width:1600px}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(150px,1fr));gap:12px;margin-bottom:18px}
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:10px 14px}
.card .k{color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.5px}
.card .v{font-size:22px;font-weight:650;margin-top:2px}
.card .s{color:var(--muted);font-size:12px}
.card.alert{border-color:#f5b5ad;background:#fff7f6}.card.alert .v{color:var(--crit)}
section{background:var(--card);border:1px solid var(--line);border-radius:8px;
padding:12px 16px 10px;margin-bottom:18px}
h2{font-size:16px;margin:2px 0 10px;display:flex;align-items:center;gap:8px}
.count{background:var(--off-bg);color:var(--off);border-radius:10px;padding:1px 9px;
font-size:12px;font-weight:600}
.scroll{overflow-x:auto}
table{border-collapse:collapse;width:100%}
th{text-align:left;font-size:11.5px;text-transform:uppercase;letter-spacing:.4px;
color:var(--muted);font-weight:600;border-bottom:1px solid var(--line);padding:6px 8px;white-space:nowrap}
td{border-bottom:1px solid var(--line);padding:7px 8px;vertical-align:top}
tr:last-child td{border-bottom:none}
tbody tr:nth-child(even){background:#fafbfc}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.mono,.asn,.path{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px}
.path{color:#344054;overflow-wrap:break-word;min-width:8em}
.nw{white-space:nowrap}.name{max-width:22em;overflow-wrap:anywhere}
.time time{display:block;font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;
font-size:12px;white-space:nowrap}
.ago{color:var(--muted);font-size:12px}
.muted{color:var(--muted)}.sub{display:block;color:var(--muted);font-size:12px}
.badge{display:inline-block;border-radius:4px;padding:1px 7px;font-size:12px;font-weight:600;white-space:nowrap}
.crit{background:var(--crit-bg);color:var(--crit)}.err{background:var(--err-bg);color:var(--err)}
.warn{background:var(--warn-bg);color:var(--warn)}.info{background:var(--info-bg);color:var(--info)}
.ok{background:var(--ok-bg);color:var(--ok)}.off{background:var(--off-bg);color:var(--off)}
.asn{display:inline-block;margin:0 4px 2px 0;white-space:nowrap}
.asn.bad{color:var(--crit);font-weight:700}.asname{font-family:system-ui,sans-serif;color:var(--muted)}
.asn.bad .asname{color:var(--crit)}
.vis{display:flex;align-items:center;gap:8px;justify-content:flex-end}
.bar{width:70px;height:6px;background:var(--off-bg);border-radius:3px;overflow:hidden}
.bar i{display:block;height:100%;background:#2e90fa}
.more{margin:8px 0 2px;color:var(--muted);font-size:13px}
.empty{color:var(--muted);margin:4px 0 8px}
a{color:#175cd3;text-decoration:none}a:hover{text-decoration:underline}
footer{color:var(--muted);font-size:12.5px;padding:0 28px 24px}
"#;

fn head(out: &mut String, title: &str) {
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta http-equiv=\"refresh\" content=\"{REFRESH_SECONDS}\">\
         <title>{}</title><style>{STYLE}</style></head><body>",
        esc(title)
    );
}

/// The status page of `d`.
pub fn render(d: &PageData) -> String {
    let mut out = String::with_capacity(64 * 1024);
    let s = &d.snapshot;
    let st = &s.status;
    head(&mut out, &format!("routewatch — {}", d.host));

    // Header.
    let _ = write!(
        out,
        "<header class=\"top\"><div class=\"brand\">routewatch</div>\
         <div class=\"meta\">instance <b>{}</b></div><div class=\"meta\">version <b>{}</b></div>",
        esc(&d.host),
        esc(st.version)
    );
    out.push_str("<div>");
    if st.ready {
        badge(&mut out, "ok", "ready");
    } else {
        badge(&mut out, "warn", "not ready: initial data loading");
    }
    let _ = write!(
        out,
        "</div><div class=\"right\">built {} UTC · refreshes every {REFRESH_SECONDS} s</div>\
         </header><main>",
        crate::time_fmt::format_rfc3339(s.taken_at.floor())
            .trim_end_matches('Z')
            .replace('T', " ")
    );

    cards(&mut out, d);
    anomalies(&mut out, d);
    prefixes(&mut out, d);
    feeds(&mut out, d);
    routers(&mut out, d);
    events(&mut out, d);

    out.push_str(
        "</main><footer>Machine-readable: <a href=\"/api/v1/status\">/api/v1/status</a> · \
         <a href=\"/api/v1/anomalies\">/api/v1/anomalies</a> · \
         <a href=\"/api/v1/prefixes\">/api/v1/prefixes</a> · \
         <a href=\"/api/v1/events\">/api/v1/events</a> · <a href=\"/metrics\">/metrics</a>. \
         Times are RFC 3339 UTC; BGP times are those of the routes.</footer></body></html>\n",
    );
    out
}

fn card(out: &mut String, class: &str, key: &str, value: &str, sub: &str) {
    let _ = write!(
        out,
        "<div class=\"card {class}\"><div class=\"k\">{}</div><div class=\"v\">{}</div>\
         <div class=\"s\">{}</div></div>",
        esc(key),
        esc(value),
        esc(sub)
    );
}

fn cards(out: &mut String, d: &PageData) {
    let s = &d.snapshot;
    let a = &s.anomalies;
    let st = &s.status;
    out.push_str("<div class=\"cards\">");
    let [_, warn, err, crit] = a.by_severity;
    card(
        out,
        if crit + err > 0 { "alert" } else { "" },
        "Anomalies open",
        &thousands(a.open as u64),
        &format!("{crit} critical · {err} error · {warn} warning"),
    );
    card(
        out,
        "",
        "Locations",
        &thousands(st.locations as u64),
        &format!(
            "{} registered prefixes",
            thousands(st.registered_prefixes as u64)
        ),
    );
    card(
        out,
        "",
        "Routes held",
        &thousands(st.tracked_routes),
        &format!("from {} peers", thousands(st.peers as u64)),
    );
    let up = st.routers.iter().filter(|r| r.state == "up").count();
    card(
        out,
        if up < st.routers.len() { "alert" } else { "" },
        "BMP routers up",
        &format!("{up} / {}", st.routers.len()),
        "sessions and configured routers",
    );
    card(
        out,
        "",
        "MRT files read",
        &thousands(st.mrt_files_processed),
        "configured and watched",
    );
    out.push_str("</div>");
}

fn anomalies(out: &mut String, d: &PageData) {
    let a = &d.snapshot.anomalies;
    let count = if a.total == a.open {
        thousands(a.total as u64)
    } else {
        format!(
            "{} open · {} below min-peers · {} resolving",
            thousands(a.open as u64),
            thousands(a.pending as u64),
            thousands(a.resolving as u64)
        )
    };
    section_head(out, "anomalies", "Anomalies", &count);
    if d.anomalies.is_empty() {
        out.push_str("<p class=\"empty\">No anomaly: every registered prefix is announced as expected.</p></section>");
        return;
    }
    out.push_str(
        "<div class=\"scroll\"><table><thead><tr><th>Severity</th><th>Kind</th><th>State</th>\
         <th>Location</th><th>Prefix</th><th>Offending AS</th><th class=\"num\">Peers</th>\
         <th>Since</th><th>Last seen</th><th>Sample path</th></tr></thead><tbody>",
    );
    for body in &d.anomalies {
        let x = &body.anomaly;
        out.push_str("<tr><td>");
        badge(out, severity_class(x.severity), x.severity.as_str());
        let _ = write!(
            out,
            "</td><td class=\"nw\">{}</td><td>",
            esc(x.kind.as_str())
        );
        if x.resolving_since.is_some() {
            badge(out, "info", "resolving");
        } else if x.open {
            badge(out, severity_class(x.severity), "open");
        } else {
            badge(out, "off", "below min-peers");
        }
        let _ = write!(
            out,
            "</td><td class=\"{}\">{}</td><td class=\"mono\">{}",
            name_class(&x.location),
            esc(&x.location),
            x.prefix
        );
        if x.announced != x.prefix {
            let _ = write!(out, "<span class=\"sub\">announced {}</span>", x.announced);
        }
        out.push_str("</td><td>");
        match x.asn {
            Some(asn) => asn_html(out, asn, body.as_name.as_deref(), "bad"),
            None => out.push_str("<span class=\"muted\">—</span>"),
        }
        let _ = write!(
            out,
            "</td><td class=\"num\">{}</td>",
            thousands(x.peers.into())
        );
        time_cell(out, x.opened_at.or(Some(x.first_seen)), d.now);
        time_cell(out, Some(x.last_seen), d.now);
        match &x.example_path {
            Some(p) => {
                let _ = write!(out, "<td class=\"path\">{}</td>", esc(&p.to_string()));
            }
            None => out.push_str("<td class=\"muted\">—</td>"),
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table></div>");
    more_note(
        out,
        d.anomalies.len(),
        a.total,
        "anomalies",
        "/api/v1/anomalies",
    );
    out.push_str("</section>");
}

fn asn_list(
    out: &mut String,
    asns: &[u32],
    names: &std::collections::BTreeMap<u32, String>,
    expected: Option<&[u32]>,
) {
    if asns.is_empty() {
        out.push_str("<span class=\"muted\">none</span>");
        return;
    }
    for &asn in asns.iter().take(MAX_ASNS) {
        let bad = expected.is_some_and(|e| !e.contains(&asn));
        asn_html(
            out,
            asn,
            names.get(&asn).map(String::as_str),
            if bad { "bad" } else { "" },
        );
    }
    if asns.len() > MAX_ASNS {
        let _ = write!(
            out,
            "<span class=\"muted\">+{} more</span>",
            asns.len() - MAX_ASNS
        );
    }
}

fn prefixes(out: &mut String, d: &PageData) {
    let s = &d.snapshot;
    let total = s.status.registered_prefixes;
    section_head(
        out,
        "locations",
        "Locations and prefixes",
        &format!(
            "{} locations · {} prefixes",
            thousands(s.status.locations as u64),
            thousands(total as u64)
        ),
    );
    if d.prefixes.is_empty() {
        out.push_str("<p class=\"empty\">No location is registered.</p></section>");
        return;
    }
    let max_vis = d
        .prefixes
        .iter()
        .map(|p| p.prefix.visibility)
        .max()
        .unwrap_or(0)
        .max(1);
    out.push_str(
        "<div class=\"scroll\"><table><thead><tr><th>Location</th><th>Prefix</th>\
         <th class=\"num\">Visibility (peers)</th><th>Origins seen</th><th>Expected origins</th>\
         <th class=\"num\">More-specifics</th><th>Anomalies</th><th>Last change</th>\
         </tr></thead><tbody>",
    );
    let mut previous: Option<&str> = None;
    for body in &d.prefixes {
        let p = &body.prefix;
        let loc = s.locations.iter().find(|l| l.name == p.location);
        let _ = write!(out, "<tr><td class=\"{}\">", name_class(&p.location));
        if previous != Some(p.location.as_str()) {
            let _ = write!(out, "<b>{}</b>", esc(&p.location));
            if let Some(l) = loc {
                let detail: Vec<&str> = [l.provider.as_deref(), l.region.as_deref()]
                    .into_iter()
                    .flatten()
                    .collect();
                if !detail.is_empty() {
                    let _ = write!(
                        out,
                        "<span class=\"sub\">{}</span>",
                        esc(&detail.join(" · "))
                    );
                }
            }
        } else {
            let _ = write!(out, "<span class=\"muted\">{}</span>", esc(&p.location));
        }
        previous = Some(p.location.as_str());
        let pct = (u64::from(p.visibility) * 100 / u64::from(max_vis)).min(100);
        let _ = write!(
            out,
            "</td><td class=\"mono\">{}</td><td class=\"num\"><div class=\"vis\">\
             <span>{}</span><span class=\"bar\"><i style=\"width:{pct}%\"></i></span></div></td><td>",
            p.prefix,
            thousands(p.visibility.into())
        );
        let expected = loc.map(|l| l.origin_asns.as_slice());
        asn_list(out, &p.origins, &body.origin_names, expected);
        out.push_str("</td><td>");
        asn_list(out, expected.unwrap_or_default(), &body.origin_names, None);
        let _ = write!(
            out,
            "</td><td class=\"num\">{}</td><td>",
            thousands(p.more_specifics.len() as u64)
        );
        if p.anomalies.is_empty() {
            badge(out, "ok", "none");
        } else {
            let worst = p
                .anomalies
                .iter()
                .map(|a| a.anomaly.severity)
                .max()
                .unwrap_or(Severity::Warning);
            badge(
                out,
                severity_class(worst),
                &format!("{} ({})", p.anomalies.len(), worst.as_str()),
            );
        }
        out.push_str("</td>");
        time_cell(out, p.last_change, d.now);
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table></div>");
    more_note(out, d.prefixes.len(), total, "prefixes", "/api/v1/prefixes");
    out.push_str("</section>");
}

fn feeds(out: &mut String, d: &PageData) {
    let s = &d.snapshot;
    let (vrps, vrp_load, vrp_failures) = s.rpki;
    let rpki = vrps > 0 || vrp_load.is_some() || vrp_failures > 0;
    let n = s.feeds.len() + usize::from(rpki) + s.rtr.0.len();
    section_head(out, "feeds", "Feeds", &n.to_string());
    out.push_str(
        "<div class=\"scroll\"><table><thead><tr><th>Feed</th><th>State</th>\
         <th class=\"num\">Peers</th><th class=\"num\">Routes read</th>\
         <th class=\"num\">Matched</th><th>Last data received</th><th>Newest BGP time</th>\
         <th>Detail</th></tr></thead><tbody>",
    );
    for f in &s.feeds {
        let _ = write!(out, "<tr><td><b>{}</b></td><td>", f.feed.as_str());
        let (class, state) = feed_state(f, &s.status.routers);
        badge(out, class, state);
        let _ = write!(
            out,
            "</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>",
            thousands(f.peers),
            thousands(f.routes_processed),
            thousands(f.routes_matched)
        );
        time_cell(out, f.last_received, d.now);
        time_cell(out, f.last_message, d.now);
        out.push_str("<td class=\"muted\">");
        match (f.feed, f.mrt_files) {
            (Feed::Mrt, Some(files)) => {
                let _ = write!(out, "files: {} ok", thousands(files[0]));
                for (n, class, what) in [
                    (files[1], "warn", "with parse errors"),
                    (files[2], "err", "failed"),
                ] {
                    if n > 0 {
                        out.push(' ');
                        badge(out, class, &format!("{} {what}", thousands(n)));
                    }
                }
            }
            _ => {
                let up = s.status.routers.iter().filter(|r| r.state == "up").count();
                let _ = write!(out, "{up} of {} routers up", s.status.routers.len());
            }
        }
        out.push_str("</td></tr>");
    }
    if rpki {
        out.push_str("<tr><td><b>rpki</b></td><td>");
        match (vrps, vrp_failures) {
            (0, f) if f > 0 => badge(out, "err", "not loaded"),
            (_, 0) => badge(out, "ok", "loaded"),
            _ => badge(out, "warn", "load failures"),
        }
        let _ = write!(
            out,
            "</td><td class=\"num muted\">—</td><td class=\"num\">{}</td><td class=\"num muted\">—</td>",
            thousands(vrps)
        );
        time_cell(out, vrp_load, d.now);
        let _ = write!(
            out,
            "<td class=\"muted\">—</td><td class=\"muted\">VRPs loaded; {} failed load(s)</td></tr>",
            thousands(vrp_failures)
        );
    }
    let (servers, expired) = &s.rtr;
    for r in servers {
        let _ = write!(out, "<tr><td><b>rtr</b> {}</td><td>", esc(&r.server));
        match (r.up, *expired) {
            (true, _) => badge(out, "ok", "session up"),
            (false, true) => badge(out, "err", "data expired"),
            (false, false) if r.last_update.is_some() => badge(out, "warn", "down"),
            (false, false) => badge(out, "off", "not connected"),
        }
        out.push_str("</td><td class=\"num muted\">—</td><td class=\"num muted\">—</td><td class=\"num muted\">—</td>");
        time_cell(out, r.last_update, d.now);
        let _ = write!(
            out,
            "<td class=\"muted\">—</td><td class=\"muted\">RTR version {}, serial {}</td></tr>",
            r.version, r.serial
        );
    }
    out.push_str("</tbody></table></div></section>");
}

/// A feed's state (badge class, word): MRT and RIS Live `no data yet` or `receiving` (MRT files
/// with errors are counted beside it: a file that failed last week does not make the feed red
/// for ever; RIS Live's connection is in `routewatch_ris_live_connected`); BMP by how many
/// routers are up.
fn feed_state(f: &FeedStatus, routers: &[RouterStatus]) -> (&'static str, &'static str) {
    match f.feed {
        Feed::Mrt | Feed::RisLive | Feed::Kafka if f.last_received.is_none() => {
            ("off", "no data yet")
        }
        Feed::Mrt | Feed::RisLive | Feed::Kafka => ("ok", "receiving"),
        Feed::Bmp => {
            let up = routers.iter().filter(|r| r.state == "up").count();
            if up == 0 {
                ("warn", "no router up")
            } else if up < routers.len() {
                ("warn", "some routers down")
            } else {
                ("ok", "receiving")
            }
        }
    }
}

fn routers(out: &mut String, d: &PageData) {
    let list = &d.snapshot.status.routers;
    if list.is_empty() && !d.snapshot.feeds.iter().any(|f| f.feed == Feed::Bmp) {
        return;
    }
    section_head(out, "routers", "BMP routers", &list.len().to_string());
    if list.is_empty() {
        out.push_str("<p class=\"empty\">No router connected or configured.</p></section>");
        return;
    }
    out.push_str(
        "<div class=\"scroll\"><table><thead><tr><th>Router</th><th>Address</th><th>State</th>\
         <th>Since</th><th>Last message</th><th class=\"num\">Peers up</th>\
         <th>Initial tables</th><th class=\"num\">Routes matched</th>\
         <th class=\"num\">Messages</th></tr></thead><tbody>",
    );
    for r in list.iter().take(MAX_ROUTER_ROWS) {
        let _ = write!(out, "<tr><td class=\"name\"><b>{}</b>", esc(&r.router));
        let mut sub: Vec<String> = Vec::new();
        if let Some(n) = r.sys_name.as_deref().filter(|n| *n != r.router) {
            sub.push(format!("sysName {n}"));
        }
        if let Some(n) = &r.dns_name {
            sub.push(format!("DNS {n}"));
        }
        if let Some(descr) = &r.sys_descr {
            sub.push(descr.clone());
        }
        for line in sub {
            let _ = write!(out, "<span class=\"sub\">{}</span>", esc(&line));
        }
        let _ = write!(out, "</td><td class=\"mono\">{}</td><td>", r.remote);
        let class = match r.state {
            "up" => "ok",
            "terminated" => "off",
            _ => "err",
        };
        badge(out, class, r.state);
        out.push_str("</td>");
        time_cell(out, Some(r.since), d.now);
        time_cell(out, r.last_message, d.now);
        let up = r.peers.iter().filter(|p| p.state == "up").count();
        let _ = write!(
            out,
            "<td class=\"num\">{} / {}</td><td>",
            thousands(up as u64),
            thousands(r.peers.len() as u64)
        );
        if r.state != "up" {
            out.push_str("<span class=\"muted\">—</span>");
        } else if r.initial_tables_complete {
            badge(out, "ok", "complete");
        } else {
            badge(out, "info", "waiting for End-of-RIB");
        }
        let messages: u64 = r.messages.values().sum();
        let _ = write!(
            out,
            "</td><td class=\"num\">{}<span class=\"sub\">of {} read</span></td>\
             <td class=\"num\">{}</td></tr>",
            thousands(r.routes_matched),
            thousands(r.routes_processed),
            thousands(messages)
        );
    }
    out.push_str("</tbody></table></div>");
    more_note(
        out,
        list.len().min(MAX_ROUTER_ROWS),
        list.len(),
        "routers",
        "/api/v1/status",
    );
    out.push_str("</section>");
}

fn events(out: &mut String, d: &PageData) {
    match &d.events {
        RecentEvents::Disabled => {
            section_head(out, "events", "Recent events", "history off");
            out.push_str(
                "<p class=\"empty\">The event history is off (<span class=\"mono\">[events] \
                 enabled = false</span>).</p></section>",
            );
        }
        RecentEvents::Unavailable(e) => {
            section_head(out, "events", "Recent events", "unavailable");
            let _ = write!(
                out,
                "<p class=\"empty\">The event history cannot be read: {}</p></section>",
                esc(e)
            );
        }
        RecentEvents::Loaded(list, more) => {
            let count = if *more {
                format!("newest {}", list.len())
            } else {
                list.len().to_string()
            };
            section_head(out, "events", "Recent events", &count);
            if list.is_empty() {
                out.push_str("<p class=\"empty\">No event recorded yet.</p></section>");
                return;
            }
            out.push_str(
                "<div class=\"scroll\"><table><thead><tr><th>BGP time</th><th>Severity</th>\
                 <th>Event</th><th>Location</th><th>Prefix</th><th>What happened</th>\
                 </tr></thead><tbody>",
            );
            for e in list {
                out.push_str("<tr>");
                time_cell(out, Some(e.time), d.now);
                out.push_str("<td>");
                badge(out, severity_class(e.severity), e.severity.as_str());
                let _ = write!(out, "</td><td>{}", esc(e.kind.as_str()));
                if let Some(a) = &e.anomaly {
                    let _ = write!(out, "<span class=\"sub\">{}</span>", esc(a));
                }
                let _ = write!(
                    out,
                    "</td><td class=\"{}\">{}</td><td class=\"mono\">{}",
                    name_class(&e.location),
                    esc(&e.location),
                    e.prefix
                );
                if e.announced != e.prefix {
                    let _ = write!(out, "<span class=\"sub\">{}</span>", e.announced);
                }
                let _ = write!(
                    out,
                    "</td><td>{}</td></tr>",
                    esc_description(&e.description)
                );
            }
            out.push_str("</tbody></table></div>");
            if *more {
                out.push_str(
                    "<p class=\"more\">Older events — see \
                     <a href=\"/api/v1/events\">/api/v1/events</a></p>",
                );
            }
            out.push_str("</section>");
        }
    }
}

#[cfg(test)]
mod tests;
