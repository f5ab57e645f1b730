//! `create`: set up a container whose process waits for `start`.

use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::container::{CreateOptions, Runtime};

/// Flags `create` and `run` share.
#[derive(clap::Args, Debug)]
pub struct InitArgs {
    /// Path to the bundle directory (holds config.json).
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    /// Unix socket that receives the container's pty master.
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    /// File to write the init process's pid to.
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// Do not use pivot_root (for ramdisk roots).
    #[arg(long)]
    pub no_pivot: bool,
    /// Do not create a new session keyring.
    #[arg(long)]
    pub no_new_keyring: bool,
    /// Pass N more file descriptors (from 3) to the container.
    #[arg(long, default_value_t = 0)]
    pub preserve_fds: i32,
}

impl InitArgs {
    pub(super) fn options(&self, detach: bool) -> CreateOptions {
        CreateOptions {
            bundle: self.bundle.clone(),
            pid_file: self.pid_file.clone(),
            console_socket: self.console_socket.clone(),
            no_pivot: self.no_pivot,
            preserve_fds: self.preserve_fds,
            detach,
            // runc's contract: a container outlives the command that made it.
            tied_to_caller: false,
            launch: None,
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub init: InitArgs,
    pub container_id: String,
}

pub fn create(args: Args, rt: &Runtime) -> Result<i32> {
    let id = super::container_id(&args.container_id)?;
    rt.create(&id, &args.init.options(true))
        .with_context(|| format!("cannot create container \"{id}\""))?;
    Ok(0)
}
