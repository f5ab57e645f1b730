//! `delete`: remove a container and everything Purple created for it.

use anyhow::Result;

use crate::container::Runtime;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Kill a running container first; clean up a half-created one.
    #[arg(short, long)]
    pub force: bool,
    pub container_id: String,
}

pub fn delete(args: Args, rt: &Runtime) -> Result<i32> {
    rt.delete(&super::container_id(&args.container_id)?, args.force)?;
    Ok(0)
}
