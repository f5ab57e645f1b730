//! The sandbox's network: `purple run` gives every sandbox a network
//! namespace of its own with slirp4netns for egress, so the caller's
//! loopback services and abstract unix sockets are out of reach; the caller's
//! own addresses (and slirp4netns's gateway) are the host and denied unless
//! named, recorded with the rule `host address`; `namespace: host` shares the
//! caller's namespace but judges loopback and scopes abstract sockets; the
//! helper process is the sandbox's and gone with it.
//!
//! Every attack runs from `purple run` invoked inside a client namespace of
//! the test's own (nsenter), where the "host services" listen: nothing here
//! touches the machine's own namespace.

use std::fs;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use purple_integration::host_services::{
    HostServices, ABSTRACT, CALLER_ADDR, SERVICE_PORT, SLIRP_GATEWAY,
};
use purple_integration::leftovers::assert_run_left_nothing;
use purple_integration::netns::TestNet;
use purple_integration::*;
use serde_json::Value;

/// The agent: tries each target and prints `NAME RESULT` (errno name, or
/// `connected`), plus whether the refusal was immediate.
const AGENT: &str = r#"
import errno, socket, sys, time
def tcp(addr, port):
    s = socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET)
    s.settimeout(5)
    t = time.time()
    try:
        s.connect((addr, port))
        r = "connected"
    except OSError as e:
        r = errno.errorcode.get(e.errno, str(e.errno))
    return r + (" fast" if time.time() - t < 0.5 else " slow")
def abstract(name):
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect("\0" + name)
        return "connected"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
def own_abstract():
    l = socket.socket(socket.AF_UNIX); l.bind("\0purple-own-" + str(time.time())); l.listen(1)
    c = socket.socket(socket.AF_UNIX)
    try:
        c.connect(l.getsockname())
        return "connected"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
for arg in sys.argv[1:]:
    name, target = arg.split("=", 1)
    if target.startswith("@"):
        print(name, abstract(target[1:]))
    elif target == "own-abstract":
        print(name, own_abstract())
    else:
        addr, port = target.rsplit(":", 1)
        print(name, tcp(addr.strip("[]"), int(port)))
"#;

/// `purple run` of the policy `name` with `network` inside the client
/// namespace, with the agent trying `targets`; returns the output and the
/// sandbox's audit records.
fn run_agent(
    net: &TestNet,
    oci: &Oci,
    id: &str,
    (name, network): (&str, &str),
    targets: &[&str],
) -> (Output, Vec<Value>) {
    let work = tempfile::tempdir().unwrap();
    fs::write(work.path().join("agent.py"), AGENT).unwrap();
    let file = format!("./{name}.yaml");
    fs::write(work.path().join(&file), policy(name, network)).unwrap();
    let out = Command::new("nsenter")
        .arg(format!("--net={}", net.client_path()))
        .arg(purple())
        .arg("--root")
        .arg(oci.root.path())
        .args(["run", "--profile", &file, "--id", id, "--"])
        .args(["python3", "agent.py"])
        .args(targets)
        .current_dir(work.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let records = stderr
        .rsplit("audit log ")
        .next()
        .filter(|_| stderr.contains("audit log "))
        .and_then(|p| fs::read_to_string(p.trim()).ok())
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    (out, records)
}

fn policy(name: &str, network: &str) -> String {
    format!(
        r#"name: {name}
network:
{network}
filesystem:
  immutable_paths:
    - {{ host_path: /usr, sandbox_path: /usr }}
    - {{ host_path: /bin, sandbox_path: /bin, optional: true }}
    - {{ host_path: /lib, sandbox_path: /lib, optional: true }}
    - {{ host_path: /lib64, sandbox_path: /lib64, optional: true }}
  scratch_paths: ["/tmp"]
  working_dir: /work
"#
    )
}

fn lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

fn assert_line(out: &Output, want: &str) {
    let l = lines(out);
    assert!(
        l.iter().any(|x| x == want),
        "missing {want:?} in {l:?}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The `network.blocked` record for `addr`, and its rule.
fn blocked_rule(records: &[Value], addr: &str) -> Option<String> {
    records
        .iter()
        .find(|r| {
            r["kind"] == "network.blocked" && r["details"]["destination"].as_str() == Some(addr)
        })
        .map(|r| r["rule"].as_str().unwrap_or_default().to_owned())
}

/// Deny-list mode, the default private namespace: the caller's loopback
/// service is not the sandbox's loopback, its abstract socket does not exist
/// there, and its service on 0.0.0.0 is refused on the caller's address and
/// on slirp4netns's gateway, recorded as `host address`; the outside (a test
/// host) is reached through slirp4netns.
#[test]
fn private_namespace_keeps_the_host_out_of_reach() {
    let net = TestNet::new();
    let host = HostServices::start(&net);
    let oci = Oci::new();
    let id = unique_id("snet");
    let p = ("snet-deny", "  blocked_ips: [\"1.1.1.1\"]");
    let (out, records) = run_agent(
        &net,
        &oci,
        &id,
        p,
        &[
            &format!("loopback=127.0.0.1:{SERVICE_PORT}"),
            &format!("caller=[{CALLER_ADDR}]:{SERVICE_PORT}"),
            &format!("gateway={SLIRP_GATEWAY}:{SERVICE_PORT}"),
            &format!("abstract=@{ABSTRACT}"),
            "outside=10.99.0.1:80",
            "blocked=1.1.1.1:80",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    assert_line(&out, "loopback ECONNREFUSED fast");
    assert_line(&out, "caller EPERM fast");
    assert_line(&out, "gateway EPERM fast");
    assert_line(&out, "abstract ECONNREFUSED");
    assert_line(&out, "outside connected fast");
    assert_line(&out, "blocked EPERM fast");
    assert_eq!(host.hits(), "", "a host service was reached");
    assert!(net.received().contains("10.99.0.1"), "{}", net.received());
    for addr in [CALLER_ADDR, SLIRP_GATEWAY] {
        let rule = blocked_rule(&records, addr)
            .unwrap_or_else(|| panic!("no record for {addr}: {records:?}"));
        assert!(rule.ends_with("(host address)"), "{addr}: {rule}");
    }
    assert_run_left_nothing(&oci, &id);
}

/// Allow-list mode with a broad allow that covers the caller's address: the
/// host address rule is more specific and still refuses it.
#[test]
fn host_addresses_beat_a_broad_allow() {
    let net = TestNet::new();
    let host = HostServices::start(&net);
    let oci = Oci::new();
    let id = unique_id("snet");
    let p = (
        "snet-allow",
        "  mode: allow-list\n  allowed_ips: [\"10.0.0.0/8\"]",
    );
    let (out, records) = run_agent(
        &net,
        &oci,
        &id,
        p,
        &[
            &format!("caller={CALLER_ADDR}:{SERVICE_PORT}"),
            "outside=10.99.0.1:80",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    assert_line(&out, "caller EPERM fast");
    assert_line(&out, "outside connected fast");
    assert_eq!(host.hits(), "");
    let rule = blocked_rule(&records, CALLER_ADDR).expect("record for the caller's address");
    assert!(rule.ends_with("(host address)"), "{rule}");
    assert_run_left_nothing(&oci, &id);
}

/// `namespace: host`: the caller's namespace, shared on purpose. Loopback is
/// judged (refused in allow-list mode, recorded) unless the policy names it,
/// and abstract sockets created outside are refused by Landlock while the
/// sandbox's own work.
#[test]
fn shared_namespace_judges_loopback_and_scopes_abstract_sockets() {
    let net = TestNet::new();
    let host = HostServices::start(&net);
    let oci = Oci::new();
    let id = unique_id("snet");
    let p = (
        "snet-host",
        "  namespace: host\n  mode: allow-list\n  allowed_ips: [\"10.99.0.1\"]",
    );
    let (out, records) = run_agent(
        &net,
        &oci,
        &id,
        p,
        &[
            &format!("loopback=127.0.0.1:{SERVICE_PORT}"),
            &format!("loopback6=[::1]:{SERVICE_PORT}"),
            &format!("abstract=@{ABSTRACT}"),
            "own=own-abstract",
            "outside=10.99.0.1:80",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{out:?}");
    assert!(
        stderr.contains("shares the caller's network namespace"),
        "no warning: {stderr}"
    );
    assert_line(&out, "loopback EPERM fast");
    assert_line(&out, "loopback6 EPERM fast");
    assert_line(&out, "abstract EPERM");
    assert_line(&out, "own connected");
    assert_line(&out, "outside connected fast");
    assert_eq!(host.hits(), "", "a host service was reached");
    let rule = blocked_rule(&records, "127.0.0.1").expect("record for loopback");
    assert!(rule.ends_with("(host address)"), "{rule}");
    assert_run_left_nothing(&oci, &id);

    // Named by the policy, loopback is reachable again.
    let id = unique_id("snet");
    let p = (
        "snet-host-lo",
        "  namespace: host\n  mode: allow-list\n  allowed_ips: [\"127.0.0.1\"]",
    );
    let (out, _) = run_agent(
        &net,
        &oci,
        &id,
        p,
        &[&format!("loopback=127.0.0.1:{SERVICE_PORT}")],
    );
    assert!(out.status.success(), "{out:?}");
    assert_line(&out, "loopback connected fast");
    assert_eq!(host.hits(), "tcp\n");
    assert_run_left_nothing(&oci, &id);
}

/// The helper is the sandbox's: recorded, outside the container's cgroup,
/// gone after `delete --force` of a created sandbox, and gone by itself when
/// its owner, the supervisor, is killed.
#[test]
fn egress_helper_belongs_to_the_sandbox() {
    let work = tempfile::tempdir().unwrap();
    fs::write(
        work.path().join("snet-helper.yaml"),
        policy("snet-helper", "  isolated: false"),
    )
    .unwrap();
    let oci = Oci::new();
    let st = Command::new(purple())
        .current_dir(work.path())
        .args([
            "translate",
            "./snet-helper.yaml",
            "-o",
            "bundle",
            "--",
            "true",
        ])
        .output()
        .unwrap();
    assert!(st.status.success(), "{st:?}");
    let bundle = work.path().join("bundle");

    for how in ["delete --force", "supervisor killed"] {
        let id = unique_id("snet");
        oci.create(&id, &bundle, &[]);
        let rec = oci.record(&id);
        let pid = rec["egress_pid"]
            .as_u64()
            .expect("helper pid in the record") as u32;
        assert_eq!(helpers_of(&id), vec![pid], "{how}");
        let cgroup = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
        assert!(
            !cgroup.contains(&format!("purple/{id}")),
            "the helper is in the container's cgroup: {cgroup}"
        );
        if how == "supervisor killed" {
            let sup = rec["supervisor_pid"].as_u64().unwrap() as i32;
            unsafe { libc::kill(sup, libc::SIGKILL) };
            let deadline = Instant::now() + Duration::from_secs(5);
            while !helpers_of(&id).is_empty() {
                assert!(
                    Instant::now() < deadline,
                    "the helper outlived its supervisor"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        oci.ok(&["delete", "--force", &id]);
        assert_no_leftovers(&oci, &id);
    }
}
