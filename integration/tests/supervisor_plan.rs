//! The supervisor plan, the one contract between `create` and the
//! supervisor: `create` writes it (0600) and starts the supervisor with it
//! alone; a supervisor part that cannot start is on record as
//! `supervisor.error`, and where enforcement depends on it the container is
//! killed (fail closed).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use purple_integration::*;
use purple_runtime::supervisor::plan::Plan;
use serde_json::{json, Value};

/// A cgroup2 directory of the test's own holding one `sleep`: what a
/// container's cgroup is to its supervisor.
struct Sandbox {
    dir: PathBuf,
    sleep: Child,
}

impl Sandbox {
    fn new(id: &str) -> Self {
        let dir = cgroup2_mount().join(format!("purple-test-{id}"));
        fs::create_dir(&dir).unwrap();
        let sleep = Command::new("sleep").arg("60").spawn().unwrap();
        fs::write(dir.join("cgroup.procs"), sleep.id().to_string()).unwrap();
        Self { dir, sleep }
    }

    /// Whether the sleep still runs (reaped here once it died).
    fn alive(&mut self) -> bool {
        self.sleep.try_wait().unwrap().is_none()
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.sleep.kill();
        let _ = self.sleep.wait();
        let deadline = Instant::now() + Duration::from_secs(5);
        while fs::remove_dir(&self.dir).is_err() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A plan for `sandbox` with nothing to serve; `log` in `dir`; `extra`
/// fields replace the defaults.
fn plan(id: &str, dir: &Path, sandbox: &Sandbox, extra: Value) -> Plan {
    let mut p = json!({
        "id": id,
        "root": dir.join("root"),
        "log": dir.join("audit.jsonl"),
        "policy": "test-policy",
        "cgroup2": sandbox.dir,
        "pins": null,
        "rules": [],
        "dns": null,
        "seccomp": null,
        "exec_seccomp": null,
        "session": {},
        "alerts": {},
        "counters": [],
        "init": null,
        "fds": { "resolver": null, "seccomp_listener": null, "seccomp_notify": [],
                 "caller": null, "egress_exit": null },
    });
    for (k, v) in extra.as_object().unwrap() {
        p[k] = v.clone();
    }
    serde_json::from_value(p).unwrap()
}

/// Starts `purple-oci supervise --plan FILE` on `plan`, as create does.
fn supervise(plan: &Plan, dir: &Path) -> Child {
    let path = dir.join("plan.json");
    plan.save(&path).unwrap();
    Command::new(purple_oci())
        .args(["supervise", "--plan"])
        .arg(&path)
        .stdin(Stdio::null())
        .spawn()
        .unwrap()
}

/// The records of the log at `path` once one of `kind` is there (10 s at most).
fn records_once(path: &Path, kind: &str) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let recs: Vec<Value> = fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        if recs.iter().any(|r| r["kind"] == kind) || Instant::now() > deadline {
            return recs;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The log's `supervisor.error` record (waited for).
fn supervisor_error(log: &Path) -> Value {
    let recs = records_once(log, "supervisor.error");
    recs.into_iter()
        .find(|r| r["kind"] == "supervisor.error")
        .unwrap_or_else(|| panic!("no supervisor.error in {}", read(log)))
}

/// The supervisor wrote `exited` once the sandbox emptied.
fn assert_exited(log: &Path) {
    let recs = records_once(log, "lifecycle");
    assert!(
        recs.iter()
            .any(|r| r["kind"] == "lifecycle" && r["details"]["event"] == "exited"),
        "{recs:?}"
    );
}

fn wait_exit(child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the supervisor did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn create_hands_the_supervisor_one_private_plan_and_nothing_else() {
    let oci = Oci::new();
    let id = unique_id("plan");
    let b = TestBundle::new(&["sleep", "30"]);
    oci.create(&id, &b, &[]);
    let pdir = oci.root.path().join(".purple").join(&id);
    let path = pdir.join("plan.json");
    let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "plan.json is {mode:o}");
    let plan = Plan::load(&path).unwrap();
    assert_eq!(plan.id, id);
    assert!(
        !plan.rules.is_empty(),
        "the default cloud-metadata rules are in the plan"
    );
    for gone in [
        "rules.json",
        "dns.json",
        "seccomp.json",
        "exec-seccomp.json",
    ] {
        assert!(!pdir.join(gone).exists(), "{gone} is still written");
    }
    // Its command line is the plan alone (and the record names the process).
    let pid = oci.record(&id)["supervisor_pid"].as_u64().unwrap();
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    assert_eq!(
        &args[1..],
        &[
            b"supervise".as_slice(),
            b"--plan",
            path.as_os_str().as_encoded_bytes(),
            b""
        ],
        "{}",
        String::from_utf8_lossy(&cmdline)
    );
    // `purple network stats` names the plan's rules.
    let stats = Command::new(purple())
        .arg("--root")
        .arg(oci.root.path())
        .args(["network", "stats", &id])
        .output()
        .unwrap();
    assert!(
        stats.status.success(),
        "{}",
        String::from_utf8_lossy(&stats.stderr)
    );
    oci.ok(&["delete", "--force", &id]);
    assert_no_leftovers(&oci, &id);
}

#[test]
fn a_ring_buffer_that_cannot_be_opened_is_on_record() {
    let id = unique_id("ring");
    let dir = tempfile::tempdir().unwrap();
    let mut sandbox = Sandbox::new(&id);
    // Pins without the programs' maps: the events ring cannot be opened.
    let pins = dir.path().join("pins");
    fs::create_dir(&pins).unwrap();
    let p = plan(&id, dir.path(), &sandbox, json!({ "pins": pins }));
    let mut sup = supervise(&p, dir.path());
    let err = supervisor_error(&p.log);
    assert_eq!(err["details"]["component"], "network events");
    assert!(
        err["details"]["effect"]
            .as_str()
            .unwrap()
            .contains("not recorded"),
        "{err}"
    );
    // The kernel still enforces: the sandbox is not killed for it.
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        sandbox.alive(),
        "killed although enforcement does not depend on the ring"
    );
    sandbox.sleep.kill().unwrap();
    wait_exit(&mut sup);
    assert_exited(&p.log);
}

#[test]
fn a_seccomp_listener_that_was_not_inherited_fails_closed() {
    let id = unique_id("notify");
    let dir = tempfile::tempdir().unwrap();
    let mut sandbox = Sandbox::new(&id);
    // A number the supervisor does not inherit: no listener to answer the
    // container's notified calls.
    let p = plan(
        &id,
        dir.path(),
        &sandbox,
        json!({
            "seccomp": { "rules": [], "default": ["SCMP_ACT_ERRNO", 1] },
            "fds": { "resolver": null, "seccomp_listener": 60, "seccomp_notify": [],
                     "caller": null, "egress_exit": null },
        }),
    );
    let mut sup = supervise(&p, dir.path());
    let err = supervisor_error(&p.log);
    assert!(
        err["details"]["error"]
            .as_str()
            .unwrap()
            .contains("seccomp listener"),
        "{err}"
    );
    assert!(
        err["details"]["effect"]
            .as_str()
            .unwrap()
            .contains("killed"),
        "{err}"
    );
    wait_exit(&mut sup);
    assert!(
        !sandbox.alive(),
        "the sandbox outlived its seccomp listener"
    );
    assert_exited(&p.log);
}
