#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The JSON API held to its OpenAPI document (`docs/openapi.json`, served at
//! `/api/v1/openapi.json`) on a live daemon with real data: the demo RIB and hijack updates
//! (prefixes, open and resolving anomalies, stored events), a BMP router with a peer (status),
//! and bearer tokens (the 401s).
//!
//! Two independent checks: every endpoint fetched here and its answer validated against the
//! document's schemas by a small validator (types, required and unknown fields, enums, `$ref`,
//! `oneOf`, the time format), with what a user would check of the content (filters,
//! `first_seen ≤ last_seen`, AS paths as arrays, RFC 3339 times); and schemathesis
//! (`pip install schemathesis==4.32.5`, see `.ci/run`) run against the same daemon: generated
//! valid and invalid requests, every response checked for a documented status code, content
//! type, headers and schema conformance, invalid input refused, authentication enforced.

mod support;

use std::io::Write;
use std::net::{Ipv4Addr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::bmp::{connect_from, initiation, peer_up, route_monitoring_at, ROUTER_AS};
use support::daemon::{http_request_with, Daemon, HttpResponse};
use support::{demo_locations, fixture, repo, DaemonConfig, DEMO_RIB, DEMO_RIB_TIME, DEMO_UPDATES};

const TOKEN: &str = "conformance-token-0123456789abcdef";

/// The schemathesis version `.ci/run` installs (its CLI flags differ between versions).
const SCHEMATHESIS_VERSION: &str = "4.32.5";

/// How long schemathesis may run before the test gives up on it (it takes far less).
const SCHEMATHESIS_TIMEOUT: Duration = Duration::from_secs(240);

/// Fields drop in order: the daemon (its log printed on failure) before its directory.
struct Live {
    daemon: Daemon,
    /// The BMP router's session, kept open while the API is checked.
    _router: TcpStream,
    _dir: tempfile::TempDir,
}

impl Live {
    fn get(&mut self, path: &str) -> HttpResponse {
        self.daemon.assert_running();
        let bearer = format!("Bearer {TOKEN}");
        http_request_with(
            self.daemon.port,
            "GET",
            path,
            &[("Authorization", bearer.as_str())],
        )
        .unwrap_or_else(|e| panic!("GET {path}: {e}\n{}", self.daemon.log()))
    }

    fn json(&mut self, path: &str) -> Value {
        let r = self.get(path);
        assert_eq!(r.status, 200, "GET {path}: {}", r.text());
        r.json()
    }
}

/// A daemon with the demo RIB and updates read at start, anomalies held an hour after they
/// lose their carriers (so some are `resolving`), the event store, bearer tokens and a BMP
/// router with one peer.
fn start() -> Live {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, format!("{TOKEN}\n")).unwrap();
    let config = DaemonConfig::new()
        .mrt_files(&[fixture(DEMO_RIB), fixture(DEMO_UPDATES)])
        .section("anomalies", "hold-down-seconds = 3600\n")
        .http(&format!(
            "token-file = {}\nmax-api-requests = 64",
            support::daemon::toml_path(&tokens)
        ))
        .bmp("initial-table-timeout-seconds = 1\n")
        .locations_toml(&demo_locations());
    let file = config.write(dir.path());
    let mut daemon = Daemon::start(&file);
    daemon.wait_ready();

    let mut router = connect_from(Ipv4Addr::LOCALHOST, file.bmp_port.unwrap());
    let peer = Ipv4Addr::new(192, 0, 2, 1);
    for m in [
        initiation("conformance-router"),
        peer_up(peer, 64510, ROUTER_AS),
        // Timed just after the demo updates: a later BGP time would end their hold-downs.
        route_monitoring_at(
            peer,
            64510,
            [8, 8, 8],
            Some(&[64510, 15169]),
            DEMO_RIB_TIME as u32 + 700,
        ),
    ] {
        router.write_all(&m).unwrap();
    }
    let mut live = Live {
        _dir: dir,
        daemon,
        _router: router,
    };
    // The router's peer up, and the updates' events stored (the store commits within 1 s).
    support::daemon::poll(
        "the BMP peer and the stored events",
        Duration::from_secs(30),
        || {
            let status = live.json("/api/v1/status");
            let events = live.json("/api/v1/events?limit=1");
            let peers = status["routers"][0]["peers"].as_array().map_or(0, Vec::len);
            if peers == 1 && events["events"].as_array().is_some_and(|e| !e.is_empty()) {
                Ok(())
            } else {
                Err(format!("{status}\n{events}"))
            }
        },
    );
    live
}

// ---- a small JSON Schema validator for what docs/openapi.json uses --------------------------

struct Validator {
    doc: Value,
}

impl Validator {
    fn new() -> Validator {
        let text = std::fs::read_to_string(repo("docs/openapi.json")).unwrap();
        Validator {
            doc: serde_json::from_str(&text).unwrap(),
        }
    }

    fn resolve<'a>(&'a self, schema: &'a Value) -> &'a Value {
        match schema["$ref"].as_str() {
            Some(r) => {
                let name = r.strip_prefix("#/components/schemas/").unwrap();
                self.resolve(&self.doc["components"]["schemas"][name])
            }
            None => schema,
        }
    }

    /// The schema of `path`'s 200 answer.
    fn response(&self, path: &str, status: &str) -> &Value {
        let s = &self.doc["paths"][path]["get"]["responses"][status]["content"]["application/json"]
            ["schema"];
        assert!(s.is_object(), "{path} {status} is documented");
        s
    }

    /// Problems of `v` against `schema`, each with its JSON pointer.
    fn check(&self, schema: &Value, v: &Value, at: &str, out: &mut Vec<String>) {
        let schema = self.resolve(schema);
        if let Some(options) = schema["oneOf"].as_array() {
            let passing = options
                .iter()
                .filter(|o| {
                    let mut e = Vec::new();
                    self.check(o, v, at, &mut e);
                    e.is_empty()
                })
                .count();
            if passing != 1 {
                out.push(format!("{at}: {passing} of oneOf match {v}"));
            }
            return;
        }
        if let Some(c) = schema.get("const") {
            if c != v {
                out.push(format!("{at}: {v} is not {c}"));
            }
        }
        if let Some(e) = schema["enum"].as_array() {
            if !e.contains(v) {
                out.push(format!("{at}: {v} not in {e:?}"));
            }
        }
        let ok = match schema["type"].as_str() {
            None => true,
            Some("null") => v.is_null(),
            Some("boolean") => v.is_boolean(),
            Some("string") => v.is_string(),
            Some("integer") => v.is_i64() || v.is_u64(),
            Some("array") => v.is_array(),
            Some("object") => v.is_object(),
            Some(t) => panic!("type {t} not handled"),
        };
        if !ok {
            out.push(format!("{at}: {v} is not a {}", schema["type"]));
            return;
        }
        if let (Some(min), Some(n)) = (schema["minimum"].as_f64(), v.as_f64()) {
            if n < min {
                out.push(format!("{at}: {n} < {min}"));
            }
        }
        if let (Some(max), Some(n)) = (schema["maximum"].as_f64(), v.as_f64()) {
            if n > max {
                out.push(format!("{at}: {n} > {max}"));
            }
        }
        if schema["format"] == "date-time" {
            let s = v.as_str().unwrap();
            if !is_utc_time(s) {
                out.push(format!("{at}: {s} is not an RFC 3339 UTC time"));
            }
        }
        if let (Some(items), Some(a)) = (schema.get("items"), v.as_array()) {
            for (i, item) in a.iter().enumerate() {
                self.check(items, item, &format!("{at}/{i}"), out);
            }
        }
        if let Some(o) = v.as_object() {
            let props = schema["properties"].as_object();
            for req in schema["required"].as_array().into_iter().flatten() {
                if !o.contains_key(req.as_str().unwrap()) {
                    out.push(format!("{at}: required {req} missing"));
                }
            }
            for (k, field) in o {
                match props.and_then(|p| p.get(k)) {
                    Some(s) => self.check(s, field, &format!("{at}/{k}"), out),
                    None => match schema.get("additionalProperties") {
                        Some(Value::Bool(false)) => {
                            out.push(format!("{at}: undocumented field {k}"))
                        }
                        Some(s) if s.is_object() => self.check(s, field, &format!("{at}/{k}"), out),
                        _ => {}
                    },
                }
            }
        }
    }

    fn assert_valid(&self, path: &str, status: &str, v: &Value) {
        let mut problems = Vec::new();
        self.check(self.response(path, status), v, "", &mut problems);
        assert!(problems.is_empty(), "{path} {status}: {problems:#?}\n{v:#}");
    }
}

/// `2024-01-01T00:00:00Z` or with up to six fractional digits, no trailing zero.
fn is_utc_time(s: &str) -> bool {
    let Some(rest) = s.strip_suffix('Z') else {
        return false;
    };
    let frac_ok = match rest.get(19..) {
        Some("") => true,
        Some(f) => {
            f.len() >= 2
                && f.len() <= 7
                && f.starts_with('.')
                && f[1..].bytes().all(|b| b.is_ascii_digit())
                && !f.ends_with('0')
        }
        None => false,
    };
    frac_ok && routewatch::time_fmt::parse_rfc3339(s).is_some()
}

fn time(v: &Value) -> f64 {
    let s = v.as_str().unwrap_or_else(|| panic!("a time string: {v}"));
    assert!(is_utc_time(s), "{s}");
    routewatch::time_fmt::parse_rfc3339(s).unwrap()
}

/// An AS path: numbers, and at most a final nested array (the AS_SET).
fn assert_path(v: &Value) {
    let a = v.as_array().unwrap_or_else(|| panic!("a path array: {v}"));
    for (i, e) in a.iter().enumerate() {
        assert!(
            e.is_u64() || (i + 1 == a.len() && e.is_array()),
            "path element {e} of {v}"
        );
    }
}

/// Every page of `list` (a path with or without a query), following `next`.
fn all_pages(live: &mut Live, list: &str, key: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut path = list.to_string();
    for _ in 0..1000 {
        let page = live.json(&path);
        out.extend(page[key].as_array().unwrap().iter().cloned());
        match page["next"].as_str() {
            Some(next) => {
                assert!(page["next_cursor"].is_string());
                path = next.to_string();
            }
            None => {
                assert!(page["next_cursor"].is_null());
                return out;
            }
        }
    }
    panic!("{list}: paging does not end");
}

#[test]
fn every_endpoint_answers_what_the_openapi_document_says() {
    let mut live = start();
    let v = Validator::new();

    // The document served is the file.
    let served = live.get("/api/v1/openapi.json");
    assert_eq!(served.status, 200);
    assert_eq!(served.header("content-type"), Some("application/json"));
    assert_eq!(
        served.text(),
        std::fs::read_to_string(repo("docs/openapi.json")).unwrap()
    );

    // The index, at each of its paths.
    let index = live.json("/api/v1/");
    v.assert_valid("/api/v1/", "200", &index);
    for alias in ["/api", "/api/", "/api/v1"] {
        assert_eq!(live.json(alias), index, "{alias}");
    }
    let listed: Vec<&str> = index["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    for path in v.doc["paths"].as_object().unwrap().keys() {
        assert!(listed.contains(&path.as_str()), "{path} in the index");
    }
    let anomalies_doc = index["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"] == "/api/v1/anomalies")
        .unwrap();
    let names: Vec<&str> = anomalies_doc["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["location", "prefix", "kind", "open", "state", "limit", "cursor"]
    );

    // Prefixes: every page valid; times and paths in their one format.
    let first = live.json("/api/v1/prefixes?limit=2");
    v.assert_valid("/api/v1/prefixes", "200", &first);
    assert_eq!(
        first["next"],
        format!(
            "/api/v1/prefixes?limit=2&cursor={}",
            first["next_cursor"].as_str().unwrap()
        )
    );
    let prefixes = all_pages(&mut live, "/api/v1/prefixes?limit=2", "prefixes");
    assert_eq!(prefixes.len(), 5);
    let google = prefixes
        .iter()
        .find(|p| p["prefix"] == "8.8.8.0/24")
        .unwrap();
    assert!(google["visibility"].as_u64().unwrap() >= 33, "{google}");
    assert!(!google["sample_paths"].as_array().unwrap().is_empty());
    for p in google["sample_paths"].as_array().unwrap() {
        assert_path(p);
        assert_eq!(p.as_array().unwrap().last(), Some(&Value::from(15169)));
    }
    time(&google["last_change"]);
    let by_location = all_pages(
        &mut live,
        "/api/v1/prefixes?location=google-dns",
        "prefixes",
    );
    let mut got: Vec<&str> = by_location
        .iter()
        .map(|p| p["prefix"].as_str().unwrap())
        .collect();
    got.sort_unstable();
    assert_eq!(got, ["8.8.4.0/24", "8.8.8.0/24"]);
    let one = live.json("/api/v1/prefixes?prefix=1.2.4.0/24");
    assert_eq!(one["prefixes"].as_array().unwrap().len(), 1);
    assert_eq!(one["prefixes"][0]["location"], "cernet-beijing");

    // Anomalies: every instance valid, first_seen ≤ opened_at ≤ last_seen, and each filter
    // gives exactly the instances it names.
    let anomalies = all_pages(&mut live, "/api/v1/anomalies?limit=3", "anomalies");
    assert!(anomalies.len() >= 4, "{anomalies:#?}");
    v.assert_valid(
        "/api/v1/anomalies",
        "200",
        &serde_json::json!({"anomalies": anomalies, "next_cursor": null, "next": null}),
    );
    for a in &anomalies {
        let (first, last) = (time(&a["first_seen"]), time(&a["last_seen"]));
        assert!(first <= last, "first_seen after last_seen: {a}");
        if !a["opened_at"].is_null() {
            let opened = time(&a["opened_at"]);
            assert!(first <= opened && opened <= last, "{a}");
        }
        if !a["example_path"].is_null() {
            assert_path(&a["example_path"]);
        }
    }
    let states: Vec<&str> = anomalies
        .iter()
        .map(|a| a["state"].as_str().unwrap())
        .collect();
    assert!(states.contains(&"open"), "{states:?}");
    assert!(
        states.contains(&"resolving"),
        "the hijacks wait out their hold-down: {anomalies:#?}"
    );
    type Admits<'a> = &'a dyn Fn(&Value) -> bool;
    let cases: [(&str, Admits); 7] = [
        ("location=cernet-beijing", &|a| {
            a["location"] == "cernet-beijing"
        }),
        ("prefix=8.8.8.0/24", &|a| a["prefix"] == "8.8.8.0/24"),
        ("kind=subprefix_hijack", &|a| {
            a["kind"] == "subprefix_hijack"
        }),
        ("open=true", &|a| a["open"] == true),
        ("open=false", &|a| a["open"] == false),
        ("state=resolving", &|a| a["state"] == "resolving"),
        (
            "location=google-dns&kind=origin_mismatch&state=resolving",
            &|a| {
                a["location"] == "google-dns"
                    && a["kind"] == "origin_mismatch"
                    && a["state"] == "resolving"
            },
        ),
    ];
    for (query, admits) in cases {
        let want: Vec<&Value> = anomalies.iter().filter(|a| admits(a)).collect();
        let got = all_pages(
            &mut live,
            &format!("/api/v1/anomalies?{query}&limit=1"),
            "anomalies",
        );
        let got: Vec<&Value> = got.iter().collect();
        assert_eq!(got, want, "{query}");
    }
    assert!(anomalies
        .iter()
        .any(|a| a["location"] == "google-dns" && a["state"] == "resolving"));

    // Bad parameters name themselves, on every list.
    for (path, param) in [
        ("/api/v1/anomalies?open=yes", "open"),
        ("/api/v1/anomalies?kind=hijack", "kind"),
        ("/api/v1/anomalies?state=closed", "state"),
        ("/api/v1/anomalies?prefix=8.8.8.1/24", "prefix"),
        ("/api/v1/anomalies?since=1", "since"),
        ("/api/v1/prefixes?kind=moas", "kind"),
        ("/api/v1/prefixes?limit=0", "limit"),
        ("/api/v1/events?open=true", "open"),
        ("/api/v1/status?verbose=1", "verbose"),
    ] {
        let r = live.get(path);
        assert_eq!(r.status, 400, "{path}: {}", r.text());
        let body = r.json();
        v.assert_valid(path.split('?').next().unwrap(), "400", &body);
        assert_eq!(body["parameter"], param, "{path}");
    }

    // Status: the BMP router and its peer, times as RFC 3339.
    let status = live.json("/api/v1/status");
    v.assert_valid("/api/v1/status", "200", &status);
    assert_eq!(status["routers"][0]["sys_name"], "conformance-router");
    time(&status["routers"][0]["since"]);
    time(&status["routers"][0]["peers"][0]["since"]);

    // Events: valid, times and paths in their one format, next repeats the filters.
    let page = live.json("/api/v1/events?kind=anomaly_opened&limit=2");
    v.assert_valid("/api/v1/events", "200", &page);
    let next = page["next"].as_str().unwrap();
    assert!(
        next.starts_with("/api/v1/events?kind=anomaly_opened&limit=2&cursor="),
        "{next}"
    );
    let events = all_pages(&mut live, "/api/v1/events?limit=50", "events");
    v.assert_valid(
        "/api/v1/events",
        "200",
        &serde_json::json!({"events": events, "next_cursor": null, "next": null}),
    );
    assert!(events
        .iter()
        .any(|e| e["as_path"] == serde_json::json!([7018, 64666])));
    for e in &events {
        assert!(time(&e["received"]) > time(&e["time"]), "{e}");
    }

    // Without the token: 401 in the documented shape, with the challenge.
    let r = support::daemon::http_get(live.daemon.port, "/api/v1/anomalies").unwrap();
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer realm=\"routewatch\"")
    );
    v.assert_valid("/api/v1/anomalies", "401", &r.json());
    // An unknown API path: a JSON 404 pointing at the index.
    let r = live.get("/api/v2/nothing");
    assert_eq!(r.status, 404);
    assert!(r.json()["error"].as_str().unwrap().contains("/api/v1/"));

    live.daemon.terminate_cleanly();
}

/// The schemathesis binary of the pinned version, or a clear failure saying how to install it.
fn schemathesis() -> String {
    let out = Command::new("schemathesis")
        .arg("--version")
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "schemathesis is not installed ({e}): pip install \
                 schemathesis=={SCHEMATHESIS_VERSION} (as .ci/run does)"
            )
        });
    let version = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        version.contains(SCHEMATHESIS_VERSION),
        "schemathesis {SCHEMATHESIS_VERSION} expected (the flags below are its), found {version}"
    );
    "schemathesis".to_string()
}

#[test]
fn schemathesis_finds_the_live_api_conforming_to_its_openapi_document() {
    let bin = schemathesis();
    let mut live = start();
    let work = tempfile::tempdir().unwrap();
    let schema = repo("docs/openapi.json");
    let url = format!("http://127.0.0.1:{}", live.daemon.port);
    let log = work.path().join("schemathesis.log");
    let mut cmd = Command::new(&bin);
    cmd.current_dir(work.path())
        .args(["run", schema.to_str().unwrap(), "--url", &url])
        .args(["--header", &format!("Authorization: Bearer {TOKEN}")])
        // Every check but positive_data_acceptance: the API refuses, with a documented 400,
        // values that are well-formed strings yet no cursor it gave, no prefix with its host
        // bits zero, or an `until` not after `since` — what JSON Schema cannot say.
        .args([
            "--checks",
            "all",
            "--exclude-checks",
            "positive_data_acceptance",
        ])
        // Bounded: a few examples per operation (with the coverage phase's boundary cases), a
        // fixed seed, no example database, one worker.
        .args([
            "--max-examples",
            "30",
            "--seed",
            "20240101",
            "--workers",
            "1",
        ])
        .args(["--generation-database", "none", "--no-shrink"])
        .args(["--max-response-time", "5", "--request-timeout", "10"])
        .args(["--no-color", "--max-failures", "20"])
        .args(["--report", "junit", "--report-junit-path"])
        .arg(work.path().join("junit.xml"))
        .env("NO_COLOR", "1");
    let started = Instant::now();
    let mut child = support::process::ChildGuard::start(
        "schemathesis",
        &mut cmd,
        Some(&log),
        &format!("pip install schemathesis=={SCHEMATHESIS_VERSION} (as .ci/run does)"),
    );
    let status = child
        .wait_exit(SCHEMATHESIS_TIMEOUT)
        .unwrap_or_else(|| panic!("schemathesis did not finish within {SCHEMATHESIS_TIMEOUT:?}"));
    let took = started.elapsed();
    let output = std::fs::read_to_string(&log).unwrap_or_default();
    eprintln!("schemathesis {SCHEMATHESIS_VERSION} took {took:?}\n{output}");
    assert_eq!(
        status.code(),
        Some(0),
        "schemathesis found the API not conforming to docs/openapi.json:\n{output}\n{}",
        live.daemon.log()
    );
    // It did test every operation of the document,
    let junit = std::fs::read_to_string(work.path().join("junit.xml")).unwrap();
    for path in Validator::new().doc["paths"].as_object().unwrap().keys() {
        assert!(
            junit.contains(&format!("<testcase name=\"GET {path}\"")),
            "{path} not tested:\n{junit}"
        );
    }
    // with and without the token (its ignored_auth check).
    let m = live.daemon.scrape();
    assert!(
        m.value(
            "routewatch_http_requests_rejected_total",
            &[("reason", "unauthorized")]
        ) > 0.0
    );
    live.daemon.assert_running();
    live.daemon.terminate_cleanly();
}
