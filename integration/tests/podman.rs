//! podman drives purple-oci through conmon: run --rm, run -d + exec + stop + rm.
//!
//! The test installs a containers.conf drop-in (a `purple` runtime entry,
//! `runtime_supports_json`, ulimits within this host's hard limits) and imports
//! the busybox rootfs as a local image.

use std::process::Command;

use purple_integration::podman::{podman, podman_ok};
use purple_integration::*;

fn assert_gone(full_id: &str) {
    assert!(
        !std::path::Path::new("/run/purple").join(full_id).exists(),
        "state of {full_id} left"
    );
    assert!(
        !std::path::Path::new("/run/purple/.purple")
            .join(full_id)
            .exists(),
        "record of {full_id} left"
    );
    assert_no_cgroup_named(full_id);
}

#[test]
fn podman_run_rm_echo() {
    podman_setup();
    let name = unique_id("pm-echo");
    let out = podman_ok(&[
        "--runtime",
        "purple",
        "run",
        "--rm",
        "--name",
        &name,
        PODMAN_IMAGE,
        "echo",
        "hi",
    ]);
    assert_eq!(out, "hi\n");
    let out = podman(&[
        "--runtime",
        "purple",
        "run",
        "--rm",
        PODMAN_IMAGE,
        "sh",
        "-c",
        "exit 5",
    ]);
    assert_eq!(out.status.code(), Some(5));
}

#[test]
fn podman_detached_exec_stop_rm() {
    podman_setup();
    let name = unique_id("pm-d");
    let id = podman_ok(&[
        "--runtime",
        "purple",
        "run",
        "-d",
        "--name",
        &name,
        PODMAN_IMAGE,
        "sleep",
        "1000",
    ]);
    let id = id.trim();
    assert_eq!(
        podman_ok(&["inspect", "--format", "{{.OCIRuntime}}", &name]).trim(),
        "purple"
    );
    let st: serde_json::Value = serde_json::from_str(
        &String::from_utf8(
            Command::new(purple_oci())
                .args(["state", id])
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(st["status"], "running");
    let out = podman_ok(&[
        "exec",
        &name,
        "sh",
        "-c",
        "echo exec-ok; tail -n1 /proc/self/cgroup",
    ]);
    assert!(out.starts_with("exec-ok\n"), "{out}");
    // exec'd processes share the container's cgroup2 directory (eBPF coverage).
    // On hybrid hosts podman uses no cgroup namespace, so the path is visible.
    if is_hybrid() {
        assert!(out.contains(&format!("0::/purple/{id}")), "{out}");
    }
    let out = podman(&["exec", &name, "sh", "-c", "exit 3"]);
    assert_eq!(out.status.code(), Some(3));
    podman_ok(&["stop", "-t", "1", &name]);
    assert_eq!(
        podman_ok(&["inspect", "--format", "{{.State.Status}}", &name]).trim(),
        "exited"
    );
    podman_ok(&["rm", &name]);
    assert_gone(id);
}

/// `--annotation io.purple.profile=secure-agent` tightens podman's container:
/// no capabilities, no new privileges, the profile's memory and CPU limits, a
/// read-only root, and the profile's denied system calls refused on top of
/// podman's own seccomp profile.
#[test]
fn podman_profile_annotation_tightens() {
    podman_setup();
    // Without the profile, podman's own seccomp profile lets root unshare.
    let base = podman_ok(&[
        "--runtime",
        "purple",
        "run",
        "--rm",
        PODMAN_IMAGE,
        "sh",
        "-c",
        "unshare -U true && echo unshare-ok",
    ]);
    assert_eq!(base, "unshare-ok\n");
    let out = podman_ok(&[
        "--runtime",
        "purple",
        "run",
        "--rm",
        "--annotation",
        "io.purple.profile=secure-agent",
        PODMAN_IMAGE,
        "sh",
        "-c",
        "grep -E '^(CapEff|NoNewPrivs)' /proc/self/status; \
         cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/memory.max 2>/dev/null; \
         touch /planted 2>/dev/null || echo root-ro; \
         unshare -U true 2>/dev/null || echo unshare-refused",
    ]);
    assert!(out.contains("CapEff:\t0000000000000000"), "{out}");
    assert!(out.contains("NoNewPrivs:\t1"), "{out}");
    assert!(out.contains("536870912"), "{out}");
    assert!(out.contains("root-ro"), "{out}");
    assert!(out.contains("unshare-refused"), "{out}");

    let out = podman(&[
        "--runtime",
        "purple",
        "run",
        "--rm",
        "--annotation",
        "io.purple.profile=no-such-profile",
        PODMAN_IMAGE,
        "true",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no profile named \"no-such-profile\""),
        "{err}"
    );
}
