//! `exec`: run a new process in a running container.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use crate::container::{ExecOptions, Runtime};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// process.json describing the process (instead of ARGS).
    #[arg(short, long)]
    pub process: Option<PathBuf>,
    /// Return once the process started.
    #[arg(short, long)]
    pub detach: bool,
    /// File to write the process's pid to.
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// Unix socket that receives the process's pty master.
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    /// Give the process a terminal.
    #[arg(short, long)]
    pub tty: bool,
    /// Set an environment variable (KEY=VALUE), repeatable.
    #[arg(short, long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Working directory inside the container.
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    /// UID[:GID] to run as.
    #[arg(short, long)]
    pub user: Option<String>,
    /// Additional group IDs, repeatable.
    #[arg(short = 'g', long = "additional-gids")]
    pub additional_gids: Vec<u32>,
    /// Add a capability, repeatable.
    #[arg(short, long)]
    pub cap: Vec<String>,
    /// Set no_new_privs for the process.
    #[arg(long)]
    pub no_new_privs: bool,
    /// Pass N more file descriptors (from 3) to the process.
    #[arg(long, default_value_t = 0)]
    pub preserve_fds: i32,
    /// Accepted for runc compatibility; ignored.
    #[arg(long, hide = true)]
    pub process_label: Option<String>,
    /// Accepted for runc compatibility; ignored.
    #[arg(long, hide = true)]
    pub apparmor: Option<String>,
    pub container_id: String,
    /// The command and its arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

fn parse_user(raw: &str) -> Result<(u32, Option<u32>)> {
    let bad = || format!("invalid --user {raw:?}: use UID or UID:GID (numbers)");
    let (u, g) = match raw.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (raw, None),
    };
    let uid = u.parse().with_context(bad)?;
    let gid = g.map(|g| g.parse()).transpose().with_context(bad)?;
    Ok((uid, gid))
}

pub fn exec(args: Args, rt: &Runtime) -> Result<i32> {
    let id = super::container_id(&args.container_id)?;
    if args.process.is_none() && args.args.is_empty() {
        bail!("exec needs a command, or a process.json with --process");
    }
    let env = args
        .env
        .iter()
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => Ok((k.to_owned(), v.to_owned())),
            None => bail!("invalid --env {kv:?}: use KEY=VALUE"),
        })
        .collect::<Result<_>>()?;
    let opts = ExecOptions {
        process: args.process,
        args: args.args,
        env,
        cwd: args.cwd,
        tty: args.tty,
        user: args.user.as_deref().map(parse_user).transpose()?,
        additional_gids: args.additional_gids,
        caps: args.cap,
        no_new_privs: args.no_new_privs,
        detach: args.detach,
        pid_file: args.pid_file,
        console_socket: args.console_socket,
        preserve_fds: args.preserve_fds,
    };
    let pid = rt
        .exec(&id, &opts)
        .with_context(|| format!("cannot exec in container \"{id}\""))?;
    if opts.detach {
        return Ok(0);
    }
    Ok(crate::foreground::wait(pid, &|| ())?)
}
