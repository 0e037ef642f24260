//! `docs/METRICS.md` documents every metric and every bounded label value, held against a live
//! `/metrics` (a daemon with every subsystem on: MRT files, a BMP router, a VRP file, the event
//! store, DNS enrichment) and against the code's own lists of label values.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::net::{Ipv4Addr, TcpStream};
use std::time::Duration;

use support::bmp::*;
use support::daemon::{poll, Daemon};
use support::*;

/// One row of the metrics table.
#[derive(Debug)]
struct Documented {
    kind: String,
    labels: BTreeSet<String>,
}

/// The metrics table and the label-values table of `docs/METRICS.md`.
struct Doc {
    metrics: BTreeMap<String, Documented>,
    /// (metric, label) -> documented values.
    values: BTreeMap<(String, String), BTreeSet<String>>,
}

/// The cells of a Markdown table row, backticks removed.
fn cells(line: &str) -> Vec<String> {
    line.trim()
        .trim_matches('|')
        .split('|')
        .map(|c| c.trim().trim_matches('`').to_string())
        .collect()
}

fn read_doc() -> Doc {
    let text = std::fs::read_to_string(repo("docs/METRICS.md")).unwrap();
    let mut metrics = BTreeMap::new();
    let mut values: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    let mut section = "";
    for line in text.lines() {
        if let Some(h) = line.strip_prefix("## ") {
            section = if h.starts_with("Metrics") {
                "metrics"
            } else if h.starts_with("Label values") {
                "values"
            } else {
                ""
            };
            continue;
        }
        if !line.starts_with("| `") {
            continue;
        }
        let c = cells(line);
        match section {
            "metrics" => {
                assert!(c.len() >= 4, "metrics row with 4 cells: {line}");
                let labels = c[2]
                    .split(',')
                    .map(|l| l.trim().trim_matches('`').to_string())
                    .filter(|l| !l.is_empty() && l != "—")
                    .collect();
                let old = metrics.insert(
                    c[0].clone(),
                    Documented {
                        kind: c[1].clone(),
                        labels,
                    },
                );
                assert!(old.is_none(), "{} documented twice", c[0]);
            }
            "values" => {
                assert!(c.len() >= 4, "label-value row with 4 cells: {line}");
                assert!(!c[3].is_empty(), "{line}: say what the value means");
                let fresh = values
                    .entry((c[0].clone(), c[1].clone()))
                    .or_default()
                    .insert(c[2].clone());
                assert!(fresh, "{line}: documented twice");
            }
            _ => {}
        }
    }
    assert!(metrics.len() > 50, "the metrics table was read");
    Doc { metrics, values }
}

/// Every `"routewatch_..."` string literal in `src/` outside tests: the metric names the code
/// can export.
fn names_in_source() -> BTreeSet<String> {
    fn walk(dir: &std::path::Path, out: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            if path.is_dir() {
                if name != "tests" {
                    walk(&path, out);
                }
            } else if name.ends_with(".rs") && name != "tests.rs" {
                let text = std::fs::read_to_string(&path).unwrap();
                for piece in text.split("\"routewatch_").skip(1) {
                    let n: String = piece
                        .chars()
                        .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                        .collect();
                    if piece[n.len()..].starts_with('"') && !n.ends_with('_') {
                        out.insert(format!("routewatch_{n}"));
                    }
                }
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(&repo("src"), &mut out);
    out
}

/// The families of an exposition: name -> (type, label names, label values by label).
type Families = BTreeMap<String, (String, BTreeSet<String>, BTreeMap<String, BTreeSet<String>>)>;

fn families(text: &str) -> Families {
    let mut out: Families = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut it = rest.split_whitespace();
            let (name, kind) = (it.next().unwrap(), it.next().unwrap());
            out.entry(name.to_string()).or_default().0 = kind.to_string();
            continue;
        }
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let name_end = line.find(['{', ' ']).unwrap();
        let sample = &line[..name_end];
        let family = out
            .keys()
            .filter(|f| sample.starts_with(f.as_str()))
            .max_by_key(|f| f.len())
            .cloned()
            .unwrap_or_else(|| panic!("sample before its TYPE: {line}"));
        let entry = out.get_mut(&family).unwrap();
        if line[name_end..].starts_with('{') {
            let body = &line[name_end + 1..line.rfind('}').unwrap()];
            for pair in body.split("\",").filter(|p| !p.is_empty()) {
                let (k, v) = pair.split_once("=\"").unwrap();
                if k == "le" || k == "quantile" {
                    continue;
                }
                entry.1.insert(k.to_string());
                entry
                    .2
                    .entry(k.to_string())
                    .or_default()
                    .insert(v.trim_end_matches('"').to_string());
            }
        }
    }
    out
}

/// A daemon with every subsystem on, a BMP router connected and the demo files read.
fn live_exposition() -> String {
    let dir = tempfile::tempdir().unwrap();
    let vrps = fixture("rpki/routinator.json");
    // A DNS server that never answers: lookups time out (dns metrics with values).
    let silent_dns = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let dns = silent_dns.local_addr().unwrap();
    let config = DaemonConfig::new()
        .mrt_files(&[fixture(DEMO_RIB), fixture(DEMO_UPDATES)])
        .bmp("allow = [\"127.0.0.0/8\"]\ninitial-table-timeout-seconds = 1\n[[bmp.router]]\naddress = \"127.0.0.9\"\nname = \"edge9\"\n")
        // [rpki] rtr pointed at a local port where nothing listens: its series exist, its
        // connection attempts fail (reason="connect").
        .rpki(
            &vrps,
            &format!(
                "rtr = [\"127.0.0.1:{}\"]\nrtr-connect-timeout-seconds = 1\n",
                support::daemon::free_port()
            ),
        )
        .section(
            "dns",
            &format!("enabled = true\nservers = [\"{dns}\"]\ntimeout-ms = 50\nattempts = 1\n"),
        )
        // [ris-live] pointed at a local port where nothing listens: its series exist, its
        // connection attempts fail (reason="connect").
        .section(
            "ris-live",
            &format!(
                "enabled = true\nurl = \"ws://127.0.0.1:{}/v1/ws/\"\nclient = \"metrics-doc\"\n\
                 backoff-min-ms = 100\nbackoff-max-ms = 200\n",
                support::daemon::free_port()
            ),
        )
        .locations_toml(&demo_locations())
        .write(dir.path());
    let mut daemon = Daemon::start(&config);
    daemon.wait_ready();
    let peer = Ipv4Addr::new(192, 0, 2, 1);
    let mut router = TcpStream::connect(("127.0.0.1", config.bmp_port.unwrap())).unwrap();
    let mut bytes = initiation("edge-doc");
    bytes.extend(peer_up(peer, 64510, 64500));
    bytes.extend(route_monitoring(
        peer,
        64510,
        [8, 8, 8],
        Some(&[64510, 15169]),
    ));
    router.write_all(&bytes).unwrap();
    daemon.poll("the BMP route counted", Duration::from_secs(20), |d| {
        let e = d.scrape();
        match e.get("routewatch_bmp_peers_up", &[("router", "edge-doc")]) {
            Some(v) if v >= 1.0 => Ok(()),
            other => Err(format!("peers up {other:?}")),
        }
    });
    // A configuration reload (the reload series) and the DNS lookups for the origins.
    daemon.signal("HUP");
    poll("the reload counted", Duration::from_secs(20), || {
        let text = daemon.get_ok("/metrics").text();
        if text.contains("routewatch_config_reloads_total{result=\"success\"} 1") {
            Ok(())
        } else {
            Err("no reload yet".to_string())
        }
    });
    let text = daemon.get_ok("/metrics").text();
    drop(router);
    daemon.terminate_cleanly();
    let artifacts = repo("target/test-artifacts");
    let _ = std::fs::create_dir_all(&artifacts);
    let _ = std::fs::write(artifacts.join("metrics.txt"), &text);
    text
}

#[test]
fn every_live_metric_and_label_value_is_documented() {
    let doc = read_doc();
    let live = families(&live_exposition());
    let mut problems = Vec::new();
    for (name, (kind, labels, values)) in &live {
        let Some(d) = doc.metrics.get(name) else {
            problems.push(format!(
                "{name} ({kind}, labels {labels:?}) is not documented"
            ));
            continue;
        };
        if &d.kind != kind {
            problems.push(format!(
                "{name}: documented as {}, exported as {kind}",
                d.kind
            ));
        }
        if &d.labels != labels {
            problems.push(format!(
                "{name}: documented labels {:?}, exported {labels:?}",
                d.labels
            ));
        }
        for (label, seen) in values {
            if let Some(documented) = doc.values.get(&(name.clone(), label.clone())) {
                for v in seen.difference(documented) {
                    problems.push(format!("{name}{{{label}=\"{v}\"}} is not documented"));
                }
            }
        }
    }
    for name in doc.metrics.keys() {
        let process = name.starts_with("process_");
        if !process && !names_in_source().contains(name) {
            problems.push(format!("{name} is documented but not in the code"));
        }
    }
    for name in names_in_source() {
        if !doc.metrics.contains_key(&name) {
            problems.push(format!("{name} is in the code but not documented"));
        }
    }
    for (metric, label) in doc.values.keys() {
        match doc.metrics.get(metric) {
            Some(d) if d.labels.contains(label) => {}
            _ => problems.push(format!(
                "values of {metric}{{{label}}}: no such metric label"
            )),
        }
    }
    assert!(
        problems.is_empty(),
        "docs/METRICS.md vs live /metrics:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_codes_label_values_are_documented() {
    use routewatch::engine::AnomalyKind;
    use routewatch::events::store::{DropReason, WriteErrorReason};
    use routewatch::ingest::bmp::MessageType;
    use routewatch::model::Feed;
    use routewatch::rpki::RovState;
    let doc = read_doc();
    let mut problems = Vec::new();
    let mut check = |metric: &str, label: &str, want: Vec<String>| {
        let documented = doc
            .values
            .get(&(metric.to_string(), label.to_string()))
            .cloned()
            .unwrap_or_default();
        for v in want {
            if !documented.contains(&v) {
                problems.push(format!("{metric}{{{label}=\"{v}\"}}"));
            }
        }
    };
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let kinds: Vec<String> = AnomalyKind::ALL
        .iter()
        .map(|k| k.as_str().to_string())
        .collect();
    for m in [
        "routewatch_anomalies_active",
        "routewatch_anomalies_opened_total",
        "routewatch_anomaly_flaps_total",
    ] {
        check(m, "kind", kinds.clone());
    }
    let feeds: Vec<String> = Feed::ALL.iter().map(|f| f.as_str().to_string()).collect();
    for m in [
        "routewatch_routes_processed_total",
        "routewatch_routes_matched_total",
        "routewatch_parse_errors_total",
        "routewatch_feed_last_message_timestamp_seconds",
        "routewatch_feed_peers",
        "routewatch_feed_sessions_down_total",
    ] {
        check(m, "feed", feeds.clone());
    }
    check(
        "routewatch_parse_errors_total",
        "error",
        s(&routewatch::metrics::PARSE_ERROR_LABELS),
    );
    check(
        "routewatch_parse_errors_total",
        "error",
        s(&routewatch::ingest::bmp::metrics::error_labels()),
    );
    check(
        "routewatch_parse_errors_total",
        "error",
        s(&routewatch::ingest::kafka::ERROR_LABELS),
    );
    check(
        "routewatch_kafka_commits_total",
        "result",
        s(&routewatch::ingest::kafka::metrics::COMMIT_RESULTS),
    );
    check(
        "routewatch_kafka_rebalances_total",
        "event",
        s(&routewatch::ingest::kafka::metrics::REBALANCE_EVENTS),
    );
    check(
        "routewatch_mrt_files_processed_total",
        "result",
        s(&routewatch::metrics::MRT_FILE_RESULTS),
    );
    check(
        "routewatch_event_store_errors_total",
        "reason",
        WriteErrorReason::ALL
            .iter()
            .map(|r| r.as_str().to_string())
            .collect(),
    );
    check(
        "routewatch_events_dropped_total",
        "reason",
        DropReason::ALL
            .iter()
            .map(|r| r.as_str().to_string())
            .collect(),
    );
    check(
        "routewatch_bmp_messages_total",
        "type",
        MessageType::ALL
            .iter()
            .map(|t| t.label().to_string())
            .collect(),
    );
    check(
        "routewatch_prefix_rpki_routes",
        "state",
        RovState::ALL
            .iter()
            .map(|r| r.as_str().to_string())
            .collect(),
    );
    check(
        "routewatch_rpki_watch_events_total",
        "kind",
        routewatch::rpki::watch::WatchKind::ALL
            .iter()
            .map(|k| k.as_str().to_string())
            .collect(),
    );
    check(
        "routewatch_bmp_sessions_closed_total",
        "reason",
        s(&routewatch::ingest::bmp::metrics::CLOSE_REASONS),
    );
    check(
        "routewatch_bmp_protocol_oddities_total",
        "kind",
        s(&routewatch::ingest::bmp::session::ANOMALY_KINDS),
    );
    check(
        "routewatch_bmp_sessions_rejected_total",
        "reason",
        s(&routewatch::ingest::bmp::metrics::REJECT_REASONS),
    );
    check(
        "routewatch_notify_failed_total",
        "reason",
        routewatch::notify::sender::Reason::ALL
            .iter()
            .map(|r| r.as_str().to_string())
            .collect(),
    );
    check(
        "routewatch_parse_errors_total",
        "error",
        s(&routewatch::ingest::ris_live::ERROR_LABELS),
    );
    check(
        "routewatch_ris_live_messages_total",
        "type",
        routewatch::ingest::ris_live::metrics::message_type_labels()
            .iter()
            .map(|t| t.to_string())
            .collect(),
    );
    check(
        "routewatch_rtr_errors_total",
        "reason",
        s(&routewatch::rpki::rtr::metrics::ERROR_REASONS),
    );
    check(
        "routewatch_rtr_updates_total",
        "kind",
        s(&routewatch::rpki::rtr::metrics::UPDATE_KINDS),
    );
    check(
        "routewatch_rtr_dropped_total",
        "kind",
        s(&routewatch::rpki::rtr::metrics::DROPPED_KINDS),
    );
    check(
        "routewatch_rtr_pdus_total",
        "type",
        s(&routewatch::rpki::rtr::pdu::TYPE_NAMES),
    );
    check(
        "routewatch_ris_live_reconnects_total",
        "reason",
        routewatch::ingest::ris_live::metrics::reason_labels()
            .iter()
            .map(|t| t.to_string())
            .collect(),
    );
    assert!(
        problems.is_empty(),
        "label values the code has and docs/METRICS.md lacks:\n{}",
        problems.join("\n")
    );
}
