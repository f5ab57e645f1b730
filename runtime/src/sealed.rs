//! The runtime binary and CVE-2019-5736: a process inside the container can
//! reach the binary through /proc/<pid>/exe while the runtime is in its
//! namespaces, so commands that enter a container re-execute themselves from
//! a file that nobody can open for writing. The supervisor runs from the file
//! on disk, whose path is carried across that re-exec.
//!
//! That file is the binary seen through an overlayfs that exists only in this
//! process (runc 1.2's defence): made with `fsopen`/`fsmount`, never attached
//! to any mount namespace, its layers the binary's directory and an empty
//! tmpfs of its own, and no upper layer, so its superblock is read-only and
//! cannot be remounted writable (overlayfs refuses without an upper layer).
//! It costs a mount context instead of a copy of the 11 MiB binary. Where the
//! kernel cannot build it (no overlayfs, or a kernel older than 6.13 that
//! takes no layers by fd), the fallback is pentacle's sealed memfd copy.

use std::ffi::{CStr, CString};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// Carries the runtime binary's path on disk across the re-exec (afterwards
/// /proc/self/exe names the overlay's file or the memfd). libcontainer
/// clears the environment before the container's program runs.
const BINARY_ENV: &str = "PURPLE_RUNTIME_BINARY";

/// Set across the re-exec only: a process that finds it and is still not
/// sealed stops with an error instead of re-executing itself forever.
const REEXEC_ENV: &str = "PURPLE_SEALED_REEXEC";

/// Call first in `main` of both binaries: records where the binary lives on
/// disk, then, for a command that enters a container, re-executes from a
/// file nobody can write. The error is the exit code, already explained on
/// stderr.
pub fn prepare(program: &str, enters_container: bool) -> Result<(), ExitCode> {
    let reexecuted = std::env::var_os(REEXEC_ENV).is_some();
    std::env::remove_var(REEXEC_ENV);
    let sealed = is_sealed();
    if !sealed {
        if let Ok(exe) = std::env::current_exe() {
            std::env::set_var(BINARY_ENV, exe);
        }
    }
    if !enters_container || sealed {
        return Ok(());
    }
    if reexecuted {
        eprintln!(
            "{program}: cannot seal the runtime binary: /proc/self/exe can still be opened for writing after the re-exec"
        );
        return Err(ExitCode::from(1));
    }
    std::env::set_var(REEXEC_ENV, "1");
    // Both only return on failure.
    let overlay = reexec_through_overlay();
    if let Err(e) = pentacle::ensure_sealed() {
        eprintln!(
            "{program}: cannot seal the runtime binary: read-only overlay: {overlay}; sealed copy: {e}"
        );
    }
    Err(ExitCode::from(1))
}

/// The binary on disk (not the sealed view of it).
pub(crate) fn on_disk() -> PathBuf {
    std::env::var_os(BINARY_ENV)
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .unwrap_or_else(|| PathBuf::from("/proc/self/exe"))
}

/// Whether this process runs from a file that cannot be opened for writing:
/// one on a read-only superblock (the kernel answers `EROFS` before it
/// checks anything else; a read-only bind mount of a writable file system
/// does not count, it answers `ETXTBSY` first, and a privileged process could
/// make another, writable, bind of it), or pentacle's sealed memfd.
fn is_sealed() -> bool {
    let write = OpenOptions::new().write(true).open("/proc/self/exe");
    matches!(write, Err(e) if e.raw_os_error() == Some(libc::EROFS)) || pentacle::is_sealed()
}

/// Re-executes this process (same arguments and environment) from the
/// binary seen through a private read-only overlayfs. Returns only on
/// failure.
fn reexec_through_overlay() -> io::Error {
    let exe = match std::env::current_exe().and_then(|exe| open_read_only_view(&exe)) {
        Ok(fd) => fd,
        Err(e) => return e,
    };
    let mut args = std::env::args_os();
    let mut cmd = Command::new(format!("/proc/self/fd/{}", exe.as_raw_fd()));
    if let Some(arg0) = args.next() {
        cmd.arg0(arg0);
    }
    cmd.args(args).exec()
}

/// Opens (`O_PATH`) the file at `exe` through an overlayfs made for this
/// call: nobody else can reach it, and it goes away with the last fd or
/// process that uses it.
fn open_read_only_view(exe: &Path) -> io::Result<OwnedFd> {
    let (Some(dir), Some(name)) = (exe.parent(), exe.file_name()) else {
        return Err(io::Error::other(format!(
            "{} has no directory",
            exe.display()
        )));
    };
    let dir = File::options()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
        .open(dir)?;
    // Without an upper layer overlayfs wants two lower ones. The empty tmpfs
    // is the lower of the two, so it can hide nothing of the binary's
    // directory, and nobody can put a file into it.
    let empty = fs_context(c"tmpfs")?;
    create(&empty)?;
    let empty = mount(&empty, libc::MOUNT_ATTR_RDONLY)?;
    let overlay = fs_context(c"overlay")?;
    set_fd(&overlay, c"lowerdir+", &dir)?;
    set_fd(&overlay, c"lowerdir+", &empty)?;
    // Layers on different file systems would turn on inode number mapping
    // and a kernel log line per call; nothing here needs it.
    let _ = set_string(&overlay, c"xino", c"off");
    create(&overlay)?;
    let root = mount(
        &overlay,
        libc::MOUNT_ATTR_RDONLY | libc::MOUNT_ATTR_NOSUID | libc::MOUNT_ATTR_NODEV,
    )?;
    let name = CString::new(name.as_bytes())?;
    // SAFETY: a valid dirfd and NUL-terminated path; the fd returned is owned.
    let fd = unsafe {
        libc::openat(
            root.as_raw_fd(),
            name.as_ptr(),
            libc::O_PATH | libc::O_CLOEXEC | libc::O_NOFOLLOW,
        )
    };
    owned(fd as libc::c_long)
}

fn owned(ret: libc::c_long) -> io::Result<OwnedFd> {
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this fd to us.
    Ok(unsafe { OwnedFd::from_raw_fd(ret as i32) })
}

fn check(ret: libc::c_long) -> io::Result<()> {
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn fs_context(fs_type: &CStr) -> io::Result<OwnedFd> {
    // SAFETY: NUL-terminated name; returns a new fd or -1.
    owned(unsafe { libc::syscall(libc::SYS_fsopen, fs_type.as_ptr(), libc::FSOPEN_CLOEXEC) })
}

fn set_fd(ctx: &OwnedFd, key: &CStr, fd: &impl AsRawFd) -> io::Result<()> {
    // SAFETY: valid fds and a NUL-terminated key; FSCONFIG_SET_FD takes no value pointer.
    check(unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            ctx.as_raw_fd(),
            libc::FSCONFIG_SET_FD,
            key.as_ptr(),
            std::ptr::null::<libc::c_char>(),
            fd.as_raw_fd(),
        )
    })
}

fn set_string(ctx: &OwnedFd, key: &CStr, value: &CStr) -> io::Result<()> {
    // SAFETY: a valid fd and NUL-terminated strings.
    check(unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            ctx.as_raw_fd(),
            libc::FSCONFIG_SET_STRING,
            key.as_ptr(),
            value.as_ptr(),
            0,
        )
    })
}

fn create(ctx: &OwnedFd) -> io::Result<()> {
    // SAFETY: a valid fd; FSCONFIG_CMD_CREATE takes no key or value.
    check(unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            ctx.as_raw_fd(),
            libc::FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_char>(),
            0,
        )
    })
}

/// A detached mount of the file system `ctx` created: attached nowhere, so
/// no mount namespace (and no mount watcher such as systemd) ever sees it.
fn mount(ctx: &OwnedFd, attrs: u64) -> io::Result<OwnedFd> {
    // SAFETY: a valid fs context fd; returns a new fd or -1.
    owned(unsafe {
        libc::syscall(
            libc::SYS_fsmount,
            ctx.as_raw_fd(),
            libc::FSMOUNT_CLOEXEC,
            attrs,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_overlay_view_is_the_binary_and_refuses_writes() {
        // Needs root (fsopen), as purple-oci does.
        let exe = std::env::current_exe().unwrap();
        let view = open_read_only_view(&exe).unwrap();
        let through = format!("/proc/self/fd/{}", view.as_raw_fd());
        assert_eq!(
            std::fs::read(&through).unwrap(),
            std::fs::read(&exe).unwrap()
        );
        let write = OpenOptions::new().write(true).open(&through).unwrap_err();
        assert_eq!(write.raw_os_error(), Some(libc::EROFS), "{write}");
        // The view is attached to no mount namespace.
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let dev = {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata(&through).unwrap().dev()
        };
        let minor_major = format!(" {}:{} ", libc::major(dev), libc::minor(dev));
        assert!(
            !mounts.contains(&minor_major),
            "overlay visible in mountinfo"
        );
    }

    #[test]
    fn a_path_without_a_directory_is_refused() {
        let e = open_read_only_view(Path::new("/")).unwrap_err();
        assert!(e.to_string().contains("no directory"), "{e}");
    }
}
