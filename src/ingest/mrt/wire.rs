//! A small, bounds-checked reader of MRT records (RFC 6396) and of the parts of BGP UPDATEs
//! (RFC 4271, RFC 4760, RFC 7911) the prefilter needs, without allocating.
//!
//! It answers two questions cheaply: "which prefixes does this record carry?" (so a record that
//! touches no registered prefix is skipped undecoded) and, for TABLE_DUMP_V2 RIB entries, "what is
//! this entry's AS path?". Everything else is left to bgpkit-parser. Every length is checked
//! before use; malformed input yields [`WireError`], never a panic (fuzzed in `fuzz/`).

use std::io::{self, BufRead};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// Largest MRT record body accepted (the same cap as bgpkit-parser): a larger declared length is
/// an error before anything is allocated.
pub const MAX_RECORD_LEN: u32 = 16 * 1024 * 1024;

/// Something in the bytes does not add up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// A field runs past the end of its container.
    #[error("truncated {0}")]
    Truncated(&'static str),
    /// A field has a value the format does not allow.
    #[error("invalid {0}")]
    Invalid(&'static str),
}

/// A cursor over a byte slice whose reads fail instead of panicking.
#[derive(Debug, Clone, Copy)]
pub struct Cursor<'a> {
    data: &'a [u8],
}

impl<'a> Cursor<'a> {
    /// A cursor at the start of `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Cursor { data }
    }

    /// Bytes left.
    pub fn remaining(&self) -> usize {
        self.data.len()
    }

    /// Takes the next `n` bytes.
    #[inline]
    pub fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], WireError> {
        if self.data.len() < n {
            return Err(WireError::Truncated(what));
        }
        let (head, tail) = self.data.split_at(n);
        self.data = tail;
        Ok(head)
    }

    /// Reads a byte.
    #[inline]
    pub fn u8(&mut self, what: &'static str) -> Result<u8, WireError> {
        Ok(self.take(1, what)?[0])
    }

    /// Reads a big-endian u16.
    #[inline]
    pub fn u16(&mut self, what: &'static str) -> Result<u16, WireError> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    /// Reads a big-endian u32.
    #[inline]
    pub fn u32(&mut self, what: &'static str) -> Result<u32, WireError> {
        let b = self.take(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Reads an IPv4 (`v6 == false`) or IPv6 address.
    pub fn addr(&mut self, v6: bool, what: &'static str) -> Result<IpAddr, WireError> {
        if v6 {
            let b = self.take(16, what)?;
            let mut a = [0u8; 16];
            a.copy_from_slice(b);
            Ok(IpAddr::V6(Ipv6Addr::from(a)))
        } else {
            let b = self.take(4, what)?;
            Ok(IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3])))
        }
    }

    /// Reads one NLRI prefix (length byte, then the minimum bytes), masked to its length.
    pub fn prefix(&mut self, v6: bool) -> Result<IpNet, WireError> {
        let len = self.u8("prefix length")?;
        let max = if v6 { 128 } else { 32 };
        if len > max {
            return Err(WireError::Invalid("prefix length"));
        }
        let n = (len as usize).div_ceil(8);
        let b = self.take(n, "prefix")?;
        Ok(if v6 {
            let mut a = [0u8; 16];
            a[..n].copy_from_slice(b);
            IpNet::V6(
                Ipv6Net::new(Ipv6Addr::from(a), len)
                    .map_err(|_| WireError::Invalid("prefix"))?
                    .trunc(),
            )
        } else {
            let mut a = [0u8; 4];
            a[..n].copy_from_slice(b);
            IpNet::V4(
                Ipv4Net::new(Ipv4Addr::from(a), len)
                    .map_err(|_| WireError::Invalid("prefix"))?
                    .trunc(),
            )
        })
    }
}

/// MRT common header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    /// Seconds since the epoch.
    pub timestamp: u32,
    /// MRT type.
    pub mrt_type: u16,
    /// MRT subtype.
    pub subtype: u16,
    /// Body length (for `_ET` types it includes the 4-byte microsecond field).
    pub length: u32,
}

/// MRT types handled specially.
pub mod types {
    /// TABLE_DUMP (RFC 6396 §4.2).
    pub const TABLE_DUMP: u16 = 12;
    /// TABLE_DUMP_V2.
    pub const TABLE_DUMP_V2: u16 = 13;
    /// BGP4MP.
    pub const BGP4MP: u16 = 16;
    /// BGP4MP_ET (microsecond timestamps).
    pub const BGP4MP_ET: u16 = 17;
}

/// Reads MRT records one at a time: in place in the reader's buffer when a record lies whole in
/// it (almost always: records are small, buffers large), else copied into a reused buffer.
pub struct RecordReader<R> {
    inner: R,
    body: Vec<u8>,
    header_bytes: [u8; 12],
    /// Bytes of the record last returned in place, consumed before reading the next one.
    pending: usize,
}

impl RecordHeader {
    fn parse(h: &[u8; 12]) -> RecordHeader {
        RecordHeader {
            timestamp: u32::from_be_bytes([h[0], h[1], h[2], h[3]]),
            mrt_type: u16::from_be_bytes([h[4], h[5]]),
            subtype: u16::from_be_bytes([h[6], h[7]]),
            length: u32::from_be_bytes([h[8], h[9], h[10], h[11]]),
        }
    }
}

/// A failure to read the next record.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The stream ended inside a record (or decompression failed).
    #[error("stream ended inside a record: {0}")]
    Truncated(io::Error),
    /// The declared length is over [`MAX_RECORD_LEN`]; the stream cannot be resynchronised.
    #[error("record length {0} over the limit")]
    Oversized(u32),
}

impl<R: BufRead> RecordReader<R> {
    /// A reader over a (decompressed) MRT stream.
    pub fn new(inner: R) -> Self {
        RecordReader {
            inner,
            body: Vec::with_capacity(64 * 1024),
            header_bytes: [0; 12],
            pending: 0,
        }
    }

    /// The length of the record at the start of the reader's buffer, if the whole record is in
    /// it (and within [`MAX_RECORD_LEN`]).
    fn buffered_record_len(&mut self) -> Option<usize> {
        let buf = loop {
            match self.inner.fill_buf() {
                Ok(buf) => break buf,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // The copying path meets the error again and reports it.
                Err(_) => return None,
            }
        };
        let (header, _) = buf.split_first_chunk::<12>()?;
        let length = RecordHeader::parse(header).length;
        let total = 12 + length as usize;
        (length <= MAX_RECORD_LEN && buf.len() >= total).then_some(total)
    }

    /// The next record; `Ok(None)` at a clean end of stream.
    pub fn next_record(&mut self) -> Result<Option<Record<'_>>, ReadError> {
        if self.pending > 0 {
            self.inner.consume(std::mem::take(&mut self.pending));
        }
        if let Some(total) = self.buffered_record_len() {
            // Returned in place; consumed on the next call.
            self.pending = total;
            let buf = &self.inner.fill_buf().map_err(ReadError::Truncated)?[..total];
            // `total` is at least 12, so the split cannot fail.
            let (raw_header, body) = buf
                .split_first_chunk::<12>()
                .ok_or_else(|| ReadError::Truncated(io::Error::other("short record buffer")))?;
            return Ok(Some(Record {
                header: RecordHeader::parse(raw_header),
                raw_header,
                body,
            }));
        }
        let mut got = 0;
        while got < 12 {
            match self.inner.read(&mut self.header_bytes[got..]) {
                Ok(0) if got == 0 => return Ok(None),
                Ok(0) => {
                    return Err(ReadError::Truncated(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "end of stream inside an MRT header",
                    )))
                }
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(ReadError::Truncated(e)),
            }
        }
        let header = RecordHeader::parse(&self.header_bytes);
        if header.length > MAX_RECORD_LEN {
            return Err(ReadError::Oversized(header.length));
        }
        self.body.resize(header.length as usize, 0);
        self.inner
            .read_exact(&mut self.body)
            .map_err(ReadError::Truncated)?;
        Ok(Some(Record {
            header,
            raw_header: &self.header_bytes,
            body: &self.body,
        }))
    }
}

/// One MRT record as read.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    /// The decoded common header.
    pub header: RecordHeader,
    /// The 12 header bytes (to rebuild the raw record for another decoder).
    pub raw_header: &'a [u8; 12],
    /// The body.
    pub body: &'a [u8],
}

/// One peer of a TABLE_DUMP_V2 PEER_INDEX_TABLE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexedPeer {
    /// Peer address.
    pub address: IpAddr,
    /// Peer AS.
    pub asn: u32,
}

/// Parses a PEER_INDEX_TABLE body.
pub fn peer_index_table(body: &[u8]) -> Result<Vec<IndexedPeer>, WireError> {
    let mut c = Cursor::new(body);
    c.take(4, "collector BGP id")?;
    let name_len = c.u16("view name length")? as usize;
    c.take(name_len, "view name")?;
    let count = c.u16("peer count")? as usize;
    let mut peers = Vec::with_capacity(count.min(c.remaining() / 7 + 1));
    for _ in 0..count {
        let ty = c.u8("peer type")?;
        c.take(4, "peer BGP id")?;
        let address = c.addr(ty & 1 != 0, "peer address")?;
        let asn = if ty & 2 != 0 {
            c.u32("peer AS")?
        } else {
            c.u16("peer AS")? as u32
        };
        peers.push(IndexedPeer { address, asn });
    }
    Ok(peers)
}

/// A TABLE_DUMP_V2 RIB_IPV4/IPV6_UNICAST/MULTICAST record (optionally ADD-PATH).
#[derive(Debug, Clone, Copy)]
pub struct RibRecord<'a> {
    /// The prefix (masked).
    pub prefix: IpNet,
    /// Number of entries announced by the header.
    pub entry_count: u16,
    add_path: bool,
    entries: Cursor<'a>,
}

/// One RIB entry.
#[derive(Debug, Clone, Copy)]
pub struct RibEntry<'a> {
    /// Index into the PEER_INDEX_TABLE.
    pub peer_index: u16,
    /// Originated time.
    pub originated: u32,
    /// ADD-PATH path identifier (RFC 8050), if the subtype has one.
    pub path_id: Option<u32>,
    /// Path attributes (AS numbers are 4 bytes in TABLE_DUMP_V2).
    pub attributes: &'a [u8],
}

/// The RIB subtypes this reader decodes: (IPv6?, ADD-PATH?).
pub fn rib_subtype(subtype: u16) -> Option<(bool, bool)> {
    match subtype {
        2 | 3 => Some((false, false)),
        4 | 5 => Some((true, false)),
        8 | 9 => Some((false, true)),
        10 | 11 => Some((true, true)),
        _ => None,
    }
}

impl<'a> RibRecord<'a> {
    /// Parses the record header (sequence, prefix, entry count); entries are read lazily.
    pub fn parse(body: &'a [u8], v6: bool, add_path: bool) -> Result<Self, WireError> {
        let mut c = Cursor::new(body);
        c.take(4, "sequence number")?;
        let prefix = c.prefix(v6)?;
        let entry_count = c.u16("entry count")?;
        Ok(RibRecord {
            prefix,
            entry_count,
            add_path,
            entries: c,
        })
    }

    /// The entries, in order.
    pub fn entries(&self) -> RibEntries<'a> {
        RibEntries {
            cursor: self.entries,
            left: self.entry_count,
            add_path: self.add_path,
        }
    }
}

/// Iterator over the entries of a [`RibRecord`].
pub struct RibEntries<'a> {
    cursor: Cursor<'a>,
    left: u16,
    add_path: bool,
}

impl<'a> Iterator for RibEntries<'a> {
    type Item = Result<RibEntry<'a>, WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let c = &mut self.cursor;
        let entry = (|| {
            let peer_index = c.u16("peer index")?;
            let originated = c.u32("originated time")?;
            let path_id = if self.add_path {
                Some(c.u32("path id")?)
            } else {
                None
            };
            let len = c.u16("attribute length")? as usize;
            let attributes = c.take(len, "attributes")?;
            Ok(RibEntry {
                peer_index,
                originated,
                path_id,
                attributes,
            })
        })();
        if entry.is_err() {
            self.left = 0;
        }
        Some(entry)
    }
}

/// Path attribute type codes used here.
const ATTR_AS_PATH: u8 = 2;
const ATTR_MP_REACH: u8 = 14;
const ATTR_MP_UNREACH: u8 = 15;
const ATTR_AS4_PATH: u8 = 17;

/// Iterates the records `read` takes off `data` one after another until the data ends; the first
/// error is returned and ends the iteration (the rest cannot be framed).
pub fn records<'a, T>(
    data: &'a [u8],
    mut read: impl FnMut(&mut Cursor<'a>) -> Result<T, WireError> + 'a,
) -> impl Iterator<Item = Result<T, WireError>> + 'a
where
    T: 'a,
{
    let mut c = Cursor::new(data);
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed || c.remaining() == 0 {
            return None;
        }
        let r = read(&mut c);
        failed = r.is_err();
        Some(r)
    })
}

/// Iterates path attributes: (type code, value).
pub fn attributes(data: &[u8]) -> impl Iterator<Item = Result<(u8, &[u8]), WireError>> + '_ {
    records(data, |c| {
        let flags = c.u8("attribute flags")?;
        let code = c.u8("attribute type")?;
        let len = if flags & 0x10 != 0 {
            c.u16("attribute length")? as usize
        } else {
            c.u8("attribute length")? as usize
        };
        Ok((code, c.take(len, "attribute value")?))
    })
}

/// AS_PATH segment types.
pub const AS_SET: u8 = 1;
/// AS_SEQUENCE.
pub const AS_SEQUENCE: u8 = 2;
/// AS_CONFED_SEQUENCE.
pub const AS_CONFED_SEQUENCE: u8 = 3;
/// AS_CONFED_SET.
pub const AS_CONFED_SET: u8 = 4;

/// Iterates the segments of an AS_PATH value with 4-byte ASNs: (segment type, ASN bytes).
pub fn as_path_segments(value: &[u8]) -> impl Iterator<Item = Result<(u8, &[u8]), WireError>> + '_ {
    records(value, |c| {
        let ty = c.u8("segment type")?;
        if !(AS_SET..=AS_CONFED_SET).contains(&ty) {
            return Err(WireError::Invalid("AS_PATH segment type"));
        }
        let n = c.u8("segment length")? as usize;
        Ok((ty, c.take(n * 4, "segment")?))
    })
}

/// The AS_PATH of TABLE_DUMP_V2 entry attributes: `Ok(None)` when there is none; an error when
/// an attribute or the path is malformed, or when an AS4_PATH is present (the caller then hands
/// the record to the full decoder, which knows how to merge it).
pub fn td2_as_path(attrs: &[u8]) -> Result<Option<&[u8]>, WireError> {
    let mut path = None;
    for a in attributes(attrs) {
        let (code, value) = a?;
        match code {
            ATTR_AS_PATH => {
                for seg in as_path_segments(value) {
                    seg?;
                }
                path = Some(value);
            }
            ATTR_AS4_PATH => return Err(WireError::Invalid("AS4_PATH in a TABLE_DUMP_V2 entry")),
            _ => {}
        }
    }
    Ok(path)
}

/// Calls `visit` for every unicast/multicast prefix a BGP4MP(_ET) record announces or withdraws,
/// stopping early when it returns true. Returns `Ok(true)` when the record needs the full decoder
/// (`visit` asked to stop, or the NLRI look like ADD-PATH without an ADD-PATH subtype), `Ok(false)`
/// after visiting everything (also for non-UPDATE messages and state changes, which carry none).
pub fn bgp4mp_prefixes(
    mrt_type: u16,
    subtype: u16,
    body: &[u8],
    mut visit: impl FnMut(IpNet) -> bool,
) -> Result<bool, WireError> {
    let mut c = Cursor::new(body);
    if mrt_type == types::BGP4MP_ET {
        c.take(4, "microseconds")?;
    }
    // Subtypes: 1 MESSAGE, 4 MESSAGE_AS4, 6 MESSAGE_LOCAL, 7 MESSAGE_AS4_LOCAL, 8/9/10/11 their
    // ADD-PATH variants (RFC 8050); 0 and 5 are state changes (no routes). Anything else (the
    // deprecated BGP4MP_ENTRY, ...) is for the full decoder to judge.
    let (as4, add_path) = match subtype {
        0 | 5 => return Ok(false),
        1 | 6 => (false, false),
        4 | 7 => (true, false),
        8 | 10 => (false, true),
        9 | 11 => (true, true),
        _ => return Ok(true),
    };
    let asn_len = if as4 { 4 } else { 2 };
    c.take(asn_len * 2, "peer and local AS")?;
    c.take(2, "interface index")?;
    let afi = c.u16("address family")?;
    let v6 = match afi {
        1 => false,
        2 => true,
        _ => return Err(WireError::Invalid("address family")),
    };
    c.addr(v6, "peer address")?;
    c.addr(v6, "local address")?;
    c.take(16, "BGP marker")?;
    let len = c.u16("BGP length")? as usize;
    if !(19..=65535).contains(&len) || len - 18 > c.remaining() {
        return Err(WireError::Invalid("BGP message length"));
    }
    let msg_type = c.u8("BGP message type")?;
    if msg_type != 2 {
        if !(1..=5).contains(&msg_type) {
            return Err(WireError::Invalid("BGP message type"));
        }
        return Ok(false);
    }
    let mut msg = Cursor::new(c.take(len - 19, "BGP message")?);
    let wlen = msg.u16("withdrawn length")? as usize;
    let mut withdrawn = Cursor::new(msg.take(wlen, "withdrawn routes")?);
    if nlri_list(&mut withdrawn, false, add_path, &mut visit)? {
        return Ok(true);
    }
    let alen = msg.u16("attributes length")? as usize;
    let attrs = msg.take(alen, "path attributes")?;
    for a in attributes(attrs) {
        let (code, value) = a?;
        if code != ATTR_MP_REACH && code != ATTR_MP_UNREACH {
            continue;
        }
        let mut v = Cursor::new(value);
        let afi = v.u16("MP AFI")?;
        let safi = v.u8("MP SAFI")?;
        if code == ATTR_MP_REACH {
            let nh = v.u8("next hop length")? as usize;
            v.take(nh, "next hop")?;
            v.take(1, "reserved")?;
        }
        // Only unicast and multicast IPv4/IPv6 are routes here (as for bgpdump and bgpkit).
        if !matches!(safi, 1 | 2) || !matches!(afi, 1 | 2) {
            continue;
        }
        if nlri_list(&mut v, afi == 2, add_path, &mut visit)? {
            return Ok(true);
        }
    }
    nlri_list(&mut msg, false, add_path, &mut visit)
}

fn nlri_list(
    c: &mut Cursor<'_>,
    v6: bool,
    add_path: bool,
    visit: &mut impl FnMut(IpNet) -> bool,
) -> Result<bool, WireError> {
    while c.remaining() > 0 {
        if add_path {
            c.take(4, "path id")?;
        } else if c.data[0] == 0 {
            // A /0 is implausible: this is likely ADD-PATH NLRI without an ADD-PATH subtype (BIRD
            // writes such dumps). bgpkit-parser has a heuristic for it; let it decide.
            return Ok(true);
        }
        if visit(c.prefix(v6)?) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The prefix of a TABLE_DUMP (v1) record (subtype 1 = IPv4, 2 = IPv6).
pub fn table_dump_prefix(subtype: u16, body: &[u8]) -> Result<IpNet, WireError> {
    let v6 = match subtype {
        1 => false,
        2 => true,
        _ => return Err(WireError::Invalid("TABLE_DUMP subtype")),
    };
    let mut c = Cursor::new(body);
    c.take(4, "view and sequence")?;
    let addr = c.addr(v6, "prefix")?;
    let len = c.u8("prefix length")?;
    IpNet::new(addr, len)
        .map(|n| n.trunc())
        .map_err(|_| WireError::Invalid("prefix length"))
}

#[cfg(test)]
mod tests;
