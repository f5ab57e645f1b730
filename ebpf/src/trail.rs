//! The activity trail: tracing programs loaded once per host, pinned under
//! `/sys/fs/bpf/purple/_trail-<object hash>/`, that record what a traced
//! container does (every `exec`) into a ring of its own, and count its
//! syscalls in an array of its own.
//!
//! A container is traced while its cgroup2 directory's id is a key of the
//! host's `trail_cgroups` map; the programs find it among the current
//! task's cgroup ancestors, so nested cgroups inside it count and nothing
//! outside does. Its records go to its own ring buffer (the value of
//! `trail_rings` under the same key), pinned in the container's pin
//! directory: its supervisor reads its records and no other container's.
//!
//! The host directory is named after the object's hash, so a runtime
//! upgraded while old containers run never mixes programs and maps of two
//! builds: each container's [`Registration`] names the directory it was
//! registered in. The programs live while some container is traced: the
//! last [`unregister`] unpins them. The syscall counter runs on every
//! syscall of the host, so it is attached only while some container counts
//! and detached when the last one leaves. Registration and removal hold an
//! exclusive `flock` on Purple's pin root, so concurrent `create`s load the
//! programs once.
//!
//! ```no_run
//! use std::path::Path;
//! let pins = Path::new("/sys/fs/bpf/purple/demo");
//! let reg = purple_ebpf::trail::registration(Path::new("/sys/fs/cgroup/unified/purple/demo"))?;
//! purple_ebpf::trail::register(&reg, pins, purple_ebpf::trail::Traces { exec: true, syscalls: true })?;
//! let mut ring = purple_ebpf::trail::open(pins)?;
//! while let Some(item) = ring.next() {
//!     println!("{:?}", purple_ebpf::trail::ExecEvent::parse(&item));
//! }
//! println!("{:?}", purple_ebpf::trail::counts(&reg)?);
//! println!("{:?}", purple_ebpf::trail::syscall_counts(pins)?);
//! purple_ebpf::trail::unregister(&reg)?;
//! # Ok::<(), purple_ebpf::EbpfError>(())
//! ```

use std::fs::{self, File};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use aya::maps::{HashMap, HashOfMaps, Map, MapData, MapError, PerCpuArray, RingBuf};
use aya::programs::{links::FdLink, BtfTracePoint};
use aya::{Btf, EbpfLoader};
use purple_policy::limits::{TRAIL_RING_BYTES, TRAIL_SYSCALL_NRS};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::programs::{make_pin_dir, pin_root, PIN_ROOT};
use crate::EbpfError;

static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/trail.bpf.o"));

/// The container's ring, in its own pin directory.
pub const RING: &str = "trail";
const CGROUPS: &str = "trail_cgroups";
const RINGS: &str = "trail_rings";
/// The container's syscall counts, in its own pin directory.
pub const SYSCALLS: &str = "syscalls";
const SYSCALL_MAPS: &str = "trail_syscalls";
const EXEC_PROGRAM: &str = "purple_trail_exec";
const SYSCALL_PROGRAM: &str = "purple_trail_syscall";
/// The counter, loaded with the host directory and pinned unattached.
const SYSCALL_PROG: &str = "prog_syscall";
/// Pinned while some container counts syscalls.
const SYSCALL_LINK: &str = "link_syscall";
/// Pinned last: a host directory without it is a half-made one.
const EXEC_LINK: &str = "link_exec";

/// `PURPLE_TRAIL_ON_*` of `bpf/trail/abi.h`.
const ON_EXEC: u32 = 0x1;

/// What the trail records for one container.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traces {
    /// `process.exec`: every program started.
    pub exec: bool,
    /// Counts of every syscall, by number.
    pub syscalls: bool,
}

impl Traces {
    pub fn any(self) -> bool {
        self.exec || self.syscalls
    }
}

/// Where a container is registered: the host directory of the build that
/// traces it and its cgroup id (the key of its entries).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    pub host_dir: PathBuf,
    pub cgroup_id: u64,
}

/// `struct purple_trail_cgroup` of `bpf/trail/abi.h`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
struct CgroupEntry {
    flags: u32,
    pad: u32,
    execs: u64,
    lost: u64,
}

// SAFETY: plain data, no padding the kernel could leave undefined.
unsafe impl aya::Pod for CgroupEntry {}

/// A container's accounting: every exec the program saw, and how many of
/// those found its ring full (records written = execs - lost).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Whether its execs are traced (the counts stay 0 otherwise).
    pub exec: bool,
    pub execs: u64,
    pub lost: u64,
}

fn io_err(what: String) -> impl FnOnce(io::Error) -> EbpfError {
    move |source| EbpfError::Io { what, source }
}

/// The host directory of this build's programs.
pub fn host_dir() -> PathBuf {
    let hash = Sha256::digest(OBJECT);
    let hex: String = hash[..8].iter().map(|b| format!("{b:02x}")).collect();
    // A leading underscore: no container id can take this name (and bpffs
    // refuses dots in names).
    Path::new(PIN_ROOT).join(format!("_trail-{hex}"))
}

/// Purple's pin root, locked exclusively until the file is dropped.
fn locked_root() -> Result<File, EbpfError> {
    let root = pin_root()?;
    // SAFETY: flock on a descriptor we own; released when it closes.
    if unsafe { libc::flock(root.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(io_err(format!("lock {PIN_ROOT}"))(
            io::Error::last_os_error(),
        ));
    }
    Ok(root)
}

fn open_map(dir: &Path, name: &str) -> Result<Map, EbpfError> {
    let data = MapData::from_pin(dir.join(name))?;
    Ok(Map::from_map_data(data)?)
}

fn cgroups(dir: &Path) -> Result<HashMap<MapData, u64, CgroupEntry>, EbpfError> {
    Ok(HashMap::try_from(open_map(dir, CGROUPS)?)?)
}

/// Loads, attaches and pins this build's programs unless they already are
/// (the caller holds the lock). A half-made directory is made again.
fn ensure_host(root: &File, dir: &Path) -> Result<(), EbpfError> {
    if dir.join(EXEC_LINK).exists() {
        return Ok(());
    }
    remove_dir(dir)?;
    let rel = dir
        .strip_prefix(PIN_ROOT)
        .expect("host_dir is under PIN_ROOT");
    purple_policy::hostfs::mkdirs_beneath(root, rel, 0o700)
        .map_err(io_err(format!("create {}", dir.display())))?;
    let made = load_host(dir);
    if made.is_err() {
        if let Err(e) = remove_dir(dir) {
            tracing::warn!("cleanup of {} after a failed load: {e}", dir.display());
        }
    }
    made
}

fn load_host(dir: &Path) -> Result<(), EbpfError> {
    let btf = Btf::from_sys_fs().map_err(|e| EbpfError::Pin(format!("kernel BTF: {e}")))?;
    let mut ebpf = EbpfLoader::new().btf(Some(&btf)).load(OBJECT)?;
    for name in [CGROUPS, RINGS, SYSCALL_MAPS] {
        let map = ebpf.map(name).ok_or(EbpfError::Missing(name))?;
        map.pin(dir.join(name))
            .map_err(|e| EbpfError::Pin(format!("map {name}: {e}")))?;
    }
    let prog: &mut BtfTracePoint = ebpf
        .program_mut(EXEC_PROGRAM)
        .ok_or(EbpfError::Missing(EXEC_PROGRAM))?
        .try_into()?;
    prog.load("sched_process_exec", &btf)?;
    let id = prog.attach()?;
    let exec_link: FdLink = prog.take_link(id)?.into();
    let counter: &mut BtfTracePoint = ebpf
        .program_mut(SYSCALL_PROGRAM)
        .ok_or(EbpfError::Missing(SYSCALL_PROGRAM))?
        .try_into()?;
    counter.load("sys_enter", &btf)?;
    counter
        .pin(dir.join(SYSCALL_PROG))
        .map_err(|e| EbpfError::Pin(format!("program {SYSCALL_PROGRAM}: {e}")))?;
    exec_link
        .pin(dir.join(EXEC_LINK))
        .map_err(|e| EbpfError::Pin(format!("link {EXEC_PROGRAM}: {e}")))?;
    Ok(())
}

/// Attaches the host's syscall counter unless it is.
fn ensure_counting(dir: &Path) -> Result<(), EbpfError> {
    if dir.join(SYSCALL_LINK).exists() {
        return Ok(());
    }
    let mut prog = BtfTracePoint::from_pin(dir.join(SYSCALL_PROG))?;
    let id = prog.attach()?;
    let link: FdLink = prog.take_link(id)?.into();
    link.pin(dir.join(SYSCALL_LINK))
        .map_err(|e| EbpfError::Pin(format!("link {SYSCALL_PROGRAM}: {e}")))?;
    Ok(())
}

/// A map made to match the template of a host map-of-maps' values,
/// pinned at `pin` (named after it).
fn inner_map(
    kind: aya_obj::generated::bpf_map_type,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    pin: &Path,
) -> Result<MapData, EbpfError> {
    let name = pin.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    let map = MapData::create(
        aya_obj::Map::new_from_params(kind as u32, key_size, value_size, max_entries, 0),
        name,
        None,
    )?;
    map.pin(pin)
        .map_err(|e| EbpfError::Pin(format!("map {name}: {e}")))?;
    Ok(map)
}

/// Where the container whose cgroup2 directory is `cgroup_dir` will be
/// registered: its caller records this before [`register`], so that a
/// `create` that dies halfway leaves nothing `delete` cannot find.
pub fn registration(cgroup_dir: &Path) -> Result<Registration, EbpfError> {
    let cgroup_id = fs::metadata(cgroup_dir)
        .map_err(io_err(format!("stat {}", cgroup_dir.display())))?
        .ino();
    Ok(Registration {
        host_dir: host_dir(),
        cgroup_id,
    })
}

/// Starts tracing a container: its ring pinned in `pin_dir` (created if
/// needed), then its entries in the host maps, the programs loaded first
/// if no container is traced. On failure nothing of it is left.
pub fn register(reg: &Registration, pin_dir: &Path, traces: Traces) -> Result<(), EbpfError> {
    let root = locked_root()?;
    let added = add(&root, reg, pin_dir, traces);
    if added.is_err() {
        if let Err(e) = remove(reg, Some(pin_dir)) {
            tracing::warn!("cleanup of the trail of cgroup {}: {e}", reg.cgroup_id);
        }
    }
    added
}

fn add(root: &File, reg: &Registration, pin_dir: &Path, traces: Traces) -> Result<(), EbpfError> {
    make_pin_dir(pin_dir)?;
    ensure_host(root, &reg.host_dir)?;
    use aya_obj::generated::bpf_map_type::{BPF_MAP_TYPE_PERCPU_ARRAY, BPF_MAP_TYPE_RINGBUF};
    // Inner maps must match their slot's template: a ring buffer of the
    // same size; a per-CPU array of u64 per syscall number and entry point.
    let ring = inner_map(
        BPF_MAP_TYPE_RINGBUF,
        0,
        0,
        TRAIL_RING_BYTES as u32,
        &pin_dir.join(RING),
    )?;
    let mut rings: HashOfMaps<MapData, u64> =
        HashOfMaps::try_from(open_map(&reg.host_dir, RINGS)?)?;
    rings.insert(reg.cgroup_id, &ring, 0)?;
    if traces.syscalls {
        let counts = inner_map(
            BPF_MAP_TYPE_PERCPU_ARRAY,
            4,
            8,
            2 * TRAIL_SYSCALL_NRS as u32,
            &pin_dir.join(SYSCALLS),
        )?;
        let mut all: HashOfMaps<MapData, u64> =
            HashOfMaps::try_from(open_map(&reg.host_dir, SYSCALL_MAPS)?)?;
        all.insert(reg.cgroup_id, &counts, 0)?;
        ensure_counting(&reg.host_dir)?;
    }
    // Last: the programs only record for a container whose ring is there.
    let entry = CgroupEntry {
        flags: if traces.exec { ON_EXEC } else { 0 },
        ..CgroupEntry::default()
    };
    cgroups(&reg.host_dir)?.insert(reg.cgroup_id, entry, 0)?;
    Ok(())
}

fn ignore_missing(r: Result<(), MapError>) -> Result<(), EbpfError> {
    match r {
        Err(MapError::KeyNotFound) => Ok(()),
        // What bpf_map_delete_elem says of a key that is not there.
        Err(MapError::SyscallError(e)) if e.io_error.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        other => Ok(other?),
    }
}

/// The container's entries out of the host maps (its ring unpinned with
/// `pin_dir` if given), and the host directory gone once no container is
/// traced. Missing pieces are fine: it runs after partial failures too.
fn remove(reg: &Registration, pin_dir: Option<&Path>) -> Result<(), EbpfError> {
    if let Some(dir) = pin_dir {
        for name in [RING, SYSCALLS] {
            unpin(&dir.join(name))?;
        }
    }
    if !reg.host_dir.join(CGROUPS).exists() {
        return remove_dir(&reg.host_dir);
    }
    let mut cg = cgroups(&reg.host_dir)?;
    ignore_missing(cg.remove(&reg.cgroup_id))?;
    if reg.host_dir.join(RINGS).exists() {
        let mut rings: HashOfMaps<MapData, u64> =
            HashOfMaps::try_from(open_map(&reg.host_dir, RINGS)?)?;
        ignore_missing(rings.remove(&reg.cgroup_id))?;
    }
    if reg.host_dir.join(SYSCALL_MAPS).exists() {
        let mut all: HashOfMaps<MapData, u64> =
            HashOfMaps::try_from(open_map(&reg.host_dir, SYSCALL_MAPS)?)?;
        ignore_missing(all.remove(&reg.cgroup_id))?;
        // The last counting container gone: host processes stop paying.
        if all.keys().next().is_none() {
            unpin(&reg.host_dir.join(SYSCALL_LINK))?;
        }
    }
    if cg.keys().next().is_none() {
        remove_dir(&reg.host_dir)?;
    }
    Ok(())
}

/// Stops tracing a registered container: its entries gone from the host
/// maps, the programs unpinned when it was the last one traced. The ring
/// pinned in its pin directory goes with that directory.
pub fn unregister(reg: &Registration) -> Result<(), EbpfError> {
    let _lock = locked_root()?;
    remove(reg, None)
}

/// The container's accounting so far.
pub fn counts(reg: &Registration) -> Result<Counts, EbpfError> {
    let e = cgroups(&reg.host_dir)?.get(&reg.cgroup_id, 0)?;
    Ok(Counts {
        exec: e.flags & ON_EXEC != 0,
        execs: e.execs,
        lost: e.lost,
    })
}

/// Opens the container's ring pinned in `pin_dir` (for its supervisor).
pub fn open(pin_dir: &Path) -> Result<RingBuf<MapData>, EbpfError> {
    Ok(RingBuf::try_from(open_map(pin_dir, RING)?)?)
}

fn unpin(path: &Path) -> Result<(), EbpfError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            Err(io_err(format!("unpin {}", path.display()))(e))
        }
        _ => Ok(()),
    }
}

/// A container's syscall counts: `(number, count)` of every number
/// called, native and 32-bit entry points apart.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyscallCounts {
    pub native: Vec<(u32, u64)>,
    /// Calls through the 32-bit entry point (`int 0x80`, compat), by i386
    /// number; always empty on targets other than x86_64.
    pub compat: Vec<(u32, u64)>,
}

/// The counts so far of the container whose array is pinned in `pin_dir`.
pub fn syscall_counts(pin_dir: &Path) -> Result<SyscallCounts, EbpfError> {
    let map: PerCpuArray<MapData, u64> = PerCpuArray::try_from(open_map(pin_dir, SYSCALLS)?)?;
    let mut out = SyscallCounts::default();
    for (slot, per_cpu) in map.iter().enumerate() {
        let n: u64 = per_cpu?.iter().sum();
        if n == 0 {
            continue;
        }
        let (list, nr) = match slot.checked_sub(TRAIL_SYSCALL_NRS) {
            None => (&mut out.native, slot),
            Some(nr) => (&mut out.compat, nr),
        };
        list.push((nr as u32, n));
    }
    Ok(out)
}

fn remove_dir(dir: &Path) -> Result<(), EbpfError> {
    crate::programs::detach(dir)
}

/// `struct purple_exec_event` of `bpf/trail/abi.h`.
#[repr(C)]
#[derive(Clone, Copy)]
struct RawExec {
    ts_ns: u64,
    cgroup_id: u64,
    exec_id: u64,
    kind: u32,
    pid: u32,
    ppid: u32,
    uid: u32,
    gid: u32,
    args_len: u16,
    flags: u16,
    comm: [u8; 16],
    filename: [u8; 256],
    args: [u8; 1024],
}

/// `PURPLE_TRAIL_*` flags and kinds of `bpf/trail/abi.h`.
const KIND_EXEC: u32 = 1;
const ARGS_CUT: u16 = 0x1;
const FILENAME_CUT: u16 = 0x2;
const ARGS_UNREAD: u16 = 0x4;

/// One `process.exec` record from a container's ring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecEvent {
    /// CLOCK_MONOTONIC nanoseconds.
    pub ts_ns: u64,
    pub cgroup_id: u64,
    /// 0, 1, 2, ... in the order the container's programs ran.
    pub exec_id: u64,
    /// Host pids (as in the network records).
    pub pid: u32,
    pub ppid: u32,
    /// Host ids after exec (setuid applied).
    pub uid: u32,
    pub gid: u32,
    pub comm: String,
    pub filename: String,
    pub filename_cut: bool,
    pub argv: Vec<String>,
    /// argv was longer than the record holds: the last argument may be
    /// partial and later ones are missing.
    pub argv_cut: bool,
    /// The new program's memory could not be read (argv empty).
    pub argv_unread: bool,
}

fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&c| c == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

impl ExecEvent {
    /// Decodes one ring record; `None` when it is not an exec record.
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        if bytes.len() < std::mem::size_of::<RawExec>() {
            return None;
        }
        // SAFETY: length checked; RawExec is plain data, read unaligned.
        let raw: RawExec = unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) };
        if raw.kind != KIND_EXEC {
            return None;
        }
        let args = &raw.args[..usize::from(raw.args_len).min(raw.args.len())];
        let mut argv: Vec<String> = args
            .split(|&c| c == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        // The terminating NUL of the last argument leaves an empty piece.
        if args.last() == Some(&0) || args.is_empty() {
            argv.pop();
        }
        Some(Self {
            ts_ns: raw.ts_ns,
            cgroup_id: raw.cgroup_id,
            exec_id: raw.exec_id,
            pid: raw.pid,
            ppid: raw.ppid,
            uid: raw.uid,
            gid: raw.gid,
            comm: c_string(&raw.comm),
            filename: c_string(&raw.filename),
            filename_cut: raw.flags & FILENAME_CUT != 0,
            argv,
            argv_cut: raw.flags & ARGS_CUT != 0,
            argv_unread: raw.flags & ARGS_UNREAD != 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(args: &[u8], flags: u16) -> Vec<u8> {
        let mut r = RawExec {
            ts_ns: 1,
            cgroup_id: 2,
            exec_id: 3,
            kind: KIND_EXEC,
            pid: 4,
            ppid: 5,
            uid: 6,
            gid: 7,
            args_len: args.len() as u16,
            flags,
            comm: [0; 16],
            filename: [0; 256],
            args: [0; 1024],
        };
        r.comm[..2].copy_from_slice(b"sh");
        r.filename[..7].copy_from_slice(b"/bin/sh");
        r.args[..args.len()].copy_from_slice(args);
        // SAFETY: viewing a plain-data struct as bytes.
        unsafe {
            std::slice::from_raw_parts(
                (&r as *const RawExec).cast::<u8>(),
                std::mem::size_of::<RawExec>(),
            )
        }
        .to_vec()
    }

    #[test]
    fn layout_matches_abi_h() {
        // 3*8 + 5*4 + 2*2 + 16 + 256 + 1024
        assert_eq!(std::mem::size_of::<RawExec>(), 1344);
        assert_eq!(std::mem::size_of::<CgroupEntry>(), 24);
    }

    #[test]
    fn argv_splits_on_nul_and_a_cut_keeps_the_partial_argument() {
        let e = ExecEvent::parse(&raw(b"sh\0-c\0echo hi\0", 0)).unwrap();
        assert_eq!(e.argv, ["sh", "-c", "echo hi"]);
        assert_eq!((e.pid, e.ppid, e.exec_id), (4, 5, 3));
        assert_eq!((e.comm.as_str(), e.filename.as_str()), ("sh", "/bin/sh"));
        assert!(!e.argv_cut);
        let e = ExecEvent::parse(&raw(b"sh\0-c\0ech", ARGS_CUT)).unwrap();
        assert_eq!(e.argv, ["sh", "-c", "ech"]);
        assert!(e.argv_cut);
        let e = ExecEvent::parse(&raw(b"", ARGS_UNREAD)).unwrap();
        assert!(e.argv.is_empty() && e.argv_unread);
        assert!(ExecEvent::parse(&raw(b"x\0", 0)[..100]).is_none());
    }

    #[test]
    fn the_host_directory_is_named_after_the_object() {
        let d = host_dir();
        let name = d.file_name().unwrap().to_str().unwrap();
        assert!(
            name.starts_with("_trail-") && name.len() == 7 + 16,
            "{name}"
        );
        assert_eq!(d.parent().unwrap(), Path::new(PIN_ROOT));
    }
}
