//! The OCI lifecycle of `purple-oci` on a busybox bundle, as root on the real kernel.

use std::fs;
use std::os::unix::net::UnixListener;
use std::time::Duration;

use purple_integration::*;
use serde_json::json;

#[test]
fn create_start_kill_delete() {
    let oci = Oci::new();
    // pid 1 ignores signals it has no handler for: give TERM one.
    let b = TestBundle::new(&[
        "sh",
        "-c",
        "trap 'exit 0' TERM; while :; do sleep 0.1; done",
    ]);
    let id = unique_id("life");
    let pid_file = b.path().join("init.pid");
    oci.create(&id, &b, &["--pid-file", pid_file.to_str().unwrap()]);

    let st = oci.state(&id);
    assert_eq!(st["status"], "created");
    assert_eq!(st["id"], id.as_str());
    assert_eq!(st["ociVersion"].as_str().unwrap().chars().next(), Some('1'));
    assert_eq!(
        st["bundle"],
        b.path().canonicalize().unwrap().to_str().unwrap()
    );
    let pid = st["pid"].as_i64().unwrap();
    assert!(pid > 0);
    assert_eq!(
        fs::read_to_string(&pid_file).unwrap().trim(),
        pid.to_string()
    );
    // The init process waits in its own cgroup2 directory, where eBPF attaches.
    let cg = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(cg.contains(&format!("0::/purple/{id}\n")), "{cg}");

    oci.ok(&["start", &id]);
    assert_eq!(oci.status(&id), "running");
    let again = oci.run(&["start", &id]);
    assert!(!again.status.success(), "second start must fail");

    oci.ok(&["kill", &id]); // TERM by default
    oci.wait_status(&id, "stopped");
    let st = oci.state(&id);
    assert!(
        st.get("pid").is_none(),
        "a stopped container has no pid: {st}"
    );
    let k = oci.run(&["kill", &id, "KILL"]);
    assert!(String::from_utf8_lossy(&k.stderr).contains("container not running"));

    oci.ok(&["delete", &id]);
    assert_no_leftovers(&oci, &id);
    let gone = oci.run(&["state", &id]);
    assert_eq!(gone.status.code(), Some(1));
    assert!(gone.stdout.is_empty());
    assert!(String::from_utf8_lossy(&gone.stderr)
        .contains(&format!("container \"{id}\" does not exist")));
}

#[test]
fn run_returns_exit_code_and_passes_stdio() {
    let oci = Oci::new();
    let b = TestBundle::new(&["sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 7"]);
    let id = unique_id("run");
    let out = oci.run(&["run", "--bundle", b.path().to_str().unwrap(), &id]);
    assert_eq!(out.status.code(), Some(7));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "to-stdout\n");
    assert!(String::from_utf8_lossy(&out.stderr).contains("to-stderr"));
    assert_no_leftovers(&oci, &id);
}

#[test]
fn run_bundle_dir_without_id() {
    let oci = Oci::new();
    let b = TestBundle::new(&["sh", "-c", "exit 3"]);
    let arg = format!("{}/", b.path().display());
    let out = oci.run(&["run", &arg]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let left: Vec<_> = fs::read_dir(oci.root.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .collect();
    assert!(
        left.iter().all(|n| n == ".purple"),
        "leftover state: {left:?}"
    );
    assert_eq!(
        fs::read_dir(oci.root.path().join(".purple"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn run_reports_death_by_signal_as_128_plus_n() {
    let oci = Oci::new();
    // pid 1 ignores signals it has no handler for, so a child does the dying.
    let b = TestBundle::new(&["sh", "-c", "sh -c 'kill -KILL $$'; exit $?"]);
    let id = unique_id("sig");
    let out = oci.run(&["run", "--bundle", b.path().to_str().unwrap(), &id]);
    assert_eq!(out.status.code(), Some(137));
}

#[test]
fn exec_runs_in_the_container_and_its_cgroup() {
    let oci = Oci::new();
    let b = TestBundle::new(&["sleep", "1000"]);
    let id = unique_id("exec");
    oci.create(&id, &b, &[]);
    oci.ok(&["start", &id]);

    let out = oci.run(&["exec", &id, "sh", "-c", "hostname; echo $FOO; exit 4"]);
    assert_eq!(out.status.code(), Some(4));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "purple\n\n");
    let out = oci.run(&[
        "exec",
        "--env",
        "FOO=bar",
        "--cwd",
        "/tmp",
        &id,
        "sh",
        "-c",
        "echo $FOO $PWD",
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "bar /tmp\n");

    // A detached exec'd process sits in the container's cgroup2 directory too.
    let pid_file = b.path().join("exec.pid");
    oci.detached(&[
        "exec",
        "-d",
        "--pid-file",
        pid_file.to_str().unwrap(),
        &id,
        "sleep",
        "1000",
    ]);
    let pid: i32 = fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let cg = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(cg.contains(&format!("0::/purple/{id}\n")), "{cg}");
    let ps: Vec<i64> = serde_json::from_str(&oci.ok(&["ps", "--format", "json", &id])).unwrap();
    assert!(ps.contains(&(pid as i64)), "{ps:?} lacks {pid}");
    assert!(ps.contains(&oci.state(&id)["pid"].as_i64().unwrap()));
    let table = oci.ok(&["ps", &id]);
    assert!(
        table.starts_with("UID") && table.contains("sleep 1000"),
        "{table}"
    );

    oci.ok(&["delete", "--force", &id]);
    assert_dead(pid as i64);
    assert_no_leftovers(&oci, &id);
}

#[test]
fn exec_with_process_json() {
    let oci = Oci::new();
    let b = TestBundle::new(&["sleep", "1000"]);
    let id = unique_id("execp");
    oci.create(&id, &b, &[]);
    oci.ok(&["start", &id]);
    let process = b.path().join("process.json");
    let p = json!({"args": ["sh", "-c", "echo from-json $X"], "cwd": "/", "env": ["X=1", "PATH=/bin"], "user": {"uid": 0, "gid": 0}});
    fs::write(&process, p.to_string()).unwrap();
    let out = oci.run(&["exec", "--process", process.to_str().unwrap(), &id]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "from-json 1\n");
    oci.ok(&["delete", "-f", &id]);
    assert_no_leftovers(&oci, &id);
}

#[test]
fn pause_and_resume() {
    let oci = Oci::new();
    let b = TestBundle::new(&["sleep", "1000"]);
    let id = unique_id("pause");
    oci.create(&id, &b, &[]);
    oci.ok(&["start", &id]);
    oci.ok(&["pause", &id]);
    assert_eq!(oci.status(&id), "paused");
    let pid = oci.state(&id)["pid"].as_i64().unwrap();
    let stat = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(stat
        .lines()
        .any(|l| l.starts_with("State:") && (l.contains("D") || l.contains("S"))));
    let again = oci.run(&["pause", &id]);
    assert!(!again.status.success());
    oci.ok(&["resume", &id]);
    assert_eq!(oci.status(&id), "running");
    // A paused container still dies on delete --force.
    oci.ok(&["pause", &id]);
    oci.ok(&["delete", "--force", &id]);
    assert_no_leftovers(&oci, &id);
}

#[test]
fn kill_parses_signals_itself() {
    let oci = Oci::new();
    // SIGBUS is 7 and SIGTRAP 5: libcontainer swaps them, Purple must not.
    let script = "trap 'echo BUS >> /tmp/sig' BUS; trap 'echo TRAP >> /tmp/sig' TRAP; \
                  trap 'echo RT >> /tmp/sig' 37; trap 'echo USR1 >> /tmp/sig' USR1; \
                  touch /tmp/ready; while true; do sleep 0.05; done";
    let b = TestBundle::new(&["sh", "-c", script]);
    let id = unique_id("kill");
    oci.create(&id, &b, &[]);
    oci.ok(&["start", &id]);
    let exec = |cmd: &str| oci.run(&["exec", &id, "sh", "-c", cmd]);
    while !exec("test -e /tmp/ready").status.success() {
        std::thread::sleep(Duration::from_millis(20));
    }
    for sig in ["7", "SIGTRAP", "RTMIN+3", "usr1"] {
        oci.ok(&["kill", &id, sig]);
        std::thread::sleep(Duration::from_millis(300));
    }
    let seen = String::from_utf8(exec("cat /tmp/sig").stdout).unwrap();
    assert_eq!(seen, "BUS\nTRAP\nRT\nUSR1\n");
    let bad = oci.run(&["kill", &id, "SIGNOPE"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("invalid signal"));
    // Default signal is TERM; with a trap-less sleep as a second process, --all reaches it too.
    oci.detached(&["exec", "-d", &id, "sleep", "1000"]);
    oci.ok(&["kill", "--all", &id, "KILL"]);
    oci.wait_status(&id, "stopped");
    oci.ok(&["delete", &id]);
    assert_no_leftovers(&oci, &id);
}

#[test]
fn console_socket_receives_the_pty() {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    use std::io::Read;
    use std::os::fd::{AsRawFd, FromRawFd};

    let oci = Oci::new();
    let b = TestBundle::new(&["sh", "-c", "tty; echo on-the-pty"]);
    b.edit(|c| c["process"]["terminal"] = json!(true));
    let id = unique_id("tty");
    let sock = b.path().join("console.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let receiver = std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        let mut buf = [0u8; 256];
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
        let msg = recvmsg::<()>(
            conn.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::empty(),
        )
        .unwrap();
        let fd = msg
            .cmsgs()
            .unwrap()
            .find_map(|c| match c {
                ControlMessageOwned::ScmRights(fds) => fds.first().copied(),
                _ => None,
            })
            .expect("no fd in console socket message");
        let mut master = unsafe { fs::File::from_raw_fd(fd) };
        let mut text = Vec::new();
        let mut chunk = [0u8; 1024];
        // The pty master reads EIO once the container's side is closed.
        while let Ok(n) = master.read(&mut chunk) {
            if n == 0 {
                break;
            }
            text.extend_from_slice(&chunk[..n]);
        }
        String::from_utf8_lossy(&text).into_owned()
    });
    oci.create(&id, &b, &["--console-socket", sock.to_str().unwrap()]);
    oci.ok(&["start", &id]);
    oci.wait_status(&id, "stopped");
    let text = receiver.join().unwrap();
    assert!(text.contains("/dev/pts/0"), "{text:?}");
    assert!(text.contains("on-the-pty"), "{text:?}");
    oci.ok(&["delete", &id]);
    assert_no_leftovers(&oci, &id);
}

#[test]
fn list_shows_containers() {
    let oci = Oci::new();
    let b = TestBundle::new(&["sleep", "1000"]);
    let id = unique_id("list");
    oci.create(&id, &b, &[]);
    let list: Vec<serde_json::Value> =
        serde_json::from_str(&oci.ok(&["list", "--format", "json"])).unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["id"], id.as_str());
    assert_eq!(list[0]["status"], "created");
    assert!(oci.ok(&["list", "-q"]).contains(&id));
    oci.ok(&["delete", &id]);
    assert_eq!(oci.ok(&["list", "-q"]), "");
    assert_no_leftovers(&oci, &id);
}

#[test]
fn update_changes_pids_limit() {
    let oci = Oci::new();
    let b = TestBundle::new(&["sleep", "1000"]);
    let id = unique_id("upd");
    oci.create(&id, &b, &[]);
    let res = b.path().join("res.json");
    fs::write(&res, r#"{"pids":{"limit":42}}"#).unwrap();
    oci.ok(&["update", "--resources", res.to_str().unwrap(), &id]);
    let f = if is_hybrid() {
        format!("/sys/fs/cgroup/pids/purple/{id}/pids.max")
    } else {
        format!("/sys/fs/cgroup/purple/{id}/pids.max")
    };
    assert_eq!(fs::read_to_string(f).unwrap().trim(), "42");
    let stats: serde_json::Value =
        serde_json::from_str(&oci.ok(&["events", "--stats", &id])).unwrap();
    assert_eq!(stats["type"], "stats", "{stats}");
    oci.ok(&["delete", &id]);
    assert_no_leftovers(&oci, &id);
}

#[test]
fn spec_and_features() {
    let d = tempfile::tempdir().unwrap();
    let oci = Oci::new();
    oci.ok(&["spec", "--bundle", d.path().to_str().unwrap()]);
    let spec: serde_json::Value =
        serde_json::from_slice(&fs::read(d.path().join("config.json")).unwrap()).unwrap();
    assert!(spec["ociVersion"].as_str().unwrap().starts_with('1'));
    let again = oci.run(&["spec", "--bundle", d.path().to_str().unwrap()]);
    assert!(
        !again.status.success(),
        "spec must not overwrite config.json"
    );
    let f: serde_json::Value = serde_json::from_str(&oci.ok(&["features"])).unwrap();
    assert_eq!(f["linux"]["seccomp"]["enabled"], true);
    assert!(oci.ok(&["--version"]).contains(env!("CARGO_PKG_VERSION")));
}
