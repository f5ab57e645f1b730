//! The container's cgroup2 directory, where eBPF cgroup programs attach.
//!
//! On pure cgroup v2 hosts libcontainer already puts the container in a cgroup2
//! directory of its own. On hybrid hosts its v1 manager leaves the container in
//! whatever unified-hierarchy cgroup the caller was in, so Purple creates
//! `<unified>/purple/<id>` and moves the container's processes there. Purple
//! only ever writes to directories it created.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::statfs::{statfs, CGROUP2_SUPER_MAGIC};
use serde::{Deserialize, Serialize};

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// How the host mounts cgroups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// Only v1 controllers; no cgroup2 mount at all.
    V1,
    /// v1 controllers plus a controller-less cgroup2 mount (usually `/sys/fs/cgroup/unified`).
    Hybrid { unified: PathBuf },
    /// The unified hierarchy only.
    V2,
}

#[derive(Debug, thiserror::Error)]
pub enum Cgroup2Error {
    #[error("cannot create cgroup2 directory {path}: {source}")]
    Create { path: PathBuf, source: io::Error },
    #[error("cannot move process {pid} into cgroup2 directory {path}: {source}")]
    Join {
        pid: i32,
        path: PathBuf,
        source: io::Error,
    },
    #[error("cannot find the cgroup2 directory of process {pid}: {source}")]
    Lookup { pid: i32, source: io::Error },
    #[error("cannot remove cgroup2 directory {path}: {source}")]
    Remove { path: PathBuf, source: io::Error },
}

fn is_cgroup2(path: &Path) -> bool {
    statfs(path).is_ok_and(|s| s.filesystem_type() == CGROUP2_SUPER_MAGIC)
}

/// Detects the host's cgroup layout.
pub fn detect() -> Layout {
    detect_at(Path::new(CGROUP_ROOT))
}

fn detect_at(root: &Path) -> Layout {
    if is_cgroup2(root) {
        return Layout::V2;
    }
    let unified = root.join("unified");
    if is_cgroup2(&unified) {
        Layout::Hybrid { unified }
    } else {
        Layout::V1
    }
}

impl Layout {
    /// The directory Purple creates for `id` on hybrid hosts; `None` elsewhere
    /// (libcontainer owns the v2 directory, and v1-only hosts have none).
    /// Where the unified hierarchy is mounted, if anywhere.
    pub fn unified(&self) -> Option<&Path> {
        match self {
            Layout::Hybrid { unified } => Some(unified),
            Layout::V2 => Some(Path::new(CGROUP_ROOT)),
            Layout::V1 => None,
        }
    }

    pub fn purple_dir(&self, id: &str) -> Option<PathBuf> {
        match self {
            Layout::Hybrid { unified } => Some(unified.join("purple").join(id)),
            Layout::V1 | Layout::V2 => None,
        }
    }
}

/// Whether this process is in cgroups that no mount of its mount namespace
/// shows: `ip netns exec` remounts /sys without the cgroup filesystems, and
/// libcontainer then fails with "failed to detect cgroup setup".
pub fn hidden() -> bool {
    let in_cgroups = fs::read_to_string("/proc/self/cgroup").is_ok_and(|t| !t.trim().is_empty());
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    in_cgroups && !has_cgroup_mount(&mounts)
}

/// Whether a mountinfo text has a cgroup or cgroup2 mount (the filesystem
/// type is the first field after the " - " separator).
fn has_cgroup_mount(mountinfo: &str) -> bool {
    mountinfo.lines().any(|l| {
        l.split_once(" - ")
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|t| t == "cgroup" || t == "cgroup2")
    })
}

/// Creates `dir` (and the shared `purple` parent) if missing.
pub fn create(dir: &Path) -> Result<(), Cgroup2Error> {
    fs::create_dir_all(dir).map_err(|source| Cgroup2Error::Create {
        path: dir.to_owned(),
        source,
    })
}

/// Moves `pid` (0 = the caller) into `dir`.
pub fn join(dir: &Path, pid: i32) -> Result<(), Cgroup2Error> {
    let procs = dir.join("cgroup.procs");
    fs::write(&procs, pid.to_string()).map_err(|source| Cgroup2Error::Join {
        pid,
        path: dir.to_owned(),
        source,
    })
}

/// The caller's stay in a container's cgroup2 directory; leaving it (on
/// drop) moves the caller back where it came from.
///
/// libcontainer makes the cgroup namespace in a child of the caller, rooted
/// at the cgroup that child is in. On hybrid hosts its v1 manager never puts
/// that child in a cgroup2 directory, so `create` visits the container's own
/// while libcontainer forks: the namespace is then rooted there, and the
/// container cannot see, nor move itself to, any cgroup above it.
#[must_use]
pub struct Visit {
    home: PathBuf,
}

impl Visit {
    pub fn enter(dir: &Path, mount: &Path) -> Result<Self, Cgroup2Error> {
        let home = of_process(std::process::id() as i32, mount)?;
        join(dir, 0)?;
        Ok(Self { home })
    }
}

impl Drop for Visit {
    fn drop(&mut self) {
        // Staying would put the runtime among the container's processes,
        // which delete kills.
        if let Err(e) = join(&self.home, 0) {
            tracing::warn!("{e}");
        }
    }
}

/// The cgroup2 directory `pid` is in, from the `0::` line of `/proc/<pid>/cgroup`.
pub fn of_process(pid: i32, mount: &Path) -> Result<PathBuf, Cgroup2Error> {
    let lookup = |source| Cgroup2Error::Lookup { pid, source };
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).map_err(lookup)?;
    let rel = text
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .ok_or_else(|| lookup(io::Error::other("no cgroup2 entry")))?;
    Ok(mount.join(rel.trim_start_matches('/')))
}

/// Pids currently in `dir` (empty when it does not exist).
pub fn pids(dir: &Path) -> Vec<i32> {
    fs::read_to_string(dir.join("cgroup.procs"))
        .map(|t| t.lines().filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_default()
}

/// Kills whatever is left in `dir` and removes it; a missing directory is fine.
///
/// rmdir fails with EBUSY until the last task is gone, so it is retried
/// until `timeout` has passed.
pub fn remove(dir: &Path, timeout: Duration) -> Result<(), Cgroup2Error> {
    let deadline = Instant::now() + timeout;
    loop {
        for pid in pids(dir) {
            // SAFETY: kill(2) with a pid read from the container's own cgroup.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(source) => {
                return Err(Cgroup2Error::Remove {
                    path: dir.to_owned(),
                    source,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_host_has_a_cgroup2_mount() {
        // The runtime needs cgroup2 for eBPF; CI hosts are hybrid or v2.
        match detect() {
            Layout::Hybrid { unified } => assert!(unified.join("cgroup.procs").exists()),
            Layout::V2 => assert!(Path::new("/sys/fs/cgroup/cgroup.procs").exists()),
            Layout::V1 => panic!("no cgroup2 mount on this host: Purple's eBPF needs one"),
        }
    }

    #[test]
    fn cgroup_mounts_are_found_in_mountinfo() {
        assert!(!hidden(), "this test runs where cgroups are mounted");
        let sysfs_only = "22 1 0:21 / /sys rw,nosuid - sysfs sysfs rw\n";
        assert!(!has_cgroup_mount(sysfs_only));
        let hybrid = "30 22 0:26 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n";
        assert!(has_cgroup_mount(&format!("{sysfs_only}{hybrid}")));
    }

    #[test]
    fn plain_directory_is_v1() {
        let d = std::env::temp_dir();
        assert_eq!(detect_at(&d), Layout::V1);
    }

    #[test]
    fn own_cgroup_is_found() {
        let mount = match detect() {
            Layout::Hybrid { unified } => unified,
            _ => PathBuf::from(CGROUP_ROOT),
        };
        let dir = of_process(std::process::id() as i32, &mount).unwrap();
        assert!(dir.join("cgroup.procs").exists(), "{dir:?}");
    }
}

/// A limit the kernel counts hits of in a cgroup file of `key value` lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Limit {
    /// OOM kills (`resource.oom` records).
    Oom,
    /// Forks refused by the pids limit (`resource.pids` records).
    Pids,
}

impl Limit {
    /// The kind of the record a hit becomes.
    pub fn kind(self) -> purple_audit::Kind {
        match self {
            Limit::Oom => purple_audit::Kind::ResourceOom,
            Limit::Pids => purple_audit::Kind::ResourcePids,
        }
    }
}

/// Where the kernel counts hits of one limit: `key` in `file`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitCounter {
    pub limit: Limit,
    pub file: PathBuf,
    pub key: String,
}

impl LimitCounter {
    fn new(limit: Limit, file: PathBuf, key: &str) -> Self {
        Self {
            limit,
            file,
            key: key.to_owned(),
        }
    }

    /// The counter's value now; None while the file is unreadable.
    pub fn read(&self) -> Option<u64> {
        fs::read_to_string(&self.file)
            .ok()?
            .lines()
            .find_map(|l| l.strip_prefix(self.key.as_str())?.trim().parse().ok())
    }
}

/// The limit counters of a container's cgroups (`cgroups_path` of the spec,
/// and its cgroup2 directory): OOM kills and refused forks, in the v1
/// controllers' files where they exist, else in the cgroup2 directory's.
pub fn limit_counters(cgroups_path: &Path, cgroup2: Option<&Path>) -> Vec<LimitCounter> {
    let rel = cgroups_path.strip_prefix("/").unwrap_or(cgroups_path);
    let v1 = Path::new(CGROUP_ROOT).join("memory").join(rel);
    if v1.exists() {
        let pids = Path::new(CGROUP_ROOT).join("pids").join(rel);
        return vec![
            LimitCounter::new(Limit::Oom, v1.join("memory.oom_control"), "oom_kill"),
            LimitCounter::new(Limit::Pids, pids.join("pids.events"), "max"),
        ];
    }
    match cgroup2 {
        Some(dir) => vec![
            LimitCounter::new(Limit::Oom, dir.join("memory.events"), "oom_kill"),
            LimitCounter::new(Limit::Pids, dir.join("pids.events"), "max"),
        ],
        None => Vec::new(),
    }
}
