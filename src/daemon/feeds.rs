//! The MRT feed task: the configured files first (the baseline, RIBs before updates), then the
//! watched directory. Each file is read and matched on a blocking thread; its batches go to the
//! engine task through a bounded channel (a slow engine slows the reader; nothing is dropped).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tracing::error;

use super::stopped;
use super::watch_dir::{load_processed, new_files, remember_processed, PROCESSED_FILE};
use crate::config::Config;
use crate::ingest::mrt::{self, Batch, FileReport};
use crate::registry::{Registry, SharedRegistry};

/// Messages from the MRT feed to the engine task.
pub enum FeedMessage {
    /// Matched routes of a file.
    Batch(Batch),
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

/// Reads one file on a blocking thread, sending its batches to the engine task.
async fn process_file(
    path: PathBuf,
    registry: Arc<Registry>,
    tx: mpsc::Sender<FeedMessage>,
) -> FileOutcome {
    // The registry in force when the file starts; a reload meanwhile is caught up with by the
    // engine (it matches batches of an older registry again).
    let joined = tokio::task::spawn_blocking(move || {
        let mut open = true;
        let r = mrt::read_file(&path, &registry, |b| {
            open = tx.blocking_send(FeedMessage::Batch(b)).is_ok();
            open
        });
        let (outcome, msg) = match r {
            Ok(report) => (FileOutcome::Read, FeedMessage::FileDone(report)),
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
    tx: &mpsc::Sender<FeedMessage>,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<FileOutcome> {
    if *shutdown.borrow() {
        return None;
    }
    tokio::select! {
        o = process_file(path, registry.current(), tx.clone()) => {
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
    for (path, _) in ordered {
        if process_or_stop(path, &registry, &tx, &mut shutdown)
            .await
            .is_none()
        {
            return;
        }
    }
    if tx.send(FeedMessage::InitialLoadDone).await.is_err() {
        return;
    }
    let Some(dir) = config.mrt.watch_dir.clone() else {
        return;
    };
    let state_file = config.state_dir.join(PROCESSED_FILE);
    if let Err(e) = std::fs::create_dir_all(&config.state_dir) {
        error!(dir = %config.state_dir.display(), error = %e, "cannot create the state directory; processed MRT files will not be remembered across restarts");
    }
    let mut processed = load_processed(&state_file);
    // Files that could not be opened are retried after a restart, not on every poll.
    let mut unreadable: BTreeSet<String> = BTreeSet::new();
    let mut tick = tokio::time::interval(Duration::from_secs(config.mrt.watch_interval_seconds));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopped(&mut shutdown) => return,
        }
        for name in new_files(&dir, &processed) {
            if unreadable.contains(&name) {
                continue;
            }
            match process_or_stop(dir.join(&name), &registry, &tx, &mut shutdown).await {
                Some(FileOutcome::Read) => {
                    remember_processed(&state_file, &name);
                    processed.insert(name);
                }
                Some(_) => {
                    unreadable.insert(name);
                }
                None => return,
            }
        }
    }
}
