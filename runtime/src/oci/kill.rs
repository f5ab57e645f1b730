//! `kill`: send a signal (default TERM) to a container.

use anyhow::Result;

use crate::container::Runtime;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Signal every process in the container's cgroup, not only init.
    #[arg(short, long)]
    pub all: bool,
    pub container_id: String,
    /// A number, a name (TERM, SIGKILL) or RTMIN+n.
    #[arg(default_value = "TERM")]
    pub signal: String,
}

pub fn kill(args: Args, rt: &Runtime) -> Result<i32> {
    let id = super::container_id(&args.container_id)?;
    let signal = crate::signal::parse(&args.signal)?;
    rt.kill(&id, signal, args.all)?;
    Ok(0)
}
