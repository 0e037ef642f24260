//! Bearer tokens for `/api/*` and `POST /-/reload` (`[http] token-file`).
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

    /// Whether an `Authorization` header value carries one of the tokens (`Bearer <token>`,
    /// the scheme case-insensitive).
    pub fn authorizes(&self, header: Option<&[u8]>) -> bool {
        let Some(h) = header else { return false };
        let Some((scheme, rest)) = h.split_at_checked(7) else {
            return false;
        };
        scheme.eq_ignore_ascii_case(b"bearer ") && self.accepts(rest.trim_ascii())
    }
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
}
