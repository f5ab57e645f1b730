//! Loading the embedded object, filling its maps and attaching its programs to
//! a container's cgroup2 directory, with links and maps pinned in bpffs.
//!
//! aya detaches a cgroup program when its link fd closes, i.e. when the
//! `purple-oci create` that attached it exits; pinning the links keeps the
//! programs attached until `delete` unpins them.

use std::fs::{self, File};
use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

use aya::maps::lpm_trie::{Key, LpmTrie};
use aya::maps::{Array, MapData};
use aya::programs::{
    links::{FdLink, PinnedLink},
    loaded_programs, CgroupAttachMode, CgroupSkb, CgroupSkbAttachType, CgroupSockAddr, Program,
};
use aya::{Ebpf, EbpfLoader};
use nix::sys::statfs::{statfs, BPF_FS_MAGIC};
use purple_policy::plan::Rule;

use crate::maps::{key_data, Config, KeyData, RuleError, RuleValue, MAX_RULES};
use crate::EbpfError;

pub(crate) static OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/purple.bpf.o"));

/// The socket-address hooks, by program (C function) name.
const SOCK_ADDR_PROGRAMS: &[&str] = &[
    "purple_connect4",
    "purple_connect6",
    "purple_sendmsg4",
    "purple_sendmsg6",
    "purple_recvmsg4",
    "purple_recvmsg6",
];
const SKB_EGRESS_PROGRAM: &str = "purple_skb_egress";

/// Maps pinned next to the links: the supervisor reads `events`, `stats`,
/// `rule_hits` and `dns_askers`; the tries and config stay inspectable for
/// operators.
pub const PINNED_MAPS: &[&str] = &[
    "events",
    "dns_askers",
    "stats",
    "rule_hits",
    "rules_v4",
    "rules_v6",
    "config",
];

/// Where Purple pins a container's BPF objects.
pub const BPFFS: &str = "/sys/fs/bpf";

fn io_err(what: String) -> impl FnOnce(io::Error) -> EbpfError {
    move |source| EbpfError::Io { what, source }
}

/// The directory every container's pins go under.
pub const PIN_ROOT: &str = "/sys/fs/bpf/purple";

/// Mounts bpffs on /sys/fs/bpf when the host has not (pins need it), for
/// root only: a bpffs others may write lets a local user create Purple's
/// pin directory first.
fn ensure_bpffs() -> Result<(), EbpfError> {
    let path = Path::new(BPFFS);
    if statfs(path).is_ok_and(|s| s.filesystem_type() == BPF_FS_MAGIC) {
        return Ok(());
    }
    nix::mount::mount(
        Some("bpf"),
        path,
        Some("bpf"),
        nix::mount::MsFlags::MS_NOSUID
            | nix::mount::MsFlags::MS_NODEV
            | nix::mount::MsFlags::MS_NOEXEC,
        Some("mode=0700"),
    )
    .map_err(|e| EbpfError::Io {
        what: format!("mount bpffs on {BPFFS}"),
        source: e.into(),
    })
}

/// Opens (creating it 0700) Purple's pin directory, refusing one that is a
/// link, is not root's, or that others may write: whoever made it could
/// swap or read the pins the supervisor and `delete` trust. A root-owned one
/// others may only read or search is narrowed to 0700.
pub fn pin_root() -> Result<File, EbpfError> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    ensure_bpffs()?;
    let refuse = |why: String| EbpfError::Io {
        what: format!("Purple's pin directory {PIN_ROOT}"),
        source: io::Error::other(format!(
            "{why}; remove it (rm -r {PIN_ROOT}) and let Purple create it"
        )),
    };
    let dir = purple_policy::hostfs::mkdirs(Path::new(PIN_ROOT), 0o700)
        .map_err(|e| refuse(e.to_string()))?;
    let meta = dir.metadata().map_err(io_err(format!("stat {PIN_ROOT}")))?;
    if meta.uid() != 0 {
        return Err(refuse(format!(
            "it is owned by uid {}, not root",
            meta.uid()
        )));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(refuse(format!("its mode {mode:04o} lets others write it")));
    }
    if mode & 0o077 != 0 {
        dir.set_permissions(fs::Permissions::from_mode(0o700))
            .map_err(io_err(format!("chmod 0700 {PIN_ROOT}")))?;
    }
    Ok(dir)
}

/// Creates the container's own pin directory (0700) below the checked root.
pub(crate) fn make_pin_dir(pin_dir: &Path) -> Result<(), EbpfError> {
    let root = pin_root()?;
    let rel = pin_dir.strip_prefix(PIN_ROOT).map_err(|_| EbpfError::Io {
        what: format!("pin directory {}", pin_dir.display()),
        source: io::Error::other(format!("not under {PIN_ROOT}")),
    })?;
    purple_policy::hostfs::mkdirs_beneath(&root, rel, 0o700)
        .map_err(io_err(format!("create {}", pin_dir.display())))?;
    Ok(())
}

fn fill_rules(ebpf: &mut Ebpf, config: Config, rules: &[Rule]) -> Result<(), EbpfError> {
    if rules.len() > MAX_RULES {
        return Err(RuleError::TooManyRules { n: rules.len() }.into());
    }
    let mut map: Array<&mut MapData, Config> = Array::try_from(map_mut(ebpf, "config")?)?;
    map.set(0, config, 0)?;
    let values = rules
        .iter()
        .enumerate()
        .map(|(i, r)| Ok((r, RuleValue::new(i as u32 + 1, r)?)))
        .collect::<Result<Vec<_>, RuleError>>()?;
    let mut v4: LpmTrie<&mut MapData, [u8; 4], RuleValue> =
        LpmTrie::try_from(map_mut(ebpf, "rules_v4")?)?;
    for (rule, value) in &values {
        if let KeyData::V4(a) = key_data(rule.cidr.addr) {
            v4.insert(&Key::new(u32::from(rule.cidr.prefix), a), value, 0)?;
        }
    }
    let mut v6: LpmTrie<&mut MapData, [u8; 16], RuleValue> =
        LpmTrie::try_from(map_mut(ebpf, "rules_v6")?)?;
    for (rule, value) in &values {
        if let KeyData::V6(a) = key_data(rule.cidr.addr) {
            v6.insert(&Key::new(u32::from(rule.cidr.prefix), a), value, 0)?;
        }
    }
    Ok(())
}

fn map_mut<'a>(
    ebpf: &'a mut Ebpf,
    name: &'static str,
) -> Result<&'a mut aya::maps::Map, EbpfError> {
    ebpf.map_mut(name).ok_or(EbpfError::Missing(name))
}

fn pin_link(link: FdLink, pin_dir: &Path, name: &str) -> Result<(), EbpfError> {
    link.pin(pin_dir.join(format!("link_{name}")))
        .map_err(|e| EbpfError::Pin(format!("link {name}: {e}")))?;
    Ok(())
}

/// Loads the programs, fills the maps with `rules` under `config` (mode,
/// resolver, allowed events), attaches every hook to `cgroup_dir` and pins
/// links and maps under `pin_dir`. With a resolver port, every DNS query is
/// sent to the resolver listening on 127.0.0.1:port in the container's
/// network namespace, and DNS to any other server is refused. On failure
/// everything pinned so far is removed again (fail closed: the caller must
/// not start the container).
pub fn attach(
    cgroup_dir: &Path,
    pin_dir: &Path,
    config: Config,
    rules: &[Rule],
) -> Result<(), EbpfError> {
    make_pin_dir(pin_dir)?;
    let attached = attach_pinned(cgroup_dir, pin_dir, config, rules);
    if attached.is_err() {
        if let Err(e) = detach(pin_dir) {
            tracing::warn!("cleanup of {} after failed attach: {e}", pin_dir.display());
        }
    }
    attached
}

fn attach_pinned(
    cgroup_dir: &Path,
    pin_dir: &Path,
    config: Config,
    rules: &[Rule],
) -> Result<(), EbpfError> {
    let mut ebpf = EbpfLoader::new().load(OBJECT)?;
    // Maps are complete before the first program is attached, so no call is
    // ever judged against a partial rule set.
    fill_rules(&mut ebpf, config, rules)?;
    let cgroup =
        File::open(cgroup_dir).map_err(io_err(format!("open {}", cgroup_dir.display())))?;
    // Through bpf_link the kernel always attaches cgroup programs in multi mode
    // (and refuses other flags): programs of parent cgroups still run, and a
    // nested cgroup inside the container cannot override ours.
    for name in SOCK_ADDR_PROGRAMS {
        let prog: &mut CgroupSockAddr = program(&mut ebpf, name)?.try_into()?;
        prog.load()?;
        let id = prog.attach(&cgroup, CgroupAttachMode::Single)?;
        pin_link(prog.take_link(id)?.try_into()?, pin_dir, name)?;
    }
    let prog: &mut CgroupSkb = program(&mut ebpf, SKB_EGRESS_PROGRAM)?.try_into()?;
    prog.load()?;
    let id = prog.attach(
        &cgroup,
        CgroupSkbAttachType::Egress,
        CgroupAttachMode::Single,
    )?;
    pin_link(prog.take_link(id)?.try_into()?, pin_dir, SKB_EGRESS_PROGRAM)?;
    for name in PINNED_MAPS {
        let map = ebpf.map(name).ok_or(EbpfError::Missing(name))?;
        map.pin(pin_dir.join(name))
            .map_err(|e| EbpfError::Pin(format!("map {name}: {e}")))?;
    }
    Ok(())
}

fn program<'a>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut Program, EbpfError> {
    ebpf.program_mut(name).ok_or(EbpfError::Missing(name))
}

/// How long `detach` waits for the kernel to free the programs it unpinned.
const FREE_TIMEOUT: Duration = Duration::from_secs(5);

/// Unpins everything under `pin_dir`, removes it, and returns once the
/// kernel has freed the programs the links held. Missing is fine.
///
/// The kernel drops a pin's reference after an RCU grace period and then
/// frees a link from a work queue, so the programs outlive the unlink by a
/// few milliseconds: `delete` waits for them, so that nothing Purple loaded
/// is still in the kernel when it returns.
pub fn detach(pin_dir: &Path) -> Result<(), EbpfError> {
    let entries: Vec<_> = match fs::read_dir(pin_dir) {
        Ok(e) => e.filter_map(|e| e.ok()).map(|e| e.path()).collect(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err(format!("read {}", pin_dir.display()))(e)),
    };
    // Read before the unpin: afterwards the ids can no longer be found.
    let programs: Vec<u32> = entries
        .iter()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("link_"))
        })
        .filter_map(|p| PinnedLink::from_pin(p).ok())
        .filter_map(|l| FdLink::from(l).info().ok())
        .map(|info| info.program_id())
        .collect();
    for p in &entries {
        match fs::remove_file(p) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(format!("unpin {}", p.display()))(e)),
        }
    }
    match fs::remove_dir(pin_dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(format!("remove {}", pin_dir.display()))(e)),
    }
    wait_freed(&programs, pin_dir)
}

fn wait_freed(programs: &[u32], pin_dir: &Path) -> Result<(), EbpfError> {
    let deadline = Instant::now() + FREE_TIMEOUT;
    loop {
        let live: Vec<u32> = loaded_programs()
            .filter_map(Result::ok)
            .map(|p| p.id())
            .filter(|id| programs.contains(id))
            .collect();
        if live.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(io_err(format!("unpinned {}", pin_dir.display()))(
                io::Error::other(format!(
                    "programs {live:?} still loaded {FREE_TIMEOUT:?} after their links were unpinned (another process holds a reference)"
                )),
            ));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}
