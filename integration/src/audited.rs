//! Containers started with Purple's annotations under `purple-oci`, whose
//! supervisor keeps an audit log, and reading that log once it is done.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use purple_runtime::audit;
use serde_json::{json, Value};

use crate::leftovers::wait_dead;
use crate::netns::{netprobe, TestNet};
use crate::{assert_no_leftovers, read, unique_id, Oci, TestBundle};

/// A started container in `net`'s client namespace with netprobe, `plan` as
/// its network plan and `audit` (if any) as its `io.purple.audit`.
pub fn start(
    net: &TestNet,
    oci: &Oci,
    cmd: &[&str],
    plan: Value,
    audit: Option<Value>,
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

/// A sleeping container of its own state root and test network, whose
/// network plan denies `cidr`, with `audit` as its `io.purple.audit`. The
/// network must outlive the container: it is returned with it.
pub fn sleeper(cidr: &str, audit: Option<Value>) -> (TestNet, Oci, String, TestBundle) {
    let net = TestNet::new();
    let oci = Oci::new();
    let (id, b) = start(
        &net,
        &oci,
        &["sleep", "1000"],
        json!({"rules": [{"cidr": cidr, "action": "deny"}]}),
        audit,
    );
    (net, oci, id, b)
}

/// A container with a seccomp profile (mkdir: errno, sethostname: kill)
/// and Purple annotations, created and started; `edit` has the last word
/// on its config. Its stdout goes to `stdout` in the bundle.
pub fn start_with(cmd: &[&str], edit: impl FnOnce(&mut Value)) -> (Oci, String, TestBundle) {
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

pub fn supervisor_pid(oci: &Oci, id: &str) -> u32 {
    oci.record(id)["supervisor_pid"].as_u64().unwrap() as u32
}

/// Waits up to 5 s for the supervisor `pid` to be gone.
pub fn wait_gone(pid: u32) {
    wait_dead(i64::from(pid), Duration::from_secs(5), "supervisor");
}

/// `delete --force`, then waits for the supervisor to finish its log.
pub fn delete_and_wait(oci: &Oci, id: &str) {
    let sup = supervisor_pid(oci, id);
    oci.ok(&["delete", "--force", id]);
    wait_gone(sup);
}

/// The records of `kind` in the log at `log`, whose chain must hold.
pub fn records_of(log: &Path, kind: &str) -> Vec<audit::Record> {
    audit::verify(log)
        .unwrap()
        .into_iter()
        .filter(|r| r.kind == kind)
        .collect()
}

/// How many events of `kind` `recs` stand for (a folded record for its
/// `count`).
pub fn events_of(recs: &[audit::Record], kind: &str) -> u64 {
    recs.iter()
        .filter(|r| r.kind == kind)
        .map(|r| audit::Kind::parse(kind).map_or(1, |k| audit::stands_for(k, &r.details)))
        .sum()
}

/// The container's stdout once it holds `needle` (5 s at most).
pub fn output_line(b: &TestBundle, needle: &str) -> String {
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
pub fn delete_and_read(oci: &Oci, id: &str, kind: &str) -> Vec<audit::Record> {
    delete_and_wait(oci, id);
    assert_no_leftovers(oci, id);
    records_of(&audit::default_path(id), kind)
}
