//! Framing over a TCP byte stream: lengths, versions, messages split across reads.

use super::*;

fn frames_of(reader: &mut FrameReader, chunks: &[&[u8]]) -> Result<Vec<Vec<u8>>, FrameError> {
    let mut got = Vec::new();
    for c in chunks {
        reader.feed(c, |f| got.push(f.to_vec()))?;
    }
    reader.finish()?;
    Ok(got)
}

fn sample_stream() -> Vec<Vec<u8>> {
    let p = peer("198.51.100.1", 64510);
    let (s, r) = plain_opens(64510);
    vec![
        initiation("r1", "test"),
        p.peer_up(&s, &r, &[]),
        p.route_monitoring(&update(
            &[],
            &[origin_igp(), as_path4(&[64510]), next_hop([1, 2, 3, 4])],
            &pfx("203.0.113.0/24", None),
        )),
        bmp(4, &[]),
        p.stats(1, &tlv(1, &1u32.to_be_bytes())),
        p.peer_down(4, &[]),
        termination(1),
    ]
}

#[test]
fn oversized_length_is_rejected_before_any_body_is_buffered() {
    let mut r = FrameReader::new(4096);
    let mut header = vec![3];
    header.extend_from_slice(&4097u32.to_be_bytes());
    header.push(0);
    // Only the header arrives: the error comes at once, with nothing kept.
    let e = r.feed(&header, |_| panic!("no frame")).unwrap_err();
    assert_eq!(
        e,
        FrameError::BadLength {
            length: 4097,
            max: 4096
        }
    );
    assert_eq!(e.label(), "bad_length");
    assert_eq!(r.buffered(), 0);
    assert_eq!(r.feed(&[0; 100], |_| panic!("no frame")), Err(e));
    assert_eq!(r.buffered(), 0);
    assert_eq!(r.finish(), Err(e));

    // The maximum itself is fine; a length of 4 GiB or below the header is not.
    let mut r = FrameReader::new(4096);
    let ok = bmp(4, &vec![0; 4090]);
    assert_eq!(frames_of(&mut r, &[&ok]).unwrap().len(), 1);
    for bad in [u32::MAX, 5, 0] {
        let mut r = FrameReader::default();
        let mut h = vec![3];
        h.extend_from_slice(&bad.to_be_bytes());
        h.push(4);
        // Split inside the header too.
        assert!(matches!(
            frames_of(&mut r, &[&h[..3], &h[3..]]),
            Err(FrameError::BadLength { .. })
        ));
    }
    // Messages before the bad one in the same read are delivered.
    let mut r = FrameReader::default();
    let mut stream = initiation("r1", "x");
    stream.extend_from_slice(&[3, 0xff, 0xff, 0xff, 0xff, 0]);
    let mut n = 0;
    assert!(r.feed(&stream, |_| n += 1).is_err());
    assert_eq!(n, 1);
}

#[test]
fn version_other_than_3_is_rejected() {
    for v in [1u8, 2, 4, 0, 255] {
        let mut msg = initiation("r1", "x");
        msg[0] = v;
        let mut r = FrameReader::default();
        let e = frames_of(&mut r, &[&msg]).unwrap_err();
        assert_eq!(e, FrameError::UnsupportedVersion(v));
        assert_eq!(e.label(), "unsupported_version");
        assert!(decode_message(&msg).is_err());
    }
    // A version-1 header in the middle of a stream stops it there.
    let mut stream = sample_stream().concat();
    let second = sample_stream()[0].len();
    stream[second] = 1;
    let mut got = 0;
    let mut r = FrameReader::default();
    assert_eq!(
        r.feed(&stream, |_| got += 1),
        Err(FrameError::UnsupportedVersion(1))
    );
    assert_eq!(got, 1);
}

#[test]
fn frames_split_across_reads_at_every_byte_boundary() {
    let msgs = sample_stream();
    let stream = msgs.concat();
    for cut in 0..=stream.len() {
        let mut r = FrameReader::default();
        let got = frames_of(&mut r, &[&stream[..cut], &stream[cut..]]).unwrap();
        assert_eq!(got, msgs, "cut at {cut}");
        assert_eq!(r.frames(), msgs.len() as u64);
    }
    // Two cuts, every pair of boundaries around the Peer Up.
    let first = msgs[0].len();
    let second = first + msgs[1].len();
    for a in first - 3..second + 3 {
        for b in a..second + 8 {
            let mut r = FrameReader::default();
            let got = frames_of(&mut r, &[&stream[..a], &stream[a..b], &stream[b..]]).unwrap();
            assert_eq!(got, msgs, "cuts at {a}, {b}");
        }
    }
    // One byte at a time.
    let mut r = FrameReader::default();
    let chunks: Vec<&[u8]> = stream.chunks(1).collect();
    assert_eq!(frames_of(&mut r, &chunks).unwrap(), msgs);
    assert_eq!(r.bytes_received(), stream.len() as u64);
    // The stream ending inside a message is an error at the end.
    let mut r = FrameReader::default();
    assert_eq!(
        frames_of(&mut r, &[&stream[..stream.len() - 1]]),
        Err(FrameError::Truncated {
            buffered: msgs[6].len() - 1
        })
    );
    // The session sees the same thing whichever way the bytes are cut.
    let mut whole = Harness::new(&["203.0.113.0/24"]);
    let reference = whole.feed(&msgs);
    for cut in [1, 7, 100, stream.len() - 2] {
        let mut s = RouterSession::new(ROUTER.parse().unwrap(), None);
        let reg = registry(&["203.0.113.0/24"]);
        let mut out = Output::default();
        let mut r = FrameReader::default();
        for part in [&stream[..cut], &stream[cut..]] {
            r.feed(part, |f| s.handle_frame(f, &reg, NOW, &mut out))
                .unwrap();
        }
        assert_eq!(out.batch.updates.len(), reference.batch.updates.len());
        assert_eq!(out.batch.sources_down, reference.batch.sources_down);
        assert_eq!(s.counts(), whole.session.counts());
    }
}
