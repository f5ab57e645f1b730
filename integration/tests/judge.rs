//! Attacks on the network judge's edges: port 0 and port-less packets under
//! a port list, every IPv6 spelling of a denied IPv4 address, DNS answers
//! that would widen the plan (a learned address inside a denied prefix,
//! metadata or private ranges behind an allowed name), a blocked name whose
//! refresh the agent tries to make fail, and the supervisor's cost of naming
//! the askers of a refusal flood in an fd-heavy sandbox. Test hosts live in
//! network namespaces of the test's own (`netns.rs`): the client namespace's
//! only link leads to them, and every refusal here happens before a packet.

use std::fs;
use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use purple_integration::agent::{assert_eperm, assert_ok, Agent};
use purple_integration::netns::{TestNet, HOST_LINK_V4, HOST_LINK_V6};
use serde_json::{json, Value};

/// `allow_outgoing: [80, 443, 53]` of ai-dev-safe, as the translator writes
/// it in deny-list mode: the complement of the ports, from 0.
fn ai_dev_safe() -> Value {
    let other = json!(["0-52", "54-79", "81-442", "444-65535"]);
    json!({
        "mode": "deny-list",
        "rules": [
            {"cidr": "0.0.0.0/0", "action": "deny", "ports": other},
            {"cidr": "::/0", "action": "deny", "ports": other},
        ],
    })
}

fn blocked<'a>(log: &'a [Value], destination: &str) -> Vec<&'a Value> {
    log.iter()
        .filter(|r| r["kind"] == "network.blocked" && r["details"]["destination"] == destination)
        .collect()
}

/// The records written so far (a line being written is not one yet).
fn records(a: &Agent) -> Vec<Value> {
    fs::read_to_string(purple_runtime::audit::default_path(&a.id))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Waits for the supervisor to write the records of what was just refused.
fn log_until(a: &Agent, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let log = records(a);
        if done(&log) || Instant::now() > deadline {
            return log;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn port_zero_and_portless_packets_do_not_slip_past_allow_outgoing() {
    let net = TestNet::new();
    let a = Agent::start(&net, Some(ai_dev_safe()));
    assert_ok(&a.probe(&["tcp", HOST_LINK_V4, "80"]));
    // (An unconnected UDP datagram to port 0 the kernel refuses itself, EINVAL.)
    for (proto, host) in [
        ("tcp", HOST_LINK_V4),
        ("udp-connected", HOST_LINK_V4),
        ("tcp", HOST_LINK_V6),
    ] {
        assert_eperm(&a.probe(&[proto, host, "0"]));
    }
    // ICMP has no port: a rule scoped to ports denies it, as a named, counted case.
    assert_eperm(&a.probe(&["icmp", HOST_LINK_V4]));
    let log = log_until(&a, |l| blocked(l, HOST_LINK_V4).len() >= 3);
    let refused = blocked(&log, HOST_LINK_V4);
    let port0 = refused.iter().filter(|r| r["details"]["port"] == 0).count();
    assert!(port0 >= 2, "{refused:?}");
    assert!(
        refused.iter().all(|r| r["rule"] == "#1 deny 0.0.0.0/0"),
        "{refused:?}"
    );
    let icmp = refused
        .iter()
        .find(|r| r["details"]["protocol"] == "icmp")
        .unwrap_or_else(|| panic!("no icmp record: {refused:?}"));
    assert_eq!(icmp["details"]["port"], Value::Null, "{icmp}");
    let stats = a.network_stats();
    assert!(stats["portless_denied"].as_u64().unwrap() >= 1, "{stats}");
    assert!(!net.received().contains(":0 "), "{}", net.received());
    a.delete();

    // Allow-list with the same ports: port 0 and ICMP are not among them.
    let allow = json!({
        "mode": "allow-list",
        "rules": [{"cidr": "0.0.0.0/0", "action": "allow", "ports": [80, 443, 53]}],
    });
    let a = Agent::start(&net, Some(allow));
    assert_ok(&a.probe(&["tcp", HOST_LINK_V4, "80"]));
    assert_eperm(&a.probe(&["tcp", HOST_LINK_V4, "0"]));
    assert_eperm(&a.probe(&["icmp", HOST_LINK_V4]));
    a.delete();
}

/// Every IPv6 spelling of the IPv4 address `v4`, whose two 16-bit halves are
/// `hi` and `lo`, with the form a record names it by.
fn forms(v4: &str, hi: u16, lo: u16) -> Vec<(String, &'static str)> {
    vec![
        (format!("::ffff:{v4}"), "v4-mapped"),
        (format!("::{v4}"), "v4-compatible"),
        (format!("64:ff9b::{v4}"), "nat64"),
        (format!("64:ff9b:1::{v4}"), "nat64-local/96"),
        (
            format!("64:ff9b:1:{hi:x}:{:x}:{:x}::", lo >> 8, (lo & 0xff) << 8),
            "nat64-local/48",
        ),
        (format!("2002:{hi:x}:{lo:x}::1"), "6to4"),
        (format!("2001:0:{hi:x}:{lo:x}::1"), "teredo-server"),
        (format!("2001:0:5:6::{:x}:{:x}", !hi, !lo), "teredo-client"),
    ]
}

#[test]
fn every_ipv6_form_of_a_denied_ipv4_is_refused_by_the_ipv4_rule() {
    let net = TestNet::new();
    let plan = json!({"rules": [{"cidr": "1.1.1.1", "action": "deny"}]});
    let a = Agent::start(&net, Some(plan));
    let cases: Vec<(String, &str, &str, &str)> = forms("1.1.1.1", 0x0101, 0x0101)
        .into_iter()
        .map(|(addr, form)| (addr, form, "1.1.1.1", "#1 deny 1.1.1.1/32"))
        .chain(
            forms("169.254.169.254", 0xa9fe, 0xa9fe)
                .into_iter()
                .map(|(addr, form)| {
                    (
                        addr,
                        form,
                        "169.254.169.254",
                        "#2 deny 169.254.169.254/32 (cloud metadata)",
                    )
                }),
        )
        // As records write them (`::101:101` for `::1.1.1.1`).
        .map(|(addr, form, v4, rule)| {
            (
                addr.parse::<Ipv6Addr>().unwrap().to_string(),
                form,
                v4,
                rule,
            )
        })
        .collect();
    for (addr, form, _, _) in &cases {
        // connect6 (TCP) and sendmsg6 (unconnected UDP).
        for proto in ["tcp", "udp"] {
            let v = a.probe(&[proto, addr, "80"]);
            assert!(v.starts_with("err EPERM"), "{proto} {addr} ({form}): {v}");
        }
    }
    // A datagram to a v4-mapped address takes the IPv4 path (sendmsg4): its
    // record names the IPv4 destination.
    let expected = |form: &str| if form == "v4-mapped" { 1 } else { 2 };
    let log = log_until(&a, |l| {
        cases
            .iter()
            .all(|(addr, form, ..)| blocked(l, addr).len() >= expected(form))
    });
    for (addr, form, v4, rule) in &cases {
        let recs = blocked(&log, addr);
        assert_eq!(recs.len(), expected(form), "{addr} ({form}): {log:?}");
        for r in recs {
            assert_eq!(r["rule"], *rule, "{addr}: {r}");
            assert_eq!(r["details"]["ipv4_form"], *form, "{addr}: {r}");
            assert_eq!(r["details"]["ipv4"], *v4, "{addr}: {r}");
        }
    }
    // Other IPv6 destinations are still judged by the IPv6 rules only.
    assert_ok(&a.probe(&["tcp", HOST_LINK_V6, "80"]));
    let got = net.received();
    assert!(
        !got.contains("1.1.1.1") && !got.contains("169.254"),
        "{got}"
    );
    a.delete();
}

fn first_word(verdict: &str) -> String {
    let mut w: Vec<&str> = verdict.split_whitespace().collect();
    w.pop();
    w.join(" ")
}

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
