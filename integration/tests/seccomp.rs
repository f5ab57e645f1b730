//! seccomp does exactly what the policy says and cannot be side-stepped,
//! proven by real system calls from a static probe (integration/probe/
//! sysprobe.c, run by purple_integration::sysprobe) under `purple run`: for
//! each operator one call that must pass and one that must be refused and
//! recorded as `syscall.denied` with its rule, and the 32-bit and x32 entry
//! points. The shipped profiles are in seccomp_profiles.rs.

use purple_integration::sysprobe::*;

/// What the probe needs to start and run under a denying default.
const BASE_ALLOW: &str = "[read, write, close, fstat, newfstatat, statx, lseek, mmap, mprotect, \
    munmap, brk, rt_sigaction, rt_sigprocmask, rt_sigreturn, execve, exit, exit_group, \
    arch_prctl, set_tid_address, set_robust_list, rseq, prlimit64, getrandom, futex, getpid, \
    uname, readlinkat, accept4, sendmsg, recvmsg, recvfrom, sigaltstack, close_range, fcntl, \
    gettid, clock_gettime]";

/// One operator: a rule on a harmless call, arguments for which its
/// condition holds and arguments for which it does not (both succeed
/// unfiltered), and the value of the argument the record shows first.
struct Operator {
    op: &'static str,
    call: &'static str,
    condition: &'static str,
    inside: &'static [&'static str],
    outside: &'static [&'static str],
    /// `args[0]` in the records of the inside and the outside call.
    arg0: (u64, u64),
}

const OPERATORS: &[Operator] = &[
    Operator {
        op: "eq",
        call: "sched_get_priority_max",
        condition: "{ arg: 0, op: eq, value: 1 }",
        inside: &["raw", "146", "1"],
        outside: &["raw", "146", "0"],
        arg0: (1, 0),
    },
    Operator {
        op: "neq",
        call: "sched_get_priority_min",
        condition: "{ arg: 0, op: neq, value: 0 }",
        inside: &["raw", "147", "2"],
        outside: &["raw", "147", "0"],
        arg0: (2, 0),
    },
    Operator {
        op: "lt",
        call: "getpgid",
        condition: "{ arg: 0, op: lt, value: 1 }",
        inside: &["raw", "121", "0"],
        outside: &["raw", "121", "1"],
        arg0: (0, 1),
    },
    Operator {
        op: "lte",
        call: "alarm",
        condition: "{ arg: 0, op: lte, value: 5 }",
        inside: &["raw", "37", "3"],
        outside: &["raw", "37", "100"],
        arg0: (3, 100),
    },
    Operator {
        op: "gt",
        call: "umask",
        condition: "{ arg: 0, op: gt, value: 0o777 }",
        inside: &["raw", "95", "0x1000"],
        outside: &["raw", "95", "18"],
        arg0: (0x1000, 18),
    },
    Operator {
        op: "gte",
        call: "getpriority",
        condition: "{ arg: 0, op: gte, value: 1 }",
        inside: &["raw", "140", "1", "0"],
        outside: &["raw", "140", "0", "0"],
        arg0: (1, 0),
    },
    // dup3's flags has O_CLOEXEC
    Operator {
        op: "masked_eq",
        call: "dup3",
        condition: "{ arg: 2, op: masked_eq, mask: 0x80000, value: 0x80000 }",
        inside: &["raw", "292", "1", "51", "0x80000"],
        outside: &["raw", "292", "1", "50", "0"],
        arg0: (1, 1),
    },
    // eventfd2's flags & (EFD_CLOEXEC | EFD_NONBLOCK) is not EFD_CLOEXEC
    Operator {
        op: "masked_neq",
        call: "eventfd2",
        condition: "{ arg: 1, op: masked_neq, mask: 0x80800, value: 0x80000 }",
        inside: &["raw", "290", "7", "0x80800"],
        outside: &["raw", "290", "9", "0x80000"],
        arg0: (7, 9),
    },
];

fn operator_policy(name: &str, head: &str, action: &str) -> String {
    let rules: String = OPERATORS
        .iter()
        .map(|o| {
            format!(
                "    - {{ syscall: {}, action: {action}, conditions: [{}] }}\n",
                o.call, o.condition
            )
        })
        .collect();
    format!("name: {name}\nsyscalls:\n  action: errno\n{head}  advanced_rules:\n{rules}")
}

fn operator_steps() -> Vec<&'static [&'static str]> {
    OPERATORS
        .iter()
        .flat_map(|o| [o.inside, o.outside])
        .collect()
}

/// socket(2) rules before the advanced ones under an allowing default: the
/// families outside {1, 2, 10, 16} (0, 3, 4-7, 8-9, 11, 12-15, >= 17) and
/// netlink other than routing; io_uring's deny rule is #1.
const SOCKET_RULES: usize = 8;

/// Under an allowing default each operator's rule denies: the call inside
/// its condition is refused and recorded with the rule, the other passes.
#[test]
fn every_operator_denies_exactly_its_condition() {
    let r = run(&operator_policy("ops-deny", "", "deny"), &operator_steps());
    for (i, o) in OPERATORS.iter().enumerate() {
        assert_eq!(r.line(2 * i), EPERM, "{}", o.op);
        assert!(
            r.line(2 * i + 1).starts_with("ok"),
            "{}: {}",
            o.op,
            r.line(2 * i + 1)
        );
        let rule = format!("seccomp #{} SCMP_ACT_ERRNO", 1 + SOCKET_RULES + i + 1);
        r.assert_recorded(o.call, o.arg0.0, &rule);
        assert_eq!(
            r.denied(o.call).len(),
            1,
            "{}: the passing call was recorded",
            o.op
        );
    }
}

/// Under a denying default each operator's rule allows: the call inside its
/// condition passes, the other is refused by the default and recorded
/// (issue 12 item 7: before, the kernel refused it unrecorded).
#[test]
fn every_operator_allows_exactly_its_condition() {
    let head = format!("  default_deny: true\n  allow: {BASE_ALLOW}\n");
    let r = run(
        &operator_policy("ops-allow", &head, "allow"),
        &operator_steps(),
    );
    for (i, o) in OPERATORS.iter().enumerate() {
        assert!(
            r.line(2 * i).starts_with("ok"),
            "{}: {}",
            o.op,
            r.line(2 * i)
        );
        assert_eq!(r.line(2 * i + 1), EPERM, "{}", o.op);
        r.assert_recorded(o.call, o.arg0.1, "seccomp default SCMP_ACT_ERRNO");
        assert_eq!(
            r.denied(o.call).len(),
            1,
            "{}: the allowed call was recorded",
            o.op
        );
    }
}

/// The 32-bit entry point (int 0x80, i386 numbers) and the x32 one are
/// judged as x86_64: a denied mkdir is refused and recorded through both,
/// under an allowing default (deny list) and a denying one (allow list).
#[test]
fn compat_entry_points_are_judged_as_x86_64() {
    let deny = "name: no-mkdir32\nsyscalls:\n  deny: [mkdir]\n";
    let allow = format!("name: allow32\nsyscalls:\n  default_deny: true\n  allow: {BASE_ALLOW}\n");
    for (policy, rule) in [
        (deny.to_owned(), "seccomp #1 SCMP_ACT_ERRNO"),
        (allow, "seccomp default SCMP_ACT_ERRNO"),
    ] {
        let r = run(
            &policy,
            &[
                &["int80", I386_MKDIR, "s:/out/m32", "0755"],
                &["int80", I386_GETPID],
                &["x32", NR_MKDIR, "s:/out/mx32", "0755"],
            ],
        );
        assert_eq!(r.line(0), EPERM, "{policy}");
        assert!(!r.out.path().join("m32").exists());
        assert!(r.line(1).starts_with("ok"), "i386 getpid: {}", r.line(1));
        assert_eq!(r.line(2), EPERM, "{policy}");
        let mkdirs = r.denied("mkdir");
        assert_eq!(mkdirs.len(), 2, "{mkdirs:?}");
        let archs: Vec<&str> = mkdirs
            .iter()
            .filter_map(|m| m.details["arch"].as_str())
            .collect();
        assert_eq!(archs, ["x86", "x32"]);
        assert!(
            mkdirs.iter().all(|m| m.rule.as_deref() == Some(rule)),
            "{mkdirs:?}"
        );
    }
}
