//! Processes named by pid *and* start time, held by pidfd.
//!
//! A recorded pid outlives its process: once the container's init exits and
//! is reaped, the kernel hands the number to the next fork, on the host too.
//! Like runc, Purple records init's start time (field 22 of
//! `/proc/<pid>/stat`, clock ticks since boot) and treats a pid whose start
//! time differs as a process that is gone. To act on it without a window, it
//! opens a pidfd first and checks the start time afterwards: if the check
//! passes, the pidfd names the recorded process (a process created after
//! the open cannot have the recorded start time), and signals go through the
//! pidfd, never through the number.

use std::fs;
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};

use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

/// Fields 3 (state) onwards of `/proc/<pid>/stat`; None once the pid is free.
fn stat(pid: i32) -> Option<Vec<String>> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: fields
    // after it start behind the last ')', with field 3 first.
    let rest = &stat[stat.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// Field `n` (numbered as in proc(5)) of `/proc/<pid>/stat`.
fn stat_field(fields: &[String], n: usize) -> Option<&str> {
    fields.get(n.checked_sub(3)?).map(String::as_str)
}

/// Field 22 (`starttime`) of `/proc/<pid>/stat`; None once the pid is free.
pub fn start_time(pid: i32) -> Option<u64> {
    stat_field(&stat(pid)?, 22)?.parse().ok()
}

/// Whether `pid` is a zombie (exited, not reaped yet); false once it is free.
/// Device and inode of the program `pid` runs (`/proc/<pid>/exe`): it
/// changes when the process execs another program.
pub fn exe_id(pid: i32) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = fs::metadata(format!("/proc/{pid}/exe")).ok()?;
    Some((m.dev(), m.ino()))
}

pub fn is_zombie(pid: i32) -> bool {
    stat(pid).is_some_and(|f| stat_field(&f, 3) == Some("Z"))
}

/// The wait status of `pid` while it is a zombie (field 52, `exit_code`).
pub fn zombie_status(pid: i32) -> Option<i32> {
    let fields = stat(pid)?;
    if stat_field(&fields, 3)? != "Z" {
        return None;
    }
    stat_field(&fields, 52)?.parse().ok()
}

/// A pidfd for `pid`, whatever process holds it now.
pub fn open(pid: i32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open(2) takes no pointers; a valid fd is ours to own.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    // SAFETY: as above.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// A pidfd for the process `pid` that started at `start`; None when that
/// process is gone (the pid free or someone else's).
pub fn open_verified(pid: i32, start: u64) -> Option<OwnedFd> {
    let fd = open(pid)?;
    (start_time(pid) == Some(start)).then_some(fd)
}

/// Waits up to `timeout` for the process behind `fd` to exit (a pidfd is
/// readable from that moment); false if it still runs.
pub fn wait_exit(fd: &OwnedFd, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let mut p = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        match poll(
            &mut p,
            PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX),
        ) {
            Ok(n) => return n > 0,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return false,
        }
    }
}

/// Whether the process behind `fd` has exited (a pidfd polls readable then).
pub fn exited(fd: &OwnedFd) -> bool {
    let mut p = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
    poll(&mut p, PollTimeout::ZERO).is_ok_and(|n| n > 0)
}

/// Sends `signal` to the process behind `fd`; a process already gone is fine.
pub fn send_signal(fd: &OwnedFd, signal: i32) -> io::Result<()> {
    // SAFETY: pidfd_send_signal(2) with a null siginfo and no flags.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd.as_raw_fd(),
            signal,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    let err = io::Error::last_os_error();
    if rc == 0 || err.raw_os_error() == Some(libc::ESRCH) {
        Ok(())
    } else {
        Err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_names_one_process() {
        let me = std::process::id() as i32;
        let start = start_time(me).expect("own start time");
        assert!(open_verified(me, start).is_some());
        assert!(open_verified(me, start + 1).is_none());
        let fd = open(me).unwrap();
        assert!(!exited(&fd));
    }

    #[test]
    fn a_reaped_process_is_gone_and_its_pidfd_readable() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let fd = open(pid).unwrap();
        let start = start_time(pid).unwrap();
        let mine = start_time(std::process::id() as i32).unwrap();
        assert!(start >= mine, "{start} < {mine}");
        send_signal(&fd, libc::SIGKILL).unwrap();
        child.wait().unwrap();
        assert!(exited(&fd));
        assert_eq!(start_time(pid), None);
        send_signal(&fd, libc::SIGKILL).unwrap();
    }
}
