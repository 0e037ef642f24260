//! BMP ingest benchmark: N concurrent synthetic BMP sessions over loopback, each sending a full
//! table (Initiation, Peer Up, Route Monitoring UPDATEs packed with IPv4 prefixes), into a real
//! `routewatch run` with a 10,000-prefix registry. Reports the sustained routes/s (from the first
//! byte sent to `routewatch_routes_processed_total{feed="bmp"}` reaching the total) and the
//! daemon's memory per tracked route (RSS growth / `routewatch_tracked_routes`).
//!
//! Run: `cargo bench --bench bmp_ingest` (env: `BMP_BENCH_PREFIXES`, default 1,000,000 per
//! session; `BMP_BENCH_SESSIONS`, default "1,4"; `BMP_BENCH_REGISTRY`, registered prefixes,
//! default 10,000 — set it to the table size to measure memory per tracked route;
//! `ROUTEWATCH_BIN`, another build's binary to run instead of this one, for before/after
//! comparisons). Figures go to BENCHMARKS.md.

// Benchmark set-up; a failure to set up is a panic with a message.
#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Prefixes per Route Monitoring message (and per origin).
const PER_UPDATE: u32 = 500;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn bmp(msg_type: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![3];
    m.extend_from_slice(&((6 + body.len()) as u32).to_be_bytes());
    m.push(msg_type);
    m.extend_from_slice(body);
    m
}

fn per_peer(peer: u32, asn: u32) -> Vec<u8> {
    let mut h = vec![0u8, 0]; // global peer, no flags (IPv4, pre-policy, 4-byte AS)
    h.extend_from_slice(&[0; 8]); // distinguisher
    h.extend_from_slice(&[0; 12]);
    h.extend_from_slice(&(0xC000_0200u32 + peer).to_be_bytes()); // 192.0.2.x
    h.extend_from_slice(&asn.to_be_bytes());
    h.extend_from_slice(&(0x0A00_0000u32 + peer).to_be_bytes()); // BGP id
    h.extend_from_slice(&1_700_000_000u32.to_be_bytes());
    h.extend_from_slice(&0u32.to_be_bytes());
    h
}

fn open_msg(asn: u32) -> Vec<u8> {
    // OPEN with the 4-octet AS capability.
    let caps = {
        let mut c = vec![65u8, 4];
        c.extend_from_slice(&asn.to_be_bytes());
        c
    };
    let mut opt = vec![2u8, caps.len() as u8];
    opt.extend_from_slice(&caps);
    let mut body = vec![4u8];
    body.extend_from_slice(&23456u16.to_be_bytes());
    body.extend_from_slice(&180u16.to_be_bytes());
    body.extend_from_slice(&[10, 0, 0, 1]);
    body.push(opt.len() as u8);
    body.extend_from_slice(&opt);
    bgp(1, &body)
}

fn bgp(ty: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![0xff; 16];
    m.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
    m.push(ty);
    m.extend_from_slice(body);
    m
}

fn update(path: &[u32], prefixes: &[u32]) -> Vec<u8> {
    let mut attrs = vec![0x40, 1, 1, 0];
    let seg_len = 2 + 4 * path.len();
    attrs.extend_from_slice(&[0x40, 2, seg_len as u8, 2, path.len() as u8]);
    for a in path {
        attrs.extend_from_slice(&a.to_be_bytes());
    }
    attrs.extend_from_slice(&[0x40, 3, 4, 192, 0, 2, 1]);
    let mut body = vec![0, 0];
    body.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    body.extend_from_slice(&attrs);
    for p in prefixes {
        body.push(24);
        body.extend_from_slice(&p.to_be_bytes()[..3]);
    }
    bgp(2, &body)
}

/// A full table for one router session with one monitored peer: `n` /24 prefixes.
fn stream(session: u32, n: u32) -> Vec<u8> {
    let asn = 65_000 + session;
    let mut s = Vec::with_capacity(n as usize * 5);
    let mut init = vec![0, 2];
    let name = format!("bench-router-{session}");
    init.extend_from_slice(&(name.len() as u16).to_be_bytes());
    init.extend_from_slice(name.as_bytes());
    s.extend(bmp(4, &init));
    let mut up = per_peer(session, asn);
    up.extend_from_slice(&[0; 12]);
    up.extend_from_slice(&[192, 0, 2, 254]);
    up.extend_from_slice(&179u16.to_be_bytes());
    up.extend_from_slice(&40_000u16.to_be_bytes());
    up.extend(open_msg(64_999));
    up.extend(open_msg(asn));
    s.extend(bmp(3, &up));
    let mut i = 0;
    while i < n {
        let chunk: Vec<u32> = (i..(i + PER_UPDATE).min(n))
            .map(|k| 0x0100_0000 + (k << 8))
            .collect();
        let origin = 1 + (i / PER_UPDATE) % 60_000;
        let mut rm = per_peer(session, asn);
        rm.extend(update(&[asn, 3356, origin], &chunk));
        s.extend(bmp(0, &rm));
        i += PER_UPDATE;
    }
    // End-of-RIB (IPv4 unicast: an empty UPDATE).
    let mut eor = per_peer(session, asn);
    eor.extend(bgp(2, &[0, 0, 0, 0]));
    s.extend(bmp(0, &eor));
    s
}

fn http_get(port: u16, path: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

fn metric(text: &str, name_and_labels: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name_and_labels))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn run(sessions: u32, prefixes: u32, registry: u32, dir: &std::path::Path) {
    let http = free_port();
    // The kernel may offer the just-released port again: the two listeners need two ports.
    let bmp_port = loop {
        let p = free_port();
        if p != http {
            break p;
        }
    };
    // `registry` registered /24s spread evenly over the table, each registered with the origin
    // the stream announces it from (one location per origin), so no anomaly is tracked and the
    // memory measured is route state.
    let step = (prefixes / registry.max(1)).max(1);
    let mut by_origin: std::collections::BTreeMap<u32, Vec<String>> = Default::default();
    for k in (0..registry.min(prefixes)).map(|k| k * step) {
        let p = 0x0100_0000u32 + (k << 8);
        let origin = 1 + (k / PER_UPDATE) % 60_000;
        by_origin.entry(origin).or_default().push(format!(
            "\"{}.{}.{}.0/24\"",
            p >> 24,
            (p >> 16) & 255,
            (p >> 8) & 255
        ));
    }
    let mut cfg_text = format!(
        "state-dir = \"{}\"\n[http]\nlisten = \"127.0.0.1:{http}\"\n[bmp]\nlisten = \"127.0.0.1:{bmp_port}\"\nallow = [\"127.0.0.0/8\"]\n",
        dir.display()
    );
    for (origin, list) in &by_origin {
        cfg_text.push_str(&format!(
            "[[location]]\nname = \"as{origin}\"\norigin-asns = [{origin}]\nprefixes = [{}]\n",
            list.join(",")
        ));
    }
    let cfg = dir.join("bench.toml");
    std::fs::write(&cfg, cfg_text).unwrap();
    // Another build's binary (a before/after comparison) with ROUTEWATCH_BIN.
    let bin = std::env::var_os("ROUTEWATCH_BIN")
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_routewatch").into());
    let child = Command::new(bin)
        .args(["run", "-c"])
        .arg(&cfg)
        .env("RUST_LOG", "warn")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let daemon = Daemon(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", http)).is_err() {
        assert!(Instant::now() < deadline, "routewatch did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let streams: Vec<Vec<u8>> = (0..sessions).map(|s| stream(s, prefixes)).collect();
    let bytes: usize = streams.iter().map(Vec::len).sum();
    let rss_before = rss_kib(pid);
    let start = Instant::now();
    let senders: Vec<_> = streams
        .into_iter()
        .map(|data| {
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(("127.0.0.1", bmp_port)).unwrap();
                s.write_all(&data).unwrap();
                s // keep the session open until the measurement is done
            })
        })
        .collect();
    let total = f64::from(sessions) * f64::from(prefixes);
    let processed = loop {
        let text = http_get(http, "/metrics");
        let n = metric(&text, "routewatch_routes_processed_total{feed=\"bmp\"}");
        if n >= total {
            break n;
        }
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "stalled at {n} of {total}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let elapsed = start.elapsed().as_secs_f64();
    let text = http_get(http, "/metrics");
    let tracked = metric(&text, "routewatch_tracked_routes");
    let rss_after = rss_kib(pid);
    let conns: Vec<TcpStream> = senders.into_iter().map(|h| h.join().unwrap()).collect();
    println!(
        "sessions={sessions} prefixes/session={prefixes} registered={registry} bytes={:.1}MiB routes={processed} time={elapsed:.3}s \
         routes/s={:.2}M messages/s={:.0}k tracked={tracked} rss_growth={:.1}MiB bytes/tracked_route={:.0}",
        bytes as f64 / 1048576.0,
        processed / elapsed / 1e6,
        (total / f64::from(PER_UPDATE)) / elapsed / 1e3,
        (rss_after.saturating_sub(rss_before)) as f64 / 1024.0,
        if tracked > 0.0 { (rss_after.saturating_sub(rss_before)) as f64 * 1024.0 / tracked } else { 0.0 },
    );
    drop(conns);
    drop(daemon);
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs this with no work to do.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let prefixes: u32 = std::env::var("BMP_BENCH_PREFIXES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let sessions: Vec<u32> = std::env::var("BMP_BENCH_SESSIONS")
        .unwrap_or_else(|_| "1,4".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let dir = std::env::temp_dir().join(format!("routewatch-bmp-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let registry: u32 = std::env::var("BMP_BENCH_REGISTRY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    for n in sessions {
        run(n, prefixes, registry, &dir);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
