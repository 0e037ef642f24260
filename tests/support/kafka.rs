//! A Kafka-protocol broker for tests: `tansu` (Apache-2.0, crates.io) with its in-memory storage
//! on a free 127.0.0.1 port, stopped by pid (a [`ChildGuard`]); topics made with its CLI;
//! OpenBMP-wrapped BMP produced with rdkafka (the bundled librdkafka routewatch itself uses).

use std::net::{IpAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

use super::daemon::{free_port, poll};
use super::process::ChildGuard;

/// How `.ci/run` installs the broker (about 15 minutes of compiling on 2 cores).
pub const INSTALL: &str =
    "cargo install tansu --version 0.6.0 --features dynostore --locked --root /usr/local";

/// The `tansu` binary: on PATH, else where the development machine keeps it.
pub fn tansu_binary() -> PathBuf {
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let p = dir.join("tansu");
            if p.is_file() {
                return p;
            }
        }
    }
    PathBuf::from("/work/tools/tansu/bin/tansu")
}

/// A running tansu broker.
pub struct Tansu {
    /// The process.
    pub process: ChildGuard,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl Tansu {
    /// Starts a broker with in-memory storage; waits (bounded) until it accepts connections.
    pub fn start(dir: &Path) -> Tansu {
        let port = free_port();
        let url = format!("tcp://127.0.0.1:{port}");
        let mut cmd = Command::new(tansu_binary());
        cmd.args([
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
            "--storage-engine",
            "memory://tansu/",
        ])
        .env("RUST_LOG", "warn");
        let process = ChildGuard::start("tansu", &mut cmd, Some(&dir.join("tansu.log")), INSTALL);
        let mut t = Tansu { process, port };
        poll("tansu accepts connections", Duration::from_secs(30), || {
            t.process.assert_running();
            TcpStream::connect(("127.0.0.1", port))
                .map(drop)
                .map_err(|e| e.to_string())
        });
        t
    }

    /// `host:port` for `brokers`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Creates `topic` with `partitions` partitions (bounded wait).
    pub fn create_topic(&mut self, topic: &str, partitions: u32) {
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let mut cmd = Command::new(tansu_binary());
        cmd.args([
            "topic",
            "create",
            topic,
            "--partitions",
            &partitions.to_string(),
            "--broker",
            &url,
        ]);
        let mut child = ChildGuard::start("tansu topic create", &mut cmd, None, INSTALL);
        let status = child
            .wait_exit(Duration::from_secs(30))
            .unwrap_or_else(|| panic!("tansu topic create {topic} did not finish in 30 s"));
        assert!(status.success(), "tansu topic create {topic}: {status}");
    }

    /// A producer to this broker.
    pub fn producer(&self) -> KafkaProducer {
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", self.address())
            .set("linger.ms", "5")
            .set("message.timeout.ms", "30000")
            .create()
            .expect("producer");
        KafkaProducer { producer }
    }
}

/// An rdkafka producer.
pub struct KafkaProducer {
    producer: BaseProducer,
}

impl KafkaProducer {
    /// Sends `values` to `topic` / `partition` keyed by `key`, then waits (bounded) until the
    /// broker acknowledged them all.
    pub fn send(&self, topic: &str, partition: i32, key: &str, values: &[Vec<u8>]) {
        self.queue(topic, partition, key, values);
        self.flush(topic);
    }

    /// Waits (bounded) until the broker acknowledged everything queued.
    pub fn flush(&self, topic: &str) {
        self.producer
            .flush(Duration::from_secs(120))
            .unwrap_or_else(|e| panic!("flush to {topic}: {e}"));
    }

    /// Queues `values` for `topic` / `partition` keyed by `key` (waiting, bounded, while the
    /// producer's queue is full); [`KafkaProducer::flush`] waits for them.
    pub fn queue(&self, topic: &str, partition: i32, key: &str, values: &[Vec<u8>]) {
        for v in values {
            let deadline = Instant::now() + Duration::from_secs(30);
            let mut record = BaseRecord::to(topic)
                .partition(partition)
                .key(key)
                .payload(v.as_slice());
            loop {
                match self.producer.send(record) {
                    Ok(()) => break,
                    Err((e, r)) => {
                        assert!(Instant::now() < deadline, "produce to {topic}: {e}");
                        record = r;
                        self.producer.poll(Duration::from_millis(50));
                    }
                }
            }
            self.producer.poll(Duration::ZERO);
        }
    }
}

/// The BMP messages of a raw router stream, each wrapped as an OpenBMP collector named
/// `collector` publishes them for `router`.
pub fn openbmp_messages(stream: &[u8], collector: &str, router: IpAddr) -> Vec<Vec<u8>> {
    routewatch::ingest::kafka::split_messages(stream, u32::MAX)
        .iter()
        .map(|m| routewatch::ingest::kafka::encode(collector, router, 1_700_000_000.0, m))
        .collect()
}
