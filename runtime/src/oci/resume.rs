//! `resume`: thaw a paused container.

use anyhow::Result;

use crate::container::Runtime;

#[derive(clap::Args, Debug)]
pub struct Args {
    pub container_id: String,
}

pub fn resume(args: Args, rt: &Runtime) -> Result<i32> {
    rt.resume(&super::container_id(&args.container_id)?)?;
    Ok(0)
}
