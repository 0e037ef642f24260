//! The `routewatch` binary: parse the command line, run the command, map errors to exit codes.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = routewatch::cli::Cli::parse();
    routewatch::log::init("info");
    match routewatch::service::execute(cli.command) {
        Ok(()) => ExitCode::from(routewatch::error::EXIT_OK),
        Err(e) => {
            eprintln!("routewatch: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
