//! The Only-to-Customer (OTC) path attribute (RFC 9234 §5: type 35, optional transitive, a
//! 4-byte AS number), read from raw path attributes for every feed that has them: a BMP Route
//! Monitoring UPDATE, an MRT BGP4MP UPDATE, a TABLE_DUMP / TABLE_DUMP_V2 RIB entry.
//!
//! A malformed OTC (length other than 4) is handled as RFC 9234 §5 says, by "attribute discard"
//! (RFC 7606 §2): the route is kept as if it carried no OTC, and the caller counts one parse
//! error labelled [`MALFORMED_OTC`] per UPDATE or RIB entry. A repeated OTC keeps the first
//! (RFC 7606 §3 g: all but the first occurrence are discarded). The flags are not checked.
//! bgpkit-parser reads the attribute too, but its route iterator does not hand it on and its
//! full decoder keeps the first 4 bytes of an over-long one, so every decoder uses this one.

use super::wire::{attributes, ATTR_OTC};

/// The parse-error label of a malformed OTC attribute (both feeds).
pub const MALFORMED_OTC: &str = "malformed_otc";

/// The OTC attribute of one set of path attributes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Otc {
    /// No OTC attribute.
    #[default]
    Absent,
    /// An OTC attribute with this AS number.
    Present(u32),
    /// An OTC attribute whose length is not 4: discarded.
    Malformed,
}

impl Otc {
    /// The AS number the route carries (none when absent or discarded).
    pub fn value(self) -> Option<u32> {
        match self {
            Otc::Present(asn) => Some(asn),
            Otc::Absent | Otc::Malformed => None,
        }
    }

    /// Whether the attribute was there but malformed (to be counted).
    pub fn is_malformed(self) -> bool {
        self == Otc::Malformed
    }
}

/// The OTC attribute among raw path attributes (flags, type, length, value; as in an UPDATE or
/// a RIB entry). Attributes that do not frame end the search: whatever OTC was found before
/// them counts (the caller decides what the rest of the malformation means).
pub fn only_to_customer(raw_attributes: &[u8]) -> Otc {
    for attr in attributes(raw_attributes) {
        let Ok((code, value)) = attr else {
            break;
        };
        if code == ATTR_OTC {
            return match *value {
                [a, b, c, d] => Otc::Present(u32::from_be_bytes([a, b, c, d])),
                _ => Otc::Malformed,
            };
        }
    }
    Otc::Absent
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One attribute: optional transitive flags, `code`, a 1-byte length.
    fn attr(code: u8, value: &[u8]) -> Vec<u8> {
        let mut v = vec![0xC0, code, value.len() as u8];
        v.extend_from_slice(value);
        v
    }

    #[test]
    fn reads_a_four_byte_otc_among_other_attributes() {
        let raw = [
            attr(1, &[0]),
            attr(2, &[2, 1, 0, 0, 0xFB, 0xF0]),
            attr(35, &4_200_000_001u32.to_be_bytes()),
        ]
        .concat();
        assert_eq!(only_to_customer(&raw), Otc::Present(4_200_000_001));
        assert_eq!(only_to_customer(&raw).value(), Some(4_200_000_001));
    }

    #[test]
    fn absent_and_bad_lengths() {
        assert_eq!(only_to_customer(&attr(1, &[0])), Otc::Absent);
        assert_eq!(only_to_customer(&[]), Otc::Absent);
        for bad in [&[][..], &[0, 0, 1], &[0, 0, 0, 1, 2]] {
            let o = only_to_customer(&attr(35, bad));
            assert_eq!(o, Otc::Malformed, "{bad:?}");
            assert!(o.is_malformed());
            assert_eq!(o.value(), None);
        }
    }

    #[test]
    fn the_first_of_repeated_otcs_counts_and_extended_lengths_read() {
        let mut ext = vec![0xD0, 35, 0, 4];
        ext.extend_from_slice(&64_500u32.to_be_bytes());
        let raw = [ext, attr(35, &64_501u32.to_be_bytes())].concat();
        assert_eq!(only_to_customer(&raw), Otc::Present(64_500));
        // Attributes that stop framing end the search.
        let cut = [attr(1, &[0]), vec![0xC0, 35, 9, 0, 0]].concat();
        assert_eq!(only_to_customer(&cut), Otc::Absent);
    }
}
