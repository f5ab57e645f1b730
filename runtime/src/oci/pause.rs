//! `pause`: freeze every process of a running container.

use anyhow::Result;

use crate::container::Runtime;

#[derive(clap::Args, Debug)]
pub struct Args {
    pub container_id: String,
}

pub fn pause(args: Args, rt: &Runtime) -> Result<i32> {
    rt.pause(&super::container_id(&args.container_id)?)?;
    Ok(0)
}
