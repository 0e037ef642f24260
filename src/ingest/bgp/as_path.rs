//! AS_PATH handling shared by both feeds: the segments of a raw AS_PATH value, the engine's
//! [`AsPath`] built from segments (raw, or decoded by bgpkit-parser), and bgpkit-parser's decoding
//! of a whole UPDATE's AS path with 2- or 4-byte AS numbers.

use bgpkit_parser::models::{AsPath as BgpkitPath, AsPathSegment, AsnLength, BgpMessage};
use bgpkit_parser::parser::bgp::messages::parse_bgp_message;
use bgpkit_parser::ParserError;

use super::wire::{records, WireError};
use crate::model::{AsPath, Origin};

/// AS_PATH segment types.
pub const AS_SET: u8 = 1;
/// AS_SEQUENCE.
pub const AS_SEQUENCE: u8 = 2;
/// AS_CONFED_SEQUENCE.
pub const AS_CONFED_SEQUENCE: u8 = 3;
/// AS_CONFED_SET.
pub const AS_CONFED_SET: u8 = 4;

/// Iterates the segments of an AS_PATH value with 4-byte ASNs: (segment type, ASN bytes).
pub fn as_path_segments(value: &[u8]) -> impl Iterator<Item = Result<(u8, &[u8]), WireError>> + '_ {
    records(value, |c| {
        let ty = c.u8("segment type")?;
        if !(AS_SET..=AS_CONFED_SET).contains(&ty) {
            return Err(WireError::Invalid("AS_PATH segment type"));
        }
        let n = c.u8("segment length")? as usize;
        Ok((ty, c.take(n * 4, "segment")?))
    })
}

/// Builds the engine's path from AS_PATH segments given as (segment type, ASNs), with the type
/// codes of RFC 4271 / RFC 5065 ([`AS_SET`], [`AS_SEQUENCE`], ...). A final AS_SET
/// makes the origin ambiguous (unless it has one member); an AS_SET elsewhere is kept as its
/// sorted members; confederation segments are left out. A path with any AS_SET is marked so
/// ([`AsPath::has_as_set`]): ASPA verification holds it Invalid.
pub fn path_from_segments<I, A>(segments: I) -> AsPath
where
    I: IntoIterator<Item = (u8, A)>,
    A: IntoIterator<Item = u32>,
{
    let mut asns: Vec<u32> = Vec::with_capacity(8);
    let mut pending_set: Option<Vec<u32>> = None;
    let mut any_set = false;
    for (ty, members) in segments {
        if let Some(set) = pending_set.take() {
            asns.extend(set);
        }
        match ty {
            AS_SEQUENCE => asns.extend(members),
            AS_SET => {
                let mut set: Vec<u32> = members.into_iter().collect();
                set.sort_unstable();
                set.dedup();
                any_set = true;
                pending_set = Some(set);
            }
            _ => {}
        }
    }
    let origin = match pending_set {
        Some(set) if set.len() == 1 => {
            // A one-member AS_SET names its origin unambiguously.
            asns.push(set[0]);
            Origin::Asn(set[0])
        }
        Some(set) if !set.is_empty() => Origin::Set(set.into()),
        _ => asns.last().map_or(Origin::Unknown, |&o| Origin::Asn(o)),
    };
    let path = AsPath::new(asns.into(), origin);
    if any_set {
        path.with_as_set()
    } else {
        path
    }
}

/// Converts bgpkit-parser's AS path into the engine's form.
pub fn convert_path(path: &bgpkit_parser::models::AsPath) -> AsPath {
    path_from_segments(path.iter_segments().map(|seg| {
        let (ty, members) = match seg {
            AsPathSegment::AsSequence(m) => (AS_SEQUENCE, m),
            AsPathSegment::AsSet(m) => (AS_SET, m),
            AsPathSegment::ConfedSequence(m) => (AS_CONFED_SEQUENCE, m),
            AsPathSegment::ConfedSet(m) => (AS_CONFED_SET, m),
        };
        (ty, members.iter().map(|&a| u32::from(a)))
    }))
}

/// Converts a raw AS_PATH value with 4-byte ASNs (already validated by
/// [`as_path_segments`]).
pub(crate) fn path_from_wire(value: &[u8]) -> AsPath {
    path_from_segments(
        as_path_segments(value)
            .map_while(Result::ok)
            .map(|(ty, raw)| {
                (
                    ty,
                    raw.chunks_exact(4)
                        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]])),
                )
            }),
    )
}

/// Decodes an UPDATE's AS path with bgpkit-parser's `parse_bgp_message`.
///
/// `legacy_as_path` (the per-peer header's A flag) selects 2-byte AS numbers, and then the
/// AS4_PATH is merged in (RFC 6793 §4.2.3); otherwise ASNs are 4 bytes and an AS4_PATH is
/// ignored (RFC 7854 §4.2: a router re-encoding to 4 bytes should not send one). `add_path` is
/// passed for the announced family; the NLRI bgpkit-parser decodes are not used (see the
/// [`super::update`] documentation). `Ok(None)`: the UPDATE has no (readable) AS_PATH.
pub fn decode_as_path(
    pdu: &[u8],
    add_path: bool,
    legacy_as_path: bool,
) -> Result<Option<BgpkitPath>, ParserError> {
    let asn_len = if legacy_as_path {
        AsnLength::Bits16
    } else {
        AsnLength::Bits32
    };
    let mut data = pdu.to_vec().into();
    match parse_bgp_message(&mut data, add_path, &asn_len)? {
        BgpMessage::Update(u) if legacy_as_path => Ok(u.attributes.effective_as_path()),
        BgpMessage::Update(u) => Ok(u.attributes.as_path().cloned()),
        _ => Err(ParserError::ParseError("not an UPDATE".to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_sequences_sets_and_confeds() {
        let p = BgpkitPath::from_segments(vec![
            AsPathSegment::sequence([3356, 64500]),
            AsPathSegment::set([64497, 64496]),
        ]);
        let c = convert_path(&p);
        assert_eq!(c.asns.as_ref(), &[3356, 64500]);
        assert_eq!(c.origin, Origin::Set(vec![64496, 64497].into()));
        assert_eq!(c.to_string(), "3356 64500 {64496,64497}");

        let p = BgpkitPath::from_segments(vec![
            AsPathSegment::ConfedSequence([65001u32.into()].into_iter().collect()),
            AsPathSegment::sequence([3356, 64496]),
        ]);
        let c = convert_path(&p);
        assert_eq!(c.asns.as_ref(), &[3356, 64496]);
        assert_eq!(c.origin, Origin::Asn(64496));

        let p = BgpkitPath::from_segments(vec![
            AsPathSegment::sequence([3356]),
            AsPathSegment::set([64496]),
        ]);
        assert_eq!(convert_path(&p).origin, Origin::Asn(64496));
        assert_eq!(convert_path(&BgpkitPath::new()).origin, Origin::Unknown);
    }

    #[test]
    fn a_path_with_any_as_set_says_so_wherever_the_set_was() {
        let seq = |a: &[u32]| AsPathSegment::sequence(a);
        let set = |a: &[u32]| AsPathSegment::set(a);
        let cases = [
            (vec![seq(&[3356, 64500]), set(&[64497, 64496])], true),
            // A one-member final set names the origin, and is still a set.
            (vec![seq(&[3356, 64496]), set(&[64496])], true),
            // A set before the end is folded into the sequence.
            (
                vec![seq(&[3356]), set(&[64497, 64498]), seq(&[64496])],
                true,
            ),
            (vec![seq(&[3356, 64496])], false),
        ];
        for (segments, as_set) in cases {
            let c = convert_path(&BgpkitPath::from_segments(segments));
            assert_eq!(c.has_as_set(), as_set, "{c}");
        }
        // The flag makes it another path: `3356 64496 {64496}` is not `3356 64496 64496`.
        let folded = convert_path(&BgpkitPath::from_segments(vec![
            seq(&[3356, 64496]),
            set(&[64496]),
        ]));
        let plain = convert_path(&BgpkitPath::from_segments(vec![seq(&[3356, 64496, 64496])]));
        assert_eq!(folded.asns, plain.asns);
        assert_ne!(folded, plain);
        assert!(!folded.same_path(&plain));
    }
}
