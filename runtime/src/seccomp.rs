//! Seccomp denials as audit records. At create, every rule of the bundle's
//! profile that denies (`SCMP_ACT_ERRNO`, `SCMP_ACT_KILL*`) or logs
//! (`SCMP_ACT_LOG`) is rewritten to `SCMP_ACT_NOTIFY`, and so is a denying
//! default action (as one rule naming every syscall no rule mentions, because
//! libcontainer refuses `NOTIFY` as the default). The kernel then stops each
//! such call and hands it to the supervisor over the notify fd; the supervisor
//! finds the original rule that matches (syscall and argument conditions),
//! records it and answers as that rule says: the errno, the process killed,
//! or the call continued for `LOG`.
//!
//! `write` stays as the profile says: libcontainer's init needs it to send the
//! notify fd, so it cannot be notified. A denied `write` is enforced by the
//! kernel as before but not recorded per call; a `KILL` on it shows in the
//! `exited` record (signal SIGSYS).
//!
//! If the supervisor dies, the kernel answers every pending and later notified
//! call with `ENOSYS` (the listener fd is gone): nothing blocks forever, and
//! the syscall still fails.

use std::io::IoSliceMut;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, UnixAddr};

use libseccomp::{ScmpArch, ScmpNotifReq, ScmpNotifResp, ScmpNotifRespFlags, ScmpSyscall};
use oci_spec::runtime::{
    LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompOperator, LinuxSyscall, Spec,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::audit::Entry;

/// Highest syscall number probed when a denying default is spelled out.
const MAX_SYSCALL_NR: i32 = 1024;

/// The calls libcontainer's init makes after loading the filter to hand the
/// notify fd over (its channel): notified, they would wait for the very fd
/// they are sending.
const HANDOVER: [&str; 3] = ["write", "sendmsg", "recvmsg"];

/// The original decisions of the rules rewritten to `NOTIFY`; the supervisor
/// answers from it. Stored as `seccomp.json` next to the record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    /// Rewritten rules with their original actions, in the profile's order.
    pub rules: Vec<LinuxSyscall>,
    /// The default action, when it denies and was spelled out.
    pub default: Option<(LinuxSeccompAction, Option<u32>)>,
}

/// What the supervisor does with one notified call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Errno(i32),
    Kill,
    Log,
}

impl Verdict {
    fn of(action: LinuxSeccompAction, errno: Option<u32>) -> Option<Self> {
        match action {
            LinuxSeccompAction::ScmpActErrno => {
                Some(Self::Errno(errno.map_or(libc::EPERM, |e| e as i32)))
            }
            LinuxSeccompAction::ScmpActKill
            | LinuxSeccompAction::ScmpActKillThread
            | LinuxSeccompAction::ScmpActKillProcess => Some(Self::Kill),
            LinuxSeccompAction::ScmpActLog => Some(Self::Log),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Errno(_) => "errno",
            Self::Kill => "kill",
            Self::Log => "log",
        }
    }
}

/// Rewrites the spec's seccomp profile so that denials reach `listener`;
/// returns what the supervisor needs, or `None` when nothing is notified
/// (no profile, no denying rule, or the bundle has its own listener, which
/// keeps the notify fd).
pub fn rewrite(spec: &mut Spec, listener: &Path) -> Option<Profile> {
    let seccomp = spec.linux().as_ref()?.seccomp().as_ref()?;
    if seccomp.listener_path().is_some() {
        return None;
    }
    if let Some(call) = HANDOVER.iter().find(|c| !allows(seccomp, c)) {
        tracing::warn!(
            "seccomp profile denies {call}, which handing the notify fd over needs: \
             its denials are enforced but not recorded"
        );
        return None;
    }
    let mut seccomp: LinuxSeccomp = seccomp.clone();
    let mut profile = Profile::default();
    let mut syscalls = Vec::new();
    for rule in seccomp.syscalls().clone().unwrap_or_default() {
        let default_too = rule.action() == seccomp.default_action()
            && rule.errno_ret() == seccomp.default_errno_ret();
        if Verdict::of(rule.action(), rule.errno_ret()).is_none() || default_too {
            syscalls.push(rule);
            continue;
        }
        let (kept, notified): (Vec<String>, Vec<String>) = rule
            .names()
            .iter()
            .cloned()
            .partition(|n| HANDOVER.contains(&n.as_str()));
        if !kept.is_empty() {
            let mut r = rule.clone();
            r.set_names(kept);
            syscalls.push(r);
        }
        if !notified.is_empty() {
            let mut r = rule.clone();
            r.set_names(notified);
            profile.rules.push(r.clone());
            r.set_action(LinuxSeccompAction::ScmpActNotify);
            r.set_errno_ret(None);
            syscalls.push(r);
        }
    }
    // A LOG default would stop every call of the agent: left to the kernel's log.
    let default = seccomp.default_action();
    if Verdict::of(default, seccomp.default_errno_ret()).is_some_and(|v| v != Verdict::Log) {
        let mentioned: Vec<&String> = syscalls.iter().flat_map(|r| r.names()).collect();
        let names: Vec<String> = (0..MAX_SYSCALL_NR)
            .filter_map(|nr| ScmpSyscall::from(nr).get_name().ok())
            .filter(|n| !HANDOVER.contains(&n.as_str()) && !mentioned.contains(&n))
            .collect();
        if !names.is_empty() {
            let mut r = LinuxSyscall::default();
            r.set_names(names);
            r.set_action(LinuxSeccompAction::ScmpActNotify);
            syscalls.push(r);
            profile.default = Some((default, seccomp.default_errno_ret()));
        }
    }
    if profile.rules.is_empty() && profile.default.is_none() {
        return None;
    }
    seccomp.set_syscalls(Some(syscalls));
    seccomp.set_listener_path(Some(listener.to_owned()));
    let mut linux = spec.linux().clone().expect("checked above");
    linux.set_seccomp(Some(seccomp));
    spec.set_linux(Some(linux));
    Some(profile)
}

/// Whether the profile lets `call` through unconditionally: allowed by an
/// unconditional rule, or not denied by any rule under an allowing default.
fn allows(seccomp: &LinuxSeccomp, call: &str) -> bool {
    let through = |a, e| Verdict::of(a, e).is_none_or(|v| v == Verdict::Log);
    let rules = seccomp.syscalls().as_deref().unwrap_or_default();
    let mut naming = rules.iter().filter(|r| r.names().iter().any(|n| n == call));
    if through(seccomp.default_action(), seccomp.default_errno_ret()) {
        naming.all(|r| through(r.action(), r.errno_ret()))
    } else {
        naming.any(|r| {
            through(r.action(), r.errno_ret()) && r.args().as_ref().is_none_or(|a| a.is_empty())
        })
    }
}

/// Whether one argument condition holds, as libseccomp compares (64 bits,
/// unsigned; masked-equal is `(arg & valueTwo) == value`).
fn holds(cond: &LinuxSeccompArg, args: &[u64; 6]) -> bool {
    let Some(&arg) = args.get(cond.index()) else {
        return false;
    };
    let v = cond.value();
    match cond.op() {
        LinuxSeccompOperator::ScmpCmpNe => arg != v,
        LinuxSeccompOperator::ScmpCmpLt => arg < v,
        LinuxSeccompOperator::ScmpCmpLe => arg <= v,
        LinuxSeccompOperator::ScmpCmpEq => arg == v,
        LinuxSeccompOperator::ScmpCmpGe => arg >= v,
        LinuxSeccompOperator::ScmpCmpGt => arg > v,
        LinuxSeccompOperator::ScmpCmpMaskedEq => arg & cond.value_two().unwrap_or(0) == v,
    }
}

/// Conditions of one rule: all must hold, except that (as libcontainer and
/// runc load them) several conditions on one argument are separate rules.
fn rule_matches(rule: &LinuxSyscall, args: &[u64; 6]) -> bool {
    let conds = rule.args().as_deref().unwrap_or_default();
    let mut indexes: Vec<usize> = conds.iter().map(|c| c.index()).collect();
    indexes.sort_unstable();
    indexes.dedup();
    if indexes.len() < conds.len() {
        conds.iter().any(|c| holds(c, args))
    } else {
        conds.iter().all(|c| holds(c, args))
    }
}

impl Profile {
    /// The verdict on a call and the rule that gave it.
    pub fn decide(&self, name: &str, args: &[u64; 6]) -> (Verdict, String) {
        let found = self
            .rules
            .iter()
            .enumerate()
            .find(|(_, r)| r.names().iter().any(|n| n == name) && rule_matches(r, args));
        let (action, errno, rule) = match (found, self.default) {
            (Some((i, r)), _) => (r.action(), r.errno_ret(), format!("seccomp #{}", i + 1)),
            (None, Some((a, e))) => (a, e, "seccomp default".to_owned()),
            // Only rewritten rules notify; fail closed if one is not found.
            (None, None) => (LinuxSeccompAction::ScmpActErrno, None, "seccomp".to_owned()),
        };
        let verdict = Verdict::of(action, errno).unwrap_or(Verdict::Errno(libc::EPERM));
        (verdict, format!("{rule} {}", oci_name(action)))
    }
}

/// Receives one notification on `fd`, answers it and returns its record
/// (`None` if the notification vanished: the caller died meanwhile).
pub fn handle(fd: BorrowedFd<'_>, profile: &Profile) -> Option<Entry> {
    let raw = fd.as_raw_fd();
    let req = ScmpNotifReq::receive(raw).ok()?;
    let arch = req.data.arch;
    let name = req
        .data
        .syscall
        .get_name_by_arch(arch)
        .unwrap_or_else(|_| req.data.syscall.to_string());
    let (verdict, rule) = profile.decide(&name, &req.data.args);
    let comm = std::fs::read_to_string(format!("/proc/{}/comm", req.pid))
        .ok()
        .map(|c| c.trim_end().to_owned());
    // The pid may have been reused if the caller died before /proc was read.
    let valid = libseccomp::notify_id_valid(raw, req.id).is_ok();
    let resp = match verdict {
        Verdict::Errno(e) => ScmpNotifResp::new_error(req.id, -e, ScmpNotifRespFlags::empty()),
        Verdict::Log => ScmpNotifResp::new_continue(req.id, ScmpNotifRespFlags::empty()),
        Verdict::Kill => {
            if valid {
                // SIGKILL takes the whole thread group, as KILL_PROCESS does.
                // SAFETY: kill(2) on the pid the kernel just named, checked valid.
                unsafe { libc::kill(req.pid as i32, libc::SIGKILL) };
            }
            ScmpNotifResp::new_error(req.id, -libc::EPERM, ScmpNotifRespFlags::empty())
        }
    };
    // Fails with ENOENT when the caller is gone (killed above): nothing to answer.
    let _ = resp.respond(raw);
    let mut details = json!({
        "syscall": name,
        "nr": req.data.syscall.as_raw_syscall(),
        "arch": arch_name(arch),
        "args": req.data.args.iter().map(|a| format!("{a:#x}")).collect::<Vec<_>>(),
        "action": verdict.name(),
    });
    if let Verdict::Errno(e) = verdict {
        details["errno"] = json!(e);
    }
    let kind = if verdict == Verdict::Log {
        "syscall.logged"
    } else {
        "syscall.denied"
    };
    Some(Entry {
        kind: kind.into(),
        pid: Some(req.pid),
        comm: comm.filter(|_| valid),
        rule: Some(rule),
        details,
    })
}

/// The action as the OCI spec spells it (`SCMP_ACT_ERRNO`).
fn oci_name(action: LinuxSeccompAction) -> String {
    serde_json::to_value(action)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{action:?}"))
}

/// The listener side of `linux.seccomp.listenerPath`: accepts the notify fd
/// libcontainer sends for init and the ones Purple's executor sends for
/// `exec`'d processes (`crate::tenant`), then answers the calls on all of
/// them. `create` runs one while libcontainer builds the container
/// (init's calls between loading the filter and exec must be answered, or
/// the build would wait forever), then hands its fds to the supervisor.
pub struct Notifier {
    listener: UnixListener,
    fds: Vec<OwnedFd>,
    /// Accepted connections whose notify fd has not come yet: `exec`
    /// connects on the host before it builds the process whose executor
    /// sends it; reading them only once readable keeps the calls of the
    /// other processes answered meanwhile.
    waiting: Vec<UnixStream>,
    profile: Profile,
}

impl Notifier {
    pub fn new(
        listener: UnixListener,
        fds: Vec<OwnedFd>,
        profile: Profile,
    ) -> std::io::Result<Self> {
        listener.set_nonblocking(true)?;
        Ok(Self {
            listener,
            fds,
            waiting: Vec::new(),
            profile,
        })
    }

    /// The listener first, then the notify fds (the supervisor's command line order).
    pub fn raw_fds(&self) -> Vec<RawFd> {
        std::iter::once(self.listener.as_raw_fd())
            .chain(self.fds.iter().map(|f| f.as_raw_fd()))
            .collect()
    }

    /// What to wait on for [`Notifier::service`]: [`Notifier::raw_fds`],
    /// then the connections still to send their fd.
    pub fn wait_fds(&self) -> Vec<RawFd> {
        let mut fds = self.raw_fds();
        fds.extend(self.waiting.iter().map(|c| c.as_raw_fd()));
        fds
    }

    pub fn has_notify_fd(&self) -> bool {
        !self.fds.is_empty()
    }

    /// Waits up to `timeout` for work, then accepts new notify fds, answers
    /// pending calls and forgets fds whose processes are all gone; returns
    /// the records of the calls answered.
    pub fn service(&mut self, timeout: PollTimeout) -> Vec<Entry> {
        let ready: Vec<PollFlags> = {
            let mut pfds: Vec<PollFd> = std::iter::once(self.listener.as_fd())
                .chain(self.fds.iter().map(|f| f.as_fd()))
                .chain(self.waiting.iter().map(|c| c.as_fd()))
                .map(|fd| PollFd::new(fd, PollFlags::POLLIN))
                .collect();
            if poll(&mut pfds, timeout).unwrap_or(0) <= 0 {
                return Vec::new();
            }
            pfds.iter()
                .map(|p| p.revents().unwrap_or(PollFlags::empty()))
                .collect()
        };
        let (notify, waiting) = ready[1..].split_at(self.fds.len());
        let mut out = Vec::new();
        let mut gone = Vec::new();
        for (i, r) in notify.iter().enumerate() {
            let fd = self.fds[i].as_fd();
            if r.contains(PollFlags::POLLIN) {
                out.extend(handle(fd, &self.profile));
            } else if r.intersects(PollFlags::POLLHUP | PollFlags::POLLERR) {
                gone.push(i);
            }
        }
        for i in gone.into_iter().rev() {
            self.fds.remove(i);
        }
        let arrived: Vec<usize> = (0..waiting.len())
            .filter(|&i| !waiting[i].is_empty())
            .collect();
        for i in arrived.into_iter().rev() {
            let conn = self.waiting.remove(i);
            self.take_fd(conn);
        }
        if ready[0].contains(PollFlags::POLLIN) {
            while let Ok((conn, _)) = self.listener.accept() {
                self.take_fd(conn);
            }
        }
        out
    }

    /// Keeps the notify fd `conn` carries, or `conn` until it has sent it.
    fn take_fd(&mut self, conn: UnixStream) {
        match receive_fd(conn.as_raw_fd()) {
            Ok(Some(fd)) => self.fds.push(fd),
            Err(nix::errno::Errno::EAGAIN) => self.waiting.push(conn),
            Ok(None) | Err(_) => {
                tracing::warn!("seccomp listener: a connection without a notify fd")
            }
        }
    }
}

/// A [`Notifier`] served on a thread of `create` while libcontainer builds
/// the container; stopped (and joined) by [`Interim::finish`] or on drop.
pub struct Interim {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Notifier>>,
}

impl Interim {
    /// Serves `n`, passing the records of the calls it answers to `record`.
    pub fn start(mut n: Notifier, mut record: impl FnMut(Vec<Entry>) + Send + 'static) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            // `finish` waits for the poll under way to time out: with 50 ms
            // that added 25 ms on average (31 ms median measured) to every
            // create with seccomp notify; 5 ms costs a few idle wake-ups.
            while !flag.load(Ordering::Relaxed) {
                record(n.service(PollTimeout::from(5u16)));
            }
            // libcontainer sent the fd before build returned: take it now.
            record(n.service(PollTimeout::ZERO));
            n
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops serving and hands the notifier back (for the supervisor).
    pub fn finish(mut self) -> Option<Notifier> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take()?.join().ok()
    }
}

impl Drop for Interim {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The fd of the first SCM_RIGHTS message on `conn` (the container state
/// JSON that comes with it is not needed), without waiting: `EAGAIN` when
/// nothing was sent yet.
fn receive_fd(conn: RawFd) -> nix::Result<Option<OwnedFd>> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let flags = MsgFlags::MSG_CMSG_CLOEXEC | MsgFlags::MSG_DONTWAIT;
    let msg = recvmsg::<UnixAddr>(conn, &mut iov, Some(&mut space), flags)?;
    let fd = msg.cmsgs()?.find_map(|c| match c {
        ControlMessageOwned::ScmRights(fds) => fds.first().copied(),
        _ => None,
    });
    // SAFETY: the kernel just installed this fd for us; nothing else owns it.
    Ok(fd.map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }))
}

fn arch_name(arch: ScmpArch) -> String {
    format!("{arch:?}").to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{
        LinuxBuilder, LinuxSeccompArgBuilder, LinuxSeccompBuilder, SpecBuilder,
    };

    fn rule(names: &[&str], action: LinuxSeccompAction) -> LinuxSyscall {
        let mut r = LinuxSyscall::default();
        r.set_names(names.iter().map(|s| s.to_string()).collect());
        r.set_action(action);
        r
    }

    fn spec(default: LinuxSeccompAction, rules: Vec<LinuxSyscall>) -> Spec {
        let seccomp = LinuxSeccompBuilder::default()
            .default_action(default)
            .syscalls(rules)
            .build()
            .unwrap();
        let linux = LinuxBuilder::default().seccomp(seccomp).build().unwrap();
        SpecBuilder::default().linux(linux).build().unwrap()
    }

    fn rules_of(spec: &Spec) -> Vec<LinuxSyscall> {
        spec.linux()
            .as_ref()
            .unwrap()
            .seccomp()
            .as_ref()
            .unwrap()
            .syscalls()
            .clone()
            .unwrap()
    }

    #[test]
    fn denying_rules_notify_except_the_handover_calls() {
        let mut s = spec(
            LinuxSeccompAction::ScmpActAllow,
            vec![
                rule(&["mkdir", "write"], LinuxSeccompAction::ScmpActLog),
                rule(&["getpid"], LinuxSeccompAction::ScmpActAllow),
            ],
        );
        let p = rewrite(&mut s, Path::new("/run/x.sock")).unwrap();
        let rules = rules_of(&s);
        assert_eq!(rules[0].names(), &["write"]);
        assert_eq!(rules[0].action(), LinuxSeccompAction::ScmpActLog);
        assert_eq!(rules[1].names(), &["mkdir"]);
        assert_eq!(rules[1].action(), LinuxSeccompAction::ScmpActNotify);
        assert_eq!(rules[2].action(), LinuxSeccompAction::ScmpActAllow);
        assert_eq!(p.rules.len(), 1);
        assert_eq!(p.default, None);
        assert_eq!(
            p.decide("mkdir", &[0; 6]),
            (Verdict::Log, "seccomp #1 SCMP_ACT_LOG".into())
        );
    }

    #[test]
    fn a_denying_default_is_spelled_out_without_write() {
        let mut s = spec(
            LinuxSeccompAction::ScmpActErrno,
            vec![rule(
                &["read", "exit", "write", "sendmsg", "recvmsg"],
                LinuxSeccompAction::ScmpActAllow,
            )],
        );
        let p = rewrite(&mut s, Path::new("/run/x.sock")).unwrap();
        let spelled = &rules_of(&s)[1];
        assert_eq!(spelled.action(), LinuxSeccompAction::ScmpActNotify);
        assert!(spelled.names().iter().any(|n| n == "mkdir"));
        assert!(!spelled.names().iter().any(|n| n == "write" || n == "read"));
        assert_eq!(p.decide("mkdir", &[0; 6]).0, Verdict::Errno(libc::EPERM));
    }

    #[test]
    fn profiles_denying_the_handover_are_left_alone() {
        let mut s = spec(
            LinuxSeccompAction::ScmpActErrno,
            vec![rule(
                &["read", "write", "sendmsg"],
                LinuxSeccompAction::ScmpActAllow,
            )],
        );
        assert_eq!(rewrite(&mut s, Path::new("/x")), None);
        let mut s = spec(
            LinuxSeccompAction::ScmpActAllow,
            vec![rule(
                &["recvmsg", "mkdir"],
                LinuxSeccompAction::ScmpActErrno,
            )],
        );
        assert_eq!(rewrite(&mut s, Path::new("/x")), None);
    }

    #[test]
    fn own_listener_and_allow_only_profiles_are_left_alone() {
        let mut s = spec(
            LinuxSeccompAction::ScmpActAllow,
            vec![rule(&["getpid"], LinuxSeccompAction::ScmpActAllow)],
        );
        assert_eq!(rewrite(&mut s, Path::new("/x")), None);
        let mut s = spec(
            LinuxSeccompAction::ScmpActAllow,
            vec![rule(&["mkdir"], LinuxSeccompAction::ScmpActErrno)],
        );
        let mut linux = s.linux().clone().unwrap();
        let mut sc = linux.seccomp().clone().unwrap();
        sc.set_listener_path(Some("/theirs.sock".into()));
        linux.set_seccomp(Some(sc));
        s.set_linux(Some(linux));
        let before = s.clone();
        assert_eq!(rewrite(&mut s, Path::new("/x")), None);
        assert_eq!(s, before);
    }

    #[test]
    fn argument_conditions_pick_the_rule() {
        let cond = |index: usize, value: u64, op| {
            LinuxSeccompArgBuilder::default()
                .index(index)
                .value(value)
                .op(op)
                .build()
                .unwrap()
        };
        let mut kill = rule(&["kill"], LinuxSeccompAction::ScmpActKillProcess);
        kill.set_args(Some(vec![cond(1, 9, LinuxSeccompOperator::ScmpCmpEq)]));
        let mut errno = rule(&["kill"], LinuxSeccompAction::ScmpActErrno);
        errno.set_errno_ret(Some(libc::EACCES as u32));
        let p = Profile {
            rules: vec![kill, errno],
            default: None,
        };
        assert_eq!(p.decide("kill", &[1, 9, 0, 0, 0, 0]).0, Verdict::Kill);
        assert_eq!(
            p.decide("kill", &[1, 15, 0, 0, 0, 0]).0,
            Verdict::Errno(libc::EACCES)
        );
        let masked = LinuxSeccompArgBuilder::default()
            .index(0usize)
            .value(0x2u64)
            .value_two(0x3u64)
            .op(LinuxSeccompOperator::ScmpCmpMaskedEq)
            .build()
            .unwrap();
        assert!(holds(&masked, &[0x6, 0, 0, 0, 0, 0]));
        assert!(!holds(&masked, &[0x7, 0, 0, 0, 0, 0]));
        let either = {
            let mut r = rule(&["x"], LinuxSeccompAction::ScmpActErrno);
            r.set_args(Some(vec![
                cond(0, 1, LinuxSeccompOperator::ScmpCmpEq),
                cond(0, 2, LinuxSeccompOperator::ScmpCmpEq),
            ]));
            r
        };
        assert!(rule_matches(&either, &[2, 0, 0, 0, 0, 0]));
        assert!(!rule_matches(&either, &[3, 0, 0, 0, 0, 0]));
    }
}
