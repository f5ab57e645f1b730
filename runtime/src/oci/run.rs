//! `run`: create and start a container, then wait for it and delete it
//! (unless --detach). `run DIR/` runs a bundle under a generated ID.

use std::path::PathBuf;

use anyhow::Result;

use crate::container::Runtime;
use crate::foreground::Run;
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
    let run = Run::create(rt, &id, &opts)?;
    run.start()?;
    if args.detach {
        run.detach();
        if args.container_id.contains('/') {
            println!("{id}");
        }
        return Ok(0);
    }
    let code = run.wait();
    run.delete()?;
    Ok(code?)
}
