//! `[log] format = "json"`: the daemon writes one JSON object per line, which a log shipper can
//! parse, with the event's fields at the top level.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::daemon::Daemon;
use support::*;

#[test]
fn json_log_lines_parse_and_carry_the_fields() {
    let dir = tempfile::tempdir().unwrap();
    let config = DaemonConfig::new()
        .mrt_files(&[fixture(DEMO_RIB), fixture(DEMO_UPDATES)])
        .section("log", "format = \"json\"\nlevel = \"info\"\n")
        .locations_toml(&demo_locations());
    let file = config.write(dir.path());
    let mut daemon = Daemon::start(&file);
    daemon.wait_ready();
    daemon.terminate_cleanly();

    let log = std::fs::read_to_string(daemon.log_path()).unwrap();
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines.len() > 5, "{log}");
    let objects: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))
        })
        .collect();
    for o in &objects {
        let time = o["timestamp"].as_str().unwrap_or_else(|| panic!("{o}"));
        assert!(
            time.ends_with('Z') && time.contains('T'),
            "RFC 3339 UTC: {o}"
        );
        assert!(
            ["INFO", "WARN", "ERROR"].contains(&o["level"].as_str().unwrap()),
            "{o}"
        );
        assert!(o["message"].is_string(), "{o}");
    }
    // A structured line keeps its fields as JSON values, not as text in the message.
    let file_done = objects
        .iter()
        .find(|o| {
            o["message"] == "MRT file processed"
                && o["file"]
                    .as_str()
                    .unwrap()
                    .ends_with("demo-hijack.updates.mrt")
        })
        .unwrap_or_else(|| panic!("no MRT file line in {log}"));
    assert_eq!(file_done["routes"], 8, "{file_done}");
    assert_eq!(file_done["errors"], 0, "{file_done}");
}

#[test]
fn log_keys_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    assert_key_error(dir.path(), "log", "format = \"xml\"", 10, "log.format");
    assert_key_error(dir.path(), "log", "level = \"info,=\"", 9, "log.level");
    let (_, c) = load_config(
        dir.path(),
        "[log]\nformat = \"json\"\nlevel = \"warn,routewatch=debug\"\n",
    );
    let c = c.unwrap();
    assert_eq!(c.log.format, routewatch::log::LogFormat::Json);
    assert_eq!(c.log.level, "warn,routewatch=debug");
}

#[test]
fn the_shipped_config_documents_the_defaults() {
    let (_, config) = shipped_section("log", &["format", "level"]);
    assert_eq!(
        config.log,
        routewatch::config::LogConfig::default(),
        "the shipped [log] is the default"
    );
}
