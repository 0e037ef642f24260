//! Incremental BMP framing over a TCP byte stream (RFC 7854 §4.1).
//!
//! TCP delivers arbitrary chunks: a BMP message may arrive split across any number of reads, and
//! one read may carry many messages. [`FrameReader::feed`] takes each chunk as it comes and hands
//! every complete message to a callback, borrowed (messages wholly inside a chunk are not
//! copied; only a message split across reads is assembled in an internal buffer).
//!
//! The 6-byte common header (version `u8`, length `u32` big-endian, type `u8`) is checked as soon
//! as its six bytes are known, *before* any of the body is buffered: a version other than 3 or a
//! length outside `[6, max_frame]` is a [`FrameError`] that ends the session (the stream cannot
//! be resynchronised). Nothing is ever allocated from a declared length: the buffer only holds
//! bytes that actually arrived, at most one partial message (≤ `max_frame`) plus the
//! header-sized remainder of a read.

/// Length of the BMP common header.
pub const COMMON_HEADER_LEN: usize = 6;

/// The only BMP version accepted (RFC 7854). Version 4 (draft-ietf-grow-bmp-tlv) is rejected.
pub const BMP_VERSION: u8 = 3;

/// Default cap on one BMP message: 256 KiB (the daemon's default `bmp.max-frame-bytes`).
///
/// The largest message a router legitimately sends is a Peer Up with two OPENs, or a Route
/// Monitoring message carrying one UPDATE, each BGP message at most 65,535 bytes with extended
/// messages (RFC 8654), behind at most 48 bytes of BMP headers and a few information TLVs: about
/// 128 KiB at worst, so no real message is refused, while a corrupt or hostile length costs at
/// most 256 KiB of buffer per session instead of the 4 GiB a `u32` length allows. (16 MiB, the
/// MRT record cap, would let a few hundred misbehaving sessions pin gigabytes.)
pub const DEFAULT_MAX_FRAME: u32 = 256 * 1024;

/// After a message larger than this was assembled, the buffer is released rather than kept
/// at its peak size, so idle sessions hold little memory.
const KEEP_BUFFER_CAPACITY: usize = 64 * 1024;

/// A framing failure. The byte stream cannot be resynchronised after one, so the session ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The common header's version is not 3.
    #[error("unsupported BMP version {0} (only version 3 is accepted)")]
    UnsupportedVersion(u8),
    /// The common header's length is below the header itself or above the cap.
    #[error("BMP message length {length} outside [6, {max}]")]
    BadLength {
        /// Declared length.
        length: u32,
        /// The configured cap.
        max: u32,
    },
    /// The stream ended inside a message.
    #[error("stream ended inside a BMP message ({buffered} bytes of it received)")]
    Truncated {
        /// Bytes of the incomplete message that had arrived.
        buffered: usize,
    },
}

impl FrameError {
    /// Bounded label for metrics (`reason` of a closed session).
    pub fn label(&self) -> &'static str {
        match self {
            FrameError::UnsupportedVersion(_) => "unsupported_version",
            FrameError::BadLength { .. } => "bad_length",
            FrameError::Truncated { .. } => "truncated",
        }
    }
}

/// The BMP common header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommonHeader {
    /// Version (3).
    pub version: u8,
    /// Total message length, header included.
    pub length: u32,
    /// Message type (see [`super::MessageType`]).
    pub msg_type: u8,
}

impl CommonHeader {
    /// Reads the header from the first six bytes of `b`; `None` if fewer are given.
    pub fn parse(b: &[u8]) -> Option<CommonHeader> {
        match b {
            [version, l0, l1, l2, l3, msg_type, ..] => Some(CommonHeader {
                version: *version,
                length: u32::from_be_bytes([*l0, *l1, *l2, *l3]),
                msg_type: *msg_type,
            }),
            _ => None,
        }
    }

    /// Checks version and length against `max_frame`; returns the length as `usize`.
    pub fn validate(&self, max_frame: u32) -> Result<usize, FrameError> {
        if self.version != BMP_VERSION {
            return Err(FrameError::UnsupportedVersion(self.version));
        }
        if self.length < COMMON_HEADER_LEN as u32 || self.length > max_frame {
            return Err(FrameError::BadLength {
                length: self.length,
                max: max_frame,
            });
        }
        Ok(self.length as usize)
    }
}

/// Splits a BMP byte stream into messages. See the module documentation.
#[derive(Debug)]
pub struct FrameReader {
    /// The start of a message that has not fully arrived (header possibly incomplete).
    partial: Vec<u8>,
    max_frame: u32,
    error: Option<FrameError>,
    frames: u64,
    bytes: u64,
}

impl Default for FrameReader {
    fn default() -> Self {
        FrameReader::new(DEFAULT_MAX_FRAME)
    }
}

impl FrameReader {
    /// A reader accepting messages of up to `max_frame` bytes (raised to 6 if lower).
    pub fn new(max_frame: u32) -> Self {
        FrameReader {
            partial: Vec::new(),
            max_frame: max_frame.max(COMMON_HEADER_LEN as u32),
            error: None,
            frames: 0,
            bytes: 0,
        }
    }

    /// The message size cap.
    pub fn max_frame(&self) -> u32 {
        self.max_frame
    }

    /// Complete messages delivered so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Bytes fed so far (including any after an error, which are discarded).
    pub fn bytes_received(&self) -> u64 {
        self.bytes
    }

    /// Bytes of an incomplete message held in the buffer.
    pub fn buffered(&self) -> usize {
        self.partial.len()
    }

    /// The error that stopped the reader, if any.
    pub fn error(&self) -> Option<FrameError> {
        self.error
    }

    fn fail(&mut self, e: FrameError) -> FrameError {
        self.error = Some(e);
        self.partial = Vec::new();
        e
    }

    fn check(&mut self, header: &[u8]) -> Result<usize, FrameError> {
        match CommonHeader::parse(header).map(|h| h.validate(self.max_frame)) {
            Some(Ok(len)) => Ok(len),
            Some(Err(e)) => Err(self.fail(e)),
            // Callers pass at least six bytes.
            None => Err(self.fail(FrameError::Truncated {
                buffered: header.len(),
            })),
        }
    }

    /// Feeds the next chunk of the stream, calling `on_frame` with every message it completes
    /// (the whole message, common header included), in order.
    ///
    /// After an error every later call returns the same error and delivers nothing: the session
    /// must end. Messages completed before the error in the same chunk were delivered.
    pub fn feed(
        &mut self,
        chunk: &[u8],
        mut on_frame: impl FnMut(&[u8]),
    ) -> Result<(), FrameError> {
        self.bytes += chunk.len() as u64;
        if let Some(e) = self.error {
            return Err(e);
        }
        let mut rest = chunk;
        if !self.partial.is_empty() {
            if self.partial.len() < COMMON_HEADER_LEN {
                let take = (COMMON_HEADER_LEN - self.partial.len()).min(rest.len());
                self.partial.extend_from_slice(&rest[..take]);
                rest = &rest[take..];
                if self.partial.len() < COMMON_HEADER_LEN {
                    return Ok(());
                }
            }
            let header: [u8; COMMON_HEADER_LEN] = [
                self.partial[0],
                self.partial[1],
                self.partial[2],
                self.partial[3],
                self.partial[4],
                self.partial[5],
            ];
            // Checked before a byte of the body is buffered.
            let len = self.check(&header)?;
            let take = (len - self.partial.len()).min(rest.len());
            self.partial.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.partial.len() < len {
                return Ok(());
            }
            on_frame(&self.partial);
            self.frames += 1;
            if self.partial.capacity() > KEEP_BUFFER_CAPACITY {
                self.partial = Vec::new();
            } else {
                self.partial.clear();
            }
        }
        while rest.len() >= COMMON_HEADER_LEN {
            let len = self.check(&rest[..COMMON_HEADER_LEN])?;
            if rest.len() < len {
                break;
            }
            let (frame, tail) = rest.split_at(len);
            on_frame(frame);
            self.frames += 1;
            rest = tail;
        }
        // What is left is a message whose header (if complete) was just validated.
        self.partial.extend_from_slice(rest);
        Ok(())
    }

    /// Signals the end of the stream: an error if it ended inside a message (or after an error).
    pub fn finish(&mut self) -> Result<(), FrameError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        if self.partial.is_empty() {
            Ok(())
        } else {
            let buffered = self.partial.len();
            Err(self.fail(FrameError::Truncated { buffered }))
        }
    }
}
