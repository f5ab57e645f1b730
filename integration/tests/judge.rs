//! Attacks on the network judge's edges: port 0 and port-less packets under
//! a port list, and every IPv6 spelling of a denied IPv4 address (DNS
//! answers are in judge_dns.rs). Test hosts live in network namespaces of
//! the test's own (`netns.rs`): the client namespace's only link leads to
//! them, and every refusal here happens before a packet.

use std::net::Ipv6Addr;

use purple_integration::agent::{assert_eperm, assert_ok, Agent};
use purple_integration::netns::{TestNet, HOST_LINK_V4, HOST_LINK_V6};
use purple_integration::records::{blocked, log_until};
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
