//! Attacks from inside a container on the OCI path (issue 13), each run side
//! by side with runc 1.1.5 where runc holds: the same bundle or podman
//! command under both runtimes, so a pass proves Purple holds, not the host.

use std::process::{Command, Output, Stdio};

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

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn podman(args: &[&str]) -> Output {
    Command::new("podman")
        .args(args)
        .output()
        .expect("podman is installed (scripts/setup.sh)")
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
