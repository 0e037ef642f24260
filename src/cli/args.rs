//! The command line, as clap definitions only. This file depends on clap, std and, from its
//! parent module, `Decoder` (`replay --decoder`) and `VERSION` (`--version`): build.rs compiles
//! it too, to generate the man page and the shell completions, so it names no other crate path.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use super::{Decoder, VERSION};

/// routewatch: BGP route telemetry for registered customer prefixes.
#[derive(Debug, Parser)]
#[command(name = "routewatch", version = VERSION, about, long_about = None)]
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
        #[arg(long, value_enum, default_value_t = Decoder::Prefilter)]
        decoder: Decoder,
        /// MRT files (plain, gzip or bzip2).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// The registry: `registry generate` writes locations from what RIB dumps show.
    Registry {
        /// What to do with it.
        #[command(subcommand)]
        command: RegistryCommand,
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
    /// Print the Prometheus alert rules (routewatch-alerts.yml) for `rule_files:`.
    AlertRules {
        /// Where the runbook is: each alert's `runbook_url` becomes URL#<alert name in lower
        /// case>, e.g. a wiki page made from docs/RUNBOOK.md. Default: the runbook routewatch
        /// serves itself, http://{{ $labels.instance }}/runbook.
        #[arg(long, value_name = "URL", value_parser = runbook_base_url)]
        runbook_base_url: Option<String>,
    },
}

/// `routewatch registry ...`
#[derive(Debug, Subcommand)]
pub enum RegistryCommand {
    /// Write a locations file (TOML) for the prefixes the given ASes originate in MRT dumps:
    /// one location per AS, with its observed upstreams and max-length where more-specifics
    /// are seen. The output loads as it is (check-config, or `include` it).
    Generate {
        /// An origin AS to monitor (repeat for several).
        #[arg(long = "asn", required = true, value_parser = clap::value_parser!(u32).range(1..))]
        asns: Vec<u32>,
        /// An upstream becomes expected when at least this many distinct peers' paths show it
        /// (or it is the collector's peer itself).
        #[arg(long, default_value_t = 2)]
        min_upstream_peers: usize,
        /// With more expected upstreams than this, the AS is taken as widely peered and its
        /// upstreams are not checked.
        #[arg(long, default_value_t = 16)]
        max_upstreams: usize,
        /// Write to this file instead of stdout.
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// MRT files: RIB dumps (TABLE_DUMP, TABLE_DUMP_V2) or update dumps, plain, gzip or bzip2.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

/// `--runbook-base-url`: an http(s) URL without a fragment that can stand in a YAML
/// double-quoted string as it is.
fn runbook_base_url(url: &str) -> Result<String, String> {
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err("the runbook URL must start with http:// or https://".into());
    }
    if url.contains('#') {
        return Err("the runbook URL cannot have a #fragment: #<alert anchor> is appended".into());
    }
    if let Some(c) = url
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || matches!(c, '"' | '\\'))
    {
        return Err(format!(
            "the runbook URL cannot contain {c:?} (percent-encode it)"
        ));
    }
    Ok(url.to_string())
}
