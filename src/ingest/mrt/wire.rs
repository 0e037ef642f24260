//! A small, bounds-checked reader of MRT framing (RFC 6396) and of the parts of MRT records the
//! prefilter needs, without allocating: record headers ([`RecordReader`]), the
//! PEER_INDEX_TABLE, TABLE_DUMP_V2 RIB entries and their AS path, the TABLE_DUMP prefix, and the
//! BGP4MP header (whose BGP message [`crate::ingest::bgp`] reads, as for BMP).
//!
//! It answers two questions cheaply: "which prefixes does this record carry?" (so a record that
//! touches no registered prefix is skipped undecoded) and, for TABLE_DUMP_V2 RIB entries, "what is
//! this entry's AS path?". Everything else is left to bgpkit-parser. Every length is checked
//! before use; malformed input yields [`WireError`], never a panic.

use std::io::{self, BufRead};
use std::net::IpAddr;
use std::ops::ControlFlow;

use ipnet::IpNet;

use crate::ingest::bgp::as_path::as_path_segments;
use crate::ingest::bgp::wire::{attributes, ATTR_AS4_PATH, ATTR_AS_PATH};
pub use crate::ingest::bgp::wire::{Cursor, WireError};
use crate::ingest::bgp::{only_to_customer, split_update, Otc, UpdateError};

/// Largest MRT record body accepted (the same cap as bgpkit-parser): a larger declared length is
/// an error before anything is allocated.
pub const MAX_RECORD_LEN: u32 = 16 * 1024 * 1024;

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
        let header = RecordHeader::parse(header);
        let length = header.length;
        let total = 12 + length as usize;
        if length > MAX_RECORD_LEN || buf.len() < total {
            return None;
        }
        if header.mrt_type == types::TABLE_DUMP
            && table_dump_length_short(header.subtype, &buf[12..total])
        {
            // The copying path reads the 4 missing bytes when they are not buffered.
            return (buf.len() >= total + 4).then_some(total + 4);
        }
        Some(total)
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
        if header.mrt_type == types::TABLE_DUMP
            && table_dump_length_short(header.subtype, &self.body)
        {
            let mut missing = [0u8; 4];
            self.inner
                .read_exact(&mut missing)
                .map_err(ReadError::Truncated)?;
            self.body.extend_from_slice(&missing);
        }
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

/// The BGP FSM state Established (RFC 4271 §8.2.2; RFC 6396 §4.4.1 numbers the states 1 Idle
/// to 6 Established).
pub const BGP_ESTABLISHED: u16 = 6;

/// A BGP4MP STATE_CHANGE(_AS4) record (RFC 6396 §4.4.1, §4.4.4): a collector's session with a
/// peer changed state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateChange {
    /// The peer's AS.
    pub peer_asn: u32,
    /// The peer's address.
    pub peer_address: IpAddr,
    /// The FSM state before (1 Idle, 2 Connect, 3 Active, 4 OpenSent, 5 OpenConfirm,
    /// 6 Established).
    pub old_state: u16,
    /// The FSM state after.
    pub new_state: u16,
}

impl StateChange {
    /// Whether the session left Established: every route learned over it is gone (RFC 4271
    /// §8.2.2 releases all BGP resources, the Adj-RIB-In included).
    pub fn leaves_established(&self) -> bool {
        self.old_state == BGP_ESTABLISHED && self.new_state != BGP_ESTABLISHED
    }
}

/// What a BGP4MP(_ET) record holds, as far as its header tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bgp4mp<'a> {
    /// A state change (subtypes 0 and 5): no routes.
    StateChange(StateChange),
    /// A BGP message (subtypes 1 MESSAGE, 4 MESSAGE_AS4, 6 MESSAGE_LOCAL, 7 MESSAGE_AS4_LOCAL,
    /// and their ADD-PATH variants 8 to 11, RFC 8050).
    Message {
        /// The BGP message, from its marker to the end of the record.
        bgp: &'a [u8],
        /// Whether its NLRI carry path identifiers (the ADD-PATH subtypes).
        add_path: bool,
    },
    /// Any other subtype (the deprecated BGP4MP_ENTRY, ...): for the full decoder to judge.
    Other,
}

/// Reads the BGP4MP header of a BGP4MP(_ET) record (RFC 6396 §4.4): peer and local AS and
/// address, up to the BGP message, which it hands back for [`crate::ingest::bgp`] to read.
pub fn bgp4mp(mrt_type: u16, subtype: u16, body: &[u8]) -> Result<Bgp4mp<'_>, WireError> {
    let mut c = Cursor::new(body);
    if mrt_type == types::BGP4MP_ET {
        c.take(4, "microseconds")?;
    }
    let (as4, add_path) = match subtype {
        0 | 5 => return state_change(&mut c, subtype == 5).map(Bgp4mp::StateChange),
        1 | 6 => (false, false),
        4 | 7 => (true, false),
        8 | 10 => (false, true),
        9 | 11 => (true, true),
        _ => return Ok(Bgp4mp::Other),
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
    let bgp = c.take(c.remaining(), "BGP message")?;
    Ok(Bgp4mp::Message { bgp, add_path })
}

/// The rest of a STATE_CHANGE(_AS4) record after the `_ET` microseconds.
fn state_change(c: &mut Cursor<'_>, as4: bool) -> Result<StateChange, WireError> {
    let peer_asn = if as4 {
        c.u32("peer AS")?
    } else {
        u32::from(c.u16("peer AS")?)
    };
    c.take(if as4 { 4 } else { 2 }, "local AS")?;
    c.take(2, "interface index")?;
    let v6 = match c.u16("address family")? {
        1 => false,
        2 => true,
        _ => return Err(WireError::Invalid("address family")),
    };
    let peer_address = c.addr(v6, "peer address")?;
    c.addr(v6, "local address")?;
    let old_state = c.u16("old state")?;
    let new_state = c.u16("new state")?;
    Ok(StateChange {
        peer_asn,
        peer_address,
        old_state,
        new_state,
    })
}

/// What the prefilter makes of a BGP4MP(_ET) record ([`bgp4mp_scan`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bgp4mpScan {
    /// No registered prefix: the record is skipped after counting its route entries (0 for
    /// state changes and messages other than UPDATEs).
    Skip(u64),
    /// A registered prefix, an unusual subtype, NLRI that look like ADD-PATH without an
    /// ADD-PATH subtype, or damage: bgpkit-parser decodes (or judges) the record.
    FullDecode,
    /// A repeated or malformed MP_REACH_NLRI/MP_UNREACH_NLRI ([`UpdateError::MalformedMp`]):
    /// counted under its label, nothing of the record used (see [`crate::ingest::bgp`]).
    Malformed(UpdateError),
    /// A session state change (no routes).
    StateChange(StateChange),
}

/// The prefilter's look at a BGP4MP(_ET) record: the BGP4MP header is read here, the UPDATE
/// walked by [`crate::ingest::bgp`]'s walker; `matches` says whether a prefix is registered. It
/// is asked until the first `true`, and the walk goes on to the end of the UPDATE even then, so
/// that a malformed MP attribute is found whichever prefix matched.
pub fn bgp4mp_scan(
    mrt_type: u16,
    subtype: u16,
    body: &[u8],
    mut matches: impl FnMut(&IpNet) -> bool,
) -> Bgp4mpScan {
    let (bgp, add_path) = match bgp4mp(mrt_type, subtype, body) {
        Ok(Bgp4mp::Message { bgp, add_path }) => (bgp, add_path),
        Ok(Bgp4mp::StateChange(sc)) => return Bgp4mpScan::StateChange(sc),
        Ok(Bgp4mp::Other) | Err(_) => return Bgp4mpScan::FullDecode,
    };
    let update = match split_update(bgp) {
        Ok(u) => u,
        // OPEN, KEEPALIVE, NOTIFICATION, ROUTE-REFRESH: no routes. An undefined type is for
        // the full decoder to judge.
        Err(UpdateError::NotUpdate(1..=5)) => return Bgp4mpScan::Skip(0),
        Err(_) => return Bgp4mpScan::FullDecode,
    };
    let (mut count, mut matched) = (0u64, false);
    let walked = update.for_each_route(
        |_| add_path,
        |n| {
            if !add_path && n.prefix.prefix_len() == 0 {
                // A /0 is implausible: this is likely ADD-PATH NLRI without an ADD-PATH subtype
                // (BIRD writes such dumps). bgpkit-parser has a heuristic for it; let it decide.
                return ControlFlow::Break(());
            }
            count += 1;
            if !matched {
                matched = matches(&n.prefix);
            }
            ControlFlow::Continue(())
        },
    );
    match walked {
        Ok(ControlFlow::Continue(_)) if !matched => Bgp4mpScan::Skip(count),
        Ok(_) => Bgp4mpScan::FullDecode,
        Err(e @ UpdateError::MalformedMp(_)) => Bgp4mpScan::Malformed(e),
        Err(_) => Bgp4mpScan::FullDecode,
    }
}

/// The Only-to-Customer attributes of a record's announcements ([`crate::ingest::bgp::otc`]),
/// read for bgpkit-parser, whose route iterator does not hand them on.
#[derive(Debug, Clone, Default)]
pub enum RecordOtc {
    /// No announcement of the record carries one (or the record is not one with routes).
    #[default]
    None,
    /// Every announcement carries this one (a BGP4MP UPDATE's).
    All(Otc),
    /// One per announcement, in record order (the entries of a TABLE_DUMP_V2 RIB record or of
    /// a TABLE_DUMP record); entries past a malformed one are not there (none is decoded).
    PerEntry(std::vec::IntoIter<Otc>),
}

impl RecordOtc {
    /// The OTC of the record's next announcement (`PerEntry`: consumed).
    pub fn next_announcement(&mut self) -> Otc {
        match self {
            RecordOtc::None => Otc::Absent,
            RecordOtc::All(otc) => *otc,
            RecordOtc::PerEntry(each) => each.next().unwrap_or_default(),
        }
    }

    /// After a malformed `All` was counted: the rest of the record's announcements are not
    /// counted again (one error per UPDATE).
    pub fn counted(&mut self) {
        if let RecordOtc::All(otc @ Otc::Malformed) = self {
            *otc = Otc::Absent;
        }
    }
}

/// The Only-to-Customer attributes of an MRT record's announcements: a BGP4MP(_ET) UPDATE, a
/// TABLE_DUMP_V2 RIB record (`peers`: the size of the PEER_INDEX_TABLE in force; entries of
/// peers past it give no route in bgpkit-parser, so they are left out here too), a TABLE_DUMP
/// record. Damage ends the reading (what it breaks is the decoders' to judge and count).
pub fn record_otc(mrt_type: u16, subtype: u16, body: &[u8], peers: usize) -> RecordOtc {
    let per_entry = |otcs: Vec<Otc>| {
        if otcs.iter().all(|o| *o == Otc::Absent) {
            RecordOtc::None
        } else {
            RecordOtc::PerEntry(otcs.into_iter())
        }
    };
    match mrt_type {
        types::BGP4MP | types::BGP4MP_ET => match bgp4mp(mrt_type, subtype, body) {
            Ok(Bgp4mp::Message { bgp, .. }) => match split_update(bgp) {
                Ok(u) => match only_to_customer(u.attributes) {
                    Otc::Absent => RecordOtc::None,
                    otc => RecordOtc::All(otc),
                },
                Err(_) => RecordOtc::None,
            },
            _ => RecordOtc::None,
        },
        types::TABLE_DUMP_V2 => {
            let Some((v6, add_path)) = rib_subtype(subtype) else {
                return RecordOtc::None;
            };
            let Ok(rib) = RibRecord::parse(body, v6, add_path) else {
                return RecordOtc::None;
            };
            per_entry(
                rib.entries()
                    .map_while(Result::ok)
                    .filter(|e| usize::from(e.peer_index) < peers)
                    .map(|e| only_to_customer(e.attributes))
                    .collect(),
            )
        }
        types::TABLE_DUMP => {
            let mut otcs = Vec::new();
            let _ = table_dump_prefixes(subtype, body, |_, attributes| {
                otcs.push(only_to_customer(attributes));
                ControlFlow::Continue(())
            });
            per_entry(otcs)
        }
        _ => RecordOtc::None,
    }
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

/// Visits the prefix and raw path attributes of every entry of a TABLE_DUMP record until
/// `visit` breaks; returns the entries visited. RFC 6396 puts one entry in a record; early MRT writers (Zebra, the year-2000
/// RIPE RIS dumps) put several behind one view/sequence header, and bgpkit-parser reads them
/// all, so the prefilter must see every one (a record skipped for its first prefix alone would
/// lose the others). Any entry that does not fit is an error: the caller hands the record to
/// bgpkit-parser.
pub fn table_dump_prefixes<'a>(
    subtype: u16,
    body: &'a [u8],
    mut visit: impl FnMut(IpNet, &'a [u8]) -> ControlFlow<()>,
) -> Result<u64, WireError> {
    let v6 = match subtype {
        1 => false,
        2 => true,
        _ => return Err(WireError::Invalid("TABLE_DUMP subtype")),
    };
    let mut c = Cursor::new(body);
    c.take(4, "view and sequence")?;
    let mut n = 0;
    while c.remaining() > 0 {
        let addr = c.addr(v6, "prefix")?;
        let len = c.u8("prefix length")?;
        let prefix = IpNet::new(addr, len)
            .map(|n| n.trunc())
            .map_err(|_| WireError::Invalid("prefix length"))?;
        c.take(5, "status and originated time")?;
        c.addr(v6, "peer address")?;
        c.take(2, "peer AS")?;
        let attr_len = c.u16("attribute length")? as usize;
        let attributes = c.take(attr_len, "attributes")?;
        n += 1;
        if visit(prefix, attributes).is_break() {
            break;
        }
    }
    Ok(n)
}

/// Whether a TABLE_DUMP body was declared 4 bytes short: its entries walk to exactly 4 bytes
/// past its end. Some early dumps (RIPE RIS, 2000) counted the length without the view and
/// sequence numbers; bgpkit-parser reads the 4 bytes that follow as part of the record, and so
/// must the prefilter, or every later record is misframed. The same rule as bgpkit-parser's.
pub fn table_dump_length_short(subtype: u16, body: &[u8]) -> bool {
    let address_len = match subtype {
        1 => 4usize,
        2 => 16usize,
        _ => return false,
    };
    if body.len() < 4 {
        return false;
    }
    let fixed = address_len * 2 + 10;
    let mut offset = 4usize;
    while offset < body.len() {
        let attr_len_at = offset + fixed - 2;
        if attr_len_at + 2 > body.len() {
            return false;
        }
        let attr_len = usize::from(u16::from_be_bytes([
            body[attr_len_at],
            body[attr_len_at + 1],
        ]));
        let end = offset + fixed + attr_len;
        if end == body.len() + 4 {
            return true;
        }
        if end > body.len() {
            return false;
        }
        offset = end;
    }
    false
}

#[cfg(test)]
pub(crate) mod tests;
