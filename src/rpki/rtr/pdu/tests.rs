//! Tests of `pdu`.

use super::*;

fn p(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn one(bytes: &[u8]) -> Frame {
    let (f, n) = decode(bytes).unwrap().unwrap();
    assert_eq!(n, bytes.len());
    f
}

#[test]
fn hand_built_pdus_decode_to_what_the_rfc_says() {
    // Serial Notify v1, session 0x1234, serial 7.
    let b = [1, 0, 0x12, 0x34, 0, 0, 0, 12, 0, 0, 0, 7];
    assert_eq!(
        one(&b),
        Frame::new(
            1,
            Pdu::SerialNotify {
                session_id: 0x1234,
                serial: 7
            }
        )
    );
    // Cache Response v2, session 9.
    assert_eq!(
        one(&[2, 3, 0, 9, 0, 0, 0, 8]).pdu,
        Pdu::CacheResponse { session_id: 9 }
    );
    // IPv4 Prefix: announce 192.0.2.0/24-25 AS64500.
    let b = [
        1, 4, 0, 0, 0, 0, 0, 20, 1, 24, 25, 0, 192, 0, 2, 0, 0, 0, 0xfb, 0xf4,
    ];
    assert_eq!(
        one(&b).pdu,
        Pdu::Prefix {
            announce: true,
            prefix: p("192.0.2.0/24"),
            max_length: 25,
            asn: 64500
        }
    );
    // IPv6 Prefix withdrawal 2001:db8::/32-48 AS65536.
    let mut b = vec![1, 6, 0, 0, 0, 0, 0, 32, 0, 32, 48, 0];
    b.extend_from_slice(&"2001:db8::".parse::<Ipv6Addr>().unwrap().octets());
    b.extend_from_slice(&65536u32.to_be_bytes());
    assert_eq!(
        one(&b).pdu,
        Pdu::Prefix {
            announce: false,
            prefix: p("2001:db8::/32"),
            max_length: 48,
            asn: 65536
        }
    );
    // End of Data v0 (no timers) and v1 (timers).
    assert_eq!(
        one(&[0, 7, 0, 5, 0, 0, 0, 12, 0, 0, 1, 0]).pdu,
        Pdu::EndOfData {
            session_id: 5,
            serial: 256,
            timers: None
        }
    );
    let b = [
        1, 7, 0, 5, 0, 0, 0, 24, 0, 0, 0, 3, 0, 0, 0, 10, 0, 0, 0, 5, 0, 0, 2, 0x58,
    ];
    assert_eq!(
        one(&b).pdu,
        Pdu::EndOfData {
            session_id: 5,
            serial: 3,
            timers: Some(Timers {
                refresh: 10,
                retry: 5,
                expire: 600
            })
        }
    );
    // Error Report code 4 with an 8-byte copy and "bad\0".
    let b = [
        0, 10, 0, 4, 0, 0, 0, 32, 0, 0, 0, 8, 2, 2, 0, 0, 0, 0, 0, 8, 0, 0, 0, 4, b'b', b'a', b'd',
        0,
    ];
    let mut b = b.to_vec();
    b[7] = b.len() as u8;
    assert_eq!(
        one(&b).pdu,
        Pdu::ErrorReport {
            code: ErrorCode::UnsupportedProtocolVersion,
            pdu: vec![2, 2, 0, 0, 0, 0, 0, 8],
            text: "bad".into()
        }
    );
}

#[test]
fn stayrtr_0_5_1_aspa_pdu_and_the_later_layout_both_decode() {
    // As StayRTR 0.5.1 writes it: flags 1, AFI 1 (IPv6), 2 providers, customer 64500.
    let b = [
        2, 11, 0, 0, 0, 0, 0, 24, 1, 1, 0, 2, 0, 0, 0xfb, 0xf4, 0, 0, 0xfb, 0xf5, 0, 0, 0xfb, 0xf6,
    ];
    assert_eq!(
        one(&b).pdu,
        Pdu::Aspa {
            announce: true,
            layout: AspaLayout::Afi(1),
            customer: 64500,
            providers: vec![64501, 64502]
        }
    );
    // Its withdrawal of an IPv4 record with no providers: 16 bytes.
    let b = [2, 11, 0, 0, 0, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0xfb, 0xf4];
    assert_eq!(
        one(&b).pdu,
        Pdu::Aspa {
            announce: false,
            layout: AspaLayout::Afi(0),
            customer: 64500,
            providers: vec![]
        }
    );
    // The later layout: flags in the header.
    let b = [2, 11, 1, 0, 0, 0, 0, 16, 0, 0, 0xfb, 0xf4, 0, 0, 0xfb, 0xf5];
    assert_eq!(
        one(&b).pdu,
        Pdu::Aspa {
            announce: true,
            layout: AspaLayout::Plain,
            customer: 64500,
            providers: vec![64501]
        }
    );
    let b = [2, 11, 0, 0, 0, 0, 0, 12, 0, 0, 0xfb, 0xf4];
    assert_eq!(
        one(&b).pdu,
        Pdu::Aspa {
            announce: false,
            layout: AspaLayout::Plain,
            customer: 64500,
            providers: vec![]
        }
    );
    // The later layout's withdrawal with providers (flags 2: not an announcement).
    let b = [2, 11, 2, 0, 0, 0, 0, 16, 0, 0, 0xfb, 0xf4, 0, 0, 0xfb, 0xf5];
    assert!(matches!(decode(&b), Err(PduError::Malformed { .. })));
    // A count that does not match the length.
    let b = [
        2, 11, 0, 0, 0, 0, 0, 20, 1, 0, 0, 2, 0, 0, 0xfb, 0xf4, 0, 0, 0, 1,
    ];
    assert!(matches!(decode(&b), Err(PduError::Malformed { .. })));
    // ASPA in version 1 does not exist.
    let b = [1, 11, 0, 0, 0, 0, 0, 16, 1, 0, 0, 0, 0, 0, 0xfb, 0xf4];
    assert_eq!(
        decode(&b).unwrap_err(),
        PduError::UnsupportedType {
            pdu_type: 11,
            version: 1
        }
    );
    assert_eq!(
        decode(&b).unwrap_err().code(),
        ErrorCode::UnsupportedPduType
    );
}

#[test]
fn partial_input_waits_and_bad_lengths_are_errors_before_buffering() {
    let b = Frame::new(1, Pdu::ResetQuery).encode();
    for cut in 0..b.len() {
        assert_eq!(decode(&b[..cut]), Ok(None), "cut at {cut}");
    }
    // A length above the limit is seen from the header alone.
    assert_eq!(
        decode(&[1, 4, 0, 0, 0, 1, 0, 1]),
        Err(PduError::TooLong(65537))
    );
    assert_eq!(
        decode(&[1, 4, 0, 0, 0, 0, 0, 7]),
        Err(PduError::TooShort(7))
    );
    assert_eq!(
        decode(&[3, 2, 0, 0, 0, 0, 0, 8]),
        Err(PduError::UnsupportedVersion(3))
    );
    assert_eq!(
        decode(&[3, 2, 0, 0, 0, 0, 0, 8]).unwrap_err().code(),
        ErrorCode::UnsupportedProtocolVersion
    );
    // Type 5 is reserved; a Router Key in version 0 does not exist.
    assert!(matches!(
        decode(&[1, 5, 0, 0, 0, 0, 0, 8]),
        Err(PduError::UnsupportedType { pdu_type: 5, .. })
    ));
    let mut rk = vec![0, 9, 1, 0, 0, 0, 0, 40];
    rk.extend_from_slice(&[0; 32]);
    assert!(matches!(
        decode(&rk),
        Err(PduError::UnsupportedType { pdu_type: 9, .. })
    ));
    rk[0] = 1;
    assert!(matches!(
        one(&rk).pdu,
        Pdu::RouterKey { announce: true, .. }
    ));
    // End of Data with v1 timers in version 0, a Cache Response with a body.
    let b = [
        0, 7, 0, 5, 0, 0, 0, 24, 0, 0, 0, 3, 0, 0, 0, 10, 0, 0, 0, 5, 0, 0, 2, 0x58,
    ];
    assert!(matches!(decode(&b), Err(PduError::Malformed { .. })));
    assert!(matches!(
        decode(&[1, 3, 0, 0, 0, 0, 0, 9, 0]),
        Err(PduError::Malformed { .. })
    ));
    // Prefix: length 33, max length below length, host bits.
    for (plen, max, addr) in [(33u8, 33u8, 0u8), (24, 23, 0), (24, 24, 1)] {
        let b = [
            1, 4, 0, 0, 0, 0, 0, 20, 1, plen, max, 0, 192, 0, 2, addr, 0, 0, 0, 1,
        ];
        assert!(
            matches!(decode(&b), Err(PduError::Malformed { pdu_type: 4, .. })),
            "{plen} {max} {addr}"
        );
    }
    // Error Report whose inner lengths overflow the PDU.
    let b = [1, 10, 0, 0, 0, 0, 0, 16, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0];
    assert!(matches!(decode(&b), Err(PduError::Malformed { .. })));
    let b = [1, 10, 0, 0, 0, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0, 9];
    assert!(matches!(decode(&b), Err(PduError::Malformed { .. })));
}

#[test]
fn every_pdu_round_trips_in_every_version_it_exists_in() {
    let pdus = vec![
        Pdu::SerialNotify {
            session_id: 1,
            serial: u32::MAX,
        },
        Pdu::SerialQuery {
            session_id: 65535,
            serial: 0,
        },
        Pdu::ResetQuery,
        Pdu::CacheResponse { session_id: 77 },
        Pdu::Prefix {
            announce: true,
            prefix: p("10.0.0.0/8"),
            max_length: 24,
            asn: 4_200_000_000,
        },
        Pdu::Prefix {
            announce: false,
            prefix: p("2001:db8:1::/48"),
            max_length: 48,
            asn: 0,
        },
        Pdu::CacheReset,
        Pdu::ErrorReport {
            code: ErrorCode::DuplicateAnnouncement,
            pdu: vec![1, 2, 3],
            text: "dup".into(),
        },
    ];
    for version in 0..=MAX_VERSION {
        let mut all = pdus.clone();
        all.push(Pdu::EndOfData {
            session_id: 3,
            serial: 9,
            timers: (version > 0).then_some(Timers {
                refresh: 1,
                retry: 2,
                expire: 3,
            }),
        });
        if version >= 1 {
            all.push(Pdu::RouterKey {
                announce: true,
                asn: 64500,
                ski: [7; 20],
                spki: vec![1; 91],
            });
        }
        if version >= 2 {
            for layout in [AspaLayout::Afi(0), AspaLayout::Afi(1), AspaLayout::Plain] {
                all.push(Pdu::Aspa {
                    announce: true,
                    layout,
                    customer: 64500,
                    providers: vec![64501, 64502, 64503],
                });
            }
            all.push(Pdu::Aspa {
                announce: false,
                layout: AspaLayout::Plain,
                customer: 64500,
                providers: vec![],
            });
        }
        // All in one stream, decoded one after another.
        let mut stream = Vec::new();
        for pdu in &all {
            stream.extend(Frame::new(version, pdu.clone()).encode());
        }
        let mut at = 0;
        for pdu in &all {
            let (f, n) = decode(&stream[at..]).unwrap().unwrap();
            assert_eq!(f, Frame::new(version, pdu.clone()));
            at += n;
        }
        assert_eq!(at, stream.len());
    }
}

#[test]
fn arbitrary_bytes_never_panic() {
    // A cheap deterministic fuzz: every PDU type and version with every body length up to
    // 40, filled with a pseudo-random pattern.
    let mut x: u32 = 0x1234_5678;
    for version in 0..4u8 {
        for t in 0..13u8 {
            for body in 0..40usize {
                let mut b = vec![version, t, 0, 0];
                b.extend_from_slice(&((HEADER_LEN + body) as u32).to_be_bytes());
                for _ in 0..body {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    b.push(x as u8);
                }
                let _ = decode(&b);
                b[2] = x as u8;
                let _ = decode(&b);
            }
        }
    }
}
