//! `purple translate`: a policy and a command → an OCI bundle any runtime runs.

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use purple_policy::translate::{self, Process};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Profile name or policy file.
    pub policy: String,
    /// Bundle directory to write (created if missing).
    #[arg(short, long, value_name = "DIR")]
    pub output: PathBuf,
    /// Root filesystem to use; default: an empty `rootfs/` in the bundle,
    /// filled by the policy's binds.
    #[arg(long, value_name = "DIR")]
    pub rootfs: Option<PathBuf>,
    /// The command and its arguments.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

pub fn translate(args: Args) -> Result<i32> {
    let loaded = super::policy::load(&args.policy)?;
    let rootfs = match &args.rootfs {
        Some(r) => r
            .canonicalize()
            .with_context(|| format!("--rootfs {}", r.display()))?,
        None => PathBuf::from("rootfs"),
    };
    let process = Process {
        args: args.command,
        env: Vec::new(),
        terminal: false,
    };
    let spec = translate::spec(&loaded.policy, &process, &rootfs)?;
    super::bundle_dir::write_bundle(&loaded.policy, &spec, &args.output)
        .with_context(|| format!("cannot write bundle {}", args.output.display()))?;
    println!("{}", args.output.display());
    Ok(0)
}
