#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Notifications (`[[notify]]`, issue 13 point 5) against the real daemon on loopback and a
//! webhook receiver the test runs (tests/support/webhook.rs), asserting what the receiving end
//! and the operator see:
//!
//! * a hijack announced over BMP, flapping once, then withdrawn: the JSON webhook gets one
//!   `open` and one `resolve` (flap count, duration, link into the API), the Slack target a
//!   `text` naming the prefix and the AS; a severity filter keeps a warning kind away from a
//!   critical-only target while another target gets it; a 500-answering target is retried and
//!   counted failed; a 429 with `Retry-After` is waited out;
//! * a flood beyond a hung target's queue is dropped and counted while ingest goes on;
//! * a quiet re-read after a restart sends no opening again;
//! * `routewatch notify --test` exits 0 against the receiver and non-zero naming a dead target;
//! * an https target is verified against the trust store (`SSL_CERT_FILE`);
//! * configuration errors name file:line:col and the key.
//!
//! Every daemon is killed by pid when its guard drops; every wait is bounded.

mod support;

use std::io::Write as _;
use std::net::{Ipv4Addr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use support::bmp::{initiation, peer_up, route_monitoring_at, route_monitoring_many, ROUTER_AS};
use support::daemon::{free_port, toml_path, Daemon, Exposition};
use support::webhook::{Answer, WebhookServer};
use support::{DaemonConfig, Location};

const WAIT: Duration = Duration::from_secs(30);
const T: u32 = support::bmp::TIMESTAMP;
const TRANSIT: u32 = 64500;
const HIJACKER: u32 = 666;
const TOKEN: &str = "Bearer test-token-0123456789abcdef";

/// A `[[notify]]` table (through [`DaemonConfig::section`], whose `[name]` header this makes
/// `[[notify]]`).
fn notify(config: DaemonConfig, body: &str) -> DaemonConfig {
    config.section("[notify]", body)
}

fn sum_failed(m: &Exposition, target: &str) -> f64 {
    m.with_name("routewatch_notify_failed_total")
        .iter()
        .filter(|(l, _)| l.get("target").is_some_and(|t| t == target))
        .map(|(_, v)| v)
        .sum()
}

fn expect(m: &Exposition, name: &str, labels: &[(&str, &str)], want: f64) -> Result<(), String> {
    match m.get(name, labels) {
        Some(v) if v == want => Ok(()),
        got => Err(format!("{name}{labels:?} is {got:?}, want {want}")),
    }
}

#[test]
fn anomalies_open_and_resolve_at_webhook_and_slack_targets() {
    let server = WebhookServer::start(|path, nth| match (path, nth) {
        ("/fail", _) => Answer::Status(500, Vec::new()),
        ("/limited", 0) => Answer::Status(429, vec![("Retry-After".into(), "1".into())]),
        _ => Answer::ok(),
    });
    let dir = tempfile::tempdir().unwrap();
    let headers = dir.path().join("ops.headers");
    std::fs::write(
        &headers,
        format!("# ops credentials\nAuthorization: {TOKEN}\n"),
    )
    .unwrap();
    let mut config = DaemonConfig::new()
        .bmp("allow = [\"127.0.0.0/8\"]\ninitial-table-timeout-seconds = 1\n")
        .section("anomalies", "hold-down-seconds = 2\n")
        .location(Location::new("victim", &[64496], &["203.0.113.0/24"]))
        .location(Location::new("bank", &[64497], &["198.51.100.0/24"]).provider_asns(&[64502]));
    config = notify(
        config,
        &format!(
            "name = \"ops\"\ntype = \"webhook\"\nurl = \"{}\"\nmin-severity = \"critical\"\n\
             headers = {{ X-Team = \"netops\" }}\nheaders-file = {}\n",
            server.url("/hook"),
            toml_path(&headers)
        ),
    );
    config = notify(
        config,
        &format!(
            "name = \"chat\"\ntype = \"slack\"\nurl = \"{}\"\nlocations = [\"victim\"]\n\
             anomalies = [\"origin_mismatch\"]\n",
            server.url("/slack")
        ),
    );
    config = notify(
        config,
        &format!(
            "name = \"broken\"\ntype = \"webhook\"\nurl = \"{}\"\nmin-severity = \"critical\"\n\
             max-attempts = 3\n",
            server.url("/fail")
        ),
    );
    config = notify(
        config,
        &format!(
            "name = \"limited\"\ntype = \"webhook\"\nurl = \"{}\"\n",
            server.url("/limited")
        ),
    );
    let file = config.write(dir.path());
    let mut daemon = Daemon::start(&file);
    daemon.wait_ready();
    let m = daemon.scrape();
    for t in ["ops", "chat", "broken", "limited"] {
        assert_eq!(
            m.value("routewatch_notify_sent_total", &[("target", t)]),
            0.0
        );
        assert_eq!(
            m.value("routewatch_notify_queue_depth", &[("target", t)]),
            0.0
        );
        assert_eq!(
            m.value(
                "routewatch_notify_failed_total",
                &[("target", t), ("reason", "timeout")]
            ),
            0.0
        );
    }

    // The bank's prefix through an upstream that is not its provider (a warning), and the
    // victim's prefix hijacked by AS666 (critical), withdrawn, back within the hold-down (a
    // flap), withdrawn for good.
    let peer = Ipv4Addr::new(192, 0, 2, 1);
    let mut router = TcpStream::connect(("127.0.0.1", file.bmp_port.unwrap())).unwrap();
    let mut bytes = initiation("edge-1");
    bytes.extend(peer_up(peer, TRANSIT, ROUTER_AS));
    bytes.extend(route_monitoring_at(
        peer,
        TRANSIT,
        [198, 51, 100],
        Some(&[TRANSIT, 64501, 64497]),
        T,
    ));
    let hijack = [TRANSIT, HIJACKER];
    bytes.extend(route_monitoring_at(
        peer,
        TRANSIT,
        [203, 0, 113],
        Some(&hijack),
        T,
    ));
    bytes.extend(route_monitoring_at(
        peer,
        TRANSIT,
        [203, 0, 113],
        None,
        T + 1,
    ));
    bytes.extend(route_monitoring_at(
        peer,
        TRANSIT,
        [203, 0, 113],
        Some(&hijack),
        T + 2,
    ));
    bytes.extend(route_monitoring_at(
        peer,
        TRANSIT,
        [203, 0, 113],
        None,
        T + 3,
    ));
    router.write_all(&bytes).unwrap();

    // The JSON webhook: one opening, one resolve (after the hold-down), nothing else.
    let ops = server.wait("/hook", "ops got open and resolve", WAIT, |r| r.len() >= 2);
    let open = ops[0].json();
    assert_eq!(open["version"], 1, "{open}");
    assert_eq!(open["event"], "open", "{open}");
    assert_eq!(open["kind"], "origin_mismatch");
    assert_eq!(open["severity"], "critical");
    assert_eq!(open["location"], "victim");
    assert_eq!(open["prefix"], "203.0.113.0/24");
    assert_eq!(open["announced"], "203.0.113.0/24");
    assert_eq!(open["origin_asn"], HIJACKER);
    assert_eq!(open["expected_origins"], serde_json::json!([64496]));
    assert_eq!(
        open["as_path"],
        serde_json::json!([64500, 666]),
        "an array, as in the API"
    );
    assert_eq!(open["peers"], 1);
    assert!(
        open["peer"].as_str().unwrap().contains("192.0.2.1"),
        "{open}"
    );
    assert_eq!(open["opened_at"], "2023-11-14T22:13:20Z");
    assert_eq!(open["resolved_at"], serde_json::Value::Null);
    let link = format!(
        "http://127.0.0.1:{}/api/v1/events?prefix=203.0.113.0%2F24&kind=origin_mismatch&since={T}",
        file.http_port.unwrap()
    );
    assert_eq!(open["link"], link.as_str());
    assert!(
        open["summary"].as_str().unwrap().contains("AS666"),
        "{open}"
    );
    let resolve = ops[1].json();
    assert_eq!(resolve["event"], "resolve", "{resolve}");
    assert_eq!(resolve["kind"], "origin_mismatch");
    assert_eq!(resolve["prefix"], "203.0.113.0/24");
    assert_eq!(resolve["origin_asn"], HIJACKER);
    assert_eq!(resolve["flaps"], 1, "one flap within the hold-down");
    assert_eq!(resolve["opened_at"], "2023-11-14T22:13:20Z");
    assert_eq!(resolve["resolved_at"], "2023-11-14T22:13:23Z");
    assert_eq!(resolve["duration_seconds"], 3);
    assert_eq!(resolve["reason"], "withdrawn");
    for r in &ops {
        assert_eq!(r.header("authorization"), Some(TOKEN), "from headers-file");
        assert_eq!(r.header("x-team"), Some("netops"));
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert!(r.header("user-agent").unwrap().starts_with("routewatch/"));
    }
    // The link leads to the incident in the event history.
    let events = daemon.poll("the linked events", WAIT, |d| {
        let page = d
            .get_ok(
                link.strip_prefix(&format!("http://127.0.0.1:{}", d.port))
                    .unwrap(),
            )
            .json();
        let list = page["events"].as_array().unwrap().clone();
        if list.len() >= 2 {
            Ok(list)
        } else {
            Err(format!("{page}"))
        }
    });
    assert!(
        events
            .iter()
            .any(|e| e["kind"] == "anomaly_opened" && e["origin"] == HIJACKER),
        "{events:?}"
    );

    // Slack: text naming the prefix and the AS, blocks.
    let chat = server.wait("/slack", "chat got open and resolve", WAIT, |r| {
        r.len() >= 2
    });
    let text = chat[0].json()["text"].as_str().unwrap().to_string();
    assert!(
        text.contains("203.0.113.0/24") && text.contains("AS666") && text.contains("opened"),
        "{text}"
    );
    assert!(chat[0].json()["blocks"].is_array());
    let text = chat[1].json()["text"].as_str().unwrap().to_string();
    assert!(
        text.contains("RESOLVED") && text.contains("flapped 1 time"),
        "{text}"
    );

    // 429 with Retry-After: 1 waited out, then the opening delivered; this target takes every
    // severity: the bank's unexpected_upstream (a warning) and the victim's prefix withdrawn
    // by its last peer (an error) came too.
    let limited = server.wait("/limited", "limited got all four", WAIT, |r| r.len() >= 5);
    let waited = limited[1].at.duration_since(limited[0].at);
    assert!(waited >= Duration::from_millis(900), "{waited:?}");
    assert_eq!(
        limited[0].body, limited[1].body,
        "the same notification again"
    );
    let mut kinds: Vec<String> = limited[1..]
        .iter()
        .map(|r| {
            let j = r.json();
            format!(
                "{} {}",
                j["event"].as_str().unwrap(),
                j["kind"].as_str().unwrap()
            )
        })
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "open origin_mismatch",
            "open unexpected_upstream",
            "open withdrawn",
            "resolve origin_mismatch"
        ]
    );

    // The 500 target: three attempts per notification, then counted failed.
    let m = daemon.wait_scrape("broken counted failed twice", WAIT, |m| {
        expect(
            m,
            "routewatch_notify_failed_total",
            &[("target", "broken"), ("reason", "http_5xx")],
            2.0,
        )
    });
    assert_eq!(server.on("/fail").len(), 6, "3 attempts × 2 notifications");
    assert_eq!(
        m.value("routewatch_notify_retries_total", &[("target", "broken")]),
        4.0
    );
    assert_eq!(
        m.value("routewatch_notify_sent_total", &[("target", "broken")]),
        0.0
    );
    assert_eq!(sum_failed(&m, "broken"), 2.0);
    assert_eq!(
        m.value("routewatch_notify_sent_total", &[("target", "ops")]),
        2.0
    );
    assert_eq!(
        m.value("routewatch_notify_sent_total", &[("target", "chat")]),
        2.0
    );
    assert_eq!(
        m.value("routewatch_notify_sent_total", &[("target", "limited")]),
        4.0
    );
    assert_eq!(
        m.value("routewatch_notify_retries_total", &[("target", "limited")]),
        1.0
    );
    for t in ["ops", "chat", "limited"] {
        assert_eq!(sum_failed(&m, t), 0.0, "{t}");
    }
    for t in ["ops", "chat", "broken", "limited"] {
        assert_eq!(
            m.value("routewatch_notify_dropped_total", &[("target", t)]),
            0.0
        );
        assert_eq!(
            m.value("routewatch_notify_queue_depth", &[("target", t)]),
            0.0
        );
    }

    // The severity filter: the critical-only target never heard of the bank's warning.
    std::thread::sleep(Duration::from_millis(500));
    let ops = server.on("/hook");
    assert_eq!(ops.len(), 2, "open and resolve only");
    assert!(ops.iter().all(|r| r.json()["prefix"] == "203.0.113.0/24"));
    let log = daemon.log();
    assert!(log.contains("notification not delivered"), "{log}");
    assert!(!log.contains("test-token"), "a header value in the log");
    drop(router);
    daemon.terminate_cleanly();
}

#[test]
fn a_flood_beyond_a_hung_targets_queue_is_dropped_without_delaying_ingest() {
    let server = WebhookServer::start(|_, _| Answer::Hang);
    let dir = tempfile::tempdir().unwrap();
    let config = notify(
        DaemonConfig::new()
            .bmp("allow = [\"127.0.0.0/8\"]\ninitial-table-timeout-seconds = 1\n")
            .section("anomalies", "hold-down-seconds = 0\n")
            .location(Location::new("lab", &[64496], &["198.18.0.0/15"])),
        &format!(
            "name = \"slowpoke\"\ntype = \"webhook\"\nurl = \"{}\"\ntimeout-seconds = 60\n\
             max-attempts = 1\nqueue-size = 5\n",
            server.url("/hang")
        ),
    )
    .write(dir.path());
    let mut daemon = Daemon::start(&config);
    daemon.wait_ready();

    // 300 hijacked /24s inside the /15 in one UPDATE: 300 sub-prefix hijacks at once.
    let prefixes: Vec<[u8; 3]> = (0..300u32)
        .map(|i| [198, 18 + (i / 256) as u8, (i % 256) as u8])
        .collect();
    let peer = Ipv4Addr::new(192, 0, 2, 1);
    let mut router = TcpStream::connect(("127.0.0.1", config.bmp_port.unwrap())).unwrap();
    let mut bytes = initiation("edge-1");
    bytes.extend(peer_up(peer, TRANSIT, ROUTER_AS));
    bytes.extend(route_monitoring_many(
        peer,
        TRANSIT,
        &prefixes,
        &[TRANSIT, HIJACKER],
        T,
    ));
    router.write_all(&bytes).unwrap();
    // One notification in flight (the receiver never answers), the queue full, the rest
    // dropped and counted.
    let m = daemon.wait_scrape("the flood offered", WAIT, |m| {
        let dropped = m.value("routewatch_notify_dropped_total", &[("target", "slowpoke")]);
        let depth = m.value("routewatch_notify_queue_depth", &[("target", "slowpoke")]);
        if dropped + depth == 299.0 {
            Ok(())
        } else {
            Err(format!("dropped {dropped}, queued {depth}"))
        }
    });
    assert_eq!(
        m.value(
            "routewatch_anomalies_active",
            &[
                ("kind", "subprefix_hijack"),
                ("location", "lab"),
                ("prefix", "198.18.0.0/15")
            ]
        ),
        300.0
    );
    let dropped = m.value("routewatch_notify_dropped_total", &[("target", "slowpoke")]);
    assert!((294.0..=295.0).contains(&dropped), "{dropped}");
    server.wait("/hang", "the one in flight", WAIT, |r| r.len() == 1);

    // Ingest goes on while the target hangs: a new route is applied at once.
    let sent = Instant::now();
    router
        .write_all(&route_monitoring_at(
            peer,
            TRANSIT,
            [198, 19, 255],
            Some(&[TRANSIT, HIJACKER]),
            T + 1,
        ))
        .unwrap();
    daemon.wait_scrape("the next route applied", WAIT, |m| {
        expect(
            m,
            "routewatch_routes_processed_total",
            &[("feed", "bmp")],
            301.0,
        )
    });
    let took = sent.elapsed();
    assert!(took < Duration::from_secs(5), "ingest waited {took:?}");
    let m = daemon.scrape();
    let dropped = m.value("routewatch_notify_dropped_total", &[("target", "slowpoke")]);
    let depth = m.value("routewatch_notify_queue_depth", &[("target", "slowpoke")]);
    assert_eq!(
        dropped + depth,
        300.0,
        "the new hijack's notification dropped too"
    );
    assert_eq!(server.on("/hang").len(), 1, "still one in flight");
    let asked = Instant::now();
    let status = daemon.get_ok("/api/v1/status").json();
    assert_eq!(status["tracked_routes"], 301, "{status}");
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "{:?}",
        asked.elapsed()
    );

    // Shutdown does not wait for the hung target beyond its grace.
    drop(router);
    let stopping = Instant::now();
    daemon.terminate_cleanly();
    assert!(stopping.elapsed() < Duration::from_secs(9));
    assert!(daemon.log().contains("still busy at shutdown"));
}

#[test]
fn a_quiet_re_read_after_a_restart_sends_no_opening_again() {
    let server = WebhookServer::start(|_, _| Answer::ok());
    let dir = tempfile::tempdir().unwrap();
    let watch = dir.path().join("watch");
    std::fs::create_dir(&watch).unwrap();
    let config = notify(
        DaemonConfig::new()
            .watch_dir(&watch, 1)
            .location(Location::new("victim", &[64496], &["203.0.113.0/24"])),
        &format!(
            "name = \"ops\"\ntype = \"webhook\"\nurl = \"{}\"\n",
            server.url("/hook")
        ),
    )
    .write(dir.path());
    let updates = support::encode_updates(&[support::announce(
        f64::from(T),
        ("192.0.2.9", TRANSIT),
        "203.0.113.0/24",
        &[TRANSIT, HIJACKER],
    )]);
    let active = [
        ("kind", "origin_mismatch"),
        ("location", "victim"),
        ("prefix", "203.0.113.0/24"),
    ];
    {
        let mut first = Daemon::start(&config);
        first.wait_ready();
        let tmp = watch.join("updates.tmp");
        std::fs::write(&tmp, &updates).unwrap();
        std::fs::rename(&tmp, watch.join("updates.20231114.2213.mrt")).unwrap();
        let got = server.wait("/hook", "the opening", WAIT, |r| !r.is_empty());
        assert_eq!(got[0].json()["event"], "open");
        first.wait_metric("routewatch_anomalies_active", &active, 1.0);
        first.terminate_cleanly();
    }
    let mut second = Daemon::start(&config);
    second.wait_ready();
    // The file is re-read quietly: the incident is active again...
    second.wait_metric("routewatch_anomalies_active", &active, 1.0);
    // ...and no notification goes out for it, over several ticks.
    std::thread::sleep(Duration::from_secs(3));
    let m = second.scrape();
    assert_eq!(
        m.value("routewatch_notify_sent_total", &[("target", "ops")]),
        0.0
    );
    assert_eq!(server.on("/hook").len(), 1, "no second opening");
    second.terminate_cleanly();
}

/// `routewatch notify --test -c FILE [--target NAME]`: (exit code, stdout, stderr).
fn notify_test(config: &Path, target: Option<&str>) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_routewatch"));
    cmd.args(["notify", "--test", "-c"]).arg(config);
    if let Some(t) = target {
        cmd.args(["--target", t]);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn notify_test_reaches_each_target_and_names_the_ones_that_fail() {
    let server = WebhookServer::start(|path, _| match path {
        "/fail" => Answer::Status(500, Vec::new()),
        _ => Answer::ok(),
    });
    let dir = tempfile::tempdir().unwrap();
    let good = || {
        let c = notify(
            DaemonConfig::new().location(Location::new("victim", &[64496], &["203.0.113.0/24"])),
            &format!(
                "name = \"hook\"\ntype = \"webhook\"\nurl = \"{}\"\n",
                server.url("/hook")
            ),
        );
        notify(
            c,
            &format!(
                "name = \"chat\"\ntype = \"slack\"\nurl = \"{}\"\n",
                server.url("/slack")
            ),
        )
    };
    let file = good().write(dir.path());
    let (code, out, err) = notify_test(&file.path, None);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("hook: OK") && out.contains("chat: OK"),
        "{out}"
    );
    let hook = server.on("/hook");
    assert_eq!(hook.len(), 1);
    assert_eq!(hook[0].json()["event"], "test");
    assert!(hook[0].json()["link"]
        .as_str()
        .unwrap()
        .ends_with("/api/v1/status"));
    let slack = server.on("/slack");
    assert_eq!(slack.len(), 1);
    assert!(slack[0].json()["text"]
        .as_str()
        .unwrap()
        .contains("test notification"));

    // A closed port and a 500: exit 1 naming both; the good ones still get theirs.
    let dead_port = free_port();
    let file = notify(
        notify(
            good(),
            &format!(
                "name = \"dead\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:{dead_port}/x\"\n"
            ),
        ),
        &format!(
            "name = \"err\"\ntype = \"webhook\"\nurl = \"{}\"\n",
            server.url("/fail")
        ),
    )
    .write(dir.path());
    let (code, out, err) = notify_test(&file.path, None);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("dead (connect)") && err.contains("err (http_5xx)"),
        "{err}"
    );
    assert!(!err.contains("hook") && !err.contains("chat"), "{err}");
    assert!(
        out.contains("hook: OK") && out.contains("dead: FAILED"),
        "{out}"
    );
    assert_eq!(server.on("/hook").len(), 2);
    assert_eq!(server.on("/fail").len(), 1, "one attempt, no retries");

    // Only one target.
    let (code, out, err) = notify_test(&file.path, Some("hook"));
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(server.on("/hook").len(), 3);
    assert_eq!(server.on("/slack").len(), 2, "not sent to chat");
    let (code, _, err) = notify_test(&file.path, Some("dead"));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("dead"), "{err}");
    let (code, _, err) = notify_test(&file.path, Some("nope"));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no [[notify]] target named 'nope'"), "{err}");
}

#[test]
fn notify_configuration_errors_name_the_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("slack.url");
    std::fs::write(
        &secret,
        "# the webhook URL\nhttps://hooks.example.com/services/T0/B0/s3cret\n",
    )
    .unwrap();
    let ok = format!(
        "name = \"chat\"\ntype = \"slack\"\nurl-file = {}\n",
        toml_path(&secret)
    );
    let (_, c) = support::load_config(dir.path(), &format!("[[notify]]\n{ok}"));
    let c = c.unwrap();
    assert_eq!(c.notify.len(), 1);
    assert_eq!(c.notify[0].endpoint.host, "hooks.example.com");
    assert!(
        !format!("{:?}", c.notify[0]).contains("s3cret"),
        "Debug shows no secret"
    );

    let base = "name = \"t\"\ntype = \"webhook\"\n";
    let cases: [(&str, usize, &str, &str); 12] = [
        (
            "url = \"https://x/\"\ncolour = 1\n",
            5,
            "",
            "unknown field `colour`",
        ),
        (
            "url = \"http://hooks.example.com/x\"\n",
            4,
            "notify[0].url",
            "allow-http",
        ),
        ("url = \"ftp://x/\"\n", 4, "notify[0].url", "scheme"),
        (
            "url = \"https://x/\"\nmin-severity = \"loud\"\n",
            5,
            "notify[0].min-severity",
            "'loud' is not a severity",
        ),
        (
            "url = \"https://x/\"\nlocations = [\"nowhere\"]\n",
            5,
            "notify[0].locations",
            "'nowhere' is not the name of a [[location]]",
        ),
        (
            "url = \"https://x/\"\nanomalies = [\"hijack\"]\n",
            5,
            "notify[0].anomalies",
            "'hijack' is not an anomaly kind",
        ),
        (
            "url = \"https://x/\"\nheaders = { Authorization = \"Bearer abc\" }\n",
            5,
            "notify[0].headers",
            "headers-file",
        ),
        (
            "url = \"https://x/\"\nqueue-size = 0\n",
            5,
            "notify[0].queue-size",
            "out of range",
        ),
        (
            "url = \"https://x/\"\nmax-attempts = 50\n",
            5,
            "notify[0].max-attempts",
            "out of range",
        ),
        (
            "url = \"https://x/\"\nurl-file = \"x\"\n",
            4,
            "notify[0].url",
            "not both",
        ),
        (
            "url = \"https://x/\"\nlink-base = \"https://rw/x?y\"\n",
            5,
            "notify[0].link-base",
            "no path or query",
        ),
        (
            "url = \"https://x/\"\nheaders-file = \"missing.headers\"\n",
            5,
            "notify[0].headers-file",
            "cannot be read",
        ),
    ];
    for (rest, line, key, want) in cases {
        let (path, c) = support::load_config(dir.path(), &format!("[[notify]]\n{base}{rest}"));
        let err = c.unwrap_err();
        let prefix = format!("{}:{line}:", path.display());
        assert!(err.starts_with(&prefix), "{rest:?}: {err} (want {prefix})");
        assert!(err.contains(key) && err.contains(want), "{rest:?}: {err}");
        assert!(!err.contains("Bearer abc"), "{err}");
    }
    // Two targets of one name; a bad type.
    let (path, c) = support::load_config(
        dir.path(),
        "[[notify]]\nname = \"t\"\ntype = \"webhook\"\nurl = \"https://x/\"\n\n\
         [[notify]]\nname = \"t\"\ntype = \"pager\"\nurl = \"https://x/\"\n",
    );
    let err = c.unwrap_err();
    assert!(
        err.starts_with(&format!("{}:8:8: notify[1].type", path.display())),
        "{err}"
    );
    let (path, c) = support::load_config(
        dir.path(),
        "[[notify]]\nname = \"t\"\ntype = \"webhook\"\nurl = \"https://x/\"\n\n\
         [[notify]]\nname = \"t\"\ntype = \"slack\"\nurl = \"https://x/\"\n",
    );
    let err = c.unwrap_err();
    assert!(
        err.starts_with(&format!("{}:7:8: notify[1].name", path.display()))
            && err.contains("already"),
        "{err}"
    );
}

/// A one-connection-at-a-time HTTPS receiver (rustls, a self-signed certificate for
/// `localhost`) on a free loopback port, answering 200 to `accept` connections and recording
/// the request bodies; returns (port, certificate PEM, thread giving the bodies).
fn https_receiver(accept: usize) -> (u16, String, std::thread::JoinHandle<Vec<String>>) {
    use std::io::Read as _;
    use std::sync::Arc;
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![rustls::pki_types::CertificateDer::from(cert.der().to_vec())],
                rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
            )
            .unwrap(),
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let thread = std::thread::spawn(move || {
        let mut bodies = Vec::new();
        for _ in 0..accept {
            let (tcp, _) = listener.accept().unwrap();
            tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let conn = rustls::ServerConnection::new(config.clone()).unwrap();
            let mut tls = rustls::StreamOwned::new(conn, tcp);
            let mut raw = Vec::new();
            let mut buf = [0u8; 4096];
            // Head and body (the test notice is well under one read past the head).
            let complete = |raw: &[u8]| {
                let text = String::from_utf8_lossy(raw);
                let Some(end) = text.find("\r\n\r\n") else {
                    return false;
                };
                let length = text[..end]
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse::<usize>().unwrap())
                    })
                    .unwrap_or(0);
                raw.len() >= end + 4 + length
            };
            while !complete(&raw) {
                match tls.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => raw.extend_from_slice(&buf[..n]),
                }
            }
            if raw.is_empty() {
                bodies.push(String::new()); // the handshake failed (an untrusted certificate)
                continue;
            }
            let text = String::from_utf8_lossy(&raw).into_owned();
            bodies.push(text[text.find("\r\n\r\n").unwrap() + 4..].to_string());
            let _ = tls.write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
            tls.conn.send_close_notify();
            let _ = tls.flush();
        }
        bodies
    });
    (port, cert.pem(), thread)
}

/// https: the certificate checked against the trust store (`SSL_CERT_FILE` here); a server the
/// store does not vouch for fails as `tls`.
#[test]
fn https_targets_are_verified_against_the_trust_store() {
    let (port, pem, receiver) = https_receiver(2);
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, pem).unwrap();
    let config = notify(
        DaemonConfig::new().location(Location::new("victim", &[64496], &["203.0.113.0/24"])),
        &format!("name = \"secure\"\ntype = \"slack\"\nurl = \"https://localhost:{port}/hook\"\n"),
    )
    .write(dir.path());
    let run = |trust: &Path| {
        let out = Command::new(env!("CARGO_BIN_EXE_routewatch"))
            .args(["notify", "--test", "-c"])
            .arg(&config.path)
            .env("SSL_CERT_FILE", trust)
            .env_remove("SSL_CERT_DIR")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (code, out) = run(&ca);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("secure: OK") && out.contains("HTTP 204"),
        "{out}"
    );
    // Another certificate as the only trusted one: the receiver's is refused.
    let other = dir.path().join("other.pem");
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    std::fs::write(&other, cert.pem()).unwrap();
    let (code, out) = run(&other);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("secure (tls)"), "{out}");
    let bodies = receiver.join().unwrap();
    assert!(
        bodies[0].contains("\"text\":") && bodies[0].contains("test notification"),
        "{bodies:?}"
    );
    assert_eq!(bodies[1], "", "no request over an untrusted connection");
}
