//! Learn mode, round trip: a run recorded with `purple run --learn`
//! becomes a policy that validates, lets the same run through with no
//! violation, and refuses what the run did not do.

use std::fs;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use purple_integration::cli::text;
use purple_integration::leftovers::assert_run_left_nothing;
use purple_integration::netns::TestNet;
use purple_integration::{purple, set_mode, unique_id, Oci};

const AGENT: &str = r#"
import errno, socket, sys
for addr in sys.argv[1:]:
    s = socket.socket(socket.AF_INET)
    s.settimeout(5)
    try:
        s.connect((addr, 80))
        print(addr, "connected")
    except OSError as e:
        print(addr, errno.errorcode.get(e.errno, str(e.errno)))
"#;

/// `purple ARGS` from `dir`, inside the test network's client namespace.
fn purple_in_net(net: &TestNet, oci: &Oci, dir: &Path, args: &[&str]) -> Output {
    Command::new("nsenter")
        .arg(format!("--net={}", net.client_path()))
        .arg(purple())
        .arg("--root")
        .arg(oci.root.path())
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn run(
    net: &TestNet,
    oci: &Oci,
    dir: &Path,
    profile: &str,
    extra: &[&str],
    to: &str,
) -> (String, String) {
    let id = unique_id("learn");
    let bind = format!("{}:/agent:ro", dir.display());
    let mut args = vec!["run", "--no-workdir"];
    // The learning run binds the agent's directory; the learned policy
    // holds that bind.
    if !profile.ends_with(".yaml") {
        args.extend(["-v", &bind]);
    }
    args.extend(["--profile", profile, "--id", &id]);
    args.extend(extra);
    args.extend(["--", "python3", "/agent/agent.py", to]);
    let out = purple_in_net(net, oci, dir, &args);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert_run_left_nothing(oci, &id);
    let log = stderr
        .rsplit("audit log ")
        .next()
        .unwrap()
        .trim()
        .to_owned();
    let records = fs::read_to_string(&log).unwrap_or_default();
    let _ = fs::remove_file(&log);
    (stdout, stderr + &records)
}

/// Violation records that name a process of the agent, in `records`.
fn agent_violations(records: &str) -> usize {
    records
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|r| r["kind"] == "network.blocked" || r["kind"] == "syscall.denied")
        .filter(|r| r["pid"].is_u64())
        .count()
}

#[test]
fn a_learned_policy_lets_the_run_through_and_nothing_else() {
    let net = TestNet::new();
    let oci = Oci::new();
    let dir = tempfile::tempdir().unwrap();
    set_mode(dir.path(), 0o711);
    fs::write(dir.path().join("agent.py"), AGENT).unwrap();

    let (out, err) = run(
        &net,
        &oci,
        dir.path(),
        "secure-agent",
        &["--learn", "learned.yaml"],
        "10.99.0.1",
    );
    assert!(out.contains("10.99.0.1 connected"), "{out}");
    assert!(err.contains("wrote learned.yaml"), "{err}");
    let learned = fs::read_to_string(dir.path().join("learned.yaml")).unwrap();
    assert!(
        learned.contains("10.99.0.1: 1 connection(s), port(s) 80"),
        "{learned}"
    );
    assert!(
        learned.contains("# syscalls: allow-list of the"),
        "{learned}"
    );
    assert!(learned.contains("mode: allow-list"), "{learned}");
    assert!(learned.contains("default_deny: true"), "{learned}");

    // The same run under it: through, and not one violation of the agent's
    // (the kernel's own IPv6 multicast reports, no process's, may be judged
    // as the tap device comes up: counted apart).
    let (out, err) = run(&net, &oci, dir.path(), "./learned.yaml", &[], "10.99.0.1");
    assert!(out.contains("10.99.0.1 connected"), "{out}");
    assert!(err.contains("purple: exit 0"), "{err}");
    assert_eq!(agent_violations(&err), 0, "{err}");
    // Another destination: refused in the kernel, recorded.
    let (out, err) = run(&net, &oci, dir.path(), "./learned.yaml", &[], "1.1.1.1");
    assert!(out.contains("1.1.1.1 EPERM"), "{out}");
    assert_eq!(agent_violations(&err), 1, "{err}");
    assert!(err.contains("\"destination\":\"1.1.1.1\""), "{err}");
    assert!(!net.received().contains("1.1.1.1"), "{}", net.received());

    // Learning from a log that is not one is refused in one line.
    let bogus = dir.path().join("bogus.jsonl");
    fs::write(&bogus, "not a record\n").unwrap();
    let out = purple_in_net(
        &net,
        &oci,
        dir.path(),
        &[
            "policy",
            "learn",
            bogus.to_str().unwrap(),
            "--base",
            "secure-agent",
            "-o",
            "-",
        ],
    );
    let (_, err) = text(&out);
    assert!(
        !out.status.success() && err.contains("cannot learn from"),
        "{err}"
    );
}
