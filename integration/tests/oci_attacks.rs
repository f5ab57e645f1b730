//! Attacks from inside a container on the OCI path (issue 13), each run side
//! by side with runc 1.1.5 where runc holds: the same bundle or podman
//! command under both runtimes, so a pass proves Purple holds, not the host.

use std::fs;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

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

fn podman_ok(args: &[&str]) -> String {
    let out = podman(args);
    assert!(out.status.success(), "podman {args:?}: {}", text(&out));
    String::from_utf8(out.stdout).unwrap()
}

/// `CapEff`, `CapBnd` and `NoNewPrivs` of /proc/self/status as printed.
fn caps_line(status: &str, field: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in {status}"))
        .trim()
        .to_owned()
}

/// Item 5: under a zero-capability profile, `podman exec` and `podman exec
/// --privileged` get no capability back, and keep no_new_privs.
#[test]
fn podman_exec_is_capped_by_the_profile() {
    podman_setup();
    let name = unique_id("atk-exec");
    podman_ok(&[
        "--runtime",
        "purple",
        "run",
        "-d",
        "--name",
        &name,
        "--annotation",
        "io.purple.profile=secure-agent",
        PODMAN_IMAGE,
        "sleep",
        "60",
    ]);
    let status = |extra: &[&str]| {
        let mut args = vec!["exec"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[&name, "cat", "/proc/self/status"]);
        podman_ok(&args)
    };
    let init = podman_ok(&["exec", &name, "cat", "/proc/1/status"]);
    assert_eq!(caps_line(&init, "CapEff"), "0000000000000000", "{init}");
    for extra in [&[][..], &["--privileged"], &["--user", "0"]] {
        let s = status(extra);
        for field in ["CapEff", "CapPrm", "CapBnd", "CapAmb", "CapInh"] {
            assert_eq!(
                caps_line(&s, field),
                "0000000000000000",
                "exec {extra:?}: {field}\n{s}"
            );
        }
        assert_eq!(caps_line(&s, "NoNewPrivs"), "1", "exec {extra:?}\n{s}");
        assert_eq!(caps_line(&s, "Seccomp"), "2", "exec {extra:?}\n{s}");
    }
    // The pids limit stays out of reach of a privileged exec too.
    let out = podman(&[
        "exec",
        "--privileged",
        &name,
        "sh",
        "-c",
        "echo 5000 > /sys/fs/cgroup/pids/pids.max",
    ]);
    assert!(!out.status.success(), "privileged exec raised pids.max");
    podman_ok(&["rm", "-f", "-t", "0", &name]);
    assert_no_cgroup_named(&name);
}

/// Item 5 through `purple-oci exec --cap` and `--process` directly.
#[test]
fn exec_caps_and_process_json_are_capped_by_the_profile() {
    let oci = Oci::new();
    let b = TestBundle::new(&["sleep", "60"]);
    b.edit(|v| v["annotations"] = json!({"io.purple.profile": "secure-agent"}));
    let id = unique_id("atk-cap");
    oci.create(&id, &b, &[]);
    oci.ok(&["start", &id]);
    let out = oci.ok(&[
        "exec",
        "--cap",
        "CAP_SYS_ADMIN",
        "--cap",
        "CAP_DAC_OVERRIDE",
        &id,
        "cat",
        "/proc/self/status",
    ]);
    assert_eq!(caps_line(&out, "CapEff"), "0000000000000000", "{out}");
    let all: Vec<&str> = (0..=40).filter_map(caps_name).collect();
    let process = json!({
        "args": ["cat", "/proc/self/status"], "cwd": "/", "user": {"uid": 0, "gid": 0},
        "env": ["PATH=/bin"],
        "capabilities": {"bounding": all, "effective": all, "permitted": all, "inheritable": all, "ambient": all}
    });
    let pfile = b.path().join("process.json");
    fs::write(&pfile, process.to_string()).unwrap();
    let out = oci.ok(&["exec", "--process", pfile.to_str().unwrap(), &id]);
    for field in ["CapEff", "CapPrm", "CapBnd", "CapAmb"] {
        assert_eq!(caps_line(&out, field), "0000000000000000", "{field}: {out}");
    }
    assert!(pfile.exists(), "the caller's process.json was removed");
    oci.ok(&["delete", "--force", &id]);
    assert_no_leftovers(&oci, &id);
}

fn caps_name(n: u32) -> Option<&'static str> {
    const NAMES: [&str; 41] = [
        "CAP_CHOWN",
        "CAP_DAC_OVERRIDE",
        "CAP_DAC_READ_SEARCH",
        "CAP_FOWNER",
        "CAP_FSETID",
        "CAP_KILL",
        "CAP_SETGID",
        "CAP_SETUID",
        "CAP_SETPCAP",
        "CAP_LINUX_IMMUTABLE",
        "CAP_NET_BIND_SERVICE",
        "CAP_NET_BROADCAST",
        "CAP_NET_ADMIN",
        "CAP_NET_RAW",
        "CAP_IPC_LOCK",
        "CAP_IPC_OWNER",
        "CAP_SYS_MODULE",
        "CAP_SYS_RAWIO",
        "CAP_SYS_CHROOT",
        "CAP_SYS_PTRACE",
        "CAP_SYS_PACCT",
        "CAP_SYS_ADMIN",
        "CAP_SYS_BOOT",
        "CAP_SYS_NICE",
        "CAP_SYS_RESOURCE",
        "CAP_SYS_TIME",
        "CAP_SYS_TTY_CONFIG",
        "CAP_MKNOD",
        "CAP_LEASE",
        "CAP_AUDIT_WRITE",
        "CAP_AUDIT_CONTROL",
        "CAP_SETFCAP",
        "CAP_MAC_OVERRIDE",
        "CAP_MAC_ADMIN",
        "CAP_SYSLOG",
        "CAP_WAKE_ALARM",
        "CAP_BLOCK_SUSPEND",
        "CAP_AUDIT_READ",
        "CAP_PERFMON",
        "CAP_BPF",
        "CAP_CHECKPOINT_RESTORE",
    ];
    NAMES.get(n as usize).copied()
}

/// Item 6: `--privileged` under a profile: host /sys stays read-only, host
/// devices are neither present nor allowed, the device cgroup is not `a *:* rwm`.
#[test]
fn privileged_under_a_profile_keeps_sys_and_devices_closed() {
    podman_setup();
    let script = r#"
try() { if err=$(sh -c "$1" 2>&1); then echo "escaped: $2"; else echo "held: $2: $err"; fi; }
thp=/sys/kernel/mm/transparent_hugepage/enabled
[ -e $thp ] && echo "present: thp"
try "echo \$(sed 's/.*\[\(.*\)\].*/\1/' $thp) > $thp" thp
try ': > /sys/power/state' power
try 'head -c 1 /dev/loop0 >/dev/null' loop0
try 'ls /dev/sda /dev/vda /dev/nvme0n1 /dev/mem /dev/kmsg 2>/dev/null | grep .' host-devices
echo "devices.list: $(cat /sys/fs/cgroup/devices/devices.list | tr '\n' ';')"
grep ' /sys ' /proc/self/mountinfo
"#;
    let out = podman(&[
        "--runtime",
        "purple",
        "run",
        "--rm",
        "--privileged",
        "--annotation",
        "io.purple.profile=secure-agent",
        PODMAN_IMAGE,
        "sh",
        "-c",
        script,
    ]);
    let out = text(&out);
    assert!(
        out.contains("present: thp"),
        "the attack did not run:\n{out}"
    );
    assert!(!out.contains("escaped"), "{out}");
    for name in ["thp", "power"] {
        assert!(out.contains(&format!("held: {name}: ")), "{name}:\n{out}");
    }
    assert!(out.contains("Read-only file system"), "{out}");
    assert!(out.contains("held: loop0: "), "{out}");
    assert!(out.contains("held: host-devices"), "{out}");
    assert!(out.contains("devices.list: "), "{out}");
    assert!(!out.contains("a *:* rwm"), "{out}");
    let sys = out
        .lines()
        .find(|l| l.contains(" /sys "))
        .unwrap_or_else(|| panic!("no /sys mount:\n{out}"));
    assert!(sys.contains(" ro,"), "{sys}");
}
