//! Nothing outlives its caller, bad input never panics: a SIGKILLed
//! `purple run` takes its sandbox with it, a create that fails inside
//! libcontainer leaves nothing, and config.json values that made
//! libcontainer's init panic are refused naming the field.

use std::fs;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use purple_integration::cli::{purple_cmd, stderr};
use purple_integration::leftovers::remains;
use purple_integration::*;
use serde_json::{json, Value};

/// Lifecycle events of an audit log, in order.
fn lifecycle(log: &Path) -> Vec<Value> {
    fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|r| r["kind"] == "lifecycle")
        .map(|r| r["details"].clone())
        .collect()
}

#[test]
fn sigkilled_run_takes_its_sandbox_with_it() {
    let work = tempfile::tempdir().unwrap();
    let oci = Oci::new();
    let id = unique_id("orphan");
    // Policies may only log under the log root (hostile.rs).
    let log = PathBuf::from(format!("/var/log/purple/{id}-tied.jsonl"));
    let policy = work.path().join("tied.yaml");
    fs::write(
        &policy,
        format!(
            "name: tied\n\
             filesystem:\n  immutable_paths:\n    - {{ host_path: /usr, sandbox_path: /usr }}\n\
             audit:\n  log_path: {}\n",
            log.display()
        ),
    )
    .unwrap();
    // The agent forks a child that ignores SIGTERM, then says it is ready.
    let mut run = purple_cmd(&oci, work.path())
        .args(["run", "-q", "--profile"])
        .arg(&policy)
        .args(["--id", &id, "--", "/usr/bin/python3", "-u", "-c"])
        .arg(
            "import os, signal, time\n\
             if os.fork() == 0:\n    signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)\n\
             print('ready', flush=True)\n\
             time.sleep(60)",
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(run.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line, "ready\n", "the agent never started");

    let record = oci.record(&id);
    let supervisor = record["supervisor_pid"].as_i64().expect("a supervisor");
    let mut pids = vec![supervisor];
    let cg2 = record["cgroup2_dir"]
        .as_str()
        .map(PathBuf::from)
        .unwrap_or_else(|| cgroup2_mount().join("purple").join(&id));
    let procs: Vec<i64> = fs::read_to_string(cg2.join("cgroup.procs"))
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    assert!(procs.len() >= 2, "agent and its child: {procs:?}");
    pids.extend(&procs);

    run.kill().unwrap(); // SIGKILL: no chance to clean up
    let killed = Instant::now();
    run.wait().unwrap();
    let mut left = remains(&oci, &id, &pids);
    while !left.is_empty() && killed.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(10));
        left = remains(&oci, &id, &pids);
    }
    let took = killed.elapsed();
    eprintln!(
        "sandbox gone {:.0} ms after SIGKILL of purple run",
        took.as_secs_f64() * 1000.0
    );
    assert!(left.is_empty(), "left after {took:?}: {left:?}");
    // The last records may follow the removal by a moment.
    let deadline = Instant::now() + Duration::from_secs(1);
    let mut events = lifecycle(&log);
    while events.last().map(|e| e["event"].clone()) != Some(json!("deleted"))
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(10));
        events = lifecycle(&log);
    }
    let names: Vec<&Value> = events.iter().map(|e| &e["event"]).collect();
    assert_eq!(
        names,
        ["created", "started", "exited", "deleted"],
        "{events:?}"
    );
    assert_eq!(events[2]["reason"], "caller died", "{events:?}");
    let verify = purple_cmd(&oci, work.path())
        .args(["audit", "verify", "--path"])
        .arg(&log)
        .output()
        .unwrap();
    assert!(verify.status.success(), "{}", stderr(&verify));
    assert!(
        took < Duration::from_millis(1500),
        "cleanup took {took:?}, wanted about a second"
    );
}

/// Processes whose command line holds `needle` (the undertaker of a run
/// names its sandbox).
fn processes_naming(needle: &str) -> Vec<String> {
    fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(needle))
        .collect()
}

/// SIGKILL at every moment of `create`, before the supervisor watches the
/// run: its undertaker deletes what was made (a half-made container, its
/// cgroups, pins, egress helper and private bundle).
#[test]
fn a_run_killed_before_its_supervisor_watches_leaves_nothing() {
    let work = tempfile::tempdir().unwrap();
    let oci = Oci::new();
    let policy = work.path().join("early.yaml");
    fs::write(
        &policy,
        "name: early\n\
         filesystem:\n  immutable_paths:\n    - { host_path: /usr, sandbox_path: /usr }\n",
    )
    .unwrap();
    let mut unsupervised = 0;
    for delay_ms in (0..=300).step_by(12) {
        let id = unique_id("early-kill");
        let mut run = purple_cmd(&oci, work.path())
            .args(["run", "-q", "--profile"])
            .arg(&policy)
            .args(["--id", &id, "--", "/usr/bin/sleep", "30"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        run.kill().unwrap();
        run.wait().unwrap();
        let at_kill = remains(&oci, &id, &[]);
        let supervised = fs::read(
            oci.root
                .path()
                .join(".purple")
                .join(&id)
                .join("record.json"),
        )
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .is_some_and(|r| r["supervisor_pid"].is_u64());
        if !at_kill.is_empty() && !supervised {
            unsupervised += 1;
        }
        let killed = Instant::now();
        let mut left = remains(&oci, &id, &[]);
        left.extend(processes_naming(&id));
        while !left.is_empty() && killed.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(20));
            left = remains(&oci, &id, &[]);
            left.extend(processes_naming(&id));
        }
        assert!(
            left.is_empty(),
            "killed after {delay_ms} ms, left: {left:?}"
        );
    }
    // The kills must have found sandboxes half-made, or nothing was tested.
    assert!(unsupervised > 0, "no kill landed inside create");
    eprintln!("{unsupervised} kills landed before the supervisor watched the run");
}

/// Runs `args` as root in a private mount namespace whose /sys is a fresh
/// sysfs without the cgroup mounts, as `ip netns exec` leaves it.
fn without_cgroup_mounts(bin: &Path, args: &[&str]) -> Output {
    let script =
        "mount --make-rprivate / && umount -l /sys && mount -t sysfs sysfs /sys && exec \"$@\"";
    Command::new("unshare")
        .args(["-m", "sh", "-c", script, "sh"])
        .arg(bin)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("unshare (util-linux) is installed")
}

fn assert_explains_hidden_cgroups(out: &Output) {
    let err = stderr(out);
    assert!(!out.status.success(), "succeeded without cgroups: {err}");
    assert!(!err.contains("panicked"), "{err}");
    for want in [
        "failed to detect cgroup setup",
        "ip netns exec",
        "nsenter --net=/run/netns/",
    ] {
        assert!(err.contains(want), "no {want:?} in: {err}");
    }
}

#[test]
fn create_failing_inside_libcontainer_leaves_nothing() {
    let work = tempfile::tempdir().unwrap();
    let oci = Oci::new();
    let root = oci.root.path().to_str().unwrap();

    // libcontainer's cgroup detection fails after its state (status
    // "creating") and Purple's record exist.
    let id = unique_id("nocg-run");
    let out = without_cgroup_mounts(
        &purple(),
        &[
            "--root",
            root,
            "run",
            "--profile",
            "secure-agent",
            "--no-workdir",
            "--id",
            &id,
            "--",
            "/usr/bin/true",
        ],
    );
    assert_explains_hidden_cgroups(&out);
    assert_eq!(remains(&oci, &id, &[]), Vec::<String>::new());

    let b = TestBundle::new(&["true"]);
    let id = unique_id("nocg-oci");
    let bundle = b.path().to_str().unwrap();
    let out = without_cgroup_mounts(
        &purple_oci(),
        &["--root", root, "create", "--bundle", bundle, &id],
    );
    assert_explains_hidden_cgroups(&out);
    assert_no_leftovers(&oci, &id);

    // A delete from there cannot reach the container's cgroups: it says why
    // and keeps what a later delete needs.
    let id = unique_id("nocg-del");
    oci.create(&id, b.path(), &[]);
    let out = without_cgroup_mounts(&purple_oci(), &["--root", root, "delete", "--force", &id]);
    let err = stderr(&out);
    assert!(
        !out.status.success() && err.contains("nsenter --net="),
        "{err}"
    );
    assert_eq!(oci.status(&id), "created");
    oci.ok(&["delete", "--force", &id]);
    assert_no_leftovers(&oci, &id);

    // A failure late in libcontainer's create (the profile's /tmp scratch
    // mounted onto a file of the root filesystem): nothing left either.
    let id = unique_id("late");
    let rootfs = b.path().join("rootfs");
    fs::remove_dir(rootfs.join("tmp")).unwrap();
    fs::write(rootfs.join("tmp"), "").unwrap();
    let out = purple_cmd(&oci, work.path())
        .args([
            "run",
            "--profile",
            "secure-agent",
            "--no-workdir",
            "--id",
            &id,
            "--rootfs",
            rootfs.to_str().unwrap(),
            "--",
            "/bin/true",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    assert_eq!(remains(&oci, &id, &[]), Vec::<String>::new());
}

#[test]
fn delete_force_removes_the_private_bundle_of_run() {
    let work = tempfile::tempdir().unwrap();
    let oci = Oci::new();
    let id = unique_id("rundel");
    let mut run = purple_cmd(&oci, work.path())
        .args([
            "run",
            "-q",
            "--profile",
            "secure-agent",
            "--no-workdir",
            "--id",
            &id,
            "--",
            "/usr/bin/sleep",
            "60",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    oci.wait_status_exists(&id);
    oci.wait_status(&id, "running");
    assert!(oci.root.path().join("bundles").join(&id).exists());
    oci.ok(&["delete", "--force", &id]);
    assert_eq!(remains(&oci, &id, &[]), Vec::<String>::new());
    let _ = run.wait();
}

#[test]
fn config_values_libcontainer_panics_on_are_refused() {
    let oci = Oci::new();
    for (env, why) in [
        ("", "use NAME=VALUE"),
        ("=x", "the name is empty"),
        ("KEY", "use NAME=VALUE"),
    ] {
        let b = TestBundle::new(&["true"]);
        b.edit(|c| c["process"]["env"].as_array_mut().unwrap().push(json!(env)));
        let id = unique_id("badenv");
        let out = oci.run(&["create", "--bundle", b.path().to_str().unwrap(), &id]);
        let err = stderr(&out);
        assert!(!out.status.success(), "{env:?} accepted");
        assert!(
            err.contains("process.env[2]") && err.contains(why) && err.contains("config.json"),
            "{env:?}: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
        assert_no_leftovers(&oci, &id);
    }
    let b = TestBundle::new(&["true"]);
    b.edit(|c| c["process"]["args"] = json!([]));
    let id = unique_id("noargs");
    let err = stderr(&oci.run(&["create", "--bundle", b.path().to_str().unwrap(), &id]));
    assert!(err.contains("process.args is empty"), "{err}");
    assert_no_leftovers(&oci, &id);

    // The same values through purple run and through exec.
    let work = tempfile::tempdir().unwrap();
    let out = purple_cmd(&oci, work.path())
        .args([
            "run",
            "--profile",
            "secure-agent",
            "--no-workdir",
            "-e",
            "=x",
            "--",
            "/usr/bin/true",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success(), "-e =x accepted");
    assert!(
        stderr(&out).contains("the name is empty"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));

    let b = TestBundle::new(&["sleep", "60"]);
    let id = unique_id("badexec");
    oci.create(&id, b.path(), &[]);
    oci.ok(&["start", &id]);
    let out = oci.run(&["exec", "--env", "=x", &id, "true"]);
    assert!(!out.status.success(), "exec --env =x accepted");
    assert!(
        stderr(&out).contains("the name is empty"),
        "{}",
        stderr(&out)
    );
    let process = b.path().join("process.json");
    fs::write(
        &process,
        json!({"args": ["true"], "env": ["\u{0}=x"], "cwd": "/", "user": {"uid": 0, "gid": 0}})
            .to_string(),
    )
    .unwrap();
    let out = oci.run(&["exec", "--process", process.to_str().unwrap(), &id]);
    assert!(
        !out.status.success() && stderr(&out).contains("process.env[0]"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    oci.ok(&["delete", "--force", &id]);
    assert_no_leftovers(&oci, &id);
}
