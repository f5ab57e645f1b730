//! The per-container supervisor: a small daemon `create` starts outside the
//! container. It turns the eBPF programs' decision events into audit records and
//! exits by itself once the container's cgroup is empty and its events are
//! written; `delete` stops it (SIGTERM, then SIGKILL) if it is still there.
//! It never holds the container: it is not its parent and not in its cgroup.
//!
//! Everything it needs comes from one file, the [`plan::Plan`] `create`
//! writes; its command line is `supervise --plan FILE`.
//!
//! Its failures are never silent: a part that cannot start writes a
//! `supervisor.error` record (an alerted violation) saying what it costs,
//! and where enforcement depends on that part the container is killed.

mod fold;
mod ledger;
mod output;
pub mod plan;
mod session;
mod spawn;
mod writer;

use std::net::IpAddr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use purple_ebpf::events::{Event, Hook};
use purple_policy::plan::Action;
use purple_policy::supervision::OnFailure;
use serde_json::{json, Value};

use crate::alert::Alerter;
use crate::audit::{AuditError, AuditLog, Entry, Kind};
use crate::diskwatch;
use crate::network::RuleBook;
use crate::pidfd;
use crate::seccomp::Notifier;
use plan::{Fds, Plan};
use session::{Counter, Session};
use writer::Writer;

pub use ledger::leftovers;
pub use spawn::{running, spawn, started, stop, wait_exit};

/// The supervisor's command line: the plan and nothing else.
#[derive(Debug, Clone, clap::Args)]
pub struct SuperviseArgs {
    /// The supervisor plan `create` wrote (`<root>/.purple/<id>/plan.json`).
    #[arg(long)]
    pub plan: PathBuf,
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
        Action::Allow => Kind::NetworkAllowed,
        Action::Deny => Kind::NetworkBlocked,
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
        kind,
        pid: (e.pid != 0).then_some(e.pid),
        comm: (!e.comm.is_empty()).then(|| e.comm.clone()),
        rule: Some(rules.label(e.rule_id)),
        details,
    }
}

fn populated(cgroup2: &Path) -> bool {
    std::fs::read_to_string(cgroup2.join("cgroup.events"))
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

/// The record of a part of the supervisor that failed, and what that costs.
pub(crate) fn failure(component: &str, error: impl std::fmt::Display, effect: &str) -> Entry {
    Entry::new(
        Kind::SupervisorError,
        json!({ "component": component, "error": error.to_string(), "effect": effect }),
    )
}

/// What the supervisor could not set up; written as records once the log is open.
#[derive(Default)]
struct Failures {
    entries: Vec<Entry>,
    /// Enforcement depends on a failed part: kill the container.
    kill: bool,
}

impl Failures {
    /// A part whose loss costs only records: the kernel still enforces.
    fn records_lost(&mut self, component: &str, error: impl std::fmt::Display, effect: &str) {
        self.entries.push(failure(component, error, effect));
    }

    /// A part enforcement depends on: fail closed.
    fn enforcement_lost(&mut self, component: &str, error: impl std::fmt::Display, why: &str) {
        self.entries.push(failure(
            component,
            error,
            &format!("{why}: every process of the container is killed"),
        ));
        self.kill = true;
    }
}

/// Runs the supervisor of the plan at `args.plan`: the loop, then, when the
/// caller the sandbox is tied to died, the container's deletion.
pub fn supervise(args: &SuperviseArgs) -> anyhow::Result<()> {
    let plan = Plan::load(&args.plan)?;
    let mut failures = Failures::default();
    let fds = match plan.fds.clone().take() {
        Ok(fds) => fds,
        Err(e) => {
            failures.enforcement_lost(
                "descriptors",
                e,
                "the resolver, the seccomp listener or the caller's pidfd is missing",
            );
            Fds::default()
        }
    };
    // Held until the end: the egress helper exits when its pipe closes.
    let Fds {
        resolver,
        seccomp_listener,
        seccomp_notify,
        caller,
        egress_exit: _egress_exit,
        output,
        gateway,
    } = fds;
    let output = match (&plan.output, output) {
        (Some(p), Some(pipe)) => {
            let (out, error) = output::Output::open(p, pipe);
            if let Some(e) = error {
                failures.records_lost(
                    "output",
                    e,
                    "the detached sandbox's output is read and discarded (purple logs has none)",
                );
            }
            Some(out)
        }
        _ => None,
    };
    let notifier = match (&plan.seccomp, seccomp_listener) {
        (Some(profile), Some(listener)) => {
            match Notifier::new(
                UnixListener::from(listener),
                seccomp_notify,
                profile.clone(),
            ) {
                Ok(n) => Some(n),
                Err(e) => {
                    failures.enforcement_lost(
                        "seccomp notify",
                        e,
                        "the container's denied calls cannot be answered as its policy says",
                    );
                    None
                }
            }
        }
        (Some(_), None) if !failures.kill => {
            failures.enforcement_lost(
                "seccomp notify",
                "the plan has a seccomp profile but no listener",
                "the container's denied calls cannot be answered as its policy says",
            );
            None
        }
        _ => None,
    };
    let caller = caller.map(|fd| Caller { fd, gone: false });
    let ledger = ledger::Ledger::create(&args.plan)
        .map_err(|e| {
            failures.records_lost(
                "ledger",
                e,
                "events the supervisor dies holding are not counted as lost",
            )
        })
        .ok();
    let parts = Parts {
        notifier,
        resolver,
        gateway,
        caller,
        output,
        failures,
        ledger,
    };
    if run(&plan, parts)? {
        let id = crate::id::ContainerId::parse(&plan.id)?;
        // The supervisor is the runtime binary: it deletes as `delete --force`
        // would (it does not stop itself, see `stop`), writing `deleted` last.
        crate::container::Runtime::new(&plan.root, false).delete(&id, true)?;
    }
    Ok(())
}

/// What `supervise` took over from the inherited descriptors.
struct Parts {
    notifier: Option<Notifier>,
    resolver: Option<plan::ResolverFds<OwnedFd>>,
    gateway: Option<OwnedFd>,
    caller: Option<Caller>,
    output: Option<output::Output>,
    failures: Failures,
    ledger: Option<ledger::Ledger>,
}

/// The supervisor's loop; returns when the container is gone or on SIGTERM,
/// with whether the caller the sandbox is tied to died.
fn run(plan: &Plan, parts: Parts) -> Result<bool, AuditError> {
    let Parts {
        mut notifier,
        resolver,
        gateway,
        mut caller,
        mut output,
        mut failures,
        ledger,
    } = parts;
    let take = |entries: &[Entry]| {
        if let Some(l) = &ledger {
            entries.iter().for_each(|e| l.take(e));
        }
    };
    let log = AuditLog::open(&plan.log, &plan.id, plan.policy.as_deref())?;
    let key = crate::audit::seal::host_key()
        .map_err(|e| {
            failures.records_lost(
                "audit key",
                e,
                "the log's checkpoints are not signed: it verifies as cut short",
            )
        })
        .ok();
    let rules = plan.rule_book();
    let mut ring = match &plan.pins {
        Some(pins) => match purple_ebpf::open_events(pins) {
            Ok(r) => Some(r),
            Err(e) => {
                failures.records_lost(
                    "network events",
                    e,
                    "the kernel still enforces the network rules, but its decisions are not \
                     recorded (no network.blocked records)",
                );
                None
            }
        },
        None => None,
    };
    let mut trail = match (&plan.trail, &plan.pins) {
        (Some(reg), Some(pins)) => {
            match crate::trail::Reader::open(reg.clone(), pins, plan.init.map(|i| i.pid)) {
                Ok(r) => Some(r),
                Err(e) => {
                    failures.records_lost(
                        "activity trail",
                        e,
                        "the programs the sandbox starts are not recorded (no process.exec records)",
                    );
                    None
                }
            }
        }
        _ => None,
    };
    let mut limits: Vec<Counter> = plan.counters.iter().cloned().map(Counter::new).collect();
    // Shared with the resolver's threads: its dns.denied records are violations too.
    let alerter =
        Arc::new(Alerter::new(&plan.alerts).map_err(|reason| AuditError::Alerts { reason })?);
    let mut session = Session::new(plan.session.clone(), plan.cgroup2.clone());
    // A recycled pid is not the container's init: without its start time
    // matching, there is no init to wait for.
    let mut init = plan.init.and_then(|i| {
        let fd = match i.start_time {
            Some(start) => pidfd::open_verified(i.pid, start),
            None => pidfd::open(i.pid),
        };
        Some((i.pid, fd?))
    });
    let mut disk = diskwatch::Watcher::new(&plan.disk_limits, plan.init.map(|i| i.pid));
    let mut exit_status = None;
    let mask = handled_signals();
    let sigfd = mask
        .thread_block()
        .and_then(|()| SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK))
        .ok();
    let mut writer = Writer::new(log, key, Arc::clone(&alerter), plan.log_max_size);
    let mut folder = fold::Folder::default();
    if failures.kill {
        session.signal_all(libc::SIGKILL);
    }
    writer.write(&failures.entries);
    if let (Some(config), Some(fds), Some(pins)) = (&plan.dns, resolver, &plan.pins) {
        let target = crate::dns::AuditTarget {
            log: &plan.log,
            id: &plan.id,
            policy: plan.policy.as_deref(),
            alerter: Arc::clone(&alerter),
        };
        if let Err(e) = crate::dns::serve(config.clone(), fds, pins, target) {
            writer.write(&[crate::dns::failure(&e)]);
        }
    }
    // Set by the gateway when a spent budget ends the session.
    let llm_stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    if let (Some(config), Some(fd)) = (&plan.llm, gateway) {
        let target = crate::dns::AuditTarget {
            log: &plan.log,
            id: &plan.id,
            policy: plan.policy.as_deref(),
            alerter: Arc::clone(&alerter),
        };
        let listener = std::net::TcpListener::from(fd);
        if let Err(e) =
            crate::gateway::serve(config.clone(), listener, target, Arc::clone(&llm_stop))
        {
            writer.write(&[failure(
                "llm gateway",
                e,
                "the sandbox cannot reach its LLM providers",
            )]);
        }
    }
    loop {
        {
            let mut fds = Vec::new();
            if let Some(r) = &ring {
                fds.push(PollFd::new(r.as_fd(), PollFlags::POLLIN));
            }
            if let Some(t) = &trail {
                fds.push(PollFd::new(t.fd(), PollFlags::POLLIN));
            }
            if let Some(s) = &sigfd {
                fds.push(PollFd::new(s.as_fd(), PollFlags::POLLIN));
            }
            if let Some(d) = disk.fd() {
                fds.push(PollFd::new(d, PollFlags::POLLIN));
            }
            if let Some(o) = output.as_ref().and_then(output::Output::fd) {
                fds.push(PollFd::new(o, PollFlags::POLLIN));
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
        // The signal alone is not enough: a budget must not wait forever on
        // one that never arrived. Init running another program is the start.
        if let (None, Some(i)) = (session.started, plan.init) {
            if i.exe
                .is_some_and(|at_create| pidfd::exe_id(i.pid) != Some(at_create))
            {
                session.started = Some(Instant::now());
            }
        }
        // Read the status while init is a zombie, before its parent reaps it.
        if let Some((pid, fd)) = &init {
            let mut p = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
            if poll(&mut p, PollTimeout::ZERO).unwrap_or(0) > 0 {
                exit_status = pidfd::zombie_status(*pid).map(status_json);
                init = None;
            }
        }
        if let Some(o) = output.as_mut() {
            o.pump();
        }
        // Looked at before the ring is drained: once the cgroup is empty every
        // event its processes sent is in the ring, and this drain takes it.
        // Looked at after, an event sent between the drain and the look
        // would never be read.
        let gone = plan.cgroup2.as_ref().is_none_or(|d| !populated(d));
        let mut batch = Vec::new();
        if let Some(n) = notifier.as_mut() {
            batch.extend(n.service(PollTimeout::ZERO));
        }
        take(&batch);
        if let Some(ring) = ring.as_mut() {
            while let Some(item) = ring.next() {
                if let Some(e) = Event::parse(&item) {
                    let e = entry(&e, &rules);
                    // Counted while the event is still in the ring: it
                    // leaves the ring when `item` drops.
                    take(std::slice::from_ref(&e));
                    batch.push(e);
                }
            }
        }
        // Read after the network ring and written before it: a process's
        // exec then precedes what it did (its exec was in the ring before
        // any of its events reached another one).
        if let Some(t) = trail.as_mut() {
            let mut execs = Vec::new();
            t.drain(&mut execs);
            take(&execs);
            batch.splice(0..0, execs);
        }
        let kernel = batch.len();
        batch.extend(limits.iter_mut().filter_map(Counter::check));
        if llm_stop.swap(false, std::sync::atomic::Ordering::SeqCst) {
            session.terminate();
        }
        batch.extend(session.enforce());
        let mut full = false;
        batch.extend(disk.check(&mut full));
        if full {
            session.signal_all(libc::SIGKILL);
        }
        let dropped = alerter.take_dropped();
        if dropped > 0 {
            batch.push(Entry::new(Kind::AlertDropped, json!({ "count": dropped })));
        }
        take(&batch[kernel..]);
        let now = Instant::now();
        let mut batch = folder.fold(batch, now);
        batch.extend(folder.expired(now, false));
        if !writer.write(&batch) && plan.on_failure == OnFailure::Kill {
            // Nothing the sandbox does may go unrecorded.
            session.signal_all(libc::SIGKILL);
        }
        let orphaned = caller.as_ref().is_some_and(|c| c.gone);
        if stop || gone {
            let dropped = output.as_mut().map_or(0, output::Output::finish);
            writer.write(&folder.expired(Instant::now(), true));
            if gone {
                let mut details = exit_status.take().unwrap_or_else(|| json!({}));
                details["event"] = json!("exited");
                if let Some(t) = &trail {
                    t.add_counts(&mut details);
                }
                if dropped > 0 {
                    details["output_dropped"] = json!(dropped);
                }
                if orphaned {
                    details["reason"] = json!("caller died");
                }
                writer.write(&[Entry::new(Kind::Lifecycle, details)]);
            }
            // Anything still unwritten is `delete`'s to account for.
            if let (true, Some(l)) = (writer.finish(), &ledger) {
                l.close();
            }
            // Told to stop: whoever stops it deletes the container.
            return Ok(orphaned && !stop);
        }
    }
}
