//! podman as the tests run it (with Purple installed as a runtime by
//! [`crate::podman_setup`]).

use std::process::{Command, Output};

pub fn podman(args: &[&str]) -> Output {
    Command::new("podman")
        .args(args)
        .output()
        .expect("podman is installed (scripts/setup.sh)")
}

/// Like [`podman`], but fails the test unless it exits 0; returns stdout.
pub fn podman_ok(args: &[&str]) -> String {
    let out = podman(args);
    assert!(
        out.status.success(),
        "podman {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
