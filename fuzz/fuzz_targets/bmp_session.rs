//! BMP framing and session: the input is a router's byte stream, fed through
//! `FrameReader::feed` in chunks (sizes derived from the input, so a message is split across
//! reads at varying places) into `RouterSession::handle_frame`, each read's output applied to an
//! `Engine` as the listener and the pipeline do. The connection then closes.
//!
//! Invariants: no panic; the session's message counts, processed/matched routes and End-of-RIB
//! markers never decrease; after the close no peer is up and the engine holds no route (a
//! router's routes all leave with its connection).

#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use routewatch::engine::Engine;
use routewatch::ingest::bmp::{FrameReader, Output, RouterSession, SessionState};
use routewatch::registry::{Location, Registry};

const NOW: f64 = 1_800_000_000.0;
/// Smaller than the daemon's default (256 KiB) so the "oversized" path is reachable.
const MAX_FRAME: u32 = 16 * 1024;

/// Everything (so every route is decoded and reaches the engine, hijacks included: the expected
/// origin is AS64496) plus a more specific location of its own.
fn registry() -> Arc<Registry> {
    static REGISTRY: OnceLock<Arc<Registry>> = OnceLock::new();
    REGISTRY
        .get_or_init(|| {
            let loc = |name: &str, prefixes: &[&str], origin: u32| Location {
                name: name.into(),
                provider: None,
                provider_asns: vec![],
                region: None,
                origin_asns: vec![origin],
                prefixes: prefixes.iter().map(|p| p.parse().unwrap()).collect(),
                max_length: Some(32),
                max_length_v6: Some(128),
                min_peers: 1,
                min_visibility: 0,
            };
            Arc::new(
                Registry::new(vec![
                    loc("all", &["0.0.0.0/0", "::/0"], 64496),
                    loc("lab", &["10.0.0.0/8", "2001:db8::/32"], 65000),
                ])
                .unwrap(),
            )
        })
        .clone()
}

/// Read sizes: a small xorshift seeded by the input's length, so the chunking is deterministic
/// for a given input and the input itself stays a plain BMP stream (the seeds are captures).
fn chunks(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut state = (data.len() as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut rest = data;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let n = match state % 4 {
            0 => 1 + (state >> 8) % 8,
            1 => 1 + (state >> 8) % 200,
            _ => 1 + (state >> 8) % 4096,
        } as usize;
        let (chunk, tail) = rest.split_at(n.min(rest.len()));
        rest = tail;
        Some(chunk)
    })
}

#[derive(Clone, Copy)]
struct Progress {
    messages: u64,
    processed: u64,
    matched: u64,
    end_of_rib: u64,
}

fn progress(s: &RouterSession) -> Progress {
    Progress {
        messages: s.counts().total(),
        processed: s.processed(),
        matched: s.matched(),
        end_of_rib: s.end_of_rib_markers(),
    }
}

fn check(before: Progress, s: &RouterSession) -> Progress {
    let now = progress(s);
    assert!(now.messages >= before.messages, "message count decreased");
    assert!(now.processed >= before.processed, "processed decreased");
    assert!(now.matched >= before.matched, "matched decreased");
    assert!(
        now.end_of_rib >= before.end_of_rib,
        "End-of-RIB count decreased"
    );
    now
}

fuzz_target!(|data: &[u8]| {
    let registry = registry();
    let mut engine = Engine::new(registry.clone());
    let configured = (data.len() % 3 == 0).then(|| "edge1".to_string());
    let mut session = RouterSession::new("192.0.2.1:17001".parse().unwrap(), configured);
    let mut frames = FrameReader::new(MAX_FRAME);
    let mut seen = progress(&session);
    let mut failed = false;
    for chunk in chunks(data) {
        let mut out = Output::default();
        let framed = frames.feed(chunk, |frame| {
            session.handle_frame(frame, &registry, NOW, &mut out)
        });
        if let Err(e) = framed {
            let _ = e.label();
            session.close(NOW, &mut out);
            failed = true;
        }
        routewatch::pipeline::apply_batch(&mut engine, &out.batch);
        seen = check(seen, &session);
        if failed {
            break;
        }
    }
    if !failed {
        let mut out = Output::default();
        let _cut_short = frames.finish();
        session.close(NOW, &mut out);
        routewatch::pipeline::apply_batch(&mut engine, &out.batch);
        check(seen, &session);
    }
    assert!(session.state() == SessionState::Closed);
    assert_eq!(session.peers_up(), 0, "a peer is still up after the close");
    assert_eq!(
        engine.tracked_routes(),
        0,
        "routes left in the engine after the session closed"
    );
    // Closing twice changes nothing.
    let mut out = Output::default();
    session.close(NOW, &mut out);
    assert!(out.is_empty(), "a second close produced output");
});
