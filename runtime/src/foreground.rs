//! Waiting for a foreground container process, forwarding signals to it as
//! runc does, and turning its end into an exit code.

use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::wait::{waitid, waitpid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use anyhow::Context;

use crate::container::{CreateOptions, LifecycleError, Runtime};
use crate::id::ContainerId;

/// Shell convention: a process killed by signal N exits 128+N.
pub fn exit_code(status: WaitStatus) -> Option<i32> {
    match status {
        WaitStatus::Exited(_, code) => Some(code),
        WaitStatus::Signaled(_, sig, _) => Some(128 + sig as i32),
        _ => None,
    }
}

/// Reaps children until `pid` ends; returns its exit code. `before_reap`
/// runs once `pid` has exited but is still a zombie (others may read its
/// status in /proc meanwhile).
fn reap(pid: Pid, before_reap: &dyn Fn()) -> nix::Result<Option<i32>> {
    let peek = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
    if matches!(
        waitid(Id::Pid(pid), peek),
        Ok(WaitStatus::Exited(..) | WaitStatus::Signaled(..))
    ) {
        before_reap();
    }
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(nix::errno::Errno::ECHILD) => return Ok(None),
            Ok(status) if status.pid() == Some(pid) => {
                if let Some(code) = exit_code(status) {
                    return Ok(Some(code));
                }
            }
            Ok(_) => {}
            Err(e) => return Err(e),
        }
    }
}

/// Blocks until child `pid` exits, forwarding every other signal to it;
/// `before_reap` as in [`reap`].
pub fn wait(pid: Pid, before_reap: &dyn Fn()) -> nix::Result<i32> {
    let all = SigSet::all();
    all.thread_block()?;
    // SIGCHLD may have come before the block and been discarded: look first.
    if let Some(code) = reap(pid, before_reap)? {
        return Ok(code);
    }
    loop {
        match all.wait()? {
            Signal::SIGCHLD => {
                if let Some(code) = reap(pid, before_reap)? {
                    return Ok(code);
                }
            }
            // Terminal resizes and Go runtime preemption are not the container's business.
            Signal::SIGWINCH | Signal::SIGURG => {}
            sig => {
                if let Err(e) = kill(pid, sig) {
                    tracing::warn!("cannot forward {sig} to {pid}: {e}");
                }
            }
        }
    }
}

/// A container `run` created: deleted (`--force`) when dropped, so that no
/// error between create and the end of the run leaves it behind. The one
/// sequence of `purple-oci run` and `purple run`: create, start, wait in the
/// foreground, delete.
pub struct Run<'a> {
    rt: &'a Runtime,
    id: ContainerId,
    pid: Pid,
    armed: bool,
}

impl<'a> Run<'a> {
    pub fn create(rt: &'a Runtime, id: &ContainerId, opts: &CreateOptions) -> anyhow::Result<Self> {
        let container = rt
            .create(id, opts)
            .with_context(|| format!("cannot create container \"{id}\""))?;
        // Armed before anything else can fail.
        let mut run = Self {
            rt,
            id: id.clone(),
            pid: Pid::from_raw(0),
            armed: true,
        };
        run.pid = container.pid().context("container has no init pid")?;
        Ok(run)
    }

    pub fn start(&self) -> Result<(), LifecycleError> {
        self.rt.start(&self.id).map(drop)
    }

    /// Blocks until init exits (signals forwarded, see [`wait`]); the
    /// supervisor reads init's status from the zombie for `exited`.
    pub fn wait(&self) -> nix::Result<i32> {
        wait(self.pid, &|| self.rt.await_supervisor(&self.id))
    }

    /// Deletes the container now, reporting a failure.
    pub fn delete(mut self) -> Result<(), LifecycleError> {
        self.armed = false;
        self.rt.delete(&self.id, true)
    }

    /// Leaves the container running (`run --detach`).
    pub fn detach(mut self) {
        self.armed = false;
    }
}

impl Drop for Run<'_> {
    fn drop(&mut self) {
        if self.armed {
            if let Err(e) = self.rt.delete(&self.id, true) {
                tracing::warn!("cannot delete container \"{}\": {e}", self.id);
            }
        }
    }
}
