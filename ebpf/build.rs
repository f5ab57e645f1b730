//! Compiles the BPF programs in src/bpf with Debian's clang (`-target bpf -O2
//! -g`), so a fresh machine needs no nightly toolchain or bpf-linker.
//!
//! The kernel's sizes come from `purple_policy::limits` (a build-dependency)
//! as `-D` flags: the loader's checks, the Rust mirrors and the C structs
//! cannot disagree, and the C headers refuse to build without them.

use std::env;
use std::path::PathBuf;
use std::process::Command;

use purple_policy::limits::{MAX_PORT_RANGES, MAX_RULES};

fn main() {
    let out = PathBuf::from(env::var("OUT_DIR").unwrap()).join("purple.bpf.o");
    let src = PathBuf::from("src/bpf");
    println!("cargo:rerun-if-changed=src/bpf");
    let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap();
    // <linux/bpf.h> includes <asm/types.h>, which Debian keeps in the multiarch dir.
    let multiarch = format!("/usr/include/{arch}-linux-gnu");
    let clang = env::var("CLANG").unwrap_or_else(|_| "clang".into());
    let status = Command::new(&clang)
        .args(["-target", "bpf", "-O2", "-g", "-Wall", "-Werror"])
        .arg(format!("-I{multiarch}"))
        .arg(format!("-DPURPLE_MAX_RULES={MAX_RULES}"))
        .arg(format!("-DPURPLE_MAX_PORT_RANGES={MAX_PORT_RANGES}"))
        .arg("-c")
        .arg(src.join("purple.bpf.c"))
        .arg("-o")
        .arg(&out)
        .status()
        .unwrap_or_else(|e| panic!("cannot run {clang} (apt-get install clang libbpf-dev): {e}"));
    assert!(
        status.success(),
        "clang failed to compile src/bpf/purple.bpf.c"
    );
}
