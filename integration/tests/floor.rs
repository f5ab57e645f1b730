//! The node's floor: a bundle's annotations may tighten the node's policy,
//! never loosen it. Every attack here is a real `purple-oci create` (or a
//! podman run) with a loosening annotation, refused with the key and the
//! floor named and nothing left; a tightening one runs, and the rule it
//! added stops a real connect. Each test has a node configuration of its
//! own (`--node-config`), never /etc/purple/runtime.yaml.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use purple_integration::agent::{
    agent_bundle, assert_eperm, assert_ok, Agent, CONTAINER_NAMESERVER,
};
use purple_integration::cli::stderr;
use purple_integration::netns::TestNet;
use purple_integration::podman::podman;
use purple_integration::{
    assert_no_leftovers, podman_setup, unique_id, Oci, TestBundle, PODMAN_IMAGE,
};
use serde_json::{json, Value};

/// The floor of these tests: deny-list with 10.99.2.0/24 blocked, a
/// seccomp deny list, the default capabilities, limits, a session budget
/// and a read-only root.
const FLOOR: &str = r#"name: floor-test
network:
  isolated: false
  blocked_ips: ["10.99.2.0/24"]
resources:
  memory_limit_bytes: "256M"
  pids_limit: 128
  session_timeout_seconds: 600
syscalls:
  action: errno
  deny: [ptrace, mount, bpf]
"#;

/// A node configuration with `floor-test` as floor, and each of `profiles`
/// (name, YAML) in its profile directory.
struct NodeConfig {
    dir: tempfile::TempDir,
}

impl NodeConfig {
    fn new(config: &str, profiles: &[(&str, String)]) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("purple-node-")
            .tempdir()
            .unwrap();
        let pdir = dir.path().join("policies");
        fs::create_dir(&pdir).unwrap();
        fs::write(pdir.join("floor-test.yaml"), FLOOR).unwrap();
        for (name, text) in profiles {
            fs::write(pdir.join(format!("{name}.yaml")), text).unwrap();
        }
        let config = format!("profile_dir: {}\n{config}", pdir.display());
        fs::write(dir.path().join("runtime.yaml"), config).unwrap();
        Self { dir }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("runtime.yaml")
    }

    fn arg(&self) -> String {
        format!("--node-config={}", self.path().display())
    }
}

/// The floor's profile with one line replaced (`from` must occur).
fn variant(name: &str, from: &str, to: &str) -> String {
    assert!(FLOOR.contains(from), "{from}");
    FLOOR
        .replace("name: floor-test", &format!("name: {name}"))
        .replace(from, to)
}

fn bundle(annotations: Value) -> TestBundle {
    let b = TestBundle::new(&["true"]);
    b.edit(|c| c["annotations"] = annotations);
    b
}

/// A create expected to fail: its output (a created container would hold
/// the pipes open).
fn create(oci: &Oci, node: &Path, id: &str, annotations: Value) -> Output {
    let b = bundle(annotations);
    oci.cmd()
        .arg(format!("--node-config={}", node.display()))
        .args(["create", "--bundle"])
        .arg(b.path())
        .arg(id)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Creates with `annotations`; asserts the refusal names `key`, `floor`
/// and `why`, and that nothing was left.
fn assert_refused(oci: &Oci, node: &Path, annotations: Value, key: &str, floor: &str, why: &str) {
    let id = unique_id("floor");
    let out = create(oci, node, &id, annotations.clone());
    let err = stderr(&out);
    assert!(!out.status.success(), "{annotations}: accepted");
    assert!(
        err.contains(key) && err.contains(floor) && err.contains(why),
        "{annotations}: wanted {key}, {floor}, {why}: {err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert_no_leftovers(oci, &id);
}

#[test]
fn loosening_annotations_are_refused_and_leave_nothing() {
    let node = NodeConfig::new(
        "floor: floor-test\n",
        &[
            (
                "loose-net",
                variant(
                    "loose-net",
                    "blocked_ips: [\"10.99.2.0/24\"]",
                    "blocked_ips: []",
                ),
            ),
            (
                "loose-syscalls",
                variant(
                    "loose-syscalls",
                    "deny: [ptrace, mount, bpf]",
                    "deny: [mount, bpf]",
                ),
            ),
            (
                "loose-caps",
                variant(
                    "loose-caps",
                    "syscalls:",
                    "capabilities:\n  add: [CAP_SYS_ADMIN]\nsyscalls:",
                ),
            ),
            (
                "loose-limits",
                variant("loose-limits", "\"256M\"", "\"1G\""),
            ),
            (
                "loose-mounts",
                variant(
                    "loose-mounts",
                    "syscalls:",
                    "filesystem:\n  read_only_root: false\nsyscalls:",
                ),
            ),
            (
                "loose-session",
                variant(
                    "loose-session",
                    "session_timeout_seconds: 600",
                    "session_timeout_seconds: 6000",
                ),
            ),
            (
                "tight",
                variant("tight", "pids_limit: 128", "pids_limit: 64"),
            ),
        ],
    );
    let oci = Oci::new();
    let floor = "profile \"floor-test\"";
    let p = node.path();
    for (profile, why) in [
        ("loose-net", "network: it allows 10.99.2.0"),
        ("loose-syscalls", "syscalls: system call ptrace"),
        ("loose-caps", "capabilities: CAP_SYS_ADMIN"),
        (
            "loose-limits",
            "memory_limit_bytes 1073741824 is above the floor's 268435456",
        ),
        ("loose-mounts", "filesystem: read_only_root is off"),
        (
            "loose-session",
            "timeout_seconds 6000 is above the floor's 600",
        ),
    ] {
        assert_refused(
            &oci,
            &p,
            json!({"io.purple.profile": profile}),
            "io.purple.profile",
            floor,
            why,
        );
    }
    // The bundle's own plans, without any profile.
    assert_refused(
        &oci,
        &p,
        json!({"io.purple.network": "{\"mode\":\"deny-list\"}"}),
        "io.purple.network",
        floor,
        "10.99.2.0",
    );
    assert_refused(
        &oci,
        &p,
        json!({"io.purple.session": "{\"timeout_seconds\":6000}"}),
        "io.purple.session",
        floor,
        "above the floor's 600",
    );
    assert_refused(
        &oci,
        &p,
        json!({"io.purple.netwrok": "{}"}),
        "io.purple.netwrok",
        "",
        "not one Purple reads",
    );
    // A profile at least as tight as the floor runs.
    let id = unique_id("floor");
    let b = bundle(json!({"io.purple.profile": "tight"}));
    oci.create(&id, &b, &[&node.arg()]);
    oci.ok(&["delete", "--force", &id]);
    assert_no_leftovers(&oci, &id);
}

#[test]
fn out_of_the_box_metadata_stays_closed_unless_the_operator_opens_it() {
    let oci = Oci::new();
    let defaults = NodeConfig::new("", &[]);
    let open = json!({"io.purple.network": "{\"allow_metadata\":true}"});
    assert_refused(
        &oci,
        &defaults.path(),
        open.clone(),
        "io.purple.network",
        "Purple's default, cloud metadata denied",
        "allow_metadata",
    );
    // An explicit allow of the metadata address is the same door.
    assert_refused(
        &oci,
        &defaults.path(),
        json!({"io.purple.network": "{\"rules\":[{\"cidr\":\"169.254.169.254\",\"action\":\"allow\",\"ports\":[80]}]}"}),
        "io.purple.network",
        "Purple's default",
        "169.254.169.254",
    );
    // The operator's floor may open it.
    let opened = NodeConfig::new(
        "floor: metadata-ok\n",
        &[(
            "metadata-ok",
            "name: metadata-ok\nnetwork:\n  isolated: false\n  allow_metadata: true\n".into(),
        )],
    );
    let id = unique_id("floor");
    let b = bundle(open);
    oci.create(&id, &b, &[&opened.arg()]);
    oci.ok(&["delete", "--force", &id]);
    assert_no_leftovers(&oci, &id);
    // Annotations the operator does not honour are refused, not ignored.
    let narrow = NodeConfig::new("annotations: [io.purple.profile]\n", &[]);
    assert_refused(
        &oci,
        &narrow.path(),
        json!({"io.purple.network": "{}"}),
        "io.purple.network",
        "runtime.yaml",
        "not honoured",
    );
}

#[test]
fn a_tightening_annotation_runs_tighter_and_its_rule_holds() {
    let node = NodeConfig::new("floor: floor-test\n", &[]);
    let net = TestNet::new();
    // The floor's plan plus one deny: the test host 10.99.1.1.
    let plan = json!({
        "mode": "deny-list",
        "rules": [
            {"cidr": "10.99.2.0/24", "action": "deny"},
            {"cidr": "10.99.1.1/32", "action": "deny"}
        ]
    });
    let b = agent_bundle(
        &net,
        Some(plan),
        &format!("nameserver {CONTAINER_NAMESERVER}\n"),
    );
    let a = Agent::from_bundle_with(b, &[&node.arg()]);
    assert_eperm(&a.probe(&["tcp", "10.99.1.1", "80"]));
    // What neither denies still flows.
    assert_ok(&a.probe(&["tcp", purple_integration::netns::HOST_LINK_V4, "80"]));
    // The floor's own parts reached the spec under the bundle's plan.
    let spec: Value =
        serde_json::from_str(&fs::read_to_string(a.record_file("bundle/config.json")).unwrap())
            .unwrap();
    assert_eq!(spec["linux"]["resources"]["pids"]["limit"], 128, "{spec}");
    a.delete();
}

#[test]
fn podman_cannot_open_metadata_with_an_annotation() {
    podman_setup();
    let name = unique_id("floor-podman");
    let out = podman(&[
        "run",
        "--rm",
        "--runtime",
        "purple",
        "--name",
        &name,
        "--annotation",
        "io.purple.network={\"allow_metadata\":true}",
        PODMAN_IMAGE,
        "true",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "podman ran it: {err}");
    assert!(
        err.contains("io.purple.network") && err.contains("allow_metadata"),
        "{err}"
    );
    podman(&["rm", "-f", &name]);
    purple_integration::assert_no_cgroup_named(&name);
}
