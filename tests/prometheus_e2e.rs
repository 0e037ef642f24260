#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The operations files against the real Prometheus tools (Debian's `prometheus` package):
//!
//! * `config/prometheus/routewatch-alerts.yml` passes `promtool check rules`, and its unit tests
//!   (`routewatch-alerts.test.yml`, every alert firing and resolving) pass `promtool test rules`;
//!   every alert has a unit test and a section in `docs/RUNBOOK.md`;
//! * `config/grafana/routewatch.json` is a provisionable dashboard (fixed uid, a Prometheus
//!   `datasource` variable used by every panel, the job / instance / location / prefix / router
//!   variables);
//! * end to end: `routewatch run` with the demo data (the bundled RIB as a configured file, the
//!   synthetic hijack dropped into the watched directory), the VRP fixture, a recorded Cisco BMP
//!   stream replayed over TCP and a truncated MRT file, scraped every second by a real
//!   `prometheus` that loads the alert rules. Every dashboard query (each variable substituted
//!   the way Grafana does, for one location / prefix / router and for "All") and every alert
//!   expression goes through Prometheus' HTTP API: each must parse, each dashboard query must
//!   return series, and the values and the set of alerts that return data are checked for the
//!   scenario; the alerts become pending in Prometheus with their annotations rendered. Then the
//!   BMP connection closes (session down, its prefix withdrawn) and routewatch stops (down).
//!
//! Everything binds 127.0.0.1 only. Prometheus and routewatch are killed by pid when their guards
//! drop; their logs are printed when the test fails.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

use support::daemon::{free_port, http_get, poll, Daemon};
use support::process::ChildGuard;
use support::{demo_locations, fixture, repo, DaemonConfig, Location, DEMO_RIB, DEMO_UPDATES};

const RULES: &str = "config/prometheus/routewatch-alerts.yml";
const RULE_TESTS: &str = "config/prometheus/routewatch-alerts.test.yml";
const DASHBOARD: &str = "config/grafana/routewatch.json";
const RUNBOOK: &str = "docs/RUNBOOK.md";

/// A Cisco router's BMP stream (pmacct test 204): 343 messages, 7 peers up at the end.
const CAPTURE: &str = "bmp/raw/pmacct__204-BMP-CISCO-peer_down__traffic-00.flow0.bmp";
const CAPTURE_MESSAGES: f64 = 343.0;
/// The name the BMP router (127.0.0.1) gets in `[[bmp.router]]`.
const ROUTER: &str = "edge1";
/// A location for a prefix of the capture (origin AS65000, one peer), which is withdrawn when
/// the BMP connection closes.
fn capture_location() -> Location {
    Location::new("capture-lab", &[65000], &["192.0.2.11/32"])
}

/// How long Prometheus may take to start, scrape, or evaluate a change (1 s intervals here).
const PROM_TIMEOUT: Duration = Duration::from_secs(20);

// ---- the files ---------------------------------------------------------------------------------

/// Runs `promtool` with `args` in the repository, failing clearly when it is not installed.
fn promtool(args: &[&str]) -> Output {
    match Command::new("promtool")
        .args(args)
        .current_dir(repo(""))
        .output()
    {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "promtool is not installed; it checks and unit-tests the alert rules: \
             sudo apt-get install prometheus"
        ),
        Err(e) => panic!("cannot run promtool: {e}"),
    }
}

fn assert_promtool_ok(args: &[&str]) -> String {
    let out = promtool(args);
    let text = format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "promtool {} failed ({}):\n{text}",
        args.join(" "),
        out.status
    );
    text
}

/// The `- alert: Name` entries of the rules file, in order.
fn alert_names() -> Vec<String> {
    let text = std::fs::read_to_string(repo(RULES)).unwrap();
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("- alert:"))
        .map(|n| n.trim().to_string())
        .collect()
}

#[test]
fn alert_rules_pass_promtool_and_every_alert_has_unit_tests_and_a_runbook_section() {
    let names = alert_names();
    assert!(names.len() >= 17, "{names:?}");
    let check = assert_promtool_ok(&["check", "rules", RULES]);
    assert!(
        check.contains(&format!("SUCCESS: {} rules found", names.len())),
        "{check}"
    );
    let tests = assert_promtool_ok(&["test", "rules", RULE_TESTS]);
    assert!(tests.contains("SUCCESS"), "{tests}");

    // `routewatch alert-rules` prints the file as built, or with every runbook_url on another
    // base, which promtool accepts as well.
    let alert_rules = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_routewatch"))
            .arg("alert-rules")
            .args(args)
            .output()
            .unwrap()
    };
    let shipped = alert_rules(&[]);
    assert!(shipped.status.success());
    assert_eq!(
        String::from_utf8(shipped.stdout).unwrap(),
        std::fs::read_to_string(repo(RULES)).unwrap()
    );
    let base = "https://wiki.example.net/ops/routewatch-runbook";
    let moved = alert_rules(&["--runbook-base-url", base]);
    assert!(moved.status.success(), "{moved:?}");
    let moved = String::from_utf8(moved.stdout).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let moved_path = dir.path().join("routewatch-alerts.yml");
    std::fs::write(&moved_path, &moved).unwrap();
    let check = assert_promtool_ok(&["check", "rules", moved_path.to_str().unwrap()]);
    assert!(
        check.contains(&format!("SUCCESS: {} rules found", names.len())),
        "{check}"
    );
    for name in &names {
        let want = format!("runbook_url: \"{base}#{}\"\n", name.to_lowercase());
        assert!(moved.contains(&want), "{name}: no {want:?}");
    }
    let bad = alert_rules(&["--runbook-base-url", "wiki.example.net/runbook"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("must start with http:// or https://"),
        "{bad:?}"
    );

    // Each alert is tested firing (an eval_time with exp_alerts) and absent (exp_alerts: []),
    // and has a runbook section.
    let unit = std::fs::read_to_string(repo(RULE_TESTS)).unwrap();
    let runbook = std::fs::read_to_string(repo(RUNBOOK)).unwrap();
    for name in &names {
        let checks: Vec<&str> = unit
            .split("      - eval_time:")
            .filter(|c| c.contains(&format!("alertname: {name}\n")))
            .collect();
        assert!(
            checks.iter().any(|c| c.contains("exp_alerts: []")),
            "{name}: no eval_time where it is absent"
        );
        assert!(
            checks.iter().any(|c| c.contains("- exp_labels:")),
            "{name}: no eval_time where it fires"
        );
        assert!(
            runbook.contains(&format!("\n### {name}\n")),
            "{RUNBOOK} has no section for {name}"
        );
    }
}

/// Every PromQL expression of the dashboard: (where, expression) for each panel target and each
/// annotation query.
fn dashboard_queries(dash: &Value) -> Vec<(String, String)> {
    fn walk(v: &Value, out: &mut Vec<(String, String)>) {
        let Some(obj) = v.as_object() else { return };
        if let Some(targets) = obj.get("targets").and_then(Value::as_array) {
            let title = obj["title"].as_str().unwrap_or("?");
            for t in targets {
                let expr = t["expr"].as_str().unwrap_or_else(|| panic!("{title}: {t}"));
                out.push((
                    format!("{title} [{}]", t["refId"].as_str().unwrap()),
                    expr.into(),
                ));
            }
        }
        for p in obj
            .get("panels")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            walk(p, out);
        }
    }
    let mut out = Vec::new();
    for p in dash["panels"].as_array().unwrap() {
        walk(p, &mut out);
    }
    for a in dash["annotations"]["list"].as_array().unwrap() {
        if let Some(expr) = a["expr"].as_str() {
            out.push((format!("annotation {}", a["name"]), expr.into()));
        }
    }
    out
}

fn load_dashboard() -> Value {
    serde_json::from_str(&std::fs::read_to_string(repo(DASHBOARD)).unwrap()).unwrap()
}

/// The dashboard's template variables by name.
fn variables(dash: &Value) -> BTreeMap<String, Value> {
    dash["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["name"].as_str().unwrap().to_string(), v.clone()))
        .collect()
}

#[test]
fn dashboard_is_a_provisionable_grafana_dashboard_on_a_prometheus_datasource_variable() {
    let dash = load_dashboard();
    assert_eq!(dash["uid"], "routewatch");
    assert!(dash["id"].is_null(), "no instance-specific id");
    let schema = dash["schemaVersion"].as_u64().unwrap();
    assert!((36..=41).contains(&schema), "schemaVersion {schema}");

    let vars = variables(&dash);
    assert_eq!(vars["datasource"]["type"], "datasource");
    assert_eq!(vars["datasource"]["query"], "prometheus");
    let ds = serde_json::json!({"type": "prometheus", "uid": "${datasource}"});
    for name in ["job", "instance", "location", "prefix", "router"] {
        let v = &vars[name];
        assert_eq!(v["type"], "query", "{name}");
        assert_eq!(v["datasource"], ds, "{name}");
        let q = v["definition"].as_str().unwrap();
        assert!(
            q.starts_with("label_values(") && q.ends_with(&format!(", {name})")),
            "{q}"
        );
        assert_eq!(v["query"], v["definition"], "{name}");
        if name != "job" {
            assert_eq!(v["includeAll"], true, "{name}");
            assert_eq!(v["allValue"], ".*", "{name}");
        }
    }

    // Every panel (rows aside) reads the variable's data source, ids and grid cells are unique.
    let mut ids = BTreeSet::new();
    let mut titles = BTreeSet::new();
    let mut cells = BTreeMap::new();
    let mut rows = Vec::new();
    for p in dash["panels"].as_array().unwrap() {
        let title = p["title"].as_str().unwrap();
        assert!(
            ids.insert(p["id"].as_u64().unwrap()),
            "{title}: id repeated"
        );
        assert!(titles.insert(title), "{title}: title repeated");
        let g = &p["gridPos"];
        let [x, y, w, h] = ["x", "y", "w", "h"].map(|k| g[k].as_u64().unwrap());
        assert!(x + w <= 24, "{title}: {g}");
        for cy in y..y + h {
            for cx in x..x + w {
                if let Some(other) = cells.insert((cx, cy), title) {
                    panic!("{title} overlaps {other}");
                }
            }
        }
        if p["type"] == "row" {
            rows.push(title);
            continue;
        }
        assert_eq!(p["datasource"], ds, "{title}");
        let targets = p["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{title}");
        for t in targets {
            assert_eq!(t["datasource"], ds, "{title}");
        }
    }
    assert_eq!(
        rows,
        [
            "Overview",
            "Feed health",
            "Prefix drill-down ($location / $prefix)",
            "BMP ($router)",
            "Event store, RPKI and route leaks"
        ]
    );
    assert!(dashboard_queries(&dash).len() >= 30);

    let providers =
        std::fs::read_to_string(repo("config/grafana/provisioning/dashboards.yml")).unwrap();
    assert!(providers.contains("apiVersion: 1") && providers.contains("type: file"));
    let sources =
        std::fs::read_to_string(repo("config/grafana/provisioning/datasources.yml")).unwrap();
    assert!(sources.contains("apiVersion: 1") && sources.contains("type: prometheus"));
}

// ---- Prometheus -------------------------------------------------------------------------------

/// A running `prometheus` on 127.0.0.1 (a [`ChildGuard`]: killed by pid when dropped, its log
/// printed if the test is failing).
struct Prometheus {
    process: ChildGuard,
    port: u16,
}

impl Prometheus {
    /// Starts Prometheus with its data in `dir`, scraping routewatch on `target_port` every
    /// second as job "routewatch" and evaluating `rules` every second; waits until it is ready.
    fn start(dir: &Path, rules: &Path, target_port: u16) -> Prometheus {
        let port = free_port();
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
                 rule_files:\n  - {rules:?}\n\
                 scrape_configs:\n  - job_name: routewatch\n    static_configs:\n      \
                 - targets: [\"127.0.0.1:{target_port}\"]\n"
            ),
        )
        .unwrap();
        let process = ChildGuard::start(
            "prometheus",
            Command::new("prometheus")
                .arg(format!("--config.file={}", config.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.join("tsdb").display()
                ))
                .arg(format!("--web.listen-address=127.0.0.1:{port}")),
            Some(&dir.join("prometheus.log")),
            "sudo apt-get install prometheus",
        );
        let mut p = Prometheus { process, port };
        p.wait("Prometheus ready", |p| match http_get(p.port, "/-/ready") {
            Ok(r) if r.status == 200 => Ok(()),
            Ok(r) => Err(format!("/-/ready: {} {}", r.status, r.text())),
            Err(e) => Err(e.to_string()),
        });
        p
    }

    fn assert_running(&mut self) {
        self.process.assert_running();
    }

    /// GET `path` of the HTTP API, as JSON (whatever the status).
    fn api(&mut self, path: &str) -> Value {
        self.assert_running();
        let r = http_get(self.port, path).unwrap_or_else(|e| panic!("GET {path}: {e}"));
        serde_json::from_slice(&r.body)
            .unwrap_or_else(|e| panic!("GET {path}: {} {e}: {}", r.status, r.text()))
    }

    /// An instant query: its samples, or the API's error.
    fn query(&mut self, expr: &str) -> Result<Vec<Value>, String> {
        let answer = self.api(&format!("/api/v1/query?query={}", url_encode(expr)));
        if answer["status"] != "success" {
            return Err(format!("{}: {}", answer["errorType"], answer["error"]));
        }
        let data = &answer["data"];
        if data["resultType"] != "vector" {
            return Err(format!("result type {}", data["resultType"]));
        }
        Ok(data["result"].as_array().unwrap().clone())
    }

    /// [`Prometheus::query`] that must succeed.
    fn samples(&mut self, expr: &str) -> Vec<Value> {
        self.query(expr)
            .unwrap_or_else(|e| panic!("query {expr}: {e}"))
    }

    /// [`poll`]s `probe` while Prometheus runs, for at most [`PROM_TIMEOUT`].
    fn wait<T>(&mut self, what: &str, mut probe: impl FnMut(&mut Self) -> Result<T, String>) -> T {
        poll(what, PROM_TIMEOUT, || {
            self.assert_running();
            probe(self)
        })
    }

    /// Waits until `expr` returns exactly one sample, of value `want`.
    fn wait_value(&mut self, expr: &str, want: f64) {
        self.wait(&format!("{expr} == {want}"), |p| {
            let s = p.samples(expr);
            match s.as_slice() {
                [one] if value(one) == want => Ok(()),
                _ => Err(format!("{s:?}")),
            }
        });
    }

    /// The alerting rules Prometheus loaded: (name, rule).
    fn alerting_rules(&mut self) -> Vec<(String, Value)> {
        let rules = self.api("/api/v1/rules?type=alert");
        assert_eq!(rules["status"], "success", "{rules}");
        rules["data"]["groups"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|g| g["rules"].as_array().unwrap().clone())
            .map(|r| (r["name"].as_str().unwrap().to_string(), r))
            .collect()
    }

    /// Waits until Prometheus has an active (pending or firing) alert `name` whose labels include
    /// `labels`; returns it.
    fn wait_alert(&mut self, name: &str, labels: &[(&str, &str)]) -> Value {
        self.wait(&format!("alert {name}{labels:?} active"), |p| {
            let alerts = p.api("/api/v1/alerts");
            let all = alerts["data"]["alerts"].as_array().unwrap();
            all.iter()
                .find(|a| {
                    a["labels"]["alertname"] == name
                        && labels.iter().all(|(k, v)| a["labels"][*k] == *v)
                        && (a["state"] == "pending" || a["state"] == "firing")
                })
                .cloned()
                .ok_or_else(|| format!("active alerts: {all:?}"))
        })
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The value of an instant-vector sample.
fn value(sample: &Value) -> f64 {
    sample["value"][1].as_str().unwrap().parse().unwrap()
}

fn label<'a>(sample: &'a Value, name: &str) -> &'a str {
    sample["metric"][name].as_str().unwrap_or("")
}

// ---- Grafana's variable substitution ----------------------------------------------------------

/// What Grafana's Prometheus data source does to a single value of a multi-value or "include
/// All" variable (`prometheusSpecialRegexEscape`): regex metacharacters get a backslash, written
/// as `\\` inside the PromQL string.
fn grafana_regex_escape(v: &str) -> String {
    let mut out = String::new();
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\\\\\"),
            '$' | '^' | '*' | '{' | '}' | '[' | ']' | '\'' | '+' | '?' | '.' | '(' | ')' | '|' => {
                out.push_str("\\\\");
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}

/// A selection of the dashboard's variables, as substituted text.
struct Selection {
    name: &'static str,
    values: Vec<(&'static str, String)>,
}

impl Selection {
    /// One value per variable: `job` as is (single-value variable), the others escaped.
    fn one(name: &'static str, instance: &str, location: &str, prefix: &str) -> Selection {
        Selection {
            name,
            values: vec![
                ("$job", "routewatch".into()),
                ("$instance", grafana_regex_escape(instance)),
                ("$location", grafana_regex_escape(location)),
                ("$prefix", grafana_regex_escape(prefix)),
                ("$router", grafana_regex_escape(ROUTER)),
            ],
        }
    }

    /// "All" for every variable but `job`: their `allValue`, `.*`.
    fn all() -> Selection {
        Selection {
            name: "All",
            values: vec![
                ("$job", "routewatch".into()),
                ("$instance", ".*".into()),
                ("$location", ".*".into()),
                ("$prefix", ".*".into()),
                ("$router", ".*".into()),
            ],
        }
    }

    fn apply(&self, expr: &str) -> String {
        // Grafana's interval variables: 4 × the 1 s scrape interval is below 1m, so 1m; the
        // dashboard's range is at least the test's duration.
        let mut out = expr
            .replace("$__rate_interval", "1m")
            .replace("$__range", "1h");
        for (var, v) in &self.values {
            out = out.replace(var, v);
        }
        assert!(!out.contains('$'), "unknown variable left in {out}");
        out
    }
}

/// The dashboard query of `panel` (its title and refId, "Title [A]"), with `sel` applied.
fn panel_query(dash: &Value, panel: &str, sel: &Selection) -> String {
    let queries = dashboard_queries(dash);
    let (_, expr) = queries
        .iter()
        .find(|(w, _)| w == panel)
        .unwrap_or_else(|| panic!("no dashboard query {panel}"));
    sel.apply(expr)
}

/// `label_values(SELECTOR, LABEL)` of a variable, as the distinct values Prometheus returns.
fn variable_values(prom: &mut Prometheus, var: &Value, sel: &Selection) -> BTreeSet<String> {
    let def = var["definition"].as_str().unwrap();
    let inner = def
        .strip_prefix("label_values(")
        .and_then(|s| s.strip_suffix(')'))
        .unwrap();
    let (selector, label_name) = inner.rsplit_once(',').unwrap();
    let samples = prom.samples(&sel.apply(selector.trim()));
    samples
        .iter()
        .map(|s| label(s, label_name.trim()).to_string())
        .collect()
}

// ---- the scenario -----------------------------------------------------------------------------

/// Values of a sample set keyed by the given labels, joined by " ".
fn by(samples: &[Value], labels: &[&str]) -> BTreeMap<String, f64> {
    samples
        .iter()
        .map(|s| {
            let key: Vec<&str> = labels.iter().map(|l| label(s, l)).collect();
            (key.join(" "), value(s))
        })
        .collect()
}

/// Copies `bytes` into `dir` as `name`, under a hidden name first so the watcher never reads a
/// partial file.
fn drop_file(dir: &Path, name: &str, bytes: &[u8]) {
    let hidden = dir.join(format!(".{name}.partial"));
    std::fs::write(&hidden, bytes).unwrap();
    std::fs::rename(&hidden, dir.join(name)).unwrap();
}

/// For every alerting rule Prometheus loaded, whether its expression returns data now; each must
/// parse.
fn alerts_with_data(prom: &mut Prometheus) -> BTreeMap<String, Vec<Value>> {
    let rules = prom.alerting_rules();
    let mut out = BTreeMap::new();
    for (name, rule) in rules {
        let expr = rule["query"].as_str().unwrap();
        let samples = prom
            .query(expr)
            .unwrap_or_else(|e| panic!("alert {name}: {expr}: {e}"));
        if !samples.is_empty() {
            out.insert(name, samples);
        }
    }
    out
}

fn names(alerts: &BTreeMap<String, Vec<Value>>) -> Vec<&str> {
    alerts.keys().map(String::as_str).collect()
}

/// (location, prefix) of each sample.
fn places(samples: &[Value]) -> BTreeSet<(String, String)> {
    samples
        .iter()
        .map(|s| (label(s, "location").into(), label(s, "prefix").into()))
        .collect()
}

fn place(location: &str, prefix: &str) -> (String, String) {
    (location.into(), prefix.into())
}

#[test]
fn dashboard_and_alert_queries_return_the_demo_scenario_through_a_real_prometheus() {
    let started = Instant::now();
    let dash = load_dashboard();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();

    // routewatch: the demo registry plus a location for a prefix of the BMP capture; the RIB as
    // a configured file, a watched directory, a BMP listener with a named router, the VRPs.
    let watch_dir = dir.join("watch");
    std::fs::create_dir(&watch_dir).unwrap();
    let config = DaemonConfig::new()
        .mrt_files(&[fixture(DEMO_RIB)])
        .watch_dir(&watch_dir, 1)
        .bmp(&format!(
            "allow = [\"127.0.0.0/8\"]\ninitial-table-timeout-seconds = 1\n\n\
             [[bmp.router]]\naddress = \"127.0.0.1\"\nname = \"{ROUTER}\"\n"
        ))
        .rpki(&fixture("rpki/routinator.json"), "")
        // A short hold-down: the session-down step below waits it out.
        .section("anomalies", "hold-down-seconds = 1\n")
        .locations_toml(&demo_locations())
        .location(capture_location())
        .write(dir);
    let (http_port, bmp_port) = (config.http_port.unwrap(), config.bmp_port.unwrap());
    let mut daemon = Daemon::start(&config);
    daemon.wait_ready();
    let instance = format!("127.0.0.1:{http_port}");

    let prom_dir = dir.join("prometheus");
    std::fs::create_dir(&prom_dir).unwrap();
    let mut prom = Prometheus::start(&prom_dir, &repo(RULES), http_port);
    prom.wait_value(r#"up{job="routewatch"}"#, 1.0);
    // The baseline (RIB only) is in the TSDB before anything else happens, so that the
    // increases and rates below see the scenario's changes.
    prom.wait_value(
        r#"routewatch_mrt_files_processed_total{result="parse_errors"}"#,
        1.0,
    );
    let loaded = prom.alerting_rules();
    // Prometheus lists the groups by name, the file has them in its own order.
    let mut loaded_names: Vec<&str> = loaded.iter().map(|(n, _)| n.as_str()).collect();
    loaded_names.sort_unstable();
    let mut in_file = alert_names();
    in_file.sort_unstable();
    assert_eq!(loaded_names, in_file, "Prometheus loaded every rule");
    let runbook = std::fs::read_to_string(repo(RUNBOOK)).unwrap();
    // The runbook routewatch serves (unauthenticated HTML): every runbook_url's anchor is the id
    // of the alert's heading there.
    let page = http_get(http_port, "/runbook").unwrap();
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let page = page.text();
    for (name, rule) in &loaded {
        let severity = rule["labels"]["severity"].as_str().unwrap_or("");
        assert!(
            ["critical", "warning", "info"].contains(&severity),
            "{name}: severity {severity:?}"
        );
        for key in ["summary", "description", "first_steps", "runbook_url"] {
            assert!(
                rule["annotations"][key]
                    .as_str()
                    .is_some_and(|s| s.len() > 10),
                "{name}: annotation {key}"
            );
        }
        let anchor = name.to_lowercase();
        let url = rule["annotations"]["runbook_url"].as_str().unwrap();
        assert!(
            url.starts_with("http://{{ ") && url.ends_with(&format!("}}/runbook#{anchor}")),
            "{name}: runbook_url {url}"
        );
        assert!(
            page.contains(&format!("<h3 id=\"{anchor}\">{name}</h3>")),
            "{name}: /runbook has no heading with id {anchor}"
        );
        assert!(runbook.contains(&format!("\n### {name}\n")), "{name}");
    }

    // The scenario: a recorded router stream over BMP (the connection stays open), the demo
    // hijack and then a truncated MRT file into the watched directory (read in name order).
    let mut bmp = TcpStream::connect(("127.0.0.1", bmp_port)).unwrap();
    bmp.write_all(&std::fs::read(fixture(CAPTURE)).unwrap())
        .unwrap();
    drop_file(
        &watch_dir,
        "demo-hijack.updates.mrt",
        &std::fs::read(fixture(DEMO_UPDATES)).unwrap(),
    );
    // An MRT header announcing a 1000-byte BGP4MP_MESSAGE_AS4 record, then 10 bytes.
    let mut truncated = Vec::new();
    truncated.extend_from_slice(&1_400_825_000u32.to_be_bytes());
    truncated.extend_from_slice(&16u16.to_be_bytes());
    truncated.extend_from_slice(&4u16.to_be_bytes());
    truncated.extend_from_slice(&1000u32.to_be_bytes());
    truncated.extend_from_slice(&[0; 10]);
    drop_file(&watch_dir, "zz-truncated.updates.mrt", &truncated);
    prom.wait_value(r#"routewatch_mrt_files_processed_total{result="ok"}"#, 1.0);
    prom.wait_value(
        r#"routewatch_mrt_files_processed_total{result="parse_errors"}"#,
        2.0,
    );
    prom.wait_value(
        &format!(r#"sum(routewatch_bmp_messages_total{{router="{ROUTER}"}})"#),
        CAPTURE_MESSAGES,
    );
    prom.wait_value(
        &format!(r#"routewatch_bmp_session_up{{router="{ROUTER}"}}"#),
        1.0,
    );
    daemon.assert_running();

    // ---- the dashboard ----
    let all = Selection::all();
    let google = Selection::one(
        "google-dns 8.8.8.0/24",
        &instance,
        "google-dns",
        "8.8.8.0/24",
    );
    let cernet = Selection::one("cernet-beijing", &instance, "cernet-beijing", "1.2.4.0/24");
    let vars = variables(&dash);
    let set = |v: &[&str]| -> BTreeSet<String> { v.iter().map(|s| s.to_string()).collect() };
    assert_eq!(
        variable_values(&mut prom, &vars["job"], &all),
        set(&["routewatch"])
    );
    assert_eq!(
        variable_values(&mut prom, &vars["instance"], &all),
        set(&[&instance])
    );
    assert_eq!(
        variable_values(&mut prom, &vars["location"], &all),
        set(&[
            "apnic-labs",
            "att-customer",
            "capture-lab",
            "cernet-beijing",
            "google-dns"
        ])
    );
    assert_eq!(
        variable_values(&mut prom, &vars["prefix"], &google),
        set(&["8.8.4.0/24", "8.8.8.0/24"])
    );
    assert_eq!(
        variable_values(&mut prom, &vars["router"], &all),
        set(&[ROUTER])
    );

    // Every query parses; with "All" every one returns data, and with one location, prefix and
    // router every one but the table of open anomalies (8.8.8.0/24's hijacks are resolved).
    // The RTR panel is the exception: the scenario has no RTR cache, so its series do not exist
    // (its metric names are checked against a live daemon with StayRTR in tests/rtr.rs).
    let queries = dashboard_queries(&dash);
    let mut report = Vec::new();
    for sel in [&all, &google] {
        for (panel, expr) in &queries {
            let expr = sel.apply(expr);
            let samples = prom
                .query(&expr)
                .unwrap_or_else(|e| panic!("{panel} ({}): {expr}: {e}", sel.name));
            report.push(format!("{} | {panel}: {} series", sel.name, samples.len()));
            let may_be_empty = (sel.name != "All" && panel == "Open anomalies [A]")
                || panel.starts_with("RTR sessions and data");
            assert!(
                !samples.is_empty() || may_be_empty,
                "{panel} ({}) returns no data: {expr}",
                sel.name
            );
        }
    }
    eprintln!("{} dashboard queries:\n{}", report.len(), report.join("\n"));

    let q = |prom: &mut Prometheus, panel: &str, sel: &Selection, keys: &[&str]| {
        by(&prom.samples(&panel_query(&dash, panel, sel)), keys)
    };
    let one = |m: BTreeMap<String, f64>| -> f64 {
        assert_eq!(m.len(), 1, "{m:?}");
        *m.values().next().unwrap()
    };
    // Overview.
    assert_eq!(
        q(&mut prom, "Open anomalies by kind [A]", &cernet, &["kind"]),
        [
            ("as_set_origin", 0.0),
            ("moas", 1.0),
            ("origin_mismatch", 1.0),
            ("route_leak", 0.0),
            ("rpki_invalid", 0.0),
            ("subprefix_hijack", 0.0),
            ("unexpected_more_specific", 0.0),
            ("unexpected_upstream", 0.0),
            ("visibility_lost", 0.0),
            ("withdrawn", 0.0),
        ]
        .map(|(k, v)| (k.to_string(), v))
        .into_iter()
        .collect::<BTreeMap<_, _>>()
    );
    let open = q(
        &mut prom,
        "Open anomalies [A]",
        &all,
        &["location", "prefix", "kind"],
    );
    let open_keys: Vec<&str> = open.keys().map(String::as_str).collect();
    assert_eq!(
        open_keys,
        [
            "apnic-labs 1.0.0.0/24 rpki_invalid",
            "att-customer 12.0.120.0/24 moas",
            "att-customer 12.0.120.0/24 origin_mismatch",
            "att-customer 12.0.120.0/24 unexpected_upstream",
            "capture-lab 192.0.2.11/32 rpki_invalid",
            "cernet-beijing 1.2.4.0/24 moas",
            "cernet-beijing 1.2.4.0/24 origin_mismatch",
        ],
        "{open:?}"
    );
    let opened = q(
        &mut prom,
        "Anomalies opened in the time range [A]",
        &all,
        &["location", "prefix", "kind"],
    );
    for hijack in [
        "google-dns 8.8.8.0/24 origin_mismatch",
        "google-dns 8.8.8.0/24 subprefix_hijack",
        "apnic-labs 1.0.0.0/24 origin_mismatch",
    ] {
        assert!(opened.get(hijack).is_some_and(|v| *v >= 1.0), "{opened:?}");
    }
    let visibility = q(&mut prom, "Visibility per prefix [A]", &all, &["prefix"]);
    assert_eq!(visibility["8.8.8.0/24"], 33.0, "{visibility:?}");
    assert_eq!(visibility["192.0.2.11/32"], 1.0, "{visibility:?}");
    let churn = q(&mut prom, "Path churn [A]", &google, &["prefix"]);
    assert!(
        one(churn) > 0.0,
        "AT&T's path went to the hijacker and back"
    );
    // Feed health.
    let routes = q(&mut prom, "Routes processed [A]", &all, &["feed"]);
    assert!(
        routes["bmp"] > 0.0 && routes.contains_key("mrt"),
        "{routes:?}"
    );
    let errors = q(&mut prom, "Parse errors [A]", &all, &["feed", "error"]);
    let error_keys: Vec<&str> = errors.keys().map(String::as_str).collect();
    assert_eq!(error_keys, ["mrt truncated_stream"], "the truncated file");
    let age = q(&mut prom, "Last message age [A]", &all, &["feed"]);
    assert!(
        age["mrt"] > 10.0 * 365.0 * 86400.0,
        "the 2014 replay: {age:?}"
    );
    assert!(age.contains_key("bmp"), "{age:?}");
    assert_eq!(
        q(&mut prom, "MRT files processed [A]", &all, &["result"]),
        [("failed", 0.0), ("ok", 1.0), ("parse_errors", 2.0)]
            .map(|(k, v)| (k.to_string(), v))
            .into_iter()
            .collect::<BTreeMap<_, _>>()
    );
    // Prefix drill-down.
    assert_eq!(
        one(q(&mut prom, "Visibility [A]", &google, &["prefix"])),
        33.0
    );
    assert_eq!(
        one(q(&mut prom, "Origin ASes [A]", &google, &["prefix"])),
        1.0
    );
    let announcements = q(&mut prom, "Announcements and withdrawals [A]", &google, &[]);
    assert!(
        one(announcements) > 0.0,
        "3 announcements in the last minute"
    );
    let withdrawals = q(&mut prom, "Announcements and withdrawals [B]", &google, &[]);
    assert!(one(withdrawals) > 0.0, "the /25 was withdrawn");
    assert!(one(q(&mut prom, "Path changes [A]", &google, &[])) >= 2.0);
    let rpki = q(&mut prom, "RPKI state of routes [A]", &google, &["state"]);
    assert_eq!(
        rpki,
        [
            ("invalid_length", 0.0),
            ("invalid_origin", 0.0),
            ("not_found", 0.0),
            ("valid", 33.0)
        ]
        .map(|(k, v)| (k.to_string(), v))
        .into_iter()
        .collect::<BTreeMap<_, _>>()
    );
    let rpki_apnic = by(
        &prom.samples(&panel_query(
            &dash,
            "RPKI state of routes [A]",
            &Selection::one("apnic-labs", &instance, "apnic-labs", "1.0.0.0/24"),
        )),
        &["state"],
    );
    assert_eq!(
        rpki_apnic["invalid_origin"], 32.0,
        "ROA for AS13335, origin AS15169"
    );
    let opened_google = q(&mut prom, "Anomalies opened [A]", &google, &["kind"]);
    for kind in ["origin_mismatch", "subprefix_hijack", "moas"] {
        assert!(opened_google.contains_key(kind), "{opened_google:?}");
    }
    // BMP.
    assert_eq!(
        one(q(&mut prom, "BMP session [A]", &google, &["router"])),
        1.0
    );
    assert_eq!(
        one(q(&mut prom, "Monitored peers up [A]", &google, &["router"])),
        7.0
    );
    let messages = q(&mut prom, "BMP messages by type [A]", &google, &["type"]);
    assert!(messages["route_monitoring"] > 0.0, "{messages:?}");
    assert!(one(q(&mut prom, "BMP bytes received [A]", &google, &["router"])) > 0.0);
    // Event store and RPKI.
    assert!(one(q(&mut prom, "RPKI [A]", &all, &[])) == 8.0, "8 VRPs");

    // ---- the alerts ----
    // Which alert expressions return data in this scenario, and for what.
    let active = alerts_with_data(&mut prom);
    assert_eq!(
        names(&active),
        [
            // The recorded BMP stream carries 2024 BGP times: replayed, it looks silent.
            "RoutewatchFeedSilent",
            // AS64666 hijacked 8.8.8.0/24, 8.8.8.0/25 and 1.0.0.0/24, all resolved.
            "RoutewatchHijackShortLived",
            "RoutewatchMoas",
            // The truncated file.
            "RoutewatchParseErrorsRising",
            "RoutewatchPrefixHijack",
            "RoutewatchRpkiInvalid",
            "RoutewatchUnexpectedUpstream",
        ]
    );
    let cernet_att = [
        place("att-customer", "12.0.120.0/24"),
        place("cernet-beijing", "1.2.4.0/24"),
    ];
    assert_eq!(
        places(&active["RoutewatchPrefixHijack"]),
        BTreeSet::from(cernet_att.clone())
    );
    assert_eq!(
        places(&active["RoutewatchMoas"]),
        BTreeSet::from(cernet_att)
    );
    assert_eq!(
        places(&active["RoutewatchUnexpectedUpstream"]),
        BTreeSet::from([place("att-customer", "12.0.120.0/24")])
    );
    assert_eq!(
        places(&active["RoutewatchRpkiInvalid"]),
        BTreeSet::from([
            place("apnic-labs", "1.0.0.0/24"),
            place("capture-lab", "192.0.2.11/32")
        ])
    );
    let short: BTreeSet<String> = active["RoutewatchHijackShortLived"]
        .iter()
        .map(|s| {
            format!(
                "{} {} {}",
                label(s, "location"),
                label(s, "prefix"),
                label(s, "kind")
            )
        })
        .collect();
    assert_eq!(
        short,
        set(&[
            "apnic-labs 1.0.0.0/24 origin_mismatch",
            "google-dns 8.8.8.0/24 origin_mismatch",
            "google-dns 8.8.8.0/24 subprefix_hijack"
        ])
    );
    let silent = &active["RoutewatchFeedSilent"];
    assert_eq!(silent.len(), 1);
    assert_eq!(
        label(&silent[0], "feed"),
        "bmp",
        "the old MRT replay is not silent"
    );

    // Prometheus evaluates them: pending (their `for:` has not passed), annotations rendered.
    let hijack = prom.wait_alert(
        "RoutewatchPrefixHijack",
        &[("location", "cernet-beijing"), ("prefix", "1.2.4.0/24")],
    );
    assert_eq!(hijack["labels"]["severity"], "critical");
    assert_eq!(hijack["labels"]["instance"], instance.as_str());
    let description = hijack["annotations"]["description"].as_str().unwrap();
    assert!(
        description.starts_with(
            "1 open origin_mismatch instance(s) on 1.2.4.0/24 of location cernet-beijing"
        ),
        "{description}"
    );
    let hint = hijack["annotations"]["first_steps"].as_str().unwrap();
    assert!(
        hint.contains(&format!("http://{instance}/api/v1/anomalies")),
        "{hint}"
    );
    // The rendered runbook_url is this routewatch's /runbook, at the alert's section.
    assert_eq!(
        hijack["annotations"]["runbook_url"],
        format!("http://{instance}/runbook#routewatchprefixhijack").as_str()
    );
    let moas = prom.wait_alert("RoutewatchMoas", &[("location", "cernet-beijing")]);
    assert_eq!(moas["labels"]["severity"], "warning");
    // No `for:`: firing at once.
    let parse = prom.wait_alert("RoutewatchParseErrorsRising", &[("feed", "mrt")]);
    assert_eq!(parse["state"], "firing", "{parse}");
    assert_eq!(parse["labels"]["error"], "truncated_stream");

    // ---- the BMP connection closes: session down, the capture's prefix withdrawn ----
    drop(bmp);
    prom.wait_value(
        &format!(r#"routewatch_bmp_session_up{{router="{ROUTER}"}}"#),
        0.0,
    );
    prom.wait_value(
        r#"routewatch_anomalies_active{location="capture-lab", kind="withdrawn"}"#,
        1.0,
    );
    // The capture's RPKI-invalid route went with the session (at the wall-clock time the
    // session closed); its anomaly resolves once the 1 s hold-down has passed.
    prom.wait_value(
        r#"routewatch_anomalies_active{location="capture-lab", kind="rpki_invalid"}"#,
        0.0,
    );
    let active = alerts_with_data(&mut prom);
    let down = &active["RoutewatchBmpSessionDown"];
    assert_eq!(down.len(), 1, "{down:?}");
    assert_eq!(label(&down[0], "router"), ROUTER);
    assert_eq!(
        places(&active["RoutewatchPrefixWithdrawn"]),
        BTreeSet::from([place("capture-lab", "192.0.2.11/32")])
    );
    assert_eq!(
        places(&active["RoutewatchRpkiInvalid"]),
        BTreeSet::from([place("apnic-labs", "1.0.0.0/24")]),
        "the capture's invalid route went with the session"
    );
    let session = prom.wait_alert("RoutewatchBmpSessionDown", &[("router", ROUTER)]);
    assert!(
        session["annotations"]["summary"]
            .as_str()
            .unwrap()
            .contains(ROUTER),
        "{session}"
    );
    prom.wait_alert("RoutewatchPrefixWithdrawn", &[("location", "capture-lab")]);

    // ---- routewatch stops: down ----
    let status = daemon.terminate();
    assert_eq!(status.code(), Some(0), "{}", daemon.log());
    prom.wait_value(r#"up{job="routewatch"}"#, 0.0);
    let active = alerts_with_data(&mut prom);
    assert!(
        active.contains_key("RoutewatchDown"),
        "{:?}",
        names(&active)
    );
    assert!(!active.contains_key("RoutewatchTargetMissing"));
    let alert = prom.wait_alert("RoutewatchDown", &[("instance", &instance)]);
    assert_eq!(alert["labels"]["severity"], "critical");

    eprintln!("end-to-end scenario took {:?}", started.elapsed());
}
