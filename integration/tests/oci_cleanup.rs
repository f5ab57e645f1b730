//! Nothing outlives `delete`: not after a normal life, not after `delete --force`
//! of a running container, not after a `create` that was SIGKILLed half-way.
//! Bad input is refused with one clear error and leaves no state.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::process::Stdio;
use std::time::Duration;

use purple_integration::*;

#[test]
fn force_delete_of_running_container() {
    let oci = Oci::new();
    let b = TestBundle::new(&["sleep", "1000"]);
    let id = unique_id("force");
    oci.create(&id, &b, &[]);
    oci.ok(&["start", &id]);
    let pid = oci.state(&id)["pid"].as_i64().unwrap();
    let refused = oci.run(&["delete", &id]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("not stopped"));
    oci.ok(&["delete", "--force", &id]);
    assert_dead(pid);
    assert_no_leftovers(&oci, &id);
    // Deleting again: an error without --force, success with it.
    assert!(!oci.run(&["delete", &id]).status.success());
    oci.ok(&["delete", "--force", &id]);
}

#[test]
fn delete_of_created_container_kills_its_init() {
    let oci = Oci::new();
    let b = TestBundle::new(&["sleep", "1000"]);
    let id = unique_id("created");
    oci.create(&id, &b, &[]);
    let pid = oci.state(&id)["pid"].as_i64().unwrap();
    oci.ok(&["delete", &id]);
    assert_dead(pid);
    assert_no_leftovers(&oci, &id);
}

#[test]
fn force_delete_after_create_was_killed_half_way() {
    // Kill `create` at different points of its work; whatever it left must go.
    let b = TestBundle::new(&["sleep", "1000"]);
    for delay_ms in [0u64, 2, 5, 10, 20, 40, 80] {
        let oci = Oci::new();
        let id = unique_id("half");
        let mut child = oci
            .cmd()
            .args(["create", "--bundle"])
            .arg(b.path())
            .arg(&id)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
        let _ = child.wait();
        // Processes libcontainer forked may still be setting up; give them a moment.
        std::thread::sleep(Duration::from_millis(50));
        oci.ok(&["delete", "--force", &id]);
        assert_no_leftovers(&oci, &id);
    }
}

#[test]
fn malformed_config_is_refused_without_state() {
    let oci = Oci::new();
    let b = TestBundle::new(&["true"]);
    fs::write(
        b.path().join("config.json"),
        "{\"ociVersion\": \"1.0.2\", \"process\": ",
    )
    .unwrap();
    let id = unique_id("bad");
    let out = oci.run(&["create", "--bundle", b.path().to_str().unwrap(), &id]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("config.json"), "{err}");
    assert_eq!(err.lines().count(), 1, "one error line: {err}");
    assert_no_leftovers(&oci, &id);

    let missing = tempfile::tempdir().unwrap();
    let out = oci.run(&["create", "--bundle", missing.path().to_str().unwrap(), &id]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("config.json"));
    assert_no_leftovers(&oci, &id);
}

#[test]
fn invalid_ids_are_refused() {
    let oci = Oci::new();
    let b = TestBundle::new(&["true"]);
    for id in ["../x", "a/b", "..", ".hidden", "-rf", "a b"] {
        let out = oci.run(&["create", "--bundle", b.path().to_str().unwrap(), "--", id]);
        assert!(!out.status.success(), "{id} accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("invalid container ID"), "{id}: {err}");
    }
    let entries: Vec<_> = fs::read_dir(oci.root.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .collect();
    assert!(
        entries.is_empty(),
        "state left: {:?}",
        entries.iter().map(|e| e.path()).collect::<Vec<_>>()
    );
    assert!(!oci.root.path().parent().unwrap().join("x").exists());
}

#[test]
fn duplicate_id_is_refused_and_the_first_survives() {
    let oci = Oci::new();
    let b = TestBundle::new(&["sleep", "1000"]);
    let id = unique_id("dup");
    oci.create(&id, &b, &[]);
    let out = oci.run(&["create", "--bundle", b.path().to_str().unwrap(), &id]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
    assert_eq!(oci.status(&id), "created");
    oci.ok(&["start", &id]);
    assert_eq!(oci.status(&id), "running");
    oci.ok(&["delete", "-f", &id]);
    assert_no_leftovers(&oci, &id);
}

#[test]
fn unknown_container_errors_match_the_shims() {
    let oci = Oci::new();
    for cmd in ["state", "start", "kill", "pause", "resume", "ps", "delete"] {
        let out = oci.run(&[cmd, "nosuch"]);
        assert_eq!(out.status.code(), Some(1), "{cmd}");
        assert!(out.stdout.is_empty(), "{cmd} printed to stdout");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("container \"nosuch\" does not exist"),
            "{cmd}: {err}"
        );
    }
}

#[test]
fn json_log_holds_one_runc_error_line() {
    let oci = Oci::new();
    let log = oci.root.path().join("log.json");
    let out = oci
        .cmd()
        .args([
            "--log",
            log.to_str().unwrap(),
            "--log-format",
            "json",
            "state",
            "nosuch",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = fs::read_to_string(&log).unwrap();
    // podman json-decodes the whole file as one object when a call fails.
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["level"], "error");
    assert!(v["msg"].as_str().unwrap().contains("does not exist"));
    assert!(v["time"].as_str().unwrap().contains('T'));
}

#[test]
fn supervisor_runs_the_binary_on_disk_outside_the_container() {
    // The supervisor needs no sealed copy: it is not in the container's pid
    // namespace, so no process in the container can reach its
    // /proc/<pid>/exe. Running the file (not create's memfd copy) lets every
    // supervisor share its pages instead of each pinning an 11 MiB copy.
    let oci = Oci::new();
    let b = TestBundle::new(&["sleep", "1000"]);
    let id = unique_id("supexe");
    oci.create(&id, &b, &[]);
    let sup = oci.record(&id)["supervisor_pid"].as_u64().unwrap();
    let init = oci.state(&id)["pid"].as_i64().unwrap();
    let exe = fs::read_link(format!("/proc/{sup}/exe")).unwrap();
    assert_eq!(exe, purple_oci().canonicalize().unwrap());
    let pidns = |pid: String| fs::read_link(format!("/proc/{pid}/ns/pid")).unwrap();
    assert_ne!(pidns(sup.to_string()), pidns(init.to_string()));
    oci.ok(&["delete", "--force", &id]);
    assert_no_leftovers(&oci, &id);
}

#[test]
fn only_commands_entering_the_container_run_sealed() {
    // CVE-2019-5736: a process in the container could open the runtime binary
    // through /proc/<pid>/exe and overwrite it. `run`/`create`/`exec` therefore
    // re-execute from the binary seen through a private overlayfs without an
    // upper layer (runtime/src/sealed.rs); cheap commands keep using the file.
    let oci = Oci::new();
    let b = TestBundle::new(&["sleep", "1000"]);
    let id = unique_id("seal");
    let mut run = oci
        .cmd()
        .args(["run", "--bundle"])
        .arg(b.path())
        .arg(&id)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    oci.wait_status_exists(&id);
    oci.wait_status(&id, "running");
    // Neither `run` nor the container's init before its execve (a clone of
    // `run`: what the container's processes find in /proc) can be written,
    // even by root on the host: the file system itself is read-only, which
    // no remount or other bind of the same mount undoes.
    let created = unique_id("sealinit");
    oci.create(&created, &b, &[]);
    let init = oci.state(&created)["pid"].as_i64().unwrap();
    let on_disk = fs::metadata(purple_oci()).unwrap();
    for pid in [i64::from(run.id()), init] {
        let exe = format!("/proc/{pid}/exe");
        let meta = fs::metadata(&exe).unwrap();
        assert_ne!(
            (meta.dev(), meta.ino()),
            (on_disk.dev(), on_disk.ino()),
            "{exe} is the binary on disk"
        );
        let w = fs::OpenOptions::new().write(true).open(&exe);
        assert_eq!(
            w.as_ref().map_err(|e| e.raw_os_error()).err(),
            Some(Some(libc::EROFS)),
            "{exe} is not on a read-only file system: {w:?} (a kernel without overlayfs \
             layers by fd, 6.13, gets the sealed memfd copy instead)"
        );
    }

    let mut events = oci
        .cmd()
        .args(["events", "--interval", "1s", &id])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let exe = fs::read_link(format!("/proc/{}/exe", events.id())).unwrap();
    assert_eq!(
        exe,
        purple_oci().canonicalize().unwrap(),
        "events copied the binary"
    );
    events.kill().unwrap();
    let _ = events.wait();

    oci.ok(&["kill", &id, "KILL"]);
    assert_eq!(run.wait().unwrap().code(), Some(137));
    assert_no_leftovers(&oci, &id);
    oci.ok(&["delete", "--force", &created]);
    assert_no_leftovers(&oci, &created);
}
