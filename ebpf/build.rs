//! Compiles the BPF programs in src/bpf with Debian's clang (`-target bpf -O2
//! -g`), so a fresh machine needs no nightly toolchain or bpf-linker.
//!
//! The kernel's sizes come from `purple_policy::limits` (a build-dependency)
//! as `-D` flags: the loader's checks, the Rust mirrors and the C structs
//! cannot disagree, and the C headers refuse to build without them.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

use purple_policy::limits::{
    MAX_PORT_RANGES, MAX_RULES, TRAIL_CONTAINERS, TRAIL_RING_BYTES, TRAIL_SYSCALL_NRS,
};

fn main() {
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    let src = PathBuf::from("src/bpf");
    println!("cargo:rerun-if-changed=src/bpf");
    compile(
        &src.join("purple.bpf.c"),
        &out.join("purple.bpf.o"),
        &[
            format!("-DPURPLE_MAX_RULES={MAX_RULES}"),
            format!("-DPURPLE_MAX_PORT_RANGES={MAX_PORT_RANGES}"),
        ],
    );
    // The activity trail's object, loaded once per host apart from the
    // per-container network object; its atomics return values (BPF v3).
    let mut trail = vec![
        "-mcpu=v3".into(),
        format!("-DPURPLE_TRAIL_RING_BYTES={TRAIL_RING_BYTES}"),
        format!("-DPURPLE_TRAIL_CONTAINERS={TRAIL_CONTAINERS}"),
        format!("-DPURPLE_TRAIL_SYSCALL_NRS={TRAIL_SYSCALL_NRS}"),
    ];
    // Only x86_64's task says where its syscall came in (TS_COMPAT); other
    // targets count their native table alone.
    if env::var("CARGO_CFG_TARGET_ARCH").unwrap() == "x86_64" {
        trail.push("-DPURPLE_TRAIL_X86_COMPAT".into());
    }
    compile(
        &src.join("trail/trail.bpf.c"),
        &out.join("trail.bpf.o"),
        &trail,
    );
}

fn compile(src: &Path, out: &Path, defines: &[String]) {
    let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap();
    // <linux/bpf.h> includes <asm/types.h>, which Debian keeps in the multiarch dir.
    let multiarch = format!("/usr/include/{arch}-linux-gnu");
    let clang = env::var("CLANG").unwrap_or_else(|_| "clang".into());
    let status = Command::new(&clang)
        .args(["-target", "bpf", "-O2", "-g", "-Wall", "-Werror"])
        .arg(format!("-I{multiarch}"))
        .args(defines)
        .arg("-c")
        .arg(src)
        .arg("-o")
        .arg(out)
        .status()
        .unwrap_or_else(|e| panic!("cannot run {clang} (apt-get install clang libbpf-dev): {e}"));
    assert!(
        status.success(),
        "clang failed to compile {}",
        src.display()
    );
}
