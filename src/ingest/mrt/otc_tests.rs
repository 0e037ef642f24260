//! The Only-to-Customer attribute (RFC 9234 §5) in both MRT decoders, on files built byte by
//! byte: a TABLE_DUMP_V2 RIB whose entries carry a good, no, and a malformed OTC, and an update
//! dump whose UPDATEs do the same. The route is kept without OTC when it is malformed, and that
//! is counted once per entry or UPDATE.

use std::collections::BTreeMap;

use super::*;
use crate::ingest::bgp::tests::{as_path4, attr, bgp_msg, next_hop, origin_igp, pfx, update};
use crate::ingest::mrt::wire::tests::bgp4mp_as4_message;

/// An MRT record.
fn record(mrt_type: u16, subtype: u16, body: &[u8]) -> Vec<u8> {
    let mut r = 1_700_000_000u32.to_be_bytes().to_vec();
    r.extend_from_slice(&mrt_type.to_be_bytes());
    r.extend_from_slice(&subtype.to_be_bytes());
    r.extend_from_slice(&(body.len() as u32).to_be_bytes());
    r.extend_from_slice(body);
    r
}

/// The OTC attribute with raw value `value` (optional transitive).
fn otc(value: &[u8]) -> Vec<u8> {
    attr(0xC0, 35, value)
}

/// The OTC variants the tests use, by peer AS: a good one, none, a 5-byte one, a 3-byte one.
fn otc_of(peer_asn: u32) -> Option<Vec<u8>> {
    match peer_asn {
        65001 => Some(otc(&64_999u32.to_be_bytes())),
        65003 => Some(otc(&[0, 0, 0xFD, 0xE7, 0])),
        65004 => Some(otc(&[0, 0xFD, 0xE7])),
        _ => None,
    }
}

const PEERS: [u32; 4] = [65001, 65002, 65003, 65004];

/// A PEER_INDEX_TABLE of [`PEERS`] (IPv4, 4-byte AS) and one RIB_IPV4_UNICAST record for
/// 203.0.112.0/23 with an entry of each, carrying [`otc_of`] its peer.
fn rib_file() -> Vec<u8> {
    let mut table = vec![10, 0, 0, 1, 0, 0];
    table.extend_from_slice(&(PEERS.len() as u16).to_be_bytes());
    for (i, asn) in PEERS.iter().enumerate() {
        table.push(0x02); // IPv4, 4-byte AS
        table.extend_from_slice(&[10, 0, 0, i as u8 + 1]);
        table.extend_from_slice(&[192, 0, 2, i as u8 + 1]);
        table.extend_from_slice(&asn.to_be_bytes());
    }
    let mut rib = 7u32.to_be_bytes().to_vec();
    rib.extend_from_slice(&pfx("203.0.112.0/23", None));
    rib.extend_from_slice(&(PEERS.len() as u16).to_be_bytes());
    for (i, asn) in PEERS.iter().enumerate() {
        let mut attrs = [origin_igp(), as_path4(&[*asn, 64496])].concat();
        if let Some(o) = otc_of(*asn) {
            attrs.extend_from_slice(&o);
        }
        rib.extend_from_slice(&(i as u16).to_be_bytes());
        rib.extend_from_slice(&1_700_000_000u32.to_be_bytes());
        rib.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
        rib.extend_from_slice(&attrs);
    }
    [record(13, 1, &table), record(13, 2, &rib)].concat()
}

/// BGP4MP_MESSAGE_AS4 records from peer AS 65001 (the wire tests' builder): per [`PEERS`] an
/// UPDATE announcing 203.0.113.0/24 and 198.51.100.0/24 with the path `[asn, 64496]` and
/// [`otc_of`] that AS, then one withdrawing 203.0.113.0/24.
fn update_file() -> Vec<u8> {
    let mut file = Vec::new();
    for asn in PEERS {
        let mut attrs = vec![
            origin_igp(),
            as_path4(&[asn, 64496]),
            next_hop([10, 0, 0, 1]),
        ];
        attrs.extend(otc_of(asn));
        let nlri = [pfx("203.0.113.0/24", None), pfx("198.51.100.0/24", None)].concat();
        file.extend(record(
            16,
            4,
            &bgp4mp_as4_message(&update(&[], &attrs, &nlri)),
        ));
    }
    let withdraw = bgp_msg(2, &{
        let w = pfx("203.0.113.0/24", None);
        let mut b = (w.len() as u16).to_be_bytes().to_vec();
        b.extend_from_slice(&w);
        b.extend_from_slice(&[0, 0]);
        b
    });
    file.extend(record(16, 4, &bgp4mp_as4_message(&withdraw)));
    file
}

/// (prefix, first AS of the path, OTC) of one update.
type Seen = (String, u32, Option<u32>);

/// Every update read from `bytes` with `decoder`: (prefix, first AS of the path, OTC) for
/// announcements, (prefix, 0, None) for withdrawals; and the file's error counts.
fn read(bytes: &[u8], decoder: Decoder) -> (Vec<Seen>, BTreeMap<&'static str, u64>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("otc.mrt");
    std::fs::write(&path, bytes).unwrap();
    let mut out = Vec::new();
    let report = read_file_with(&path, &Registry::everything(), decoder, |b| {
        out.extend(b.updates.iter().map(|u| match &u.change {
            RouteChange::Announce(p) => (u.prefix.to_string(), p.asns[0], p.otc),
            RouteChange::Withdraw => (u.prefix.to_string(), 0, None),
        }));
        true
    })
    .unwrap();
    (out, report.errors)
}

#[test]
fn rib_entries_carry_their_own_otc_in_both_decoders() {
    for decoder in [Decoder::Prefilter, Decoder::Bgpkit] {
        let (updates, errors) = read(&rib_file(), decoder);
        let p = "203.0.112.0/23".to_string();
        assert_eq!(
            updates,
            vec![
                (p.clone(), 65001, Some(64_999)),
                (p.clone(), 65002, None),
                (p.clone(), 65003, None),
                (p, 65004, None),
            ],
            "{decoder:?}"
        );
        assert_eq!(
            errors,
            BTreeMap::from([(MALFORMED_OTC, 2)]),
            "{decoder:?}: one per malformed entry"
        );
    }
}

#[test]
fn update_otc_applies_to_every_announcement_and_not_to_withdrawals() {
    for decoder in [Decoder::Prefilter, Decoder::Bgpkit] {
        let (updates, errors) = read(&update_file(), decoder);
        let mut want = Vec::new();
        for (asn, otc) in [
            (65001, Some(64_999)),
            (65002, None),
            (65003, None),
            (65004, None),
        ] {
            for p in ["203.0.113.0/24", "198.51.100.0/24"] {
                want.push((p.to_string(), asn, otc));
            }
        }
        want.push(("203.0.113.0/24".to_string(), 0, None));
        assert_eq!(updates, want, "{decoder:?}");
        assert_eq!(
            errors,
            BTreeMap::from([(MALFORMED_OTC, 2)]),
            "{decoder:?}: one per malformed UPDATE, not per prefix"
        );
    }
}

/// A RIB_IPV4_UNICAST record for 198.51.100.0/24 with entries of the first two peers, no OTC.
fn plain_rib_record() -> Vec<u8> {
    let mut rib = 8u32.to_be_bytes().to_vec();
    rib.extend_from_slice(&pfx("198.51.100.0/24", None));
    rib.extend_from_slice(&2u16.to_be_bytes());
    for (i, asn) in PEERS[..2].iter().enumerate() {
        let attrs = [origin_igp(), as_path4(&[*asn, 64496])].concat();
        rib.extend_from_slice(&(i as u16).to_be_bytes());
        rib.extend_from_slice(&1_700_000_000u32.to_be_bytes());
        rib.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
        rib.extend_from_slice(&attrs);
    }
    record(13, 2, &rib)
}

#[test]
fn records_with_otc_among_plain_ones_keep_the_reference_decoders_order() {
    // The reference decoder hands a record with OTC to bgpkit-parser alone, between chunks of
    // the others: the routes still come in file order, and the plain RIB record after it still
    // gets its peer table.
    let rib = rib_file();
    let table_len = 12 + u32::from_be_bytes([rib[8], rib[9], rib[10], rib[11]]) as usize;
    let file = [rib.clone(), plain_rib_record(), rib[table_len..].to_vec()].concat();
    let (prefilter, _) = read(&file, Decoder::Prefilter);
    let (bgpkit, errors) = read(&file, Decoder::Bgpkit);
    assert_eq!(prefilter.len(), 10);
    assert_eq!(prefilter[4], ("198.51.100.0/24".to_string(), 65001, None));
    assert_eq!(bgpkit, prefilter);
    assert_eq!(errors, BTreeMap::from([(MALFORMED_OTC, 4)]));
}

#[test]
fn record_otc_reads_each_record_kind() {
    let rib = rib_file();
    let table_len = 12 + u32::from_be_bytes([rib[8], rib[9], rib[10], rib[11]]) as usize;
    let body = &rib[table_len + 12..];
    match wire::record_otc(13, 2, body, PEERS.len()) {
        RecordOtc::PerEntry(each) => assert_eq!(
            each.collect::<Vec<_>>(),
            vec![
                Otc::Present(64_999),
                Otc::Absent,
                Otc::Malformed,
                Otc::Malformed
            ]
        ),
        other => panic!("{other:?}"),
    }
    // Entries of peers past the table give no route in bgpkit-parser: left out.
    match wire::record_otc(13, 2, body, 1) {
        RecordOtc::PerEntry(each) => assert_eq!(each.len(), 1),
        other => panic!("{other:?}"),
    }
    let updates = update_file();
    let body = &updates[12..];
    assert!(matches!(
        wire::record_otc(16, 4, body, 0),
        RecordOtc::All(Otc::Present(64_999))
    ));
    let plain = [origin_igp(), as_path4(&[65002, 64496])].concat();
    let mut rib_plain = 7u32.to_be_bytes().to_vec();
    rib_plain.extend_from_slice(&pfx("203.0.112.0/23", None));
    rib_plain.extend_from_slice(&1u16.to_be_bytes());
    rib_plain.extend_from_slice(&[0, 0]);
    rib_plain.extend_from_slice(&1_700_000_000u32.to_be_bytes());
    rib_plain.extend_from_slice(&(plain.len() as u16).to_be_bytes());
    rib_plain.extend_from_slice(&plain);
    assert!(matches!(
        wire::record_otc(13, 2, &rib_plain, 1),
        RecordOtc::None
    ));
    // A TABLE_DUMP (v1) entry.
    let mut td = vec![0, 0, 0, 1, 203, 0, 113, 0, 24, 1, 0, 0, 0, 0];
    td.extend_from_slice(&[192, 0, 2, 1, 0xFD, 0xE9]);
    let attrs = [origin_igp(), otc(&7u32.to_be_bytes())].concat();
    td.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    td.extend_from_slice(&attrs);
    match wire::record_otc(12, 1, &td, 0) {
        RecordOtc::PerEntry(each) => assert_eq!(each.collect::<Vec<_>>(), vec![Otc::Present(7)]),
        other => panic!("{other:?}"),
    }
}
