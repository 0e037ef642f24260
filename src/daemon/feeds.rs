//! The MRT feed task: the configured files first (the baseline, RIBs before updates), then (after
//! a restart) the watched files already processed before it, re-read quietly to rebuild their
//! routes (the newest RIB among them and the update files after it; their events are already in
//! the history), then the watched directory. Each file is read and matched on a blocking thread; its batches go to the
//! engine task through a bounded channel (a slow engine slows the reader; nothing is dropped).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tracing::{error, info, warn};

use super::stopped;
use super::watch_dir::{
    load_processed, processed_present, remember_processed, stable_new_files, Stamp, PROCESSED_FILE,
};
use crate::config::Config;
use crate::ingest::mrt::{self, Batch, FileReport, Limits};
use crate::registry::{Registry, SharedRegistry};

/// Messages from the MRT feed to the engine task.
pub enum FeedMessage {
    /// Matched routes of a file.
    Batch(Batch),
    /// Matched routes of a watched file processed before a restart, re-read to rebuild route
    /// state: applied without recording events (the history has them already).
    Replaying(Batch),
    /// A watched file processed before a restart was re-read.
    Restored(FileReport),
    /// A file was read to its end.
    FileDone(FileReport),
    /// A file could not be read.
    FileFailed(String),
    /// The configured files are in: the daemon may report ready.
    InitialLoadDone,
}

/// What became of one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileOutcome {
    /// Read to the end (parse errors, if any, were counted).
    Read,
    /// Could not be opened.
    Unreadable,
    /// The engine task is gone (shutdown): stop feeding.
    EngineGone,
}

/// How a file is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// A new file.
    New,
    /// A watched file still incomplete when its wait ran out: read as it is.
    WaitedOut,
    /// A watched file processed before a restart (no events recorded).
    Replaying,
}

/// Reads one file on a blocking thread, sending its batches to the engine task.
async fn process_file(
    path: PathBuf,
    registry: Arc<Registry>,
    limits: Limits,
    mode: Mode,
    tx: mpsc::Sender<FeedMessage>,
) -> FileOutcome {
    // The registry in force when the file starts; a reload meanwhile is caught up with by the
    // engine (it matches batches of an older registry again).
    let joined = tokio::task::spawn_blocking(move || {
        let mut open = true;
        let r = mrt::read_file_limited(&path, &registry, mrt::Decoder::default(), limits, |b| {
            let msg = match mode {
                Mode::Replaying => FeedMessage::Replaying(b),
                _ => FeedMessage::Batch(b),
            };
            open = tx.blocking_send(msg).is_ok();
            open
        });
        let (outcome, msg) = match r {
            Ok(report) if mode == Mode::Replaying => {
                (FileOutcome::Read, FeedMessage::Restored(report))
            }
            Ok(mut report) => {
                report.waited_out = mode == Mode::WaitedOut;
                (FileOutcome::Read, FeedMessage::FileDone(report))
            }
            Err(e) => (
                FileOutcome::Unreadable,
                FeedMessage::FileFailed(e.to_string()),
            ),
        };
        if open && tx.blocking_send(msg).is_ok() {
            outcome
        } else {
            FileOutcome::EngineGone
        }
    })
    .await;
    joined.unwrap_or(FileOutcome::EngineGone)
}

/// Processes one file unless shutdown comes first; `None` means stop feeding.
async fn process_or_stop(
    path: PathBuf,
    registry: &SharedRegistry,
    limits: Limits,
    mode: Mode,
    tx: &mpsc::Sender<FeedMessage>,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<FileOutcome> {
    if *shutdown.borrow() {
        return None;
    }
    tokio::select! {
        o = process_file(path, registry.current(), limits, mode, tx.clone()) => {
            (o != FileOutcome::EngineGone).then_some(o)
        }
        _ = stopped(shutdown) => None,
    }
}

/// The MRT feed: configured files, then (with `[mrt] watch-dir`) the watched directory until
/// shutdown.
pub async fn mrt_feed(
    config: Config,
    registry: SharedRegistry,
    tx: mpsc::Sender<FeedMessage>,
    mut shutdown: watch::Receiver<bool>,
) {
    // Classifying opens every file: do it on a blocking thread (a FIFO or a hung mount must not
    // hold up a runtime worker), and give way to shutdown.
    let files = config.mrt.files.clone();
    let classify = tokio::task::spawn_blocking(move || mrt::order_for_replay(&files));
    let classified = tokio::select! {
        r = classify => r.ok(),
        _ = stopped(&mut shutdown) => return,
    };
    let ordered = match classified {
        Some(Ok(o)) => o,
        other => {
            // An unreadable configured file is counted and logged; the daemon still serves, and
            // the files are read in the order given.
            if let Some(Err(e)) = other {
                let _ = tx.send(FeedMessage::FileFailed(e.to_string())).await;
            }
            config
                .mrt
                .files
                .iter()
                .map(|p| (p.clone(), mrt::MrtFileKind::Unknown))
                .collect()
        }
    };
    let limits = config.mrt.limits();
    for (path, _) in ordered {
        if process_or_stop(path, &registry, limits, Mode::New, &tx, &mut shutdown)
            .await
            .is_none()
        {
            return;
        }
    }
    let watched = config.mrt.watch_dir.clone().map(|dir| {
        let state_file = config.state_dir.join(PROCESSED_FILE);
        if let Err(e) = std::fs::create_dir_all(&config.state_dir) {
            error!(dir = %config.state_dir.display(), error = %e, "cannot create the state directory; processed MRT files will not be remembered across restarts");
        }
        let processed = load_processed(&state_file);
        (dir, state_file, processed)
    });
    // After a restart: the routes the watched files gave, before the directory is polled.
    if let Some((dir, _, processed)) = &watched {
        let present = processed_present(dir, processed);
        let dir2 = dir.clone();
        let chosen = tokio::task::spawn_blocking(move || restore_order(&dir2, present));
        let chosen = tokio::select! {
            r = chosen => r.unwrap_or_default(),
            _ = stopped(&mut shutdown) => return,
        };
        if !chosen.is_empty() {
            info!(
                files = chosen.len(),
                "re-reading watched MRT files processed before the restart"
            );
        }
        for name in chosen {
            if process_or_stop(
                dir.join(&name),
                &registry,
                limits,
                Mode::Replaying,
                &tx,
                &mut shutdown,
            )
            .await
            .is_none()
            {
                return;
            }
        }
    }
    if tx.send(FeedMessage::InitialLoadDone).await.is_err() {
        return;
    }
    let Some((dir, state_file, mut processed)) = watched else {
        return;
    };
    // Files that could not be opened are retried after a restart, not on every poll.
    let mut unreadable: BTreeSet<(String, Stamp)> = BTreeSet::new();
    // Stamps at the previous poll (a file is read once its stamp is stable).
    let mut seen: BTreeMap<String, Stamp> = BTreeMap::new();
    // Compressed files found incomplete, since when (per stamp: a file that grows starts over).
    let mut incomplete: BTreeMap<String, (Stamp, Instant)> = BTreeMap::new();
    let wait = Duration::from_secs(config.mrt.incomplete_file_timeout_seconds);
    let mut tick = tokio::time::interval(Duration::from_secs(config.mrt.watch_interval_seconds));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopped(&mut shutdown) => return,
        }
        for (name, stamp) in stable_new_files(&dir, &processed, &mut seen) {
            if unreadable.contains(&(name.clone(), stamp)) {
                continue;
            }
            let path = dir.join(&name);
            let check = tokio::task::spawn_blocking({
                let path = path.clone();
                move || mrt::is_complete(&path, limits)
            });
            let complete = tokio::select! {
                r = check => r.ok(),
                _ = stopped(&mut shutdown) => return,
            };
            let mode = match complete {
                Some(Ok(true)) => {
                    incomplete.remove(&name);
                    Mode::New
                }
                Some(Ok(false)) => {
                    let since = match incomplete.get(&name) {
                        Some((s, since)) if *s == stamp => *since,
                        _ => {
                            warn!(file = %path.display(), "watched MRT file incomplete (compressed stream cut short); waiting for the rest");
                            incomplete.insert(name.clone(), (stamp, Instant::now()));
                            Instant::now()
                        }
                    };
                    if since.elapsed() < wait {
                        continue;
                    }
                    warn!(file = %path.display(), waited_seconds = wait.as_secs(), "watched MRT file still incomplete; read as it is (mrt.incomplete-file-timeout-seconds)");
                    incomplete.remove(&name);
                    Mode::WaitedOut
                }
                // Unreadable: reading reports it.
                _ => Mode::New,
            };
            match process_or_stop(path, &registry, limits, mode, &tx, &mut shutdown).await {
                Some(FileOutcome::Read) => {
                    remember_processed(&state_file, &name, stamp);
                    processed.insert(name, Some(stamp));
                }
                Some(_) => {
                    unreadable.insert((name, stamp));
                }
                None => return,
            }
        }
    }
}

/// Which of the processed watched files `names` (in name order) a restart re-reads: the newest
/// RIB among them and the update files after it, in name order; without a RIB, every update
/// file.
fn restore_order(dir: &Path, names: Vec<String>) -> Vec<String> {
    let kinds: Vec<(String, mrt::MrtFileKind)> = names
        .into_iter()
        .filter_map(|n| Some((n.clone(), mrt::classify(&dir.join(&n)).ok()?)))
        .collect();
    let start = kinds
        .iter()
        .rposition(|(_, k)| *k == mrt::MrtFileKind::Rib)
        .unwrap_or(0);
    kinds
        .into_iter()
        .enumerate()
        .filter(|(i, (_, k))| *i == start || *k == mrt::MrtFileKind::Updates)
        .filter(|(i, (_, k))| *i >= start && *k != mrt::MrtFileKind::Unknown)
        .map(|(_, (n, _))| n)
        .collect()
}
