//! `run`: create and start a container, then wait for it and delete it
//! (unless --detach). `run DIR/` runs a bundle under a generated ID.

use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::container::Runtime;
use crate::id::ContainerId;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub init: super::create::InitArgs,
    /// Return once the container started; do not wait or delete it.
    #[arg(short, long)]
    pub detach: bool,
    /// Container ID, or a bundle directory (contains '/') to run under a generated ID.
    pub container_id: String,
}

pub fn run(mut args: Args, rt: &Runtime) -> Result<i32> {
    // IDs never contain '/', so an argument with one can only be a bundle path.
    let id = if args.container_id.contains('/') {
        args.init.bundle = PathBuf::from(&args.container_id);
        ContainerId::generate("purple")
    } else {
        super::container_id(&args.container_id)?
    };
    let opts = args.init.options(args.detach);
    let container = rt
        .create(&id, &opts)
        .with_context(|| format!("cannot create container \"{id}\""))?;
    if let Err(e) = rt.start(&id) {
        let _ = rt.delete(&id, true);
        return Err(e.into());
    }
    if args.detach {
        if args.container_id.contains('/') {
            println!("{id}");
        }
        return Ok(0);
    }
    let pid = container.pid().context("container has no init pid")?;
    // The supervisor reads init's status from the zombie for `exited`.
    let code = crate::foreground::wait(pid, &|| rt.await_supervisor(&id));
    rt.delete(&id, true)?;
    Ok(code?)
}
