//! The `routewatch` binary: parse the command line, run the command, map errors to exit codes.

use std::process::ExitCode;

use clap::Parser;

// mimalloc instead of the system allocator: route state is millions of small objects and the
// feeds hand batches between threads; glibc malloc spent a third of a full-table replay in
// malloc/free/consolidation (BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = routewatch::cli::Cli::parse();
    // replay prints its report on stdout; keep stderr to warnings unless RUST_LOG says otherwise.
    // `run` sets up logging itself once it has read `[log]` from its configuration.
    let level = match cli.command {
        routewatch::cli::Command::Replay { .. } => Some("warn"),
        routewatch::cli::Command::Run { .. } => None,
        _ => Some("info"),
    };
    if let Some(level) = level {
        routewatch::log::init(level, routewatch::log::LogFormat::Text);
    }
    match routewatch::cli::execute(cli.command) {
        Ok(()) => ExitCode::from(routewatch::error::EXIT_OK),
        Err(e) => {
            eprintln!("routewatch: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
