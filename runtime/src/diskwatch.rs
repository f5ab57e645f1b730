//! Size limits of output binds (`output_paths` with `max_size`).
//!
//! Where the host directory's filesystem has project quotas on (ext4 with
//! the `project` feature mounted `prjquota`, xfs with `pquota`), the kernel
//! enforces the limit: `create` gives the directory tree a project id of its
//! own (inherited by everything made below it, which a process outside the
//! initial user namespace cannot change) and sets that project's hard block
//! limit, so a write past it fails with EDQUOT. `delete` removes the limit and
//! the project id again.
//!
//! Elsewhere the supervisor watches: a fanotify mark on the sandbox's own bind
//! mount (FAN_MODIFY) wakes it only when something in the sandbox writes
//! there, and it then adds up the directory tree's blocks. At the limit it
//! records `resource.disk` and kills the sandbox. fanotify rather than inotify
//! because inotify watches one directory, not a tree an agent keeps growing;
//! rather than periodic `du`, because a sandbox that writes nothing then
//! costs nothing but an idle fd. A slow re-measure (every
//! [`RECHECK`]) backs the mark up against writes through another mount of the
//! same directory.

use std::collections::HashSet;
use std::ffi::CStr;
use std::fs;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use oci_spec::runtime::Spec;
use purple_policy::hostfs;
use purple_policy::supervision::OutputLimit;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::audit::{Entry, Kind};

/// The projects `create` set up, next to the record: what `delete` undoes.
const QUOTAS_FILE: &str = "quotas.json";

/// How deep the supervisor walks an output tree. Deeper than this it cannot
/// tell the size, so the sandbox is stopped as if over its limit.
const MAX_DEPTH: usize = 128;

/// How often the supervisor re-measures a watched tree without any event.
pub const RECHECK: Duration = Duration::from_secs(1);

/// The first project id Purple tries; ids below are left to the host's own
/// `/etc/projid` users.
const PROJECT_BASE: u32 = 0x5055_0000;

#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error(
        "annotation io.purple.session: output_limits names {0}, which is not a bind mount of \
         the spec: limit a bind's destination"
    )]
    NoBind(String),
    #[error("output bind {path} ({dir}): {source}")]
    Io {
        path: String,
        dir: PathBuf,
        source: io::Error,
    },
    #[error(
        "output bind {path} ({dir}) already holds {used} bytes, over its max_size of {limit}: \
         empty it or raise max_size"
    )]
    AlreadyFull {
        path: String,
        dir: PathBuf,
        used: u64,
        limit: u64,
    },
}

/// A limit the supervisor watches: the bind at `path` in the sandbox, whose
/// host directory is `dir`. `project` is set where the kernel enforces it
/// (the supervisor then only records reaching it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskLimit {
    pub path: String,
    pub dir: PathBuf,
    pub max_bytes: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<u32>,
}

/// Output binds' size limits, in the supervisor's plan.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskLimits(pub Vec<DiskLimit>);

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Project {
    dir: PathBuf,
    id: u32,
}

fn io_err(l: &OutputLimit, dir: &Path) -> impl FnOnce(io::Error) -> DiskError {
    let (path, dir) = (l.path.clone(), dir.to_owned());
    move |source| DiskError::Io { path, dir, source }
}

/// The host directory bound at `destination` in `spec`.
fn bind_source(spec: &Spec, destination: &str) -> Option<PathBuf> {
    spec.mounts().as_ref()?.iter().find_map(|m| {
        let bind = m.typ().as_deref() == Some("bind")
            || m.options()
                .as_ref()
                .is_some_and(|o| o.iter().any(|o| o == "bind" || o == "rbind"));
        (bind && m.destination() == Path::new(destination)).then(|| m.source().clone())?
    })
}

/// Sets up the limits of `limits` before the sandbox runs: project quotas
/// where the filesystem has them (remembered in `pdir` for [`release`]).
/// Returns every limit, for the supervisor.
pub fn setup(
    id: &str,
    spec: &Spec,
    limits: &[OutputLimit],
    pdir: &Path,
) -> Result<DiskLimits, DiskError> {
    // Spread by container: two sandboxes set up at once look for free ids
    // in different places.
    let spread = id.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ b as u32).wrapping_mul(0x0100_0193)
    });
    let first = PROJECT_BASE + (spread % 0x1000) * 16;
    let mut out = Vec::new();
    let mut projects: Vec<Project> = Vec::new();
    for l in limits {
        let dir = bind_source(spec, &l.path).ok_or_else(|| DiskError::NoBind(l.path.clone()))?;
        let fd = open_dir(&dir).map_err(io_err(l, &dir))?;
        let used = tree_size(&fd).map_err(io_err(l, &dir))?;
        if used >= l.max_bytes {
            return Err(DiskError::AlreadyFull {
                path: l.path.clone(),
                dir,
                used,
                limit: l.max_bytes,
            });
        }
        let project = match free_project(&fd, first + projects.len() as u32) {
            Ok(id) => {
                // Remembered before anything is changed: a failure half-way
                // is undone by delete like a complete setup.
                projects.push(Project {
                    dir: dir.clone(),
                    id,
                });
                save(pdir, &projects).map_err(io_err(l, &dir))?;
                tag_tree(&fd, id).map_err(io_err(l, &dir))?;
                set_limit(&fd, id, l.max_bytes).map_err(io_err(l, &dir))?;
                Some(id)
            }
            Err(e) => {
                tracing::debug!("{}: no project quota ({e}): the supervisor watches", l.path);
                None
            }
        };
        out.push(DiskLimit {
            path: l.path.clone(),
            dir,
            max_bytes: l.max_bytes,
            project,
        });
    }
    Ok(DiskLimits(out))
}

fn save(pdir: &Path, projects: &[Project]) -> io::Result<()> {
    let json = serde_json::to_vec(projects).expect("projects serialise");
    hostfs::write_private(&pdir.join(QUOTAS_FILE), &json)
}

/// Undoes [`setup`]'s quotas for the container whose record is in `pdir`:
/// each project's limit is cleared and its tree goes back to project 0.
pub fn release(pdir: &Path) -> io::Result<()> {
    let text = match fs::read(pdir.join(QUOTAS_FILE)) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let projects: Vec<Project> = serde_json::from_slice(&text).map_err(io::Error::other)?;
    for p in projects {
        match open_dir(&p.dir) {
            Ok(fd) => {
                set_limit(&fd, p.id, 0)?;
                tag_tree(&fd, 0)?;
            }
            // The user removed the directory: its project is empty.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    fs::remove_file(pdir.join(QUOTAS_FILE))
}

fn open_dir(dir: &Path) -> io::Result<OwnedFd> {
    open_at(None, dir.as_os_str().as_bytes(), libc::O_DIRECTORY)
}

fn cstring(name: &[u8]) -> io::Result<std::ffi::CString> {
    std::ffi::CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

/// openat(2) that never follows a link in the last component, never blocks
/// on a FIFO and never takes a terminal.
fn open_at(dir: Option<BorrowedFd>, name: &[u8], flags: libc::c_int) -> io::Result<OwnedFd> {
    let c = cstring(name)?;
    let base = dir.map_or(libc::AT_FDCWD, |d| d.as_raw_fd());
    let flags = flags
        | libc::O_RDONLY
        | libc::O_NOFOLLOW
        | libc::O_NONBLOCK
        | libc::O_NOCTTY
        | libc::O_CLOEXEC;
    // SAFETY: a valid C string and directory fd.
    let fd = unsafe { libc::openat(base, c.as_ptr(), flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: openat just returned this fd.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn fstatat(dir: BorrowedFd, name: &CStr) -> io::Result<libc::stat> {
    // SAFETY: an all-zero stat is valid; fstatat fills it.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid fd, C string and out pointer.
    let r = unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            name.as_ptr(),
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st)
}

/// Calls `visit` on every entry below `dir` (not following links), depth
/// first, with the directory it is in; `depth` counts from 1.
fn walk(
    dir: &OwnedFd,
    depth: usize,
    visit: &mut dyn FnMut(BorrowedFd, &CStr, &libc::stat) -> io::Result<()>,
) -> io::Result<()> {
    if depth > MAX_DEPTH {
        return Err(io::Error::other(format!(
            "the tree is deeper than {MAX_DEPTH} directories"
        )));
    }
    // The descriptor's own directory: /proc/self/fd/N names no path an
    // agent could swap.
    let names: Vec<std::ffi::CString> = fs::read_dir(format!("/proc/self/fd/{}", dir.as_raw_fd()))?
        .filter_map(Result::ok)
        .filter_map(|e| cstring(e.file_name().as_bytes()).ok())
        .collect();
    for name in names {
        let st = match fstatat(dir.as_fd(), &name) {
            Ok(st) => st,
            // Removed while we walk: it holds nothing any more.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(e) => return Err(e),
        };
        visit(dir.as_fd(), &name, &st)?;
        if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
            match open_at(Some(dir.as_fd()), name.as_bytes(), libc::O_DIRECTORY) {
                Ok(sub) => walk(&sub, depth + 1, visit)?,
                // Gone, or swapped for a link or file: not a directory of this tree.
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::ENOENT | libc::ELOOP | libc::ENOTDIR)
                    ) => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

/// The bytes of disk the tree at `dir` takes (hard links counted once).
pub fn tree_size(dir: &OwnedFd) -> io::Result<u64> {
    let mut seen = HashSet::new();
    let mut total = 0u64;
    walk(dir, 1, &mut |_, _, st| {
        if st.st_nlink <= 1 || st.st_mode & libc::S_IFMT == libc::S_IFDIR || seen.insert(st.st_ino)
        {
            total = total.saturating_add(st.st_blocks as u64 * 512);
        }
        Ok(())
    })?;
    Ok(total)
}

/// struct fsxattr of <linux/fs.h>.
#[repr(C)]
#[derive(Default)]
struct FsXattr {
    xflags: u32,
    extsize: u32,
    nextents: u32,
    projid: u32,
    cowextsize: u32,
    pad: [u8; 8],
}
const FS_IOC_FSGETXATTR: libc::c_ulong = 0x801c_581f;
const FS_IOC_FSSETXATTR: libc::c_ulong = 0x401c_5820;
const FS_XFLAG_PROJINHERIT: u32 = 0x200;

/// Gives the file or directory `fd` project `id` (0: none); a directory
/// passes it on to what is made in it.
fn set_project(fd: BorrowedFd, id: u32, dir: bool) -> io::Result<()> {
    let mut x = FsXattr::default();
    // SAFETY: the ioctl fills a struct fsxattr.
    if unsafe { libc::ioctl(fd.as_raw_fd(), FS_IOC_FSGETXATTR, &mut x) } < 0 {
        return Err(io::Error::last_os_error());
    }
    x.projid = id;
    if dir && id != 0 {
        x.xflags |= FS_XFLAG_PROJINHERIT;
    } else {
        x.xflags &= !FS_XFLAG_PROJINHERIT;
    }
    // SAFETY: as above, reading the struct.
    if unsafe { libc::ioctl(fd.as_raw_fd(), FS_IOC_FSSETXATTR, &x) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Puts the directory `root` and every directory and regular file below it
/// in project `id`: a file made in an earlier run is counted too.
fn tag_tree(root: &OwnedFd, id: u32) -> io::Result<()> {
    set_project(root.as_fd(), id, true)?;
    walk(root, 1, &mut |dir, name, st| {
        let kind = st.st_mode & libc::S_IFMT;
        if kind != libc::S_IFDIR && kind != libc::S_IFREG {
            return Ok(());
        }
        let flag = if kind == libc::S_IFDIR {
            libc::O_DIRECTORY
        } else {
            0
        };
        let fd = match open_at(Some(dir), name.to_bytes(), flag) {
            Ok(fd) => fd,
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ENOENT | libc::ELOOP | libc::ENOTDIR)
                ) =>
            {
                return Ok(())
            }
            Err(e) => return Err(e),
        };
        // Checked on the descriptor: a special file swapped in is left alone.
        let now = fstat(fd.as_fd())?;
        if now.st_mode & libc::S_IFMT != kind {
            return Ok(());
        }
        set_project(fd.as_fd(), id, kind == libc::S_IFDIR)
    })
}

fn fstat(fd: BorrowedFd) -> io::Result<libc::stat> {
    // SAFETY: an all-zero stat is valid; fstat fills it.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid fd and out pointer.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st)
}

/// struct if_dqblk of <linux/quota.h>.
#[repr(C)]
#[derive(Default)]
struct DqBlk {
    bhardlimit: u64,
    bsoftlimit: u64,
    curspace: u64,
    ihardlimit: u64,
    isoftlimit: u64,
    curinodes: u64,
    btime: u64,
    itime: u64,
    valid: u32,
}
const Q_GETQUOTA: u32 = 0x80_0007;
const Q_SETQUOTA: u32 = 0x80_0008;
const PRJQUOTA: u32 = 2;
const QIF_BLIMITS: u32 = 1;
/// Quota block limits count 1 KiB blocks.
const QIF_DQBLKSIZE: u64 = 1024;

fn quotactl(fd: BorrowedFd, cmd: u32, id: u32, q: &mut DqBlk) -> io::Result<()> {
    let qcmd = (cmd << 8) | PRJQUOTA;
    // SAFETY: quotactl_fd(2) on a directory fd with a struct if_dqblk.
    let r = unsafe {
        libc::syscall(
            libc::SYS_quotactl_fd,
            fd.as_raw_fd(),
            qcmd,
            id,
            q as *mut DqBlk,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn get_quota(fd: BorrowedFd, id: u32) -> io::Result<DqBlk> {
    let mut q = DqBlk::default();
    quotactl(fd, Q_GETQUOTA, id, &mut q)?;
    Ok(q)
}

/// A project id from `from` on with no limit and no usage on `dir`'s
/// filesystem; an error when that filesystem has no project quotas on.
fn free_project(dir: &OwnedFd, from: u32) -> io::Result<u32> {
    // ESRCH while project quotas are off, ENOSYS/ENOTTY/EINVAL where the
    // filesystem has none: either way the supervisor watches instead.
    for id in from..from + 0x1_0000 {
        let q = get_quota(dir.as_fd(), id)?;
        if q.bhardlimit == 0 && q.curspace == 0 && q.curinodes == 0 {
            return Ok(id);
        }
    }
    Err(io::Error::other("no free project id"))
}

fn set_limit(dir: &OwnedFd, id: u32, bytes: u64) -> io::Result<()> {
    let mut q = DqBlk {
        bhardlimit: bytes.div_ceil(QIF_DQBLKSIZE),
        bsoftlimit: bytes.div_ceil(QIF_DQBLKSIZE),
        valid: QIF_BLIMITS,
        ..DqBlk::default()
    };
    quotactl(dir.as_fd(), Q_SETQUOTA, id, &mut q)
}

/// The project of the file or directory at `path` (leftover checks): `None`
/// when it is in none.
pub fn project_of(path: &Path) -> io::Result<Option<u32>> {
    let fd = open_at(None, path.as_os_str().as_bytes(), 0)?;
    let mut x = FsXattr::default();
    // SAFETY: the ioctl fills a struct fsxattr.
    if unsafe { libc::ioctl(fd.as_raw_fd(), FS_IOC_FSGETXATTR, &mut x) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((x.projid != 0).then_some(x.projid))
}

/// The hard limit in bytes of project `id` on `dir`'s filesystem (0: none).
pub fn project_limit(dir: &Path, id: u32) -> io::Result<u64> {
    Ok(get_quota(open_dir(dir)?.as_fd(), id)?.bhardlimit * QIF_DQBLKSIZE)
}

/// One watched limit in the supervisor.
struct Watched {
    limit: DiskLimit,
    dir: OwnedFd,
    /// Recorded (and, without a quota, the sandbox stopped) already.
    done: bool,
}

/// The supervisor's side: watches each limit, says when one is reached.
pub struct Watcher {
    watched: Vec<Watched>,
    fan: Option<OwnedFd>,
    last: Instant,
}

impl Watcher {
    /// Marks the sandbox's bind mounts (seen through its init `pid`) for
    /// writes; the host's filesystem instead if that mount cannot be marked.
    pub fn new(limits: &DiskLimits, pid: Option<i32>) -> Self {
        let watched: Vec<Watched> = limits
            .0
            .iter()
            .filter_map(|l| {
                Some(Watched {
                    dir: open_dir(&l.dir)
                        .map_err(|e| tracing::warn!("{}: {e}", l.dir.display()))
                        .ok()?,
                    limit: l.clone(),
                    done: false,
                })
            })
            .collect();
        let fan = watched
            .iter()
            .any(|w| w.limit.project.is_none())
            .then(|| fanotify(&watched, pid))
            .flatten();
        Self {
            watched,
            fan,
            last: Instant::now(),
        }
    }

    /// The fd to poll for writes.
    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.fan.as_ref().map(AsFd::as_fd)
    }

    /// The record of each limit reached since the last call. `stop` is set
    /// when one the kernel does not enforce was: the caller kills the sandbox.
    pub fn check(&mut self, stop: &mut bool) -> Vec<Entry> {
        let written = self.fan.as_ref().is_some_and(|f| drain(f.as_fd()));
        let due = self.last.elapsed() >= RECHECK;
        if !written && !due {
            return Vec::new();
        }
        self.last = Instant::now();
        let mut out = Vec::new();
        for w in self.watched.iter_mut().filter(|w| !w.done) {
            let l = &w.limit;
            let (used, why) = match l.project {
                // The kernel refuses the write that would pass the limit, so
                // usage stops a partial block short of it.
                Some(id) => match get_quota(w.dir.as_fd(), id) {
                    Ok(q) if q.curspace + QIF_DQBLKSIZE * 64 >= l.max_bytes => (q.curspace, None),
                    _ => continue,
                },
                None => match tree_size(&w.dir) {
                    Ok(used) if used >= l.max_bytes => (used, None),
                    Ok(_) => continue,
                    Err(e) => (0, Some(e.to_string())),
                },
            };
            w.done = true;
            *stop |= l.project.is_none();
            let mut details = json!({
                "path": l.path,
                "host_path": l.dir,
                "limit_bytes": l.max_bytes,
                "used_bytes": used,
                "enforced_by": if l.project.is_some() { "project quota" } else { "supervisor" },
            });
            if let Some(id) = l.project {
                details["project"] = json!(id);
            }
            if let Some(why) = why {
                details["error"] = json!(why);
            }
            out.push(Entry::new(Kind::ResourceDisk, details));
        }
        out
    }
}

/// A fanotify group with a FAN_MODIFY mark on each supervisor-watched bind.
fn fanotify(watched: &[Watched], pid: Option<i32>) -> Option<OwnedFd> {
    // SAFETY: plain syscall; the fd is owned below.
    let fd = unsafe {
        libc::fanotify_init(
            libc::FAN_CLASS_NOTIF | libc::FAN_CLOEXEC | libc::FAN_NONBLOCK,
            (libc::O_RDONLY | libc::O_LARGEFILE | libc::O_CLOEXEC) as u32,
        )
    };
    if fd < 0 {
        tracing::warn!("fanotify_init: {}", io::Error::last_os_error());
        return None;
    }
    // SAFETY: fanotify_init just returned it.
    let fan = unsafe { OwnedFd::from_raw_fd(fd) };
    for w in watched.iter().filter(|w| w.limit.project.is_none()) {
        let inside = pid.map(|p| format!("/proc/{p}/root{}", w.limit.path));
        let same = inside.as_deref().and_then(|p| {
            let (a, b) = (fs::metadata(p).ok()?, fstat(w.dir.as_fd()).ok()?);
            use std::os::unix::fs::MetadataExt;
            (a.dev() == b.st_dev && a.ino() == b.st_ino).then_some(p)
        });
        let marked = same.is_some_and(|p| mark(&fan, libc::FAN_MARK_MOUNT, Path::new(p)).is_ok());
        if !marked {
            if let Err(e) = mark(&fan, libc::FAN_MARK_FILESYSTEM, &w.limit.dir) {
                tracing::warn!("fanotify mark {}: {e}", w.limit.dir.display());
            }
        }
    }
    Some(fan)
}

fn mark(fan: &OwnedFd, how: libc::c_uint, path: &Path) -> io::Result<()> {
    let c = cstring(path.as_os_str().as_bytes())?;
    // SAFETY: valid fanotify fd and C string.
    let r = unsafe {
        libc::fanotify_mark(
            fan.as_raw_fd(),
            libc::FAN_MARK_ADD | how,
            libc::FAN_MODIFY,
            libc::AT_FDCWD,
            c.as_ptr(),
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Reads every pending event (closing the fd each carries); whether there was one.
fn drain(fan: BorrowedFd) -> bool {
    let mut any = false;
    let mut buf = [0u8; 4096];
    loop {
        // SAFETY: reading into a buffer we own.
        let n = unsafe { libc::read(fan.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            return any;
        }
        let size = std::mem::size_of::<libc::fanotify_event_metadata>();
        let mut off = 0usize;
        while off + size <= n as usize {
            // SAFETY: the kernel wrote whole event records into buf.
            let m: libc::fanotify_event_metadata =
                unsafe { std::ptr::read_unaligned(buf[off..].as_ptr().cast()) };
            if m.fd >= 0 {
                // SAFETY: each event's fd is ours to close.
                unsafe { libc::close(m.fd as RawFd) };
            }
            any = true;
            if m.event_len == 0 {
                break;
            }
            off += m.event_len as usize;
        }
    }
}
