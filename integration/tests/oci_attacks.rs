//! Attacks from inside a container on the OCI path (issue 13), each run side
//! by side with runc 1.1.5 where runc holds: the same bundle or podman
//! command under both runtimes, so a pass proves Purple holds, not the host.
//! Here: the cgroup mount and namespace, a recycled init pid; capabilities
//! and privilege are in oci_caps.rs.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use purple_integration::cli::combined as text;
use purple_integration::podman::podman;
use purple_integration::*;
use serde_json::{json, Value};

/// Which runtime runs the bundle.
#[derive(Clone, Copy, Debug)]
enum Rt {
    Purple,
    Runc,
}

const BOTH: [Rt; 2] = [Rt::Purple, Rt::Runc];

impl Rt {
    fn podman_name(self) -> &'static str {
        match self {
            Rt::Purple => "purple",
            Rt::Runc => "runc",
        }
    }
}

/// Runs `bundle` in the foreground under `rt` with a private state root and
/// returns what the container printed (stdout and stderr).
fn run_foreground(rt: Rt, bundle: &TestBundle, id: &str) -> String {
    let root = tempfile::Builder::new()
        .prefix("attack-root-")
        .tempdir()
        .unwrap();
    let mut cmd = match rt {
        Rt::Purple => Command::new(purple_oci()),
        Rt::Runc => Command::new("runc"),
    };
    let out = cmd
        .arg("--root")
        .arg(root.path())
        .args(["run", "--bundle"])
        .arg(bundle.path())
        .arg(id)
        .stdin(Stdio::null())
        .output()
        .expect("runc is installed (apt-get install runc)");
    text(&out)
}

/// Adds the spec's usual read-only cgroup mount (runc's and podman's default).
fn with_cgroup_mount(v: &mut Value) {
    v["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
        "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]
    }));
}

/// Tries to lift the container's own limits through its cgroup mount and
/// prints `held: NAME: why` or `escaped: NAME` for each.
const CGROUP_WRITES: &str = r#"
try() { if err=$(sh -c "$1" 2>&1); then echo "escaped: $2"; else echo "held: $2: $err"; fi; }
for f in pids/pids.max memory/memory.limit_in_bytes cpu/cpu.cfs_quota_us; do
  [ -e /sys/fs/cgroup/$f ] && echo "present: $f"
done
try 'echo 5000 > /sys/fs/cgroup/pids/pids.max' pids.max
try 'echo 1073741824 > /sys/fs/cgroup/memory/memory.limit_in_bytes' memory.limit_in_bytes
try 'echo -1 > /sys/fs/cgroup/cpu/cpu.cfs_quota_us' cpu.cfs_quota_us
try 'mkdir /sys/fs/cgroup/pids/child' mkdir-pids
try 'mkdir /sys/fs/cgroup/memory/child' mkdir-memory
echo "pids.max is $(cat /sys/fs/cgroup/pids/pids.max)"
"#;

fn assert_cgroup_writes_held(rt: Rt, out: &str) {
    for f in [
        "pids/pids.max",
        "memory/memory.limit_in_bytes",
        "cpu/cpu.cfs_quota_us",
    ] {
        assert!(
            out.contains(&format!("present: {f}")),
            "{rt:?}: {f} not visible, the attack did not run:\n{out}"
        );
    }
    assert!(!out.contains("escaped"), "{rt:?}:\n{out}");
    for name in [
        "pids.max",
        "memory.limit_in_bytes",
        "cpu.cfs_quota_us",
        "mkdir-pids",
        "mkdir-memory",
    ] {
        assert!(
            out.contains(&format!("held: {name}: ")) && out.contains("Read-only file system"),
            "{rt:?}: {name} not refused as read-only:\n{out}"
        );
    }
    assert!(out.contains("pids.max is 64"), "{rt:?}:\n{out}");
}

/// Item 2: runc's default capabilities, the spec's `ro` cgroup mount.
#[test]
fn cgroup_mount_is_read_only_like_runc() {
    for rt in BOTH {
        let b = TestBundle::new(&[]);
        b.edit(|v| {
            v["process"]["args"] = json!(["sh", "-c", CGROUP_WRITES]);
            with_cgroup_mount(v);
            v["linux"]["resources"]["pids"] = json!({"limit": 64});
            v["linux"]["resources"]["memory"] = json!({"limit": 268435456});
            v["linux"]["resources"]["cpu"] = json!({"quota": 50000, "period": 100000});
        });
        let id = unique_id("atk-cgro");
        let out = run_foreground(rt, &b, &id);
        assert_cgroup_writes_held(rt, &out);
    }
}

/// Item 2 under podman with the zero-capability profile, and podman's
/// default capabilities without one.
#[test]
fn podman_cgroup_mount_is_read_only_like_runc() {
    podman_setup();
    for rt in BOTH {
        for profile in [&["--annotation", "io.purple.profile=secure-agent"][..], &[]] {
            let mut args = vec![
                "--runtime",
                rt.podman_name(),
                "run",
                "--rm",
                "--pids-limit",
                "64",
                "--memory",
                "256m",
                "--cpus",
                "0.5",
            ];
            args.extend_from_slice(profile);
            args.extend_from_slice(&[PODMAN_IMAGE, "sh", "-c", CGROUP_WRITES]);
            let out = podman(&args);
            assert!(out.status.success(), "{rt:?} {profile:?}: {}", text(&out));
            assert_cgroup_writes_held(rt, &text(&out));
        }
    }
}

/// Forks host processes until one gets `pid` (writing `ns_last_pid` makes the
/// next fork take `pid` unless another process forks in between).
fn take_pid(pid: i64) -> std::process::Child {
    for _ in 0..200 {
        fs::write("/proc/sys/kernel/ns_last_pid", (pid - 1).to_string()).unwrap();
        let mut child = Command::new("sleep").arg("60").spawn().unwrap();
        if i64::from(child.id()) == pid {
            return child;
        }
        child.kill().unwrap();
        child.wait().unwrap();
    }
    panic!("no host process got pid {pid} in 200 forks");
}

fn alive(child: &mut std::process::Child) -> bool {
    child.try_wait().unwrap().is_none()
}

/// Item 4: once init is gone and a host process holds its pid, the
/// container is stopped: `exec` and `kill` refuse and the host process lives.
#[test]
fn a_recycled_init_pid_is_stopped_never_a_target() {
    let oci = Oci::new();
    let b = TestBundle::new(&["true"]);
    let id = unique_id("atk-pid");
    oci.create(&id, &b, &[]);
    let pid = oci.state(&id)["pid"].as_i64().unwrap();
    oci.ok(&["start", &id]);
    oci.wait_status(&id, "stopped");
    // Reaped by the host's init once `true` exits.
    let deadline = Instant::now() + Duration::from_secs(5);
    while Path::new(&format!("/proc/{pid}")).exists() {
        assert!(Instant::now() < deadline, "init {pid} never reaped");
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut host = take_pid(pid);

    let st = oci.state(&id);
    assert_eq!(st["status"], "stopped", "{st}");
    assert!(st.get("pid").is_none(), "{st}");
    let exec = oci.run(&["exec", &id, "true"]);
    assert!(
        !exec.status.success(),
        "exec ran in a recycled pid's namespaces"
    );
    assert!(
        text(&exec).contains("container not running"),
        "{}",
        text(&exec)
    );
    let kill = oci.run(&["kill", &id, "KILL"]);
    assert!(!kill.status.success(), "kill accepted a recycled pid");
    assert!(
        text(&kill).contains("container not running"),
        "{}",
        text(&kill)
    );
    oci.ok(&["kill", "--all", &id, "KILL"]);
    oci.ok(&["delete", &id]);
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        alive(&mut host),
        "the host process holding pid {pid} was killed"
    );
    host.kill().unwrap();
    host.wait().unwrap();
    assert_no_leftovers(&oci, &id);
}

/// Item 3: a container with CAP_SYS_ADMIN mounts cgroup2 and tries to leave
/// its cgroup for the host's root, out of its eBPF programs' reach.
#[test]
fn cgroup_namespace_is_rooted_at_the_containers_own_directory() {
    let b = TestBundle::new(&[]);
    b.edit(|v| {
        v["process"]["args"] = json!([
            "sh",
            "-c",
            r#"
mkdir -p /tmp/cg && mount -t cgroup2 none /tmp/cg && echo mounted
echo "self: $(grep '^0::' /proc/self/cgroup)"
ls /tmp/cg | grep -qx purple && echo "sees host cgroups"
echo $$ > /tmp/cg/cgroup.procs && echo "moved to the mount's root"
echo "after: $(grep '^0::' /proc/self/cgroup)"
nc -w 1 169.254.169.254 80 </dev/null 2>&1
"#
        ]);
        for set in ["bounding", "effective", "permitted"] {
            v["process"]["capabilities"][set]
                .as_array_mut()
                .unwrap()
                .push(json!("CAP_SYS_ADMIN"));
        }
        v["process"]["capabilities"]["ambient"] = json!([]);
    });
    let id = unique_id("atk-cgns");
    let out = run_foreground(Rt::Purple, &b, &id);
    assert!(out.contains("mounted"), "the attack did not run:\n{out}");
    assert!(out.contains("self: 0::/\n"), "{out}");
    assert!(!out.contains("sees host cgroups"), "{out}");
    assert!(out.contains("after: 0::/\n"), "{out}");
    // The metadata address stays blocked by the container's programs (EPERM
    // from connect; without them, the empty network namespace says unreachable).
    assert!(out.contains("Operation not permitted"), "{out}");
}
