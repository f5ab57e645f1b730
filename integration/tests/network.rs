//! Attacks on Purple's eBPF egress enforcement: each test tries what the plan
//! forbids from inside a real container and checks it failed at once (EPERM
//! for socket calls, dropped for raw packets), that allowed traffic still
//! flows, and that the decisions were counted. Test hosts live in network
//! namespaces of the test's own (see `netns.rs`).

use std::process::Command;

use purple_integration::agent::{assert_eperm, assert_ok, Agent};
use purple_integration::netns::{netprobe, TestNet, HOST_LINK_V4, HOST_LINK_V6};
use purple_integration::*;
use serde_json::json;

#[test]
fn metadata_is_blocked_without_any_annotation() {
    let net = TestNet::new();
    let a = Agent::start(&net, None);
    assert_ok(&a.probe(&["tcp", HOST_LINK_V4, "80"]));
    for target in [
        "169.254.169.254",
        "100.100.100.200",
        "fd00:ec2::254",
        "::ffff:169.254.169.254",
    ] {
        assert_eperm(&a.probe(&["tcp", target, "80"]));
    }
    // UDP and raw packets to the metadata address are stopped too.
    assert_eperm(&a.probe(&["udp", "169.254.169.254", "53"]));
    // A dropped egress packet surfaces as EPERM to the raw socket's sendto.
    assert_eperm(&a.probe(&["icmp", "169.254.169.254"]));
    assert!(
        !net.received().contains("169.254.169.254"),
        "metadata reached: {}",
        net.received()
    );
    let stats = a.network_stats();
    assert!(stats["denied"].as_u64().unwrap() >= 6, "{stats}");
    a.delete();
}

#[test]
fn deny_list_blocks_ips_and_cidrs() {
    let net = TestNet::new();
    let plan = json!({
        "mode": "deny-list",
        "rules": [
            {"cidr": "1.1.1.1", "action": "deny"},
            {"cidr": "10.99.0.0/16", "action": "deny"},
            {"cidr": "10.99.1.0/24", "action": "allow"},
            {"cidr": "fd00:99::/64", "action": "deny"}
        ]
    });
    let a = Agent::start(&net, Some(plan));
    assert_eperm(&a.probe(&["tcp", "1.1.1.1", "80"]));
    assert_eperm(&a.probe(&["tcp", "10.99.0.1", "8080"]));
    assert_ok(&a.probe(&["tcp", "10.99.1.1", "80"])); // the more specific allow wins
    assert_ok(&a.probe(&["tcp", "10.98.0.1", "80"])); // not listed
    assert_eperm(&a.probe(&["tcp", "fd00:99::1", "80"]));
    assert_eperm(&a.probe(&["tcp", "::ffff:1.1.1.1", "80"])); // v4-mapped bypass attempt
    assert_ok(&a.probe(&["tcp", HOST_LINK_V6, "80"]));
    // Unconnected UDP (sendmsg hook) and connected UDP (connect hook).
    assert_eperm(&a.probe(&["udp", "1.1.1.1", "53"]));
    assert_eperm(&a.probe(&["udp-connected", "1.1.1.1", "53"]));
    assert_ok(&a.probe(&["udp", HOST_LINK_V4, "53"]));
    // Raw ICMP never passes connect/sendmsg hooks: the skb egress program drops it.
    assert_eperm(&a.probe(&["icmp", "1.1.1.1"]));
    assert_ok(&a.probe(&["icmp", HOST_LINK_V4]));
    let got = net.received();
    assert!(
        !got.contains("1.1.1.1") && !got.contains("10.99.0.1") && !got.contains("fd00:99::1"),
        "{got}"
    );
    // Rule 1 (1.1.1.1) was hit by tcp, v4-mapped, udp, udp-connected and icmp.
    let stats = a.network_stats();
    let hits: Vec<(u64, u64)> = serde_json::from_value(stats["rule_hits"].clone()).unwrap();
    let rule1 = hits
        .iter()
        .find(|(id, _)| *id == 1)
        .map(|(_, n)| *n)
        .unwrap_or(0);
    assert!(rule1 >= 5, "rule 1 hits: {stats}");
    a.delete();
}

#[test]
fn allow_list_with_ports_and_protocol() {
    let net = TestNet::new();
    let plan = json!({
        "mode": "allow-list",
        "rules": [{"cidr": HOST_LINK_V4, "action": "allow", "ports": [80], "protocol": "tcp"}]
    });
    let a = Agent::start(&net, Some(plan));
    assert_ok(&a.probe(&["tcp", HOST_LINK_V4, "80"]));
    assert_eperm(&a.probe(&["tcp", HOST_LINK_V4, "8080"])); // port not listed
    assert_eperm(&a.probe(&["udp", HOST_LINK_V4, "53"])); // protocol not listed
    assert_eperm(&a.probe(&["tcp", "10.98.0.1", "80"])); // address not listed
    assert_eperm(&a.probe(&["tcp", HOST_LINK_V6, "80"]));
    assert_eperm(&a.probe(&["icmp", HOST_LINK_V4]));
    // Loopback inside the container's own namespace always works (nothing listens: refused, not EPERM).
    assert!(a
        .probe(&["tcp", "127.0.0.1", "9"])
        .starts_with("err ECONNREFUSED"));
    a.delete();
}

#[test]
fn rules_hold_for_grandchildren_and_exec() {
    let net = TestNet::new();
    let a = Agent::start(
        &net,
        Some(json!({"rules": [{"cidr": "1.1.1.1", "action": "deny"}]})),
    );
    // A grandchild of a shell started by exec, detached from the exec'd process.
    let out = a.oci.run(&[
        "exec",
        &a.id,
        "sh",
        "-c",
        "sh -c 'netprobe tcp 1.1.1.1 80' & wait",
    ]);
    assert_eperm(String::from_utf8_lossy(&out.stdout).trim());
    // A burst of blocked connects, all refused and all counted.
    let out = a.probe(&["burst", "1.1.1.1", "80", "2000"]);
    assert!(out.starts_with("eperm 2000 of 2000"), "{out}");
    let stats = a.network_stats();
    assert!(stats["denied"].as_u64().unwrap() >= 2001, "{stats}");
    assert_eq!(stats["events_lost"], 0, "{stats}");
    a.delete();
}

#[test]
fn invalid_plan_is_refused_without_leftovers() {
    let oci = Oci::new();
    let b = TestBundle::new(&["true"]);
    b.edit(|c| c["annotations"] = json!({"io.purple.network": "{\"rules\":[{\"cidr\":\"10.0.0.0/40\",\"action\":\"deny\"}]}"}));
    let id = unique_id("badnet");
    let out = oci.run(&["create", "--bundle", b.path().to_str().unwrap(), &id]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("io.purple.network") && err.contains("10.0.0.0/40"),
        "{err}"
    );
    assert_no_leftovers(&oci, &id);
    assert!(!std::path::Path::new("/sys/fs/bpf/purple")
        .join(&id)
        .exists());
}

#[test]
fn podman_annotation_enforces_the_plan() {
    // The podman test (tests/podman.rs) installs the `purple` runtime entry;
    // this one needs it too, so it writes the same drop-in when missing.
    podman_setup();
    let net = TestNet::new();
    let plan = json!({"rules": [{"cidr": "1.1.1.1", "action": "deny"}]}).to_string();
    let probe = netprobe().to_str().unwrap().to_owned();
    let out = Command::new("podman")
        .args(["--runtime", "purple", "run", "--rm", "--network"])
        .arg(format!("ns:{}", net.client_path()))
        // podman splits --annotation values as CSV: quote the JSON, doubling its quotes.
        .arg("--annotation")
        .arg(format!("\"io.purple.network={}\"", plan.replace('"', "\"\"")))
        .arg("-v")
        .arg(format!("{probe}:/netprobe:ro"))
        .args([PODMAN_IMAGE, "sh", "-c", "/netprobe tcp 1.1.1.1 80; /netprobe tcp 10.200.0.2 80; /netprobe tcp 169.254.169.254 80"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines.len(),
        3,
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eperm(lines[0]);
    assert_ok(lines[1]);
    assert_eperm(lines[2]);
    assert!(!net.received().contains("1.1.1.1"));
}
