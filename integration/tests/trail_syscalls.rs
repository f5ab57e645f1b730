//! Syscall counts on real containers (`ebpf_monitoring.trace_syscalls`):
//! counted in the kernel per container, nested cgroups included, nothing
//! from outside, reported by name in the `exited` record; the counter is
//! attached only while some container counts and everything is gone after
//! the last delete.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use purple_integration::audited::delete_and_wait;
use purple_integration::*;
use purple_runtime::audit;
use serde_json::{json, Value};

/// The counter is the host's: this file's tests run one at a time, so that
/// one can see it attach and go.
static HOST: Mutex<()> = Mutex::new(());

fn host() -> MutexGuard<'static, ()> {
    HOST.lock().unwrap_or_else(|e| e.into_inner())
}

/// integration/probe/syscount.c, static (the busybox rootfs has no libc)
/// and non-PIE (int 0x80 needs its data below 4 GiB).
fn syscount() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let out = std::env::temp_dir().join(format!("purple-syscount-{}", std::process::id()));
        let st = Command::new("cc")
            .args(["-static", "-no-pie", "-O2", "-o"])
            .arg(&out)
            .arg(repo().join("integration/probe/syscount.c"))
            .status()
            .expect("a C compiler is installed (build-essential)");
        assert!(st.success(), "cannot build syscount");
        out
    })
}

/// A started container running `script`, its audit plan `audit`; it waits
/// for `/go` in its rootfs before the script when `gated`.
fn started(oci: &Oci, audit: Value, script: &str, gated: bool) -> (String, TestBundle) {
    started_with(oci, audit, script, gated, |_| {})
}

fn started_with(
    oci: &Oci,
    audit: Value,
    script: &str,
    gated: bool,
    edit: impl FnOnce(&mut Value),
) -> (String, TestBundle) {
    let gate = if gated {
        "while [ ! -e /go ]; do /bin/sleep 0.05; done; "
    } else {
        ""
    };
    let b = TestBundle::new(&["/bin/sh", "-c", &format!("{gate}{script}")]);
    fs::copy(syscount(), b.path().join("rootfs/bin/syscount")).unwrap();
    b.edit(|c| {
        c["annotations"] = json!({
            "io.purple.policy.name": "test-policy",
            "io.purple.audit": audit.to_string(),
        });
        edit(c);
    });
    let id = unique_id("sys");
    oci.create(&id, &b, &[]);
    oci.ok(&["start", &id]);
    (id, b)
}

fn counting(oci: &Oci, script: &str, gated: bool) -> (String, TestBundle) {
    started(oci, json!({"trace_syscalls": true}), script, gated)
}

fn go(b: &TestBundle) {
    fs::write(b.path().join("rootfs/go"), "").unwrap();
}

fn wait_stopped(oci: &Oci, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while oci.status(id) != "stopped" {
        assert!(Instant::now() < deadline, "{id} still runs");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Deletes the stopped container, checks nothing of it is left, and
/// returns the details of its `exited` record (its log removed).
fn deleted(oci: &Oci, id: &str) -> Value {
    deleted_summary(oci, id).0
}

/// [`deleted`], and the log's summary as `purple audit summary` prints it.
fn deleted_summary(oci: &Oci, id: &str) -> (Value, String) {
    wait_stopped(oci, id);
    delete_and_wait(oci, id);
    assert_no_leftovers(oci, id);
    assert!(!Path::new("/sys/fs/bpf/purple").join(id).exists());
    let log = audit::default_path(id);
    let recs = audit::verify(&log).unwrap();
    let summary = audit::summary(&log).unwrap().to_string();
    let _ = fs::remove_file(&log);
    let exited = recs
        .into_iter()
        .find(|r| r.kind == "lifecycle" && r.details["event"] == "exited")
        .expect("an exited record")
        .details;
    (exited, summary)
}

fn count(details: &Value, call: &str) -> u64 {
    details["syscalls"][call].as_u64().unwrap_or(0)
}

/// This build's trail directory, named after its object: the one with the
/// syscall counter.
fn host_dirs() -> Vec<PathBuf> {
    fs::read_dir("/sys/fs/bpf/purple")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.join("prog_syscall").exists())
                .collect()
        })
        .unwrap_or_default()
}

fn counter_attached() -> bool {
    host_dirs().iter().any(|d| d.join("link_syscall").exists())
}

/// The cgroup2 directory of the container's init.
fn cgroup2_dir(oci: &Oci, id: &str) -> PathBuf {
    let pid = oci.state(id)["pid"].as_u64().unwrap();
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let rel = text
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .expect("a cgroup2 line");
    cgroup2_mount().join(rel.trim_start_matches('/'))
}

#[test]
fn counts_by_name_with_nested_cgroups_and_the_32_bit_entry_apart_and_nothing_from_outside() {
    let _host = host();
    let oci = Oci::new();
    let (id, b) = counting(&oci, "/bin/syscount 20000; /bin/syscount 300 int80", true);
    assert!(counter_attached(), "no syscall counter attached");
    // The script runs in a cgroup nested in the container's.
    let nested = cgroup2_dir(&oci, &id).join("nested");
    fs::create_dir(&nested).unwrap();
    let pid = oci.state(&id)["pid"].as_u64().unwrap();
    fs::write(nested.join("cgroup.procs"), pid.to_string()).unwrap();
    // A host process calls the same syscall meanwhile: not counted.
    let outside = Command::new(syscount()).arg("200000").status().unwrap();
    assert!(outside.success());
    go(&b);
    wait_stopped(&oci, &id);
    fs::remove_dir(&nested).unwrap();
    let (d, summary) = deleted_summary(&oci, &id);
    let getppid = count(&d, "getppid");
    assert!(
        (20_000..21_000).contains(&getppid),
        "getppid {getppid}: {d:#}"
    );
    // int 0x80's 64 is i386 getppid, not x86_64's 64 (semget).
    assert!(
        d["syscalls_compat"]["getppid"].as_u64().unwrap() >= 300,
        "{d:#}"
    );
    assert_eq!(count(&d, "semget"), 0, "{d:#}");
    // busybox sh's own calls are there too, and the total sums them all.
    assert!(count(&d, "execve") >= 2, "{d:#}");
    let sum: u64 = d["syscalls"]
        .as_object()
        .unwrap()
        .values()
        .chain(d["syscalls_compat"].as_object().unwrap().values())
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert_eq!(d["syscalls_total"], sum, "{d:#}");
    // `purple audit summary` names the most called first.
    let top = summary
        .lines()
        .skip_while(|l| !l.starts_with("syscalls: "))
        .nth(1)
        .unwrap_or_default();
    assert_eq!(
        top.split_whitespace().collect::<Vec<_>>(),
        ["getppid", &getppid.to_string()],
        "{summary}"
    );
    assert!(host_dirs().is_empty(), "{:?}", host_dirs());
}

#[test]
fn a_call_seccomp_refuses_is_not_counted() {
    let _host = host();
    let oci = Oci::new();
    let (id, b) = started_with(
        &oci,
        json!({"trace_syscalls": true}),
        "/bin/syscount 1000",
        true,
        |c| {
            c["linux"]["seccomp"] = json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_ERRNO"}]
            });
        },
    );
    go(&b);
    let d = deleted(&oci, &id);
    assert_eq!(count(&d, "getppid"), 0, "{d:#}");
    assert!(count(&d, "execve") >= 1, "{d:#}");
}

#[test]
fn two_containers_at_once_each_count_only_their_own() {
    let _host = host();
    let oci = Oci::new();
    let (a, ba) = counting(&oci, "/bin/syscount 5000", true);
    let (b, bb) = counting(&oci, "/bin/syscount 50000", true);
    go(&ba);
    go(&bb);
    let da = deleted(&oci, &a);
    assert!(
        counter_attached(),
        "the counter left with the first container"
    );
    let db = deleted(&oci, &b);
    assert!((5_000..6_000).contains(&count(&da, "getppid")), "{da:#}");
    assert!((50_000..51_000).contains(&count(&db, "getppid")), "{db:#}");
    assert!(host_dirs().is_empty(), "{:?}", host_dirs());
}

#[test]
fn the_counter_detaches_when_the_last_counting_container_leaves() {
    let _host = host();
    let oci = Oci::new();
    // A container that traces execs only keeps the trail's programs.
    let (execs, be) = started(&oci, json!({"trace_exec": true}), "/bin/true", true);
    assert!(!counter_attached(), "attached with no container counting");
    let (c, bc) = counting(&oci, "/bin/syscount 10", true);
    assert!(counter_attached());
    go(&bc);
    let d = deleted(&oci, &c);
    assert!(count(&d, "getppid") >= 10, "{d:#}");
    // Execs were not traced: no exec accounting to mislead.
    assert!(d.get("trail").is_none(), "{d:#}");
    assert!(!counter_attached(), "still attached: {:?}", host_dirs());
    assert!(
        !host_dirs().is_empty(),
        "the exec trail went with the counter"
    );
    go(&be);
    let d = deleted(&oci, &execs);
    assert!(d.get("syscalls").is_none(), "{d:#}");
    assert!(d["trail"]["execs"].as_u64().unwrap() >= 1, "{d:#}");
    assert!(host_dirs().is_empty(), "{:?}", host_dirs());
}
