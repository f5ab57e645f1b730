//! Fields of config.json take effect in the container (real kernel, as root).

use std::fs;

use purple_integration::*;
use serde_json::json;

/// Runs `sh -c script` in a fresh container with `edit` applied; returns (code, stdout, stderr).
fn run_sh(script: &str, edit: impl FnOnce(&mut serde_json::Value)) -> (i32, String, String) {
    let oci = Oci::new();
    let b = TestBundle::new(&["sh", "-c", script]);
    b.edit(edit);
    let id = unique_id("cfg");
    let out = oci.run(&["run", "--bundle", b.path().to_str().unwrap(), &id]);
    assert_no_leftovers(&oci, &id);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn memory_limit_is_in_the_cgroup() {
    let oci = Oci::new();
    let b = TestBundle::new(&["sleep", "1000"]);
    b.edit(|c| c["linux"]["resources"]["memory"] = json!({"limit": 64 * 1024 * 1024}));
    let id = unique_id("mem");
    oci.create(&id, &b, &[]);
    let file = if is_hybrid() {
        format!("/sys/fs/cgroup/memory/purple/{id}/memory.limit_in_bytes")
    } else {
        format!("/sys/fs/cgroup/purple/{id}/memory.max")
    };
    assert_eq!(
        fs::read_to_string(&file).unwrap().trim(),
        (64 * 1024 * 1024).to_string()
    );
    oci.ok(&["delete", &id]);
    assert_no_leftovers(&oci, &id);
}

#[test]
fn memory_hog_is_oom_killed() {
    let (code, _, _) = run_sh(
        "x=$(head -c 100000000 /dev/zero | tr '\\0' a); echo survived",
        |c| {
            c["linux"]["resources"]["memory"] =
                json!({"limit": 32 * 1024 * 1024, "swap": 32 * 1024 * 1024});
        },
    );
    assert_ne!(code, 0, "a 100 MB string fit in a 32 MiB container");
}

#[test]
fn seccomp_errno_rule_is_enforced() {
    let (code, out, err) = run_sh("mkdir /tmp/d && echo made; echo rc=$?", |c| {
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
        });
    });
    assert_eq!(code, 0);
    assert_eq!(out, "rc=1\n");
    assert!(err.contains("Operation not permitted"), "{err}");
}

#[test]
fn root_is_read_only() {
    let (_, out, err) = run_sh(
        "touch /file; echo rc=$?; touch /tmp/ok && echo tmp-ok",
        |_| {},
    );
    assert_eq!(out, "rc=1\ntmp-ok\n");
    assert!(err.contains("Read-only file system"), "{err}");
}

#[test]
fn masked_and_readonly_paths() {
    // /proc/timer_list leaks host timers (non-empty on the host, checked first).
    assert!(fs::read_to_string("/proc/timer_list").unwrap().len() > 100);
    let (_, out, _) = run_sh(
        "wc -c < /proc/timer_list; ls /sys/firmware | wc -l; echo 1 > /proc/sys/kernel/domainname; echo rc=$?",
        |_| {},
    );
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["0", "0", "rc=1"]
    );
}

#[test]
fn hostname_and_rlimits() {
    let (_, out, _) = run_sh("hostname; ulimit -n; ulimit -Hn", |c| {
        c["hostname"] = json!("agent-7");
        c["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 777, "hard": 888}]);
    });
    assert_eq!(out, "agent-7\n777\n888\n");
}

#[test]
fn namespaces_hide_the_host() {
    let (_, out, _) = run_sh(
        "echo $$; ps | wc -l; ls /sys/class/net | sort | tr '\\n' ' '",
        |_| {},
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "1", "the agent is pid 1 in its own pid namespace");
    // header + sh + ps + wc
    assert!(
        lines[1].trim().parse::<u32>().unwrap() <= 4,
        "host processes visible: {out}"
    );
    assert_eq!(
        lines[2].trim(),
        "lo",
        "only loopback in a new network namespace"
    );
}

#[test]
fn capabilities_are_dropped() {
    // The busybox bundle keeps only AUDIT_WRITE, KILL, NET_BIND_SERVICE.
    let (_, out, _) = run_sh(
        "grep CapEff /proc/self/status; mknod /tmp/n c 1 3; echo rc=$?",
        |_| {},
    );
    assert!(
        out.contains("CapEff:\t00000000200000420") || out.contains("CapEff:\t0000000020000420"),
        "{out}"
    );
    assert!(
        out.ends_with("rc=1\n"),
        "mknod without CAP_MKNOD must fail: {out}"
    );
}

/// An exec'd process is under the container's filter too (libcontainer drops
/// `linux.seccomp` for tenants; Purple installs it itself).
#[test]
fn seccomp_holds_for_exec() {
    let oci = Oci::new();
    let b = TestBundle::new(&["sleep", "100"]);
    b.edit(|c| {
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
        });
    });
    let id = unique_id("sc-exec");
    oci.detached(&["run", "-d", "--bundle", b.path().to_str().unwrap(), &id]);
    let out = oci.run(&[
        "exec",
        &id,
        "sh",
        "-c",
        "grep '^Seccomp:' /proc/self/status; mkdir /tmp/d; echo rc=$?",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    oci.ok(&["delete", "--force", &id]);
    assert_eq!(stdout, "Seccomp:\t2\nrc=1\n");
    assert_no_leftovers(&oci, &id);
}
