//! Times as people and the API read them: RFC 3339 in UTC, both ways.
//!
//! Inside routewatch a time is seconds since the Unix epoch as an `f64` (BGP times from the
//! data, wall-clock times from [`crate::clock`]). Every time the JSON API, the replay report
//! and the status page show is written by [`format_rfc3339`] — `2024-01-01T00:00:00Z`, with
//! fractional seconds (up to microseconds, trailing zeros left out) only when the time has
//! them — and every RFC 3339 time a client gives is read by [`parse_rfc3339`]. The [`serde`] helpers put the formatter on struct fields.

/// The latest time written: 9999-12-31T23:59:59.999999Z (RFC 3339 has four-digit years).
const MAX_SECONDS: i64 = 253_402_300_799;

/// Formats seconds since the epoch as RFC 3339 UTC: `2024-01-01T00:00:00Z`, or
/// `2024-01-01T00:00:00.25Z` when the time has a fraction (rounded to the microsecond,
/// trailing zeros dropped). Times before 1970, after year 9999 and not finite are clamped to
/// that range (NaN is the epoch), so the result is always a valid RFC 3339 time.
pub fn format_rfc3339(t: f64) -> String {
    let micros_total = if t.is_nan() {
        0
    } else {
        // Saturating float-to-int conversion; then clamped to the writable range.
        ((t * 1e6).round() as i64).clamp(0, MAX_SECONDS * 1_000_000 + 999_999)
    };
    let secs = micros_total.div_euclid(1_000_000);
    let micros = micros_total.rem_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil-from-days (Howard Hinnant's algorithm), proleptic Gregorian.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let mut out = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    );
    if micros > 0 {
        let frac = format!("{micros:06}");
        out.push('.');
        out.push_str(frac.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)` (RFC 3339; `t`/space separator and `z`
/// accepted) into seconds since the epoch. Times before 1970 are refused.
pub fn parse_rfc3339(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let part = b.get(from..from + len)?;
        if !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(part).ok()?.parse().ok()
    };
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&month)
        || day < 1
        || day > month_days[(month - 1) as usize]
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut i = 19;
    let mut frac = 0.0;
    if b[i] == b'.' {
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return None;
        }
        frac = format!("0.{}", std::str::from_utf8(&b[start..i]).ok()?)
            .parse()
            .ok()?;
    }
    let offset = match b.get(i..)? {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (h, m) = (num(i + 1, 2)?, num(i + 4, 2)?);
            if h > 23 || m > 59 {
                return None;
            }
            let o = h * 3600 + m * 60;
            if *sign == b'-' {
                -o
            } else {
                o
            }
        }
        _ => return None,
    };
    // Days from the civil date (Howard Hinnant's algorithm), proleptic Gregorian.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    // A leap second (:60) counts as the last second of the minute.
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second.min(59) - offset;
    (secs >= 0).then_some(secs as f64 + frac)
}

/// `#[serde(with = "crate::time_fmt::serde")]` on an `f64` field: written as
/// [`format_rfc3339`]; read from an RFC 3339 string or a number of epoch seconds.
pub mod serde {
    use serde::de::{self, Deserializer, Visitor};
    use serde::Serializer;

    /// Writes the time as RFC 3339.
    pub fn serialize<S: Serializer>(t: &f64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_rfc3339(*t))
    }

    /// Reads an RFC 3339 string or epoch seconds.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        d.deserialize_any(TimeVisitor)
    }

    pub(super) struct TimeVisitor;

    impl Visitor<'_> for TimeVisitor {
        type Value = f64;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an RFC 3339 time or seconds since the epoch")
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<f64, E> {
            super::parse_rfc3339(v).ok_or_else(|| E::custom(format!("not an RFC 3339 time: {v}")))
        }

        fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
            Ok(v)
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
            Ok(v as f64)
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
            Ok(v as f64)
        }
    }

    /// The same for an `Option<f64>` (`null` when `None`):
    /// `#[serde(with = "crate::time_fmt::serde::option")]`.
    pub mod option {
        use serde::de::{self, Deserializer, Visitor};
        use serde::Serializer;

        /// Writes the time as RFC 3339, or `null`.
        pub fn serialize<S: Serializer>(t: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => s.serialize_str(&super::super::format_rfc3339(*t)),
                None => s.serialize_none(),
            }
        }

        /// Reads `null`, an RFC 3339 string or epoch seconds.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
            d.deserialize_option(OptionVisitor)
        }

        struct OptionVisitor;

        impl<'de> Visitor<'de> for OptionVisitor {
            type Value = Option<f64>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("null, an RFC 3339 time or seconds since the epoch")
            }

            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }

            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }

            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                super::deserialize(d).map(Some)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_times_with_fractions_only_when_present() {
        assert_eq!(format_rfc3339(0.0), "1970-01-01T00:00:00Z");
        assert_eq!(format_rfc3339(951_450_300.5), "2000-02-25T03:45:00.5Z");
        assert_eq!(format_rfc3339(1_427_846_400.0), "2015-04-01T00:00:00Z");
        assert_eq!(format_rfc3339(1_709_164_800.0), "2024-02-29T00:00:00Z");
        assert_eq!(format_rfc3339(1_704_067_200.25), "2024-01-01T00:00:00.25Z");
        assert_eq!(
            format_rfc3339(1_704_067_200.000_123),
            "2024-01-01T00:00:00.000123Z"
        );
        // Rounded to the microsecond: a time just below a second is that second.
        assert_eq!(
            format_rfc3339(1_704_067_199.999_999_9),
            "2024-01-01T00:00:00Z"
        );
        for (odd, want) in [
            (-1.0, "1970-01-01T00:00:00Z"),
            (f64::NAN, "1970-01-01T00:00:00Z"),
            (f64::NEG_INFINITY, "1970-01-01T00:00:00Z"),
            (f64::INFINITY, "9999-12-31T23:59:59.999999Z"),
        ] {
            assert_eq!(format_rfc3339(odd), want, "{odd}");
        }
    }

    #[test]
    fn formatted_times_parse_back() {
        for t in [
            0.0,
            1_400_824_800.0,
            1_704_067_200.5,
            1_709_208_000.25,
            4_102_444_800.0,
        ] {
            assert_eq!(parse_rfc3339(&format_rfc3339(t)), Some(t), "{t}");
        }
    }

    #[test]
    fn rfc3339_times() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0.0));
        assert_eq!(parse_rfc3339("2024-01-01T00:00:00Z"), Some(1_704_067_200.0));
        assert_eq!(parse_rfc3339("2024-01-01t00:00:00z"), Some(1_704_067_200.0));
        assert_eq!(parse_rfc3339("2024-01-01 00:00:00Z"), Some(1_704_067_200.0));
        assert_eq!(
            parse_rfc3339("2024-01-01T01:00:00+01:00"),
            Some(1_704_067_200.0)
        );
        assert_eq!(
            parse_rfc3339("2023-12-31T19:00:00-05:00"),
            Some(1_704_067_200.0)
        );
        assert_eq!(
            parse_rfc3339("2024-02-29T12:00:00.25Z"),
            Some(1_709_208_000.25)
        );
        assert_eq!(parse_rfc3339("2014-05-23T06:00:00Z"), Some(1_400_824_800.0));
        assert_eq!(
            format_rfc3339(parse_rfc3339("2100-03-01T23:59:59Z").unwrap_or(0.0)),
            "2100-03-01T23:59:59Z"
        );
        for bad in [
            "2023-02-29T00:00:00Z",
            "2024-13-01T00:00:00Z",
            "2024-00-01T00:00:00Z",
            "2024-01-32T00:00:00Z",
            "2024-01-01T24:00:00Z",
            "2024-01-01T00:60:00Z",
            "2024-01-01T00:00:00",
            "2024-01-01T00:00:00+0100",
            "2024-01-01T00:00:00+24:00",
            "2024-01-01T00:00:00.Z",
            "2024-01-01T00:00:00ZZ",
            "2024-1-01T00:00:00Z",
            "1969-12-31T23:59:59Z",
            "2024-01-01",
            "yesterday",
            "２024-01-01T00:00:00Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn serde_writes_strings_and_reads_both() {
        #[derive(::serde::Serialize, ::serde::Deserialize, Debug, PartialEq)]
        struct T {
            #[serde(with = "super::serde")]
            at: f64,
            #[serde(with = "super::serde::option", default)]
            maybe: Option<f64>,
        }
        let t = T {
            at: 1_704_067_200.5,
            maybe: None,
        };
        let text = serde_json::to_string(&t).unwrap_or_default();
        assert_eq!(text, r#"{"at":"2024-01-01T00:00:00.5Z","maybe":null}"#);
        let back: Result<T, _> = serde_json::from_str(&text);
        assert_eq!(back.ok(), Some(t));
        let old: Result<T, _> = serde_json::from_str(r#"{"at":1704067200,"maybe":1704067200.5}"#);
        assert_eq!(
            old.ok(),
            Some(T {
                at: 1_704_067_200.0,
                maybe: Some(1_704_067_200.5)
            })
        );
    }
}
