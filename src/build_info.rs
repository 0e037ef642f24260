//! What this build is: the crate version, the git commit, the build date and the rustc version,
//! captured by build.rs. Shown by `routewatch --version` and in `routewatch_build_info`.

/// The crate version (Cargo.toml).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The git commit built (`git rev-parse --short=12 HEAD`), or `unknown` outside a git checkout.
pub const REVISION: &str = env!("ROUTEWATCH_GIT_REVISION");

/// The build date, YYYY-MM-DD in UTC (`SOURCE_DATE_EPOCH` when set, for reproducible builds).
pub const BUILD_DATE: &str = env!("ROUTEWATCH_BUILD_DATE");

/// The compiler's version (`rustc --version`: "rustc 1.88.0 (6b00bc388 2025-06-23)"), or
/// `unknown`.
pub const RUSTC_VERSION: &str = env!("ROUTEWATCH_RUSTC_VERSION");

/// The rustc version number alone ("1.88.0"): the `rustversion` label.
pub fn rust_version() -> &'static str {
    RUSTC_VERSION
        .strip_prefix("rustc ")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or(RUSTC_VERSION)
}

/// `routewatch --version` after the program name: "0.1.0 (commit 0123456789ab, built
/// 2025-06-30)".
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("ROUTEWATCH_GIT_REVISION"),
    ", built ",
    env!("ROUTEWATCH_BUILD_DATE"),
    ")"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_long_version_names_version_commit_and_date() {
        assert!(LONG_VERSION.starts_with(VERSION));
        assert!(LONG_VERSION.contains(REVISION));
        assert!(LONG_VERSION.contains(BUILD_DATE));
        let digits: Vec<&str> = rust_version().split('.').collect();
        assert_eq!(digits.len(), 3, "{RUSTC_VERSION}");
    }
}
