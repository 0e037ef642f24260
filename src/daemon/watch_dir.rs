//! The watched MRT directory: which files are new and complete, and the state file that
//! remembers the ones already processed across restarts.
//!
//! A file is a candidate once its size and modification time are the same at two polls in a
//! row; names a writer uses while writing are never candidates (hidden files, `*.tmp`, `*.part`,
//! `*.partial`, a `~` suffix). The feed then checks that a gzip/bzip2 file's stream is complete
//! ([`crate::ingest::mrt::is_complete`]) before reading it.
//!
//! The state file has one line per processed file: `name<TAB>size<TAB>mtime` (mtime in
//! nanoseconds since the epoch). A file is processed again if a file of that name appears with
//! another size or modification time (a new file replacing an old one under the same name);
//! lines of an older version (the name alone) match any file of that name.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;
use std::time::UNIX_EPOCH;

use tracing::warn;

/// Name of the file in the state directory that remembers processed watched MRT files.
pub const PROCESSED_FILE: &str = "mrt-processed.txt";

/// A file's size and modification time (nanoseconds since the epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Stamp {
    /// Size in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: u128,
}

/// Processed file names, each with the stamp it had (`None`: a line of an older version).
pub type Processed = BTreeMap<String, Option<Stamp>>;

/// The processed files of the state file.
pub fn load_processed(path: &Path) -> Processed {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Processed::new();
    };
    let mut out = Processed::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        let mut fields = line.split('\t');
        let name = fields.next().unwrap_or_default().to_string();
        let size = fields.next().and_then(|s| s.parse().ok());
        let mtime = fields.next().and_then(|s| s.parse().ok());
        let stamp = size
            .zip(mtime)
            .map(|(size, mtime_ns)| Stamp { size, mtime_ns });
        // A later line (the file replaced and read again) wins.
        out.insert(name, stamp);
    }
    out
}

/// Whether `name` with `stamp` was processed.
pub fn is_processed(processed: &Processed, name: &str, stamp: Stamp) -> bool {
    match processed.get(name) {
        Some(None) => true,
        Some(Some(s)) => *s == stamp,
        None => false,
    }
}

/// Appends `name` and its stamp to the state file.
pub fn remember_processed(path: &Path, name: &str, stamp: Stamp) {
    let r = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| writeln!(f, "{name}\t{}\t{}", stamp.size, stamp.mtime_ns));
    if let Err(e) = r {
        warn!(file = %path.display(), error = %e, "cannot record a processed MRT file");
    }
}

/// Whether `name` is one a writer uses while writing (never read).
pub fn is_temporary(name: &str) -> bool {
    name.starts_with('.')
        || name.ends_with('~')
        || [".tmp", ".part", ".partial"]
            .iter()
            .any(|s| name.ends_with(s))
}

/// The regular files of `dir` with their stamps, in name order (temporary names left out).
pub fn list(dir: &Path) -> Vec<(String, Stamp)> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            warn!(dir = %dir.display(), error = %e, "cannot list the watched MRT directory");
            return Vec::new();
        }
    };
    let mut files: Vec<(String, Stamp)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let m = e.metadata().ok().filter(|m| m.is_file())?;
            let name = e.file_name().into_string().ok()?;
            let mtime_ns = m
                .modified()
                .ok()?
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            Some((
                name,
                Stamp {
                    size: m.len(),
                    mtime_ns,
                },
            ))
        })
        .filter(|(n, _)| !is_temporary(n))
        .collect();
    files.sort_by(|a, b| a.0.cmp(&b.0));
    files
}

/// Files of `dir` not yet processed whose stamp is the one `seen` at the previous poll (a file
/// still growing is left for a later poll), in name order. `seen` is updated to this poll.
pub fn stable_new_files(
    dir: &Path,
    processed: &Processed,
    seen: &mut BTreeMap<String, Stamp>,
) -> Vec<(String, Stamp)> {
    let now: BTreeMap<String, Stamp> = list(dir)
        .into_iter()
        .filter(|(n, s)| !is_processed(processed, n, *s))
        .collect();
    let stable = now
        .iter()
        .filter(|(n, s)| seen.get(*n) == Some(*s))
        .map(|(n, s)| (n.clone(), *s))
        .collect();
    *seen = now;
    stable
}

/// The processed files still in `dir` unchanged, in name order: what a restart re-reads.
pub fn processed_present(dir: &Path, processed: &Processed) -> Vec<String> {
    list(dir)
        .into_iter()
        .filter(|(n, s)| is_processed(processed, n, *s))
        .map(|(n, _)| n)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_names_are_skipped() {
        for n in [".x.gz", "a.tmp", "a.gz.part", "a.partial", "a.gz~"] {
            assert!(is_temporary(n), "{n}");
        }
        for n in ["updates.20240101.0000.gz", "rib.bz2", "a.mrt"] {
            assert!(!is_temporary(n), "{n}");
        }
    }

    #[test]
    fn state_file_keeps_stamps_and_reads_old_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(PROCESSED_FILE);
        std::fs::write(&path, "old.gz\n").unwrap();
        let s = Stamp {
            size: 10,
            mtime_ns: 1_700_000_000_123_456_789,
        };
        remember_processed(&path, "new.gz", s);
        let p = load_processed(&path);
        assert!(is_processed(&p, "old.gz", s));
        assert!(is_processed(&p, "new.gz", s));
        assert!(!is_processed(&p, "new.gz", Stamp { size: 11, ..s }));
        assert!(!is_processed(&p, "other.gz", s));
    }

    #[test]
    fn a_file_is_stable_after_two_polls_with_one_stamp() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.mrt"), b"abc").unwrap();
        std::fs::write(dir.path().join("b.tmp"), b"abc").unwrap();
        let mut seen = BTreeMap::new();
        let p = Processed::new();
        assert!(stable_new_files(dir.path(), &p, &mut seen).is_empty());
        let stable = stable_new_files(dir.path(), &p, &mut seen);
        assert_eq!(stable.len(), 1);
        assert_eq!(stable[0].0, "a.mrt");
        std::fs::write(dir.path().join("a.mrt"), b"abcdef").unwrap();
        assert!(stable_new_files(dir.path(), &p, &mut seen).is_empty());
    }
}
