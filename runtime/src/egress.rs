//! User-mode egress for a container's private network namespace: the
//! runtime starts `slirp4netns` in the caller's namespace, as podman does.
//! slirp4netns makes a tap device inside the container's namespace
//! (`--configure`: 10.0.2.100/24, gateway 10.0.2.2, DNS forwarder 10.0.2.3)
//! and turns the container's packets into ordinary sockets of its own in the
//! caller's namespace: no route, address or NAT rule is added there.
//! `--disable-host-loopback` keeps the caller's loopback out of reach.
//!
//! The helper is the container's: its pid is in the record, `delete` stops
//! it, and it exits by itself when the write end of its `--exit-fd` pipe
//! closes, which the supervisor holds (so a create that dies half-way, or a
//! supervisor that is killed, takes it down too). It runs outside the
//! container's cgroup: its sockets are not the container's, the container's
//! own connects are judged before slirp4netns sees their packets.

use std::fs::{self, File};
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag};
use nix::unistd::{pipe2, Pid};

/// The helper program (Debian package `slirp4netns`).
pub const SLIRP4NETNS: &str = "slirp4netns";
/// The tap device it makes inside the container's namespace.
const TAP: &str = "tap0";
/// The largest MTU slirp4netns takes: fewer, larger packets through user space.
const MTU: &str = "65520";
/// How long slirp4netns gets to configure the tap device.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a stopped helper gets to exit before `delete` gives up on it.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// Set in the helper's environment: `delete` and the leftover checks find
/// it by this mark, never by name alone.
pub const MARK: &str = "PURPLE_SANDBOX";
/// The helper's stderr, next to the record.
pub const LOG_FILE: &str = "slirp4netns.log";

#[derive(Debug, thiserror::Error)]
pub enum EgressError {
    #[error("cannot start {SLIRP4NETNS} for the sandbox's network ({source}); install it (`apt-get install slirp4netns`) or set `network.isolated: true`; `purple doctor` checks the host")]
    Spawn { source: io::Error },
    #[error("{SLIRP4NETNS} did not set up the sandbox's network: {reason}")]
    NotReady { reason: String },
    #[error("user-mode egress needs a network namespace of the container's own (linux.namespaces has `network` with a path, or none)")]
    NoPrivateNetns,
}

/// A running helper: its pid, and the write end of its exit pipe (closing
/// it makes the helper exit).
pub struct Helper {
    pub pid: u32,
    pub exit: OwnedFd,
}

fn pipe() -> Result<(OwnedFd, OwnedFd), EgressError> {
    pipe2(OFlag::O_CLOEXEC).map_err(|e| EgressError::Spawn { source: e.into() })
}

/// The end of the helper's log, for an error message.
fn log_tail(log: &Path) -> String {
    let text = fs::read_to_string(log).unwrap_or_default();
    let last: Vec<&str> = text.lines().rev().take(3).collect();
    match last.is_empty() {
        true => "no message".to_owned(),
        false => last.into_iter().rev().collect::<Vec<_>>().join("; "),
    }
}

/// Starts slirp4netns for the network namespace of `init_pid` (the blocked
/// init) and waits until the tap device is configured. `id` marks it.
pub fn start(id: &str, init_pid: i32, pdir: &Path) -> Result<Helper, EgressError> {
    let log_path = pdir.join(LOG_FILE);
    // Private like everything next to the record.
    let log = std::os::unix::fs::OpenOptionsExt::mode(
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true),
        0o600,
    )
    .open(&log_path)
    .map_err(|source| EgressError::Spawn { source })?;
    let (ready_r, ready_w) = pipe()?;
    let (exit_r, exit_w) = pipe()?;
    let (ready_fd, exit_fd) = (ready_w.as_raw_fd(), exit_r.as_raw_fd());
    let mut cmd = Command::new(SLIRP4NETNS);
    cmd.args(["--configure", "--mtu", MTU, "--disable-host-loopback"])
        .args(["--enable-sandbox", "--enable-seccomp"])
        .arg("--ready-fd=3")
        .arg("--exit-fd=4")
        .arg(init_pid.to_string())
        .arg(TAP)
        .env(MARK, id)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            // Its own session: a terminal's signals to the caller are not its.
            libc::setsid();
            // slirp4netns's sandbox pivots and lazily unmounts its old root;
            // in a mount namespace still sharing the host's propagation that
            // unmount reaches the host (its /run/netns mounts vanished). A
            // namespace of its own, private, keeps that unmount its own.
            if libc::unshare(libc::CLONE_NEWNS) < 0
                || libc::mount(
                    std::ptr::null(),
                    c"/".as_ptr(),
                    std::ptr::null(),
                    libc::MS_REC | libc::MS_PRIVATE,
                    std::ptr::null(),
                ) < 0
            {
                return Err(io::Error::last_os_error());
            }
            let ready = libc::fcntl(ready_fd, libc::F_DUPFD, 10);
            let exit = libc::fcntl(exit_fd, libc::F_DUPFD, 10);
            if ready < 0 || exit < 0 || libc::dup2(ready, 3) < 0 || libc::dup2(exit, 4) < 0 {
                return Err(io::Error::last_os_error());
            }
            libc::syscall(libc::SYS_close_range, 5u32, u32::MAX, 0u32);
            Ok(())
        });
    }
    let child = cmd
        .spawn()
        .map_err(|source| EgressError::Spawn { source })?;
    drop((ready_w, exit_r));
    let helper = Helper {
        pid: child.id(),
        exit: exit_w,
    };
    match wait_ready(ready_r) {
        Ok(()) => Ok(helper),
        Err(reason) => {
            stop(helper.pid, id);
            Err(EgressError::NotReady {
                reason: format!("{reason} ({})", log_tail(&log_path)),
            })
        }
    }
}

/// slirp4netns writes one byte to its ready fd once the tap is configured.
fn wait_ready(ready: OwnedFd) -> Result<(), String> {
    let mut p = [PollFd::new(ready.as_fd(), PollFlags::POLLIN)];
    let timeout = PollTimeout::try_from(READY_TIMEOUT).unwrap_or(PollTimeout::MAX);
    loop {
        match poll(&mut p, timeout) {
            Ok(0) => return Err(format!("not ready after {READY_TIMEOUT:?}")),
            Ok(_) => break,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.to_string()),
        }
    }
    let mut b = [0u8; 1];
    match File::from(ready).read(&mut b) {
        Ok(1) => Ok(()),
        Ok(_) => Err("it exited".to_owned()),
        Err(e) => Err(e.to_string()),
    }
}

/// Whether `pid` is the helper of container `id` (its environment carries the mark).
fn is_ours(pid: u32, id: &str) -> bool {
    let env = fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
    let mark = format!("{MARK}={id}");
    env.split(|b| *b == 0).any(|kv| kv == mark.as_bytes())
}

/// Stops the helper `pid` of container `id` if it still is that process,
/// and waits until it is gone (reaped, when it is this process's child).
pub fn stop(pid: u32, id: &str) {
    // Opened before the check: the pidfd keeps naming this process even if
    // the pid is reused after it is reaped.
    let Some(fd) = crate::pidfd::open(pid as i32) else {
        return;
    };
    if !is_ours(pid, id) {
        // Already exited (its supervisor went first): a zombie has no
        // environment left. Reaped here when it is this process's child.
        if crate::pidfd::is_zombie(pid as i32) {
            let _ = waitpid(Pid::from_raw(pid as i32), Some(WaitPidFlag::WNOHANG));
        }
        return;
    }
    let pid = Pid::from_raw(pid as i32);
    // Nothing to flush: user-mode NAT keeps no state worth a grace period.
    let _ = kill(pid, Signal::SIGKILL);
    if !crate::pidfd::wait_exit(&fd, STOP_TIMEOUT) {
        tracing::warn!("{SLIRP4NETNS} {pid} of {id} still runs after SIGKILL");
        return;
    }
    // Reaped here when `purple run` started it; otherwise its parent is gone
    // and init reaps it.
    let _ = waitpid(pid, Some(WaitPidFlag::WNOHANG));
}

/// Whether the container shares the namespace of whoever creates it: the
/// spec asks for no network namespace at all.
pub fn shares_caller_netns(spec: &oci_spec::runtime::Spec) -> bool {
    !spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|ns| {
            ns.iter()
                .any(|n| n.typ() == oci_spec::runtime::LinuxNamespaceType::Network)
        })
}

/// Whether the spec gives the container a fresh network namespace (one
/// without a path), which user-mode egress needs.
pub fn has_private_netns(spec: &oci_spec::runtime::Spec) -> bool {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|ns| {
            ns.iter().any(|n| {
                n.typ() == oci_spec::runtime::LinuxNamespaceType::Network && n.path().is_none()
            })
        })
}
