//! `purple`: the command people type. Policies, profiles, `purple run`, the
//! audit trail. Containers themselves go through the same library as
//! `purple-oci`, so both commands see and clean the same state.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

mod audit;

/// Purple: run untrusted AI agents under a policy the kernel enforces.
#[derive(Parser, Debug)]
#[command(name = "purple", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// Directory for container state (the same as purple-oci's --root).
    #[arg(long, global = true, default_value = "/run/purple", value_name = "DIR")]
    pub root: PathBuf,
    /// Log debug output to stderr.
    #[arg(long, global = true)]
    pub debug: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Read, check and summarise audit logs.
    Audit(audit::Args),
}

/// Runs one command; returns the process exit code.
pub fn dispatch(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::Audit(a) => audit::audit(a, &cli.root),
    }
}
