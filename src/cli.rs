//! Command-line interface: the clap definitions (`cli/args.rs`, shared with build.rs, which
//! writes the man page and the shell completions from them) and [`execute`], which runs one
//! command.

use std::io::Write as _;
use std::path::Path;

mod args;
pub use args::{Cli, Command, Format};

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
