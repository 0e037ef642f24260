//! Bearer tokens for `/api/*`, the status page `/` and `POST /-/reload` (`[http] token-file`).
//! A request carries one as `Authorization: Bearer <token>`, or as the password of HTTP Basic
//! credentials (any user name), which is what a browser sends after its sign-in prompt.
//!
//! The file holds one token per line; blank lines and lines starting with `#` are ignored, as is
//! whitespace around a token. A token is 16 to 4096 visible ASCII characters (no spaces). Tokens
//! never appear in the main configuration, in logs or in error messages (errors name the line).
//! A request's token is compared with every configured token in constant time
//! ([`subtle::ConstantTimeEq`]; only a token's length can show in the timing).

use std::path::Path;
use std::sync::Arc;

use subtle::ConstantTimeEq;

/// Shortest token accepted.
pub const MIN_TOKEN_LEN: usize = 16;
/// Longest token accepted.
pub const MAX_TOKEN_LEN: usize = 4096;

/// The configured tokens (cheap to clone; `Debug` does not show them).
#[derive(Clone, PartialEq, Eq)]
pub struct Tokens(Arc<Vec<Vec<u8>>>);

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tokens({} configured)", self.0.len())
    }
}

impl Tokens {
    /// Parses the text of a token file; the error names the line.
    pub fn parse(text: &str) -> Result<Tokens, String> {
        let mut tokens = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let t = line.trim();
            if t.is_empty() || t.starts_with('#') {
                continue;
            }
            if !t.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(format!(
                    "line {}: a token is visible ASCII characters without spaces",
                    i + 1
                ));
            }
            if !(MIN_TOKEN_LEN..=MAX_TOKEN_LEN).contains(&t.len()) {
                return Err(format!(
                    "line {}: a token is {MIN_TOKEN_LEN} to {MAX_TOKEN_LEN} characters long \
                     (e.g. `openssl rand -hex 32`)",
                    i + 1
                ));
            }
            tokens.push(t.as_bytes().to_vec());
        }
        if tokens.is_empty() {
            return Err("no token in the file (one per line; # starts a comment)".into());
        }
        Ok(Tokens(Arc::new(tokens)))
    }

    /// Reads and parses a token file; the error names the file (and the line).
    pub fn load(path: &Path) -> Result<Tokens, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{}: cannot be read: {e}", path.display()))?;
        Tokens::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always false (a token file holds at least one token).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `presented` is one of the tokens; every token is compared, in constant time.
    pub fn accepts(&self, presented: &[u8]) -> bool {
        let mut ok = subtle::Choice::from(0);
        for t in self.0.iter() {
            ok |= t.as_slice().ct_eq(presented);
        }
        ok.into()
    }

    /// Whether an `Authorization` header value carries one of the tokens: `Bearer <token>`, or
    /// `Basic base64(<any user>:<token>)` (what a browser sends once its sign-in prompt is
    /// filled in: the token is the password); schemes case-insensitive.
    pub fn authorizes(&self, header: Option<&[u8]>) -> bool {
        let Some(h) = header else { return false };
        let Some((scheme, rest)) = h.split_at_checked(6) else {
            return false;
        };
        if scheme.eq_ignore_ascii_case(b"basic ") {
            let Some(decoded) = base64_decode(rest.trim_ascii()) else {
                return false;
            };
            return decoded
                .iter()
                .position(|&b| b == b':')
                .is_some_and(|colon| self.accepts(&decoded[colon + 1..]));
        }
        let Some((scheme, rest)) = h.split_at_checked(7) else {
            return false;
        };
        scheme.eq_ignore_ascii_case(b"bearer ") && self.accepts(rest.trim_ascii())
    }
}

/// Standard base64 with padding (RFC 4648 §4), as in HTTP Basic credentials; `None` for
/// anything else or more than what a user name and the longest token need.
fn base64_decode(text: &[u8]) -> Option<Vec<u8>> {
    if text.is_empty() || !text.len().is_multiple_of(4) || text.len() > 2 * MAX_TOKEN_LEN {
        return None;
    }
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let quads = text.len() / 4;
    for (i, quad) in text.chunks_exact(4).enumerate() {
        let pad = quad.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && i + 1 < quads) {
            return None;
        }
        let mut n = 0u32;
        for &c in &quad[..4 - pad] {
            n = (n << 6) | value(c)?;
        }
        n <<= 6 * pad as u32;
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..4 - pad]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_file_comments_and_checks() {
        let t = Tokens::parse("# ops\n\n  0123456789abcdef  \nsecond-token-0123456\n")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.len(), 2);
        assert!(t.accepts(b"0123456789abcdef"));
        assert!(t.accepts(b"second-token-0123456"));
        assert!(!t.accepts(b"0123456789abcdeX"));
        assert!(!t.accepts(b"0123456789abcde"));
        assert!(!t.accepts(b""));
        assert!(t.authorizes(Some(b"Bearer 0123456789abcdef")));
        assert!(t.authorizes(Some(b"bearer 0123456789abcdef")));
        assert!(!t.authorizes(Some(b"Basic 0123456789abcdef")));
        // Basic: any user, the token as the password (base64 of "ops:0123456789abcdef").
        assert!(t.authorizes(Some(b"Basic b3BzOjAxMjM0NTY3ODlhYmNkZWY=")));
        assert!(t.authorizes(Some(b"basic b3BzOjAxMjM0NTY3ODlhYmNkZWY=")));
        // ":0123456789abcdef" (no user name).
        assert!(t.authorizes(Some(b"Basic OjAxMjM0NTY3ODlhYmNkZWY=")));
        // "0123456789abcdef" with no colon: a token where the user name goes is refused.
        assert!(!t.authorizes(Some(b"Basic MDEyMzQ1Njc4OWFiY2RlZg==")));
        // "user:pass".
        assert!(!t.authorizes(Some(b"Basic dXNlcjpwYXNz")));
        assert!(!t.authorizes(Some(b"Basic b3BzOjAxMjM0NTY3ODlhYmNkZWY")));
        assert!(!t.authorizes(Some(b"Basic =3BzOjAxMjM0NTY3ODlhYmNkZWY=")));
        assert!(!t.authorizes(Some(b"Bearer")));
        assert!(!t.authorizes(None));
        assert!(format!("{t:?}").contains("2 configured"));
        assert!(!format!("{t:?}").contains("0123"));
        let short = Tokens::parse("short\n").unwrap_err();
        assert!(
            short.starts_with("line 1:") && !short.contains("short\n"),
            "{short}"
        );
        assert!(Tokens::parse("# nothing\n").is_err());
        assert!(Tokens::parse("has space inside 0123456789\n").is_err());
    }

    #[test]
    fn base64_of_rfc_4648() {
        for (plain, coded) in [
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(
                base64_decode(coded.as_bytes()).as_deref(),
                Some(plain.as_bytes())
            );
        }
        for bad in ["", "Zg=", "Z===", "Zg==Zg==", "Zm9v!A==", "Zm=v"] {
            assert_eq!(base64_decode(bad.as_bytes()), None, "{bad}");
        }
    }
}
