//! Annotations are the bundle author's, and hostile: a profile annotation
//! reads only profiles and never echoes a file, an audit annotation cannot
//! aim root at a file or run a command, and a pin directory someone else
//! made is refused.

use std::fs;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use purple_integration::cli::stderr;
use purple_integration::{assert_no_leftovers, purple_oci, unique_id, Oci, TestBundle};
use serde_json::json;

/// `purple-oci create` of a busybox bundle edited by `edit`; returns its output.
fn create_with(
    oci: &Oci,
    id: &str,
    extra: &[&str],
    edit: impl FnOnce(&mut serde_json::Value),
) -> (Output, TestBundle) {
    let b = TestBundle::new(&["true"]);
    b.edit(edit);
    let out = oci
        .cmd()
        .args(extra)
        .args(["create", "--bundle"])
        .arg(b.path())
        .arg(id)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (out, b)
}

#[test]
fn a_profile_annotation_reads_only_profiles_and_never_echoes_a_file() {
    let oci = Oci::new();
    let shadow = fs::read_to_string("/etc/shadow").unwrap();
    for name in [
        "/etc/shadow",
        "../../../../etc/shadow",
        "shadow/../x",
        ".hidden",
    ] {
        let id = unique_id("profile");
        let (out, _b) = create_with(&oci, &id, &[], |c| {
            c["annotations"] = json!({ "io.purple.profile": name });
        });
        let err = stderr(&out);
        assert!(!out.status.success(), "{name}: accepted");
        assert!(
            err.contains("io.purple.profile") && err.contains("not a profile name"),
            "{name}: {err}"
        );
        for line in shadow.lines().filter(|l| !l.is_empty()) {
            let user = line.split(':').next().unwrap();
            assert!(
                !err.contains(&format!("{user}:")),
                "{name}: echoed {user}'s line: {err}"
            );
        }
        assert_no_leftovers(&oci, &id);
    }
    // An unknown name is an error naming where profiles come from.
    let id = unique_id("profile");
    let (out, _b) = create_with(&oci, &id, &[], |c| {
        c["annotations"] = json!({ "io.purple.profile": "no-such-profile" });
    });
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("/etc/purple/policies"),
        "{}",
        stderr(&out)
    );
    assert_no_leftovers(&oci, &id);
}

#[test]
fn an_audit_annotation_cannot_aim_root_at_a_file_or_run_a_command() {
    let oci = Oci::new();
    let scratch = tempfile::tempdir().unwrap();
    let victim = scratch.path().join("victim");
    fs::write(&victim, "precious\n").unwrap();
    let victim_dir = scratch.path().join("victim-dir");
    fs::create_dir(&victim_dir).unwrap();
    let tag = unique_id("h2");
    let file_link = Path::new("/var/log/purple").join(format!("{tag}-link.jsonl"));
    let dir_link = Path::new("/var/log/purple").join(format!("{tag}-dir"));
    fs::create_dir_all("/var/log/purple").unwrap();
    std::os::unix::fs::symlink(&victim, &file_link).unwrap();
    std::os::unix::fs::symlink(&victim_dir, &dir_link).unwrap();
    let marker = scratch.path().join("ran-as-root");
    let cases = [
        (json!({"log_path": victim}), "under /var/log/purple"),
        (
            json!({"log_path": "/var/log/purple/../../../etc/x.jsonl"}),
            "'..'",
        ),
        (json!({"log_path": file_link}), "symbolic link"),
        (
            json!({"log_path": dir_link.join("x.jsonl")}),
            "symbolic link",
        ),
        (
            json!({"alerts": {"command": ["/bin/sh", "-c", format!("id > {}", marker.display())]}}),
            "alerts come only from the host's configuration",
        ),
        (
            json!({"alerts": {"unix_socket": "/run/systemd/private"}}),
            "alerts come only",
        ),
        (
            json!({"alerts": {"http": "http://169.254.169.254/latest"}}),
            "alerts come only",
        ),
    ];
    for (plan, says) in cases {
        let id = unique_id("annot");
        let (out, _b) = create_with(&oci, &id, &[], |c| {
            c["annotations"] = json!({ "io.purple.audit": plan.to_string() });
        });
        let err = stderr(&out);
        assert!(!out.status.success(), "{plan}: accepted");
        assert!(
            err.contains("io.purple.audit") && err.contains(says),
            "{plan}: {err}"
        );
        assert_eq!(fs::read_to_string(&victim).unwrap(), "precious\n", "{plan}");
        assert_eq!(fs::read_dir(&victim_dir).unwrap().count(), 0, "{plan}");
        assert_no_leftovers(&oci, &id);
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(!marker.exists(), "an annotation's command ran");
    let _ = fs::remove_file(&file_link);
    let _ = fs::remove_file(&dir_link);
}

/// Runs `purple-oci create` in a mount namespace of its own whose bpffs
/// (fresh, not the host's) has `/sys/fs/bpf/purple` made by `prepare`:
/// other tests keep using the host's.
fn create_with_pin_root(oci: &Oci, id: &str, b: &TestBundle, prepare: &str) -> Output {
    let script = format!(
        "set -e; mount -t bpf bpf /sys/fs/bpf; {prepare}; exec \"$0\" --root \"$1\" create --bundle \"$2\" \"$3\""
    );
    // Files, not pipes: the container and its supervisor inherit them.
    let (out, err) = (b.path().join("stdout"), b.path().join("stderr"));
    let status = Command::new("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "/bin/sh",
            "-c",
            &script,
        ])
        .arg(purple_oci())
        .arg(oci.root.path())
        .arg(b.path())
        .arg(id)
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out).unwrap())
        .stderr(fs::File::create(&err).unwrap())
        .status()
        .unwrap();
    Output {
        status,
        stdout: fs::read(&out).unwrap(),
        stderr: fs::read(&err).unwrap(),
    }
}

#[test]
fn a_pin_directory_made_by_someone_else_is_refused() {
    let oci = Oci::new();
    for (prepare, says) in [
        (
            "mkdir /sys/fs/bpf/purple; chown 65534 /sys/fs/bpf/purple",
            "owned by uid 65534",
        ),
        (
            "mkdir /sys/fs/bpf/purple; chmod 0777 /sys/fs/bpf/purple",
            "lets others write",
        ),
        (
            "mkdir /sys/fs/bpf/elsewhere; ln -s elsewhere /sys/fs/bpf/purple",
            "symbolic link",
        ),
    ] {
        let b = TestBundle::new(&["true"]);
        let id = unique_id("pins");
        let out = create_with_pin_root(&oci, &id, &b, prepare);
        let err = stderr(&out);
        assert!(!out.status.success(), "{prepare}: accepted");
        assert!(
            err.contains("/sys/fs/bpf/purple") && err.contains(says),
            "{prepare}: {err}"
        );
        assert_no_leftovers(&oci, &id);
    }
    // A fresh bpffs: Purple makes the directory itself, root's and 0700.
    let b = TestBundle::new(&["true"]);
    let id = unique_id("pins");
    let out = create_with_pin_root(&oci, &id, &b, "true");
    assert!(out.status.success(), "{}", stderr(&out));
    let out = Command::new("nsenter")
        .arg(format!(
            "--mount=/proc/{}/ns/mnt",
            oci.record(&id)["supervisor_pid"]
        ))
        .args(["stat", "-c", "%u %a", "/sys/fs/bpf/purple"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "0 700",
        "{}",
        stderr(&out)
    );
    oci.ok(&["delete", "--force", &id]);
    assert_no_leftovers(&oci, &id);
}
