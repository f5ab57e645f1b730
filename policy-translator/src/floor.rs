//! The node's floor: whether what a bundle's author asks for is at least as
//! tight as what the node's operator requires. Every field that can loosen
//! has its rule here; each rule is sound (it never lets a loosening pass)
//! even where it is stricter than it needs to be.
//!
//! The network rules are compared as the BPF judge decides them: the judge
//! is constant over the regions the two plans' prefixes cut the address
//! space into (the most specific prefix containing an address depends only
//! on the longest prefix of either plan containing it), and over the port
//! intervals their ranges cut. One address per region and one port per
//! interval decide the whole comparison.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde_json::Value;

use crate::domain::Domain;
use crate::plan::{Action, Cidr, Mode, NetworkPlan, Protocol, Rule, REBINDING_CIDRS};
use crate::schema::Policy;
use crate::supervision::{AlertRecords, AuditPlan, SessionPlan};
use crate::translate;

/// The first way a candidate is looser than the floor, in words.
pub type Looser = String;

fn contains(outer: &Cidr, inner: &Cidr) -> bool {
    outer.addr.is_ipv4() == inner.addr.is_ipv4()
        && outer.prefix <= inner.prefix
        && Cidr::masked(inner.addr, outer.prefix).addr == outer.addr
}

fn holds(c: &Cidr, addr: IpAddr) -> bool {
    contains(c, &Cidr::host(addr))
}

/// One plan as the judge sees it: its effective rules, the last rule of a
/// prefix winning (the loader writes one trie entry per prefix, in order).
struct Judge<'p> {
    plan: &'p NetworkPlan,
    rules: Vec<Rule>,
}

/// What a connection is: a protocol with a port, or port-less (ICMP, raw).
#[derive(Clone, Copy, Debug)]
enum Probe {
    Port(Protocol, u16),
    Portless,
}

impl std::fmt::Display for Probe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Probe::Port(Protocol::Udp, p) => write!(f, "udp port {p}"),
            Probe::Port(_, p) => write!(f, "tcp port {p}"),
            Probe::Portless => f.write_str("port-less traffic (ICMP)"),
        }
    }
}

impl<'p> Judge<'p> {
    fn new(plan: &'p NetworkPlan) -> Self {
        let mut rules: Vec<Rule> = Vec::new();
        for r in plan.effective_rules() {
            rules.retain(|x| x.cidr != r.cidr);
            rules.push(r);
        }
        Self { plan, rules }
    }

    /// The most specific rule holding `addr`.
    fn rule(&self, addr: IpAddr) -> Option<&Rule> {
        self.rules
            .iter()
            .filter(|r| holds(&r.cidr, addr))
            .max_by_key(|r| r.cidr.prefix)
    }

    /// judge.h's purple_judge, for a destination whose rule is `rule`.
    fn allows(&self, rule: Option<&Rule>, probe: Probe) -> bool {
        if let Some(r) = rule {
            let proto_ok = match probe {
                Probe::Port(p, _) => r.protocol == Protocol::Any || r.protocol == p,
                Probe::Portless => r.protocol == Protocol::Any,
            };
            let ports_ok = r.ports.is_empty()
                || match probe {
                    Probe::Portless => r.action == Action::Deny,
                    Probe::Port(_, port) => {
                        r.ports.iter().any(|x| x.first <= port && port <= x.last)
                    }
                };
            if proto_ok && ports_ok {
                return r.action == Action::Allow;
            }
        }
        self.plan.mode == Mode::DenyList
    }

    fn denied_any_port(&self, addr: IpAddr) -> bool {
        self.rules
            .iter()
            .any(|r| r.action == Action::Deny && holds(&r.cidr, addr))
    }

    fn allow_covered(&self, addr: IpAddr) -> bool {
        self.rules
            .iter()
            .any(|r| r.action == Action::Allow && holds(&r.cidr, addr))
    }

    /// Whether an answer for an allowed name could make `addr` reachable (on
    /// every port: learned entries have none). `generous` models the plan
    /// as wide as it could be (any allow rule exempts from the rebinding
    /// check), else as narrow (none does): the candidate is judged wide,
    /// the floor narrow.
    fn learnable(&self, addr: IpAddr, generous: bool) -> bool {
        if self.plan.allowed_domains.is_empty() || self.denied_any_port(addr) {
            return false;
        }
        let rebinding = REBINDING_CIDRS
            .iter()
            .any(|c| holds(&c.parse().expect("valid"), addr));
        self.plan.allow_rebinding || !rebinding || (generous && self.allow_covered(addr))
    }
}

/// An address of `region` outside every prefix of `inner` (more specific
/// ones), or None when they cover it.
fn free_point(region: Cidr, inner: &[Cidr]) -> Option<IpAddr> {
    let inside: Vec<Cidr> = inner
        .iter()
        .filter(|c| c.prefix > region.prefix && contains(&region, c))
        .copied()
        .collect();
    if inside.is_empty() {
        return Some(region.addr);
    }
    let low = Cidr::masked(region.addr, region.prefix + 1);
    let high_addr = match region.addr {
        IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(
            u32::from(a) | (1u32 << (31 - region.prefix)),
        )),
        IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(
            u128::from(a) | (1u128 << (127 - region.prefix)),
        )),
    };
    let high = Cidr::masked(high_addr, region.prefix + 1);
    [low, high].into_iter().find_map(|half| {
        if inside.iter().any(|c| contains(c, &half)) {
            None
        } else {
            free_point(half, &inside)
        }
    })
}

/// Whether domain pattern `inner` names only names `outer` names.
fn domain_within(inner: &Domain, outer: &Domain) -> bool {
    if inner == outer {
        return true;
    }
    match outer.as_str().strip_prefix("*.") {
        Some(base) => inner
            .as_str()
            .strip_prefix("*.")
            .unwrap_or(inner.as_str())
            .ends_with(&format!(".{base}")),
        None => false,
    }
}

fn probes(rules: &[Option<&Rule>]) -> Vec<Probe> {
    let mut ports: BTreeSet<u16> = BTreeSet::from([0]);
    for r in rules.iter().flatten() {
        for p in &r.ports {
            ports.insert(p.first);
            if let Some(next) = p.last.checked_add(1) {
                ports.insert(next);
            }
        }
    }
    let mut out = vec![Probe::Portless];
    for p in ports {
        out.push(Probe::Port(Protocol::Tcp, p));
        out.push(Probe::Port(Protocol::Udp, p));
    }
    out
}

/// Whether `c` lets through nothing `f` would not.
pub fn network(c: &NetworkPlan, f: &NetworkPlan) -> Result<(), Looser> {
    if c.allow_metadata && !f.allow_metadata {
        return Err("allow_metadata: true opens cloud metadata, which the floor denies".into());
    }
    if f.judge_loopback && !c.judge_loopback {
        return Err("judge_loopback: false leaves loopback unjudged; the floor judges it".into());
    }
    if c.egress.is_some() && c.egress != f.egress {
        return Err(
            "egress: the runtime's user-mode egress reaches the network, which the floor (isolated) denies"
                .into(),
        );
    }
    if let Some(missing) = f
        .blocked_domains
        .iter()
        .find(|b| !c.blocked_domains.iter().any(|x| domain_within(b, x)))
    {
        return Err(format!(
            "blocked_domains lacks {missing}, which the floor blocks"
        ));
    }
    let cj = Judge::new(c);
    let fj = Judge::new(f);
    // The candidate's resolver asks its upstreams from outside the
    // container's cgroup, where the BPF programs do not judge: an upstream
    // must be one the floor names, or one the floor lets the agent reach.
    for s in &c.dns_servers {
        let named = f.dns_servers.contains(s);
        let reachable = f.dns_servers.is_empty()
            && [Protocol::Udp, Protocol::Tcp]
                .iter()
                .all(|p| fj.allows(fj.rule(*s), Probe::Port(*p, 53)));
        if !named && !reachable {
            return Err(format!(
                "dns_servers names {s}, which the floor does not let DNS reach"
            ));
        }
    }
    let names_within = c
        .allowed_domains
        .iter()
        .all(|d| f.allowed_domains.iter().any(|x| domain_within(d, x)));
    let rebinding: Vec<Cidr> = REBINDING_CIDRS
        .iter()
        .map(|s| s.parse().expect("valid"))
        .collect();
    let mut cuts: Vec<Cidr> = cj
        .rules
        .iter()
        .chain(&fj.rules)
        .map(|r| r.cidr)
        .chain(rebinding)
        .chain(["0.0.0.0/0", "::/0"].map(|s| s.parse().expect("valid")))
        .collect();
    cuts.sort_by_key(|c| (c.addr, c.prefix));
    cuts.dedup();
    for region in &cuts {
        let Some(addr) = free_point(*region, &cuts) else {
            continue;
        };
        let (cr, fr) = (cj.rule(addr), fj.rule(addr));
        let all = probes(&[cr, fr]);
        let where_ = || match region.prefix {
            0 => format!("{addr} (and what no rule names)"),
            _ => format!("{addr} (in {region})"),
        };
        for p in &all {
            if cj.allows(cr, *p) && !fj.allows(fr, *p) {
                return Err(format!(
                    "it allows {} on {p}, which the floor denies",
                    where_()
                ));
            }
        }
        if cj.learnable(addr, true) {
            let floor_too = all.iter().all(|p| fj.allows(fr, *p))
                || (names_within && fj.learnable(addr, false));
            if !floor_too {
                return Err(format!(
                    "allowed_domains could make {} reachable, which the floor denies",
                    where_()
                ));
            }
        }
    }
    Ok(())
}

/// Whether `c` records and alerts at least what `f` does, where `f` says.
pub fn audit(c: &AuditPlan, f: &AuditPlan) -> Result<(), Looser> {
    if f.record_allowed && !c.record_allowed {
        return Err("it does not record allowed connections; the floor does".into());
    }
    if let Some(path) = f
        .log_path
        .as_ref()
        .filter(|p| c.log_path.as_ref() != Some(*p))
    {
        return Err(format!("log_path is not the floor's {}", path.display()));
    }
    let a = (&c.alerts, &f.alerts);
    let lost = (!a.1.command.is_empty() && a.0.command != a.1.command)
        || (a.1.unix_socket.is_some() && a.0.unix_socket != a.1.unix_socket)
        || (a.1.http.is_some() && a.0.http != a.1.http)
        || (a.1.syslog.is_some() && a.0.syslog != a.1.syslog);
    if lost {
        return Err("it drops an alert target of the floor".into());
    }
    if a.1.records == AlertRecords::All && a.0.records != AlertRecords::All {
        return Err(
            "it sends only violations to the alert targets; the floor sends every record".into(),
        );
    }
    if a.0.format != a.1.format && !a.1.is_empty() {
        return Err(format!(
            "its alerts are in the {:?} format, not the floor's {:?}",
            a.0.format, a.1.format
        ));
    }
    Ok(())
}

fn at_most(c: Option<u64>, f: Option<u64>, field: &str) -> Result<(), Looser> {
    match (c, f) {
        (_, None) => Ok(()),
        (Some(c), Some(f)) if c <= f => Ok(()),
        (Some(c), Some(f)) => Err(format!("{field} {c} is above the floor's {f}")),
        (None, Some(f)) => Err(format!("{field} is unlimited; the floor's is {f}")),
    }
}

/// Whether `c`'s budgets end a session no later than `f`'s.
pub fn session(c: &SessionPlan, f: &SessionPlan) -> Result<(), Looser> {
    at_most(c.timeout_seconds, f.timeout_seconds, "timeout_seconds")?;
    at_most(c.cpu_seconds, f.cpu_seconds, "cpu_seconds")?;
    if f.timeout_seconds.is_some() || f.cpu_seconds.is_some() {
        at_most(
            Some(c.grace_seconds),
            Some(f.grace_seconds),
            "grace_seconds",
        )?;
    }
    for limit in &f.output_limits {
        let own = c.output_limits.iter().find(|l| l.path == limit.path);
        at_most(
            own.map(|l| l.max_bytes),
            Some(limit.max_bytes),
            &format!("output_limits of {}", limit.path),
        )?;
    }
    Ok(())
}

/// How one system call fares under a seccomp profile (OCI JSON).
#[derive(Debug, PartialEq)]
enum Call<'a> {
    Denied,
    /// Decided by argument conditions: these rules.
    Conditional(Vec<&'a Value>),
    Allowed,
}

fn permits(action: &Value) -> bool {
    // SCMP_ACT_LOG lets the call run: it only logs.
    matches!(action.as_str(), Some("SCMP_ACT_ALLOW" | "SCMP_ACT_LOG"))
}

fn call<'a>(seccomp: &'a Value, name: &str) -> Call<'a> {
    let rules: Vec<&Value> = seccomp["syscalls"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| {
            r["names"]
                .as_array()
                .is_some_and(|n| n.iter().any(|n| n == name))
        })
        .collect();
    let conditional = |r: &&Value| {
        r.get("args")
            .is_some_and(|a| a.as_array().is_some_and(|a| !a.is_empty()))
    };
    if rules
        .iter()
        .any(|r| permits(&r["action"]) && !conditional(r))
    {
        return Call::Allowed;
    }
    let cond: Vec<&Value> = rules.iter().copied().filter(conditional).collect();
    if !cond.is_empty() {
        return Call::Conditional(cond);
    }
    if rules.iter().any(|r| !permits(&r["action"])) || !permits(&seccomp["defaultAction"]) {
        Call::Denied
    } else {
        Call::Allowed
    }
}

fn no_wider(c: &Call, f: &Call) -> bool {
    match (c, f) {
        (Call::Denied, _) | (_, Call::Allowed) => true,
        (Call::Conditional(a), Call::Conditional(b)) => a == b,
        _ => false,
    }
}

/// Whether filter `c` lets no call run that `f` stops.
fn seccomp(c: Option<&Value>, f: Option<&Value>) -> Result<(), Looser> {
    let Some(f) = f else { return Ok(()) };
    let Some(c) = c else {
        return Err("it has no seccomp filter; the floor filters system calls".into());
    };
    if permits(&c["defaultAction"]) && !permits(&f["defaultAction"]) {
        return Err(
            "its filter allows every call it does not name; the floor's allows only those it names"
                .into(),
        );
    }
    let names: BTreeSet<&str> = [c, f]
        .iter()
        .flat_map(|s| s["syscalls"].as_array().into_iter().flatten())
        .flat_map(|r| r["names"].as_array().into_iter().flatten())
        .filter_map(Value::as_str)
        .collect();
    for name in names {
        if !no_wider(&call(c, name), &call(f, name)) {
            return Err(format!(
                "system call {name} is allowed beyond the floor's filter"
            ));
        }
    }
    Ok(())
}

/// Whether policy `c`, applied to an engine's container, is at least as
/// tight as `f` in every part the runtime takes from it: plans, system
/// calls, capabilities, limits and the filesystem.
pub fn policy(c: &Policy, f: &Policy) -> Result<(), Looser> {
    let plan = |p: &Policy| translate::network_plan(&p.network);
    network(&plan(c), &plan(f)).map_err(|e| format!("network: {e}"))?;
    audit(
        &translate::audit_plan(&c.audit),
        &translate::audit_plan(&f.audit),
    )
    .map_err(|e| format!("audit: {e}"))?;
    session(
        &translate::session_plan(&c.resources),
        &translate::session_plan(&f.resources),
    )
    .map_err(|e| format!("resources: {e}"))?;
    let (cl, fl) = (translate::linux(c), translate::linux(f));
    seccomp(cl.get("seccomp"), fl.get("seccomp")).map_err(|e| format!("syscalls: {e}"))?;
    let (cc, fc) = (
        translate::effective_capabilities(&c.capabilities),
        translate::effective_capabilities(&f.capabilities),
    );
    if let Some(extra) = cc.iter().find(|x| !fc.contains(x)) {
        return Err(format!("capabilities: {extra} is beyond the floor's set"));
    }
    if f.capabilities.no_new_privileges && !c.capabilities.no_new_privileges {
        return Err("capabilities: no_new_privileges is off; the floor sets it".into());
    }
    let (cr, fr) = (&c.resources, &f.resources);
    at_most(
        cr.memory_limit_bytes,
        fr.memory_limit_bytes,
        "resources: memory_limit_bytes",
    )?;
    at_most(
        cr.swap_limit_bytes,
        fr.swap_limit_bytes,
        "resources: swap_limit_bytes",
    )?;
    at_most(cr.pids_limit, fr.pids_limit, "resources: pids_limit")?;
    at_most(
        cr.block_io_limit,
        fr.block_io_limit,
        "resources: block_io_limit",
    )?;
    match (cr.cpu_shares, fr.cpu_shares) {
        (_, None) => {}
        (Some(a), Some(b)) if a <= b => {}
        (a, Some(b)) => {
            return Err(format!(
                "resources: cpu_shares {} is above the floor's {b}",
                a.map_or("unlimited".into(), |a| a.to_string())
            ))
        }
    }
    let (cf, ff) = (&c.filesystem, &f.filesystem);
    if ff.read_only_root && !cf.read_only_root {
        return Err("filesystem: read_only_root is off; the floor's root is read-only".into());
    }
    at_most(
        cf.max_file_size,
        ff.max_file_size,
        "filesystem: max_file_size",
    )?;
    for key in ["maskedPaths", "readonlyPaths"] {
        let has = cl[key].as_array().cloned().unwrap_or_default();
        if let Some(p) = fl[key]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| !has.contains(p))
        {
            return Err(format!(
                "filesystem: {p} is not covered as the floor's {key} cover it"
            ));
        }
    }
    if f.network.isolated && !c.network.isolated {
        return Err("network: isolated is off; the floor isolates the network".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::Context;
    use crate::profiles;
    use serde_json::json;

    fn plan(v: Value) -> NetworkPlan {
        NetworkPlan::from_json(&v.to_string()).unwrap()
    }

    fn looser(c: Value, f: Value) -> String {
        network(&plan(c), &plan(f)).unwrap_err()
    }

    #[test]
    fn the_default_floor_refuses_only_metadata() {
        let floor = NetworkPlan::default();
        let e = network(&plan(json!({"allow_metadata": true})), &floor).unwrap_err();
        assert!(e.contains("allow_metadata"), "{e}");
        // An explicit allow of the exact prefix replaces the default deny.
        let e = looser(
            json!({"rules": [{"cidr": "169.254.169.254/32", "action": "allow"}]}),
            json!({}),
        );
        assert!(e.contains("169.254.169.254"), "{e}");
        let e = looser(
            json!({"rules": [{"cidr": "169.254.169.254/32", "action": "allow", "ports": [80]}]}),
            json!({}),
        );
        // Scoped to port 80, the rule still replaced the default deny: every
        // other port and ICMP fall to the mode's default, allow.
        assert!(e.contains("169.254.169.254"), "{e}");
        for fine in [
            json!({}),
            json!({"mode": "allow-list", "rules": [{"cidr": "10.0.0.0/8", "action": "allow"}]}),
            json!({"rules": [{"cidr": "1.1.1.1", "action": "deny"}]}),
            json!({"mode": "allow-list", "allowed_domains": ["api.example.com"]}),
            json!({"dns_servers": ["1.1.1.1"]}),
        ] {
            network(&plan(fine.clone()), &floor).unwrap_or_else(|e| panic!("{fine}: {e}"));
        }
        let e = looser(json!({"dns_servers": ["169.254.169.254"]}), json!({}));
        assert!(e.contains("dns_servers"), "{e}");
    }

    #[test]
    fn under_an_allow_list_only_narrower_rules_pass() {
        let floor = json!({"mode": "allow-list", "rules": [
            {"cidr": "10.0.0.0/8", "action": "allow"},
            {"cidr": "10.9.0.0/16", "action": "deny"}
        ]});
        network(
            &plan(json!({"mode": "allow-list", "rules": [{"cidr": "10.1.0.0/16", "action": "allow"}]})),
            &plan(floor.clone()),
        )
        .unwrap();
        network(
            &plan(json!({"mode": "allow-list", "rules": [{"cidr": "10.1.0.0/16", "action": "allow", "ports": [443], "protocol": "tcp"}]})),
            &plan(floor.clone()),
        )
        .unwrap();
        let e = looser(json!({"mode": "deny-list"}), floor.clone());
        assert!(e.contains("floor denies"), "{e}");
        // The floor's deny inside its allow must survive a broader allow.
        let e = looser(
            json!({"mode": "allow-list", "rules": [{"cidr": "10.0.0.0/8", "action": "allow"}]}),
            floor.clone(),
        );
        assert!(e.contains("10.9.0.0"), "{e}");
        let e = looser(
            json!({"mode": "allow-list", "rules": [{"cidr": "11.0.0.0/8", "action": "allow"}]}),
            floor.clone(),
        );
        assert!(e.contains("11.0.0.0"), "{e}");
        // Names: within the floor's, and only where the floor's denies hold.
        let f = json!({"mode": "allow-list", "allowed_domains": ["*.example.com"],
                       "rules": [{"cidr": "203.0.113.0/24", "action": "deny"}]});
        network(
            &plan(
                json!({"mode": "allow-list", "allowed_domains": ["api.example.com"],
                         "rules": [{"cidr": "203.0.113.0/24", "action": "deny"}]}),
            ),
            &plan(f.clone()),
        )
        .unwrap();
        let e = looser(
            json!({"mode": "allow-list", "allowed_domains": ["api.example.com"]}),
            f.clone(),
        );
        assert!(
            e.contains("allowed_domains") && e.contains("203.0.113"),
            "{e}"
        );
        let e = looser(
            json!({"mode": "allow-list", "allowed_domains": ["api.other.org"]}),
            f,
        );
        assert!(e.contains("allowed_domains"), "{e}");
    }

    #[test]
    fn ports_and_flags_are_compared() {
        let floor = json!({"rules": [{"cidr": "0.0.0.0/0", "action": "deny", "ports": ["0-442", "444-65535"]}]});
        let e = looser(json!({}), floor.clone());
        assert!(e.contains("floor denies"), "{e}");
        let e = looser(
            json!({"rules": [{"cidr": "0.0.0.0/0", "action": "deny", "ports": ["0-442", "445-65535"]}]}),
            floor.clone(),
        );
        assert!(e.contains("tcp port 444"), "{e}");
        network(&plan(floor.clone()), &plan(floor.clone())).unwrap();
        // Rebinding answers only matter where the floor does not allow the
        // ranges anyway (the default floor allows them).
        network(
            &plan(json!({"allow_rebinding": true, "allowed_domains": ["a.example.com"]})),
            &NetworkPlan::default(),
        )
        .unwrap();
        let names = json!({"mode": "allow-list", "allowed_domains": ["*.example.com"]});
        let mut rebinding = names.clone();
        rebinding["allow_rebinding"] = json!(true);
        let e = looser(rebinding, names);
        assert!(e.contains("allowed_domains could make"), "{e}");
        assert!(looser(json!({}), json!({"judge_loopback": true})).contains("judge_loopback"));
        assert!(looser(json!({"egress": "slirp4netns"}), json!({})).contains("egress"));
        let e = looser(
            json!({}),
            json!({"blocked_domains": ["*.evil.example.org"]}),
        );
        assert!(e.contains("*.evil.example.org"), "{e}");
        network(
            &plan(json!({"blocked_domains": ["*.example.org"]})),
            &plan(json!({"blocked_domains": ["*.evil.example.org"]})),
        )
        .unwrap();
    }

    #[test]
    fn a_profile_is_compared_part_by_part() {
        let ctx = Context {
            base: "/".into(),
            host_paths: false,
        };
        let p = |n: &str| {
            profiles::resolve_for_annotation(n, std::path::Path::new("/nonexistent"), &ctx)
                .unwrap()
                .policy
        };
        for (name, _) in profiles::BUILT_IN {
            policy(&p(name), &p(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        let e = policy(&p("development"), &p("production-secure")).unwrap_err();
        assert!(!e.is_empty());
    }

    #[test]
    fn seccomp_calls_are_compared_one_by_one() {
        let deny_list = json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["mount", "ptrace"], "action": "SCMP_ACT_ERRNO"}]});
        let fewer = json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["mount"], "action": "SCMP_ACT_ERRNO"}]});
        let logged = json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["mount", "ptrace"], "action": "SCMP_ACT_LOG"}]});
        let more = json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["mount", "ptrace", "bpf"], "action": "SCMP_ACT_KILL"}]});
        assert!(seccomp(Some(&fewer), Some(&deny_list))
            .unwrap_err()
            .contains("ptrace"));
        assert!(seccomp(Some(&logged), Some(&deny_list)).is_err());
        assert!(seccomp(None, Some(&deny_list)).is_err());
        seccomp(Some(&more), Some(&deny_list)).unwrap();
        let allow_list = json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
            {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"}]});
        let wider = json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
            {"names": ["read", "write", "mount"], "action": "SCMP_ACT_ALLOW"}]});
        assert!(seccomp(Some(&wider), Some(&allow_list))
            .unwrap_err()
            .contains("mount"));
        assert!(seccomp(Some(&more), Some(&allow_list)).is_err());
    }

    #[test]
    fn budgets_and_records_only_shrink() {
        let f = SessionPlan {
            timeout_seconds: Some(60),
            ..Default::default()
        };
        session(
            &SessionPlan {
                timeout_seconds: Some(30),
                ..Default::default()
            },
            &f,
        )
        .unwrap();
        assert!(session(&SessionPlan::default(), &f)
            .unwrap_err()
            .contains("unlimited"));
        assert!(session(
            &SessionPlan {
                timeout_seconds: Some(30),
                grace_seconds: 600,
                ..Default::default()
            },
            &f
        )
        .is_err());
        let rec = AuditPlan {
            record_allowed: true,
            ..Default::default()
        };
        assert!(audit(&AuditPlan::default(), &rec).is_err());
        audit(&rec, &AuditPlan::default()).unwrap();
    }

    #[test]
    fn free_points_avoid_inner_prefixes() {
        let c = |s: &str| s.parse::<Cidr>().unwrap();
        let p = free_point(c("10.0.0.0/8"), &[c("10.0.0.0/9")]).unwrap();
        assert!(holds(&c("10.128.0.0/9"), p));
        assert_eq!(
            free_point(c("10.0.0.0/8"), &[c("10.0.0.0/9"), c("10.128.0.0/9")]),
            None
        );
    }
}
