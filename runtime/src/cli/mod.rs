//! `purple`: the command people type. Policies, profiles, `purple run`, the
//! audit trail. Containers themselves go through the same library as
//! `purple-oci`, so both commands see and clean the same state.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

mod audit;
mod bundle_dir;
mod doctor;
mod interp;
mod logs;
mod network;
mod policy;
mod profiles;
mod ps;
mod run;
mod sandbox;
mod stop;
mod translate;
mod undertaker;

/// Purple: run untrusted AI agents in sandboxes whose policy the kernel enforces, and read what they did.
#[derive(Parser, Debug)]
#[command(
    name = "purple",
    version,
    propagate_version = true,
    after_help = "Start here:\n  purple doctor                                          can Purple run here, and what will it enforce?\n  purple run --profile secure-agent -- python3 agent.py  run an agent in a sandbox\n  purple audit summary /var/log/purple/ID.jsonl          what it was refused, by rule"
)]
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

// Parsed once per process: the supervisor's many flags cost nothing to keep inline.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a command under a policy: `purple run --profile secure-agent -- python3 agent.py`.
    Run(run::Args),
    /// The sandboxes of `purple run`: profile, state, pid, age, violations so far.
    Ps(ps::Args),
    /// Stop a sandbox: SIGTERM, SIGKILL after a grace period, then delete it.
    Stop(stop::Args),
    /// The output of a detached sandbox (`purple run -d`).
    Logs(logs::Args),
    /// Write an OCI bundle (config.json) for a policy and a command.
    Translate(translate::Args),
    /// Check policy files or print the effective policy.
    Policy(policy::Args),
    /// List the profiles `--profile` finds.
    Profiles,
    /// Read, check and summarise audit logs.
    Audit(audit::Args),
    /// The per-container supervisor: `run` starts it from this binary.
    #[command(hide = true)]
    Supervise(crate::supervisor::SuperviseArgs),
    /// Deletes what a `purple run` made if it dies before its supervisor
    /// watches it: `run` starts it.
    #[command(hide = true)]
    Undertake(undertaker::Args),
    /// Egress decisions of a container: rule hits and totals.
    Network(network::Args),
    /// Check what Purple needs and what it can enforce on this host (exit 0 ok, 1 degraded, 2 cannot run).
    Doctor(doctor::Args),
    /// Print a shell completion script: `source <(purple completions bash)`.
    Completions(crate::manual::CompletionsArgs),
    /// Write man pages into a directory (scripts/setup.sh installs them).
    #[command(hide = true)]
    Man(crate::manual::ManArgs),
}

impl Command {
    /// Commands that fork a process into a container need the sealed view of
    /// the binary (CVE-2019-5736).
    pub fn enters_container(&self) -> bool {
        matches!(self, Command::Run(_))
    }

    /// Commands that only read and print ([`crate::signal::die_with_closed_stdout`]).
    pub fn only_prints(&self) -> bool {
        matches!(
            self,
            Command::Ps(_)
                | Command::Logs(_)
                | Command::Policy(_)
                | Command::Profiles
                | Command::Audit(_)
                | Command::Network(_)
                | Command::Completions(_)
        )
    }
}

/// Runs one command; returns the process exit code.
pub fn dispatch(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::Run(a) => run::run(a, &cli.root),
        Command::Ps(a) => ps::ps(a, &cli.root),
        Command::Stop(a) => stop::stop(a, &cli.root),
        Command::Logs(a) => logs::logs(a, &cli.root),
        Command::Translate(a) => translate::translate(a),
        Command::Policy(a) => policy::policy(a, &cli.root),
        Command::Profiles => profiles::profiles(),
        Command::Audit(a) => audit::audit(a, &cli.root),
        Command::Undertake(a) => undertaker::undertake(a, &cli.root),
        Command::Supervise(a) => {
            crate::supervisor::supervise(&a)?;
            Ok(0)
        }
        Command::Network(a) => network::network(a, &cli.root),
        Command::Doctor(a) => doctor::doctor(a),
        Command::Completions(a) => Ok(crate::manual::completions::<Cli>(&a)?),
        Command::Man(a) => Ok(crate::manual::man_pages::<Cli>(&a)?),
    }
}
