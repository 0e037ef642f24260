#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The `[events]` section: defaults, every key, range errors naming file:line:col and the key,
//! unknown keys, and the shipped `config/routewatch.toml` documenting the defaults.

mod support;

use routewatch::config::EventsConfig;
use routewatch::events::store::StoreSettings;
use support::{assert_key_error, load_config as load, section_error, shipped_section};

#[test]
fn defaults_when_absent() {
    let dir = tempfile::tempdir().unwrap();
    let (_, c) = load(dir.path(), "");
    let e = c.unwrap().events;
    assert_eq!(
        e,
        EventsConfig {
            enabled: true,
            flush_interval_ms: 1000,
            retention_days: 30,
            max_rows: 1_000_000,
        }
    );
    assert_eq!(e, EventsConfig::default());
    let (_, c) = load(dir.path(), "[events]\n");
    assert_eq!(c.unwrap().events, EventsConfig::default());
}

#[test]
fn every_key() {
    let dir = tempfile::tempdir().unwrap();
    let (_, c) = load(
        dir.path(),
        "[events]\nenabled = false\nflush-interval-ms = 250\nretention-days = 7\nmax-rows = 5000\n",
    );
    let e = c.unwrap().events;
    assert_eq!(
        e,
        EventsConfig {
            enabled: false,
            flush_interval_ms: 250,
            retention_days: 7,
            max_rows: 5000,
        }
    );
    let s = StoreSettings::from_config(&e);
    assert_eq!(s.flush_interval.as_millis(), 250);
    assert_eq!(s.retention.as_secs(), 7 * 86_400);
    assert_eq!(s.max_rows, 5000);
}

#[test]
fn out_of_range_values_name_the_position_and_key() {
    let dir = tempfile::tempdir().unwrap();
    for (line, want) in [
        (
            "flush-interval-ms = 9",
            "events.flush-interval-ms: 9 is out of range 10..=60000",
        ),
        (
            "flush-interval-ms = 60001",
            "events.flush-interval-ms: 60001 is out of range",
        ),
        (
            "retention-days = 0",
            "events.retention-days: 0 is out of range 1..=36500",
        ),
        (
            "max-rows = 0",
            "events.max-rows: 0 is out of range 1..=1000000000",
        ),
        ("max-rows = -5", "events.max-rows: -5 is out of range"),
    ] {
        assert_key_error(
            dir.path(),
            "events",
            line,
            line.find('=').unwrap() + 3,
            want,
        );
    }
}

#[test]
fn unknown_keys_and_wrong_types_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let err = section_error(dir.path(), "events", "flush-interval = 5");
    assert!(err.starts_with("2:1: "), "{err}");
    assert!(err.contains("flush-interval"), "{err}");
    let err = section_error(dir.path(), "events", "enabled = \"yes\"");
    assert!(err.starts_with("2:"), "{err}");
    let (_, c) = load(dir.path(), "[events]\nretention-days = 1.5\n");
    assert!(c.is_err());
}

#[test]
fn the_shipped_config_documents_the_defaults() {
    let (_, config) = shipped_section(
        "events",
        &["enabled", "flush-interval-ms", "retention-days", "max-rows"],
    );
    assert_eq!(config.events, EventsConfig::default());
}
