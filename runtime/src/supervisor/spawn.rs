//! Starting, signalling and stopping the supervisor process from the
//! lifecycle commands.

use std::os::fd::RawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::plan::MAX_FDS;
use super::{handled_signals, STARTED};
use crate::pidfd;

/// The binary the supervisor runs: the file on disk, not the sealed copy.
/// The supervisor never enters the container (only a thread of it enters
/// the network namespace, which gives no view of host processes), so it needs
/// no protection against /proc/<pid>/exe overwrites (CVE-2019-5736); running
/// the copy would keep a private 11 MiB memfd alive per container for as long
/// as the supervisor lives, where the file's pages are shared by every
/// supervisor through the page cache.
fn binary() -> PathBuf {
    crate::sealed::on_disk()
}

/// Starts the supervisor of the plan at `plan` as a daemon (own session, no
/// stdio, no inherited fds but `fds`, which become 3, 4, ... in order, as
/// [`super::plan::Fds::assign`] numbered them: an engine waiting for
/// `create`'s pipes to close must not wait for it).
pub fn spawn(plan: &Path, fds: &[RawFd]) -> std::io::Result<u32> {
    if fds.len() > MAX_FDS {
        return Err(std::io::Error::other("too many fds for the supervisor"));
    }
    let mut cmd = Command::new(binary());
    cmd.arg("supervise").arg("--plan").arg(plan);
    let fds = fds.to_vec();
    let mask = handled_signals();
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            libc::setsid();
            // Out of the way first: a source may sit on a target number.
            // (A fixed array: no allocation between fork and exec.)
            let mut high = [-1; MAX_FDS];
            for (h, &fd) in high.iter_mut().zip(&fds) {
                *h = libc::fcntl(fd, libc::F_DUPFD, 100);
            }
            for (i, &fd) in high[..fds.len()].iter().enumerate() {
                if fd < 0 || libc::dup2(fd, 3 + i as RawFd) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            libc::syscall(libc::SYS_close_range, 3 + fds.len() as u32, u32::MAX, 0u32);
            mask.thread_block().map_err(std::io::Error::from)?;
            Ok(())
        });
    }
    Ok(cmd.spawn()?.id())
}

/// Whether `pid` is still the supervisor started from `plan` (pids get
/// reused): its command line is exactly `BIN supervise --plan PLAN`.
fn is_ours(pid: u32, plan: &Path) -> bool {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    matches!(
        args.as_slice(),
        [_, b"supervise", b"--plan", p, b""] if *p == plan.as_os_str().as_encoded_bytes()
    )
}

/// Whether the supervisor `pid` started from `plan` is still running.
pub fn running(pid: u32, plan: &Path) -> bool {
    is_ours(pid, plan) && !pidfd::is_zombie(pid as i32)
}

/// Tells the supervisor `pid` started from `plan` that the session started
/// (its wall-clock budget counts from now).
pub fn started(pid: u32, plan: &Path) {
    if is_ours(pid, plan) {
        // SAFETY: kill(2) on a pid whose cmdline we just checked.
        unsafe { libc::kill(pid as i32, STARTED as i32) };
    }
}

/// How long a supervisor told to stop may take to write its last records
/// (each fsynced) before it is killed: generous, because on a host whose disk
/// is saturated an fsync can take seconds, and records lost to SIGKILL are
/// gone from the trail.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// Stops the supervisor `pid` started from `plan` (if it is still that
/// process) and waits for it, so its last records are on disk.
pub fn stop(pid: u32, plan: &Path) {
    // A supervisor deleting its own container stops by returning.
    if pid == std::process::id() || !is_ours(pid, plan) {
        return;
    }
    // SAFETY: kill(2) on a pid whose cmdline we just checked.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    if !wait_exit(pid, plan, STOP_GRACE) {
        // SAFETY: as above.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    }
}

/// Waits up to `timeout` for the supervisor `pid` started from `plan` to
/// exit by itself (it does once the container's cgroup is empty and its
/// records written); false if it is still running. Waits on a pidfd, which
/// is readable from the moment the process exits, rather than polling /proc.
pub fn wait_exit(pid: u32, plan: &Path, timeout: Duration) -> bool {
    // Opened before the check: the pidfd keeps naming this process even if
    // the pid is reused after it is reaped.
    let Some(fd) = pidfd::open(pid as i32) else {
        return true;
    };
    if !is_ours(pid, plan) || pidfd::is_zombie(pid as i32) {
        return true;
    }
    pidfd::wait_exit(&fd, timeout)
}
