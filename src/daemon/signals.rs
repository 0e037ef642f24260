//! Signals: SIGHUP reloads the configuration and the VRP file; SIGTERM and SIGINT stop the
//! daemon.

use std::sync::Arc;

use tokio::sync::{mpsc, watch, Notify};
use tracing::{info, warn};

use super::stopped;
use crate::reload::{ReloadRequest, Trigger};

/// The daemon's signal handlers, installed before READY=1 is sent: a SIGHUP or SIGTERM that
/// arrives as soon as systemd (or a script) sees the daemon ready is never lost to a handler
/// that a task has not yet installed (or, where the parent ignores SIGHUP, silently dropped).
pub struct Signals {
    #[cfg(unix)]
    hangup: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    terminate: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    interrupt: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    /// Installs the handlers (needs the runtime); one that cannot be installed is logged.
    pub fn install() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let install = |kind: SignalKind, name: &str| match signal(kind) {
                Ok(s) => Some(s),
                Err(e) => {
                    warn!(signal = name, error = %e, "cannot install a signal handler");
                    None
                }
            };
            Signals {
                hangup: install(SignalKind::hangup(), "SIGHUP"),
                terminate: install(SignalKind::terminate(), "SIGTERM"),
                interrupt: install(SignalKind::interrupt(), "SIGINT"),
            }
        }
        #[cfg(not(unix))]
        Signals {}
    }

    /// Starts the task that turns SIGHUP into a configuration reload (`reloads`) and a VRP file
    /// reload (`hup`), instead of the default termination.
    pub fn start_sighup(
        &mut self,
        hup: Arc<Notify>,
        reloads: mpsc::Sender<ReloadRequest>,
        shutdown: watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        #[cfg(unix)]
        let sighup = self.hangup.take();
        tokio::spawn(forward_sighup(
            #[cfg(unix)]
            sighup,
            hup,
            reloads,
            shutdown,
        ))
    }

    /// Resolves on SIGTERM or SIGINT (Ctrl-C where the handlers could not be installed).
    pub async fn terminated(self) {
        #[cfg(unix)]
        {
            match (self.terminate, self.interrupt) {
                (Some(mut term), Some(mut int)) => {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = int.recv() => {}
                    }
                }
                (Some(mut term), None) => {
                    term.recv().await;
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

async fn forward_sighup(
    #[cfg(unix)] sighup: Option<tokio::signal::unix::Signal>,
    hup: Arc<Notify>,
    reloads: mpsc::Sender<ReloadRequest>,
    mut shutdown: watch::Receiver<bool>,
) {
    #[cfg(unix)]
    {
        let Some(mut sighup) = sighup else {
            stopped(&mut shutdown).await;
            return;
        };
        loop {
            tokio::select! {
                _ = sighup.recv() => {
                    info!("SIGHUP: reloading the configuration and the VRP file (if configured)");
                    hup.notify_one();
                    let req = ReloadRequest {
                        trigger: Trigger::Signal,
                        reply: None,
                    };
                    // A reload already queued covers this one.
                    let _ = reloads.try_send(req);
                }
                _ = stopped(&mut shutdown) => return,
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (hup, reloads);
        stopped(&mut shutdown).await;
    }
}
