//! The container's cgroup mounts, read-only when the spec says so.
//!
//! libcontainer 0.7 replaces the spec's `cgroup` mount by a tmpfs plus one
//! mount per v1 controller, all read-write whatever the spec's options say:
//! a container with no capability at all could raise its own `pids.max` or
//! memory limit, or create child cgroups. runc honours `ro`. Purple makes
//! every mount under the destination read-only itself, after libcontainer
//! built the mount namespace and before the container's program runs: a thread
//! enters the container's mount namespace and sets the attribute recursively
//! with `mount_setattr(2)` (which changes that one flag and nothing else).

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::sched::{setns, unshare, CloneFlags};
use oci_spec::runtime::Spec;

#[derive(Debug, thiserror::Error)]
#[error("cannot make the container's cgroup mount {path} read-only: {source}")]
pub struct CgroupMountError {
    path: PathBuf,
    source: io::Error,
}

/// Destinations of the spec's cgroup mounts that ask for `ro`.
pub fn readonly_destinations(spec: &Spec) -> Vec<PathBuf> {
    spec.mounts()
        .iter()
        .flatten()
        .filter(|m| matches!(m.typ().as_deref(), Some("cgroup" | "cgroup2")))
        .filter(|m| m.options().iter().flatten().any(|o| o == "ro"))
        .map(|m| m.destination().clone())
        .collect()
}

/// Makes every mount at or under each of `destinations` read-only in the mount
/// namespace of `pid` (the container's init, still blocked before exec).
pub fn make_readonly(pid: i32, destinations: &[PathBuf]) -> Result<(), CgroupMountError> {
    if destinations.is_empty() {
        return Ok(());
    }
    let ns_path = PathBuf::from(format!("/proc/{pid}/ns/mnt"));
    let err = |path: &Path| {
        let path = path.to_owned();
        move |source| CgroupMountError { path, source }
    };
    let ns = File::open(&ns_path).map_err(err(&ns_path))?;
    let destinations = destinations.to_vec();
    // setns(CLONE_NEWNS) needs a task that shares its filesystem context with
    // no other: a thread of its own that unshares it, and dies afterwards.
    std::thread::spawn(move || -> Result<(), CgroupMountError> {
        unshare(CloneFlags::CLONE_FS).map_err(|e| err(&ns_path)(e.into()))?;
        setns(&ns, CloneFlags::CLONE_NEWNS).map_err(|e| err(&ns_path)(e.into()))?;
        // Paths now resolve from the container's root.
        for dest in &destinations {
            setattr_readonly(dest).map_err(err(dest))?;
        }
        Ok(())
    })
    .join()
    .unwrap_or_else(|_| {
        Err(CgroupMountError {
            path: PathBuf::from("/"),
            source: io::Error::other("the remount thread panicked"),
        })
    })
}

fn setattr_readonly(path: &Path) -> io::Result<()> {
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // Opened without following a final symlink the image may have planted.
    let dir = nix::fcntl::open(
        c_path.as_c_str(),
        nix::fcntl::OFlag::O_PATH
            | nix::fcntl::OFlag::O_NOFOLLOW
            | nix::fcntl::OFlag::O_DIRECTORY
            | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )?;
    // SAFETY: dir is an fd this thread owns; closed below.
    let dir = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(dir) };
    let attr = libc::mount_attr {
        attr_set: libc::MOUNT_ATTR_RDONLY,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: mount_setattr reads `attr` (of the size given) and the empty path.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            dir.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH | libc::AT_RECURSIVE,
            &attr as *const libc::mount_attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
