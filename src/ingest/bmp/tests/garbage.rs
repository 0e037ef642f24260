//! Random and mutated input never panics.

use super::*;

/// xorshift64*: deterministic, dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// Runs a frame through decoding and a session with a registry that matches everything (so
/// every announcement reaches bgpkit-parser).
fn survive(session: &mut RouterSession, reg: &Registry, frame: &[u8]) {
    let mut out = Output::default();
    session.handle_frame(frame, reg, NOW, &mut out);
    let _ = decode_message(frame);
}

#[test]
fn random_garbage_never_panics() {
    let reg = everything();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut session = RouterSession::new(ROUTER.parse().unwrap(), None);
    // Raw garbage into the framer, in random chunks, then into decoding.
    for _ in 0..2000 {
        let len = rng.below(300);
        let mut data = rng.bytes(len);
        if rng.below(2) == 0 && data.len() >= 6 {
            data[0] = 3;
            let l = rng.below(data.len() + 10) as u32;
            data[1..5].copy_from_slice(&l.to_be_bytes());
        }
        let mut r = FrameReader::new(1 + rng.below(400) as u32);
        let mut rest = &data[..];
        while !rest.is_empty() {
            let n = 1 + rng.below(rest.len());
            let (c, tail) = rest.split_at(n);
            rest = tail;
            if r.feed(c, |f| survive(&mut session, &reg, f)).is_err() {
                break;
            }
        }
        let _ = r.finish();
        survive(&mut session, &reg, &data);
    }
    // Valid headers around random bodies, for every message type and peer type.
    for _ in 0..20_000 {
        let ty = rng.below(8) as u8;
        let mut body = Vec::new();
        if ty != 4 && ty != 5 && rng.below(4) != 0 {
            let mut p = peer("198.51.100.1", 64510);
            p.peer_type = rng.below(5) as u8;
            p.flags = rng.next() as u8;
            body.extend_from_slice(&p.header());
            if ty == 0 && rng.below(2) == 0 {
                // A BGP UPDATE header with a random body.
                let n = rng.below(200);
                body.extend_from_slice(&bgp_msg(2, &rng.bytes(n)));
                continue_with_tail(&mut rng, &mut body);
            }
        }
        let n = rng.below(120);
        body.extend_from_slice(&rng.bytes(n));
        survive(&mut session, &reg, &bmp(ty, &body));
    }
}

fn continue_with_tail(rng: &mut Rng, body: &mut Vec<u8>) {
    if rng.below(3) == 0 {
        let n = rng.below(8);
        body.extend_from_slice(&rng.bytes(n));
    }
}

#[test]
fn mutated_real_messages_never_panic() {
    let reg = everything();
    let mut rng = Rng(42);
    for file in [
        "pmacct__204-BMP-CISCO-peer_down__traffic-00.flow0.bmp",
        "netgauze__upa.flow1.bmp",
    ] {
        let data = std::fs::read(fixture_dir().join(file)).unwrap();
        let mut msgs = Vec::new();
        FrameReader::default()
            .feed(&data, |f| msgs.push(f.to_vec()))
            .unwrap();
        let mut session = RouterSession::new(ROUTER.parse().unwrap(), None);
        for round in 0..30 {
            for m in &msgs {
                let mut m = m.clone();
                for _ in 0..1 + rng.below(4) {
                    if m.len() <= 6 {
                        break;
                    }
                    // Keep the common header (it is the framer's job) and mutate the rest.
                    let at = 6 + rng.below(m.len() - 6);
                    match rng.below(4) {
                        0 => m[at] ^= 1 << rng.below(8),
                        1 => m[at] = rng.next() as u8,
                        2 => m[at] = if round % 2 == 0 { 0 } else { 0xff },
                        _ => {
                            m.truncate(at);
                            let l = m.len() as u32;
                            m[1..5].copy_from_slice(&l.to_be_bytes());
                        }
                    }
                }
                survive(&mut session, &reg, &m);
            }
        }
    }
}
