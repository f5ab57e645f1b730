//! Hostile input on the host side: what an agent leaves behind (links in its
//! output, process names) and what a bundle's author writes (annotations)
//! never makes Purple act as root for them. Each test is the attack.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use purple_integration::{assert_no_leftovers, purple, purple_oci, unique_id, Oci, TestBundle};
use serde_json::json;

/// `purple --root R ARGS` run from `dir`.
fn purple_in(oci: &Oci, dir: &Path, args: &[&str]) -> Output {
    Command::new(purple())
        .current_dir(dir)
        .arg("--root")
        .arg(oci.root.path())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Nothing `purple run --id ID` made survives it.
fn assert_run_left_nothing(oci: &Oci, id: &str) {
    assert_no_leftovers(oci, id);
    assert!(!oci.root.path().join("bundles").join(id).exists());
    assert!(!Path::new("/sys/fs/bpf/purple").join(id).exists());
}

/// A root-owned 0755 host directory holding one root-owned tool: a stand-in
/// for /usr/local/bin that the sandbox must never be handed.
fn host_bin_dir() -> tempfile::TempDir {
    let d = tempfile::Builder::new()
        .prefix("h2-hostbin-")
        .tempdir()
        .unwrap();
    fs::set_permissions(d.path(), fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(d.path().join("tool"), "#!/bin/sh\necho original\n").unwrap();
    fs::set_permissions(d.path().join("tool"), fs::Permissions::from_mode(0o755)).unwrap();
    d
}

fn assert_untouched(dir: &Path) {
    let meta = fs::metadata(dir).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid()),
        (0, 0),
        "{} changed owner",
        dir.display()
    );
    assert_eq!(meta.mode() & 0o7777, 0o755);
    let tool = dir.join("tool");
    assert_eq!(fs::metadata(&tool).unwrap().uid(), 0);
    assert_eq!(
        fs::read_to_string(&tool).unwrap(),
        "#!/bin/sh\necho original\n"
    );
    assert_eq!(
        fs::read_dir(dir).unwrap().count(),
        1,
        "files planted in {}",
        dir.display()
    );
}

#[test]
fn a_link_planted_by_one_run_does_not_hand_a_host_dir_to_the_next() {
    let oci = Oci::new();
    let target = host_bin_dir();
    let work = tempfile::tempdir().unwrap();
    fs::set_permissions(work.path(), fs::Permissions::from_mode(0o755)).unwrap();
    // Run 1: the agent leaves a link in its output directory.
    let plant = format!("ln -s {} /output/results", target.path().display());
    let id1 = unique_id("plant");
    let out = purple_in(
        &oci,
        work.path(),
        &[
            "run",
            "--profile",
            "development",
            "--id",
            &id1,
            "-q",
            "--",
            "/bin/sh",
            "-c",
            &plant,
        ],
    );
    assert!(out.status.success(), "run 1: {}", stderr(&out));
    let link = work.path().join("output/results");
    let meta = fs::symlink_metadata(&link).unwrap();
    assert!(meta.file_type().is_symlink());
    assert!(
        meta.uid() >= 100_000,
        "the link is the sandbox's: {}",
        meta.uid()
    );
    assert_run_left_nothing(&oci, &id1);

    // Run 2: a person reuses the agent's output, writable and read-only.
    let attack = "rm -f /results/tool; echo pwned > /results/tool; chmod 777 /results";
    for volume in ["./output/results:/results", "./output/results:/results:ro"] {
        let id2 = unique_id("reuse");
        let out = purple_in(
            &oci,
            work.path(),
            &[
                "run",
                "--profile",
                "development",
                "--id",
                &id2,
                "-v",
                volume,
                "--",
                "/bin/sh",
                "-c",
                attack,
            ],
        );
        let err = stderr(&out);
        assert!(!out.status.success(), "{volume}: run 2 was let through");
        assert!(
            err.contains("which a sandbox can write") && err.contains("output"),
            "{volume}: {err}"
        );
        assert_untouched(target.path());
        assert_run_left_nothing(&oci, &id2);
    }
    // What is the agent's own stays usable: its output directory itself.
    let id3 = unique_id("again");
    let out = purple_in(
        &oci,
        work.path(),
        &[
            "run",
            "--profile",
            "development",
            "--id",
            &id3,
            "-q",
            "--",
            "/bin/sh",
            "-c",
            "ls /output",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_untouched(target.path());
    assert_run_left_nothing(&oci, &id3);
}

#[test]
fn a_policy_output_path_through_an_agent_link_is_refused() {
    // The same link, reached by a policy file's output_paths rather than -v.
    let oci = Oci::new();
    let target = host_bin_dir();
    let work = tempfile::tempdir().unwrap();
    fs::set_permissions(work.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let output = work.path().join("output");
    fs::create_dir(&output).unwrap();
    std::os::unix::fs::chown(&output, Some(100_000), Some(100_000)).unwrap();
    std::os::unix::fs::symlink(target.path(), output.join("results")).unwrap();
    std::os::unix::fs::lchown(output.join("results"), Some(100_000), Some(100_000)).unwrap();
    let dev = fs::read_to_string(
        purple_integration::repo().join("policy-translator/profiles/development.yaml"),
    )
    .unwrap()
    .replace("name: development", "name: reuse")
    .replace("\"./output\"", "\"./output/results\"");
    fs::write(work.path().join("reuse.yaml"), dev).unwrap();
    let id = unique_id("polreuse");
    let out = purple_in(
        &oci,
        work.path(),
        &[
            "run",
            "--profile",
            "./reuse.yaml",
            "--id",
            &id,
            "--",
            "/bin/true",
        ],
    );
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(
        err.contains("output_paths") && err.contains("which a sandbox can write"),
        "{err}"
    );
    assert_untouched(target.path());
    assert_run_left_nothing(&oci, &id);
}

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

#[test]
fn a_secret_passed_to_run_is_unreadable_by_other_users() {
    let oci = Oci::new();
    // As /run/purple: others may pass.
    fs::set_permissions(oci.root.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let work = tempfile::tempdir().unwrap();
    fs::set_permissions(work.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let secret = format!("h2-secret-{}", std::process::id());
    let id = unique_id("secret");
    // `-e KEY` with the value in purple's environment: a command line is
    // every local user's to read.
    let mut child = Command::new(purple())
        .current_dir(work.path())
        .env("API_KEY", &secret)
        .arg("--root")
        .arg(oci.root.path())
        .args([
            "run",
            "--profile",
            "development",
            "--id",
            &id,
            "-e",
            "API_KEY",
            "-q",
            "--",
            "/bin/sleep",
            "4",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let record = oci
        .root
        .path()
        .join(".purple")
        .join(&id)
        .join("record.json");
    let staged = oci
        .root
        .path()
        .join("bundles")
        .join(&id)
        .join("config.json");
    let t = Instant::now();
    // Running: the supervisor is recorded and run dropped its staging copy.
    while !fs::read_to_string(&record).is_ok_and(|r| !r.contains("supervisor_pid\":null"))
        || staged.exists()
    {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "the sandbox never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Root sees where the secret is kept: one copy, private.
    let as_root = Command::new("grep")
        .args(["-rl", &secret])
        .arg(oci.root.path())
        .output()
        .unwrap();
    let holders: Vec<String> = String::from_utf8_lossy(&as_root.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(holders.len(), 1, "copies of the secret: {holders:?}");
    for h in &holders {
        let mode = fs::metadata(h).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600, "{h}");
        let dir = Path::new(h).parent().unwrap();
        assert_eq!(
            fs::metadata(dir).unwrap().mode() & 0o777,
            0o700,
            "{}",
            dir.display()
        );
    }
    let pdir = oci.root.path().join(".purple").join(&id);
    assert_eq!(fs::metadata(&pdir).unwrap().mode() & 0o777, 0o700);
    for e in fs::read_dir(&pdir).unwrap().flatten() {
        let m = e.metadata().unwrap();
        if m.is_file() {
            assert_eq!(
                m.mode() & 0o077,
                0,
                "{} is readable by others",
                e.path().display()
            );
        }
    }
    // Another local user looks everywhere it can: the state, every process.
    // The pattern comes from a file: on grep's own command line it would be
    // found in /proc/PID/cmdline.
    let pattern = tempfile::tempdir().unwrap();
    fs::set_permissions(pattern.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let pattern = pattern.path().join("pattern");
    fs::write(&pattern, &secret).unwrap();
    fs::set_permissions(&pattern, fs::Permissions::from_mode(0o644)).unwrap();
    let script = format!(
        "grep -rlF -f {p} {} 2>/dev/null; grep -lF -f {p} /proc/[0-9]*/environ /proc/[0-9]*/cmdline 2>/dev/null; true",
        oci.root.path().display(),
        p = pattern.display()
    );
    let nobody = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "/bin/sh",
            "-c",
            &script,
        ])
        .output()
        .unwrap();
    assert!(nobody.status.success(), "{}", stderr(&nobody));
    let found = String::from_utf8_lossy(&nobody.stdout);
    assert!(
        found.trim().is_empty(),
        "nobody read the secret in: {found}"
    );
    let st = child.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(st.success(), "{err}");
    assert_run_left_nothing(&oci, &id);
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

#[test]
fn audit_logs_are_for_root_only() {
    let oci = Oci::new();
    let work = tempfile::tempdir().unwrap();
    let id = unique_id("modes");
    let out = purple_in(
        &oci,
        work.path(),
        &[
            "run",
            "--profile",
            "development",
            "--id",
            &id,
            "-q",
            "--",
            "/bin/true",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let log = purple_runtime::audit::default_path(&id);
    assert_eq!(fs::metadata(&log).unwrap().mode() & 0o777, 0o600);
    let root = fs::symlink_metadata("/var/log/purple").unwrap();
    assert!(root.is_dir());
    assert_eq!((root.uid(), root.mode() & 0o777), (0, 0o700));
    let _ = fs::remove_file(&log);
}

#[test]
fn control_characters_in_a_process_name_reach_the_table_escaped() {
    let oci = Oci::new();
    let work = tempfile::tempdir().unwrap();
    let id = unique_id("escape");
    let name = "\r\x1b[2K\x1b[8m";
    let program = "import ctypes, socket, sys\n\
                   ctypes.CDLL(None).prctl(15, sys.argv[1].encode(), 0, 0, 0)\n\
                   s = socket.socket()\n\
                   try:\n    s.connect(('169.254.169.254', 80))\n\
                   except OSError as e:\n    print(e.errno)\n";
    let out = purple_in(
        &oci,
        work.path(),
        &[
            "run",
            "--profile",
            "development",
            "--id",
            &id,
            "--",
            "python3",
            "-c",
            program,
            name,
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "1",
        "connect was not refused"
    );
    // purple run's own line names the log, not the agent's strings, but is
    // escaped all the same.
    assert!(
        !out.stderr.iter().any(|b| *b == 0x1b || *b == b'\r'),
        "{}",
        stderr(&out)
    );
    let log = purple_runtime::audit::default_path(&id);
    let path = log.to_str().unwrap();
    let table = purple_in(&oci, work.path(), &["audit", "--path", path]);
    assert!(table.status.success(), "{}", stderr(&table));
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        !table.stdout.iter().any(|b| *b == 0x1b || *b == b'\r'),
        "raw control bytes in the table: {text:?}"
    );
    assert!(
        text.lines()
            .any(|l| l.contains("network.blocked") && l.contains("\\r\\x1b[2K\\x1b[8m")),
        "{text}"
    );
    let follow = purple_in(&oci, work.path(), &["audit", "--path", path, "--follow"]);
    assert!(!follow.stdout.iter().any(|b| *b == 0x1b || *b == b'\r'));
    let json = purple_in(&oci, work.path(), &["audit", "--path", path, "--json"]);
    let comms: Vec<String> = String::from_utf8_lossy(&json.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|r| r["kind"] == "network.blocked")
        .filter_map(|r| r["comm"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(comms, vec![name.to_owned()], "JSON keeps the exact name");
    assert_run_left_nothing(&oci, &id);
    let _ = fs::remove_file(&log);
}
