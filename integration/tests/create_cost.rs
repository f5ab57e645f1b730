//! What `create` no longer pays for, checked as behaviour (the time it saves
//! is measured in bench/, never asserted here).

use std::fs;
use std::process::{Command, Stdio};

use purple_integration::*;

/// `purple-oci run` of a busybox `true` bundle under `strace -f`, tracing
/// `calls`; returns the trace after checking that nothing was left behind.
fn traced_run(prefix: &str, calls: &str) -> String {
    let oci = Oci::new();
    let b = TestBundle::new(&["true"]);
    let id = unique_id(prefix);
    let log = tempfile::NamedTempFile::new().unwrap();
    let st = Command::new("strace")
        .args(["-f", "-qq", "-e", &format!("trace={calls}"), "-o"])
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
    assert_no_leftovers(&oci, &id);
    fs::read_to_string(log.path()).unwrap()
}

#[test]
fn create_loads_the_programs_without_reading_the_kernel_btf() {
    // aya 0.14 parsed /sys/kernel/btf/vmlinux (about 1,300 reads of 4 KiB)
    // in every loader it made; Purple's object has no CO-RE relocations, so
    // the patched loader (runtime/vendor/aya.patch) never opens it.
    let trace = traced_run("nobtf", "open,openat,openat2,bpf");
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
}

#[test]
fn cgroup_v1_managers_read_mountinfo_once_not_per_controller() {
    // libcgroups 0.7's v1 manager opened mountinfo and /proc/self/cgroup
    // (each through a fresh safe procfs handle) once per controller it knows,
    // 12, for every manager a run builds (create, delete, Purple's purge):
    // 39 mountinfo opens per run on this host. The patched manager
    // (runtime/vendor/libcgroups.patch) reads each once per manager.
    assert!(
        is_hybrid(),
        "this checks the v1 cgroup manager: it needs a host with v1 controllers"
    );
    let trace = traced_run("mntinfo", "openat,openat2");
    let opens = trace.matches("\"mountinfo\"").count();
    let cgroup_files = trace.matches(", \"cgroup\",").count();
    assert!(
        opens > 0,
        "mountinfo never opened: strace traced nothing?\n{trace}"
    );
    assert!(
        opens < 12 && cgroup_files < 12,
        "mountinfo opened {opens} times, /proc/self/cgroup {cgroup_files}: once per controller"
    );
}
