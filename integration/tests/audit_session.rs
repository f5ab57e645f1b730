//! The session around an agent: its supervisor exits with it, limits and
//! budgets end it and are recorded, alerts reach their targets live, the
//! log goes where it is told (and nowhere it must not), and `purple audit`
//! reads it.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use purple_integration::audited::{records_of, start, start_with, supervisor_pid, wait_gone};
use purple_integration::cli::{run_purple, stdout_ok};
use purple_integration::netns::TestNet;
use purple_integration::*;
use purple_runtime::audit;
use serde_json::json;

#[test]
fn supervisor_exits_with_its_container() {
    let net = TestNet::new();
    let oci = Oci::new();
    let (id, _b) = start(&net, &oci, &["sh", "-c", "sleep 0.5"], json!({}), None);
    let sup = supervisor_pid(&oci, &id);
    assert!(Path::new(&format!("/proc/{sup}")).exists());
    oci.wait_status(&id, "stopped");
    wait_gone(sup);
    let log = audit::default_path(&id);
    let recs = audit::verify(&log).unwrap();
    assert!(recs.iter().any(|r| r.details["event"] == "exited"));
    oci.ok(&["delete", &id]);
    assert_no_leftovers(&oci, &id);
    let _ = fs::remove_file(&log);
}

#[test]
fn oom_kill_and_pids_limit_are_recorded() {
    let oci = Oci::new();
    let b = TestBundle::new(&[
        "sh",
        "-c",
        // A memory hog against the limit, then a bounded fork bomb against pids.max.
        "sh -c 'x=$(head -c 100000000 /dev/zero | tr \"\\0\" a)'; \
         for i in $(seq 1 40); do sleep 1 & done 2>/dev/null; wait",
    ]);
    b.edit(|c| {
        c["linux"]["resources"]["memory"] =
            json!({"limit": 32 * 1024 * 1024, "swap": 32 * 1024 * 1024});
        c["linux"]["resources"]["pids"] = json!({"limit": 16});
    });
    let id = unique_id("limits");
    oci.create(&id, &b, &[]);
    let sup = supervisor_pid(&oci, &id);
    oci.ok(&["start", &id]);
    oci.wait_status(&id, "stopped");
    wait_gone(sup);
    oci.ok(&["delete", &id]);
    let log = audit::default_path(&id);
    let recs = audit::verify(&log).unwrap();
    let oom: Vec<_> = recs.iter().filter(|r| r.kind == "resource.oom").collect();
    assert!(!oom.is_empty(), "no resource.oom in {recs:#?}");
    assert!(
        oom.iter()
            .map(|r| r.details["count"].as_u64().unwrap())
            .sum::<u64>()
            >= 1
    );
    let pids: Vec<_> = recs.iter().filter(|r| r.kind == "resource.pids").collect();
    assert!(!pids.is_empty(), "no resource.pids in {recs:#?}");
    assert!(pids[0].details["count"].as_u64().unwrap() >= 1);
    let _ = fs::remove_file(&log);
}

#[test]
fn wall_clock_timeout_terminates_the_session() {
    let (oci, id, _b) = start_with(&["sleep", "1000"], |c| {
        c["annotations"]["io.purple.session"] =
            json!(json!({"timeout_seconds": 1, "grace_seconds": 1}).to_string());
    });
    let t = Instant::now();
    oci.wait_status(&id, "stopped");
    let took = t.elapsed();
    assert!(took < Duration::from_secs(4), "stopped after {took:?}");
    let sup = supervisor_pid(&oci, &id);
    wait_gone(sup);
    oci.ok(&["delete", &id]);
    let log = audit::default_path(&id);
    let t = records_of(&log, "resource.timeout");
    assert_eq!(t.len(), 1, "{t:#?}");
    assert_eq!(t[0].details["budget"], "wall_clock");
    assert_eq!(t[0].details["limit_seconds"], 1);
    assert!(t[0].details["used_seconds"].as_f64().unwrap() >= 1.0);
    let _ = fs::remove_file(&log);
}

#[test]
fn cpu_budget_terminates_a_spinning_agent() {
    let (oci, id, _b) = start_with(&["sh", "-c", "while :; do :; done"], |c| {
        c["annotations"]["io.purple.session"] =
            json!(json!({"cpu_seconds": 1, "grace_seconds": 1}).to_string());
    });
    oci.wait_status(&id, "stopped");
    let sup = supervisor_pid(&oci, &id);
    wait_gone(sup);
    oci.ok(&["delete", &id]);
    let log = audit::default_path(&id);
    let t = records_of(&log, "resource.timeout");
    assert_eq!(t.len(), 1, "{t:#?}");
    assert_eq!(t[0].details["budget"], "cpu");
    let _ = fs::remove_file(&log);
}

#[test]
fn alerts_reach_a_command_and_a_unix_socket_live() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("alerts.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let got = dir.path().join("from-command.jsonl");
    let plan = json!({
        "alerts": {
            "command": ["/bin/sh", "-c", format!("cat >> {}", got.display())],
            "unix_socket": sock,
        }
    });
    let (oci, id, _b) = start_with(&["sh", "-c", "mkdir /tmp/z; sleep 1000"], |c| {
        c["annotations"]["io.purple.audit"] = json!(plan.to_string());
    });
    let t = Instant::now();
    let (conn, _) = listener.accept().unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(conn), &mut line).unwrap();
    let rec: audit::Record = serde_json::from_str(&line).unwrap();
    assert_eq!(rec.kind, "syscall.denied");
    while !read(&got).contains("syscall.denied") {
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "command alert not within 1 s"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "alerts took {:?}",
        t.elapsed()
    );
    let from_cmd: audit::Record = serde_json::from_str(read(&got).lines().next().unwrap()).unwrap();
    assert_eq!(from_cmd, rec);
    oci.ok(&["delete", "--force", &id]);
    let _ = fs::remove_file(audit::default_path(&id));
}

/// `records: all`, `format: ocsf`: the trail leaves the host as it is
/// written, every record (not only violations) as an OCSF event, to syslog
/// (RFC 5424 on a datagram socket) and a stream socket at once.
#[test]
fn every_record_streams_to_syslog_as_ocsf() {
    let dir = tempfile::tempdir().unwrap();
    let dev_log = dir.path().join("log");
    let syslog = std::os::unix::net::UnixDatagram::bind(&dev_log).unwrap();
    syslog
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let plan = json!({
        "alerts": { "syslog": dev_log, "records": "all", "format": "ocsf" }
    });
    let (oci, id, b) = start_with(&["sh", "-c", "mkdir /tmp/z; echo made; sleep 1000"], |c| {
        c["annotations"]["io.purple.audit"] = json!(plan.to_string());
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    while !read(b.path().join("stdout")).contains("made") {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut messages = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    // The denied mkdir, a violation, then `exited`, a record that is not.
    oci.ok(&["kill", &id, "KILL"]);
    while !messages.iter().any(|m: &String| m.contains("exited")) {
        let n = syslog.recv(&mut buf).expect("a syslog message within 5 s");
        messages.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    let denied = messages
        .iter()
        .find(|m| m.contains(" syscall.denied "))
        .expect("the violation");
    // facility auth (4), severity warning (4): <36>.
    assert!(denied.starts_with("<36>1 "), "{denied}");
    let event: serde_json::Value =
        serde_json::from_str(&denied[denied.find('{').unwrap()..]).unwrap();
    assert_eq!(event["class_uid"], 2004);
    assert_eq!(event["unmapped"]["purple"]["container_id"], id.as_str());
    let exited = messages.iter().find(|m| m.contains("exited")).unwrap();
    // Notice (5) for a record that is not a violation: <37>.
    assert!(
        exited.starts_with("<37>1 ") && exited.contains(" lifecycle "),
        "{exited}"
    );
    let event: serde_json::Value =
        serde_json::from_str(&exited[exited.find('{').unwrap()..]).unwrap();
    assert_eq!(
        (event["class_uid"].clone(), event["activity_id"].clone()),
        (json!(6002), json!(4))
    );
    oci.ok(&["delete", "--force", &id]);
    let _ = fs::remove_file(audit::default_path(&id));
}

#[test]
fn custom_log_path_is_used_and_bad_ones_are_refused() {
    // Under the log root, in a directory of its own.
    let log = Path::new(audit::LOG_DIR)
        .join(unique_id("custom"))
        .join("agent.jsonl");
    let plan = json!({"log_path": log}).to_string();
    let (oci, id, _b) = start_with(&["true"], |c| {
        c["annotations"]["io.purple.audit"] = json!(plan);
    });
    oci.wait_status(&id, "stopped");
    oci.ok(&["delete", &id]);
    assert!(!audit::default_path(&id).exists());
    let recs = audit::verify(&log).unwrap();
    // `deleted` is the last event; the seal after it signs the run.
    let [.., deleted, seal] = recs.as_slice() else {
        panic!("{recs:?}")
    };
    assert_eq!(deleted.details["event"], "deleted");
    assert_eq!(seal.details["seal"], true);
    let _ = fs::remove_dir_all(log.parent().unwrap());

    for (bad, says) in [
        (json!("relative/log.jsonl"), "absolute"),
        (json!("ROOTFS/tmp/log.jsonl"), "under /var/log/purple"),
    ] {
        let b = TestBundle::new(&["true"]);
        let rootfs = b.path().join("rootfs");
        let path = bad
            .as_str()
            .unwrap()
            .replace("ROOTFS", rootfs.to_str().unwrap());
        b.edit(|c| {
            c["annotations"] = json!({"io.purple.audit": json!({"log_path": path}).to_string()});
        });
        let id = unique_id("badlog");
        let out = oci
            .cmd()
            .args(["create", "--bundle"])
            .arg(b.path())
            .arg(&id)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("log_path") && err.contains(says), "{err}");
        assert_no_leftovers(&oci, &id);
        assert!(!Path::new(&path).exists() || !path.starts_with('/'));
    }
}

#[test]
fn purple_audit_shows_filters_follows_summarises_and_verifies() {
    let (oci, id, b) = start_with(
        &[
            "sh",
            "-c",
            "mkdir /tmp/a; mkdir /tmp/b; echo done; sleep 1000",
        ],
        |_| {},
    );
    let follower = std::process::Command::new(purple_integration::purple())
        .args([
            "--root",
            oci.root.path().to_str().unwrap(),
            "audit",
            &id,
            "--follow",
            "--json",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !read(b.path().join("stdout")).contains("done") {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));

    let table = stdout_ok(run_purple(&oci, &["audit", &id]));
    let mut lines = table.lines();
    assert!(lines.next().unwrap().starts_with("  SEQ  TIME"), "{table}");
    assert_eq!(table.matches("syscall.denied").count(), 2, "{table}");
    assert!(table.contains("seccomp #1 SCMP_ACT_ERRNO"));
    assert!(table.contains("action=errno"));

    let json = stdout_ok(run_purple(
        &oci,
        &["audit", &id, "--json", "--kind", "syscall"],
    ));
    let recs: Vec<audit::Record> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(recs.len(), 2);
    assert!(recs.iter().all(|r| r.kind == "syscall.denied"));
    let none = stdout_ok(run_purple(
        &oci,
        &["audit", &id, "--json", "--since", "2999-01-01T00:00:00Z"],
    ));
    assert_eq!(none, "");
    let bad = run_purple(&oci, &["audit", &id, "--since", "yesterday-ish"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--since"));

    let summary = stdout_ok(run_purple(&oci, &["audit", "summary", &id]));
    assert!(summary.contains("2 violations"), "{summary}");
    assert!(summary.contains("syscall.denied"), "{summary}");
    let s: serde_json::Value = serde_json::from_str(&stdout_ok(run_purple(
        &oci,
        &["audit", "summary", &id, "--json"],
    )))
    .unwrap();
    assert_eq!(s["rules"]["syscall.denied"]["seccomp #1 SCMP_ACT_ERRNO"], 2);

    // OCSF for a SIEM: a Detection Finding per denied call, the lifecycle
    // as Application Lifecycle, no event for the log's own checkpoints,
    // each tied to its record by the ID and the sequence number.
    let ocsf = stdout_ok(run_purple(&oci, &["audit", &id, "--format", "ocsf"]));
    let events: Vec<serde_json::Value> = ocsf
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let all = stdout_ok(run_purple(&oci, &["audit", &id, "--json"]));
    let checkpoints = all.matches("\"kind\":\"audit.checkpoint\"").count();
    assert_eq!(events.len(), all.lines().count() - checkpoints, "{ocsf}");
    let findings: Vec<&serde_json::Value> =
        events.iter().filter(|e| e["class_uid"] == 2004).collect();
    assert_eq!(findings.len(), 2, "{ocsf}");
    assert_eq!(
        findings[0]["finding_info"]["title"],
        "syscall.denied: mkdir"
    );
    assert_eq!(
        findings[0]["firewall_rule"]["name"],
        "seccomp #1 SCMP_ACT_ERRNO"
    );
    assert_eq!(findings[0]["disposition_id"], 2);
    for e in &events {
        let seq = &e["unmapped"]["purple"]["seq"];
        assert_eq!(e["metadata"]["uid"], format!("{id}:{seq}"));
        assert_eq!(e["metadata"]["version"], "1.3.0");
    }
    assert!(events
        .iter()
        .any(|e| e["class_uid"] == 6002 && e["activity_id"] == 3));
    let both = run_purple(&oci, &["audit", &id, "--json", "--format", "ocsf"]);
    assert_eq!(both.status.code(), Some(2));

    oci.ok(&["delete", "--force", &id]);
    // --follow ends by itself once the container is deleted.
    let followed = follower.wait_with_output().unwrap();
    let followed = String::from_utf8(followed.stdout).unwrap();
    // ... after `deleted` and the seal written with it.
    let [.., deleted, seal] = followed.lines().collect::<Vec<_>>()[..] else {
        panic!("{followed}")
    };
    assert!(
        deleted.contains("\"deleted\"") && seal.contains("\"seal\":true"),
        "{followed}"
    );
    assert_eq!(followed.matches("syscall.denied").count(), 2);

    // The record is gone after delete: the ID falls back to the default path.
    let log = audit::default_path(&id);
    assert!(stdout_ok(run_purple(&oci, &["audit", "verify", &id])).contains("hash chain intact"));
    let text = fs::read_to_string(&log).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines.swap(1, 2);
    fs::write(&log, lines.join("\n") + "\n").unwrap();
    let v = run_purple(&oci, &["audit", "verify", "--path", log.to_str().unwrap()]);
    assert_eq!(v.status.code(), Some(5));
    assert!(String::from_utf8_lossy(&v.stdout).contains("forged: line 2"));
    let _ = fs::remove_file(&log);
}

#[test]
fn foreground_run_records_the_exit_code() {
    let oci = Oci::new();
    let b = TestBundle::new(&["sh", "-c", "exit 7"]);
    let id = unique_id("exit");
    let out = oci
        .cmd()
        .args(["run", "--bundle"])
        .arg(b.path())
        .arg(&id)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(7));
    assert_no_leftovers(&oci, &id);
    let log = audit::default_path(&id);
    let exited = audit::verify(&log)
        .unwrap()
        .into_iter()
        .find(|r| r.details["event"] == "exited")
        .expect("an exited record");
    assert_eq!(exited.details["code"], 7);
    let _ = fs::remove_file(&log);
}
