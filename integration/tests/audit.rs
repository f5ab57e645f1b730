//! The supervisor and the audit log, on real containers: a blocked connect is
//! recorded once with its fields, bursts are fully accounted for, the hash
//! chain catches tampering, the agent cannot reach the log, and no supervisor
//! outlives its container.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use purple_integration::netns::{netprobe, TestNet};
use purple_integration::*;
use purple_runtime::audit;
use serde_json::json;

/// A started container in `net`'s client namespace with netprobe, `plan` as
/// its network plan and `audit` (if any) as its `io.purple.audit`.
fn start(
    net: &TestNet,
    oci: &Oci,
    cmd: &[&str],
    plan: serde_json::Value,
    audit: Option<serde_json::Value>,
) -> (String, TestBundle) {
    let b = TestBundle::new(cmd);
    fs::copy(netprobe(), b.path().join("rootfs/bin/netprobe")).unwrap();
    let netns = net.client_path();
    b.edit(|c| {
        for ns in c["linux"]["namespaces"].as_array_mut().unwrap() {
            if ns["type"] == "network" {
                ns["path"] = json!(netns);
            }
        }
        c["annotations"] = json!({
            "io.purple.network": plan.to_string(),
            "io.purple.policy.name": "test-policy"
        });
        if let Some(a) = audit {
            c["annotations"]["io.purple.audit"] = json!(a.to_string());
        }
    });
    let id = unique_id("audit");
    oci.create(&id, &b, &[]);
    oci.ok(&["start", &id]);
    (id, b)
}

fn supervisor_pid(oci: &Oci, id: &str) -> u32 {
    oci.record(id)["supervisor_pid"].as_u64().unwrap() as u32
}

fn wait_gone(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Path::new(&format!("/proc/{pid}")).exists()
        && !fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
    {
        assert!(Instant::now() < deadline, "supervisor {pid} still running");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn blocked_connect_is_recorded_once_and_the_chain_holds() {
    let net = TestNet::new();
    let oci = Oci::new();
    let (id, _b) = start(
        &net,
        &oci,
        &["sleep", "1000"],
        json!({"rules": [{"cidr": "1.1.1.1", "action": "deny"}]}),
        None,
    );
    let log = audit::default_path(&id);
    let out = oci.run(&["exec", &id, "netprobe", "tcp", "1.1.1.1", "443"]);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("err EPERM"));
    // Allowed traffic leaves no record unless the policy asks for it.
    let out = oci.run(&["exec", &id, "netprobe", "tcp", "10.99.0.1", "80"]);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("ok"));
    // The agent cannot reach the log: it is on the host, outside its rootfs.
    let out = oci.run(&[
        "exec",
        &id,
        "sh",
        "-c",
        &format!("echo forged >> {}", log.display()),
    ]);
    assert!(!out.status.success());
    let sup = supervisor_pid(&oci, &id);
    oci.ok(&["delete", "--force", &id]);
    wait_gone(sup);
    assert_no_leftovers(&oci, &id);

    let recs = audit::verify(&log).unwrap();
    let blocked: Vec<_> = recs
        .iter()
        .filter(|r| r.kind == "network.blocked")
        .collect();
    assert_eq!(blocked.len(), 1, "{recs:#?}");
    assert!(
        !recs.iter().any(|r| r.kind == "network.allowed"),
        "{recs:#?}"
    );
    let b = blocked[0];
    assert_eq!(b.comm.as_deref(), Some("netprobe"));
    assert!(b.pid.unwrap() > 0);
    assert_eq!(b.rule.as_deref(), Some("#1 deny 1.1.1.1/32"));
    assert_eq!(b.details["destination"], "1.1.1.1");
    assert_eq!(b.details["port"], 443);
    assert_eq!(b.details["protocol"], "tcp");
    assert_eq!(b.policy.as_deref(), Some("test-policy"));
    assert_eq!(b.container_id, id);
    let events: Vec<&str> = recs
        .iter()
        .filter(|r| r.kind == "lifecycle")
        .map(|r| r.details["event"].as_str().unwrap())
        .collect();
    assert_eq!(events.first(), Some(&"created"));
    assert!(events.contains(&"started"));
    assert_eq!(events.last(), Some(&"deleted"));
    chrono_like(&b.time);

    // Tampering: change one field of one record; verification must fail.
    let text = fs::read_to_string(&log).unwrap();
    fs::write(&log, text.replacen("1.1.1.1", "8.8.8.8", 1)).unwrap();
    assert!(audit::verify(&log).is_err());
    let _ = fs::remove_file(&log);
}

fn chrono_like(t: &str) {
    // RFC 3339 with nanoseconds: 2026-11-28T21:00:00.123456789Z
    assert_eq!(t.len(), 30, "{t}");
    assert!(t.ends_with('Z') && t.as_bytes()[10] == b'T', "{t}");
}

#[test]
fn burst_of_blocked_connects_is_fully_accounted() {
    let net = TestNet::new();
    let oci = Oci::new();
    let (id, _b) = start(
        &net,
        &oci,
        &["sleep", "1000"],
        json!({"rules": [{"cidr": "1.1.1.1", "action": "deny"}]}),
        None,
    );
    let out = oci.run(&["exec", &id, "netprobe", "burst", "1.1.1.1", "80", "10000"]);
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("eperm 10000 of 10000"));
    let stats: serde_json::Value =
        serde_json::from_str(&oci.ok(&["events", "--stats", &id])).unwrap();
    let lost = stats["purple"]["network"]["events_lost"].as_u64().unwrap();
    let sup = supervisor_pid(&oci, &id);
    oci.ok(&["delete", "--force", &id]);
    wait_gone(sup);
    let log = audit::default_path(&id);
    let recs = audit::verify(&log).unwrap();
    let blocked = recs.iter().filter(|r| r.kind == "network.blocked").count() as u64;
    assert_eq!(blocked + lost, 10000, "recorded {blocked}, lost {lost}");
    let _ = fs::remove_file(&log);
}

/// An allow-list agent whose policy asks for `network.allowed`, alerting `alerts`.
fn start_recording_allowed(
    net: &TestNet,
    oci: &Oci,
    alerts: serde_json::Value,
) -> (String, TestBundle) {
    start(
        net,
        oci,
        &["sleep", "1000"],
        json!({"mode": "allow-list", "rules": [{"cidr": "10.99.0.1", "action": "allow"}]}),
        Some(json!({"record_allowed": true, "alerts": alerts})),
    )
}

fn probe(oci: &Oci, id: &str, args: &[&str]) -> String {
    let mut full = vec!["exec", id, "netprobe"];
    full.extend_from_slice(args);
    let out = oci.run(&full);
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn allowed_connects_and_datagrams_are_recorded_once_when_asked() {
    let net = TestNet::new();
    let oci = Oci::new();
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("alerts.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let (id, _b) = start_recording_allowed(&net, &oci, json!({"unix_socket": sock}));
    for (args, verdict) in [
        (["tcp", "10.99.0.1", "80"], "ok"),
        // Non-DNS datagrams to 53 are echoed by the test host.
        (["udp", "10.99.0.1", "53"], "ok pong"),
        (["tcp", "127.0.0.1", "9"], "err ECONNREFUSED"),
        (["tcp", "1.1.1.1", "443"], "err EPERM"),
    ] {
        let got = probe(&oci, &id, &args);
        assert!(got.starts_with(verdict), "{args:?}: {got}");
    }
    // Allowed connections are not violations: the only alert is the block.
    let (conn, _) = listener.accept().unwrap();
    conn.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let alerts: Vec<String> = std::io::BufRead::lines(std::io::BufReader::new(conn))
        .map_while(Result::ok)
        .collect();
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    assert!(alerts[0].contains("\"network.blocked\""), "{alerts:#?}");
    let allowed = delete_and_read(&oci, &id, "network.allowed");
    // One record per call: the TCP and UDP packets that followed were let
    // through by the egress hook without records.
    assert_eq!(allowed.len(), 3, "{allowed:#?}");
    let find = |hook: &str, dest: &str| {
        allowed
            .iter()
            .find(|r| r.details["hook"] == hook && r.details["destination"] == dest)
            .unwrap_or_else(|| panic!("no {hook} to {dest} in {allowed:#?}"))
    };
    let tcp = find("connect", "10.99.0.1");
    assert_eq!(tcp.rule.as_deref(), Some("#1 allow 10.99.0.1/32"));
    assert_eq!(tcp.details["port"], 80);
    assert_eq!(tcp.details["protocol"], "tcp");
    assert_eq!(tcp.comm.as_deref(), Some("netprobe"));
    assert!(tcp.pid.unwrap() > 1);
    assert_eq!(tcp.policy.as_deref(), Some("test-policy"));
    assert!(tcp.details["cgroup_id"].as_u64().unwrap() > 0);
    let udp = find("sendmsg", "10.99.0.1");
    assert_eq!(udp.rule.as_deref(), Some("#1 allow 10.99.0.1/32"));
    assert_eq!(
        (&udp.details["port"], &udp.details["protocol"]),
        (&json!(53), &json!("udp"))
    );
    assert_eq!(udp.comm.as_deref(), Some("netprobe"));
    let lo = find("connect", "127.0.0.1");
    assert_eq!(lo.rule.as_deref(), Some("loopback (always allowed)"));
    assert_eq!(lo.details["port"], 9);
    // The refused connect is a blocked record only.
    let log = audit::default_path(&id);
    let blocked = records_of(&log, "network.blocked");
    assert_eq!(blocked.len(), 1, "{blocked:#?}");
    assert_eq!(blocked[0].details["destination"], "1.1.1.1");
    assert_eq!(blocked[0].rule.as_deref(), Some("default (mode)"));
    let verified = stdout_ok(run_purple(
        &oci,
        &["audit", "verify", "--path", log.to_str().unwrap()],
    ));
    assert!(verified.contains("hash chain intact"), "{verified}");
    let _ = fs::remove_file(&log);
}

#[test]
fn burst_of_allowed_connects_is_fully_accounted() {
    let net = TestNet::new();
    let oci = Oci::new();
    let (id, _b) = start_recording_allowed(&net, &oci, json!({}));
    // Allowed, then refused by the test host's kernel (nothing listens on
    // 9): 20,000 events at full speed, more than the ring buffer holds.
    let out = probe(&oci, &id, &["connect-rate", "10.99.0.1", "9", "20000"]);
    assert!(
        out.starts_with("connects 20000 failed 20000") && out.contains("ECONNREFUSED"),
        "{out}"
    );
    let stats: serde_json::Value =
        serde_json::from_str(&oci.ok(&["events", "--stats", &id])).unwrap();
    let lost = stats["purple"]["network"]["events_lost"].as_u64().unwrap();
    let allowed = delete_and_read(&oci, &id, "network.allowed");
    let to_9 = allowed.iter().filter(|r| r.details["port"] == 9).count() as u64;
    assert_eq!(to_9 + lost, 20000, "recorded {to_9}, lost {lost}");
    let _ = fs::remove_file(audit::default_path(&id));
}

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

/// A container with a seccomp profile and Purple annotations, created and
/// started; its stdout goes to `stdout` in the bundle.
fn start_with(
    cmd: &[&str],
    edit: impl FnOnce(&mut serde_json::Value),
) -> (Oci, String, TestBundle) {
    let oci = Oci::new();
    let b = TestBundle::new(cmd);
    b.edit(|c| {
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [
                {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"},
                {"names": ["sethostname"], "action": "SCMP_ACT_KILL_PROCESS"}
            ]
        });
        c["annotations"] = json!({"io.purple.policy.name": "test-policy"});
        edit(c);
    });
    let id = unique_id("scmp");
    oci.create(&id, &b, &[]);
    oci.ok(&["start", &id]);
    (oci, id, b)
}

fn records_of(log: &Path, kind: &str) -> Vec<audit::Record> {
    audit::verify(log)
        .unwrap()
        .into_iter()
        .filter(|r| r.kind == kind)
        .collect()
}

#[test]
fn denied_syscall_is_recorded_once_and_answered_eperm() {
    let (oci, id, b) = start_with(
        &["sh", "-c", "mkdir /tmp/x; echo rc=$?; sleep 1000"],
        |_| {},
    );
    assert!(output_line(&b, "rc=").contains("rc=1"));
    assert!(read(b.path().join("stderr")).contains("Operation not permitted"));
    let denied = delete_and_read(&oci, &id, "syscall.denied");
    assert_eq!(denied.len(), 1, "{denied:#?}");
    let d = &denied[0];
    assert_eq!(d.comm.as_deref(), Some("mkdir"));
    assert!(d.pid.unwrap() > 1);
    assert!(d.details["syscall"] == "mkdir" || d.details["syscall"] == "mkdirat");
    assert_eq!(d.details["action"], "errno");
    assert_eq!(d.details["errno"], 1, "EPERM");
    assert_eq!(d.details["args"].as_array().unwrap().len(), 6);
    assert_eq!(d.rule.as_deref(), Some("seccomp #1 SCMP_ACT_ERRNO"));
    assert_eq!(d.policy.as_deref(), Some("test-policy"));
    let _ = fs::remove_file(audit::default_path(&id));
}

/// The container's stdout once it holds `needle` (5 s at most).
fn output_line(b: &TestBundle, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let out = read(b.path().join("stdout"));
        if out.contains(needle) {
            return out;
        }
        assert!(
            Instant::now() < deadline,
            "the agent never printed {needle:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `delete --force`, then the records of `kind` once the supervisor is gone
/// and nothing of the container is left.
fn delete_and_read(oci: &Oci, id: &str, kind: &str) -> Vec<audit::Record> {
    let sup = supervisor_pid(oci, id);
    oci.ok(&["delete", "--force", id]);
    wait_gone(sup);
    assert_no_leftovers(oci, id);
    records_of(&audit::default_path(id), kind)
}

#[test]
fn kill_action_kills_the_caller() {
    let (oci, id, b) = start_with(
        &["sh", "-c", "hostname evil; echo rc=$?; sleep 1000"],
        |_| {},
    );
    assert!(output_line(&b, "rc=").contains("rc=137"));
    let denied = delete_and_read(&oci, &id, "syscall.denied");
    assert_eq!(denied.len(), 1, "{denied:#?}");
    assert_eq!(denied[0].details["syscall"], "sethostname");
    assert_eq!(denied[0].details["action"], "kill");
    assert_eq!(denied[0].comm.as_deref(), Some("hostname"));
    assert_eq!(
        denied[0].rule.as_deref(),
        Some("seccomp #2 SCMP_ACT_KILL_PROCESS")
    );
    let _ = fs::remove_file(audit::default_path(&id));
}

#[test]
fn exec_denials_are_recorded_like_inits() {
    let (oci, id, _b) = start_with(&["sleep", "1000"], |_| {});
    // A connection that has not sent its fd yet (as an exec's, until its
    // executor runs) must not hold up the supervisor's other work.
    let socket = oci
        .root
        .path()
        .join(".purple")
        .join(&id)
        .join("seccomp.sock");
    let _idle = std::os::unix::net::UnixStream::connect(socket).unwrap();
    let out = oci.run(&[
        "exec",
        &id,
        "sh",
        "-c",
        "mkdir /tmp/e; echo rc=$?; hostname evil; echo rc2=$?",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("rc=1") && stdout.contains("rc2=137"),
        "{out:?}"
    );
    // The exec'd process holds neither the notify fd (it could answer its
    // own calls) nor the connection that carried it.
    let fds = oci.ok(&["exec", &id, "sh", "-c", "ls -l /proc/$$/fd"]);
    assert!(
        !fds.contains("seccomp") && !fds.contains("socket:"),
        "{fds}"
    );
    let denied = delete_and_read(&oci, &id, "syscall.denied");
    assert_eq!(denied.len(), 2, "{denied:#?}");
    let mkdir = &denied[0];
    assert!(mkdir.details["syscall"] == "mkdir" || mkdir.details["syscall"] == "mkdirat");
    assert_eq!(mkdir.comm.as_deref(), Some("mkdir"));
    assert!(mkdir.pid.unwrap() > 1);
    assert_eq!(mkdir.details["action"], "errno");
    assert_eq!(mkdir.details["errno"], 1);
    assert_eq!(mkdir.rule.as_deref(), Some("seccomp #1 SCMP_ACT_ERRNO"));
    assert_eq!(mkdir.policy.as_deref(), Some("test-policy"));
    let kill = &denied[1];
    assert_eq!(kill.details["syscall"], "sethostname");
    assert_eq!(kill.details["action"], "kill");
    assert_eq!(kill.comm.as_deref(), Some("hostname"));
    assert_eq!(
        kill.rule.as_deref(),
        Some("seccomp #2 SCMP_ACT_KILL_PROCESS")
    );
    let log = audit::default_path(&id);
    assert!(stdout_ok(run_purple(
        &oci,
        &["audit", "verify", "--path", log.to_str().unwrap()]
    ))
    .contains("hash chain intact"));
    let _ = fs::remove_file(&log);
}

#[test]
fn exec_is_still_filtered_once_the_supervisor_is_gone() {
    let (oci, id, _b) = start_with(&["sleep", "1000"], |_| {});
    let sup = supervisor_pid(&oci, &id);
    // SAFETY: kill(2) on the supervisor this test's container started.
    assert_eq!(unsafe { libc::kill(sup as i32, libc::SIGKILL) }, 0);
    wait_gone(sup);
    let out = oci.run(&["exec", &id, "sh", "-c", "mkdir /tmp/f; echo rc=$?"]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("rc=1"),
        "{out:?}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("Operation not permitted"));
    oci.ok(&["delete", "--force", &id]);
    assert_no_leftovers(&oci, &id);
    let _ = fs::remove_file(audit::default_path(&id));
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
    assert_eq!(recs.last().unwrap().details["event"], "deleted");
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

/// `purple --root R ARGS` (the people's command, next to purple-oci).
fn run_purple(oci: &Oci, args: &[&str]) -> std::process::Output {
    let bin = purple_integration::purple();
    std::process::Command::new(&bin)
        .arg("--root")
        .arg(oci.root.path())
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", bin.display()))
}

fn stdout_ok(out: std::process::Output) -> String {
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
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

    oci.ok(&["delete", "--force", &id]);
    // --follow ends by itself once the container is deleted.
    let followed = follower.wait_with_output().unwrap();
    let followed = String::from_utf8(followed.stdout).unwrap();
    assert!(
        followed.lines().last().unwrap().contains("\"deleted\""),
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
    assert_eq!(v.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&v.stderr).contains("does not verify"));
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
