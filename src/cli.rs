//! Command-line interface: the clap definitions (`cli/args.rs`, shared with build.rs, which
//! writes the man page and the shell completions from them) and [`execute`], which runs one
//! command.

use std::io::Write as _;
use std::path::{Path, PathBuf};

mod args;
pub use args::{Cli, Command, Format, RegistryCommand};

// What args.rs takes from its parent (build.rs gives it its own).
use crate::build_info::LONG_VERSION as VERSION;
use crate::ingest::mrt::Decoder;

use crate::config::Config;
use crate::error::Error;
use crate::replay::{ReplayOptions, ReportContent};

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
        Command::AlertRules { runbook_base_url } => {
            let text = crate::runbook::alert_rules(runbook_base_url.as_deref());
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())
                .and_then(|_| out.flush())
                .map_err(|source| Error::Io {
                    context: "writing the alert rules to stdout".into(),
                    source,
                })
        }
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
    let everything = crate::registry::Registry::everything();
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
