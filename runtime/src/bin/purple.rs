//! `purple`: policies, profiles, `purple run` and the audit trail.

use std::process::ExitCode;

use clap::Parser;
use purple_runtime::cli::{dispatch, Cli};
use purple_runtime::escape::lines_for_terminal;
use purple_runtime::logging::{self, one_line};

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.command.only_prints() {
        purple_runtime::signal::die_with_closed_stdout();
    }
    if let Err(code) = purple_runtime::sealed::prepare("purple", cli.command.enters_container()) {
        return code;
    }
    if let Err(e) = logging::init(None, logging::LogFormat::Text, cli.debug) {
        eprintln!("purple: cannot set up logging: {e}");
        return ExitCode::from(1);
    }
    match dispatch(cli) {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            eprintln!("purple: {}", lines_for_terminal(&one_line(&e)));
            ExitCode::from(1)
        }
    }
}
