//! `purple logs ID`: what a detached sandbox (`purple run -d`) wrote to its
//! stdout and stderr, kept by its supervisor up to a limit.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use libcontainer::container::ContainerStatus;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Keep printing what arrives until the sandbox has stopped.
    #[arg(short, long)]
    pub follow: bool,
    /// The sandbox (`purple ps`).
    pub id: String,
}

/// Copies what `file` holds from its current offset; returns the bytes copied.
fn copy_new(file: &mut File, out: &mut impl Write) -> io::Result<u64> {
    let mut buf = [0u8; 64 * 1024];
    let mut total = 0;
    loop {
        match file.read(&mut buf)? {
            0 => return Ok(total),
            n => {
                out.write_all(&buf[..n])?;
                total += n as u64;
            }
        }
    }
}

pub fn logs(args: Args, root: &Path) -> Result<i32> {
    let (rt, id, launch) = super::sandbox::find(root, &args.id)?;
    if launch.output_limit.is_none() {
        bail!(
            "\"{id}\" runs in the foreground: its output goes to the terminal of its \
             `purple run`; only sandboxes started with `purple run -d` keep it for purple logs"
        );
    }
    let path = rt.output_log(&id);
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
        .with_context(|| format!("cannot read the output of \"{id}\" ({})", path.display()))?;
    let mut out = io::stdout().lock();
    copy_new(&mut file, &mut out)?;
    if args.follow {
        loop {
            let stopped = rt
                .load(&id)
                .map_or(true, |c| c.status() == ContainerStatus::Stopped);
            if stopped {
                // The supervisor takes the pipe's last bytes before it exits.
                rt.await_supervisor(&id);
            } else {
                out.flush()?;
                std::thread::sleep(Duration::from_millis(100));
            }
            copy_new(&mut file, &mut out)?;
            if stopped {
                break;
            }
        }
    }
    out.flush()?;
    Ok(0)
}
