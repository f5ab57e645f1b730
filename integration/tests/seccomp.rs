//! seccomp does exactly what the policy says and cannot be side-stepped,
//! proven by real system calls from a static probe (integration/probe/
//! sysprobe.c) under `purple run`: for each operator and each shipped
//! profile's conditional rules one call that must pass and one that must be
//! refused and recorded as `syscall.denied` with its rule; io_uring, the
//! variants of a denied call, the 32-bit and x32 entry points and socket
//! families outside the policy's set.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use purple_integration::*;
use purple_runtime::audit;

/// Builds the probe (static, non-PIE: int 0x80 needs its data below 4 GiB).
fn sysprobe() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let out = std::env::temp_dir().join(format!("purple-sysprobe-{}", std::process::id()));
        let st = Command::new("cc")
            .args(["-static", "-no-pie", "-O2", "-o"])
            .arg(&out)
            .arg(repo().join("integration/probe/sysprobe.c"))
            .status()
            .expect("a C compiler is installed (build-essential)");
        assert!(st.success(), "cannot build sysprobe");
        out
    })
}

/// One `purple run` of the probe: its lines, in step order, and its records.
struct Run {
    lines: Vec<String>,
    records: Vec<audit::Record>,
    /// The host directory bound writable at /out.
    out: tempfile::TempDir,
}

impl Run {
    fn line(&self, step: usize) -> &str {
        &self.lines[step]
    }

    /// The `syscall.denied` records of `call`.
    fn denied(&self, call: &str) -> Vec<&audit::Record> {
        self.records
            .iter()
            .filter(|r| r.kind == "syscall.denied" && r.details["syscall"] == call)
            .collect()
    }

    /// Exactly one refusal of `call` whose first argument is `arg0` (any
    /// when `None`: a pointer), by `rule`.
    fn assert_recorded(&self, call: &str, arg0: impl Into<Option<u64>>, rule: &str) {
        let arg = arg0.into().map(|a| format!("{a:#x}"));
        let denied = self.denied(call);
        let found: Vec<&&audit::Record> = denied
            .iter()
            .filter(|r| {
                arg.as_ref()
                    .is_none_or(|a| r.details["args"][0] == a.as_str())
            })
            .collect();
        assert_eq!(
            found.len(),
            1,
            "{call}({arg:?}) not recorded once: {:#?}",
            self.records
        );
        assert_eq!(found[0].rule.as_deref(), Some(rule), "{:?}", found[0]);
    }

    fn assert_not_recorded(&self, call: &str) {
        assert!(
            self.denied(call).is_empty(),
            "{call} recorded: {:?}",
            self.denied(call)
        );
    }
}

/// Runs the probe's `steps` under `profile` (a shipped name, or YAML text
/// written as `<name>.yaml` in the working directory).
fn run(profile: &str, steps: &[&[&str]]) -> Run {
    let work = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    fs::copy(sysprobe(), work.path().join("sysprobe")).unwrap();
    let profile = match profile.strip_prefix("name: ") {
        Some(rest) => {
            let name = rest.lines().next().unwrap().trim();
            fs::write(work.path().join(format!("{name}.yaml")), profile).unwrap();
            format!("./{name}.yaml")
        }
        None => profile.to_owned(),
    };
    let oci = Oci::new();
    let id = unique_id("scmp");
    let mut args: Vec<&str> = vec!["/work/sysprobe"];
    for (i, s) in steps.iter().enumerate() {
        if i > 0 {
            args.push("--");
        }
        args.extend_from_slice(s);
    }
    let o = Command::new(purple())
        .current_dir(work.path())
        .arg("--root")
        .arg(oci.root.path())
        .args(["run", "--profile", &profile, "--id", &id])
        .arg("-v")
        .arg(format!("{}:/out", out.path().display()))
        .arg("--")
        .args(&args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{profile}: {stdout}{stderr}");
    let lines: Vec<String> = stdout.lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), steps.len(), "{profile}: {stdout}{stderr}");
    let log = stderr.rsplit("audit log ").next().unwrap().trim();
    let records = audit::verify(Path::new(log)).unwrap();
    assert_no_leftovers(&oci, &id);
    assert!(!oci.root.path().join("bundles").join(&id).exists());
    Run {
        lines,
        records,
        out,
    }
}

const AT_FDCWD: &str = "-100";
const EPERM: &str = "err EPERM";

// x86_64 numbers, then i386 ones for int 0x80.
const NR_IOCTL: &str = "16";
const NR_SOCKET: &str = "41";
const NR_MKDIR: &str = "83";
const NR_OPEN: &str = "2";
const NR_OPENAT: &str = "257";
const NR_MKDIRAT: &str = "258";
const NR_FCHMODAT: &str = "268";
const NR_RENAMEAT2: &str = "316";
const NR_IO_URING_SETUP: &str = "425";
const I386_MKDIR: &str = "39";
const I386_GETPID: &str = "20";

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

/// production-secure's promise, as the attack of issue 12 item 1: a file on
/// a writable bind opened O_RDWR|O_CREAT|O_TRUNC is refused and recorded
/// (the masked_eq rule is loaded with its operands in libcontainer's order);
/// reading still works. Its other conditional rules each way: socket only
/// for AF_INET/AF_INET6, ioctl only TCGETS, refusals recorded.
#[test]
fn production_secure_opens_read_only_and_records_every_refusal() {
    let r = run(
        "production-secure",
        &[
            &[
                "raw",
                NR_OPENAT,
                AT_FDCWD,
                "s:/out/planted",
                "0x242",
                "0644",
            ],
            &["raw", NR_OPENAT, AT_FDCWD, "s:/out/planted", "0x41", "0644"],
            &["raw", NR_OPENAT, AT_FDCWD, "s:/work/sysprobe", "0"],
            &["raw", NR_OPEN, "s:/out/planted", "0x242", "0644"],
            &["raw", NR_SOCKET, "2", "1", "0"],
            &["raw", NR_SOCKET, "10", "2", "0"],
            &["raw", NR_SOCKET, "1", "1", "0"],
            &["raw", NR_SOCKET, "40", "1", "0"],
            &["raw", NR_IOCTL, "1", "0x5401", "0"],
            &["raw", NR_IOCTL, "1", "0x5402", "0"],
            &["raw", NR_IO_URING_SETUP, "4", "0"],
        ],
    );
    assert_eq!(r.line(0), EPERM, "O_RDWR|O_CREAT|O_TRUNC");
    assert_eq!(r.line(1), EPERM, "O_WRONLY|O_CREAT");
    assert!(r.line(2).starts_with("ok"), "O_RDONLY: {}", r.line(2));
    assert_eq!(r.line(3), EPERM, "open(2)");
    assert!(
        !r.out.path().join("planted").exists(),
        "the agent created a file"
    );
    assert!(r.line(4).starts_with("ok"), "AF_INET: {}", r.line(4));
    assert!(r.line(5).starts_with("ok"), "AF_INET6: {}", r.line(5));
    assert_eq!(r.line(6), EPERM, "AF_UNIX");
    assert_eq!(r.line(7), EPERM, "AF_VSOCK");
    // stdout is a pipe: TCGETS reaches the tty layer, which says ENOTTY.
    assert_eq!(r.line(8), "err ENOTTY", "TCGETS");
    assert_eq!(r.line(9), EPERM, "TCSETS");
    assert_eq!(r.line(10), EPERM, "io_uring_setup");
    let default = "seccomp default SCMP_ACT_ERRNO";
    let opens = r.denied("openat");
    assert_eq!(opens.len(), 2, "{opens:?}");
    assert!(opens.iter().all(|o| o.rule.as_deref() == Some(default)));
    assert_eq!(opens[0].details["args"][2], "0x242");
    r.assert_recorded("open", None, default);
    r.assert_recorded("socket", 1, default);
    r.assert_recorded("socket", 40, default);
    assert_eq!(r.denied("socket").len(), 2);
    let ioctl = r.denied("ioctl");
    assert_eq!(ioctl.len(), 1, "{ioctl:?}");
    assert_eq!(ioctl[0].details["args"][1], "0x5402");
    r.assert_recorded("io_uring_setup", 4, default);
}

/// Every shipped profile: socket families outside the known-good set
/// (vsock, packet, alg, netlink other than routing) and io_uring are refused
/// and recorded; AF_INET, AF_UNIX and NETLINK_ROUTE work (code-analyst
/// denies socket outright).
#[test]
fn shipped_profiles_refuse_side_doors_and_record_them() {
    for profile in [
        "ai-dev-safe",
        "cicd-worker",
        "code-analyst",
        "data-retriever",
        "development",
        "honeypot",
        "secure-agent",
    ] {
        let r = run(
            profile,
            &[
                &["raw", NR_SOCKET, "2", "1", "0"],
                &["raw", NR_SOCKET, "1", "1", "0"],
                &["raw", NR_SOCKET, "16", "3", "0"],
                &["raw", NR_SOCKET, "40", "1", "0"],
                &["raw", NR_SOCKET, "17", "3", "0"],
                &["raw", NR_SOCKET, "38", "5", "0"],
                &["raw", NR_SOCKET, "16", "3", "9"],
                &["uring-mkdir", "/out/uring"],
            ],
        );
        let socket_ok = profile != "code-analyst";
        for (step, what) in [(0, "AF_INET"), (1, "AF_UNIX"), (2, "NETLINK_ROUTE")] {
            assert_eq!(
                r.line(step).starts_with("ok"),
                socket_ok,
                "{profile} {what}: {}",
                r.line(step)
            );
        }
        for (step, what) in [
            (3, "AF_VSOCK"),
            (4, "AF_PACKET"),
            (5, "AF_ALG"),
            (6, "NETLINK_AUDIT"),
            (7, "io_uring"),
        ] {
            assert_eq!(r.line(step), EPERM, "{profile} {what}");
        }
        assert!(
            !r.out.path().join("uring").exists(),
            "{profile}: io_uring mkdir"
        );
        let sockets = r.denied("socket");
        let refused: Vec<&str> = sockets
            .iter()
            .filter_map(|s| s.details["args"][0].as_str())
            .collect();
        let want: &[&str] = if socket_ok {
            &["0x28", "0x11", "0x26", "0x10"]
        } else {
            &["0x2", "0x1", "0x10", "0x28", "0x11", "0x26", "0x10"]
        };
        assert_eq!(refused, want, "{profile}");
        assert!(sockets.iter().all(|s| s
            .rule
            .as_deref()
            .is_some_and(|r| r.starts_with("seccomp #"))));
        assert_eq!(r.denied("io_uring_setup").len(), 1, "{profile}");
    }
}

/// A `mkdir` deny covers mkdirat (and rename's and chmod's variants), and
/// io_uring, which would make the mkdirat without passing the filter, is
/// refused and recorded; with `allow_io_uring: true` the bypass is real,
/// which is why the field has to be set on purpose.
#[test]
fn families_and_io_uring_cannot_side_step_a_deny() {
    let deny = "name: no-mkdir\nsyscalls:\n  deny: [mkdir, rename, chmod]\n";
    let r = run(
        deny,
        &[
            &["raw", NR_MKDIR, "s:/out/a", "0755"],
            &["raw", NR_MKDIRAT, AT_FDCWD, "s:/out/b", "0755"],
            &["uring-mkdir", "/out/c"],
            &[
                "raw",
                NR_RENAMEAT2,
                AT_FDCWD,
                "s:/work/sysprobe",
                AT_FDCWD,
                "s:/out/d",
                "0",
            ],
            &["raw", NR_FCHMODAT, AT_FDCWD, "s:/out", "0777"],
        ],
    );
    for step in 0..5 {
        assert_eq!(r.line(step), EPERM, "step {step}");
    }
    for d in ["a", "b", "c", "d"] {
        assert!(!r.out.path().join(d).exists(), "{d} created");
    }
    r.assert_recorded("mkdir", None, "seccomp #1 SCMP_ACT_ERRNO");
    r.assert_recorded("mkdirat", u64::MAX - 99, "seccomp #1 SCMP_ACT_ERRNO");
    r.assert_recorded("io_uring_setup", 4, "seccomp #1 SCMP_ACT_ERRNO");
    r.assert_recorded("renameat2", u64::MAX - 99, "seccomp #1 SCMP_ACT_ERRNO");
    r.assert_recorded("fchmodat", u64::MAX - 99, "seccomp #1 SCMP_ACT_ERRNO");

    let open = "name: uring-on\nsyscalls:\n  deny: [mkdir]\n  allow_io_uring: true\n";
    let r = run(
        open,
        &[
            &["uring-mkdir", "/out/c"],
            &["raw", NR_MKDIRAT, AT_FDCWD, "s:/out/b", "0755"],
        ],
    );
    assert_eq!(r.line(0), "ok 0", "io_uring allowed");
    assert!(r.out.path().join("c").is_dir());
    assert_eq!(r.line(1), EPERM);
    r.assert_not_recorded("io_uring_setup");
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

/// `allow_socket_families` widens the set: vsock passes the filter (the
/// kernel then answers for itself), nothing is recorded.
#[test]
fn socket_families_widen_only_by_name() {
    let policy = "name: vsock-ok\nsyscalls:\n  deny: [ptrace]\n  allow_socket_families: [vsock]\n";
    let r = run(
        policy,
        &[
            &["raw", NR_SOCKET, "40", "1", "0"],
            &["raw", NR_SOCKET, "17", "3", "0"],
        ],
    );
    assert_ne!(r.line(0), EPERM);
    assert_eq!(r.line(1), EPERM);
    assert_eq!(r.denied("socket").len(), 1);
}
