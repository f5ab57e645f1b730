//! The activity trail of one container: registered with the host's trail
//! programs by `create` (before `start`, so the first program the agent
//! runs is recorded), its records written by the supervisor, its entries
//! removed by `delete`. The programs and maps are `purple_ebpf::trail`'s.

use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

use aya::maps::{MapData, RingBuf};
use libseccomp::{ScmpArch, ScmpSyscall};
use purple_ebpf::trail::{ExecEvent, Registration, Traces};
use purple_policy::supervision::AuditPlan;
use serde_json::json;

use crate::audit::{Entry, Kind};

#[derive(Debug, thiserror::Error)]
pub enum TrailError {
    #[error("ebpf_monitoring.trace_exec and trace_syscalls need a cgroup2 hierarchy to tell the sandbox's processes from the host's, and this host has none (`purple doctor` says what it lacks)")]
    NoCgroup2,
    #[error("cannot start the activity trail (ebpf_monitoring.trace_exec, trace_syscalls): {0} (`purple doctor` checks this host's BPF support)")]
    Ebpf(#[from] purple_ebpf::EbpfError),
}

/// What the audit plan asks the kernel to trace.
pub fn traces(plan: &AuditPlan) -> Traces {
    Traces {
        exec: plan.trace_exec,
        syscalls: plan.trace_syscalls,
    }
}

/// Where the container whose cgroup2 directory is `cgroup2_dir` is to be
/// registered, when its plan asks for a trace (None: it does not).
pub fn registration(
    cgroup2_dir: Option<&Path>,
    plan: &AuditPlan,
) -> Result<Option<Registration>, TrailError> {
    if !traces(plan).any() {
        return Ok(None);
    }
    let dir = cgroup2_dir.ok_or(TrailError::NoCgroup2)?;
    Ok(Some(purple_ebpf::trail::registration(dir)?))
}

/// Registers it with the host's trail programs, its ring in `pin_dir`.
pub fn register(reg: &Registration, pin_dir: &Path, plan: &AuditPlan) -> Result<(), TrailError> {
    Ok(purple_ebpf::trail::register(reg, pin_dir, traces(plan))?)
}

/// The supervisor's end of the trail: the container's ring and the id
/// maps its records are written with.
pub struct Reader {
    reg: Registration,
    ring: RingBuf<MapData>,
    /// The pin directory, when the container counts its syscalls.
    counted: Option<PathBuf>,
    uids: IdMap,
    gids: IdMap,
}

impl Reader {
    /// Opens the ring pinned in `pins`; ids are mapped through the user
    /// namespace of `init` (the container's init process, alive at create).
    pub fn open(reg: Registration, pins: &Path, init: Option<i32>) -> Result<Self, TrailError> {
        let (uids, gids) = init
            .map(|p| (IdMap::of(p, "uid_map"), IdMap::of(p, "gid_map")))
            .unwrap_or_default();
        Ok(Self {
            reg,
            ring: purple_ebpf::trail::open(pins)?,
            counted: pins
                .join(purple_ebpf::trail::SYSCALLS)
                .exists()
                .then(|| pins.to_owned()),
            uids,
            gids,
        })
    }

    /// Readable when records wait.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.ring.as_fd()
    }

    /// Appends the records waiting on the ring to `out`.
    pub fn drain(&mut self, out: &mut Vec<Entry>) {
        while let Some(item) = self.ring.next() {
            if let Some(e) = ExecEvent::parse(&item) {
                out.push(exec_entry(&e, &self.uids, &self.gids));
            }
        }
    }

    /// Adds what the `exited` record carries to its `details`: `trail`,
    /// the exec accounting (records written = `execs` - `lost`) when execs
    /// are traced; `syscalls` (name: count), `syscalls_total`, and
    /// `syscalls_compat` (i386 names, when the 32-bit entry point was used)
    /// when syscalls are counted.
    pub fn add_counts(&self, details: &mut serde_json::Value) {
        match purple_ebpf::trail::counts(&self.reg) {
            Ok(c) if c.exec => details["trail"] = json!({ "execs": c.execs, "lost": c.lost }),
            Ok(_) => {}
            Err(e) => details["trail"] = json!({ "error": e.to_string() }),
        }
        let Some(pins) = &self.counted else { return };
        match purple_ebpf::trail::syscall_counts(pins) {
            Ok(c) => {
                let total: u64 = c.native.iter().chain(&c.compat).map(|(_, n)| n).sum();
                details["syscalls"] = by_name(&c.native, ScmpArch::native());
                details["syscalls_total"] = json!(total);
                if !c.compat.is_empty() {
                    details["syscalls_compat"] = by_name(&c.compat, ScmpArch::X86);
                }
            }
            Err(e) => details["syscalls_error"] = json!(e.to_string()),
        }
    }
}

/// `{name: count}`, names from libseccomp's table of `arch`; a number it
/// does not name stays a number, as `nr_N`.
fn by_name(counts: &[(u32, u64)], arch: ScmpArch) -> serde_json::Value {
    counts
        .iter()
        .map(|&(nr, n)| {
            let name = i32::try_from(nr)
                .ok()
                .and_then(|nr| ScmpSyscall::from(nr).get_name_by_arch(arch).ok())
                .unwrap_or_else(|| format!("nr_{nr}"));
            (name, json!(n))
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// A user namespace's id map (`/proc/<pid>/uid_map` lines: inside, host,
/// count), to report ids as the sandbox sees them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdMap(Vec<(u32, u32, u32)>);

impl IdMap {
    /// The map of `pid`'s namespace; `which` is `uid_map` or `gid_map`.
    /// Unreadable: empty, and ids are reported as the host's.
    pub fn of(pid: i32, which: &str) -> Self {
        std::fs::read_to_string(format!("/proc/{pid}/{which}"))
            .map(|t| Self::parse(&t))
            .unwrap_or_default()
    }

    fn parse(text: &str) -> Self {
        Self(
            text.lines()
                .filter_map(|l| {
                    let mut f = l.split_whitespace().map(str::parse::<u32>);
                    Some((f.next()?.ok()?, f.next()?.ok()?, f.next()?.ok()?))
                })
                .collect(),
        )
    }

    /// The sandbox's id for host id `host`; None when it maps to none
    /// (the sandbox sees it as the overflow id).
    pub fn inside(&self, host: u32) -> Option<u32> {
        self.0.iter().find_map(|&(inside, start, count)| {
            let off = host.checked_sub(start)?;
            (off < count).then(|| inside + off)
        })
    }
}

/// The `process.exec` record of one exec: ids as the sandbox sees them
/// (the host's too), pids as the host sees them, as in network records.
pub fn exec_entry(e: &ExecEvent, uids: &IdMap, gids: &IdMap) -> Entry {
    let id = |map: &IdMap, host: u32| match map.0.is_empty() {
        true => Some(host),
        false => map.inside(host),
    };
    Entry {
        kind: Kind::ProcessExec,
        pid: Some(e.pid),
        comm: (!e.comm.is_empty()).then(|| e.comm.clone()),
        rule: None,
        details: json!({
            "exec_id": e.exec_id,
            "ppid": e.ppid,
            "uid": id(uids, e.uid),
            "gid": id(gids, e.gid),
            "host_uid": e.uid,
            "filename": e.filename,
            "filename_cut": e.filename_cut,
            "argv": e.argv,
            "argv_cut": e.argv_cut,
            "argv_unread": e.argv_unread,
            "cgroup_id": e.cgroup_id,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_map_into_the_namespace_and_unmapped_ones_say_so() {
        let m = IdMap::parse("         0     100000      65536\n");
        assert_eq!(m.inside(100000), Some(0));
        assert_eq!(m.inside(101000), Some(1000));
        assert_eq!(m.inside(0), None);
        assert_eq!(m.inside(165536), None);
        let host = IdMap::parse("0 0 4294967295\n");
        assert_eq!(host.inside(1000), Some(1000));
    }

    #[test]
    fn syscalls_are_named_by_the_arch_table_and_unknown_numbers_kept() {
        let v = by_name(&[(0, 5), (39, 7), (500, 1)], ScmpArch::X8664);
        assert_eq!(v, json!({"read": 5, "getpid": 7, "nr_500": 1}));
        // The same numbers through the 32-bit entry point are other calls.
        let v = by_name(&[(3, 2), (20, 1)], ScmpArch::X86);
        assert_eq!(v, json!({"read": 2, "getpid": 1}));
    }

    #[test]
    fn an_exec_record_names_its_lineage_and_argv() {
        let e = ExecEvent {
            ts_ns: 1,
            cgroup_id: 9,
            exec_id: 4,
            pid: 200,
            ppid: 100,
            uid: 100000,
            gid: 100000,
            comm: "ls".into(),
            filename: "/bin/ls".into(),
            filename_cut: false,
            argv: vec!["ls".into(), "-l".into()],
            argv_cut: true,
            argv_unread: false,
        };
        let m = IdMap::parse("0 100000 65536");
        let r = exec_entry(&e, &m, &m);
        assert_eq!(r.kind, Kind::ProcessExec);
        assert_eq!(r.pid, Some(200));
        assert_eq!(r.details["ppid"], 100);
        assert_eq!(r.details["uid"], 0);
        assert_eq!(r.details["host_uid"], 100000);
        assert_eq!(r.details["argv"], json!(["ls", "-l"]));
        assert_eq!(r.details["argv_cut"], true);
        assert_eq!(r.details["exec_id"], 4);
    }
}
