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
        Command::Registry {
            command:
                RegistryCommand::Generate {
                    asns,
                    min_upstream_peers,
                    max_upstreams,
                    output,
                    files,
                },
        } => {
            let options = crate::registry::generate::RenderOptions {
                min_upstream_peers,
                max_upstreams,
                files: files
                    .iter()
                    .map(|f| {
                        f.file_name()
                            .map_or_else(|| f.display().to_string(), |n| n.to_string_lossy().into())
                    })
                    .collect(),
            };
            registry_generate(&asns, &options, output.as_deref(), &files)
        }
        Command::Notify { config, target, .. } => {
            let c = Config::load(&config)?;
            crate::notify::test_targets(&c.notify, &c.http, target.as_deref())
        }
    }
}

/// `registry generate`: every route of `files` goes through the MRT reader (against a registry
/// covering everything), the ones the ASes originate are kept.
fn registry_generate(
    asns: &[u32],
    options: &crate::registry::generate::RenderOptions,
    output: Option<&Path>,
    files: &[PathBuf],
) -> Result<(), Error> {
    use crate::model::RouteChange;
    use crate::registry::generate::Observations;
    use crate::registry::{Location, Registry};
    let everything = Registry::new(vec![Location {
        name: "everything".into(),
        provider: None,
        provider_asns: Vec::new(),
        region: None,
        origin_asns: Vec::new(),
        prefixes: vec![
            "0.0.0.0/0".parse().unwrap_or_default(),
            "::/0".parse().unwrap_or_default(),
        ],
        max_length: Some(32),
        max_length_v6: Some(128),
        min_peers: 1,
        min_visibility: 0,
    }])
    .map_err(|e| Error::Nothing(format!("building the covering registry: {e}")))?;
    let mut seen = Observations::new(asns);
    for (path, _) in crate::ingest::mrt::order_for_replay(files)? {
        // Parse errors are logged by the reader; a cut file still gives its complete records.
        crate::ingest::mrt::read_file(&path, &everything, |batch| {
            for u in &batch.updates {
                if let RouteChange::Announce(p) = &u.change {
                    seen.observe((u.peer.address, u.peer.asn), u.prefix, p);
                }
            }
            true
        })?;
    }
    let Some(text) = seen.render(options) else {
        let list: Vec<String> = asns.iter().map(|a| format!("AS{a}")).collect();
        return Err(Error::Nothing(format!(
            "no route in the {} file(s) ({} routes) is originated by {}",
            files.len(),
            seen.routes(),
            list.join(", ")
        )));
    };
    match output {
        Some(path) => std::fs::write(path, text).map_err(|source| Error::Write {
            path: path.to_path_buf(),
            source,
        }),
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())
                .and_then(|_| out.flush())
                .map_err(|source| Error::Io {
                    context: "writing the locations to stdout".into(),
                    source,
                })
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
