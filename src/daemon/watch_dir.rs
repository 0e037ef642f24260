//! The watched MRT directory: which files are new, and the state file that remembers the ones
//! already processed across restarts.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use tracing::warn;

/// Name of the file in the state directory that remembers processed watched MRT files.
pub const PROCESSED_FILE: &str = "mrt-processed.txt";

/// The set of watched-directory file names already processed (one per line).
pub fn load_processed(path: &Path) -> BTreeSet<String> {
    std::fs::read_to_string(path)
        .map(|s| {
            s.lines()
                .filter(|l| !l.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

/// Appends `name` to the state file.
pub fn remember_processed(path: &Path, name: &str) {
    let r = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| writeln!(f, "{name}"));
    if let Err(e) = r {
        warn!(file = %path.display(), error = %e, "cannot record a processed MRT file");
    }
}

/// New regular files in `dir`, in name order: not hidden, not yet processed, and not modified in
/// the last second (a file still being written is picked up on a later poll).
pub fn new_files(dir: &Path, processed: &BTreeSet<String>) -> Vec<String> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            warn!(dir = %dir.display(), error = %e, "cannot list the watched MRT directory");
            return Vec::new();
        }
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|e| {
            e.metadata().is_ok_and(|m| {
                m.is_file()
                    && m.modified().ok().and_then(|t| t.elapsed().ok())
                        >= Some(Duration::from_secs(1))
            })
        })
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| !n.starts_with('.') && !processed.contains(n))
        .collect();
    names.sort();
    names
}
