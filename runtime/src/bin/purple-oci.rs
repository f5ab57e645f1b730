//! `purple-oci`: Purple's runc-compatible OCI runtime.

use std::process::ExitCode;

use clap::Parser;
use purple_runtime::escape::lines_for_terminal;
use purple_runtime::logging::{self, one_line};
use purple_runtime::oci::{dispatch, Cli};

fn main() -> ExitCode {
    purple_runtime::supervisor::remember_binary();
    let cli = Cli::parse();
    // A process inside the container can reach this binary through
    // /proc/<pid>/exe while we are in its namespaces (CVE-2019-5736): run from a
    // sealed memfd copy, but only for commands that enter a container.
    if cli.command.enters_container() {
        if let Err(e) = pentacle::ensure_sealed() {
            eprintln!("purple-oci: cannot seal the runtime binary: {e}");
            return ExitCode::from(1);
        }
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
