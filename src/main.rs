//! The `routewatch` binary: parse the command line, run the command, map errors to exit codes.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = routewatch::cli::Cli::parse();
    // replay prints its report on stdout; keep stderr to warnings unless RUST_LOG says otherwise.
    let level = match cli.command {
        routewatch::cli::Command::Replay { .. } => "warn",
        _ => "info",
    };
    routewatch::log::init(level);
    match routewatch::service::execute(cli.command) {
        Ok(()) => ExitCode::from(routewatch::error::EXIT_OK),
        Err(e) => {
            eprintln!("routewatch: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
