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
//!
//! (Over 500 lines with its tests: some 400 of rewriting and matching, the
//! rest tests of the private helpers they sit next to. Answering calls is in
//! `notify.rs`.)

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
use purple_policy::{argset, handover};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::audit::Entry;

mod notify;

pub use notify::{handle, Interim, Notifier};

/// Highest syscall number probed when a denying default is spelled out.
const MAX_SYSCALL_NR: i32 = 1024;

/// Calls i386 also reaches through `socketcall(2)`, whose arguments are in
/// memory: libseccomp refuses rules with different actions on them once one
/// has conditions (EEXIST), so their remainders notify as a whole.
const SOCKETCALL: &[&str] = &[
    "socket",
    "bind",
    "connect",
    "listen",
    "accept",
    "accept4",
    "getsockname",
    "getpeername",
    "socketpair",
    "send",
    "recv",
    "sendto",
    "recvfrom",
    "shutdown",
    "setsockopt",
    "getsockopt",
    "sendmsg",
    "recvmsg",
    "recvmmsg",
    "sendmmsg",
];

/// The bundle's filter as written (OCI meaning), which the supervisor
/// re-evaluates for every notified call. Stored as `seccomp.json` next to
/// the record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    /// Every rule of the bundle, in its order (`seccomp #N` is the N-th).
    pub rules: Vec<LinuxSyscall>,
    /// The default action and its errno.
    pub default: (LinuxSeccompAction, Option<u32>),
}

/// What the supervisor does with one notified call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Errno(i32),
    Kill,
    Log,
    /// Notified only because the kernel cannot tell it from a denied call
    /// (see [`rewrite`]): continued, not recorded.
    Allow,
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
            Self::Allow => "allow",
        }
    }
}

/// Rewrites the spec's seccomp profile so that denials reach `listener`;
/// returns what the supervisor needs, or `None` when nothing is notified
/// (no profile, no denying rule, or the bundle has its own listener, which
/// keeps the notify fd).
///
/// Under a denying default, a call that only conditional rules name (e.g.
/// `socket` allowed for AF_INET) would be refused by the kernel unrecorded
/// when no condition holds: its remaining argument values notify too, as
/// rules of their own where that is cheap to write (`argset::complement`),
/// else the whole call (the supervisor then continues the allowed ones:
/// seccomp compares registers only, which cannot change meanwhile).
pub fn rewrite(spec: &mut Spec, listener: &Path) -> Option<Profile> {
    let seccomp = spec.linux().as_ref()?.seccomp().as_ref()?;
    if seccomp.listener_path().is_some() {
        return None;
    }
    if let Some(call) = handover::handover_calls().find(|c| !allows(seccomp, c)) {
        tracing::warn!(
            "seccomp profile denies {call}, which handing the notify fd over needs: \
             its denials are enforced but not recorded"
        );
        return None;
    }
    let mut seccomp: LinuxSeccomp = seccomp.clone();
    let original = seccomp.syscalls().clone().unwrap_or_default();
    let default = (seccomp.default_action(), seccomp.default_errno_ret());
    let mut notified = false;
    let mut syscalls = Vec::new();
    for rule in &original {
        let default_too = (rule.action(), rule.errno_ret()) == default;
        if Verdict::of(rule.action(), rule.errno_ret()).is_none() || default_too {
            syscalls.push(rule.clone());
            continue;
        }
        let (kept, names): (Vec<String>, Vec<String>) = rule
            .names()
            .iter()
            .cloned()
            .partition(|n| handover::hands_over(n));
        if !kept.is_empty() {
            let mut r = rule.clone();
            r.set_names(kept);
            syscalls.push(r);
        }
        if !names.is_empty() {
            syscalls.push(notify(names, rule.args().clone()));
            notified = true;
        }
    }
    // A LOG default would stop every call of the agent: left to the kernel's log.
    if Verdict::of(default.0, default.1).is_some_and(|v| v != Verdict::Log) {
        let extra = remainders(&original);
        notified |= !extra.is_empty();
        // A call notified whole loses its conditional rules: libseccomp lets
        // the whole rule win anyway, and refuses the mix on socketcall's calls.
        let whole: Vec<&String> = extra
            .iter()
            .filter(|r| r.args().is_none())
            .flat_map(|r| r.names())
            .collect();
        for r in syscalls
            .iter_mut()
            .filter(|r| r.args().as_ref().is_some_and(|a| !a.is_empty()))
        {
            let names: Vec<String> = r
                .names()
                .iter()
                .filter(|n| !whole.contains(n))
                .cloned()
                .collect();
            r.set_names(names);
        }
        syscalls.retain(|r| !r.names().is_empty());
        syscalls.extend(extra);
        let mentioned: Vec<&String> = syscalls.iter().flat_map(|r| r.names()).collect();
        let mut names: Vec<String> = architectures(&seccomp)
            .into_iter()
            .flat_map(|arch| {
                (0..MAX_SYSCALL_NR)
                    .filter_map(move |nr| ScmpSyscall::from(nr).get_name_by_arch(arch).ok())
            })
            .filter(|n| !handover::hands_over(n) && !mentioned.contains(&n))
            .collect();
        names.sort_unstable();
        names.dedup();
        if !names.is_empty() {
            syscalls.push(notify(names, None));
            notified = true;
        }
    }
    if !notified {
        return None;
    }
    seccomp.set_syscalls(Some(syscalls));
    seccomp.set_listener_path(Some(listener.to_owned()));
    let mut linux = spec.linux().clone().expect("checked above");
    linux.set_seccomp(Some(seccomp));
    spec.set_linux(Some(linux));
    Some(Profile {
        rules: original,
        default,
    })
}

fn notify(names: Vec<String>, args: Option<Vec<LinuxSeccompArg>>) -> LinuxSyscall {
    let mut r = LinuxSyscall::default();
    r.set_names(names);
    r.set_action(LinuxSeccompAction::ScmpActNotify);
    r.set_args(args.filter(|a| !a.is_empty()));
    r
}

/// Notify rules for the argument values of conditionally named calls that
/// no rule covers (they would get the denying default from the kernel).
fn remainders(rules: &[LinuxSyscall]) -> Vec<LinuxSyscall> {
    let mut names: Vec<&String> = rules.iter().flat_map(|r| r.names()).collect();
    names.sort_unstable();
    names.dedup();
    let mut out = Vec::new();
    for name in names {
        if handover::hands_over(name) {
            continue;
        }
        let naming: Vec<&LinuxSyscall> =
            rules.iter().filter(|r| r.names().contains(name)).collect();
        let mut conds: Vec<Vec<LinuxSeccompArg>> = Vec::new();
        for r in &naming {
            let args = r.args().clone().unwrap_or_default();
            if args.is_empty() {
                // Decided outright by the kernel.
                conds.clear();
                break;
            }
            if has_repeated_index(&args) {
                // Loaded as one rule per comparison (see `rule_matches`).
                conds.extend(args.into_iter().map(|a| vec![a]));
            } else {
                conds.push(args);
            }
        }
        if conds.is_empty() {
            continue;
        }
        match argset::complement(&conds).filter(|_| !SOCKETCALL.contains(&name.as_str())) {
            Some(rest) => out.extend(
                rest.into_iter()
                    .map(|a| notify(vec![name.clone()], Some(a))),
            ),
            None => out.push(notify(vec![name.clone()], None)),
        }
    }
    out
}

/// The architectures the filter names: the host's when it names none.
fn architectures(seccomp: &LinuxSeccomp) -> Vec<ScmpArch> {
    let named: Vec<ScmpArch> = seccomp
        .architectures()
        .iter()
        .flatten()
        .filter_map(|a| serde_json::to_value(a).ok()?.as_str()?.parse().ok())
        .collect();
    if named.is_empty() {
        vec![ScmpArch::native()]
    } else {
        named
    }
}

/// libcontainer 0.7 loads `masked_eq` as `(arg & valueTwo) == value`; runc,
/// libseccomp and the bundles Purple writes mean `(arg & value) ==
/// valueTwo`. Swapped here, on what is handed to libcontainer only, so that
/// the kernel compares what the bundle says (the supervisor reads the
/// bundle's own profile).
pub fn for_libcontainer(seccomp: &mut LinuxSeccomp) {
    let Some(mut rules) = seccomp.syscalls().clone() else {
        return;
    };
    for rule in &mut rules {
        if let Some(mut args) = rule.args().clone() {
            for a in args
                .iter_mut()
                .filter(|a| a.op() == LinuxSeccompOperator::ScmpCmpMaskedEq)
            {
                let (mask, datum) = (a.value(), a.value_two().unwrap_or(0));
                *a = argset::cmp(a.index(), a.op(), datum, Some(mask));
            }
            rule.set_args(Some(args));
        }
    }
    seccomp.set_syscalls(Some(rules));
}

/// [`for_libcontainer`] on the spec's filter, if it has one.
pub fn spec_for_libcontainer(spec: &mut Spec) {
    let Some(mut linux) = spec.linux().clone() else {
        return;
    };
    if let Some(mut seccomp) = linux.seccomp().clone() {
        for_libcontainer(&mut seccomp);
        linux.set_seccomp(Some(seccomp));
        spec.set_linux(Some(linux));
    }
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

fn has_repeated_index(conds: &[LinuxSeccompArg]) -> bool {
    let mut indexes: Vec<usize> = conds.iter().map(|c| c.index()).collect();
    indexes.sort_unstable();
    indexes.dedup();
    indexes.len() < conds.len()
}

/// Conditions of one rule: all must hold, except that (as libcontainer and
/// runc load them) several conditions on one argument are separate rules.
fn rule_matches(rule: &LinuxSyscall, args: &[u64; 6]) -> bool {
    let conds = rule.args().as_deref().unwrap_or_default();
    if has_repeated_index(conds) {
        conds.iter().any(|c| argset::holds(c, args))
    } else {
        argset::matches(conds, args)
    }
}

impl Profile {
    /// The verdict on a call and the rule that gave it, as the kernel would
    /// decide it: a rule without conditions first (libseccomp lets it
    /// override conditional ones), then the first whose conditions hold,
    /// then the default. `None` for `name` means a call the filter's
    /// architectures do not know: refused.
    pub fn decide(&self, name: Option<&str>, args: &[u64; 6]) -> (Verdict, String) {
        let Some(name) = name else {
            return (
                Verdict::Errno(libc::ENOSYS),
                "seccomp unknown call".to_owned(),
            );
        };
        let naming = || {
            self.rules
                .iter()
                .enumerate()
                .filter(|(_, r)| r.names().iter().any(|n| n == name))
        };
        let found = naming()
            .find(|(_, r)| r.args().as_ref().is_none_or(|a| a.is_empty()))
            .or_else(|| naming().find(|(_, r)| rule_matches(r, args)));
        let (action, errno, rule) = match found {
            Some((i, r)) => (r.action(), r.errno_ret(), format!("seccomp #{}", i + 1)),
            None => (self.default.0, self.default.1, "seccomp default".to_owned()),
        };
        let verdict = match Verdict::of(action, errno) {
            Some(v) => v,
            None if action == LinuxSeccompAction::ScmpActAllow => Verdict::Allow,
            // TRAP, TRACE or NOTIFY of a bundle's own: not Purple's to run.
            None => Verdict::Errno(libc::EPERM),
        };
        (verdict, format!("{rule} {}", oci_name(action)))
    }
}

/// The action as the OCI spec spells it (`SCMP_ACT_ERRNO`).
fn oci_name(action: LinuxSeccompAction) -> String {
    serde_json::to_value(action)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{action:?}"))
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
        assert_eq!(p.rules.len(), 2);
        assert_eq!(
            p.decide(Some("mkdir"), &[0; 6]),
            (Verdict::Log, "seccomp #1 SCMP_ACT_LOG".into())
        );
        assert_eq!(p.decide(Some("getpid"), &[0; 6]).0, Verdict::Allow);
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
        assert_eq!(
            p.decide(Some("mkdir"), &[0; 6]).0,
            Verdict::Errno(libc::EPERM)
        );
        assert_eq!(p.decide(None, &[0; 6]).0, Verdict::Errno(libc::ENOSYS));
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
        // Both conditional: an unconditional rule would win over any (libseccomp).
        let mut errno = rule(&["kill"], LinuxSeccompAction::ScmpActErrno);
        errno.set_args(Some(vec![cond(1, 15, LinuxSeccompOperator::ScmpCmpEq)]));
        errno.set_errno_ret(Some(libc::EACCES as u32));
        let p = Profile {
            rules: vec![kill, errno],
            default: (LinuxSeccompAction::ScmpActAllow, None),
        };
        assert_eq!(p.decide(Some("kill"), &[1, 9, 0, 0, 0, 0]).0, Verdict::Kill);
        assert_eq!(
            p.decide(Some("kill"), &[1, 15, 0, 0, 0, 0]).0,
            Verdict::Errno(libc::EACCES)
        );
        // OCI (runc) meaning: (arg & value) == valueTwo.
        let masked = LinuxSeccompArgBuilder::default()
            .index(0usize)
            .value(0x3u64)
            .value_two(0x2u64)
            .op(LinuxSeccompOperator::ScmpCmpMaskedEq)
            .build()
            .unwrap();
        assert!(argset::holds(&masked, &[0x6, 0, 0, 0, 0, 0]));
        assert!(!argset::holds(&masked, &[0x7, 0, 0, 0, 0, 0]));
        // libcontainer gets the operands the other way round.
        let mut r = rule(&["openat"], LinuxSeccompAction::ScmpActAllow);
        r.set_args(Some(vec![masked]));
        let mut sc = LinuxSeccompBuilder::default()
            .default_action(LinuxSeccompAction::ScmpActErrno)
            .syscalls(vec![r])
            .build()
            .unwrap();
        for_libcontainer(&mut sc);
        let a = &sc.syscalls().as_ref().unwrap()[0].args().as_ref().unwrap()[0];
        assert_eq!((a.value(), a.value_two()), (0x2, Some(0x3)));
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

#[cfg(test)]
mod remainder_tests {
    use super::*;
    use oci_spec::runtime::{LinuxBuilder, LinuxSeccompBuilder, SpecBuilder};

    fn cond_rule(
        name: &str,
        action: LinuxSeccompAction,
        args: Vec<LinuxSeccompArg>,
    ) -> LinuxSyscall {
        let mut r = LinuxSyscall::default();
        r.set_names(vec![name.to_owned()]);
        r.set_action(action);
        r.set_args(Some(args));
        r
    }

    /// Under a denying default, the argument values no conditional rule
    /// covers notify; the covered ones stay the kernel's.
    #[test]
    fn conditional_calls_notify_outside_their_conditions() {
        let eq = |v| argset::cmp(0, LinuxSeccompOperator::ScmpCmpEq, v, None);
        let allow = LinuxSeccompAction::ScmpActAllow;
        let mut base = LinuxSyscall::default();
        base.set_names(["write", "sendmsg", "recvmsg"].map(String::from).to_vec());
        base.set_action(allow);
        let rules = vec![
            base,
            cond_rule("personality", allow, vec![eq(2)]),
            cond_rule("personality", allow, vec![eq(10)]),
            cond_rule("socket", allow, vec![eq(2)]),
            cond_rule(
                "getpriority",
                allow,
                vec![
                    eq(0),
                    argset::cmp(1, LinuxSeccompOperator::ScmpCmpEq, 0, None),
                ],
            ),
            cond_rule("kill", allow, vec![eq(1)]),
            cond_rule(
                "kill",
                allow,
                vec![argset::cmp(1, LinuxSeccompOperator::ScmpCmpEq, 0, None)],
            ),
        ];
        let seccomp = LinuxSeccompBuilder::default()
            .default_action(LinuxSeccompAction::ScmpActErrno)
            .syscalls(rules)
            .build()
            .unwrap();
        let linux = LinuxBuilder::default().seccomp(seccomp).build().unwrap();
        let mut spec = SpecBuilder::default().linux(linux).build().unwrap();
        let p = rewrite(&mut spec, Path::new("/x")).unwrap();
        let out = spec.linux().clone().unwrap().seccomp().clone().unwrap();
        let notifies = |name: &str, args: &[u64; 6]| {
            out.syscalls().iter().flatten().any(|r| {
                r.action() == LinuxSeccompAction::ScmpActNotify
                    && r.names().iter().any(|n| n == name)
                    && rule_matches(r, args)
            })
        };
        for (value, refused) in [(1, true), (2, false), (10, false), (40, true)] {
            let args = [value, 1, 0, 0, 0, 0];
            assert_eq!(notifies("personality", &args), refused, "{value}");
            let v = p.decide(Some("personality"), &args).0;
            assert_eq!(v == Verdict::Allow, !refused, "{value}");
        }
        // socketcall's calls notify whole (libseccomp refuses more on i386).
        assert!(notifies("socket", &[2, 1, 0, 0, 0, 0]));
        assert_eq!(
            p.decide(Some("socket"), &[2, 1, 0, 0, 0, 0]).0,
            Verdict::Allow
        );
        // Two arguments, one rule: the negation of each.
        assert!(notifies("getpriority", &[0, 1, 0, 0, 0, 0]));
        assert!(!notifies("getpriority", &[0, 0, 0, 0, 0, 0]));
        // Rules on different arguments: the whole call, judged by the supervisor.
        assert!(notifies("kill", &[1, 0, 0, 0, 0, 0]));
        assert_eq!(
            p.decide(Some("kill"), &[1, 5, 0, 0, 0, 0]).0,
            Verdict::Allow
        );
        assert_eq!(
            p.decide(Some("kill"), &[2, 5, 0, 0, 0, 0]).0,
            Verdict::Errno(libc::EPERM)
        );
    }
}
