//! Opening an MRT file: plain, gzip or bzip2 by magic bytes, decompressed on a thread of its own,
//! behind the decompression-ratio guard; whether a compressed file is complete; its kind (RIB or
//! updates) and the replay order.

use super::*;

/// What the decompression thread saw, shared with the reader.
#[derive(Debug, Default)]
pub(super) struct StreamState {
    /// Compressed bytes read from the file.
    compressed: AtomicU64,
    /// The decompressed/compressed ratio went over the bound; the stream was stopped.
    pub(super) ratio_exceeded: AtomicBool,
    /// The file is gzip or bzip2.
    compressed_input: bool,
}

/// Counts the compressed bytes read from the file.
struct CountingReader<R> {
    inner: R,
    state: Arc<StreamState>,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.state.compressed.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Stops a decompressed stream whose ratio to the compressed bytes goes over the bound.
struct RatioGuard<R> {
    inner: R,
    state: Arc<StreamState>,
    out: u64,
    limits: Limits,
}

impl<R: Read> Read for RatioGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.out += n as u64;
        let compressed = self.state.compressed.load(Ordering::Relaxed).max(1);
        if self.limits.max_ratio > 0
            && self.out > self.limits.ratio_after_bytes
            && self.out / compressed > self.limits.max_ratio
        {
            self.state.ratio_exceeded.store(true, Ordering::Relaxed);
            return Err(std::io::Error::other(format!(
                "decompression ratio over {}:1 ({} bytes from {compressed})",
                self.limits.max_ratio, self.out
            )));
        }
        Ok(n)
    }
}

/// Opens an MRT file, transparently decompressing gzip (multi-member) and bzip2 on a separate
/// thread.
pub fn open(path: &Path) -> Result<Box<dyn BufRead + Send>, MrtError> {
    Ok(open_guarded(path, Limits::default())?.0)
}

/// [`open`] with the decompression-ratio guard of `limits` and the state it reports.
pub(super) fn open_guarded(
    path: &Path,
    limits: Limits,
) -> Result<(Box<dyn BufRead + Send>, Arc<StreamState>), MrtError> {
    let err = |source| MrtError::Open {
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::open(path).map_err(err)?;
    let mut magic = [0u8; 3];
    let n = read_up_to(&mut file, &mut magic).map_err(err)?;
    let file = File::open(path).map_err(err)?;
    let state = Arc::new(StreamState {
        compressed_input: matches!(&magic[..n], [0x1f, 0x8b, _] | b"BZh"),
        ..StreamState::default()
    });
    let counted = CountingReader {
        inner: file,
        state: state.clone(),
    };
    let raw = BufReader::with_capacity(256 * 1024, counted);
    let threaded = |inner: Box<dyn Read + Send>| -> Result<Box<dyn BufRead + Send>, MrtError> {
        let guarded = RatioGuard {
            inner,
            state: state.clone(),
            out: 0,
            limits,
        };
        Ok(Box::new(
            threaded::ThreadedReader::spawn(Box::new(guarded)).map_err(err)?,
        ))
    };
    let reader = match &magic[..n] {
        [0x1f, 0x8b, _] => threaded(Box::new(flate2::read::MultiGzDecoder::new(raw)))?,
        b"BZh" => threaded(Box::new(bzip2::read::MultiBzDecoder::new(raw)))?,
        _ => Box::new(raw) as Box<dyn BufRead + Send>,
    };
    Ok((reader, state))
}

/// Whether a file is complete as far as can be told: a gzip or bzip2 file whose stream is cut
/// short (a writer still writing) or corrupt is not; the decoder must reach the end of its last
/// stream. Inflates the whole file (discarding the output) under the decompression-ratio guard
/// of `limits`: a file stopped by the guard counts as complete (reading it reports the guard).
/// A plain file is complete (its size being stable is the caller's test).
pub fn is_complete(path: &Path, limits: Limits) -> Result<bool, MrtError> {
    let (mut reader, state) = open_guarded(path, limits)?;
    if !state.compressed_input {
        return Ok(true);
    }
    let complete = std::io::copy(&mut reader, &mut std::io::sink()).is_ok();
    Ok(complete || state.ratio_exceeded.load(Ordering::Relaxed))
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
pub(super) fn peek_kind(r: &mut dyn BufRead) -> MrtFileKind {
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
