//! podman drives purple-oci through conmon: run --rm, run -d + exec + stop + rm.
//!
//! The test installs a containers.conf drop-in (a `purple` runtime entry,
//! `runtime_supports_json`, ulimits within this host's hard limits) and imports
//! the busybox rootfs as a local image.

use std::process::{Command, Output};

use purple_integration::*;

fn podman(args: &[&str]) -> Output {
    Command::new("podman")
        .args(args)
        .output()
        .expect("podman is installed (scripts/setup.sh)")
}

fn podman_ok(args: &[&str]) -> String {
    let out = podman(args);
    assert!(
        out.status.success(),
        "podman {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

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
