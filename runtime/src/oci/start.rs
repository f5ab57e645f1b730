//! `start`: let a created container's process run.

use anyhow::Result;

use crate::container::Runtime;

#[derive(clap::Args, Debug)]
pub struct Args {
    pub container_id: String,
}

pub fn start(args: Args, rt: &Runtime) -> Result<i32> {
    rt.start(&super::container_id(&args.container_id)?)?;
    Ok(0)
}
