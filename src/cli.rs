//! Command-line interface: the clap definitions and [`execute`], which runs one command.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand, ValueEnum};

use crate::config::Config;
use crate::error::Error;
use crate::replay::{ReplayOptions, ReportContent};

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
    /// Notification targets (`[[notify]]`): `--test` sends each one a test notification and
    /// exits 1 naming the targets that did not accept it.
    Notify {
        /// Configuration file.
        #[arg(short, long)]
        config: PathBuf,
        /// Send one test notification to each target (or only to `--target`).
        #[arg(long, required = true)]
        test: bool,
        /// Only the target of this name.
        #[arg(long)]
        target: Option<String>,
    },
    /// Validate a configuration file and exit 0 (valid) or 2 (invalid).
    CheckConfig {
        /// Configuration file.
        #[arg(short, long)]
        config: PathBuf,
    },
}

/// Runs one CLI command.
pub fn execute(command: Command) -> Result<(), Error> {
    match command {
        Command::CheckConfig { config } => check_config(&config),
        Command::Replay {
            config,
            format,
            metrics_out,
            decoder,
            files,
        } => {
            // `--format none` prints nothing: the per-prefix summaries and the event history are
            // not built at all (a million-prefix registry's report costs seconds and gigabytes).
            let content = if format == Format::None {
                ReportContent::FilesOnly
            } else {
                ReportContent::Full
            };
            let options = ReplayOptions::new(config, &files)
                .metrics_out(metrics_out.as_deref())
                .decoder(decoder)
                .content(content);
            let report = crate::replay::replay(&options)?;
            let text = match format {
                Format::Table => report.to_table(),
                Format::Json => serde_json::to_string_pretty(&report).unwrap_or_default() + "\n",
                Format::None => String::new(),
            };
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())
                .and_then(|_| out.flush())
                .map_err(|source| Error::Io {
                    context: "writing the report to stdout".into(),
                    source,
                })
        }
        Command::Run { config } => crate::daemon::run(&config),
        Command::Notify { config, target, .. } => {
            let c = Config::load(&config)?;
            crate::notify::test_targets(&c.notify, &c.http, target.as_deref())
        }
    }
}

fn check_config(path: &Path) -> Result<(), Error> {
    let config = Config::load(path)?;
    // Config::load built and validated the registry.
    let registry = config.shared_registry();
    let (v4, v6) = registry.count_by_family();
    println!(
        "{}: OK: {} locations, {} prefixes ({v4} IPv4, {v6} IPv6)",
        path.display(),
        registry.locations().len(),
        v4 + v6
    );
    Ok(())
}
