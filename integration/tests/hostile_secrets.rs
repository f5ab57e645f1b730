//! What the sandbox holds stays its own: a secret passed to `purple run` is
//! unreadable by other users, audit logs are root's only, and control
//! characters in a process name reach the table escaped.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use purple_integration::cli::{purple_cmd, purple_in, stderr};
use purple_integration::leftovers::assert_run_left_nothing;
use purple_integration::{unique_id, Oci};

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
    let mut child = purple_cmd(&oci, work.path())
        .env("API_KEY", &secret)
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
