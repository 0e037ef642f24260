//! One RFC 7606 behaviour for repeated or malformed MP_REACH_NLRI / MP_UNREACH_NLRI in both
//! feeds (see the [`crate::ingest::bgp`] documentation): each UPDATE below is built once and
//! read twice, as a BGP4MP record through the MRT reader's default (prefilter) decoder and as a
//! BMP Route Monitoring message through a [`RouterSession`]. A malformed one gives no route, no
//! processed entry and one `malformed_mp_attribute` error in both; the well-formed control
//! gives the same routes in both.

use std::collections::BTreeMap;
use std::io::Write as _;

use super::*;
use crate::ingest::bmp::tests::{everything, peer, NOW, ROUTER};
use crate::ingest::bmp::{Output, RouterSession};
use crate::ingest::mrt;
use crate::ingest::mrt::wire::tests::bgp4mp_as4_message;
use crate::model::RouteChange;

/// What a feed made of one UPDATE.
#[derive(Debug, PartialEq)]
struct Outcome {
    /// (prefix, announced) of the routes used, in order.
    routes: Vec<(String, bool)>,
    /// Route entries counted as processed.
    processed: u64,
    /// Parse errors by label.
    errors: BTreeMap<&'static str, u64>,
}

fn outcome(batch: &crate::ingest::Batch, errors: BTreeMap<&'static str, u64>) -> Outcome {
    Outcome {
        routes: batch
            .updates
            .iter()
            .map(|u| {
                let announced = matches!(u.change, RouteChange::Announce(_));
                (u.prefix.to_string(), announced)
            })
            .collect(),
        processed: batch.processed,
        errors,
    }
}

/// `pdu` as a BGP4MP_MESSAGE_AS4 record of an MRT file read with the default decoder.
fn through_mrt(pdu: &[u8]) -> Outcome {
    let body = bgp4mp_as4_message(pdu);
    let mut record = 1_700_000_000u32.to_be_bytes().to_vec();
    record.extend_from_slice(&mrt::wire::types::BGP4MP.to_be_bytes());
    record.extend_from_slice(&4u16.to_be_bytes()); // BGP4MP_MESSAGE_AS4
    record.extend_from_slice(&(body.len() as u32).to_be_bytes());
    record.extend_from_slice(&body);
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(&record).unwrap();
    let mut all = crate::ingest::Batch::default();
    let report = mrt::read_file(file.path(), &everything(), |b| {
        all.updates.extend(b.updates);
        all.processed += b.processed;
        true
    })
    .unwrap();
    outcome(&all, report.errors)
}

/// `pdu` as a BMP Route Monitoring message of a peer without ADD-PATH, 4-byte AS numbers.
fn through_bmp(pdu: &[u8]) -> Outcome {
    let frame = peer("198.51.100.1", 65001).route_monitoring(pdu);
    let mut session = RouterSession::new(ROUTER.parse().unwrap(), None);
    let mut out = Output::default();
    session.handle_frame(&frame, &everything(), NOW, &mut out);
    outcome(&out.batch, out.batch.errors.clone())
}

#[test]
fn repeated_or_malformed_mp_attributes_make_the_whole_update_unusable_in_both_feeds() {
    let nh: Ipv6Addr = "2001:db8::1".parse().unwrap();
    let reach = mp_reach_v6(nh, &pfx("2001:db8::/32", None));
    let unreach = mp_unreach(2, 1, &pfx("2001:db8:1::/48", None));
    // An MP_REACH_NLRI value with the given bytes after AFI 2 / SAFI 1.
    let reach_v6 = |rest: &[u8]| attr(0x80, 14, &[&[0, 2, 1][..], rest].concat());
    let with = |mp: &[Vec<u8>]| {
        let mut attrs = vec![origin_igp(), as_path4(&[65001, 64496])];
        attrs.extend_from_slice(mp);
        update(
            &pfx("10.1.0.0/16", None),
            &attrs,
            &pfx("203.0.113.0/24", None),
        )
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        // RFC 7606 §3 (g).
        ("MP_REACH_NLRI twice", with(&[reach.clone(), reach.clone()])),
        (
            "MP_UNREACH_NLRI twice",
            with(&[unreach.clone(), reach.clone(), unreach.clone()]),
        ),
        // §7.11: the next hop runs past the attribute, or the reserved byte is missing.
        (
            "MP_REACH_NLRI next hop past its end",
            with(&[reach_v6(&[40, 0x20, 0x01, 0x0d, 0xb8])]),
        ),
        (
            "MP_REACH_NLRI without its reserved byte",
            with(&[reach_v6(&[&[16][..], &nh.octets()].concat())]),
        ),
        // §5.3: NLRI that do not parse.
        (
            "MP_REACH_NLRI prefix longer than 128",
            with(&[mp_reach_v6(nh, &[129, 0x20, 0x01])]),
        ),
        (
            "MP_UNREACH_NLRI prefix cut short",
            with(&[reach.clone(), mp_unreach(2, 1, &[48, 0x20, 0x01])]),
        ),
        (
            "MP_UNREACH_NLRI without AFI/SAFI",
            with(&[attr(0x80, 15, &[0, 2])]),
        ),
    ];
    for (name, pdu) in &cases {
        let want = Outcome {
            routes: vec![],
            processed: 0,
            errors: BTreeMap::from([("malformed_mp_attribute", 1)]),
        };
        assert_eq!(through_mrt(pdu), want, "MRT: {name}");
        assert_eq!(through_bmp(pdu), want, "BMP: {name}");
    }

    // The control: the same UPDATE with one of each MP attribute is used whole, alike (in the
    // walker's order for BMP; bgpkit-parser, which decodes a matched MRT record, lists the
    // announcements first).
    let good = with(&[unreach, reach]);
    let sorted = |mut o: Outcome| {
        o.routes.sort();
        o
    };
    let want = Outcome {
        routes: [
            ("10.1.0.0/16", false),
            ("2001:db8:1::/48", false),
            ("2001:db8::/32", true),
            ("203.0.113.0/24", true),
        ]
        .map(|(p, a)| (p.to_string(), a))
        .to_vec(),
        processed: 4,
        errors: BTreeMap::new(),
    };
    assert_eq!(through_bmp(&good), want, "BMP: well formed");
    assert_eq!(sorted(through_mrt(&good)), sorted(want), "MRT: well formed");
}
