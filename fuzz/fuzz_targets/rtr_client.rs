//! The RTR client: a cache's byte stream (the first byte picks the read size) decoded with
//! `routewatch::rpki::rtr::pdu::decode` and handed to a `Client` as the daemon's task does; a
//! close is followed by a new connection on the same client.
//!
//! Invariants: no panic; a decoded PDU other than an Error Report encodes and decodes back to
//! itself; a protocol close is preceded by an Error Report the client sends; the data delivered
//! stays within the table limits; after a protocol error the next connection sends a Reset
//! Query.

#![no_main]

use libfuzzer_sys::fuzz_target;
use routewatch::rpki::rtr::pdu::{decode, Frame, Pdu};
use routewatch::rpki::rtr::{Action, Client, Close, Limits, DEFAULT_TIMERS};

const LIMITS: Limits = Limits {
    max_vrps: 64,
    max_aspas: 16,
    max_pdus_per_response: 256,
};

/// What the daemon's task does with the client's actions; `true` when the connection closed
/// (and a new one was started).
fn act(client: &mut Client, actions: &mut Vec<Action>) -> bool {
    let mut sent_error = false;
    for action in std::mem::take(actions) {
        match action {
            Action::Send(bytes) => {
                let (f, _) = decode(&bytes).unwrap().unwrap();
                sent_error |= matches!(f.pdu, Pdu::ErrorReport { .. });
            }
            Action::Data(u) => {
                assert!(u.data.vrps.len() <= LIMITS.max_vrps);
                assert!(u.aspa_records <= LIMITS.max_aspas);
            }
            Action::Close(close) => {
                let protocol = matches!(close, Close::Protocol { .. });
                assert!(!protocol || sent_error, "{close:?} without an Error Report");
                client.disconnected();
                let first = client.connected();
                let (f, _) = decode(&first).unwrap().unwrap();
                if protocol {
                    assert_eq!(f, Frame::new(2, Pdu::ResetQuery));
                }
                // What follows a close is not carried out.
                return true;
            }
        }
    }
    false
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, stream)) = data.split_first() else {
        return;
    };
    let read = usize::from(split % 64) + 1;
    let mut client = Client::new(DEFAULT_TIMERS, LIMITS);
    let _ = client.connected();
    let mut buf: Vec<u8> = Vec::new();
    let mut actions = Vec::new();
    let mut reconnects = 0;
    for chunk in stream.chunks(read) {
        buf.extend_from_slice(chunk);
        let mut at = 0;
        let mut closed = false;
        while !closed {
            match decode(&buf[at..]) {
                Ok(Some((frame, used))) => {
                    if !matches!(frame.pdu, Pdu::ErrorReport { .. }) {
                        let again = decode(&frame.encode()).unwrap().unwrap().0;
                        assert_eq!(again, frame);
                    }
                    client.on_frame(frame, &buf[at..at + used], &mut actions);
                    at += used;
                }
                Ok(None) => break,
                Err(e) => {
                    let end = buf.len().min(at + 64);
                    client.on_decode_error(&e, &buf[at..end], &mut actions);
                    at = buf.len();
                }
            }
            // As the daemon's task: the actions after each PDU; a close drops the rest.
            closed = act(&mut client, &mut actions);
        }
        if closed {
            buf.clear();
            reconnects += 1;
            if reconnects > 16 {
                return;
            }
        } else {
            buf.drain(..at);
        }
    }
});
