//! `purple run -d`, `purple ps`, `purple logs`, `purple stop`: sandboxes a
//! person can see and stop, and nothing left after `stop`.

use std::fs;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use purple_integration::cli::{purple_cmd, purple_in, stderr, stdout_ok};
use purple_integration::leftovers::{assert_run_left_nothing, wait_dead};
use purple_integration::{unique_id, Oci, TestBundle};
use serde_json::Value;

/// A policy binding the host's /usr, isolated (no egress at all: the
/// metadata attempt below can never leave the machine), logging under the
/// log root.
fn policy(dir: &Path, id: &str) -> PathBuf {
    let path = dir.join("agent.yaml");
    fs::write(
        &path,
        format!(
            "name: detached-test\n\
             network:\n  isolated: true\n\
             filesystem:\n  immutable_paths:\n    - {{ host_path: /usr, sandbox_path: /usr }}\n\
             audit:\n  log_path: /var/log/purple/{id}.jsonl\n"
        ),
    )
    .unwrap();
    path
}

/// `purple run -d`: returns the ID it printed, once it has returned.
fn run_detached(oci: &Oci, dir: &Path, id: &str, script: &str) -> String {
    let policy = policy(dir, id);
    let out = purple_in(
        oci,
        dir,
        &[
            "run",
            "-d",
            "--no-workdir",
            "--profile",
            policy.to_str().unwrap(),
            "--id",
            id,
            "--",
            "/usr/bin/python3",
            "-u",
            "-c",
            script,
        ],
    );
    stdout_ok(out).trim().to_owned()
}

fn ps(oci: &Oci, dir: &Path) -> Vec<Value> {
    stdout_ok(purple_in(oci, dir, &["ps", "--json"]))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn row(oci: &Oci, dir: &Path, id: &str) -> Option<Value> {
    ps(oci, dir).into_iter().find(|r| r["id"] == id)
}

fn logs(oci: &Oci, dir: &Path, id: &str) -> String {
    stdout_ok(purple_in(oci, dir, &["logs", id]))
}

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn detached_sandbox_is_listed_logged_and_stopped_without_leftovers() {
    let dir = tempfile::tempdir().unwrap();
    let oci = Oci::new();
    let id = unique_id("detached");
    let script = "import socket, sys, time\n\
                  print('hello from the agent')\n\
                  print('to stderr', file=sys.stderr)\n\
                  s = socket.socket(); s.settimeout(1)\n\
                  print('metadata', s.connect_ex(('169.254.169.254', 80)))\n\
                  print('ready')\n\
                  time.sleep(120)";
    let started = Instant::now();
    assert_eq!(run_detached(&oci, dir.path(), &id, script), id);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "run -d waited for its agent"
    );
    // An engine's container under the same root is not Purple's to list.
    let bundle = TestBundle::new(&["sleep", "120"]);
    let other = unique_id("notours");
    oci.create(&other, &bundle, &[]);

    wait_for("the agent's ready line", Duration::from_secs(20), || {
        logs(&oci, dir.path(), &id).contains("ready")
    });
    let out = logs(&oci, dir.path(), &id);
    assert!(out.contains("hello from the agent\n"), "{out}");
    assert!(out.contains("to stderr\n"), "{out}");
    // EPERM from the judge (errno 1), not a timeout.
    assert!(out.contains("metadata 1\n"), "{out}");

    let r = row(&oci, dir.path(), &id).expect("the detached sandbox is listed");
    assert_eq!(r["state"], "running", "{r}");
    assert_eq!(r["detached"], true);
    assert!(r["pid"].as_i64().is_some(), "{r}");
    assert!(
        r["violations"].as_u64().unwrap() >= 1,
        "the metadata block: {r}"
    );
    assert!(
        r["command"][0].as_str().unwrap().ends_with("python3"),
        "{r}"
    );
    assert!(
        row(&oci, dir.path(), &other).is_none(),
        "an engine's container is listed"
    );
    let table = stdout_ok(purple_in(&oci, dir.path(), &["ps"]));
    assert!(table.starts_with("ID ") && table.contains(&id), "{table}");

    // Not ours: refused, left alone.
    let refused = purple_in(&oci, dir.path(), &["stop", &other]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("not a sandbox of `purple run`"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(oci.status(&other), "created");
    oci.ok(&["delete", "--force", &other]);

    let supervisor = oci.record(&id)["supervisor_pid"].as_i64().unwrap();
    let stopped = purple_in(&oci, dir.path(), &["stop", "--time", "2", &id]);
    assert_eq!(stdout_ok(stopped).trim(), id);
    wait_dead(supervisor, Duration::from_secs(5), "supervisor");
    assert_run_left_nothing(&oci, &id);
    let gone = purple_in(&oci, dir.path(), &["logs", &id]);
    assert!(!gone.status.success() && stderr(&gone).contains("no sandbox"));
}

#[test]
fn detached_output_is_capped_and_kept_after_exit() {
    let dir = tempfile::tempdir().unwrap();
    let oci = Oci::new();
    let id = unique_id("chatty");
    // 20 MiB to stdout, then exit 3: 4 MiB past the 16 MiB limit.
    let script = "import sys\n\
                  sys.stdout.buffer.write(b'x' * (20 << 20))\n\
                  sys.stdout.flush()\n\
                  sys.exit(3)";
    run_detached(&oci, dir.path(), &id, script);
    wait_for("the agent's exit", Duration::from_secs(30), || {
        row(&oci, dir.path(), &id)
            .is_some_and(|r| r["state"].as_str().unwrap().starts_with("exited"))
    });
    let out = fs::read(oci.root.path().join(".purple").join(&id).join("output.log")).unwrap();
    let limit = 16usize << 20;
    assert!(
        out[..limit].iter().all(|&b| b == b'x'),
        "the first 16 MiB are kept"
    );
    let tail = String::from_utf8_lossy(&out[limit..]);
    assert!(
        tail.contains(&format!("{} bytes of output not kept", 4 << 20)),
        "{tail}"
    );
    let log = fs::read_to_string(format!("/var/log/purple/{id}.jsonl")).unwrap();
    let exited: Value = log
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|r| r["details"]["event"] == "exited")
        .expect("an exited record");
    assert_eq!(exited["details"]["output_dropped"], 4 << 20, "{exited}");
    // The host's init reaps a detached sandbox's init (nobody waits for
    // it), sometimes before the supervisor has read its status: then the
    // record has no code, never a wrong one.
    let code = &exited["details"]["code"];
    assert!(code.is_null() || *code == 3, "{exited}");
    // Stopping an exited sandbox deletes it.
    stdout_ok(purple_in(&oci, dir.path(), &["stop", &id]));
    assert_run_left_nothing(&oci, &id);
}

#[test]
fn a_foreground_sandbox_is_listed_and_stopped_through_its_caller() {
    let dir = tempfile::tempdir().unwrap();
    let oci = Oci::new();
    let id = unique_id("foreground");
    let policy = policy(dir.path(), &id);
    let mut run = purple_cmd(&oci, dir.path())
        .args(["run", "--no-workdir", "--profile"])
        .arg(&policy)
        .args(["--id", &id, "--", "/usr/bin/python3", "-u", "-c"])
        .arg(
            "import signal, sys, time\n\
             def term(*_):\n    print('terminated', flush=True); sys.exit(0)\n\
             signal.signal(signal.SIGTERM, term)\n\
             print('ready', flush=True)\n\
             time.sleep(120)",
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut agent = std::io::BufReader::new(run.stdout.take().unwrap());
    let mut line = String::new();
    agent.read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n");
    let r = row(&oci, dir.path(), &id).expect("listed");
    assert_eq!(r["detached"], false);
    let logs = purple_in(&oci, dir.path(), &["logs", &id]);
    assert!(!logs.status.success());
    assert!(
        stderr(&logs).contains("runs in the foreground"),
        "{}",
        stderr(&logs)
    );

    stdout_ok(purple_in(&oci, dir.path(), &["stop", "-t", "10", &id]));
    // SIGTERM first: the agent's handler ran and it ended on its own terms,
    // reported by its caller's own exit line.
    line.clear();
    agent.read_line(&mut line).unwrap();
    assert_eq!(line, "terminated\n");
    let out = run.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(stderr(&out).contains("purple: exit 0"), "{}", stderr(&out));
    assert_run_left_nothing(&oci, &id);
}

/// The state root an engine's container made first (`/run/purple` after a
/// podman run) still lets a `purple run` sandbox's user namespace reach its
/// rootfs: others may pass the root but not list it, records stay 0700.
#[test]
fn a_root_an_engine_made_first_still_lets_sandboxes_in() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("state");
    let with_root = |bin: PathBuf, args: &[&str]| {
        let out = std::process::Command::new(bin)
            .current_dir(dir.path())
            .arg("--root")
            .arg(&root)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    };
    let engine = |args: &[&str]| with_root(purple_integration::purple_oci(), args);
    let b = TestBundle::new(&["true"]);
    let id = unique_id("engine-first");
    engine(&["run", "--bundle", b.path().to_str().unwrap(), &id]);
    engine(&["delete", "--force", &id]);
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&root), 0o711);
    assert_eq!(mode(&root.join(".purple")), 0o700);

    // A root an earlier version left 0700 is opened for passing too.
    fs::set_permissions(&root, fs::Permissions::from_mode(0o700)).unwrap();
    let sandbox = unique_id("after-engine");
    let policy = policy(dir.path(), &sandbox);
    with_root(
        purple_integration::purple(),
        &[
            "run",
            "--no-workdir",
            "--profile",
            policy.to_str().unwrap(),
            "--id",
            &sandbox,
            "--",
            "/usr/bin/true",
        ],
    );
    assert_eq!(mode(&root), 0o711);
    let _ = fs::remove_file(format!("/var/log/purple/{sandbox}.jsonl"));
}
