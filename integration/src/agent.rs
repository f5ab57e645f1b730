//! A container attacking the network from a test network namespace, and the
//! checks its attacks are judged by.

use std::fs;
use std::path::PathBuf;
use std::process::Command;

use serde_json::{json, Value};

use crate::netns::{netprobe, TestNet};
use crate::{assert_no_leftovers, cgroup2_mount, unique_id, Oci, TestBundle};

/// The nameserver in every agent's resolv.conf (a test host address).
pub const CONTAINER_NAMESERVER: &str = "10.99.1.1";

/// A running container in `net`'s client namespace with netprobe inside, and
/// `plan` (if any) as its `io.purple.network` annotation.
pub struct Agent {
    pub oci: Oci,
    pub id: String,
    _bundle: TestBundle,
}

/// A bundle for an agent in `net`'s client namespace: netprobe in /bin,
/// `resolv_conf` as /etc/resolv.conf, CAP_NET_RAW (for the ICMP attack), and
/// `plan` (if any) as its `io.purple.network` annotation.
pub fn agent_bundle(net: &TestNet, plan: Option<Value>, resolv_conf: &str) -> TestBundle {
    let b = TestBundle::new(&["sleep", "1000"]);
    fs::copy(netprobe(), b.path().join("rootfs/bin/netprobe")).unwrap();
    fs::write(b.path().join("rootfs/etc/resolv.conf"), resolv_conf).unwrap();
    let netns = net.client_path();
    b.edit(|c| {
        for ns in c["linux"]["namespaces"].as_array_mut().unwrap() {
            if ns["type"] == "network" {
                ns["path"] = json!(netns);
            }
        }
        for set in ["bounding", "effective", "permitted"] {
            c["process"]["capabilities"][set]
                .as_array_mut()
                .unwrap()
                .push(json!("CAP_NET_RAW"));
        }
        if let Some(plan) = plan {
            c["annotations"] = json!({ "io.purple.network": plan.to_string() });
        }
    });
    b
}

impl Agent {
    pub fn start(net: &TestNet, plan: Option<Value>) -> Self {
        // The container's nameserver is a test address that is not the
        // upstream resolver: an answer there proves Purple's resolver gave it.
        Self::from_bundle(agent_bundle(
            net,
            plan,
            &format!("nameserver {CONTAINER_NAMESERVER}\n"),
        ))
    }

    /// Creates and starts a container of `b` (an [`agent_bundle`], edited).
    pub fn from_bundle(b: TestBundle) -> Self {
        Self::from_bundle_with(b, &[])
    }

    /// [`Agent::from_bundle`] with `extra` arguments to `create`.
    pub fn from_bundle_with(b: TestBundle, extra: &[&str]) -> Self {
        let oci = Oci::new();
        let id = unique_id("net");
        oci.create(&id, &b, extra);
        oci.ok(&["start", &id]);
        Self {
            oci,
            id,
            _bundle: b,
        }
    }

    /// The container's audit log.
    pub fn audit_log(&self) -> Vec<Value> {
        let path = purple_runtime::audit::default_path(&self.id);
        fs::read_to_string(&path)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// A file of the container's record directory (while it exists).
    pub fn record_file(&self, name: &str) -> PathBuf {
        self.oci
            .root
            .path()
            .join(".purple")
            .join(&self.id)
            .join(name)
    }

    /// Runs netprobe in the container; returns its one-line verdict.
    pub fn probe(&self, args: &[&str]) -> String {
        let mut full = vec!["exec", self.id.as_str(), "netprobe"];
        full.extend_from_slice(args);
        let out = self.oci.run(&full);
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    pub fn network_stats(&self) -> Value {
        let ev: Value =
            serde_json::from_str(&self.oci.ok(&["events", "--stats", &self.id])).unwrap();
        ev["purple"]["network"].clone()
    }

    /// BPF program ids attached to the container's cgroup2 directory.
    pub fn prog_ids(&self) -> Vec<String> {
        let dir = cgroup2_mount().join("purple").join(&self.id);
        let out = Command::new("bpftool")
            .args(["cgroup", "show"])
            .arg(&dir)
            .output()
            .expect("bpftool is installed");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains("purple_"))
            .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
            .collect()
    }

    pub fn delete(self) {
        let ids = self.prog_ids();
        assert_eq!(
            ids.len(),
            7,
            "connect4/6, sendmsg4/6, recvmsg4/6 and skb egress attached: {ids:?}"
        );
        self.oci.ok(&["delete", "--force", &self.id]);
        assert_no_leftovers(&self.oci, &self.id);
        assert!(
            !std::path::Path::new("/sys/fs/bpf/purple")
                .join(&self.id)
                .exists(),
            "pins left"
        );
        for id in ids {
            let out = Command::new("bpftool")
                .args(["prog", "show", "id", &id])
                .output()
                .unwrap();
            assert!(
                !out.status.success(),
                "program {id} still loaded after delete"
            );
        }
    }
}

pub fn assert_eperm(verdict: &str) {
    assert!(
        verdict.starts_with("err EPERM"),
        "expected an immediate EPERM, got {verdict:?}"
    );
    let ms: u64 = verdict.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(
        ms < 500,
        "the refusal took {ms} ms: it should not wait for SYN retries"
    );
}

pub fn assert_ok(verdict: &str) {
    assert!(
        verdict.starts_with("ok"),
        "expected the connection to work, got {verdict:?}"
    );
}
