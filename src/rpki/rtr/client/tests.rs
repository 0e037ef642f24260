//! Tests of `client`.

use super::super::pdu::decode;
use super::*;

const T: Timers = Timers {
    refresh: 10,
    retry: 5,
    expire: 60,
};

fn vrp(p: &str, max: u8, asn: u32) -> Pdu {
    Pdu::Prefix {
        announce: true,
        prefix: p.parse().unwrap(),
        max_length: max,
        asn,
    }
}

fn withdraw(p: &str, max: u8, asn: u32) -> Pdu {
    Pdu::Prefix {
        announce: false,
        prefix: p.parse().unwrap(),
        max_length: max,
        asn,
    }
}

fn aspa(announce: bool, afi: u8, customer: u32, providers: &[u32]) -> Pdu {
    Pdu::Aspa {
        announce,
        layout: AspaLayout::Afi(afi),
        customer,
        providers: providers.to_vec(),
    }
}

fn eod(session_id: u16, serial: u32, version: u8) -> Pdu {
    Pdu::EndOfData {
        session_id,
        serial,
        timers: (version > 0).then_some(T),
    }
}

/// Feeds PDUs (encoded and decoded again, as from a socket) at `version`.
fn feed(c: &mut Client, version: u8, pdus: Vec<Pdu>) -> Vec<Action> {
    let mut out = Vec::new();
    for pdu in pdus {
        let bytes = Frame::new(version, pdu).encode();
        let (frame, _) = decode(&bytes).unwrap().unwrap();
        c.on_frame(frame, &bytes, &mut out);
    }
    out
}

fn sent(a: &Action) -> Frame {
    match a {
        Action::Send(b) => decode(b).unwrap().unwrap().0,
        other => panic!("not a send: {other:?}"),
    }
}

fn update(a: &Action) -> &Update {
    match a {
        Action::Data(u) => u,
        other => panic!("not data: {other:?}"),
    }
}

fn client() -> Client {
    Client::new(DEFAULT_TIMERS, Limits::default())
}

#[test]
fn reset_then_serial_delivers_the_table_and_what_changed() {
    let mut c = client();
    let q = c.connected();
    assert_eq!(
        decode(&q).unwrap().unwrap().0,
        Frame::new(2, Pdu::ResetQuery)
    );
    let out = feed(
        &mut c,
        2,
        vec![
            Pdu::CacheResponse { session_id: 7 },
            vrp("192.0.2.0/24", 24, 64500),
            vrp("2001:db8::/32", 48, 64501),
            aspa(true, 0, 64500, &[64510, 64511]),
            aspa(true, 1, 64500, &[64512]),
            eod(7, 1, 2),
        ],
    );
    assert_eq!(out.len(), 1);
    let u = update(&out[0]);
    assert_eq!(u.kind, UpdateKind::Reset);
    assert_eq!((u.session_id, u.serial, u.version), (7, 1, 2));
    assert_eq!(u.timers, T);
    assert_eq!(u.data.vrps.len(), 2);
    // Per-AFI records merged by customer.
    assert_eq!(u.data.aspas.len(), 1);
    assert_eq!(u.aspa_records, 2);
    assert_eq!(
        u.data.aspas.providers(64500),
        Some(&[64510, 64511, 64512][..])
    );
    assert!(u.changed.is_none());
    assert!(c.is_idle());

    // The refresh sends a Serial Query with the session and serial.
    let q = c.refresh().unwrap();
    assert_eq!(
        decode(&q).unwrap().unwrap().0,
        Frame::new(
            2,
            Pdu::SerialQuery {
                session_id: 7,
                serial: 1
            }
        )
    );
    assert!(c.refresh().is_none(), "one query at a time");
    // A change of providers as StayRTR sends it: the new record, then the old withdrawn.
    let out = feed(
        &mut c,
        2,
        vec![
            Pdu::CacheResponse { session_id: 7 },
            withdraw("192.0.2.0/24", 24, 64500),
            vrp("198.51.100.0/24", 24, 64502),
            aspa(true, 0, 64500, &[64510]),
            aspa(false, 0, 64500, &[64510, 64511]),
            eod(7, 2, 2),
        ],
    );
    let u = update(&out[0]);
    assert_eq!(u.kind, UpdateKind::Serial);
    assert_eq!(u.serial, 2);
    let vrps: Vec<String> = u.data.vrps.iter().map(|v| v.to_string()).collect();
    assert_eq!(vrps.len(), 2);
    assert!(vrps.contains(&"198.51.100.0/24-24 AS64502".to_string()));
    assert!(vrps.contains(&"2001:db8::/32-48 AS64501".to_string()));
    assert_eq!(u.data.aspas.providers(64500), Some(&[64510, 64512][..]));
    let d = u.changed.clone().unwrap();
    assert_eq!(
        d.vrp_prefixes,
        vec![
            "192.0.2.0/24".parse::<IpNet>().unwrap(),
            "198.51.100.0/24".parse().unwrap()
        ]
    );
    assert_eq!(d.aspa_customers, vec![64500]);

    // Withdrawing the IPv6 record removes it; the IPv4 one remains.
    let _ = c.refresh().unwrap();
    let out = feed(
        &mut c,
        2,
        vec![
            Pdu::CacheResponse { session_id: 7 },
            aspa(false, 1, 64500, &[64512]),
            eod(7, 3, 2),
        ],
    );
    assert_eq!(
        update(&out[0]).data.aspas.providers(64500),
        Some(&[64510][..])
    );
    // An empty serial response: nothing changed.
    let _ = c.refresh().unwrap();
    let out = feed(
        &mut c,
        2,
        vec![Pdu::CacheResponse { session_id: 7 }, eod(7, 3, 2)],
    );
    assert!(update(&out[0]).changed.as_ref().unwrap().is_empty());
}

#[test]
fn a_lower_version_answer_is_adopted_and_version_0_uses_the_default_timers() {
    let mut c = Client::new(
        Timers {
            refresh: 100,
            retry: 50,
            expire: 1000,
        },
        Limits::default(),
    );
    let _ = c.connected();
    let out = feed(
        &mut c,
        0,
        vec![
            Pdu::CacheResponse { session_id: 1 },
            vrp("192.0.2.0/24", 24, 64500),
            eod(1, 5, 0),
        ],
    );
    let u = update(&out[0]);
    assert_eq!(u.version, 0);
    assert_eq!(
        u.timers,
        Timers {
            refresh: 100,
            retry: 50,
            expire: 1000
        }
    );
    assert_eq!(c.version(), 0);
    // Queries are now version 0, also on the next connection (continuing the session).
    assert_eq!(sent(&Action::Send(c.refresh().unwrap())).version, 0);
    c.disconnected();
    assert_eq!(
        sent(&Action::Send(c.connected())),
        Frame::new(
            0,
            Pdu::SerialQuery {
                session_id: 1,
                serial: 5
            }
        )
    );
    // A later PDU of another version is an error.
    let out = feed(&mut c, 1, vec![Pdu::CacheResponse { session_id: 1 }]);
    let report = sent(&out[0]);
    assert!(matches!(
        report.pdu,
        Pdu::ErrorReport {
            code: ErrorCode::UnsupportedProtocolVersion,
            ..
        }
    ));
    assert_eq!(report.version, 0);
    assert!(matches!(out[1], Action::Close(Close::Protocol { .. })));
    // Starting over without a session: negotiated again from version 2.
    c.disconnected();
    assert_eq!(
        sent(&Action::Send(c.connected())),
        Frame::new(2, Pdu::ResetQuery)
    );
}

#[test]
fn unsupported_version_error_reports_step_down_until_none_is_left() {
    let mut c = client();
    let _ = c.connected();
    // A version 1 cache answers our version 2 query with a version 1 Error Report.
    let out = feed(
        &mut c,
        1,
        vec![Pdu::ErrorReport {
            code: ErrorCode::UnsupportedProtocolVersion,
            pdu: vec![],
            text: String::new(),
        }],
    );
    assert!(matches!(
        out[..],
        [Action::Close(Close::Downgrade { to: 1 })]
    ));
    c.disconnected();
    assert_eq!(sent(&Action::Send(c.connected())).version, 1);
    // One that reports at our own version: one step down.
    let out = feed(
        &mut c,
        1,
        vec![Pdu::ErrorReport {
            code: ErrorCode::UnsupportedProtocolVersion,
            pdu: vec![],
            text: String::new(),
        }],
    );
    assert!(matches!(
        out[..],
        [Action::Close(Close::Downgrade { to: 0 })]
    ));
    c.disconnected();
    let _ = c.connected();
    let out = feed(
        &mut c,
        0,
        vec![Pdu::ErrorReport {
            code: ErrorCode::UnsupportedProtocolVersion,
            pdu: vec![],
            text: String::new(),
        }],
    );
    assert!(matches!(out[..], [Action::Close(Close::NoVersion)]));
    // No Data Available: close, and the caller retries later.
    let mut c = client();
    let _ = c.connected();
    let out = feed(
        &mut c,
        2,
        vec![Pdu::ErrorReport {
            code: ErrorCode::NoDataAvailable,
            pdu: vec![],
            text: "no data".into(),
        }],
    );
    assert!(matches!(out[..], [Action::Close(Close::NoData)]));
    // Corrupt Data in answer to a Serial Query (a restarted cache that does not know the
    // session): the next connection starts with a Reset Query.
    let mut c = synced();
    let _ = c.refresh();
    let out = feed(
        &mut c,
        2,
        vec![Pdu::ErrorReport {
            code: ErrorCode::CorruptData,
            pdu: vec![],
            text: "Session ID mismatch".into(),
        }],
    );
    assert!(matches!(
        out[..],
        [Action::Close(Close::ServerError {
            code: ErrorCode::CorruptData,
            ..
        })]
    ));
    c.disconnected();
    assert_eq!(sent(&Action::Send(c.connected())).pdu, Pdu::ResetQuery);
}

/// A client holding session 7 serial 1 with one VRP and an ASPA, idle.
fn synced() -> Client {
    let mut c = client();
    let _ = c.connected();
    let out = feed(
        &mut c,
        2,
        vec![
            Pdu::CacheResponse { session_id: 7 },
            vrp("192.0.2.0/24", 24, 64500),
            aspa(true, 0, 64500, &[64510]),
            eod(7, 1, 2),
        ],
    );
    assert!(matches!(out[..], [Action::Data(_)]));
    c
}

fn assert_error(out: &[Action], code: ErrorCode) {
    assert_eq!(out.len(), 2, "{out:?}");
    match sent(&out[0]).pdu {
        Pdu::ErrorReport { code: c, pdu, .. } => {
            assert_eq!(c, code);
            assert!(!pdu.is_empty(), "the offending PDU is copied");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(&out[1], Action::Close(Close::Protocol { code: c, .. }) if *c == code));
}

#[test]
fn protocol_errors_are_reported_and_the_next_connection_resets() {
    let cases: Vec<(Vec<Pdu>, ErrorCode)> = vec![
        (
            vec![
                Pdu::CacheResponse { session_id: 7 },
                withdraw("198.51.100.0/24", 24, 64500),
            ],
            ErrorCode::WithdrawalOfUnknownRecord,
        ),
        (
            vec![
                Pdu::CacheResponse { session_id: 7 },
                vrp("192.0.2.0/24", 24, 64500),
            ],
            ErrorCode::DuplicateAnnouncement,
        ),
        (
            vec![
                Pdu::CacheResponse { session_id: 7 },
                aspa(false, 1, 64500, &[64510]),
            ],
            ErrorCode::WithdrawalOfUnknownRecord,
        ),
        (
            vec![Pdu::CacheResponse { session_id: 8 }],
            ErrorCode::CorruptData,
        ),
        (
            vec![Pdu::CacheResponse { session_id: 7 }, eod(8, 2, 2)],
            ErrorCode::CorruptData,
        ),
        (
            vec![
                Pdu::CacheResponse { session_id: 7 },
                Pdu::CacheResponse { session_id: 7 },
            ],
            ErrorCode::CorruptData,
        ),
        (vec![Pdu::ResetQuery], ErrorCode::InvalidRequest),
    ];
    for (pdus, code) in cases {
        let mut c = synced();
        let _ = c.refresh().unwrap();
        let out = feed(&mut c, 2, pdus.clone());
        assert_error(&out, code);
        c.disconnected();
        // The next connection starts over with a Reset Query.
        assert_eq!(
            sent(&Action::Send(c.connected())).pdu,
            Pdu::ResetQuery,
            "{pdus:?}"
        );
    }
    // Data outside a response.
    let mut c = synced();
    let out = feed(&mut c, 2, vec![vrp("203.0.113.0/24", 24, 1)]);
    assert_error(&out, ErrorCode::CorruptData);
    // A PDU that does not decode.
    let mut c = synced();
    let mut out = Vec::new();
    let bad = [2u8, 5, 0, 0, 0, 0, 0, 8];
    c.on_decode_error(&decode(&bad).unwrap_err(), &bad, &mut out);
    assert_error(&out, ErrorCode::UnsupportedPduType);
}

#[test]
fn cache_reset_is_answered_with_a_reset_query_and_the_delta_is_computed() {
    let mut c = synced();
    let _ = c.refresh().unwrap();
    let out = feed(&mut c, 2, vec![Pdu::CacheReset]);
    assert_eq!(sent(&out[0]).pdu, Pdu::ResetQuery);
    let out = feed(
        &mut c,
        2,
        vec![
            Pdu::CacheResponse { session_id: 9 },
            vrp("192.0.2.0/24", 24, 64500),
            vrp("203.0.113.0/24", 24, 64503),
            eod(9, 1, 2),
        ],
    );
    let u = update(&out[0]);
    assert_eq!(u.kind, UpdateKind::Reset);
    assert_eq!(u.session_id, 9);
    let d = u.changed.clone().unwrap();
    assert_eq!(
        d.vrp_prefixes,
        vec!["203.0.113.0/24".parse::<IpNet>().unwrap()]
    );
    assert_eq!(d.aspa_customers, vec![64500]);
    assert!(u.data.aspas.is_empty());
    // A Cache Reset when no Serial Query is outstanding is an error.
    let out = feed(&mut c, 2, vec![Pdu::CacheReset]);
    assert_error(&out, ErrorCode::CorruptData);
}

#[test]
fn serial_notify_queries_only_when_idle_and_a_lost_response_forgets_the_session() {
    let mut c = synced();
    let out = feed(
        &mut c,
        2,
        vec![Pdu::SerialNotify {
            session_id: 7,
            serial: 2,
        }],
    );
    assert!(matches!(
        sent(&out[0]).pdu,
        Pdu::SerialQuery { serial: 1, .. }
    ));
    let out = feed(
        &mut c,
        2,
        vec![Pdu::SerialNotify {
            session_id: 7,
            serial: 2,
        }],
    );
    assert!(out.is_empty(), "a query is outstanding");
    // The connection drops within the response: the table may be half-changed.
    let out = feed(
        &mut c,
        2,
        vec![
            Pdu::CacheResponse { session_id: 7 },
            vrp("203.0.113.0/24", 24, 1),
        ],
    );
    assert!(out.is_empty());
    c.disconnected();
    assert_eq!(sent(&Action::Send(c.connected())).pdu, Pdu::ResetQuery);
    // Dropped before the Cache Response: the session stays.
    let mut c = synced();
    let _ = c.refresh();
    c.disconnected();
    assert!(matches!(
        sent(&Action::Send(c.connected())).pdu,
        Pdu::SerialQuery { .. }
    ));
}

#[test]
fn table_limits_drop_and_count_and_the_response_bound_is_an_error() {
    let mut c = Client::new(
        DEFAULT_TIMERS,
        Limits {
            max_vrps: 2,
            max_aspas: 1,
            max_pdus_per_response: 6,
        },
    );
    let _ = c.connected();
    let out = feed(
        &mut c,
        2,
        vec![
            Pdu::CacheResponse { session_id: 1 },
            vrp("192.0.2.0/24", 24, 1),
            vrp("192.0.2.0/24", 24, 2),
            vrp("192.0.2.0/24", 24, 3),
            aspa(true, 0, 1, &[2]),
            aspa(true, 0, 2, &[3]),
            eod(1, 1, 2),
        ],
    );
    let u = update(&out[0]);
    assert_eq!((u.data.vrps.len(), u.data.aspas.len()), (2, 1));
    assert_eq!((u.dropped_vrps, u.dropped_aspas), (1, 1));
    // Withdrawing a dropped record is tolerated once over the limit.
    let _ = c.refresh();
    let out = feed(
        &mut c,
        2,
        vec![
            Pdu::CacheResponse { session_id: 1 },
            withdraw("192.0.2.0/24", 24, 3),
            eod(1, 2, 2),
        ],
    );
    assert!(matches!(out[..], [Action::Data(_)]));
    // Seven data PDUs in one response.
    let _ = c.refresh();
    let mut pdus = vec![Pdu::CacheResponse { session_id: 1 }];
    for i in 0..7 {
        pdus.push(Pdu::RouterKey {
            announce: true,
            asn: i,
            ski: [0; 20],
            spki: vec![],
        });
    }
    let out = feed(&mut c, 2, pdus);
    assert_error(&out, ErrorCode::InternalError);
}

#[test]
fn timers_are_bounded() {
    assert_eq!(
        bounded(Timers {
            refresh: 0,
            retry: 100_000,
            expire: u32::MAX
        }),
        Timers {
            refresh: 1,
            retry: 7200,
            expire: 172_800
        }
    );
}
