#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The `[dns]` section: defaults (off), every key, server address forms, range and address errors
//! naming file:line:col and the key, unknown keys, the shipped `config/routewatch.toml`
//! documenting the defaults, and the mapping to `dns::EnricherSettings`.

use std::time::Duration;

mod support;

use routewatch::config::DnsConfig;
use routewatch::dns::{Enricher, EnricherSettings};
use support::{assert_key_error, load_config as load, section_error, shipped_section};

#[test]
fn defaults_when_absent() {
    let dir = tempfile::tempdir().unwrap();
    let (_, c) = load(dir.path(), "");
    let d = c.unwrap().dns;
    assert_eq!(
        d,
        DnsConfig {
            enabled: false,
            servers: None,
            timeout_ms: 2000,
            attempts: 2,
            max_in_flight: 8,
            cache_entries: 100_000,
            negative_ttl_seconds: 300,
            max_ttl_seconds: 86_400,
        }
    );
    assert_eq!(d, DnsConfig::default());
    let (_, c) = load(dir.path(), "[dns]\n");
    assert_eq!(c.unwrap().dns, DnsConfig::default());
    // Off by default: the enricher built from the defaults sends nothing (and needs no runtime).
    assert!(!Enricher::from_config(&DnsConfig::default())
        .unwrap()
        .is_enabled());
}

#[test]
fn every_key_and_the_enricher_settings() {
    let dir = tempfile::tempdir().unwrap();
    let (_, c) = load(
        dir.path(),
        "[dns]\nenabled = true\nservers = [\"127.0.0.1:5353\", \"192.0.2.53\", \"[::1]:53\", \
         \"2001:db8::53\"]\ntimeout-ms = 500\nattempts = 3\nmax-in-flight = 16\n\
         cache-entries = 1000\nnegative-ttl-seconds = 60\nmax-ttl-seconds = 3600\n",
    );
    let d = c.unwrap().dns;
    assert_eq!(
        d,
        DnsConfig {
            enabled: true,
            servers: Some(vec![
                "127.0.0.1:5353".parse().unwrap(),
                "192.0.2.53:53".parse().unwrap(),
                "[::1]:53".parse().unwrap(),
                "[2001:db8::53]:53".parse().unwrap(),
            ]),
            timeout_ms: 500,
            attempts: 3,
            max_in_flight: 16,
            cache_entries: 1000,
            negative_ttl_seconds: 60,
            max_ttl_seconds: 3600,
        }
    );
    let s = EnricherSettings::from_config(&d);
    assert!(s.enabled);
    assert_eq!(s.servers, d.servers);
    assert_eq!(s.timeout, Duration::from_millis(500));
    assert_eq!(
        (s.attempts, s.max_in_flight, s.cache_entries),
        (3, 16, 1000)
    );
    assert_eq!(s.negative_ttl, Duration::from_secs(60));
    assert_eq!(s.max_ttl, Duration::from_secs(3600));
    assert_eq!(s.min_ttl, Duration::from_secs(60));
    // A max-ttl below the 60 s floor lowers the floor too.
    let s = EnricherSettings::from_config(&DnsConfig {
        max_ttl_seconds: 10,
        ..d
    });
    assert_eq!(
        (s.min_ttl, s.max_ttl),
        (Duration::from_secs(10), Duration::from_secs(10))
    );
}

#[test]
fn bad_values_name_the_position_and_key() {
    let dir = tempfile::tempdir().unwrap();
    for (line, at, want) in [
        (
            "timeout-ms = 9",
            "9",
            "dns.timeout-ms: 9 is out of range 10..=60000",
        ),
        (
            "attempts = 0",
            "0",
            "dns.attempts: 0 is out of range 1..=10",
        ),
        (
            "max-in-flight = 2000",
            "2000",
            "dns.max-in-flight: 2000 is out of range 1..=1024",
        ),
        (
            "cache-entries = 0",
            "0",
            "dns.cache-entries: 0 is out of range 1..=10000000",
        ),
        (
            "negative-ttl-seconds = -1",
            "-1",
            "dns.negative-ttl-seconds: -1 is out of range 1..=86400",
        ),
        (
            "max-ttl-seconds = 0",
            "0",
            "dns.max-ttl-seconds: 0 is out of range 1..=604800",
        ),
        (
            "servers = [\"127.0.0.1:53\", \"resolver.example\"]",
            "\"resolver.example\"",
            "dns.servers: 'resolver.example' is not an address or address:port",
        ),
        (
            "servers = [\"127.0.0.1:0\"]",
            "\"127.0.0.1:0\"",
            "dns.servers: port 0 is not a server port",
        ),
        (
            "servers = []",
            "[]",
            "dns.servers: at least one server is required",
        ),
    ] {
        assert_key_error(dir.path(), "dns", line, line.find(at).unwrap() + 1, want);
    }
}

#[test]
fn unknown_keys_and_wrong_types_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let err = section_error(dir.path(), "dns", "timeout = 5");
    assert!(err.starts_with("2:1: "), "{err}");
    assert!(err.contains("timeout"), "{err}");
    let err = section_error(dir.path(), "dns", "enabled = \"yes\"");
    assert!(err.starts_with("2:"), "{err}");
    let (_, c) = load(dir.path(), "[dns]\nservers = \"127.0.0.1\"\n");
    assert!(c.is_err(), "servers is a list");
    let (_, c) = load(dir.path(), "[dns]\ntimeout-ms = 1.5\n");
    assert!(c.is_err());
}

#[test]
fn the_shipped_config_documents_the_defaults() {
    let (section, config) = shipped_section(
        "dns",
        &[
            "enabled",
            "timeout-ms",
            "attempts",
            "max-in-flight",
            "cache-entries",
            "negative-ttl-seconds",
            "max-ttl-seconds",
        ],
    );
    assert!(section.contains("\n# servers = "), "servers documented");
    assert_eq!(config.dns, DnsConfig::default());
}
