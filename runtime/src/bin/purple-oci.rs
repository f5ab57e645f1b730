//! `purple-oci`: Purple's runc-compatible OCI runtime.

use std::process::ExitCode;

use clap::Parser;
use purple_runtime::escape::lines_for_terminal;
use purple_runtime::logging::{self, one_line};
use purple_runtime::oci::{dispatch, Cli};

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.command.only_prints() {
        purple_runtime::signal::die_with_closed_stdout();
    }
    if let Err(code) = purple_runtime::sealed::prepare("purple-oci", cli.command.enters_container())
    {
        return code;
    }
    let logger = match logging::init(cli.log.as_deref(), cli.log_format, cli.debug) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("purple-oci: cannot open log file: {e}");
            return ExitCode::from(1);
        }
    };
    match dispatch(cli) {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            let msg = one_line(&e);
            if !logger.is_stderr() {
                logger.write(tracing::Level::ERROR, &msg);
            }
            eprintln!("purple-oci: {}", lines_for_terminal(&msg));
            ExitCode::from(1)
        }
    }
}
