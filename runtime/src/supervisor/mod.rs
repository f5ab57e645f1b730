//! The per-container supervisor: a small daemon `create` starts outside the
//! container. It turns the eBPF programs' decision events into audit records and
//! exits by itself once the container's cgroup is empty and its events are
//! written; `delete` stops it (SIGTERM, then SIGKILL) if it is still there.
//! It never holds the container: it is not its parent and not in its cgroup.

use std::fs;
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use purple_ebpf::events::{Event, Hook};
use purple_policy::plan::Action;
use purple_policy::supervision::{Alerts, SessionPlan};
use serde_json::{json, Value};
use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;

use crate::alert::Alerter;
use crate::audit::{AuditError, AuditLog, Entry};
use crate::network::RuleBook;
use crate::pidfd;
use crate::seccomp::{Notifier, Profile};

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
    /// The container's resolver (dns.json): serve its DNS. Its descriptors
    /// are the first inherited ones (3, 4, 5).
    #[arg(long)]
    pub dns: Option<PathBuf>,
    /// The original actions of the seccomp rules rewritten to notify (seccomp.json).
    #[arg(long)]
    pub seccomp_profile: Option<PathBuf>,
    /// Inherited fds: the seccomp listener socket, then notify fds.
    #[arg(long = "seccomp-fd", value_name = "FD")]
    pub seccomp_fds: Vec<RawFd>,
    /// Session budgets (`io.purple.session` JSON).
    #[arg(long, value_parser = json_arg::<SessionPlan>)]
    pub session: Option<SessionPlan>,
    /// The container's init process (host pid), whose exit status `exited` reports.
    #[arg(long)]
    pub init_pid: Option<i32>,
    /// Its start time (`/proc/<pid>/stat` field 22), which tells it from a
    /// later process given the same pid.
    #[arg(long)]
    pub init_start_time: Option<u64>,
    /// Alert targets (the `alerts` of `io.purple.audit`, JSON).
    #[arg(long, value_parser = json_arg::<Alerts>)]
    pub alerts: Option<Alerts>,
    /// Inherited pidfd of the caller the sandbox is tied to (`purple run`):
    /// when that process dies, the supervisor kills and deletes the container.
    #[arg(long, value_name = "FD")]
    pub caller_fd: Option<RawFd>,
}

fn json_arg<T: serde::de::DeserializeOwned>(s: &str) -> Result<T, String> {
    serde_json::from_str(s).map_err(|e| e.to_string())
}

impl SupervisorArgs {
    /// Takes over the inherited seccomp fds (once: they are owned after this).
    fn notifier(&self) -> Option<Notifier> {
        let (&listener, notify) = self.seccomp_fds.split_first()?;
        let profile: Profile =
            serde_json::from_slice(&fs::read(self.seccomp_profile.as_ref()?).ok()?).ok()?;
        // SAFETY: create passed these fds to this process for it alone.
        let own = |fd| unsafe { OwnedFd::from_raw_fd(fd) };
        let listener = UnixListener::from(own(listener));
        Notifier::new(
            listener,
            notify.iter().map(|&fd| own(fd)).collect(),
            profile,
        )
        .ok()
    }
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

/// Carries the runtime binary's path on disk across pentacle's re-exec from
/// the sealed copy (set by [`remember_binary`]).
const BINARY_ENV: &str = "PURPLE_RUNTIME_BINARY";

/// Records where the running binary lives on disk; call it first in `main`,
/// before `pentacle::ensure_sealed` re-executes the process from a sealed
/// memfd copy (afterwards /proc/self/exe names the copy). libcontainer
/// clears the environment before the container's program runs.
pub fn remember_binary() {
    if !pentacle::is_sealed() {
        if let Ok(exe) = std::env::current_exe() {
            std::env::set_var(BINARY_ENV, exe);
        }
    }
}

/// The binary the supervisor runs: the file on disk, not the sealed copy.
/// The supervisor never enters the container (only a thread of it enters
/// the network namespace, which gives no view of host processes), so it needs
/// no protection against /proc/<pid>/exe overwrites (CVE-2019-5736); running
/// the copy would keep a private 11 MiB memfd alive per container for as long
/// as the supervisor lives, where the file's pages are shared by every
/// supervisor through the page cache.
fn binary() -> PathBuf {
    std::env::var_os(BINARY_ENV)
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .unwrap_or_else(|| PathBuf::from("/proc/self/exe"))
}

/// The most fds `spawn` passes on: the resolver's three and up to three
/// reserved upstream sockets, the seccomp listener and one notify fd.
const MAX_FDS: usize = 10;

/// Starts the supervisor as a daemon (own session, no stdio, no inherited
/// fds but `fds`, which become 3, 4, ... in order and must be named so in
/// `args.seccomp_fds`: an engine waiting for `create`'s pipes to close must
/// not wait for it).
pub fn spawn(root: &Path, args: &SupervisorArgs, fds: &[RawFd]) -> std::io::Result<u32> {
    let mut cmd = Command::new(binary());
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
    if let Some(p) = &args.seccomp_profile {
        cmd.arg("--seccomp-profile").arg(p);
    }
    for fd in &args.seccomp_fds {
        cmd.arg("--seccomp-fd").arg(fd.to_string());
    }
    if let Some(s) = &args.session {
        cmd.arg("--session")
            .arg(serde_json::to_string(s).expect("plans serialise"));
    }
    if let Some(pid) = args.init_pid {
        cmd.arg("--init-pid").arg(pid.to_string());
    }
    if let Some(start) = args.init_start_time {
        cmd.arg("--init-start-time").arg(start.to_string());
    }
    if let Some(a) = &args.alerts {
        cmd.arg("--alerts")
            .arg(serde_json::to_string(a).expect("plans serialise"));
    }
    if let Some(fd) = args.caller_fd {
        cmd.arg("--caller-fd").arg(fd.to_string());
    }
    if fds.len() > MAX_FDS {
        return Err(std::io::Error::other("too many fds for the supervisor"));
    }
    let fds = fds.to_vec();
    let mask = handled_signals();
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            libc::setsid();
            // Out of the way first: a source may sit on a target number.
            // (A fixed array: no allocation between fork and exec.)
            let mut high = [-1; MAX_FDS];
            for (h, &fd) in high.iter_mut().zip(&fds) {
                *h = libc::fcntl(fd, libc::F_DUPFD, 100);
            }
            for (i, &fd) in high[..fds.len()].iter().enumerate() {
                if fd < 0 || libc::dup2(fd, 3 + i as RawFd) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            libc::syscall(libc::SYS_close_range, 3 + fds.len() as u32, u32::MAX, 0u32);
            mask.thread_block().map_err(std::io::Error::from)?;
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
    let kind = match e.action {
        Action::Allow => "network.allowed",
        Action::Deny => "network.blocked",
    };
    let mut details = json!({
        "hook": hook,
        "protocol": protocol,
        "destination": e.daddr.to_string(),
        // A port-less packet (ICMP, raw IP) has no port, not port 0.
        "port": if e.portless { Value::Null } else { json!(e.dport) },
        "cgroup_id": e.cgroup_id,
    });
    if let (Some(form), IpAddr::V6(a)) = (e.form, e.daddr) {
        details["ipv4_form"] = json!(form.name());
        details["ipv4"] = json!(form.embedded(a).to_string());
    }
    Entry {
        kind: kind.into(),
        pid: (e.pid != 0).then_some(e.pid),
        comm: (!e.comm.is_empty()).then(|| e.comm.clone()),
        rule: Some(rules.label(e.rule_id)),
        details,
    }
}

fn populated(cgroup2: &Path) -> bool {
    fs::read_to_string(cgroup2.join("cgroup.events"))
        .map(|t| t.lines().any(|l| l == "populated 1"))
        .unwrap_or(false)
}

/// Signals `start` sends the supervisor when the session begins.
pub const STARTED: Signal = Signal::SIGUSR1;

/// The signals the supervisor takes through its signalfd; blocked from
/// before exec so that one sent early (a `start` right after `create`)
/// waits instead of killing it.
fn handled_signals() -> SigSet {
    let mut mask = SigSet::empty();
    for s in [Signal::SIGTERM, Signal::SIGINT, STARTED] {
        mask.add(s);
    }
    mask
}

/// Where a session stands against its budgets.
struct Session {
    plan: SessionPlan,
    cgroup2: Option<PathBuf>,
    started: Option<Instant>,
    /// When SIGTERM went out.
    terminated: Option<Instant>,
    killed: bool,
}

impl Session {
    fn cpu_used(&self) -> Option<Duration> {
        let text = fs::read_to_string(self.cgroup2.as_ref()?.join("cpu.stat")).ok()?;
        let usec = text
            .lines()
            .find_map(|l| l.strip_prefix("usage_usec ")?.trim().parse().ok())?;
        Some(Duration::from_micros(usec))
    }

    /// The budget that ran out, as a record, the first time one does.
    fn overrun(&self) -> Option<Entry> {
        if self.terminated.is_some() {
            return None;
        }
        let started = self.started?;
        let over = |budget: &str, limit: u64, used: Duration| {
            (used.as_secs_f64() >= limit as f64).then(|| {
                Entry::new(
                    "resource.timeout",
                    json!({
                        "budget": budget,
                        "limit_seconds": limit,
                        "used_seconds": (used.as_secs_f64() * 1000.0).round() / 1000.0,
                        "grace_seconds": self.plan.grace_seconds,
                    }),
                )
            })
        };
        let wall = self
            .plan
            .timeout_seconds
            .and_then(|l| over("wall_clock", l, started.elapsed()));
        wall.or_else(|| {
            let limit = self.plan.cpu_seconds?;
            over("cpu", limit, self.cpu_used()?)
        })
    }

    fn signal_all(&self, sig: libc::c_int) {
        let Some(dir) = &self.cgroup2 else { return };
        let procs = fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
        for pid in procs.lines().filter_map(|l| l.parse::<i32>().ok()) {
            // SAFETY: kill(2) on the container's own processes; ESRCH is fine.
            unsafe { libc::kill(pid, sig) };
        }
    }

    /// Enforces the budgets: SIGTERM to every process once one runs out,
    /// SIGKILL after the grace period. Returns the record to write, if any.
    fn enforce(&mut self) -> Option<Entry> {
        if let Some(entry) = self.overrun() {
            self.signal_all(libc::SIGTERM);
            self.terminated = Some(Instant::now());
            return Some(entry);
        }
        let term = self.terminated?;
        if !self.killed && term.elapsed() >= Duration::from_secs(self.plan.grace_seconds) {
            self.signal_all(libc::SIGKILL);
            self.killed = true;
        }
        None
    }
}

/// The exit status of process `pid` while it is a zombie (field 52 of
/// /proc/PID/stat, a wait status): `{"code": N}` or `{"signal": "SIGKILL"}`.
fn zombie_status(pid: i32) -> Option<serde_json::Value> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    let mut fields = after.split_whitespace();
    if fields.next()? != "Z" {
        return None;
    }
    // Fields from 3 (state) on; exit_code is field 52.
    let status: i32 = fields.nth(52 - 4)?.parse().ok()?;
    Some(status_json(status))
}

/// A wait status as the `exited` record says it.
pub fn status_json(status: i32) -> serde_json::Value {
    let sig = status & 0x7f;
    if sig == 0 {
        json!({ "code": (status >> 8) & 0xff })
    } else {
        let name = Signal::try_from(sig).map_or_else(|_| sig.to_string(), |s| s.to_string());
        json!({ "signal": name })
    }
}

/// The supervisor of a sandbox tied to its caller: once the caller's pidfd
/// is readable (it died, SIGKILL included), nobody is left to delete it.
struct Caller {
    fd: OwnedFd,
    gone: bool,
}

impl Caller {
    /// Whether the caller just died (true once).
    fn died(&mut self) -> bool {
        let mut p = [PollFd::new(self.fd.as_fd(), PollFlags::POLLIN)];
        let now = !self.gone && poll(&mut p, PollTimeout::ZERO).unwrap_or(0) > 0;
        self.gone |= now;
        now
    }
}

/// Runs the supervisor of container `id` under state root `root`: the loop,
/// then, when the caller it is tied to died, the container's deletion.
pub fn supervise(args: &SupervisorArgs, root: &Path) -> anyhow::Result<()> {
    // SAFETY: create passed this fd to this process for it alone.
    let caller = args.caller_fd.map(|fd| Caller {
        fd: unsafe { OwnedFd::from_raw_fd(fd) },
        gone: false,
    });
    if run(args, caller)? {
        let id = crate::id::ContainerId::parse(&args.id)?;
        // The supervisor is the runtime binary: it deletes as `delete --force`
        // would (it does not stop itself, see `stop`), writing `deleted` last.
        crate::container::Runtime::new(root, false).delete(&id, true)?;
    }
    Ok(())
}

/// The supervisor's loop; returns when the container is gone or on SIGTERM,
/// with whether the caller the sandbox is tied to died.
fn run(args: &SupervisorArgs, mut caller: Option<Caller>) -> Result<bool, AuditError> {
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
    let mut notifier = args.notifier();
    // Shared with the resolver's threads: its dns.denied records are violations too.
    let alerter = Arc::new(
        Alerter::new(&args.alerts.clone().unwrap_or_default())
            .map_err(|reason| AuditError::Alerts { reason })?,
    );
    let mut session = Session {
        plan: args.session.clone().unwrap_or_default(),
        cgroup2: args.cgroup2.clone(),
        started: None,
        terminated: None,
        killed: false,
    };
    // A recycled pid is not the container's init: without its start time
    // matching, there is no init to wait for.
    let mut init = args.init_pid.and_then(|pid| {
        let fd = match args.init_start_time {
            Some(start) => pidfd::open_verified(pid, start),
            None => pidfd::open(pid),
        };
        Some((pid, fd?))
    });
    let mut exit_status = None;
    let mask = handled_signals();
    let sigfd = mask
        .thread_block()
        .and_then(|()| SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK))
        .ok();
    if let (Some(config), Some(pins)) = (&args.dns, &args.pins) {
        let target = crate::dns::AuditTarget {
            log: &args.log,
            id: &args.id,
            policy: args.policy.as_deref(),
            alerter: Arc::clone(&alerter),
        };
        if let Err(e) = crate::dns::serve(config, pins, target) {
            log.append(&[crate::dns::failure(&e)])?;
        }
    }
    let write = |log: &mut AuditLog, entries: &[Entry]| -> Result<(), AuditError> {
        alerter.send_violations(&log.append(entries)?);
        Ok(())
    };
    loop {
        {
            let mut fds = Vec::new();
            if let Some(r) = &ring {
                fds.push(PollFd::new(r.as_fd(), PollFlags::POLLIN));
            }
            if let Some(s) = &sigfd {
                fds.push(PollFd::new(s.as_fd(), PollFlags::POLLIN));
            }
            if let Some((_, fd)) = &init {
                fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
            }
            let caller_gone = caller.as_ref().is_some_and(|c| c.gone);
            if let Some(c) = caller.as_ref().filter(|c| !c.gone) {
                fds.push(PollFd::new(c.fd.as_fd(), PollFlags::POLLIN));
            }
            let raw: Vec<_> = notifier
                .as_ref()
                .map(Notifier::wait_fds)
                .unwrap_or_default();
            // SAFETY: the notifier owns these fds for the whole loop iteration.
            let borrowed: Vec<_> = raw
                .iter()
                .map(|&fd| unsafe { BorrowedFd::borrow_raw(fd) })
                .collect();
            fds.extend(
                borrowed
                    .iter()
                    .map(|fd| PollFd::new(*fd, PollFlags::POLLIN)),
            );
            // Once the caller is gone, its killed sandbox empties within
            // milliseconds: look again soon.
            let timeout = if caller_gone { 5u16 } else { 200 };
            let _ = poll(&mut fds, PollTimeout::from(timeout));
        }
        if caller.as_mut().is_some_and(Caller::died) {
            session.signal_all(libc::SIGKILL);
        }
        let mut stop = false;
        while let Some(Ok(Some(info))) = sigfd.as_ref().map(|s| s.read_signal()) {
            if info.ssi_signo == STARTED as u32 {
                session.started.get_or_insert_with(Instant::now);
            } else {
                stop = true;
            }
        }
        // Read the status while init is a zombie, before its parent reaps it.
        if let Some((pid, fd)) = &init {
            let mut p = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
            if poll(&mut p, PollTimeout::ZERO).unwrap_or(0) > 0 {
                exit_status = zombie_status(*pid);
                init = None;
            }
        }
        let mut batch = Vec::new();
        if let Some(n) = notifier.as_mut() {
            batch.extend(n.service(PollTimeout::ZERO));
        }
        if let Some(ring) = ring.as_mut() {
            while let Some(item) = ring.next() {
                if let Some(e) = Event::parse(&item) {
                    batch.push(entry(&e, &rules));
                }
            }
        }
        batch.extend(limits.iter_mut().filter_map(Counter::check));
        batch.extend(session.enforce());
        let dropped = alerter.take_dropped();
        if dropped > 0 {
            batch.push(Entry::new("alert.dropped", json!({ "count": dropped })));
        }
        write(&mut log, &batch)?;
        let gone = args.cgroup2.as_ref().is_none_or(|d| !populated(d));
        let orphaned = caller.as_ref().is_some_and(|c| c.gone);
        if stop || gone {
            if gone {
                let mut details = exit_status.take().unwrap_or_else(|| json!({}));
                details["event"] = json!("exited");
                if orphaned {
                    details["reason"] = json!("caller died");
                }
                write(&mut log, &[Entry::new("lifecycle", details)])?;
            }
            // Told to stop: whoever stops it deletes the container.
            return Ok(orphaned && !stop);
        }
    }
}

/// Whether `pid` is still the supervisor of container `id` (pids get reused).
fn is_ours(pid: u32, id: &str) -> bool {
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let c = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    c.contains(" supervise ") && c.contains(&format!(" {id} "))
}

/// Tells the supervisor `pid` of container `id` that the session started
/// (its wall-clock budget counts from now).
pub fn started(pid: u32, id: &str) {
    if is_ours(pid, id) {
        // SAFETY: kill(2) on a pid whose cmdline we just checked.
        unsafe { libc::kill(pid as i32, STARTED as i32) };
    }
}

/// How long a supervisor told to stop may take to write its last records
/// (each fsynced) before it is killed: generous, because on a host whose disk
/// is saturated an fsync can take seconds, and records lost to SIGKILL are
/// gone from the trail.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// Stops the supervisor `pid` of container `id` (if it is still that
/// process) and waits for it, so its last records are on disk.
pub fn stop(pid: u32, id: &str) {
    // A supervisor deleting its own container stops by returning.
    if pid == std::process::id() || !is_ours(pid, id) {
        return;
    }
    // SAFETY: kill(2) on a pid whose cmdline we just checked.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    if !wait_exit(pid, id, STOP_GRACE) {
        // SAFETY: as above.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    }
}

/// Waits up to `timeout` for the supervisor `pid` of `id` to exit by itself
/// (it does once the container's cgroup is empty and its records written);
/// false if it is still running. Waits on a pidfd, which is readable from the
/// moment the process exits, rather than polling /proc.
pub fn wait_exit(pid: u32, id: &str, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    // Opened before the check: the pidfd keeps naming this process even if
    // the pid is reused after it is reaped.
    let Some(fd) = pidfd::open(pid as i32) else {
        return true;
    };
    if !is_ours(pid, id) || is_zombie(pid) {
        return true;
    }
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
