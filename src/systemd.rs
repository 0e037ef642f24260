//! systemd integration (`Type=notify`): readiness, reload and stop notifications, and a watchdog
//! that pings only while the engine makes progress.
//!
//! Every call is a no-op when the process was not started by systemd (`NOTIFY_SOCKET` unset), so
//! the daemon behaves the same by hand. Failures to notify are logged, never fatal.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sd_notify::NotifyState;
use tokio::sync::watch;
use tracing::warn;

fn send(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        warn!(error = %e, "systemd notification failed");
    }
}

/// READY=1: the registry is loaded and the listeners are bound.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// RELOADING=1 with MONOTONIC_USEC (required by systemd 253+ for `Type=notify-reload`, and
/// harmless before).
pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[NotifyState::Reloading, now]),
        Err(_) => send(&[NotifyState::Reloading]),
    }
}

/// STOPPING=1.
pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

/// The engine's heartbeat: the engine task bumps it every time round its loop (at least every
/// couple of seconds, on its timer).
#[derive(Debug, Default)]
pub struct Heartbeat(AtomicU64);

impl Heartbeat {
    /// Records progress.
    pub fn beat(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    fn value(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// When systemd asked for a watchdog (`WATCHDOG_USEC`), pings WATCHDOG=1 every half period, but
/// only if the engine's heartbeat moved since the previous ping: a stuck engine stops the pings
/// and systemd restarts the service.
pub async fn watchdog(heartbeat: Arc<Heartbeat>, mut shutdown: watch::Receiver<bool>) {
    let Some(period) = sd_notify::watchdog_enabled() else {
        return;
    };
    let every = (period / 2).max(Duration::from_millis(100));
    let mut last = heartbeat.value();
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopped(&mut shutdown) => return,
        }
        let now = heartbeat.value();
        if now != last {
            send(&[NotifyState::Watchdog]);
            last = now;
        } else {
            warn!("engine made no progress for a watchdog half-period; not pinging systemd");
        }
    }
}
