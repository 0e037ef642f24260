//! Command-line interface.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// routewatch: BGP route telemetry for registered customer prefixes.
#[derive(Debug, Parser)]
#[command(name = "routewatch", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Output format of `replay`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Human-readable tables.
    Table,
    /// One JSON document (the same shapes as the HTTP API).
    Json,
    /// No report (with `--metrics-out`: only the exposition file; for scripts and benchmarks).
    None,
}

/// Subcommands. Exit codes: 0 ok, 1 runtime failure, 2 usage or configuration error.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: serve HTTP, process the configured MRT files and watched directory.
    Run {
        /// Configuration file.
        #[arg(short, long, default_value = "/etc/routewatch/routewatch.toml")]
        config: PathBuf,
    },
    /// Replay MRT files (RIB dumps first, then updates) and print the per-prefix report.
    Replay {
        /// Configuration file (only the registry and metric settings are used).
        #[arg(short, long)]
        config: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
        /// Also write the final Prometheus exposition to this file.
        #[arg(long)]
        metrics_out: Option<PathBuf>,
        /// MRT decoder: `prefilter` skips records that touch no registered prefix; `bgpkit`
        /// decodes every record with bgpkit-parser (the reference; same results, slower).
        #[arg(long, value_enum, default_value_t = crate::ingest::mrt::Decoder::Prefilter)]
        decoder: crate::ingest::mrt::Decoder,
        /// MRT files (plain, gzip or bzip2).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Validate a configuration file and exit 0 (valid) or 2 (invalid).
    CheckConfig {
        /// Configuration file.
        #[arg(short, long)]
        config: PathBuf,
    },
}
