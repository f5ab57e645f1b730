//! `network`: address and port rules, domains, DNS and the namespace, checked
//! against what one kernel rule can hold.

use std::net::IpAddr;

use super::{keyword, opt_bool};
use crate::decode::{Decoder, Fields, Renamed, Shape};
use crate::domain::Domain;
use crate::limits::MAX_PORT_RANGES;
use crate::plan::{Cidr, Mode, PortRange};
use crate::ports::PortRanges;
use crate::schema::*;

pub(super) const NETWORK: Shape = Shape {
    fields: &[
        "isolated",
        "namespace",
        "mode",
        "blocked_ips",
        "allowed_ips",
        "allow_outgoing",
        "allow_incoming",
        "allowed_domains",
        "blocked_domains",
        "dns_servers",
        "allow_metadata",
        "dns_rebinding",
    ],
    renamed: &[
        Renamed {
            old: "allowed_outgoing_ports",
            new: "allow_outgoing",
        },
        Renamed {
            old: "allowed_incoming_ports",
            new: "allow_incoming",
        },
        Renamed {
            old: "blocked_ips_v4",
            new: "blocked_ips",
        },
    ],
    inert: &[],
};

pub(super) fn network(d: &mut Decoder, f: &Fields) -> Network {
    let cidrs = |d: &mut Decoder, key: &'static str| {
        f.get(key)
            .map(|n| {
                d.parsed(
                    n,
                    &f.path(key),
                    "write an address (1.1.1.1, fd00::1) or a CIDR (10.0.0.0/8)",
                    |s| s.parse::<Cidr>(),
                )
            })
            .unwrap_or_default()
    };
    let ports = |d: &mut Decoder, key: &'static str| {
        let list = f
            .get(key)
            .map(|n| {
                d.parsed(
                    n,
                    &f.path(key),
                    "write a port (443) or a range (8000-8100)",
                    |s| s.parse::<PortRange>(),
                )
            })
            .unwrap_or_default();
        let merged = PortRanges::merged(list);
        if !merged.fit() {
            d.error(
                f.get(key).map_or(f.pos, |n| n.pos),
                &f.path(key),
                format!(
                    "{} separate port ranges; the kernel rule holds at most {MAX_PORT_RANGES}",
                    merged.len()
                ),
                "merge neighbouring ports into ranges such as 8000-8100",
            );
        }
        merged
    };
    let domains = |d: &mut Decoder, key: &'static str| {
        f.get(key)
            .map(|n| {
                d.parsed(
                    n,
                    &f.path(key),
                    "write a name such as api.example.com or *.example.com",
                    |s| s.parse::<Domain>(),
                )
            })
            .unwrap_or_default()
    };
    let blocked_ips = cidrs(d, "blocked_ips");
    let allowed_ips = cidrs(d, "allowed_ips");
    for c in &blocked_ips {
        if allowed_ips.contains(c) {
            d.error(
                f.pos,
                &f.path("blocked_ips"),
                format!("{c} is both blocked and allowed"),
                "remove it from one list",
            );
        }
    }
    let mode = f
        .get("mode")
        .and_then(|n| {
            keyword(
                d,
                n,
                &f.path("mode"),
                &[
                    ("deny-list", Mode::DenyList),
                    ("allow-list", Mode::AllowList),
                ],
            )
        })
        .unwrap_or_default();
    let allowed_domains = domains(d, "allowed_domains");
    if mode == Mode::DenyList && !allowed_domains.is_empty() {
        if let Some(n) = f.get("allowed_domains") {
            d.warn(
                n.pos,
                &f.path("allowed_domains"),
                "in deny-list mode every name is reachable anyway, and `blocked_ips` wins over their addresses: these only refuse answers pointing into private ranges (`dns_rebinding`)",
                "set `mode: allow-list` to allow only these names",
            );
        }
    }
    let allow_outgoing = ports(d, "allow_outgoing");
    if !allow_outgoing.is_empty() {
        let pos = f.get("allow_outgoing").map_or(f.pos, |n| n.pos);
        if mode == Mode::DenyList && !allow_outgoing.complement().fit() {
            d.error(
                pos,
                &f.path("allow_outgoing"),
                format!("the ports outside these ranges form more than {MAX_PORT_RANGES} ranges, which the kernel rule cannot hold"),
                "merge neighbouring ports into ranges, or use `mode: allow-list`",
            );
        }
        let anywhere = |c: &Cidr| c.prefix == 0;
        if blocked_ips.iter().chain(&allowed_ips).any(anywhere) {
            d.error(
                pos,
                &f.path("allow_outgoing"),
                "a rule for 0.0.0.0/0 or ::/0 leaves no room for the port rule allow_outgoing creates",
                "use `mode: allow-list` instead of a rule for everything",
            );
        }
    }
    let allow_incoming = ports(d, "allow_incoming");
    if let (Some(n), false) = (f.get("allow_incoming"), allow_incoming.is_empty()) {
        d.warn(
            n.pos,
            &f.path("allow_incoming"),
            "not enforced: Purple filters what the agent sends, not what reaches it",
            "use `isolated: true` (nothing can connect in) or the engine's port publishing",
        );
    }
    let dns_servers = f
        .get("dns_servers")
        .map(|n| {
            d.parsed(
                n,
                &f.path("dns_servers"),
                "write an IP address such as 10.0.0.53",
                |s| s.trim().parse::<IpAddr>(),
            )
        })
        .unwrap_or_default();
    if let (Mode::AllowList, true, false, Some(n)) = (
        mode,
        allowed_domains.is_empty(),
        dns_servers.is_empty(),
        f.get("dns_servers"),
    ) {
        d.warn(
            n.pos,
            &f.path("dns_servers"),
            "in allow-list mode with no `allowed_domains`, Purple's resolver answers no name at all",
            "list the names the agent may resolve in `allowed_domains`",
        );
    }
    let isolated = opt_bool(d, f, "isolated", false);
    let namespace = f
        .get("namespace")
        .and_then(|n| {
            keyword(
                d,
                n,
                &f.path("namespace"),
                &[
                    ("private", NetNamespace::Private),
                    ("host", NetNamespace::Host),
                ],
            )
        })
        .unwrap_or_default();
    if let (NetNamespace::Host, Some(n)) = (namespace, f.get("namespace")) {
        if isolated {
            d.error(
                n.pos,
                &f.path("namespace"),
                "`namespace: host` shares the caller's network, `isolated: true` asks for none",
                "remove one of them",
            );
        } else {
            d.warn(
                n.pos,
                &f.path("namespace"),
                "the sandbox shares the caller's network namespace: its interfaces, routes and sockets are visible, loopback is judged by the rules and abstract unix sockets are scoped, but nothing else about the namespace is private",
                "leave `namespace` out: the sandbox gets a namespace of its own with user-mode egress",
            );
        }
    }
    Network {
        isolated,
        namespace,
        mode,
        blocked_ips,
        allowed_ips,
        allow_outgoing,
        allow_incoming,
        allowed_domains,
        blocked_domains: domains(d, "blocked_domains"),
        dns_servers,
        allow_metadata: opt_bool(d, f, "allow_metadata", false),
        allow_rebinding: f
            .get("dns_rebinding")
            .and_then(|n| {
                keyword(
                    d,
                    n,
                    &f.path("dns_rebinding"),
                    &[("deny", false), ("allow", true)],
                )
            })
            .unwrap_or(false),
    }
}
