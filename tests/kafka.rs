#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `[[kafka]]` end to end against a real Kafka-protocol broker (`tansu`, in-memory storage, on a
//! free 127.0.0.1 port, stopped by pid), OpenBMP-wrapped BMP produced with rdkafka from the
//! recorded router stream in `fixtures/bmp/raw/`:
//!
//! * the stream consumed from Kafka gives the same per-prefix state (`/api/v1/prefixes`) as the
//!   same bytes sent over TCP to a second daemon's BMP listener;
//! * offsets are committed once applied, and a restart resumes from the committed offset: what
//!   was produced while the daemon was down is consumed, nothing before it again; a message that
//!   is not OpenBMP is counted and skipped without stalling the partition;
//! * two instances in one consumer group split the routers (one partition each) and their
//!   visibility, summed per prefix, equals one instance's that reads everything; when one stops,
//!   the other is assigned its partition (a rebalance) and reads that router's next messages;
//!   when a third joins, the router of the partition moved away is dropped from the instance
//!   that had it (counted as revoked, its routes withdrawn there).
//!
//! Every wait is bounded; every process is stopped by pid when its guard drops.

mod support;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use support::bmp::{initiation, peer_up, route_monitoring};
use support::config::ConfigFile;
use support::daemon::{Daemon, Exposition};
use support::kafka::{openbmp_messages, Tansu};
use support::{fixture, DaemonConfig, Location};

/// How long one expected change may take (consumer group joins take a few seconds).
const WAIT: Duration = Duration::from_secs(60);

/// A Cisco router's BMP stream: 343 messages (Initiation, Peer Ups, Route Monitoring,
/// Statistics, Peer Downs).
const CAPTURE: &str = "bmp/raw/pmacct__204-BMP-CISCO-peer_down__traffic-00.flow0.bmp";
const CAPTURE_MESSAGES: usize = 343;

fn capture_locations() -> Vec<Location> {
    vec![
        Location::new(
            "capture-v4",
            &[65000],
            &["192.0.2.11/32", "192.0.2.12/32", "192.0.2.218/31"],
        ),
        Location::new(
            "capture-mismatch",
            &[64496],
            &["192.0.2.23/32", "2001:db8::23/128"],
        ),
        Location::new(
            "capture-v6",
            &[65000],
            &["2001:db8::12/128", "2001:db8:192::90/128"],
        ),
        Location::new(
            "everything",
            &[64496],
            &["0.0.0.0/1", "128.0.0.0/1", "::/1", "8000::/1"],
        ),
    ]
}

/// A `[[kafka]]` consumer section (fast commits and statistics for the tests).
fn kafka_section(broker: &str, topic: &str, group: &str, name: &str) -> String {
    format!(
        "name = \"{name}\"\nbrokers = [\"{broker}\"]\ntopics = [\"{topic}\"]\ngroup-id = \"{group}\"\n\
         start = \"earliest\"\ncommit-interval-ms = 100\nstatistics-interval-ms = 200\n\
         [kafka.options]\n\"session.timeout.ms\" = \"10000\"\n\"heartbeat.interval.ms\" = \"500\"\n"
    )
}

/// The configuration of a daemon consuming `topic` in `group` (its own directory under `dir`).
fn consumer_config(
    dir: &Path,
    sub: &str,
    broker: &str,
    topic: &str,
    group: &str,
    locations: &[Location],
) -> ConfigFile {
    let d = dir.join(sub);
    std::fs::create_dir_all(&d).unwrap();
    DaemonConfig::new()
        .section("[kafka]", &kafka_section(broker, topic, group, "openbmp"))
        .locations(locations)
        .write(&d)
}

/// `routewatch run` consuming `topic` in `group`, ready.
fn consumer(
    dir: &Path,
    sub: &str,
    broker: &str,
    topic: &str,
    group: &str,
    locations: &[Location],
) -> Daemon {
    start(&consumer_config(dir, sub, broker, topic, group, locations))
}

fn start(config: &ConfigFile) -> Daemon {
    let mut daemon = Daemon::start(config);
    daemon.wait_ready();
    daemon
}

fn value(m: &Exposition, name: &str, labels: &[(&str, &str)]) -> f64 {
    m.get(name, labels).unwrap_or(0.0)
}

const C: (&str, &str) = ("consumer", "openbmp");

/// Waits until the daemon consumed `n` messages and committed them all.
fn wait_consumed(d: &mut Daemon, n: usize) -> Exposition {
    d.wait_scrape(
        &format!("{n} Kafka messages consumed and committed"),
        WAIT,
        |m| {
            let got = value(m, "routewatch_kafka_messages_total", &[C]);
            if got != n as f64 {
                return Err(format!("{got} messages"));
            }
            let lag: Vec<_> = m.with_name("routewatch_kafka_consumer_lag");
            if lag.is_empty() || lag.iter().any(|(_, v)| *v != 0.0) {
                return Err(format!("lag {lag:?}"));
            }
            match value(m, "routewatch_kafka_commits_total", &[C, ("result", "ok")]) {
                0.0 => Err("no commit acknowledged yet".into()),
                _ => Ok(()),
            }
        },
    )
}

/// Per prefix: `routewatch_prefix_visibility_peers`.
fn visibility(m: &Exposition) -> BTreeMap<String, f64> {
    m.with_name("routewatch_prefix_visibility_peers")
        .into_iter()
        .map(|(l, v)| (format!("{}|{}", l["location"], l["prefix"]), v))
        .collect()
}

fn sum(a: &BTreeMap<String, f64>, b: &BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    a.iter()
        .map(|(k, v)| (k.clone(), v + b.get(k).copied().unwrap_or(0.0)))
        .collect()
}

/// `/api/v1/prefixes` without the anomalies' and routes' wall-clock-free parts changed: the
/// whole answer, as comparable JSON.
fn prefixes(d: &mut Daemon) -> Value {
    d.get_ok("/api/v1/prefixes?limit=1000").json()["prefixes"].clone()
}

#[test]
fn kafka_stream_gives_the_same_state_as_tcp() {
    let tmp = tempfile::tempdir().unwrap();
    let mut broker = Tansu::start(tmp.path());
    broker.create_topic("openbmp.bmp_raw", 1);
    let bytes = std::fs::read(fixture(CAPTURE)).unwrap();
    let router: IpAddr = "192.0.2.1".parse().unwrap();
    let messages = openbmp_messages(&bytes, "lab-collector", router);
    assert_eq!(messages.len(), CAPTURE_MESSAGES);
    broker
        .producer()
        .send("openbmp.bmp_raw", 0, "192.0.2.1", &messages);

    let locations = capture_locations();
    let mut k = consumer(
        tmp.path(),
        "kafka",
        &broker.address(),
        "openbmp.bmp_raw",
        "g-equal",
        &locations,
    );
    // The same stream over TCP to a daemon with a BMP listener.
    let tcp_dir = tmp.path().join("tcp");
    std::fs::create_dir_all(&tcp_dir).unwrap();
    let tcp_config = DaemonConfig::new()
        .bmp("initial-table-timeout-seconds = 1\n")
        .locations(&locations)
        .write(&tcp_dir);
    let mut t = Daemon::start(&tcp_config);
    t.wait_ready();
    let mut stream =
        std::net::TcpStream::connect(("127.0.0.1", tcp_config.bmp_port.unwrap())).unwrap();
    std::io::Write::write_all(&mut stream, &bytes).unwrap();

    let m = wait_consumed(&mut k, CAPTURE_MESSAGES);
    let processed = t.wait_scrape("the TCP daemon processed the stream", WAIT, |m| {
        let n: f64 = m
            .with_name("routewatch_bmp_messages_total")
            .iter()
            .map(|(_, v)| v)
            .sum();
        if n == CAPTURE_MESSAGES as f64 {
            Ok(())
        } else {
            Err(format!("{n} messages"))
        }
    });
    let want = value(
        &processed,
        "routewatch_routes_processed_total",
        &[("feed", "bmp")],
    );
    assert!(want > 50.0, "{want}");
    // The engine applies after the consumer counted: poll both sides' state.
    k.poll("Kafka routes applied", WAIT, |d| {
        let m = d.scrape();
        let got = value(
            &m,
            "routewatch_routes_processed_total",
            &[("feed", "kafka")],
        );
        if got == want {
            Ok(())
        } else {
            Err(format!("{got} of {want} routes"))
        }
    });
    let matched = value(&m, "routewatch_routes_matched_total", &[("feed", "kafka")]);
    assert!(matched > 20.0, "{matched}");
    let errors: Vec<_> = m
        .with_name("routewatch_parse_errors_total")
        .into_iter()
        .filter(|(_, v)| *v != 0.0)
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(value(&m, "routewatch_kafka_routers", &[C]), 1.0);
    assert_eq!(value(&m, "routewatch_kafka_assigned_partitions", &[C]), 1.0);
    assert_eq!(
        value(&m, "routewatch_kafka_received_bytes_total", &[C]),
        messages.iter().map(Vec::len).sum::<usize>() as f64
    );
    let via_tcp = t.poll("TCP state settled", WAIT, |d| {
        let a = prefixes(d);
        let b = prefixes(d);
        if a == b {
            Ok(a)
        } else {
            Err("changing".into())
        }
    });
    let via_kafka = k.poll("Kafka state equal to TCP", WAIT, |d| {
        let p = prefixes(d);
        if p == via_tcp {
            Ok(p)
        } else {
            Err(format!("kafka:\n{p:#}\ntcp:\n{via_tcp:#}"))
        }
    });
    let visible = via_kafka
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["visibility"].as_u64().unwrap_or(0) > 0)
        .count();
    assert!(visible >= 4, "{via_kafka:#}");
    // The same per-prefix series.
    assert_eq!(visibility(&k.scrape()), visibility(&t.scrape()));
    k.terminate_cleanly();
    t.terminate_cleanly();
}

#[test]
fn restart_resumes_from_the_committed_offset_and_bad_messages_are_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let mut broker = Tansu::start(tmp.path());
    broker.create_topic("bmp", 1);
    let producer = broker.producer();
    let router: IpAddr = "198.51.100.1".parse().unwrap();
    let peer = "203.0.113.9".parse().unwrap();
    let wrap = |m: Vec<u8>| routewatch::ingest::kafka::encode("c1", router, 1_700_000_000.0, &m);
    let first = vec![
        wrap(initiation("edge-1")),
        wrap(peer_up(peer, 64500, 65001)),
        wrap(route_monitoring(
            peer,
            64500,
            [192, 0, 2],
            Some(&[64500, 64501]),
        )),
    ];
    producer.send("bmp", 0, "198.51.100.1", &first);
    let locations = [
        Location::new("one", &[64501], &["192.0.2.0/24"]),
        Location::new("two", &[64501], &["198.18.0.0/24"]),
    ];
    let config = consumer_config(
        tmp.path(),
        "a",
        &broker.address(),
        "bmp",
        "g-restart",
        &locations,
    );
    let mut d = start(&config);
    wait_consumed(&mut d, 3);
    d.wait_metric(
        "routewatch_prefix_visibility_peers",
        &[("location", "one"), ("prefix", "192.0.2.0/24")],
        1.0,
    );
    d.terminate_cleanly();

    // While it is down: a message that is not OpenBMP, a BMP body of another version, and a
    // route for the second prefix.
    let second = vec![
        b"V: 1.6\nC_HASH_ID: x\nT: bmp_raw\n\n".to_vec(),
        wrap(vec![1, 0, 0, 0, 6, 4]),
        wrap(route_monitoring(
            peer,
            64500,
            [198, 18, 0],
            Some(&[64500, 64501]),
        )),
    ];
    producer.send("bmp", 0, "198.51.100.1", &second);
    let mut d = start(&config);
    // Exactly the three produced after the commit: resumed there, nothing missed, nothing
    // before it read again.
    let m = wait_consumed(&mut d, 3);
    assert_eq!(
        value(&m, "routewatch_kafka_replayed_messages_total", &[C]),
        0.0
    );
    assert_eq!(
        value(&m, "routewatch_kafka_messages_skipped_total", &[C]),
        2.0
    );
    let errors = |label: &str| {
        value(
            &m,
            "routewatch_parse_errors_total",
            &[("feed", "kafka"), ("error", label)],
        )
    };
    assert_eq!(errors("openbmp_not_openbmp"), 1.0);
    assert_eq!(errors("bmp_unsupported_version"), 1.0);
    d.wait_metric(
        "routewatch_prefix_visibility_peers",
        &[("location", "two"), ("prefix", "198.18.0.0/24")],
        1.0,
    );
    // The first prefix's route came before the committed offset: a restarted instance has only
    // what it read since (documented: routers start fresh on assignment).
    let m = d.scrape();
    assert_eq!(
        value(
            &m,
            "routewatch_prefix_visibility_peers",
            &[("location", "one"), ("prefix", "192.0.2.0/24")]
        ),
        0.0
    );
    d.terminate_cleanly();
}

#[test]
fn two_instances_in_one_group_split_the_routers_and_sum_to_one_instance() {
    let tmp = tempfile::tempdir().unwrap();
    let mut broker = Tansu::start(tmp.path());
    broker.create_topic("openbmp.bmp_raw", 2);
    let bytes = std::fs::read(fixture(CAPTURE)).unwrap();
    let a: IpAddr = "192.0.2.1".parse().unwrap();
    let b: IpAddr = "192.0.2.2".parse().unwrap();
    let locations = capture_locations();
    let addr = broker.address();
    let topic = "openbmp.bmp_raw";
    // One instance alone, and two in another group.
    let mut single = consumer(tmp.path(), "single", &addr, topic, "g-single", &locations);
    let mut one = consumer(tmp.path(), "one", &addr, topic, "g-pair", &locations);
    let mut two = consumer(tmp.path(), "two", &addr, topic, "g-pair", &locations);
    for d in [&mut one, &mut two] {
        d.wait_metric("routewatch_kafka_assigned_partitions", &[C], 1.0);
    }
    let producer = broker.producer();
    producer.send(topic, 0, "192.0.2.1", &openbmp_messages(&bytes, "lab", a));
    producer.send(topic, 1, "192.0.2.2", &openbmp_messages(&bytes, "lab", b));

    wait_consumed(&mut single, 2 * CAPTURE_MESSAGES);
    let m1 = wait_consumed(&mut one, CAPTURE_MESSAGES);
    let m2 = wait_consumed(&mut two, CAPTURE_MESSAGES);
    assert_eq!(value(&m1, "routewatch_kafka_routers", &[C]), 1.0);
    assert_eq!(value(&m2, "routewatch_kafka_routers", &[C]), 1.0);
    let settled = |d: &mut Daemon| {
        d.poll("visibility settled", WAIT, |d| {
            let a = visibility(&d.scrape());
            std::thread::sleep(Duration::from_millis(300));
            let b = visibility(&d.scrape());
            if a == b {
                Ok(a)
            } else {
                Err("changing".into())
            }
        })
    };
    let whole = settled(&mut single);
    assert!(
        whole.values().filter(|v| **v >= 2.0).count() >= 4,
        "{whole:?}"
    );
    let (v1, v2) = (settled(&mut one), settled(&mut two));
    assert_ne!(v1, whole);
    assert_eq!(
        sum(&v1, &v2),
        whole,
        "sum by (location, prefix) of the two instances"
    );

    // One instance stops: the other is assigned its partition (a rebalance), and reads that
    // router's next messages (the collector publishes both routers' streams again).
    let assigns = value(
        &one.scrape(),
        "routewatch_kafka_rebalances_total",
        &[C, ("event", "assign")],
    );
    two.terminate_cleanly();
    let m = one.wait_metric("routewatch_kafka_assigned_partitions", &[C], 2.0);
    assert!(
        value(
            &m,
            "routewatch_kafka_rebalances_total",
            &[C, ("event", "assign")]
        ) > assigns
    );
    producer.send(topic, 0, "192.0.2.1", &openbmp_messages(&bytes, "lab", a));
    producer.send(topic, 1, "192.0.2.2", &openbmp_messages(&bytes, "lab", b));
    // Its own router's stream again, and the other's from where the stopped instance
    // committed (the end of the first copy): nothing of the first copy read twice.
    wait_consumed(&mut one, 3 * CAPTURE_MESSAGES);
    assert_eq!(
        value(
            &one.scrape(),
            "routewatch_kafka_replayed_messages_total",
            &[C]
        ),
        0.0
    );
    // The instance alone read both streams again: BMP state is idempotent.
    wait_consumed(&mut single, 4 * CAPTURE_MESSAGES);
    let whole_again = settled(&mut single);
    assert_eq!(whole_again, whole);
    let v1 = settled(&mut one);
    assert_eq!(v1, whole);

    // A third instance joins: one partition moves to it; its router is dropped from the
    // instance that had it (revoked, its routes withdrawn there); the new owner starts from the
    // committed offset, so it has that router's routes only from its next messages.
    let down = |d: &mut Daemon| {
        value(
            &d.scrape(),
            "routewatch_feed_sessions_down_total",
            &[("feed", "kafka")],
        )
    };
    let down_before = down(&mut one);
    let mut three = consumer(tmp.path(), "three", &addr, topic, "g-pair", &locations);
    three.wait_metric("routewatch_kafka_assigned_partitions", &[C], 1.0);
    let m = one.wait_metric("routewatch_kafka_assigned_partitions", &[C], 1.0);
    assert_eq!(
        value(&m, "routewatch_kafka_revoked_routers_total", &[C]),
        1.0
    );
    assert!(
        value(
            &m,
            "routewatch_kafka_rebalances_total",
            &[C, ("event", "revoke")]
        ) >= 1.0
    );
    one.wait_metric("routewatch_kafka_routers", &[C], 1.0);
    let v1 = settled(&mut one);
    assert_eq!(sum(&v1, &v1), whole, "one router's share left: {v1:?}");
    assert_eq!(
        down(&mut one),
        down_before,
        "revocation is not counted as sessions going down"
    );
    one.terminate_cleanly();
    three.terminate_cleanly();
    single.terminate_cleanly();
}

/// BENCHMARKS.md "Kafka": messages/s and routes/s consumed from a local broker by one instance,
/// then by two in one group. Not part of `cargo test` (ignored); run with
/// `cargo test --release --test kafka -- --ignored --nocapture kafka_throughput`
/// (`ROUTERS=1000` by default: the capture published for that many router addresses over 4
/// partitions). The instances join their group first; then the messages are produced, and the
/// rate is measured from the first message consumed to the last one applied and committed.
#[test]
#[ignore = "a benchmark: run it explicitly (BENCHMARKS.md)"]
fn kafka_throughput() {
    let routers: usize = std::env::var("ROUTERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let tmp = tempfile::tempdir().unwrap();
    let mut broker = Tansu::start(tmp.path());
    let bytes = std::fs::read(fixture(CAPTURE)).unwrap();
    let locations = capture_locations();
    let total = routers * CAPTURE_MESSAGES;
    let mut run = |group: &str, instances: usize| {
        let topic = format!("bench-{group}");
        broker.create_topic(&topic, 4);
        let mut ds: Vec<Daemon> = (0..instances)
            .map(|i| {
                consumer(
                    tmp.path(),
                    &format!("{group}-{i}"),
                    &broker.address(),
                    &topic,
                    group,
                    &locations,
                )
            })
            .collect();
        support::daemon::poll("the group settled", Duration::from_secs(60), || {
            let each: Vec<f64> = ds
                .iter_mut()
                .map(|d| value(&d.scrape(), "routewatch_kafka_assigned_partitions", &[C]))
                .collect();
            if each.iter().sum::<f64>() == 4.0 && each.iter().all(|n| *n > 0.0) {
                Ok(())
            } else {
                Err(format!("{each:?}"))
            }
        });
        let producer = broker.producer();
        let t0 = std::time::Instant::now();
        for r in 0..routers {
            let ip = IpAddr::from([10, 0, (r / 250) as u8, (r % 250) as u8 + 1]);
            producer.queue(
                &topic,
                (r % 4) as i32,
                &ip.to_string(),
                &openbmp_messages(&bytes, "bench", ip),
            );
        }
        producer.flush(&topic);
        let produced = t0.elapsed().as_secs_f64();
        let mut first = None;
        let mut routes = 0.0;
        // Consumed, applied and committed: the lag of every partition is 0.
        support::daemon::poll("every message consumed", Duration::from_secs(1800), || {
            let (mut msgs, mut lag, mut partitions) = (0.0, 0.0, 0);
            routes = 0.0;
            for d in ds.iter_mut() {
                let m = d.scrape();
                msgs += value(&m, "routewatch_kafka_messages_total", &[C]);
                routes += value(
                    &m,
                    "routewatch_routes_processed_total",
                    &[("feed", "kafka")],
                );
                for (_, v) in m.with_name("routewatch_kafka_consumer_lag") {
                    lag += v;
                    partitions += 1;
                }
            }
            if msgs > 0.0 && first.is_none() {
                first = Some(std::time::Instant::now());
            }
            if msgs as usize >= total && lag == 0.0 && partitions == 4 {
                Ok(())
            } else {
                Err(format!(
                    "{msgs} of {total}, lag {lag} over {partitions} partitions"
                ))
            }
        });
        let secs = first.map_or(0.0, |f| f.elapsed().as_secs_f64());
        eprintln!(
            "{instances} instance(s): {total} messages ({routers} routers) produced in {produced:.2} s; \
             consumed, applied and committed {total} messages, {routes} routes in {secs:.2} s: \
             {:.0} messages/s, {:.0} routes/s",
            total as f64 / secs,
            routes / secs
        );
        for d in &mut ds {
            d.terminate_cleanly();
        }
    };
    run("one", 1);
    run("two", 2);
}

/// A property librdkafka refuses fails the start (exit 2, the configuration's code) naming the
/// consumer and the property; no broker is needed to find out.
#[test]
fn a_refused_librdkafka_property_fails_the_start_naming_the_consumer() {
    let tmp = tempfile::tempdir().unwrap();
    let config = DaemonConfig::new()
        .section(
            "[kafka]",
            "name = \"edge\"\nbrokers = [\"127.0.0.1:9\"]\ntopics = [\"t\"]\n\
             [kafka.options]\n\"no.such.property\" = \"1\"\n",
        )
        .locations(&[Location::new("a", &[64500], &["192.0.2.0/24"])])
        .write(tmp.path());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_routewatch"))
        .args(["run", "-c"])
        .arg(&config.path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("kafka consumer edge") && stderr.contains("no.such.property"),
        "{stderr}"
    );
}
