//! What `create` no longer pays for, checked as behaviour (the time it saves
//! is measured in bench/, never asserted here).

use std::fs;
use std::process::{Command, Stdio};

use purple_integration::*;

#[test]
fn create_loads_the_programs_without_reading_the_kernel_btf() {
    // aya 0.14 parsed /sys/kernel/btf/vmlinux (about 1,300 reads of 4 KiB)
    // in every loader it made; Purple's object has no CO-RE relocations, so
    // the patched loader (runtime/vendor/aya.patch) never opens it.
    let oci = Oci::new();
    let b = TestBundle::new(&["true"]);
    let id = unique_id("nobtf");
    let log = tempfile::NamedTempFile::new().unwrap();
    let st = Command::new("strace")
        .args(["-f", "-qq", "-e", "trace=open,openat,openat2,bpf", "-o"])
        .arg(log.path())
        .arg(purple_oci())
        .arg("--root")
        .arg(oci.root.path())
        .args(["run", "--bundle"])
        .arg(b.path())
        .arg(&id)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .expect("strace missing: apt-get install strace (scripts/setup.sh)");
    assert!(st.success(), "run under strace: {st}");
    let trace = fs::read_to_string(log.path()).unwrap();
    // strace prints the first 15 bytes of each program's name.
    let loads = trace.matches("prog_name=\"purple_").count();
    assert!(
        loads >= 7,
        "Purple's programs were not loaded ({loads}):\n{trace}"
    );
    let btf: Vec<&str> = trace
        .lines()
        .filter(|l| l.contains("btf/vmlinux"))
        .collect();
    assert!(btf.is_empty(), "kernel BTF read on create: {btf:?}");
    assert_no_leftovers(&oci, &id);
}
