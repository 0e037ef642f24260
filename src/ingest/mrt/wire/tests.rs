//! Wire reader tests on records built byte by byte, plus exhaustive truncation and bit flips.

use super::*;
use crate::ingest::bgp::tests::bgp_msg;

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

/// A BGP4MP_MESSAGE_AS4 (subtype 4) body carrying `update` (the UPDATE body after the header).
fn bgp4mp_as4(update: &[u8]) -> Vec<u8> {
    bgp4mp_as4_message(&bgp_msg(2, update))
}

/// A BGP4MP_MESSAGE_AS4 (subtype 4) body carrying the BGP message `message`.
pub(crate) fn bgp4mp_as4_message(message: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&65001u32.to_be_bytes()); // peer AS
    b.extend_from_slice(&65000u32.to_be_bytes()); // local AS
    b.extend_from_slice(&0u16.to_be_bytes()); // ifindex
    b.extend_from_slice(&1u16.to_be_bytes()); // AFI IPv4
    b.extend_from_slice(&[192, 0, 2, 1, 192, 0, 2, 2]);
    b.extend_from_slice(message);
    b
}

/// An UPDATE body: withdrawn 10.1.0.0/16, AS_PATH [65001 64496], MP_REACH 2001:db8::/32,
/// NLRI 203.0.113.0/24 and 198.51.100.128/25.
fn sample_update() -> Vec<u8> {
    let mut u = Vec::new();
    let withdrawn = [16u8, 10, 1];
    u.extend_from_slice(&(withdrawn.len() as u16).to_be_bytes());
    u.extend_from_slice(&withdrawn);
    let mut attrs = Vec::new();
    attrs.extend_from_slice(&[0x40, 1, 1, 0]); // ORIGIN IGP
    attrs.extend_from_slice(&[0x40, 2, 10, 2, 2]); // AS_PATH: one AS_SEQUENCE of 2
    attrs.extend_from_slice(&65001u32.to_be_bytes());
    attrs.extend_from_slice(&64496u32.to_be_bytes());
    let mut mp = vec![0, 2, 1, 16];
    mp.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    mp.push(0);
    mp.extend_from_slice(&[32, 0x20, 0x01, 0x0d, 0xb8]);
    attrs.extend_from_slice(&[0x90, 14]);
    attrs.extend_from_slice(&(mp.len() as u16).to_be_bytes());
    attrs.extend_from_slice(&mp);
    u.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    u.extend_from_slice(&attrs);
    u.extend_from_slice(&[24, 203, 0, 113, 25, 198, 51, 100, 128]);
    u
}

/// The prefilter's decision on a BGP4MP record and the prefixes it looked up (none matching).
fn visited(body: &[u8]) -> (Bgp4mpScan, Vec<IpNet>) {
    let mut seen = Vec::new();
    let scan = bgp4mp_scan(types::BGP4MP, 4, body, |p| {
        seen.push(*p);
        false
    });
    (scan, seen)
}

#[test]
fn bgp4mp_update_prefixes_are_all_visited() {
    let body = bgp4mp_as4(&sample_update());
    let (scan, seen) = visited(&body);
    assert_eq!(scan, Bgp4mpScan::Skip(4));
    assert_eq!(
        seen,
        vec![
            net("10.1.0.0/16"),
            net("2001:db8::/32"),
            net("203.0.113.0/24"),
            net("198.51.100.128/25")
        ]
    );
    // No lookup after a match, and the record goes to the full decoder.
    let mut n = 0;
    let scan = bgp4mp_scan(types::BGP4MP, 4, &body, |p| {
        n += 1;
        *p == net("2001:db8::/32")
    });
    assert_eq!(scan, Bgp4mpScan::FullDecode);
    assert_eq!(n, 2);
}

#[test]
fn bgp4mp_et_skips_the_microseconds() {
    let mut body = vec![0, 0, 0, 7];
    body.extend_from_slice(&bgp4mp_as4(&sample_update()));
    let mut seen = 0;
    let scan = bgp4mp_scan(types::BGP4MP_ET, 4, &body, |_| {
        seen += 1;
        false
    });
    assert_eq!(scan, Bgp4mpScan::Skip(4));
    assert_eq!(seen, 4);
}

#[test]
fn non_update_messages_and_state_changes_carry_no_prefixes() {
    let mut keepalive = bgp4mp_as4(&[]);
    let type_at = keepalive.len() - 1;
    keepalive[type_at] = 4;
    assert_eq!(visited(&keepalive), (Bgp4mpScan::Skip(0), vec![]));
    // Subtype 5 = STATE_CHANGE_AS4 (RFC 6396 §4.4.4): peer AS 196615, local AS 12654,
    // interface 0, AFI 1, peer 192.0.2.1, local 192.0.2.254, Established (6) -> Idle (1).
    let mut sc = Vec::new();
    sc.extend_from_slice(&196_615u32.to_be_bytes());
    sc.extend_from_slice(&12_654u32.to_be_bytes());
    sc.extend_from_slice(&[0, 0, 0, 1, 192, 0, 2, 1, 192, 0, 2, 254, 0, 6, 0, 1]);
    let down = StateChange {
        peer_asn: 196_615,
        peer_address: "192.0.2.1".parse().unwrap(),
        old_state: 6,
        new_state: 1,
    };
    assert!(down.leaves_established());
    assert_eq!(
        bgp4mp_scan(types::BGP4MP, 5, &sc, |_| true),
        Bgp4mpScan::StateChange(down)
    );
    // The same in BGP4MP_ET, after its microseconds.
    let et: Vec<u8> = [0u8, 0, 0, 7].iter().chain(&sc).copied().collect();
    assert_eq!(
        bgp4mp_scan(types::BGP4MP_ET, 5, &et, |_| true),
        Bgp4mpScan::StateChange(down)
    );
    // Subtype 0 = STATE_CHANGE with 2-byte ASNs; Active (3) -> Connect (2) leaves nothing.
    let mut sc2 = vec![
        0xfd, 0xe8, 0x31, 0x6e, 0, 0, 0, 1, 192, 0, 2, 1, 192, 0, 2, 254,
    ];
    sc2.extend_from_slice(&[0, 3, 0, 2]);
    match bgp4mp_scan(types::BGP4MP, 0, &sc2, |_| true) {
        Bgp4mpScan::StateChange(c) => {
            assert_eq!((c.peer_asn, c.old_state, c.new_state), (65_000, 3, 2));
            assert!(!c.leaves_established());
        }
        other => panic!("{other:?}"),
    }
    // A cut state change is for the full decoder to judge.
    assert_eq!(
        bgp4mp_scan(types::BGP4MP, 5, &[1, 2, 3], |_| true),
        Bgp4mpScan::FullDecode
    );
    // Message type 9 does not exist: for the full decoder to judge.
    keepalive[type_at] = 9;
    assert_eq!(visited(&keepalive).0, Bgp4mpScan::FullDecode);
}

#[test]
fn nlri_starting_with_a_zero_byte_goes_to_the_full_decoder() {
    // BIRD writes ADD-PATH NLRI (path id first) into plain MESSAGE_AS4 records.
    let mut u = vec![0, 0, 0, 0];
    u.extend_from_slice(&[0, 0, 0, 1, 24, 203, 0, 113]);
    assert_eq!(visited(&bgp4mp_as4(&u)), (Bgp4mpScan::FullDecode, vec![]));
}

#[test]
fn every_truncation_and_bit_flip_is_an_error_or_a_value_never_a_panic() {
    let body = bgp4mp_as4(&sample_update());
    // A cut record is never skipped as read: the full decoder judges it.
    for cut in 0..body.len() {
        assert_eq!(
            visited(&body[..cut]).0,
            Bgp4mpScan::FullDecode,
            "cut at {cut} must be an error"
        );
    }
    for i in 0..body.len() {
        for bit in 0..8 {
            let mut b = body.clone();
            b[i] ^= 1 << bit;
            let _ = visited(&b);
        }
    }
    let rib = rib_record_body();
    for cut in 0..rib.len() {
        if let Ok(r) = RibRecord::parse(&rib[..cut], false, false) {
            for e in r.entries().flatten() {
                let _ = td2_as_path(e.attributes);
            }
        }
    }
}

fn rib_record_body() -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&7u32.to_be_bytes()); // sequence
    b.extend_from_slice(&[23, 203, 0, 112]); // 203.0.112.0/23
    b.extend_from_slice(&2u16.to_be_bytes()); // two entries
    for (peer, asns) in [(0u16, vec![65001u32, 64496]), (1, vec![65002, 174, 64496])] {
        b.extend_from_slice(&peer.to_be_bytes());
        b.extend_from_slice(&1_400_000_000u32.to_be_bytes());
        let mut attrs = vec![0x40, 2, (2 + 4 * asns.len()) as u8, 2, asns.len() as u8];
        for a in &asns {
            attrs.extend_from_slice(&a.to_be_bytes());
        }
        b.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
        b.extend_from_slice(&attrs);
    }
    b
}

#[test]
fn rib_record_entries_and_their_paths() {
    let body = rib_record_body();
    let r = RibRecord::parse(&body, false, false).unwrap();
    assert_eq!(r.prefix, net("203.0.112.0/23"));
    assert_eq!(r.entry_count, 2);
    let entries: Vec<_> = r.entries().map(Result::unwrap).collect();
    assert_eq!(entries[1].peer_index, 1);
    assert_eq!(entries[1].path_id, None);
    let path = td2_as_path(entries[1].attributes).unwrap().unwrap();
    let asns: Vec<u32> = as_path_segments(path)
        .flat_map(|s| {
            s.unwrap()
                .1
                .chunks_exact(4)
                .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(asns, vec![65002, 174, 64496]);
    // A claimed third entry that is not there is an error, not a panic.
    let mut more = body.clone();
    more[9] = 3;
    let r = RibRecord::parse(&more, false, false).unwrap();
    assert_eq!(r.entries().filter(Result::is_err).count(), 1);
}

#[test]
fn as4_path_and_bad_segments_are_refused() {
    assert_eq!(td2_as_path(&[]), Ok(None));
    let as4 = [0xc0, 17, 6, 2, 1, 0, 0, 0, 1];
    assert!(td2_as_path(&as4).is_err());
    let bad_segment = [0x40, 2, 6, 9, 1, 0, 0, 0, 1];
    assert_eq!(
        td2_as_path(&bad_segment),
        Err(WireError::Invalid("AS_PATH segment type"))
    );
}

#[test]
fn peer_index_table_with_mixed_peers() {
    let mut b = vec![10, 0, 0, 1, 0, 2, b'r', b'v', 0, 2];
    b.push(0); // IPv4, 2-byte AS
    b.extend_from_slice(&[1, 1, 1, 1, 192, 0, 2, 1, 0xfd, 0xe8]);
    b.push(3); // IPv6, 4-byte AS
    b.extend_from_slice(&[2, 2, 2, 2]);
    b.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    b.extend_from_slice(&4_200_000_000u32.to_be_bytes());
    let peers = peer_index_table(&b).unwrap();
    assert_eq!(peers[0].address.to_string(), "192.0.2.1");
    assert_eq!(peers[0].asn, 65000);
    assert_eq!(peers[1].address.to_string(), "2001:db8::1");
    assert_eq!(peers[1].asn, 4_200_000_000);
    assert!(peer_index_table(&b[..b.len() - 1]).is_err());
}

#[test]
fn table_dump_prefix_is_masked() {
    assert_eq!(
        table_dump_prefix(1, &[0, 0, 0, 1, 10, 0, 0, 0, 8]),
        Ok(net("10.0.0.0/8"))
    );
}

#[test]
fn record_reader_checks_length_before_allocating() {
    let mut stream = Vec::new();
    stream.extend_from_slice(&[0, 0, 0, 1, 0, 13, 0, 1, 0, 0, 0, 2, 0xaa, 0xbb]);
    stream.extend_from_slice(&[0, 0, 0, 2, 0, 16, 0, 4, 0xff, 0xff, 0xff, 0xff]);
    let mut r = RecordReader::new(&stream[..]);
    let rec = r.next_record().unwrap().unwrap();
    assert_eq!(
        (rec.header.mrt_type, rec.header.subtype, rec.body),
        (13, 1, &[0xaa, 0xbb][..])
    );
    assert!(matches!(
        r.next_record(),
        Err(ReadError::Oversized(0xffff_ffff))
    ));

    let cut = &stream[..13];
    let mut r = RecordReader::new(cut);
    assert!(matches!(r.next_record(), Err(ReadError::Truncated(_))));
    let mut r = RecordReader::new(&stream[..5]);
    assert!(matches!(r.next_record(), Err(ReadError::Truncated(_))));
    let mut r = RecordReader::new(&[][..]);
    assert!(r.next_record().unwrap().is_none());
}

#[test]
fn record_reader_gives_the_same_records_in_place_and_across_buffer_ends() {
    // Records of 0 to 299 body bytes; read from one buffer holding everything (every record
    // returned in place) and through buffers of a few bytes (records straddle buffer ends and
    // are copied), then truncated in the last record.
    let mut stream = Vec::new();
    let mut want = Vec::new();
    for i in 0u32..300 {
        let body: Vec<u8> = (0..i).map(|b| (b * 31 + i) as u8).collect();
        stream.extend_from_slice(&i.to_be_bytes());
        stream.extend_from_slice(&[0, 13, 0, 2]);
        stream.extend_from_slice(&i.to_be_bytes());
        stream.extend_from_slice(&body);
        want.push((i, body));
    }
    let read_all = |r: &mut dyn std::io::BufRead| {
        let mut r = RecordReader::new(r);
        let mut got = Vec::new();
        let end = loop {
            match r.next_record() {
                Ok(Some(rec)) => {
                    assert_eq!(rec.raw_header[..4], rec.header.timestamp.to_be_bytes());
                    got.push((rec.header.timestamp, rec.body.to_vec()));
                }
                Ok(None) => break None,
                Err(e) => break Some(e),
            }
        };
        (got, end)
    };
    for capacity in [usize::MAX, 1, 5, 12, 13, 64, 1000] {
        let mut whole = &stream[..];
        let (got, end) = if capacity == usize::MAX {
            read_all(&mut whole)
        } else {
            read_all(&mut std::io::BufReader::with_capacity(
                capacity,
                &stream[..],
            ))
        };
        assert!(end.is_none(), "capacity {capacity}: {end:?}");
        assert!(got == want, "capacity {capacity}");
        let cut = &stream[..stream.len() - 1];
        let (got, end) = read_all(&mut std::io::BufReader::with_capacity(
            capacity.min(4096),
            cut,
        ));
        assert_eq!(got.len(), 299, "capacity {capacity}, truncated");
        assert!(
            matches!(end, Some(ReadError::Truncated(_))),
            "capacity {capacity}"
        );
    }
}
