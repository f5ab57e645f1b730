//! `purple stop ID`: SIGTERM to every process of the sandbox, SIGKILL after
//! the grace period, then the sandbox is deleted with all it made.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use libcontainer::container::ContainerStatus;

use crate::container::Runtime;
use crate::id::ContainerId;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Seconds to wait after SIGTERM before SIGKILL.
    #[arg(short, long, default_value_t = 10, value_name = "SECONDS")]
    pub time: u64,
    /// The sandbox (`purple ps`).
    pub id: String,
}

/// Whether the sandbox's processes are all gone (or the sandbox is).
fn ended(rt: &Runtime, id: &ContainerId) -> bool {
    rt.load(id)
        .map_or(true, |c| c.status() == ContainerStatus::Stopped)
}

fn wait_until(deadline: Instant, done: impl Fn() -> bool) -> bool {
    while !done() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

pub fn stop(args: Args, root: &Path) -> Result<i32> {
    let (rt, id, launch) = super::sandbox::find(root, &args.id)?;
    if !ended(&rt, &id) {
        // A process that exits between the check and the signal is not an error.
        let _ = rt.kill(&id, libc::SIGTERM, true);
        let grace = Instant::now() + Duration::from_secs(args.time);
        if !wait_until(grace, || ended(&rt, &id)) {
            let _ = rt.kill(&id, libc::SIGKILL, true);
            wait_until(Instant::now() + Duration::from_secs(5), || ended(&rt, &id));
        }
    }
    if launch.output_limit.is_none() {
        // A foreground sandbox belongs to its `purple run`, which deletes it
        // (and prints its exit line) once its agent is gone: give it the chance.
        wait_until(Instant::now() + Duration::from_secs(5), || !rt.exists(&id));
    }
    rt.delete(&id, true)
        .with_context(|| format!("cannot delete sandbox \"{id}\""))?;
    println!("{id}");
    Ok(0)
}
