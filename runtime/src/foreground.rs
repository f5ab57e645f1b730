//! Waiting for a foreground container process, forwarding signals to it as
//! runc does, and turning its end into an exit code.

use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

/// Shell convention: a process killed by signal N exits 128+N.
pub fn exit_code(status: WaitStatus) -> Option<i32> {
    match status {
        WaitStatus::Exited(_, code) => Some(code),
        WaitStatus::Signaled(_, sig, _) => Some(128 + sig as i32),
        _ => None,
    }
}

/// Reaps children until `pid` ends; returns its exit code.
fn reap(pid: Pid) -> nix::Result<Option<i32>> {
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

/// Blocks until child `pid` exits, forwarding every other signal to it.
pub fn wait(pid: Pid) -> nix::Result<i32> {
    let all = SigSet::all();
    all.thread_block()?;
    // SIGCHLD may have come before the block and been discarded: look first.
    if let Some(code) = reap(pid)? {
        return Ok(code);
    }
    loop {
        match all.wait()? {
            Signal::SIGCHLD => {
                if let Some(code) = reap(pid)? {
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
