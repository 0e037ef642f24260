#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The status page `/` in a real browser (Debian's headless `chromium`), against `routewatch
//! run` with an ongoing hijack: the bundled RouteViews RIB, an update file in which AS64666
//! announces 8.8.8.0/24 (google-dns, origin AS15169), and a BMP router whose sysName is markup
//! announcing the prefix of a location whose name is markup too. Tokens are configured, so `/`
//! answers 401 without one and the browser signs in with Basic credentials (the token as the
//! password).
//!
//! What a person sees is asserted on the DOM chromium dumps after loading the page: the
//! hijacked prefix's anomaly row with the offending AS, the location with its visibility (as the
//! API says) and the hijacker's origin marked, the router and feed rows with their states, the
//! event of the opening, and no element made from the hostile strings. The screenshot is kept at
//! `<target>/test-artifacts/status-page.png` (printed) and checked to be a non-trivial PNG.
//!
//! chromium and the daemon are killed by pid when their guards drop; every wait is bounded.

mod support;

use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use support::bmp::{
    bgp_message, bmp_message, connect_from, initiation, peer_header, peer_up, route_monitoring,
    ROUTER_AS,
};
use support::daemon::{http_request_with, Daemon, HttpResponse};
use support::process::ChildGuard;
use support::{demo_locations, encode_updates, fixture, DaemonConfig, Location, DEMO_RIB};

const TOKEN: &str = "status-page-token-0123456789";
/// A sysName and a location name that are markup.
const SYS_NAME: &str = "<script>document.title='pwned-by-sysname'</script>";
const LOCATION: &str = "<script>alert('loc')</script> & <b>lab</b>";
const HOSTILE_PREFIX: &str = "203.0.113.0/24";
const WAIT: Duration = Duration::from_secs(30);
/// Longest run of one chromium invocation.
const CHROMIUM_TIMEOUT: Duration = Duration::from_secs(90);

fn bearer() -> String {
    format!("Bearer {TOKEN}")
}

fn api(daemon: &mut Daemon, path: &str) -> serde_json::Value {
    daemon.assert_running();
    let r = http_request_with(daemon.port, "GET", path, &[("Authorization", &bearer())]).unwrap();
    assert_eq!(r.status, 200, "GET {path}: {}", r.text());
    r.json()
}

/// Runs chromium headless on `url` with `args`; its stdout goes to `stdout`. Killed by pid if it
/// runs longer than [`CHROMIUM_TIMEOUT`].
fn chromium(dir: &Path, args: &[String], url: &str, stdout: &Path) {
    let profile = tempfile::tempdir_in(dir).unwrap();
    let log = dir.join("chromium.log");
    let mut cmd = Command::new("chromium");
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()))
    .args(args)
    .arg(url)
    .stdout(std::fs::File::create(stdout).unwrap())
    .stderr(std::fs::File::create(&log).unwrap());
    let mut guard = ChildGuard::start(
        "chromium",
        &mut cmd,
        None,
        "apt-get install -y --no-install-recommends chromium",
    );
    match guard.wait_exit(CHROMIUM_TIMEOUT) {
        Some(status) => assert!(
            status.success(),
            "chromium {args:?} failed ({status}):\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        ),
        None => {
            guard.kill();
            panic!(
                "chromium {args:?} did not finish within {CHROMIUM_TIMEOUT:?}:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
    }
}

/// The `<section id="{id}">` of `dom`.
fn section<'a>(dom: &'a str, id: &str) -> &'a str {
    let start = dom
        .find(&format!("<section id=\"{id}\""))
        .unwrap_or_else(|| panic!("no section {id} in the page:\n{dom}"));
    let rest = &dom[start..];
    &rest[..rest.find("</section>").unwrap_or(rest.len())]
}

/// The body rows of a section's table that contain every one of `needles`.
fn rows<'a>(section: &'a str, needles: &[&str]) -> Vec<&'a str> {
    let body = section.split("<tbody>").nth(1).unwrap_or_default();
    body.split("<tr")
        .skip(1)
        .filter(|row| needles.iter().all(|n| row.contains(n)))
        .collect()
}

fn one_row<'a>(dom: &'a str, id: &str, needles: &[&str]) -> &'a str {
    let s = section(dom, id);
    match rows(s, needles).as_slice() {
        [row] => row,
        other => panic!("section {id}: {} rows with {needles:?}:\n{s}", other.len()),
    }
}

/// `<target>/test-artifacts/`.
fn artifacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Width and height from a PNG's IHDR, after checking the signature.
fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert!(
        bytes.len() > 33 && bytes.starts_with(b"\x89PNG\r\n\x1a\n") && &bytes[12..16] == b"IHDR",
        "not a PNG ({} bytes)",
        bytes.len()
    );
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    (be(&bytes[16..20]), be(&bytes[20..24]))
}

fn assert_page_headers(r: &HttpResponse) {
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    let csp = r.header("content-security-policy").unwrap_or_default();
    assert!(csp.contains("default-src 'none'"), "CSP: {csp}");
    assert!(!csp.contains("script-src"), "no script allowed: {csp}");
}

#[test]
fn the_status_page_shows_an_ongoing_hijack_in_a_real_browser() {
    let dir = tempfile::tempdir().unwrap();
    let t = support::DEMO_RIB_TIME;
    let updates = dir.path().join("hijack.mrt");
    std::fs::write(
        &updates,
        encode_updates(&[support::announce(
            t + 60.0,
            ("12.0.1.63", 7018),
            "8.8.8.0/24",
            &[7018, 64666],
        )]),
    )
    .unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, format!("{TOKEN}\n")).unwrap();
    let hostile = Location::new(LOCATION, &[64500], &[HOSTILE_PREFIX]).provider("AT&T <lab>");
    let config = DaemonConfig::new()
        .http(&format!(
            "token-file = {}",
            support::daemon::toml_path(&tokens)
        ))
        .mrt_files(&[fixture(DEMO_RIB), updates])
        .bmp("initial-table-timeout-seconds = 1\n")
        .locations_toml(&format!("{}{}", demo_locations(), hostile.toml()));
    let file = config.write(dir.path());
    let mut daemon = Daemon::start(&file);
    daemon.wait_ready();
    let port = daemon.port;

    // A router named by markup announces the markup-named location's prefix.
    let peer = Ipv4Addr::new(192, 0, 2, 1);
    let mut router = connect_from(Ipv4Addr::new(127, 0, 0, 3), config.bmp_port());
    router.write_all(&initiation(SYS_NAME)).unwrap();
    router.write_all(&peer_up(peer, 64510, ROUTER_AS)).unwrap();
    router
        .write_all(&route_monitoring(
            peer,
            64510,
            [203, 0, 113],
            Some(&[64510, 64500]),
        ))
        .unwrap();
    // End-of-RIB (IPv4 unicast): an UPDATE with nothing in it.
    let mut eor = peer_header(peer, 64510);
    eor.extend_from_slice(&bgp_message(2, &[0, 0, 0, 0]));
    router.write_all(&bmp_message(3, 0, &eor)).unwrap();

    // What the API says, once everything is in.
    let (hijack_vis, hostile_vis) = daemon.poll("hijack, router and events in", WAIT, |d| {
        let anomalies = api(d, "/api/v1/anomalies");
        let open = anomalies["anomalies"].as_array().unwrap().iter().any(|a| {
            a["kind"] == "origin_mismatch"
                && a["prefix"] == "8.8.8.0/24"
                && a["asn"] == 64666
                && a["open"] == true
        });
        let status = api(d, "/api/v1/status");
        let up = status["routers"].as_array().unwrap().iter().any(|r| {
            r["sys_name"] == SYS_NAME
                && r["state"] == "up"
                && r["initial_tables_complete"] == true
                && r["last_message"].is_string()
        });
        let events = api(d, "/api/v1/events?kind=origin_mismatch");
        let opened = events["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "anomaly_opened" && e["prefix"] == "8.8.8.0/24");
        let prefixes = api(d, "/api/v1/prefixes");
        let vis = |p: &str| {
            prefixes["prefixes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|x| x["prefix"] == p)
                .and_then(|x| x["visibility"].as_u64())
                .unwrap_or(0)
        };
        let (v8, vh) = (vis("8.8.8.0/24"), vis(HOSTILE_PREFIX));
        if open && up && opened && v8 > 1 && vh == 1 {
            Ok((v8, vh))
        } else {
            Err(format!(
                "hijack open {open}, router up {up}, event {opened}, visibility {v8} / {vh}"
            ))
        }
    });

    // The same access control as the API: 401 without a token, with a challenge a browser
    // answers (Basic) and one API clients know (Bearer).
    let mut refused = 0;
    for headers in [
        vec![],
        vec![("Authorization", "Bearer wrong-token-0123456789abc")],
        vec![(
            "Authorization",
            "Basic b3BzOndyb25nLXRva2VuLTAxMjM0NTY3ODk=",
        )],
    ] {
        let r = http_request_with(port, "GET", "/", &headers).unwrap();
        assert_eq!(r.status, 401, "{headers:?}: {}", r.text());
        assert_page_headers(&r);
        let challenges: Vec<&str> = r
            .headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("www-authenticate"))
            .map(|(_, v)| v.as_str())
            .collect();
        assert!(
            challenges.iter().any(|c| c.starts_with("Basic realm=")),
            "{challenges:?}"
        );
        assert!(challenges.iter().any(|c| c.starts_with("Bearer")));
        assert!(r.text().contains("Sign-in required"), "{}", r.text());
        refused += 1;
    }
    let basic = format!(
        "Basic {}",
        // "ops:<TOKEN>"
        base64(format!("ops:{TOKEN}").as_bytes())
    );
    for auth in [bearer(), basic] {
        let r = http_request_with(port, "GET", "/", &[("Authorization", &auth)]).unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        assert_page_headers(&r);
        let html = r.text();
        assert!(html.contains("<meta http-equiv=\"refresh\" content=\"30\">"));
        assert!(!html.to_lowercase().contains("<script"), "{html}");
        assert!(
            html.contains("&lt;script&gt;alert(&#39;loc&#39;)&lt;/script&gt; &amp; &lt;b&gt;lab"),
            "the location name is shown escaped"
        );
        assert!(html.contains("&lt;script&gt;document.title=&#39;pwned-by-sysname&#39;"));
        assert!(html.len() < 512 * 1024, "{} bytes", html.len());
    }
    let rejected = daemon.scrape().value(
        "routewatch_http_requests_rejected_total",
        &[("reason", "unauthorized")],
    );
    assert_eq!(rejected, f64::from(refused));

    // The browser signs in with the credentials in the URL (sent as Basic after the 401).
    let url = format!("http://ops:{TOKEN}@127.0.0.1:{port}/");
    let dom_file = dir.path().join("dom.html");
    chromium(dir.path(), &["--dump-dom".to_string()], &url, &dom_file);
    let dom = std::fs::read_to_string(&dom_file).unwrap();
    assert!(
        dom.contains("<h2>Anomalies"),
        "chromium did not show the page:\n{dom}"
    );
    assert!(
        !dom.contains("<title>pwned"),
        "a script from the sysName ran"
    );
    assert!(
        !dom.to_lowercase().contains("<script") && !dom.contains("<b>lab</b>"),
        "markup from the network or the configuration became elements:\n{dom}"
    );
    // Header: instance, version, readiness.
    assert!(dom.contains(&format!("version <b>{}</b>", env!("CARGO_PKG_VERSION"))));
    assert!(dom.contains(">ready</span>"), "{dom}");

    // The hijack: its row names the kind, the prefix, the offending AS and a path through it.
    let row = one_row(&dom, "anomalies", &["origin_mismatch", "8.8.8.0/24"]);
    for want in [
        ">critical<",
        ">open<",
        "google-dns",
        "AS64666",
        "7018 64666",
        "2014-05-23T06:01:00Z",
    ] {
        assert!(row.contains(want), "anomaly row lacks {want:?}: {row}");
    }
    // The location: visibility as the API says, both origins, the hijacker's marked.
    let row = one_row(&dom, "locations", &["8.8.8.0/24"]);
    assert!(row.contains("google-dns"), "{row}");
    assert!(
        row.contains(&format!("<span>{hijack_vis}</span>")),
        "visibility {hijack_vis}: {row}"
    );
    assert!(row.contains("<span class=\"asn bad\">AS64666"), "{row}");
    assert!(row.contains("<span class=\"asn \">AS15169"), "{row}");
    let row = one_row(&dom, "locations", &[HOSTILE_PREFIX]);
    assert!(
        row.contains("&lt;script&gt;alert('loc')&lt;/script&gt; &amp; &lt;b&gt;lab&lt;/b&gt;"),
        "{row}"
    );
    assert!(row.contains("AT&amp;T &lt;lab&gt;"), "{row}");
    assert!(
        row.contains(&format!("<span>{hostile_vis}</span>")),
        "{row}"
    );
    // Feeds and the router.
    let row = one_row(&dom, "feeds", &["<b>mrt</b>"]);
    // The RIB fixture is a cut bz2 stream: read with parse errors, and the page says so.
    assert!(row.contains(">receiving<"), "{row}");
    assert!(
        row.contains("files: 1 ok") && row.contains(">1 with parse errors<"),
        "{row}"
    );
    let row = one_row(&dom, "feeds", &["<b>bmp</b>"]);
    assert!(
        row.contains(">receiving<") && row.contains("1 of 1 routers up"),
        "{row}"
    );
    let row = one_row(&dom, "routers", &["127.0.0.3:"]);
    assert!(row.contains(">up<") && row.contains(">complete<"), "{row}");
    assert!(row.contains("&lt;script&gt;document.title="), "{row}");
    assert!(row.contains("1 / 1"), "one peer up: {row}");
    // The opening is among the recent events.
    let row = one_row(
        &dom,
        "events",
        &["anomaly_opened", "origin_mismatch", "8.8.8.0/24"],
    );
    assert!(row.contains(">critical<"), "{row}");

    // The screenshot, kept as an artifact.
    let png = artifacts().join("status-page.png");
    let _ = std::fs::remove_file(&png);
    chromium(
        dir.path(),
        &[
            format!("--screenshot={}", png.display()),
            "--window-size=1280,2000".to_string(),
        ],
        &url,
        &dir.path().join("screenshot.out"),
    );
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(png_size(&bytes), (1280, 2000));
    // A blank or error page compresses to a few kB; the page's text and tables do not.
    assert!(bytes.len() > 40_000, "{} bytes", bytes.len());
    println!("status page screenshot: {}", png.display());

    drop(router);
    daemon.terminate_cleanly();
}

/// Standard base64 with padding (for the Basic credentials of the test).
fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn test_base64_matches_coreutils() {
    let out = Command::new("base64")
        .arg("-w0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(b"ops:ab")?;
            c.wait_with_output()
        })
        .unwrap();
    assert_eq!(base64(b"ops:ab"), String::from_utf8(out.stdout).unwrap());
    assert_eq!(base64(b"f"), "Zg==");
    assert_eq!(base64(b"fo"), "Zm8=");
    assert_eq!(base64(b"foo"), "Zm9v");
}
