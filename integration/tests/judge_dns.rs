//! Attacks on the judge through DNS: answers that would widen the plan (a
//! learned address inside a denied prefix, metadata or private ranges behind
//! an allowed name), a blocked name whose refresh the agent tries to make
//! fail, and the supervisor's cost of naming the askers of a refusal flood
//! in an fd-heavy sandbox. Test hosts live in network namespaces of the
//! test's own (`netns.rs`).

use std::fs;
use std::time::{Duration, Instant};

use purple_integration::agent::{assert_eperm, assert_ok, Agent};
use purple_integration::netns::{TestNet, HOST_LINK_V4};
use purple_integration::records::{blocked, first_word, log_until, records};
use serde_json::{json, Value};

#[test]
fn a_dns_answer_never_widens_the_plan() {
    let net = TestNet::new();
    // A learned /32 inside a denied /24 (deny-list) and /8 (allow-list), and
    // metadata behind an allowed name: the answer comes back, the connect is
    // refused by the plan's rule.
    for (mode, deny, addr, name) in [
        ("deny-list", "10.99.0.0/24", "10.99.0.1", "allowed.test"),
        ("allow-list", "10.0.0.0/8", "10.98.0.1", "api.allowed.test"),
    ] {
        let plan = json!({
            "mode": mode,
            "rules": [{"cidr": deny, "action": "deny"}],
            "allowed_domains": ["allowed.test", "*.allowed.test"],
            "dns_servers": [HOST_LINK_V4],
            "allow_rebinding": true,
        });
        let a = Agent::start(&net, Some(plan));
        assert_eq!(
            first_word(&a.probe(&["resolve", name])),
            format!("ok {addr}")
        );
        assert_eperm(&a.probe(&["tcp", addr, "80"]));
        assert_eq!(
            first_word(&a.probe(&["resolve", "meta.allowed.test"])),
            "ok 169.254.169.254"
        );
        assert_eperm(&a.probe(&["tcp", "169.254.169.254", "80"]));
        let log = log_until(&a, |l| {
            !blocked(l, addr).is_empty() && !blocked(l, "169.254.169.254").is_empty()
        });
        assert_eq!(blocked(&log, addr)[0]["rule"], format!("#1 deny {deny}"));
        assert_eq!(
            blocked(&log, "169.254.169.254")[0]["rule"],
            "#2 deny 169.254.169.254/32 (cloud metadata)"
        );
        a.delete();
    }
    assert!(!net.received().contains("169.254.169.254:80"));
}

#[test]
fn rebinding_answers_are_refused_unless_the_plan_allows_the_range() {
    let net = TestNet::new();
    let plan = |extra: Value| {
        let mut p = json!({
            "mode": "allow-list",
            "allowed_domains": ["allowed.test", "*.allowed.test"],
            "dns_servers": [HOST_LINK_V4],
        });
        p.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        p
    };
    let a = Agent::start(&net, Some(plan(json!({}))));
    // allowed.test answers 10.99.0.1 (RFC 1918), meta.allowed.test the metadata address.
    for name in ["allowed.test", "meta.allowed.test", "api.allowed.test"] {
        let v = a.probe(&["resolve", name]);
        assert!(v.starts_with("nxdomain"), "{name}: {v}");
    }
    assert_eperm(&a.probe(&["tcp", "10.99.0.1", "80"]));
    let log = log_until(&a, |l| {
        l.iter()
            .filter(|r| r["kind"] == "dns.denied" && r["rule"] == "rebinding")
            .count()
            >= 3
    });
    let rebinding: Vec<&Value> = log
        .iter()
        .filter(|r| r["kind"] == "dns.denied" && r["rule"] == "rebinding")
        .collect();
    assert_eq!(rebinding.len(), 3, "{log:?}");
    let r = rebinding
        .iter()
        .find(|r| r["details"]["name"] == "allowed.test")
        .unwrap();
    assert_eq!(r["details"]["address"], "10.99.0.1", "{r}");
    assert_eq!(r["details"]["range"], "10.0.0.0/8", "{r}");
    assert_eq!(r["comm"], "netprobe", "{r}");
    a.delete();

    // An explicit rule for the range lets exactly that range through.
    let a = Agent::start(
        &net,
        Some(plan(
            json!({"rules": [{"cidr": "10.99.0.0/24", "action": "allow"}]}),
        )),
    );
    assert_eq!(
        first_word(&a.probe(&["resolve", "allowed.test"])),
        "ok 10.99.0.1"
    );
    assert!(a
        .probe(&["resolve", "api.allowed.test"])
        .starts_with("nxdomain"));
    a.delete();

    // The switch lets every range through; metadata stays denied.
    let a = Agent::start(&net, Some(plan(json!({"allow_rebinding": true}))));
    assert_eq!(
        first_word(&a.probe(&["resolve", "api.allowed.test"])),
        "ok 10.98.0.1"
    );
    assert_ok(&a.probe(&["tcp", "10.98.0.1", "80"]));
    a.delete();
}

fn blocked_refresh_plan() -> Value {
    // api.allowed.test (10.98.0.1) has a TTL of 2 s: refreshed every 2 s.
    json!({
        "mode": "deny-list",
        "blocked_domains": ["api.allowed.test"],
        "dns_servers": [HOST_LINK_V4],
    })
}

fn refreshes(net: &TestNet) -> usize {
    net.received()
        .lines()
        .filter(|l| l.contains("udp-upstream") && l.ends_with("api.allowed.test 1"))
        .count()
}

#[test]
fn a_blocked_name_stays_blocked_when_the_agent_starves_the_resolver() {
    let net = TestNet::new();
    let a = Agent::start(&net, Some(blocked_refresh_plan()));
    assert_eperm(&a.probe(&["tcp", "10.98.0.1", "80"]));
    // The agent holds every ephemeral UDP port of its namespace: 30
    // processes of 1,000 sockets (the range has 28,232).
    a.oci.detached(&[
        "exec",
        "-d",
        &a.id,
        "sh",
        "-c",
        "for i in $(seq 30); do netprobe hog-ports 1000 60 >> /tmp/held & done; wait",
    ]);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let held = a.oci.run(&["exec", &a.id, "cat", "/tmp/held"]);
        let held = String::from_utf8_lossy(&held.stdout).to_string();
        if held.lines().count() >= 30 {
            assert!(
                held.lines().any(|l| l != "held 1000"),
                "never ran out: {held}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "hogs did not start: {held}");
        std::thread::sleep(Duration::from_millis(200));
    }
    // Starved: the agent's own fresh socket finds no port.
    let v = a.probe(&["udp", HOST_LINK_V4, "53"]);
    assert!(!v.starts_with("ok"), "a port was left: {v}");
    let before = refreshes(&net);
    // Past the TTL, the grace and several refreshes.
    std::thread::sleep(Duration::from_secs(10));
    assert_eperm(&a.probe(&["tcp", "10.98.0.1", "80"]));
    assert!(
        refreshes(&net) >= before + 2,
        "the refresh stopped: {}",
        net.received()
    );
    let log = records(&a);
    assert!(!log.iter().any(|r| r["kind"] == "dns.error"), "{log:?}");
    a.delete();
}

#[test]
fn a_blocked_name_fails_closed_when_its_refresh_fails() {
    let net = TestNet::new();
    let a = Agent::start(&net, Some(blocked_refresh_plan()));
    assert_eperm(&a.probe(&["tcp", "10.98.0.1", "80"]));
    // The upstream stops answering: every refresh fails from now on.
    net.pause(true);
    std::thread::sleep(Duration::from_secs(12));
    let v = a.probe(&["tcp", "10.98.0.1", "80"]);
    net.pause(false);
    assert_eperm(&v);
    let log = log_until(&a, |l| l.iter().any(|r| r["kind"] == "dns.error"));
    let err = log
        .iter()
        .find(|r| r["kind"] == "dns.error")
        .unwrap_or_else(|| panic!("no dns.error: {log:?}"));
    assert_eq!(err["rule"], "#5 blocked domain api.allowed.test", "{err}");
    assert_eq!(err["details"]["kept"], json!(["10.98.0.1"]), "{err}");
    assert!(!blocked(&log, "10.98.0.1").is_empty(), "{log:?}");
    a.delete();
}

/// utime + stime of `pid` in seconds (clock ticks of 100 Hz).
fn cpu_seconds(pid: u64) -> f64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split(' ').collect();
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    ticks as f64 / 100.0
}

#[test]
fn naming_the_askers_of_a_refusal_flood_costs_no_scan_of_the_sandbox() {
    let net = TestNet::new();
    let plan = json!({
        "mode": "allow-list",
        "allowed_domains": ["allowed.test"],
        "dns_servers": [HOST_LINK_V4],
    });
    let a = Agent::start(&net, Some(plan));
    // 200 processes holding 1,000 descriptors each.
    a.oci.detached(&[
        "exec",
        "-d",
        &a.id,
        "sh",
        "-c",
        "for i in $(seq 200); do netprobe fds 1000 120 >> /tmp/open & done; wait",
    ]);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let open = a.oci.run(&["exec", &a.id, "cat", "/tmp/open"]);
        if String::from_utf8_lossy(&open.stdout).lines().count() >= 200 {
            break;
        }
        assert!(Instant::now() < deadline, "fd holders did not start");
        std::thread::sleep(Duration::from_millis(500));
    }
    let spid = a.oci.record(&a.id)["supervisor_pid"].as_u64().unwrap();
    let cpu0 = cpu_seconds(spid);
    let t0 = Instant::now();
    let v = a.probe(&["dns-rate", HOST_LINK_V4, "evil.test", "64"]);
    let wall = t0.elapsed().as_secs_f64();
    let log = log_until(&a, |l| {
        l.iter()
            .filter(|r| r["kind"] == "dns.denied" && r["details"]["name"] == "evil.test")
            .count()
            >= 64
    });
    let cpu = cpu_seconds(spid) - cpu0;
    eprintln!(
        "64 refused queries, 200 x 1,000 fds: supervisor CPU {cpu:.2} s, {wall:.2} s wall ({v})"
    );
    let denied: Vec<&Value> = log
        .iter()
        .filter(|r| r["kind"] == "dns.denied" && r["details"]["name"] == "evil.test")
        .collect();
    assert_eq!(denied.len(), 64, "{v}");
    assert!(denied.iter().all(|r| r["comm"] == "netprobe"), "{denied:?}");
    assert!(cpu < 1.0, "supervisor CPU {cpu:.2} s for 64 refusals");
    a.delete();
}
