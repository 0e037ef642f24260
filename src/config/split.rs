//! The main file's parse in pieces on two threads when it is large (a registry of hundreds of
//! thousands of prefixes); any doubt falls back to the one-piece parse.

use toml::Spanned;

use super::{ConfigError, RawFile, RawInclude, RawLocation, Source};

/// Main files at least this large (a registry of hundreds of thousands of prefixes) are
/// parsed in pieces on two threads when [`parse_split`] can do so safely.
const SPLIT_PARSE_BYTES: usize = 4 << 20;

/// About how large each piece of a split parse is: the TOML parser holds every token and event
/// of the text it parses (about 10 bytes per byte of a registry), so pieces keep that transient
/// memory to a few megabytes instead of hundreds.
const SPLIT_PIECE_BYTES: usize = 1 << 20;

/// Table headers a main file may have besides `[[location]]` for [`parse_split`].
const SPLIT_HEADERS: [&str; 16] = [
    "[http]",
    "[mrt]",
    "[bmp]",
    "[[bmp.router]]",
    "[rpki]",
    "[events]",
    "[dns]",
    "[metrics]",
    "[log]",
    "[[notify]]",
    "[ris-live]",
    "[[ris-live.baseline]]",
    "[[kafka]]",
    "[kafka.options]",
    "[kafka.options-from-files]",
    "[[location]]",
];

/// Parses the main file, in pieces on two threads when it is large (the TOML parse of a
/// million-prefix registry takes about a second on one core and, in one piece, several hundred
/// megabytes); any doubt or error falls back to the one-piece parse, which reports errors as
/// before.
pub(super) fn parse_main(main: &Source) -> Result<RawFile, ConfigError> {
    if main.text.len() >= SPLIT_PARSE_BYTES {
        if let Some(raw) = parse_split(&main.text, SPLIT_PIECE_BYTES) {
            return Ok(raw);
        }
    }
    main.parse()
}

/// A table header line without its comment and trailing blanks.
fn table_header(line: &str) -> &str {
    line.split('#').next().unwrap_or_default().trim_end()
}

/// Where the pieces of a split parse start: 0, then `[[location]]` header lines about `piece`
/// bytes apart.
fn piece_starts(text: &str, piece: usize) -> Vec<usize> {
    let mut starts = vec![0];
    let mut from = piece.min(text.len());
    while let Some(found) = text.get(from..).and_then(|t| t.find("\n[[location]]")) {
        let at = from + found + 1;
        if table_header(text[at..].lines().next().unwrap_or_default()) == "[[location]]" {
            starts.push(at);
            from = at + piece;
        } else {
            from = at;
        }
        if from >= text.len() {
            break;
        }
    }
    starts
}

/// The split parse: the text is cut before `[[location]]` headers into pieces of about `piece`
/// bytes; the first piece is parsed as the main file, the others as locations only (on two
/// threads), and their spans are moved by the piece's offset so that they are offsets in the
/// whole file. A piece after the first starts at an array-of-tables header, so each of its keys
/// belongs to one of its own locations and parsing it alone cannot change the result. It is used
/// only when: no multi-line strings, every table header is one of [`SPLIT_HEADERS`], no line
/// defines a `location` key (a static array, a `[location]` table), and every piece parses.
fn parse_split(text: &str, piece: usize) -> Option<RawFile> {
    if text.contains("\"\"\"") || text.contains("'''") {
        return None;
    }
    for line in text.lines() {
        let l = line.trim_start();
        if l.starts_with('[') {
            if !SPLIT_HEADERS.contains(&table_header(l)) {
                return None;
            }
        } else if ["location", "\"location", "'location"]
            .iter()
            .any(|k| l.starts_with(k))
        {
            return None;
        }
    }
    let starts = piece_starts(text, piece);
    if starts.len() < 2 {
        return None;
    }
    let range = |i: usize| starts[i]..starts.get(i + 1).copied().unwrap_or(text.len());
    // Pieces 1.. go to whichever thread is free; each result keeps its piece number.
    let next = std::sync::atomic::AtomicUsize::new(1);
    let work = || {
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if i >= starts.len() {
                return done;
            }
            let r = range(i);
            let parsed = toml::from_str::<RawInclude>(&text[r.clone()]).ok();
            let failed = parsed.is_none();
            done.push((i, parsed.map(|p| shift_locations(p.location, r.start))));
            if failed {
                // The whole file is parsed again in one piece, which reports the error.
                next.store(starts.len(), std::sync::atomic::Ordering::Relaxed);
                return done;
            }
        }
    };
    let (first, mut rest) = std::thread::scope(|scope| {
        let helper = scope.spawn(work);
        let first = toml::from_str::<RawFile>(&text[range(0)]).ok();
        let mut rest = work();
        rest.extend(helper.join().ok()?);
        Some((first, rest))
    })?;
    let mut raw = first?;
    // A piece that failed left its `None` (and stopped the others).
    rest.sort_unstable_by_key(|(i, _)| *i);
    for (_, locations) in rest {
        raw.location.extend(locations?);
    }
    Some(raw)
}

/// `locations` parsed from a piece of text that starts at byte `by` of the file, with their
/// spans made offsets in the file.
fn shift_locations(locations: Vec<RawLocation>, by: usize) -> Vec<RawLocation> {
    fn at<T>(v: Spanned<T>, by: usize) -> Spanned<T> {
        let span = v.span();
        Spanned::new(span.start + by..span.end + by, v.into_inner())
    }
    fn all<T>(v: Vec<Spanned<T>>, by: usize) -> Vec<Spanned<T>> {
        v.into_iter().map(|x| at(x, by)).collect()
    }
    fn list<T>(v: Spanned<Vec<Spanned<T>>>, by: usize) -> Spanned<Vec<Spanned<T>>> {
        let span = v.span();
        Spanned::new(span.start + by..span.end + by, all(v.into_inner(), by))
    }
    locations
        .into_iter()
        .map(|l| RawLocation {
            name: at(l.name, by),
            provider: l.provider,
            provider_asns: all(l.provider_asns, by),
            region: l.region,
            origin_asns: list(l.origin_asns, by),
            prefixes: list(l.prefixes, by),
            max_length: l.max_length.map(|v| at(v, by)),
            max_length_v6: l.max_length_v6.map(|v| at(v, by)),
            min_peers: l.min_peers.map(|v| at(v, by)),
            min_visibility: l.min_visibility.map(|v| at(v, by)),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(locations: usize) -> String {
        let mut t = String::from("state-dir = \"/tmp/x\"\n\n[metrics]\nmax-prefix-series = 5\n");
        for i in 0..locations {
            t.push_str(&format!(
                "\n[[location]] # site {i}\nname = \"l{i}\"\norigin-asns = [{}]\nprefixes = [\"10.{}.{}.0/24\"]\n",
                64496 + i,
                i / 256,
                i % 256
            ));
            if i % 3 == 0 {
                // Every optional key, so that every span is compared.
                t.push_str(&format!(
                    "provider = \"p{i}\"\nprovider-asns = [64511, {}]\nregion = \"r\"\nmax-length = 24\nmax-length-v6 = 48\nmin-peers = 2\nmin-visibility = {i}\n",
                    65000 + i
                ));
            }
        }
        t
    }

    #[test]
    fn split_parse_gives_the_one_piece_result() {
        let text = doc(40);
        let whole: RawFile = toml::from_str(&text).unwrap();
        // From pieces of one location each to a piece as large as the file.
        for piece in [1, 60, 200, 1000, text.len()] {
            let split = parse_split(&text, piece);
            if piece >= text.len() {
                assert!(split.is_none(), "one piece: nothing to split");
                continue;
            }
            let split = split.expect("splittable");
            assert_eq!(split.location.len(), 40);
            // Debug output holds every value and every span.
            assert_eq!(
                format!("{:?}", split.location),
                format!("{:?}", whole.location),
                "pieces of {piece} bytes: same locations, same spans"
            );
            assert_eq!(
                split
                    .metrics
                    .unwrap()
                    .max_prefix_series
                    .unwrap()
                    .into_inner(),
                5
            );
        }
        assert_eq!(piece_starts(&text, 1).len(), 41, "a piece per location");
    }

    #[test]
    fn split_parse_declines_what_it_cannot_prove_equal() {
        for extra in [
            "location = []\n",
            "[location.x]\n",
            "s = \"\"\"\n[[location]]\n\"\"\"\n",
        ] {
            let text = format!("{extra}{}", doc(10));
            assert!(parse_split(&text, 100).is_none(), "{extra:?}");
        }
        // A second half that is not only locations.
        let text = format!("{}\n[http]\nlisten = \"127.0.0.1:1\"\n", doc(10));
        assert!(parse_split(&text, 100).is_none());
        // A piece that does not parse.
        let text = format!("{}\n[[location]]\nname = \n", doc(10));
        assert!(parse_split(&text, 100).is_none());
    }
}
