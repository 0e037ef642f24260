//! MRT ingest: TABLE_DUMP / TABLE_DUMP_V2 RIB dumps and BGP4MP update dumps, plain, gzip or
//! bzip2 (detected by magic bytes, not by file name).
//!
//! Two decoders give the same routes ([`Decoder`]):
//!
//! * [`Decoder::Prefilter`] (the default) reads each record with the small bounds-checked reader
//!   in [`wire`] (a BGP4MP record's UPDATE with the walker BMP uses too, [`crate::ingest::bgp`]),
//!   looks up the prefixes it carries *before* decoding anything else, and skips the records
//!   that touch no registered prefix. TABLE_DUMP_V2 RIB entries of matching prefixes are decoded
//!   here (their AS_PATH is all that is needed); any other matching, unusual or malformed record
//!   is handed to bgpkit-parser, so edge cases are decided in one place. The exception is an
//!   UPDATE with a repeated or malformed MP_REACH_NLRI/MP_UNREACH_NLRI: unusable as a whole
//!   under RFC 7606 for both feeds, it is counted (`malformed_mp_attribute`) and skipped here.
//! * [`Decoder::Bgpkit`] runs bgpkit-parser's fallible route iterator over the whole file: the
//!   reference the prefilter is tested against (it keeps bgpkit-parser's handling of those
//!   UPDATEs). An update dump is framed here and handed to bgpkit-parser between its state
//!   changes, which its route iterator does not report.
//!
//! Peer sessions in update dumps: a BGP4MP STATE_CHANGE(_AS4) record (RFC 6396 §4.4.1) that
//! takes a peer out of Established withdraws every route of that peer, in file order, as a BMP
//! Peer Down does ([`crate::ingest::SourceDown`]): the collector's session went down, and so did
//! the Adj-RIB-In it learned (RFC 4271 §8.2.2). The routes come back with the peer's updates once
//! it is Established again. Counted in the file report (`sessions_down`) and in
//! `routewatch_feed_sessions_down_total{feed="mrt"}`.
//!
//! Only-to-Customer (RFC 9234 §5): both decoders put a route's OTC attribute on its
//! [`AsPath`], read by [`crate::ingest::bgp::otc`] from the raw attributes (of a RIB entry or an
//! UPDATE), since bgpkit-parser's route iterator does not hand it on: a record bgpkit-parser
//! decodes gets its OTCs from [`wire::record_otc`] (the reference decoder hands such a record
//! to it alone). A malformed one is discarded and counted (`malformed_otc`), once per RIB entry
//! or UPDATE with a matched announcement. (The prefilter's last resort, a file it read no
//! entry from handed whole to bgpkit-parser, keeps no OTC.)
//!
//! A corrupt record is reported, counted under a bounded `error` label and logged (the first few
//! per file, then a summary), and the rest of the file is still processed. Compressed input is
//! inflated on its own thread ([`threaded`]). Matched routes leave in [`Batch`]es, together with
//! the counts the metrics need.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::Arc;

use bgpkit_parser::models::ElemType;
use bgpkit_parser::{BgpkitParser, ParserError};
use ipnet::IpNet;
use serde::Serialize;
use smallvec::SmallVec;
use tracing::{error, warn};

use crate::ingest::bgp::as_path::{convert_path, path_from_wire};
use crate::ingest::bgp::{only_to_customer, Otc, MALFORMED_OTC};
use crate::ingest::SourceDown;
use crate::model::{AsPath, Feed, PeerKey, RouteChange, RouteSource, RouteUpdate};
use crate::registry::{Match, Registry};
use crate::util::FxMap;

/// Re-exported: the MRT reader's output (see [`crate::ingest::Batch`]).
pub use crate::ingest::Batch;

pub mod path_cache;
pub mod threaded;
pub mod wire;

use path_cache::{Handle, WirePathCache};
use wire::{ReadError, RecordOtc, RecordReader};

// In a file of its own (no crate paths): build.rs compiles it too, for the man page and the
// shell completions of `replay --decoder`.
mod decoder;
pub use decoder::Decoder;

mod open;
pub use open::{classify, is_complete, open, order_for_replay};
use open::{open_guarded, peek_kind};

/// Matched routes per batch handed to the engine.
pub const BATCH_SIZE: usize = 4096;

/// Parse errors logged individually per file before the rest are only counted.
const LOGGED_ERRORS_PER_FILE: u64 = 5;

/// Bounds on what one file may cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Parse errors after which the rest of a file is abandoned (0: no bound).
    pub max_errors: u64,
    /// Largest decompressed/compressed ratio of a gzip or bzip2 file (0: no bound), checked once
    /// [`Limits::ratio_after_bytes`] have been inflated.
    pub max_ratio: u64,
    /// Decompressed bytes before the ratio is checked.
    pub ratio_after_bytes: u64,
}

/// Default [`Limits::max_errors`].
pub const DEFAULT_MAX_ERRORS_PER_FILE: u64 = 10_000;
/// Default [`Limits::max_ratio`]: real dumps inflate 4-12× (bz2 RIBs about 10×, see
/// `fixtures/`); a zero-filled bomb inflates over 10,000×.
pub const DEFAULT_MAX_DECOMPRESSION_RATIO: u64 = 1000;
/// Default [`Limits::ratio_after_bytes`].
pub const RATIO_AFTER_BYTES: u64 = 4 << 20;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_errors: DEFAULT_MAX_ERRORS_PER_FILE,
            max_ratio: DEFAULT_MAX_DECOMPRESSION_RATIO,
            ratio_after_bytes: RATIO_AFTER_BYTES,
        }
    }
}

/// Why a file was not read to its end (the `result` label of the files counter).
pub const ABANDONED_ERROR_BUDGET: &str = "error_budget";
/// See [`ABANDONED_ERROR_BUDGET`].
pub const ABANDONED_RATIO: &str = "decompression_ratio";

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

impl Batch {
    /// An empty batch with room for [`BATCH_SIZE`] updates (grown once, not doubled up to it).
    fn sized() -> Batch {
        Batch {
            updates: Vec::with_capacity(BATCH_SIZE),
            ..Batch::default()
        }
    }
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
    /// Peer sessions that left Established (BGP4MP state changes): their routes were withdrawn.
    pub sessions_down: u64,
    /// Why the rest of the file was not read ([`ABANDONED_ERROR_BUDGET`], [`ABANDONED_RATIO`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub abandoned: Option<&'static str>,
    /// The stream was not empty but no route entry came out of it (with either decoder).
    #[serde(skip)]
    pub no_entries: bool,
    /// A watched file still incomplete when its wait ran out, read as it was.
    #[serde(skip)]
    pub waited_out: bool,
}

impl FileReport {
    /// Total parse errors.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// The `result` label of `routewatch_mrt_files_processed_total` for this file.
    pub fn result(&self) -> &'static str {
        if let Some(reason) = self.abandoned {
            reason
        } else if self.waited_out {
            "truncated"
        } else if self.error_count() > 0 {
            // With no entry read too (logged as such): the errors say why.
            "parse_errors"
        } else if self.no_entries {
            "no_entries"
        } else {
            "ok"
        }
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

/// Where decoded routes go: the prefilter, the per-file state both decoders share, and batching.
struct Sink<'a, F> {
    path: &'a Path,
    registry: &'a Registry,
    kind: MrtFileKind,
    on_batch: F,
    batch: Batch,
    report: FileReport,
    stopped: bool,
    /// The consumer is gone (shutdown): nothing more is handed on.
    consumer_gone: bool,
    limits: Limits,
    source: Arc<RouteSource>,
    /// Interned peers, each with a dense number (its position in `rib_run_counts`).
    peers: FxMap<(IpAddr, u32), (Arc<PeerKey>, u32)>,
    empty_path: Arc<AsPath>,
    /// bgpkit-parser: routes of one BGP message share one AS path; convert it once.
    last_bgpkit_path: Option<(Arc<bgpkit_parser::models::AsPath>, Arc<AsPath>)>,
    /// Prefilter: TABLE_DUMP_V2 paths by their raw bytes (a peer's path repeats across
    /// prefixes); handles instead of `Arc`s cost no reference count.
    wire_paths: WirePathCache,
    /// Prefilter: the last raw path of each PEER_INDEX_TABLE position and its path. Adjacent
    /// prefixes often share an origin, so a peer's path is often the one of its previous entry:
    /// compared in place, without hashing or probing `wire_paths` (a large, cache-cold table).
    last_wire_path: Vec<(Vec<u8>, Option<Handle>)>,
    /// bgpkit-parser 0.23 drops the path identifiers of RFC 8050 RIB entries, so two paths of one
    /// peer would replace each other. In a RIB dump all entries of a prefix are consecutive and a
    /// peer appears once per prefix unless it uses ADD-PATH: number its repeats 0, 1, 2, ...
    rib_run: Option<IpNet>,
    /// Which run (`rib_run_seq`) each numbered peer was last counted in, and its entries there.
    rib_run_counts: Vec<(u64, u32)>,
    rib_run_seq: u64,
    /// Batches handed back by the consumer, emptied and refilled ([`read_file_recycling`]).
    recycled: Option<&'a Receiver<Batch>>,
    /// The Only-to-Customer attributes of the record bgpkit-parser decodes now, read from the
    /// raw record (its route iterator does not hand them on); [`RecordOtc::None`] between such
    /// records.
    record_otc: RecordOtc,
}

/// A RIB entry's peer position, originated time, raw AS_PATH (if any), its path's handle
/// when already known, and its Only-to-Customer attribute.
type RibEntryPath<'a> = (u16, u32, Option<&'a [u8]>, Option<Handle>, Otc);

/// A PEER_INDEX_TABLE entry with its interned key and the key's dense number.
type IndexedPeerKey = (wire::IndexedPeer, Arc<PeerKey>, u32);

/// Bound on [`Sink::wire_paths`]; cleared when reached. A full RIB has a few hundred thousand
/// distinct raw paths per file; a cache smaller than that is cleared over and over, and every
/// path is converted and interned again. 7/8 of 2^20: the table never grows past 2^20 buckets
/// of 5 bytes (the raw bytes are in an arena, bounded by [`WIRE_PATH_CACHE_BYTES`]; the paths
/// themselves are shared with the engine). Tests pass a smaller bound to `read_file_inner`.
const WIRE_PATH_CACHE: usize = 7 << 17;

/// Bound on the raw bytes [`Sink::wire_paths`] holds (long paths: 64 MiB is about 3 million
/// average ones).
const WIRE_PATH_CACHE_BYTES: usize = 64 << 20;

impl<F: FnMut(Batch) -> bool> Sink<'_, F> {
    fn error(&mut self, label: &'static str, detail: &dyn std::fmt::Display) {
        *self.batch.errors.entry(label).or_insert(0) += 1;
        *self.report.errors.entry(label).or_insert(0) += 1;
        let count = self.report.error_count();
        if count <= LOGGED_ERRORS_PER_FILE {
            warn!(file = %self.path.display(), error = label, detail = %detail, "MRT parse error; skipped");
        }
        if self.limits.max_errors > 0
            && count >= self.limits.max_errors
            && self.report.abandoned.is_none()
        {
            self.report.abandoned = Some(ABANDONED_ERROR_BUDGET);
            self.stopped = true;
            error!(
                file = %self.path.display(),
                errors = count,
                "MRT file abandoned: too many parse errors (mrt.max-errors-per-file)"
            );
        }
    }

    fn processed(&mut self, n: u64, timestamp: f64) {
        self.batch.processed += n;
        self.report.processed += n;
        if n > 0 {
            self.batch.last_timestamp = Some(timestamp);
        }
    }

    /// The interned key of a peer and its dense number.
    fn peer(&mut self, address: IpAddr, asn: u32) -> (Arc<PeerKey>, u32) {
        let (source, next) = (&self.source, self.peers.len() as u32);
        self.peers
            .entry((address, asn))
            .or_insert_with(|| {
                let key = Arc::new(PeerKey {
                    source: source.clone(),
                    address,
                    asn,
                });
                (key, next)
            })
            .clone()
    }

    /// The ADD-PATH id of the next entry of peer number `peer` for `prefix` in a RIB dump:
    /// 0, 1, 2, ... over a run of consecutive entries for one prefix.
    fn rib_path_id(&mut self, prefix: IpNet, peer: u32) -> u32 {
        if self.rib_run != Some(prefix) {
            self.rib_run = Some(prefix);
            self.rib_run_seq += 1;
        }
        let peer = peer as usize;
        if self.rib_run_counts.len() <= peer {
            self.rib_run_counts.resize(peer + 1, (0, 0));
        }
        let (run, n) = &mut self.rib_run_counts[peer];
        if *run != self.rib_run_seq {
            (*run, *n) = (self.rib_run_seq, 0);
        }
        *n += 1;
        *n - 1
    }

    /// A BGP4MP state change: a peer leaving Established loses every route (in file order).
    fn state_change(&mut self, change: &wire::StateChange, timestamp: f64) {
        if !change.leaves_established() {
            return;
        }
        let key = self.peer(change.peer_address, change.peer_asn).0;
        self.report.sessions_down += 1;
        self.batch.sources_down.push(SourceDown {
            key,
            timestamp,
            after: self.batch.updates.len(),
        });
    }

    /// An empty batch: a recycled one if the consumer handed one back.
    fn next_batch(&self) -> Batch {
        match self.recycled.and_then(|r| r.try_recv().ok()) {
            Some(mut b) => {
                b.updates.clear();
                Batch {
                    updates: b.updates,
                    ..Batch::default()
                }
            }
            None => Batch::sized(),
        }
    }

    /// Queues one matched route.
    fn push(&mut self, update: RouteUpdate) {
        self.report.matched += 1;
        self.batch.generation = self.registry.generation();
        self.batch.updates.push(update);
        if self.batch.updates.len() >= BATCH_SIZE {
            let next = self.next_batch();
            if !(self.on_batch)(std::mem::replace(&mut self.batch, next)) {
                self.stopped = true;
                self.consumer_gone = true;
            }
        }
    }

    /// One route from bgpkit-parser's route iterator.
    fn bgpkit_route(&mut self, elem: bgpkit_parser::BgpRouteElem) {
        self.processed(1, elem.timestamp);
        // Taken for every announcement, matched or not: they come in the record's order.
        let otc = match elem.elem_type {
            ElemType::ANNOUNCE => self.record_otc.next_announcement(),
            ElemType::WITHDRAW => Otc::Absent,
        };
        // Policy for NLRI with bits set past the mask: match and store the masked prefix.
        let prefix = elem.prefix.prefix.trunc();
        let Some(matched) = self.registry.lookup(&prefix) else {
            return;
        };
        let (peer, peer_number) = self.peer(elem.peer_ip, u32::from(elem.peer_asn));
        let path_id = match elem.prefix.path_id {
            Some(id) => id,
            None if self.kind == MrtFileKind::Rib => self.rib_path_id(prefix, peer_number),
            None => 0,
        };
        let change = match (elem.elem_type, &elem.as_path) {
            (ElemType::WITHDRAW, _) => RouteChange::Withdraw,
            (ElemType::ANNOUNCE, Some(src)) => match &self.last_bgpkit_path {
                Some((cached_src, cached))
                    if Arc::ptr_eq(src, cached_src) && cached.otc == otc.value() =>
                {
                    RouteChange::Announce(cached.clone())
                }
                _ => {
                    let converted = Arc::new(convert_path(src).with_otc(otc.value()));
                    self.last_bgpkit_path = Some((src.clone(), converted.clone()));
                    RouteChange::Announce(converted)
                }
            },
            // A RIB entry without path attributes is the dumping router's own route.
            (ElemType::ANNOUNCE, None) if self.kind == MrtFileKind::Rib => {
                RouteChange::Announce(self.empty_path.clone())
            }
            (ElemType::ANNOUNCE, None) => {
                // An UPDATE whose AS_PATH is missing or undecodable (bgpkit-parser drops a
                // malformed one): RFC 7606 treat-as-withdraw, and counted.
                self.error(
                    "malformed",
                    &format_args!(
                        "{prefix}: announcement without a usable AS_PATH; treated as withdrawn"
                    ),
                );
                RouteChange::Withdraw
            }
        };
        if otc.is_malformed() {
            self.record_otc.counted();
            self.malformed_otc(prefix);
        }
        self.push(RouteUpdate {
            timestamp: elem.timestamp,
            peer,
            prefix,
            path_id,
            matched,
            change,
        });
    }

    /// Counts an Only-to-Customer attribute whose length is not 4 (discarded: RFC 9234 §5).
    fn malformed_otc(&mut self, prefix: IpNet) {
        self.error(
            MALFORMED_OTC,
            &format_args!(
                "{prefix}: Only-to-Customer attribute whose length is not 4; discarded, the route kept"
            ),
        );
    }

    /// bgpkit-parser over one record whose announcements carry the Only-to-Customer
    /// attributes `otc` (with the PEER_INDEX_TABLE it needs before it, for a RIB record).
    fn bgpkit_record(&mut self, raw: &[u8], otc: RecordOtc) {
        self.record_otc = otc;
        self.bgpkit_stream(std::io::Cursor::new(raw));
        self.record_otc = RecordOtc::None;
    }

    /// Runs bgpkit-parser over a stream (a whole file, or one record to decode fully).
    fn bgpkit_stream(&mut self, reader: impl Read) {
        let parser = BgpkitParser::from_reader(reader).disable_warnings();
        for item in parser.into_fallible_route_iter() {
            match item {
                Ok(elem) => self.bgpkit_route(elem),
                Err(e) => self.error(error_label(&e.error), &e.error),
            }
            if self.stopped {
                return;
            }
        }
    }

    /// The matched entries of a TABLE_DUMP_V2 RIB record, decoded here. `Err` means the record
    /// needs the full decoder (malformed, or an AS4_PATH to merge); nothing was queued then.
    fn rib_entries(
        &mut self,
        rib: &wire::RibRecord<'_>,
        matched: Match,
        peers: &[IndexedPeerKey],
    ) -> Result<(), wire::WireError> {
        // Validate every entry first, so a bad one leaves nothing half-queued. The same pass
        // resolves each raw path it can (the peer's previous path, then the path cache): the
        // lookups of one record are independent, so the processor overlaps their cache misses,
        // and each entry's path is looked up once. A path seen for the first time is converted
        // in the second pass, where an earlier entry of the record may already have added it.
        let mut found: SmallVec<[RibEntryPath<'_>; 32]> = SmallVec::new();
        for entry in rib.entries() {
            let entry = entry?;
            if usize::from(entry.peer_index) >= peers.len() {
                return Err(wire::WireError::Invalid("peer index"));
            }
            let raw = wire::td2_as_path(entry.attributes)?;
            let known =
                raw.and_then(|raw| self.known_wire_path(usize::from(entry.peer_index), raw));
            let otc = only_to_customer(entry.attributes);
            found.push((entry.peer_index, entry.originated, raw, known, otc));
        }
        for (peer_index, originated, raw, known, otc) in found {
            let (_, peer, number) = &peers[usize::from(peer_index)];
            let ts = f64::from(originated);
            self.processed(1, ts);
            let path = match raw {
                None => self.empty_path.clone(),
                Some(raw) => {
                    let peer = usize::from(peer_index);
                    // A handle from the first pass resolves unless an entry before this one
                    // found the cache full, which emptied it.
                    let resolved = known.and_then(|h| Some((h, self.wire_paths.path(h)?.clone())));
                    let (handle, path) = match resolved {
                        Some(found) => found,
                        None => self.wire_path(peer, raw),
                    };
                    self.remember_wire_path(peer, raw, handle);
                    path
                }
            };
            // The raw-path cache keys the AS_PATH alone; a route with an Only-to-Customer
            // attribute (rare) gets its own copy of the path.
            let path = match otc.value() {
                Some(v) => Arc::new((*path).clone().with_otc(Some(v))),
                None => path,
            };
            if otc.is_malformed() {
                self.malformed_otc(rib.prefix);
            }
            // Path ids of a RIB are numbered as for the reference decoder (which cannot see
            // them), so both decoders key a peer's paths alike.
            let path_id = self.rib_path_id(rib.prefix, *number);
            self.push(RouteUpdate {
                timestamp: ts,
                peer: peer.clone(),
                prefix: rib.prefix,
                path_id,
                matched,
                change: RouteChange::Announce(path),
            });
        }
        Ok(())
    }

    /// The handle of raw AS_PATH bytes `raw` if peer position `peer` had them last (and the
    /// cache was not emptied since) or the path cache holds them.
    fn known_wire_path(&self, peer: usize, raw: &[u8]) -> Option<Handle> {
        match self.last_wire_path.get(peer) {
            Some((bytes, Some(handle)))
                if self.wire_paths.holds(*handle) && bytes.as_slice() == raw =>
            {
                Some(*handle)
            }
            _ => self.wire_paths.get(raw),
        }
    }

    /// Records `handle` (of raw bytes `raw`) as the last path of peer position `peer`.
    fn remember_wire_path(&mut self, peer: usize, raw: &[u8], handle: Handle) {
        if self.last_wire_path.len() <= peer {
            self.last_wire_path
                .resize_with(peer + 1, || (Vec::new(), None));
        }
        let (bytes, last) = &mut self.last_wire_path[peer];
        if *last != Some(handle) {
            bytes.clear();
            bytes.extend_from_slice(raw);
            *last = Some(handle);
        }
    }

    /// The handle and path of raw AS_PATH bytes `raw` of the entry of peer position `peer`:
    /// the peer's last path, the cached one, or converted and cached now.
    fn wire_path(&mut self, peer: usize, raw: &[u8]) -> (Handle, Arc<AsPath>) {
        if let Some(handle) = self.known_wire_path(peer, raw) {
            if let Some(path) = self.wire_paths.path(handle) {
                return (handle, path.clone());
            }
        }
        let path = Arc::new(path_from_wire(raw));
        (self.wire_paths.insert(raw, path.clone()), path)
    }

    fn finish(mut self) -> FileReport {
        let total = self.report.error_count();
        if total > LOGGED_ERRORS_PER_FILE {
            warn!(
                file = %self.path.display(),
                errors = total,
                suppressed = total - LOGGED_ERRORS_PER_FILE,
                "more MRT parse errors in this file were counted but not logged"
            );
        }
        if !self.consumer_gone {
            (self.on_batch)(std::mem::take(&mut self.batch));
        }
        self.report
    }
}

/// Reads one MRT file with the default decoder; see [`read_file_with`].
pub fn read_file(
    path: &Path,
    registry: &Registry,
    on_batch: impl FnMut(Batch) -> bool,
) -> Result<FileReport, MrtError> {
    read_file_with(path, registry, Decoder::default(), on_batch)
}

/// Reads one MRT file, calling `on_batch` with matched routes (at most [`BATCH_SIZE`] per batch,
/// plus a final partial batch); reading stops early when `on_batch` returns false (shutdown).
/// Parse errors are counted and logged, never fatal.
pub fn read_file_with(
    path: &Path,
    registry: &Registry,
    decoder: Decoder,
    on_batch: impl FnMut(Batch) -> bool,
) -> Result<FileReport, MrtError> {
    read_file_inner(
        path,
        registry,
        decoder,
        Limits::default(),
        on_batch,
        None,
        WIRE_PATH_CACHE,
        None,
    )
}

/// [`read_file_with`] under `limits` (the daemon's `[mrt]` bounds).
pub fn read_file_limited(
    path: &Path,
    registry: &Registry,
    decoder: Decoder,
    limits: Limits,
    on_batch: impl FnMut(Batch) -> bool,
) -> Result<FileReport, MrtError> {
    read_file_inner(
        path,
        registry,
        decoder,
        limits,
        on_batch,
        None,
        WIRE_PATH_CACHE,
        None,
    )
}

/// [`read_file_limited`] for a consumer on another thread that hands applied batches back
/// through `recycled`: they are emptied here (the updates' references are dropped on the thread
/// that took them) and refilled instead of allocating a new batch each time.
pub fn read_file_recycling(
    path: &Path,
    registry: &Registry,
    decoder: Decoder,
    limits: Limits,
    on_batch: impl FnMut(Batch) -> bool,
    recycled: &Receiver<Batch>,
) -> Result<FileReport, MrtError> {
    read_file_inner(
        path,
        registry,
        decoder,
        limits,
        on_batch,
        Some(recycled),
        WIRE_PATH_CACHE,
        None,
    )
}

/// [`read_file_limited`] with the routes attributed to `source` instead of the MRT feed's (a RIS
/// Live baseline: a collector's RIB read as `ris-live/rrc00`, so that the live stream's updates
/// and withdrawals of the same (collector, peer address, peer AS) apply to its routes).
pub fn read_file_as(
    path: &Path,
    registry: &Registry,
    limits: Limits,
    source: Arc<RouteSource>,
    on_batch: impl FnMut(Batch) -> bool,
) -> Result<FileReport, MrtError> {
    read_file_inner(
        path,
        registry,
        Decoder::default(),
        limits,
        on_batch,
        None,
        WIRE_PATH_CACHE,
        Some(source),
    )
}

#[allow(clippy::too_many_arguments)]
fn read_file_inner(
    path: &Path,
    registry: &Registry,
    decoder: Decoder,
    limits: Limits,
    on_batch: impl FnMut(Batch) -> bool,
    recycled: Option<&Receiver<Batch>>,
    wire_path_cap: usize,
    source: Option<Arc<RouteSource>>,
) -> Result<FileReport, MrtError> {
    let (mut reader, state) = open_guarded(path, limits)?;
    let kind = peek_kind(&mut reader);
    let non_empty = reader.fill_buf().map_or(true, |b| !b.is_empty());
    let mut sink = Sink {
        path,
        registry,
        kind,
        on_batch,
        batch: Batch::sized(),
        report: FileReport {
            path: path.to_path_buf(),
            ..FileReport::default()
        },
        stopped: false,
        consumer_gone: false,
        limits,
        source: source.unwrap_or_else(|| Arc::new(RouteSource::new(Feed::Mrt))),
        peers: FxMap::default(),
        empty_path: Arc::new(AsPath::from_sequence(&[])),
        last_bgpkit_path: None,
        wire_paths: WirePathCache::new(wire_path_cap, WIRE_PATH_CACHE_BYTES),
        last_wire_path: Vec::new(),
        rib_run: None,
        rib_run_counts: Vec::new(),
        rib_run_seq: 0,
        recycled,
        record_otc: RecordOtc::None,
    };
    match decoder {
        Decoder::Bgpkit => bgpkit_framed(&mut sink, reader),
        Decoder::Prefilter => prefilter(&mut sink, reader),
    }
    if non_empty
        && sink.report.processed == 0
        && !sink.stopped
        && decoder == Decoder::Prefilter
        && !sink.report.errors.contains_key("malformed_mp_attribute")
    {
        // Nothing was matched (nothing handed on): read the file again with the reference
        // decoder, which knows layouts the prefilter does not. Its errors replace ours. (Not
        // when the prefilter refused an UPDATE under RFC 7606 on purpose: bgpkit-parser would
        // use it.)
        warn!(file = %path.display(), "no route entry read by the prefilter; reading the file again with bgpkit-parser");
        sink.report.errors.clear();
        sink.batch.errors.clear();
        let (again, _) = open_guarded(path, limits)?;
        sink.bgpkit_stream(again);
    }
    if state.ratio_exceeded.load(Ordering::Relaxed) && sink.report.abandoned.is_none() {
        sink.report.abandoned = Some(ABANDONED_RATIO);
        error!(
            file = %path.display(),
            max_ratio = limits.max_ratio,
            "MRT file abandoned: its decompressed size is out of proportion to its compressed size (mrt.max-decompression-ratio)"
        );
    }
    if non_empty && sink.report.processed == 0 && sink.report.abandoned.is_none() {
        sink.report.no_entries = true;
        error!(
            file = %path.display(),
            errors = sink.report.error_count(),
            "MRT file not empty but no route entry could be read from it"
        );
    }
    Ok(sink.finish())
}

/// Most raw bytes [`bgpkit_framed`] hands bgpkit-parser at once.
const FRAMED_CHUNK: usize = 1 << 20;

/// The reference decoder: records are framed here, so that BGP4MP state changes are seen in
/// order and so that a record whose announcements carry the Only-to-Customer attribute goes to
/// bgpkit-parser alone, with those attributes read here ([`wire::record_otc`]; its route
/// iterator does not hand them on). The other records go to bgpkit-parser in chunks, each
/// starting with the PEER_INDEX_TABLE in force when it holds RIB records.
fn bgpkit_framed<F: FnMut(Batch) -> bool>(sink: &mut Sink<'_, F>, reader: Box<dyn BufRead + Send>) {
    let mut records = RecordReader::new(reader);
    let mut chunk: Vec<u8> = Vec::new();
    // The last PEER_INDEX_TABLE that reads, raw, and its size.
    let mut peer_table: (Vec<u8>, usize) = (Vec::new(), 0);
    let flush = |sink: &mut Sink<'_, F>, chunk: &mut Vec<u8>| {
        if !chunk.is_empty() {
            sink.bgpkit_stream(std::io::Cursor::new(std::mem::take(chunk)));
        }
    };
    while !sink.stopped {
        let record = match records.next_record() {
            Ok(Some(r)) => r,
            Ok(None) => break,
            Err(e) => {
                flush(sink, &mut chunk);
                let label = match e {
                    ReadError::Truncated(_) => "truncated_stream",
                    ReadError::Oversized(_) => "oversized_record",
                };
                sink.error(label, &e);
                return;
            }
        };
        let h = &record.header;
        let bgp4mp = matches!(h.mrt_type, wire::types::BGP4MP | wire::types::BGP4MP_ET);
        if bgp4mp && matches!(h.subtype, 0 | 5) {
            if let Ok(wire::Bgp4mp::StateChange(change)) =
                wire::bgp4mp(h.mrt_type, h.subtype, record.body)
            {
                flush(sink, &mut chunk);
                sink.state_change(&change, f64::from(h.timestamp));
                continue;
            }
        }
        let td2 = h.mrt_type == wire::types::TABLE_DUMP_V2;
        if td2 && h.subtype == 1 {
            peer_table = match wire::peer_index_table(record.body) {
                Ok(peers) => ([&record.raw_header[..], record.body].concat(), peers.len()),
                Err(_) => (Vec::new(), 0),
            };
        }
        let rib = td2 && h.subtype != 1;
        let otc = wire::record_otc(h.mrt_type, h.subtype, record.body, peer_table.1);
        if !matches!(otc, RecordOtc::None) {
            flush(sink, &mut chunk);
            if rib {
                chunk.extend_from_slice(&peer_table.0);
            }
            chunk.extend_from_slice(record.raw_header);
            chunk.extend_from_slice(record.body);
            sink.bgpkit_record(&chunk, otc);
            chunk.clear();
            continue;
        }
        if chunk.is_empty() && rib {
            chunk.extend_from_slice(&peer_table.0);
        }
        chunk.extend_from_slice(record.raw_header);
        chunk.extend_from_slice(record.body);
        if chunk.len() >= FRAMED_CHUNK {
            flush(sink, &mut chunk);
        }
    }
    if !sink.stopped {
        flush(sink, &mut chunk);
    }
}

/// A decoded PEER_INDEX_TABLE (each peer with its interned key) and its raw record.
type PeerTable = (Vec<IndexedPeerKey>, Vec<u8>);

/// The prefilter decoder: see the module documentation.
fn prefilter<F: FnMut(Batch) -> bool>(sink: &mut Sink<'_, F>, reader: Box<dyn BufRead + Send>) {
    let mut records = RecordReader::new(reader);
    // The last PEER_INDEX_TABLE, decoded, and raw (to give bgpkit-parser context for a RIB
    // record it has to decode).
    let mut peer_table: Option<PeerTable> = None;
    let mut raw = Vec::new();
    while !sink.stopped {
        let wire::Record {
            header,
            raw_header,
            body,
        } = match records.next_record() {
            Ok(Some(r)) => r,
            Ok(None) => break,
            Err(ReadError::Truncated(e)) => {
                sink.error("truncated_stream", &e);
                break;
            }
            Err(e @ ReadError::Oversized(_)) => {
                sink.error("oversized_record", &e);
                break;
            }
        };
        let ts = f64::from(header.timestamp);
        let needs_full_decode = match header.mrt_type {
            wire::types::TABLE_DUMP_V2 if header.subtype == 1 => {
                raw.clear();
                raw.extend_from_slice(raw_header);
                raw.extend_from_slice(body);
                match wire::peer_index_table(body) {
                    Ok(peers) => {
                        let peers = peers
                            .into_iter()
                            .map(|p| {
                                let (key, number) = sink.peer(p.address, p.asn);
                                (p, key, number)
                            })
                            .collect();
                        peer_table = Some((peers, raw.clone()));
                    }
                    Err(e) => {
                        peer_table = None;
                        sink.error("malformed", &e);
                    }
                }
                false
            }
            wire::types::TABLE_DUMP_V2 => match wire::rib_subtype(header.subtype) {
                Some((v6, add_path)) => {
                    match (wire::RibRecord::parse(body, v6, add_path), &peer_table) {
                        (Ok(rib), Some((peers, _))) => match sink.registry.lookup(&rib.prefix) {
                            None => {
                                sink.processed(u64::from(rib.entry_count), ts);
                                false
                            }
                            Some(m) => sink.rib_entries(&rib, m, peers).is_err(),
                        },
                        _ => true,
                    }
                }
                None => true,
            },
            wire::types::BGP4MP | wire::types::BGP4MP_ET => {
                let registry = sink.registry;
                match wire::bgp4mp_scan(header.mrt_type, header.subtype, body, |p| {
                    registry.lookup(p).is_some()
                }) {
                    wire::Bgp4mpScan::Skip(count) => {
                        sink.processed(count, ts);
                        false
                    }
                    wire::Bgp4mpScan::FullDecode => true,
                    wire::Bgp4mpScan::Malformed(e) => {
                        sink.error(e.label(), &e);
                        false
                    }
                    wire::Bgp4mpScan::StateChange(change) => {
                        sink.state_change(&change, ts);
                        false
                    }
                }
            }
            wire::types::TABLE_DUMP => {
                let registry = sink.registry;
                let mut matched = false;
                match wire::table_dump_prefixes(header.subtype, body, |p, _| {
                    matched = registry.lookup(&p).is_some();
                    if matched {
                        std::ops::ControlFlow::Break(())
                    } else {
                        std::ops::ControlFlow::Continue(())
                    }
                }) {
                    Ok(n) if !matched && n > 0 => {
                        sink.processed(n, ts);
                        false
                    }
                    _ => true,
                }
            }
            _ => true,
        };
        if needs_full_decode {
            raw.clear();
            if header.mrt_type == wire::types::TABLE_DUMP_V2 {
                if let Some((_, table)) = &peer_table {
                    raw.extend_from_slice(table);
                }
            }
            raw.extend_from_slice(raw_header);
            raw.extend_from_slice(body);
            let peers = peer_table.as_ref().map_or(0, |(p, _)| p.len());
            let otc = wire::record_otc(header.mrt_type, header.subtype, body, peers);
            sink.bgpkit_record(&raw, otc);
        }
    }
}

#[cfg(test)]
mod otc_tests;

#[cfg(test)]
mod tests;
