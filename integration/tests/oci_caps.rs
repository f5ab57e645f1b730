//! Attacks from inside a container on the OCI path (issue 13), capabilities
//! and privilege: under a profile, `exec` (podman's and purple-oci's, with
//! `--cap`, `--process` or `--privileged`) gets no capability back, and
//! `--privileged` keeps /sys and the host's devices closed.

use std::fs;

use purple_integration::cli::combined as text;
use purple_integration::podman::{podman, podman_ok};
use purple_integration::*;
use serde_json::json;

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
