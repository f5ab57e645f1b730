//! The activity trail on real containers (`ebpf_monitoring.trace_exec`):
//! every program a shell script starts is a `process.exec` record with its
//! argv and lineage, nothing run outside the container is, a flood is fully
//! accounted for, and the host's trail programs and entries are gone once
//! no traced container is left.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use purple_integration::audited::{delete_and_wait, start};
use purple_integration::cli::{purple_in, run_purple, stdout_ok, text};
use purple_integration::leftovers::assert_run_left_nothing;
use purple_integration::netns::TestNet;
use purple_integration::*;
use purple_runtime::audit;
use serde_json::{json, Value};

/// The trail's programs are shared by every traced container on the host:
/// this file's tests run one at a time, so that one can see them go.
static HOST: Mutex<()> = Mutex::new(());

fn host() -> MutexGuard<'static, ()> {
    HOST.lock().unwrap_or_else(|e| e.into_inner())
}

/// A started container tracing execs, running `script` with busybox sh.
fn traced(oci: &Oci, script: &str) -> (String, TestBundle) {
    let b = TestBundle::new(&["/bin/sh", "-c", script]);
    b.edit(|c| {
        c["annotations"] = json!({
            "io.purple.policy.name": "test-policy",
            "io.purple.audit": json!({"trace_exec": true}).to_string(),
        });
    });
    let id = unique_id("trail");
    oci.create(&id, &b, &[]);
    oci.ok(&["start", &id]);
    (id, b)
}

/// Waits (up to `limit`) for the container to stop, deletes it, checks that
/// nothing of it is left; its log.
fn stopped_and_deleted(oci: &Oci, id: &str, limit: Duration) -> PathBuf {
    let deadline = Instant::now() + limit;
    while oci.status(id) != "stopped" {
        assert!(Instant::now() < deadline, "{id} still runs");
        std::thread::sleep(Duration::from_millis(50));
    }
    delete_and_wait(oci, id);
    assert_no_leftovers(oci, id);
    audit::default_path(id)
}

/// [`stopped_and_deleted`], then its log's records (chain verified); the
/// log is removed.
fn finish(oci: &Oci, id: &str, limit: Duration) -> Vec<audit::Record> {
    let log = stopped_and_deleted(oci, id, limit);
    let recs = audit::verify(&log).unwrap();
    let _ = std::fs::remove_file(&log);
    recs
}

fn execs(recs: &[audit::Record]) -> Vec<&audit::Record> {
    recs.iter().filter(|r| r.kind == "process.exec").collect()
}

fn argv(r: &audit::Record) -> Vec<String> {
    serde_json::from_value(r.details["argv"].clone()).unwrap()
}

/// The `trail` accounting of the `exited` record.
fn trail_counts(recs: &[audit::Record]) -> (u64, u64) {
    let exited = recs
        .iter()
        .find(|r| r.kind == "lifecycle" && r.details["event"] == "exited")
        .expect("an exited record");
    let t: &Value = &exited.details["trail"];
    (t["execs"].as_u64().unwrap(), t["lost"].as_u64().unwrap())
}

/// The host directories of trail programs (one per build) now pinned.
fn host_trail_dirs() -> Vec<String> {
    std::fs::read_dir("/sys/fs/bpf/purple")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("_trail-"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_scripts_children_appear_with_argv_and_lineage_and_nothing_from_outside() {
    let _host = host();
    let oci = Oci::new();
    let marker = format!("outside-{}", std::process::id());
    // Started programs wait for the host's marker process, so that it runs
    // while the container is traced.
    let (id, _b) = traced(
        &oci,
        "/bin/sleep 1; /bin/ls / > /dev/null; /bin/sh -c '/bin/echo nested \"two words\"'; \
         /bin/cat /etc/hostname > /dev/null",
    );
    let outside = Command::new("/bin/sh")
        .args(["-c", &format!("/bin/true {marker}")])
        .status()
        .unwrap();
    assert!(outside.success());
    let recs = finish(&oci, &id, Duration::from_secs(20));
    let ex = execs(&recs);
    let argvs: Vec<Vec<String>> = ex.iter().map(|r| argv(r)).collect();
    for want in [
        vec!["/bin/sh", "-c"],
        vec!["/bin/sleep", "1"],
        vec!["/bin/ls", "/"],
        vec!["/bin/sh", "-c", "/bin/echo nested \"two words\""],
        vec!["/bin/echo", "nested", "two words"],
        vec!["/bin/cat", "/etc/hostname"],
    ] {
        assert!(
            argvs
                .iter()
                .any(|a| a.starts_with(&want.iter().map(|s| s.to_string()).collect::<Vec<_>>())),
            "no exec of {want:?} in {argvs:#?}"
        );
    }
    assert!(
        !recs.iter().any(|r| r.details.to_string().contains(&marker)),
        "a program run outside the container was recorded: {argvs:#?}"
    );
    // Lineage: the nested sh is the script's child, and runs its last
    // command in place (the same pid, a second exec); exec ids count from
    // 0 in order.
    let find = |a: &[&str]| {
        ex.iter()
            .find(|r| argv(r) == a)
            .copied()
            .unwrap_or_else(|| panic!("{a:?} in {argvs:#?}"))
    };
    let script = ex[0];
    let nested = find(&["/bin/sh", "-c", "/bin/echo nested \"two words\""]);
    let echo = find(&["/bin/echo", "nested", "two words"]);
    assert_eq!(nested.details["ppid"], json!(script.pid.unwrap()));
    assert_eq!(echo.pid, nested.pid);
    assert_eq!(echo.details["ppid"], json!(script.pid.unwrap()));
    let ids: Vec<u64> = ex
        .iter()
        .map(|r| r.details["exec_id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, (0..ex.len() as u64).collect::<Vec<_>>());
    // Root inside the sandbox, whatever its host uid.
    assert_eq!(script.details["uid"], 0);
    assert_eq!(echo.details["argv_cut"], false);
    assert!(
        !recs.iter().any(|r| r.kind == "supervisor.error"),
        "{recs:#?}"
    );
    let (seen, lost) = trail_counts(&recs);
    assert_eq!((seen, lost), (ex.len() as u64, 0));
}

#[test]
fn a_long_argv_is_cut_with_a_marker() {
    let _host = host();
    let oci = Oci::new();
    let long = "a".repeat(3000);
    let (id, _b) = traced(&oci, &format!("/bin/true {long} tail"));
    let recs = finish(&oci, &id, Duration::from_secs(20));
    let t = execs(&recs)
        .into_iter()
        .find(|r| argv(r).first().map(String::as_str) == Some("/bin/true"))
        .expect("the exec of /bin/true");
    assert_eq!(t.details["argv_cut"], true);
    let a = argv(t);
    assert!(
        a.len() == 2 && a[1].len() < 3000 && long.starts_with(&a[1]),
        "{a:?}"
    );
}

#[test]
fn two_containers_each_record_only_their_own_and_the_host_programs_go_with_the_last() {
    let _host = host();
    let oci = Oci::new();
    let (a, _ba) = traced(&oci, "/bin/sleep 2; /bin/echo only-in-a");
    let (b, _bb) = traced(&oci, "/bin/sleep 2; /bin/echo only-in-b");
    assert!(!host_trail_dirs().is_empty(), "no trail programs pinned");
    let ra = finish(&oci, &a, Duration::from_secs(20));
    let rb = finish(&oci, &b, Duration::from_secs(20));
    let has = |recs: &[audit::Record], word: &str| {
        execs(recs)
            .iter()
            .any(|r| argv(r).iter().any(|x| x == word))
    };
    assert!(has(&ra, "only-in-a") && !has(&ra, "only-in-b"));
    assert!(has(&rb, "only-in-b") && !has(&rb, "only-in-a"));
    // The last delete took the programs and the host maps with it.
    assert!(host_trail_dirs().is_empty(), "{:?}", host_trail_dirs());
    for id in [&a, &b] {
        assert!(!Path::new("/sys/fs/bpf/purple").join(id).exists());
    }
}

#[test]
fn ten_thousand_execs_are_records_plus_lost() {
    let _host = host();
    let oci = Oci::new();
    let (id, _b) = traced(
        &oci,
        "i=0; while [ $i -lt 10000 ]; do /bin/true; i=$((i+1)); done",
    );
    let recs = finish(&oci, &id, Duration::from_secs(300));
    let recorded = execs(&recs).len() as u64;
    let trues = execs(&recs)
        .iter()
        .filter(|r| argv(r) == ["/bin/true"])
        .count() as u64;
    let (seen, lost) = trail_counts(&recs);
    // The script itself and its 10,000 children.
    assert_eq!(seen, 10_001, "recorded {recorded}, lost {lost}");
    assert_eq!(recorded + lost, seen, "recorded {recorded}, lost {lost}");
    assert!(
        trues + lost >= 10_000 && trues <= 10_000,
        "{trues} of 10000, lost {lost}"
    );
}

#[test]
fn audit_tree_shows_each_process_with_its_execs_children_and_connections() {
    let _host = host();
    let net = TestNet::new();
    let oci = Oci::new();
    let (id, _b) = start(
        &net,
        &oci,
        &[
            "/bin/sh",
            "-c",
            "/bin/netprobe tcp 1.1.1.1 443; /bin/sh -c '/bin/true x; /bin/echo y'",
        ],
        json!({"rules": [{"cidr": "1.1.1.1", "action": "deny"}]}),
        Some(json!({"trace_exec": true})),
    );
    let log = stopped_and_deleted(&oci, &id, Duration::from_secs(20));
    let path = log.to_str().unwrap();
    let t: Value = serde_json::from_str(&stdout_ok(run_purple(
        &oci,
        &["audit", "tree", "--path", path, "--json"],
    )))
    .unwrap();
    let text = stdout_ok(run_purple(&oci, &["audit", "tree", "--path", path]));
    let _ = std::fs::remove_file(&log);
    // sh runs the last command of `-c` in place: the script's process
    // execs the nested sh, which execs echo; netprobe and true are its
    // children.
    let procs = t["processes"].as_array().unwrap();
    assert_eq!(procs.len(), 1, "{t:#}");
    let script = &procs[0];
    assert_eq!(script["execs"].as_array().unwrap().len(), 3, "{t:#}");
    let kids = script["children"].as_array().unwrap();
    assert_eq!(kids.len(), 2, "{t:#}");
    let (probe, tru) = (&kids[0], &kids[1]);
    let pid = |p: &Value| p["pid"].as_u64().unwrap();
    assert_eq!(probe["records"][0]["kind"], "network.blocked", "{t:#}");
    assert!(t["unattributed"].as_array().unwrap().is_empty(), "{t:#}");
    let expected: String = [
        format!(
            "{} /bin/sh -c \"/bin/netprobe tcp 1.1.1.1 443; /bin/sh -c '/bin/true x; /bin/echo y'\"",
            pid(script)
        ),
        "│  then /bin/sh -c \"/bin/true x; /bin/echo y\"".to_owned(),
        "│  then /bin/echo y".to_owned(),
        format!("├─ {} /bin/netprobe tcp 1.1.1.1 443", pid(probe)),
        "│     network.blocked tcp 1.1.1.1:443 (#1 deny 1.1.1.1/32)".to_owned(),
        format!("└─ {} /bin/true x", pid(tru)),
    ]
    .map(|l| l + "\n")
    .concat();
    assert_eq!(text, expected);
}

#[test]
fn the_secure_agent_profile_records_every_program_from_its_yaml() {
    let _host = host();
    let oci = Oci::new();
    let work = tempfile::tempdir().unwrap();
    let b = TestBundle::new(&["true"]);
    let rootfs = b.path().join("rootfs");
    let id = unique_id("trailrun");
    let out = purple_in(
        &oci,
        work.path(),
        &[
            "run",
            "--profile",
            "secure-agent",
            "--rootfs",
            rootfs.to_str().unwrap(),
            "--no-workdir",
            "--id",
            &id,
            "--",
            "/bin/sh",
            "-c",
            "/bin/true from-the-profile; /bin/echo done",
        ],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    // Not violations: the summary line counts none.
    assert!(stderr.contains(" 0 violations;"), "{stderr}");
    let log = stderr.rsplit("audit log ").next().unwrap().trim();
    let recs = audit::verify(Path::new(log)).unwrap();
    let _ = std::fs::remove_file(log);
    let argvs: Vec<Vec<String>> = execs(&recs).iter().map(|r| argv(r)).collect();
    assert!(
        argvs.contains(&vec!["/bin/true".to_owned(), "from-the-profile".to_owned()]),
        "{argvs:#?}"
    );
    assert_run_left_nothing(&oci, &id);
    assert!(host_trail_dirs().is_empty(), "{:?}", host_trail_dirs());
}
