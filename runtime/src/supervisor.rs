//! The per-container supervisor: a small daemon `create` starts outside the
//! container. It turns the eBPF programs' denial events into audit records and
//! exits by itself once the container's cgroup is empty and its events are
//! written; `delete` stops it (SIGTERM, then SIGKILL) if it is still there.
//! It never holds the container: it is not its parent and not in its cgroup.

use std::fs;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use purple_ebpf::events::{Event, Hook};
use serde_json::json;

use crate::audit::{AuditError, AuditLog, Entry};
use crate::network::RuleBook;

/// What the supervisor needs; passed on its command line.
#[derive(Debug, Clone, clap::Args)]
pub struct SupervisorArgs {
    /// Container ID.
    pub id: String,
    /// Audit log to append to.
    #[arg(long)]
    pub log: PathBuf,
    /// Policy name for the records.
    #[arg(long)]
    pub policy: Option<String>,
    /// The container's cgroup2 directory (exit when it empties).
    #[arg(long)]
    pub cgroup2: Option<PathBuf>,
    /// Where the BPF maps are pinned.
    #[arg(long)]
    pub pins: Option<PathBuf>,
    /// The effective rule list (rules.json), to name the rule that decided.
    #[arg(long)]
    pub rules: Option<PathBuf>,
    /// Files holding resource-limit counters, as KIND=FILE:KEY (e.g.
    /// `resource.oom=/sys/fs/cgroup/memory/purple/x/memory.oom_control:oom_kill`).
    #[arg(long = "counter", value_name = "KIND=FILE:KEY")]
    pub counters: Vec<String>,
    /// The container's resolver (dns.json): serve its DNS.
    #[arg(long)]
    pub dns: Option<PathBuf>,
    /// Descriptors the supervisor inherits as 3, 4, ... (the resolver's).
    #[arg(skip)]
    pub inherit: Vec<RawFd>,
}

/// A kernel counter of limit hits, in a cgroup file of `key value` lines.
struct Counter {
    kind: String,
    file: PathBuf,
    key: String,
    seen: u64,
}

impl Counter {
    fn parse(raw: &str) -> Option<Self> {
        let (kind, rest) = raw.split_once('=')?;
        let (file, key) = rest.rsplit_once(':')?;
        let mut c = Self {
            kind: kind.to_owned(),
            file: file.into(),
            key: key.to_owned(),
            seen: 0,
        };
        c.seen = c.read().unwrap_or(0);
        Some(c)
    }

    fn read(&self) -> Option<u64> {
        fs::read_to_string(&self.file)
            .ok()?
            .lines()
            .find_map(|l| l.strip_prefix(self.key.as_str())?.trim().parse().ok())
    }

    /// A record when the counter grew since last time (hits are summed per check).
    fn check(&mut self) -> Option<Entry> {
        let now = self.read()?;
        if now <= self.seen {
            return None;
        }
        let delta = now - self.seen;
        self.seen = now;
        Some(Entry::new(
            &self.kind,
            json!({ "count": delta, "total": now, "source": self.file }),
        ))
    }
}

/// The limit counters of a container's cgroups: OOM kills and refused forks.
pub fn counters(cgroups_path: &Path, cgroup2: Option<&Path>) -> Vec<String> {
    let rel = cgroups_path.strip_prefix("/").unwrap_or(cgroups_path);
    let v1 = Path::new("/sys/fs/cgroup/memory").join(rel);
    let mut out = Vec::new();
    if v1.exists() {
        out.push(format!(
            "resource.oom={}:oom_kill",
            v1.join("memory.oom_control").display()
        ));
        let pids = Path::new("/sys/fs/cgroup/pids").join(rel);
        out.push(format!(
            "resource.pids={}:max",
            pids.join("pids.events").display()
        ));
    } else if let Some(dir) = cgroup2 {
        out.push(format!(
            "resource.oom={}:oom_kill",
            dir.join("memory.events").display()
        ));
        out.push(format!(
            "resource.pids={}:max",
            dir.join("pids.events").display()
        ));
    }
    out
}

/// Starts the supervisor as a daemon (own session, no stdio, no inherited
/// fds: an engine waiting for `create`'s pipes to close must not wait for it).
pub fn spawn(root: &Path, args: &SupervisorArgs) -> std::io::Result<u32> {
    let mut cmd = Command::new("/proc/self/exe");
    cmd.arg("--root").arg(root).arg("supervise").arg(&args.id);
    cmd.arg("--log").arg(&args.log);
    for (flag, v) in [
        ("--cgroup2", &args.cgroup2),
        ("--pins", &args.pins),
        ("--rules", &args.rules),
        ("--dns", &args.dns),
    ] {
        if let Some(v) = v {
            cmd.arg(flag).arg(v);
        }
    }
    if let Some(p) = &args.policy {
        cmd.arg("--policy").arg(p);
    }
    for c in &args.counters {
        cmd.arg("--counter").arg(c);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let inherit = args.inherit.clone();
    let mut copies = vec![0; inherit.len()];
    let first_free = 3 + inherit.len() as i32;
    // SAFETY: only async-signal-safe calls between fork and exec (no
    // allocation: the vectors were built before the fork).
    unsafe {
        cmd.pre_exec(move || {
            libc::setsid();
            // Copies above the targets first, so that placing one at 3.. cannot
            // overwrite another not yet placed.
            for (copy, fd) in copies.iter_mut().zip(&inherit) {
                *copy = libc::fcntl(*fd, libc::F_DUPFD_CLOEXEC, first_free);
                if *copy < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            for (i, copy) in copies.iter().enumerate() {
                if libc::dup2(*copy, 3 + i as i32) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            libc::syscall(libc::SYS_close_range, first_free as u32, u32::MAX, 0u32);
            Ok(())
        });
    }
    Ok(cmd.spawn()?.id())
}

fn entry(e: &Event, rules: &RuleBook) -> Entry {
    let hook = match e.hook {
        Hook::Connect4 | Hook::Connect6 => "connect",
        Hook::Sendmsg4 | Hook::Sendmsg6 => "sendmsg",
        Hook::SkbEgress => "egress",
        Hook::Unknown(_) => "unknown",
    };
    let protocol = match e.protocol as i32 {
        libc::IPPROTO_TCP => "tcp".to_owned(),
        libc::IPPROTO_UDP => "udp".to_owned(),
        libc::IPPROTO_ICMP => "icmp".to_owned(),
        n => n.to_string(),
    };
    Entry {
        kind: "network.blocked".into(),
        pid: (e.pid != 0).then_some(e.pid),
        comm: (!e.comm.is_empty()).then(|| e.comm.clone()),
        rule: Some(rules.label(e.rule_id)),
        details: json!({
            "hook": hook,
            "protocol": protocol,
            "destination": e.daddr.to_string(),
            "port": e.dport,
            "cgroup_id": e.cgroup_id,
        }),
    }
}

fn populated(cgroup2: &Path) -> bool {
    fs::read_to_string(cgroup2.join("cgroup.events"))
        .map(|t| t.lines().any(|l| l == "populated 1"))
        .unwrap_or(false)
}

/// The supervisor's loop; returns when the container is gone or on SIGTERM.
pub fn run(args: &SupervisorArgs) -> Result<(), AuditError> {
    let mut log = AuditLog::open(&args.log, &args.id, args.policy.as_deref())?;
    let rules = args
        .rules
        .as_deref()
        .map(RuleBook::load)
        .unwrap_or_default();
    let mut ring = args
        .pins
        .as_ref()
        .and_then(|p| purple_ebpf::open_events(p).ok());
    let mut limits: Vec<Counter> = args
        .counters
        .iter()
        .filter_map(|c| Counter::parse(c))
        .collect();
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGTERM);
    mask.add(Signal::SIGINT);
    let sigfd = mask
        .thread_block()
        .and_then(|()| SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK))
        .ok();
    if let (Some(config), Some(pins)) = (&args.dns, &args.pins) {
        let target = crate::dns::AuditTarget {
            log: &args.log,
            id: &args.id,
            policy: args.policy.as_deref(),
        };
        if let Err(e) = crate::dns::serve(config, pins, args.cgroup2.as_deref(), target) {
            log.append(&[crate::dns::failure(&e)])?;
        }
    }
    let drain = |log: &mut AuditLog, ring: &mut Option<_>| -> Result<(), AuditError> {
        let Some(ring) = ring else { return Ok(()) };
        let ring: &mut aya::maps::RingBuf<aya::maps::MapData> = ring;
        let mut batch = Vec::new();
        while let Some(item) = ring.next() {
            if let Some(e) = Event::parse(&item) {
                batch.push(entry(&e, &rules));
            }
        }
        log.append(&batch)
    };
    loop {
        let stop = {
            let mut fds = Vec::new();
            if let Some(r) = &ring {
                fds.push(PollFd::new(r.as_fd(), PollFlags::POLLIN));
            }
            if let Some(s) = &sigfd {
                fds.push(PollFd::new(s.as_fd(), PollFlags::POLLIN));
            }
            let _ = poll(&mut fds, PollTimeout::from(200u16));
            sigfd.as_ref().is_some_and(|s| {
                fds.iter().any(|f| {
                    f.as_fd().as_raw_fd() == s.as_raw_fd()
                        && f.revents().is_some_and(|r| r.contains(PollFlags::POLLIN))
                })
            })
        };
        drain(&mut log, &mut ring)?;
        let hits: Vec<Entry> = limits.iter_mut().filter_map(Counter::check).collect();
        log.append(&hits)?;
        let gone = args.cgroup2.as_ref().is_none_or(|d| !populated(d));
        if stop || gone {
            if gone {
                log.append(&[Entry::new("lifecycle", json!({"event": "exited"}))])?;
            }
            return Ok(());
        }
    }
}

/// Stops the supervisor `pid` of container `id` (if it is still that
/// process) and waits for it, so its last records are on disk.
pub fn stop(pid: u32, id: &str) {
    let cmdline = |pid: u32| fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let ours = |pid: u32| {
        let c = String::from_utf8_lossy(&cmdline(pid)).replace('\0', " ");
        c.contains(" supervise ") && c.contains(&format!(" {id} "))
    };
    if !ours(pid) {
        return;
    }
    // SAFETY: kill(2) on a pid whose cmdline we just checked.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(2);
    while ours(pid) && !is_zombie(pid) {
        if Instant::now() > deadline {
            // SAFETY: as above.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn is_zombie(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(true)
}
