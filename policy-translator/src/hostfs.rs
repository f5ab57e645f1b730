//! Host-side file operations on paths someone else could have shaped (an
//! agent's output directory, a bundle author's rootfs, a log path from an
//! annotation). Purple runs as root: a path resolved by name and then used by
//! name lets whoever controls a directory on the way swap in a link between
//! the check and the use. Here every component is opened with `openat2`
//! (`RESOLVE_NO_SYMLINKS`, and `RESOLVE_BENEATH` below a trusted directory)
//! and the work is done on the descriptor (`fstat`, `fchown`, `mkdirat`).

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path};

use crate::schema::IdMap;

/// How a lookup may resolve (a subset of `RESOLVE_*`).
#[derive(Debug, Clone, Copy)]
pub enum Scope {
    /// An absolute path from `/`: no symbolic link anywhere on the way.
    NoLinks,
    /// A path below a directory descriptor: no link, no `..` out of it.
    Beneath,
}

/// `openat2(dir, path, flags, mode)` resolved as `scope` allows.
pub fn openat2(
    dir: RawFd,
    path: &Path,
    flags: i32,
    mode: u32,
    scope: Scope,
) -> io::Result<OwnedFd> {
    let resolve = match scope {
        Scope::NoLinks => libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS,
        Scope::Beneath => {
            libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS | libc::RESOLVE_BENEATH
        }
    };
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path holds a NUL byte"))?;
    // SAFETY: open_how is plain data; zeroed is its documented default.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    how.mode = if flags & libc::O_CREAT != 0 {
        u64::from(mode)
    } else {
        0
    };
    how.resolve = resolve;
    loop {
        // SAFETY: the pointers outlive the call; the size is the struct's.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir,
                c.as_ptr(),
                &how as *const libc::open_how,
                std::mem::size_of::<libc::open_how>(),
            )
        };
        if fd >= 0 {
            // SAFETY: the kernel just returned this descriptor to us.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) });
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EAGAIN) && err.raw_os_error() != Some(libc::EINTR) {
            return Err(err);
        }
    }
}

/// `ELOOP` from `openat2` means a link was refused; say so.
pub fn explain(err: io::Error) -> io::Error {
    match err.raw_os_error() {
        Some(libc::ELOOP) => io::Error::new(
            err.kind(),
            "a symbolic link is on the way (Purple does not follow links here)",
        ),
        Some(libc::EXDEV) => io::Error::new(err.kind(), "the path leaves its directory"),
        _ => err,
    }
}

/// Opens the absolute directory `path` without following any link.
pub fn open_dir(path: &Path) -> io::Result<File> {
    let fd = openat2(
        libc::AT_FDCWD,
        path,
        libc::O_RDONLY | libc::O_DIRECTORY,
        0,
        Scope::NoLinks,
    )
    .map_err(explain)?;
    Ok(File::from(fd))
}

/// Opens directory `name` below `dir`, creating it with `mode` when missing.
/// Each component is a real directory: a link anywhere stops it.
pub fn mkdirs_beneath(dir: &File, rel: &Path, mode: u32) -> io::Result<File> {
    let mut cur = dir.try_clone()?;
    for part in rel.components() {
        let name = match part {
            Component::Normal(n) => Path::new(n),
            Component::CurDir => continue,
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{} is not a plain relative path", rel.display()),
                ))
            }
        };
        let c = CString::new(name.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL byte"))?;
        // SAFETY: mkdirat with a valid descriptor and C string.
        if unsafe { libc::mkdirat(cur.as_raw_fd(), c.as_ptr(), mode) } != 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::AlreadyExists {
                return Err(e);
            }
        }
        let fd = openat2(
            cur.as_raw_fd(),
            name,
            libc::O_RDONLY | libc::O_DIRECTORY,
            0,
            Scope::Beneath,
        )
        .map_err(explain)?;
        cur = File::from(fd);
    }
    Ok(cur)
}

/// Creates the absolute directory `path` and its missing parents (`mode`),
/// following no link, and returns it open.
pub fn mkdirs(path: &Path, mode: u32) -> io::Result<File> {
    let root = open_dir(Path::new("/"))?;
    let rel = path.strip_prefix("/").map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not absolute", path.display()),
        )
    })?;
    mkdirs_beneath(&root, rel, mode)
}

/// Writes `bytes` to `path` as a file only its owner reads (0600), replacing
/// its content; a link in its place is refused, not followed. For state and
/// bundle files, which hold environment values.
pub fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a file path",
        ));
    };
    let parent = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    let dir = File::open(parent)?;
    let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC;
    let fd = openat2(
        dir.as_raw_fd(),
        Path::new(name),
        flags,
        0o600,
        Scope::Beneath,
    )
    .map_err(explain)?;
    let mut f = File::from(fd);
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    f.write_all(bytes)
}

/// Creates directory `path` and its missing parents, new ones 0700.
pub fn private_dirs(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
}

/// Whose host ids a sandbox may hold: Purple's default range and the policy's.
#[derive(Debug, Clone, Default)]
pub struct SandboxIds(pub Vec<IdMap>);

impl SandboxIds {
    /// The default range, plus `map` when the policy has its own.
    pub fn with(map: Option<IdMap>) -> Self {
        let mut maps = vec![IdMap::DEFAULT];
        maps.extend(map.filter(|m| *m != IdMap::DEFAULT));
        SandboxIds(maps)
    }

    fn holds(&self, id: u32) -> bool {
        self.0
            .iter()
            .any(|m| id >= m.host_id && id - m.host_id < m.size)
    }

    /// The first proper ancestor of `path` a sandbox could write, and why.
    pub fn writable_ancestor(&self, path: &Path) -> Option<(std::path::PathBuf, String)> {
        let mut dirs: Vec<&Path> = path.ancestors().skip(1).collect();
        dirs.reverse();
        dirs.into_iter().find_map(|d| {
            let meta = std::fs::symlink_metadata(d).ok()?;
            self.writes(&meta, None).map(|why| (d.to_owned(), why))
        })
    }

    /// Why a sandbox could replace entries of directory `meta`, if it could:
    /// it owns it, its group may write, or anyone may (without the sticky
    /// bit; with it, only entries it owns, which `entry_owner` tells).
    pub fn writes(&self, meta: &std::fs::Metadata, entry_owner: Option<u32>) -> Option<String> {
        let mode = meta.mode();
        if self.holds(meta.uid()) {
            return Some(format!("owned by sandbox host uid {}", meta.uid()));
        }
        if mode & 0o020 != 0 && self.holds(meta.gid()) {
            return Some(format!("writable by sandbox host gid {}", meta.gid()));
        }
        if mode & 0o002 != 0 {
            let sticky = mode & 0o1000 != 0;
            let foreign = entry_owner.is_some_and(|o| o != 0 && o != meta.uid());
            if !sticky || foreign {
                return Some(format!(
                    "writable by every user (mode {:04o})",
                    mode & 0o7777
                ));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};

    #[test]
    fn links_are_refused_on_every_component() {
        let t = tempfile::tempdir().unwrap();
        let real = t.path().join("real");
        std::fs::create_dir(&real).unwrap();
        symlink(&real, t.path().join("link")).unwrap();
        open_dir(&real).unwrap();
        let err = open_dir(&t.path().join("link")).unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        let err = mkdirs(&t.path().join("link/below"), 0o755).unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        assert!(!real.join("below").exists());
        mkdirs(&real.join("a/b"), 0o700).unwrap();
        let mode = std::fs::metadata(real.join("a/b")).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }

    #[test]
    fn sandbox_owned_and_open_directories_are_named() {
        let t = tempfile::tempdir().unwrap();
        let ids = SandboxIds::with(None);
        let meta = |p: &Path| std::fs::metadata(p).unwrap();
        std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(ids.writes(&meta(t.path()), None), None);
        std::os::unix::fs::chown(t.path(), Some(100_000), None).unwrap();
        assert!(ids
            .writes(&meta(t.path()), None)
            .unwrap()
            .contains("100000"));
        std::os::unix::fs::chown(t.path(), Some(0), None).unwrap();
        std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
        assert_eq!(ids.writes(&meta(t.path()), Some(0)), None);
        assert!(ids.writes(&meta(t.path()), Some(1000)).is_some());
        std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(ids.writes(&meta(t.path()), Some(0)).is_some());
    }
}
