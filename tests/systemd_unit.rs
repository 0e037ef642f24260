//! The systemd unit and the notify protocol: `systemd-analyze verify` is clean, the hardening
//! rates "OK" or better (exposure <= 2.0), and a daemon started with `NOTIFY_SOCKET` sends
//! READY=1, RELOADING=1 with MONOTONIC_USEC then READY=1 on a SIGHUP sent the moment it is ready,
//! WATCHDOG=1 while its engine runs, and STOPPING=1 on SIGTERM.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::time::{Duration, Instant};

use support::daemon::{Daemon, EXIT_TIMEOUT};
use support::*;

fn unit() -> std::path::PathBuf {
    repo("systemd/routewatch.service")
}

#[test]
fn unit_is_hardened_to_an_exposure_of_at_most_2() {
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=yes"])
        .arg(unit())
        .output()
        .expect("systemd-analyze (Debian package systemd) is needed");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let line = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no exposure line in:\n{text}"));
    let score: f64 = line
        .split(':')
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("cannot read the score from {line:?}"));
    assert!(score <= 2.0, "exposure {score} > 2.0:\n{text}");
}

#[test]
fn unit_verifies_cleanly() {
    // The unit names /usr/bin/routewatch; verify a copy that names the binary under test.
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(unit())
        .unwrap()
        .replace("/usr/bin/routewatch", env!("CARGO_BIN_EXE_routewatch"));
    let copy = dir.path().join("routewatch.service");
    std::fs::write(&copy, text).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .expect("systemd-analyze (Debian package systemd) is needed");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let problems: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("routewatch.service"))
        .collect();
    assert!(out.status.success() && problems.is_empty(), "{stderr}");
}

fn receive(sock: &UnixDatagram, want: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        if let Ok(n) = sock.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]).to_string();
            if msg.lines().any(|l| l == want) {
                return msg;
            }
            seen.push(msg);
        }
    }
    panic!("no {want:?} within {timeout:?}; received {seen:?}");
}

#[test]
fn daemon_speaks_the_notify_protocol() {
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let config = DaemonConfig::new()
        .location(Location::new("x", &[64496], &["203.0.113.0/24"]))
        .write(dir.path());
    // Started the way some supervisors and CI runners start it, with SIGHUP ignored (inherited
    // across exec): a SIGHUP that came before the daemon's own handler would vanish silently.
    let mut daemon = Daemon::start_with_sighup_ignored(
        &config,
        &[
            ("NOTIFY_SOCKET", sock_path.as_os_str()),
            ("WATCHDOG_USEC", "1000000".as_ref()),
        ],
    );
    let ready = receive(&sock, "READY=1", Duration::from_secs(20));
    assert!(ready.contains("STATUS=1 locations, 1 prefixes"), "{ready}");
    // SIGHUP at once: the handlers are in place before READY=1 (a signal sent the moment the
    // daemon says it is ready is not lost, nor does it kill the daemon).
    daemon.signal("HUP");
    let reloading = receive(&sock, "RELOADING=1", Duration::from_secs(10));
    assert!(
        reloading.lines().any(|l| l.starts_with("MONOTONIC_USEC=")),
        "{reloading}"
    );
    receive(&sock, "READY=1", Duration::from_secs(10));
    receive(&sock, "WATCHDOG=1", Duration::from_secs(10));
    daemon.signal("TERM");
    receive(&sock, "STOPPING=1", Duration::from_secs(10));
    let status = daemon.wait_exit(EXIT_TIMEOUT).unwrap_or_else(|| {
        panic!(
            "no exit within {EXIT_TIMEOUT:?} of SIGTERM\n{}",
            daemon.log()
        )
    });
    assert!(status.success(), "{status}");
}
