//! [`Decoder`], the `replay --decoder` choice. Depends on clap only: build.rs compiles this file
//! too (with `src/cli/args.rs`) to write the man page and the shell completions.

/// How MRT records are decoded; both give the same routes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Decoder {
    /// Match prefixes before decoding; skip records that touch no registered prefix.
    #[default]
    Prefilter,
    /// bgpkit-parser's route iterator over every record (the reference).
    Bgpkit,
}
