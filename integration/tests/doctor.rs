//! `purple doctor` reports what this host really has (each line checked
//! against an independent reading), names the missing cgroup mounts under
//! `ip netns exec`, and leaves nothing behind; completions and man pages.

use std::process::{Command, Output};

use purple_integration::{cgroup2_mount, is_hybrid, purple, purple_oci, unique_id};
use serde_json::Value;

/// Exit code, report, and the pid doctor ran as (its scratch names carry it;
/// `ip netns exec` execs the command in its own process).
fn doctor_json(cmd: &mut Command) -> (i32, Value, u32) {
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("purple doctor runs");
    let pid = child.id();
    let out: Output = child.wait_with_output().expect("purple doctor ends");
    let code = out.status.code().expect("exit code");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "doctor --json is JSON ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (code, report, pid)
}

fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {name} line in {report}"))
}

/// The active LSMs as securityfs lists them, read in a private mount
/// namespace so the host's mounts stay as they are.
fn lsms_from_securityfs() -> String {
    let out = Command::new("unshare")
        .args(["-m", "sh", "-c"])
        .arg("mount -t securityfs none /sys/kernel/security && cat /sys/kernel/security/lsm")
        .output()
        .expect("unshare runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The Landlock ABI from the kernel, asked by Python's ctypes (not Purple).
fn landlock_abi() -> i64 {
    let out = Command::new("python3")
        .args([
            "-c",
            "import ctypes; print(ctypes.CDLL(None).syscall(444, None, 0, 1))",
        ])
        .output()
        .expect("python3 runs");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("an ABI number")
}

fn leftovers(pid: u32) -> Vec<String> {
    let mine = format!("doctor-{pid}");
    let mut found = Vec::new();
    for dir in [cgroup2_mount().join("purple"), "/sys/fs/bpf/purple".into()] {
        if let Ok(entries) = std::fs::read_dir(&dir) {
            found.extend(
                entries
                    .filter_map(|e| e.ok())
                    .map(|e| e.path().display().to_string())
                    .filter(|p| p.ends_with(&mine)),
            );
        }
    }
    found
}

#[test]
fn doctor_reports_what_this_host_has_and_leaves_nothing() {
    let (code, report, pid) = doctor_json(Command::new(purple()).args(["doctor", "--json"]));
    let verdict = report["verdict"].as_str().unwrap();
    assert_eq!(
        code,
        match verdict {
            "ok" => 0,
            "degraded" => 1,
            other => panic!("this host runs Purple, doctor says {other}: {report}"),
        }
    );
    let cgroups = check(&report, "cgroups");
    assert_eq!(cgroups["status"], "ok", "{cgroups}");
    let layout = if is_hybrid() { "hybrid" } else { "cgroup v2" };
    assert!(
        cgroups["found"].as_str().unwrap().starts_with(layout),
        "{cgroups}"
    );

    let hooks = check(&report, "bpf cgroup hooks");
    assert_eq!(
        hooks["status"], "ok",
        "the real programs attach here: {hooks}"
    );

    let lsms = lsms_from_securityfs();
    let bpf_lsm = check(&report, "bpf lsm");
    let active = lsms.split(',').any(|l| l.trim() == "bpf");
    assert_eq!(
        bpf_lsm["status"] == "ok",
        active,
        "securityfs says {lsms:?}: {bpf_lsm}"
    );

    let abi = landlock_abi();
    let landlock = check(&report, "landlock");
    assert_eq!(landlock["found"], format!("ABI {abi}"), "{landlock}");
    assert_eq!(landlock["status"] == "ok", abi >= 6, "{landlock}");

    let seccomp = check(&report, "seccomp");
    assert_eq!(seccomp["status"], "ok", "{seccomp}");
    assert!(
        leftovers(pid).is_empty(),
        "doctor left {:?}",
        leftovers(pid)
    );
}

#[test]
fn doctor_under_ip_netns_exec_names_the_missing_cgroup_mounts() {
    let ns = unique_id("doc");
    let add = Command::new("ip")
        .args(["netns", "add", &ns])
        .status()
        .unwrap();
    assert!(add.success(), "ip netns add {ns}");
    let (code, report, pid) = doctor_json(
        Command::new("ip")
            .args(["netns", "exec", &ns])
            .arg(purple())
            .args(["doctor", "--json"]),
    );
    let text = Command::new("ip")
        .args(["netns", "exec", &ns])
        .arg(purple())
        .arg("doctor")
        .output()
        .unwrap();
    Command::new("ip")
        .args(["netns", "del", &ns])
        .status()
        .unwrap();
    assert_eq!(code, 2, "{report}");
    assert_eq!(report["verdict"], "cannot-run");
    let cgroups = check(&report, "cgroups");
    assert_eq!(cgroups["status"], "missing");
    assert!(
        cgroups["fix"]
            .as_str()
            .unwrap()
            .contains("nsenter --net=/run/netns/"),
        "{cgroups}"
    );
    let lines = String::from_utf8_lossy(&text.stdout);
    assert!(
        lines.contains("ip netns exec") && lines.contains("cannot run"),
        "{lines}"
    );
    assert!(
        leftovers(pid).is_empty(),
        "doctor left {:?}",
        leftovers(pid)
    );
}

#[test]
fn completions_load_in_bash_for_both_commands() {
    for (bin, name) in [(purple(), "purple"), (purple_oci(), "purple-oci")] {
        let script = format!(
            "source <({} completions bash) && complete -p {name}",
            bin.display()
        );
        let out = Command::new("bash").args(["-c", &script]).output().unwrap();
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && said.contains(&format!(" {name}")),
            "{said}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // A reader that goes away early is not a crash.
    let out = Command::new("bash")
        .args([
            "-c",
            &format!("{} completions zsh | head -1", purple().display()),
        ])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
}

#[test]
fn man_pages_render_for_every_command() {
    let dir = tempfile::tempdir().unwrap();
    for bin in [purple(), purple_oci()] {
        let st = Command::new(&bin)
            .arg("man")
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(st.success());
    }
    for page in [
        "purple.1",
        "purple-run.1",
        "purple-doctor.1",
        "purple-oci.1",
        "purple-oci-create.1",
        "purple-oci-exec.1",
    ] {
        let path = dir.path().join(page);
        let out = Command::new("man")
            .arg("-l")
            .arg(&path)
            .env("MANWIDTH", "80")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("NAME"),
            "{page}: {text}"
        );
    }
    // scripts/setup.sh installs them where man finds them.
    for page in ["purple.1", "purple-oci.1", "purple-doctor.1"] {
        let installed = std::path::Path::new("/usr/local/share/man/man1").join(page);
        assert!(
            installed.is_file(),
            "{} missing: run scripts/setup.sh",
            installed.display()
        );
    }
}
