//! MRT ingest: TABLE_DUMP / TABLE_DUMP_V2 RIB dumps and BGP4MP update dumps, plain, gzip or
//! bzip2 (detected by magic bytes, not by file name).
//!
//! Decoding uses bgpkit-parser's *fallible* route iterator: a corrupt record is reported, counted
//! under a bounded `error` label and logged (the first few per file, then a summary), and the rest
//! of the file is still processed. Every route is matched against the registry first; unmatched
//! routes are dropped before anything is allocated for them. Matched routes leave in
//! [`Batch`]es, together with the counts the metrics need.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufReader, Read};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bgpkit_parser::models::{AsPathSegment, ElemType};
use bgpkit_parser::{BgpkitParser, ParserError};
use serde::Serialize;
use tracing::warn;

use crate::model::{AsPath, Origin, PeerKey, RouteChange, RouteUpdate};
use crate::registry::Registry;

/// Route source name of MRT data (the `feed` label and [`PeerKey::source`]).
pub const FEED: &str = "mrt";

/// Matched routes per batch handed to the engine.
pub const BATCH_SIZE: usize = 4096;

/// Parse errors logged individually per file before the rest are only counted.
const LOGGED_ERRORS_PER_FILE: u64 = 5;

/// Errors that stop a file from being read at all.
#[derive(Debug, thiserror::Error)]
pub enum MrtError {
    /// The file could not be opened or its first bytes read.
    #[error("{}: {source}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// What kind of MRT file this is, from its first record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MrtFileKind {
    /// TABLE_DUMP or TABLE_DUMP_V2: a RIB snapshot, loaded as the baseline.
    Rib,
    /// BGP4MP / BGP4MP_ET / legacy BGP: updates, applied in time order after the RIBs.
    Updates,
    /// Empty or not recognisable.
    Unknown,
}

/// A group of matched routes with the counts of what was read to produce them.
#[derive(Debug, Default)]
pub struct Batch {
    /// Matched route updates, in file order.
    pub updates: Vec<RouteUpdate>,
    /// Route entries decoded (matched or not) since the previous batch.
    pub processed: u64,
    /// Parse errors since the previous batch, by bounded error label.
    pub errors: BTreeMap<&'static str, u64>,
    /// BGP time of the newest route read.
    pub last_timestamp: Option<f64>,
}

/// Outcome of reading one file.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FileReport {
    /// The file.
    pub path: PathBuf,
    /// Route entries decoded.
    pub processed: u64,
    /// Route entries that matched a registered prefix.
    pub matched: u64,
    /// Parse errors by label.
    pub errors: BTreeMap<&'static str, u64>,
}

impl FileReport {
    /// Total parse errors.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// The bounded `error` label of a parser error.
pub fn error_label(e: &ParserError) -> &'static str {
    match e {
        ParserError::IoError(_) | ParserError::EofError(_) => "truncated_stream",
        ParserError::TruncatedMsg(_)
        | ParserError::TruncatedPrefix
        | ParserError::TruncatedLabeledNlri => "truncated_record",
        ParserError::Unsupported(_) => "unsupported",
        ParserError::OversizedRecord { .. } => "oversized_record",
        _ => "malformed",
    }
}

/// Opens an MRT file, transparently decompressing gzip (multi-member) and bzip2.
pub fn open(path: &Path) -> Result<Box<dyn Read + Send>, MrtError> {
    let err = |source| MrtError::Open {
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::open(path).map_err(err)?;
    let mut magic = [0u8; 3];
    let n = read_up_to(&mut file, &mut magic).map_err(err)?;
    let file = File::open(path).map_err(err)?;
    let raw = BufReader::with_capacity(256 * 1024, file);
    Ok(match &magic[..n] {
        [0x1f, 0x8b, _] => Box::new(BufReader::with_capacity(
            256 * 1024,
            flate2::read::MultiGzDecoder::new(raw),
        )),
        b"BZh" => Box::new(BufReader::with_capacity(
            256 * 1024,
            bzip2::read::MultiBzDecoder::new(raw),
        )),
        _ => Box::new(raw),
    })
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Classifies a file by the MRT type of its first record.
pub fn classify(path: &Path) -> Result<MrtFileKind, MrtError> {
    let mut r = open(path)?;
    let mut header = [0u8; 12];
    // A decompression error this early means the file is unusable; report it as Unknown and let
    // the reader count the error.
    let n = read_up_to(&mut r, &mut header).unwrap_or(0);
    if n < 12 {
        return Ok(MrtFileKind::Unknown);
    }
    Ok(match u16::from_be_bytes([header[4], header[5]]) {
        12 | 13 => MrtFileKind::Rib,
        5 | 16 | 17 => MrtFileKind::Updates,
        _ => MrtFileKind::Unknown,
    })
}

/// Orders files for replay: RIB dumps first (the baseline), then the rest, each group in the
/// order given.
pub fn order_for_replay(paths: &[PathBuf]) -> Result<Vec<(PathBuf, MrtFileKind)>, MrtError> {
    let mut kinds = Vec::with_capacity(paths.len());
    for p in paths {
        kinds.push((p.clone(), classify(p)?));
    }
    let (mut ribs, rest): (Vec<_>, Vec<_>) =
        kinds.into_iter().partition(|(_, k)| *k == MrtFileKind::Rib);
    ribs.extend(rest);
    Ok(ribs)
}

/// Converts bgpkit-parser's AS path into the engine's form.
pub fn convert_path(path: &bgpkit_parser::models::AsPath) -> AsPath {
    let mut asns: Vec<u32> = Vec::with_capacity(8);
    let mut origin = Origin::Unknown;
    let segments: Vec<&AsPathSegment> = path.iter_segments().collect();
    let last = segments.len().saturating_sub(1);
    for (i, seg) in segments.iter().enumerate() {
        match seg {
            AsPathSegment::AsSequence(s) => {
                asns.extend(s.iter().map(|&a| u32::from(a)));
                if i == last {
                    origin = asns.last().map_or(Origin::Unknown, |&o| Origin::Asn(o));
                }
            }
            AsPathSegment::AsSet(s) => {
                let mut set: Vec<u32> = s.iter().map(|&a| u32::from(a)).collect();
                set.sort_unstable();
                set.dedup();
                if i == last {
                    origin = if set.len() == 1 {
                        // A one-member AS_SET names its origin unambiguously.
                        asns.push(set[0]);
                        Origin::Asn(set[0])
                    } else {
                        Origin::Set(set.into())
                    };
                } else {
                    asns.extend(set);
                }
            }
            AsPathSegment::ConfedSequence(_) | AsPathSegment::ConfedSet(_) => {
                if i == last {
                    origin = asns.last().map_or(Origin::Unknown, |&o| Origin::Asn(o));
                }
            }
        }
    }
    AsPath {
        asns: asns.into(),
        origin,
    }
}

/// Reads one MRT file, calling `on_batch` with matched routes (at most [`BATCH_SIZE`] per batch,
/// plus a final partial batch); reading stops early when `on_batch` returns false (shutdown).
/// Parse errors are counted and logged, never fatal.
pub fn read_file(
    path: &Path,
    registry: &Registry,
    mut on_batch: impl FnMut(Batch) -> bool,
) -> Result<FileReport, MrtError> {
    let reader = open(path)?;
    let parser = BgpkitParser::from_reader(reader).disable_warnings();
    let source: Arc<str> = Arc::from(FEED);
    let mut peers: HashMap<(IpAddr, u32), Arc<PeerKey>> = HashMap::new();
    // Routes of one BGP message share one AS path: convert it once.
    let mut last_path: Option<(Arc<bgpkit_parser::models::AsPath>, Arc<AsPath>)> = None;
    let mut report = FileReport {
        path: path.to_path_buf(),
        ..FileReport::default()
    };
    let mut batch = Batch::default();

    for item in parser.into_fallible_route_iter() {
        let elem = match item {
            Ok(elem) => elem,
            Err(e) => {
                let label = error_label(&e.error);
                *batch.errors.entry(label).or_insert(0) += 1;
                *report.errors.entry(label).or_insert(0) += 1;
                let n = report.error_count();
                if n <= LOGGED_ERRORS_PER_FILE {
                    warn!(file = %path.display(), error = label, detail = %e.error, "MRT parse error; record skipped");
                }
                continue;
            }
        };
        batch.processed += 1;
        report.processed += 1;
        batch.last_timestamp = Some(elem.timestamp);
        // Policy for NLRI with bits set past the mask: match and store the masked prefix.
        let prefix = elem.prefix.prefix.trunc();
        let Some(matched) = registry.lookup(&prefix) else {
            continue;
        };
        report.matched += 1;
        let peer = peers
            .entry((elem.peer_ip, u32::from(elem.peer_asn)))
            .or_insert_with(|| {
                Arc::new(PeerKey {
                    source: source.clone(),
                    address: elem.peer_ip,
                    asn: u32::from(elem.peer_asn),
                })
            })
            .clone();
        let change = match elem.elem_type {
            ElemType::WITHDRAW => RouteChange::Withdraw,
            ElemType::ANNOUNCE => {
                let path = match (&elem.as_path, &last_path) {
                    (Some(src), Some((cached_src, cached))) if Arc::ptr_eq(src, cached_src) => {
                        cached.clone()
                    }
                    (Some(src), _) => {
                        let converted = Arc::new(convert_path(src));
                        last_path = Some((src.clone(), converted.clone()));
                        converted
                    }
                    (None, _) => Arc::new(AsPath::from_sequence(&[])),
                };
                RouteChange::Announce(path)
            }
        };
        batch.updates.push(RouteUpdate {
            timestamp: elem.timestamp,
            peer,
            prefix,
            path_id: elem.prefix.path_id.unwrap_or(0),
            matched,
            change,
        });
        if batch.updates.len() >= BATCH_SIZE && !on_batch(std::mem::take(&mut batch)) {
            return Ok(report);
        }
    }
    let total = report.error_count();
    if total > LOGGED_ERRORS_PER_FILE {
        warn!(
            file = %path.display(),
            errors = total,
            suppressed = total - LOGGED_ERRORS_PER_FILE,
            "more MRT parse errors in this file were counted but not logged"
        );
    }
    on_batch(batch);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bgpkit_parser::models::AsPath as BgpkitPath;

    #[test]
    fn converts_sequences_sets_and_confeds() {
        let p = BgpkitPath::from_segments(vec![
            AsPathSegment::sequence([3356, 64500]),
            AsPathSegment::set([64497, 64496]),
        ]);
        let c = convert_path(&p);
        assert_eq!(c.asns.as_ref(), &[3356, 64500]);
        assert_eq!(c.origin, Origin::Set(vec![64496, 64497].into()));
        assert_eq!(c.to_string(), "3356 64500 {64496,64497}");

        let p = BgpkitPath::from_segments(vec![
            AsPathSegment::ConfedSequence([65001u32.into()].into_iter().collect()),
            AsPathSegment::sequence([3356, 64496]),
        ]);
        let c = convert_path(&p);
        assert_eq!(c.asns.as_ref(), &[3356, 64496]);
        assert_eq!(c.origin, Origin::Asn(64496));

        let p = BgpkitPath::from_segments(vec![
            AsPathSegment::sequence([3356]),
            AsPathSegment::set([64496]),
        ]);
        assert_eq!(convert_path(&p).origin, Origin::Asn(64496));
        assert_eq!(convert_path(&BgpkitPath::new()).origin, Origin::Unknown);
    }
}
