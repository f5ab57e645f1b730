//! `purple-oci`: the OCI runtime command line, flag for flag what podman/conmon,
//! containerd's runc v2 shim and the OCI validation suite call.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::container::Runtime;
use crate::logging::LogFormat;

mod create;
mod delete;
mod events;
mod exec;
mod features;
mod kill;
mod list;
mod pause;
mod ps;
mod resume;
mod run;
mod spec;
mod start;
mod state;
mod update;

/// Purple's OCI runtime: runc-compatible containers for untrusted AI agents.
#[derive(Parser, Debug)]
#[command(name = "purple-oci", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// Directory for container state (must be the same for every call).
    #[arg(long, global = true, default_value = "/run/purple", value_name = "DIR")]
    pub root: PathBuf,
    /// Write log lines to FILE instead of stderr.
    #[arg(long, global = true, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// Log line format (json: runc's `{"level","msg","time"}` lines).
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Manage cgroups through systemd (cgroupsPath is then slice:prefix:name).
    #[arg(long, global = true)]
    pub systemd_cgroup: bool,
    /// Take audit alert targets (a command, a socket, a URL, which root runs
    /// or reaches) from bundle annotations. Only where every bundle author
    /// is trusted as root.
    #[arg(long, global = true)]
    pub annotation_alerts: bool,
    /// The node's configuration: default profile, honoured annotations and
    /// the floor annotations may only tighten (read by create and run).
    #[arg(long, global = true, value_name = "FILE", env = "PURPLE_NODE_CONFIG", default_value = purple_policy::node::NODE_CONFIG)]
    pub node_config: PathBuf,
    /// Log debug output, libcontainer's included.
    #[arg(long, global = true)]
    pub debug: bool,
    /// Accepted for runc compatibility (`--rootless`, `--rootless=auto`); ignored.
    #[arg(long, global = true, hide = true, value_name = "VALUE", num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub rootless: Option<String>,
    /// Accepted for runc compatibility; ignored.
    #[arg(long, global = true, hide = true, value_name = "PATH")]
    pub criu: Option<String>,
    /// Accepted for runc compatibility; ignored.
    #[arg(long, global = true, hide = true, value_name = "MANAGER")]
    pub cgroup_manager: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a container from a bundle; its process waits for `start`.
    Create(create::Args),
    /// Run the process of a created container.
    Start(start::Args),
    /// Print the state of a container as OCI state JSON.
    State(state::Args),
    /// Send a signal to a container's init process (or all its processes).
    Kill(kill::Args),
    /// Delete a container and everything it owns.
    Delete(delete::Args),
    /// Create and start a container; wait for it unless --detach.
    Run(run::Args),
    /// Run a new process inside a running container.
    Exec(exec::Args),
    /// List the processes of a container.
    Ps(ps::Args),
    /// Freeze every process of a container.
    Pause(pause::Args),
    /// Thaw a paused container.
    Resume(resume::Args),
    /// List containers.
    List(list::Args),
    /// Write a default config.json into a bundle directory.
    Spec(spec::Args),
    /// Print what this runtime supports (OCI features JSON).
    Features,
    /// Print container events and resource statistics.
    Events(events::Args),
    /// Change the resource limits of a running container.
    Update(update::Args),
    /// The per-container supervisor (started by create; not for people).
    #[command(hide = true)]
    Supervise(crate::supervisor::SuperviseArgs),
    /// Print a shell completion script: `source <(purple-oci completions bash)`.
    Completions(crate::manual::CompletionsArgs),
    /// Write man pages into a directory (scripts/setup.sh installs them).
    #[command(hide = true)]
    Man(crate::manual::ManArgs),
}

impl Command {
    /// Commands that fork a process into a container: only these need the
    /// sealed view of the binary (CVE-2019-5736), which costs a re-exec.
    pub fn enters_container(&self) -> bool {
        matches!(
            self,
            Command::Create(_) | Command::Run(_) | Command::Exec(_)
        )
    }

    /// Commands that only read and print ([`crate::signal::die_with_closed_stdout`]).
    pub fn only_prints(&self) -> bool {
        matches!(
            self,
            Command::State(_)
                | Command::Ps(_)
                | Command::List(_)
                | Command::Features
                | Command::Events(_)
                | Command::Completions(_)
        )
    }
}

/// Runs one command; returns the process exit code.
pub fn dispatch(cli: Cli) -> Result<i32> {
    let mut rt =
        Runtime::new(&cli.root, cli.systemd_cgroup).with_annotation_alerts(cli.annotation_alerts);
    if matches!(cli.command, Command::Create(_) | Command::Run(_)) {
        // A containerd runtime handler is a link named after it (the shim's
        // BinaryName): the name this binary was called by picks its profile.
        let called = std::env::args_os()
            .next()
            .map(PathBuf::from)
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| purple_policy::node::RUNTIME_NAME.into());
        let node = purple_policy::node::Node::load(&cli.node_config)?.for_handler(&called)?;
        rt = rt.with_node(node);
    }
    match cli.command {
        Command::Create(a) => create::create(a, &rt),
        Command::Start(a) => start::start(a, &rt),
        Command::State(a) => state::state(a, &rt),
        Command::Kill(a) => kill::kill(a, &rt),
        Command::Delete(a) => delete::delete(a, &rt),
        Command::Run(a) => run::run(a, &rt),
        Command::Exec(a) => exec::exec(a, &rt),
        Command::Ps(a) => ps::ps(a, &rt),
        Command::Pause(a) => pause::pause(a, &rt),
        Command::Resume(a) => resume::resume(a, &rt),
        Command::List(a) => list::list(a, &rt),
        Command::Spec(a) => spec::spec(a),
        Command::Features => features::features(),
        Command::Events(a) => events::events(a, &rt),
        Command::Update(a) => update::update(a, &rt),
        Command::Supervise(a) => {
            crate::supervisor::supervise(&a)?;
            Ok(0)
        }
        Command::Completions(a) => Ok(crate::manual::completions::<Cli>(&a)?),
        Command::Man(a) => Ok(crate::manual::man_pages::<Cli>(&a)?),
    }
}

/// `--format` of `ps` and `list`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
}

/// Parses a container ID argument with a message that says what is wrong.
pub(crate) fn container_id(raw: &str) -> Result<crate::id::ContainerId> {
    Ok(crate::id::ContainerId::parse(raw)?)
}
