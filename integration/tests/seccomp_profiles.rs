//! The shipped profiles' seccomp under real system calls from the probe:
//! production-secure opens read-only and records each refusal, every
//! profile refuses its side doors, and neither the variants of a denied
//! call, io_uring, nor socket families outside the policy's set side-step
//! it. The operators and the compat entry points are in seccomp.rs.

use purple_integration::sysprobe::*;

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
