//! `update`: new resource limits (OCI LinuxResources JSON) for a live container.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{LinuxPidsBuilder, LinuxResources, LinuxResourcesBuilder};

use crate::container::Runtime;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// LinuxResources JSON file, or - for stdin.
    #[arg(short, long)]
    pub resources: Option<PathBuf>,
    /// Maximum number of processes.
    #[arg(long)]
    pub pids_limit: Option<i64>,
    pub container_id: String,
}

pub fn update(args: Args, rt: &Runtime) -> Result<i32> {
    let id = super::container_id(&args.container_id)?;
    let res: LinuxResources = match (&args.resources, args.pids_limit) {
        (Some(p), _) if p.as_os_str() == "-" => {
            serde_json::from_reader(std::io::stdin()).context("invalid resources JSON on stdin")?
        }
        (Some(p), _) => {
            let f =
                std::fs::File::open(p).with_context(|| format!("cannot open {}", p.display()))?;
            serde_json::from_reader(f)
                .with_context(|| format!("invalid resources JSON in {}", p.display()))?
        }
        (None, Some(limit)) => LinuxResourcesBuilder::default()
            .pids(LinuxPidsBuilder::default().limit(limit).build()?)
            .build()?,
        (None, None) => bail!("nothing to update: give --resources FILE|- or --pids-limit N"),
    };
    rt.update(&id, &res)?;
    Ok(0)
}
