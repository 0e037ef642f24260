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
use std::io::{BufRead, BufReader, Read};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bgpkit_parser::models::{AsPathSegment, ElemType};
use bgpkit_parser::{BgpkitParser, ParserError};
use ipnet::IpNet;
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
pub fn open(path: &Path) -> Result<Box<dyn BufRead + Send>, MrtError> {
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
    Ok(peek_kind(&mut open(path)?))
}

/// The MRT type of the first record of a stream, without consuming it. A decompression error
/// this early gives `Unknown`; the reader then counts the error.
fn peek_kind(r: &mut dyn BufRead) -> MrtFileKind {
    match r.fill_buf() {
        Ok(head) if head.len() >= 12 => match u16::from_be_bytes([head[4], head[5]]) {
            12 | 13 => MrtFileKind::Rib,
            5 | 16 | 17 => MrtFileKind::Updates,
            _ => MrtFileKind::Unknown,
        },
        _ => MrtFileKind::Unknown,
    }
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
    let mut reader = open(path)?;
    let kind = peek_kind(&mut reader);
    let parser = BgpkitParser::from_reader(reader).disable_warnings();
    // bgpkit-parser 0.23 drops the path identifiers of RFC 8050 RIB entries, so two paths of one
    // peer would replace each other. In a RIB dump all entries of a prefix are consecutive and a
    // peer appears once per prefix unless it uses ADD-PATH: number its repeats 0, 1, 2, ...
    let mut rib_run: Option<IpNet> = None;
    let mut rib_run_peers: Vec<((IpAddr, u32), u32)> = Vec::new();
    let source: Arc<str> = Arc::from(FEED);
    let mut peers: HashMap<(IpAddr, u32), Arc<PeerKey>> = HashMap::new();
    // Routes of one BGP message share one AS path: convert it once.
    let empty_path = Arc::new(AsPath::from_sequence(&[]));
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
        let peer_id = (elem.peer_ip, u32::from(elem.peer_asn));
        let path_id = match elem.prefix.path_id {
            Some(id) => id,
            None if kind == MrtFileKind::Rib => {
                if rib_run != Some(prefix) {
                    rib_run = Some(prefix);
                    rib_run_peers.clear();
                }
                match rib_run_peers.iter_mut().find(|(p, _)| *p == peer_id) {
                    Some((_, n)) => {
                        *n += 1;
                        *n - 1
                    }
                    None => {
                        rib_run_peers.push((peer_id, 1));
                        0
                    }
                }
            }
            None => 0,
        };
        let peer = peers
            .entry(peer_id)
            .or_insert_with(|| {
                Arc::new(PeerKey {
                    source: source.clone(),
                    address: elem.peer_ip,
                    asn: u32::from(elem.peer_asn),
                })
            })
            .clone();
        let change = match (elem.elem_type, &elem.as_path) {
            (ElemType::WITHDRAW, _) => RouteChange::Withdraw,
            (ElemType::ANNOUNCE, Some(src)) => match &last_path {
                Some((cached_src, cached)) if Arc::ptr_eq(src, cached_src) => {
                    RouteChange::Announce(cached.clone())
                }
                _ => {
                    let converted = Arc::new(convert_path(src));
                    last_path = Some((src.clone(), converted.clone()));
                    RouteChange::Announce(converted)
                }
            },
            // A RIB entry without path attributes is the dumping router's own route.
            (ElemType::ANNOUNCE, None) if kind == MrtFileKind::Rib => {
                RouteChange::Announce(empty_path.clone())
            }
            (ElemType::ANNOUNCE, None) => {
                // An UPDATE whose AS_PATH is missing or undecodable (bgpkit-parser drops a
                // malformed one): RFC 7606 treat-as-withdraw, and counted.
                let label = "malformed";
                *batch.errors.entry(label).or_insert(0) += 1;
                *report.errors.entry(label).or_insert(0) += 1;
                if report.error_count() <= LOGGED_ERRORS_PER_FILE {
                    warn!(file = %path.display(), error = label, prefix = %prefix, "announcement without a usable AS_PATH; treated as withdrawn");
                }
                RouteChange::Withdraw
            }
        };
        batch.updates.push(RouteUpdate {
            timestamp: elem.timestamp,
            peer,
            prefix,
            path_id,
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
