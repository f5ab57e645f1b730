//! Policy → OCI bundle: a `config.json` any runtime can run, plus the
//! `io.purple.*` annotations Purple's runtime enforces beyond OCI. The output
//! depends only on the policy, the command and the host's architecture and
//! disks (block I/O limits), so it is compared byte for byte in golden tests.

use std::fs;
use std::net::IpAddr;
use std::path::Path;

use oci_spec::runtime::{LinuxSeccompArg, LinuxSeccompOperator as Op, Spec};
use serde_json::{json, Value};

use crate::annotations::{
    AUDIT_ANNOTATION, LLM_ANNOTATION, NETWORK_ANNOTATION, POLICY_ANNOTATION,
    POLICY_NAME_ANNOTATION, SESSION_ANNOTATION,
};
use crate::domain::Domain;
use crate::plan::{Action, Cidr, Egress, Mode, NetworkPlan, PortRange, Protocol, Rule, SLIRP_DNS};
use crate::schema::*;
use crate::supervision::{AuditPlan, OutputLimit, SessionPlan};
use crate::{argset, families};

/// PATH inside the sandbox unless the policy's environment sets one.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Docker's and runc's default capability set: what `default_drop: false` keeps.
pub const DEFAULT_CAPABILITIES: &[&str] = &[
    "CAP_AUDIT_WRITE",
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_MKNOD",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_RAW",
    "CAP_SETFCAP",
    "CAP_SETGID",
    "CAP_SETPCAP",
    "CAP_SETUID",
    "CAP_SYS_CHROOT",
];

#[derive(Debug, thiserror::Error)]
pub enum TranslateError {
    #[error("the command is empty: give the program to run after `--`")]
    NoCommand,
    #[error("the generated config.json is not a valid OCI spec: {0}")]
    Spec(String),
}

/// What to run under the policy.
#[derive(Debug, Clone)]
pub struct Process {
    pub args: Vec<String>,
    /// Extra `KEY=VALUE` entries; they override the policy's environment.
    pub env: Vec<String>,
    pub terminal: bool,
}

fn seccomp_action(a: DenyAction) -> &'static str {
    match a {
        DenyAction::Errno => "SCMP_ACT_ERRNO",
        DenyAction::Kill => "SCMP_ACT_KILL_PROCESS",
        DenyAction::Log => "SCMP_ACT_LOG",
    }
}

fn rule_action(r: RuleAction, deny: DenyAction) -> &'static str {
    match r {
        RuleAction::Allow => "SCMP_ACT_ALLOW",
        RuleAction::Deny => seccomp_action(deny),
        RuleAction::Errno => seccomp_action(DenyAction::Errno),
        RuleAction::Kill => seccomp_action(DenyAction::Kill),
        RuleAction::Log => seccomp_action(DenyAction::Log),
    }
}

/// The seccomp default action of a section (what unlisted calls get).
pub fn default_action(s: &Syscalls) -> &'static str {
    if s.default_deny {
        seccomp_action(s.action)
    } else {
        "SCMP_ACT_ALLOW"
    }
}

/// Architectures a filter must name so that 32-bit entry points cannot bypass it.
fn architectures() -> Vec<&'static str> {
    match std::env::consts::ARCH {
        "x86_64" => vec!["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "aarch64" => vec!["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
        "riscv64" => vec!["SCMP_ARCH_RISCV64"],
        "s390x" => vec!["SCMP_ARCH_S390X", "SCMP_ARCH_S390"],
        "powerpc64" => vec!["SCMP_ARCH_PPC64"],
        _ => vec![],
    }
}

fn with_errno(mut rule: Value, action: &str) -> Value {
    if action == "SCMP_ACT_ERRNO" {
        rule["errnoRet"] = json!(libc_eperm());
    }
    rule
}

const fn libc_eperm() -> u32 {
    1
}

/// Socket families every policy that filters system calls allows: local,
/// IPv4 and IPv6 sockets, and netlink's routing protocol (libc asks it for
/// the host's addresses in getaddrinfo and if_nameindex). Anything else
/// (vsock to the hypervisor, packet sockets, the kernel's crypto API, ...)
/// only when the policy names it in `allow_socket_families`.
const SOCKET_FAMILIES: &[u64] = &[1, 2, 10];
const AF_NETLINK: u64 = 16;
const NETLINK_ROUTE: u64 = 0;

/// The comparisons of one rule as OCI seccomp arguments.
fn oci_args(conds: &[LinuxSeccompArg]) -> Value {
    serde_json::to_value(conds).expect("arguments serialise")
}

fn oci_rule(name: &str, action: &str, conds: &[LinuxSeccompArg]) -> Value {
    let mut rule = json!({ "names": [name], "action": action });
    if !conds.is_empty() {
        rule["args"] = oci_args(conds);
    }
    with_errno(rule, action)
}

/// One condition as the alternatives it stands for (OCI meaning:
/// `masked_eq` is `(arg & value) == valueTwo`): one, except `masked_neq`,
/// which seccomp has not and which holds when any bit of the mask differs.
fn alternatives(c: &Condition) -> Vec<Vec<LinuxSeccompArg>> {
    let i = usize::from(c.arg);
    let one = |op| vec![vec![argset::cmp(i, op, c.value, None)]];
    match c.op {
        CmpOp::Eq => one(Op::ScmpCmpEq),
        CmpOp::Neq => one(Op::ScmpCmpNe),
        CmpOp::Lt => one(Op::ScmpCmpLt),
        CmpOp::Lte => one(Op::ScmpCmpLe),
        CmpOp::Gt => one(Op::ScmpCmpGt),
        CmpOp::Gte => one(Op::ScmpCmpGe),
        CmpOp::MaskedEq | CmpOp::MaskedNeq => {
            let eq = argset::cmp(
                i,
                Op::ScmpCmpMaskedEq,
                c.mask.unwrap_or(u64::MAX),
                Some(c.value),
            );
            if c.op == CmpOp::MaskedEq {
                vec![vec![eq]]
            } else {
                argset::negate(&eq)
            }
        }
    }
}

/// An advanced rule's conditions as seccomp rules whose union it is.
fn condition_rules(conds: &[Condition]) -> Vec<Vec<LinuxSeccompArg>> {
    conds.iter().fold(vec![Vec::new()], |acc, c| {
        let alts = alternatives(c);
        acc.iter()
            .flat_map(|base| {
                alts.iter().map(move |alt| {
                    let mut r = base.clone();
                    r.extend(alt.iter().copied());
                    r
                })
            })
            .collect()
    })
}

/// The deny list with every family expanded (`families`), without the calls
/// the policy names elsewhere (its explicit rule decides) or the runtime's
/// start needs (the loader warns), plus io_uring unless allowed.
pub fn denied_calls(s: &Syscalls) -> Vec<String> {
    let explicit =
        |n: &str| s.allow.iter().any(|a| a == n) || s.advanced_rules.iter().any(|r| r.syscall == n);
    let mut out: Vec<String> = Vec::new();
    for name in &s.deny {
        for m in families::members(name) {
            let known = libseccomp::ScmpSyscall::from_name(m).is_ok();
            let skip = m != name && (explicit(m) || crate::handover::starts(m));
            if known && !skip && !out.iter().any(|o| o == m) {
                out.push(m.to_owned());
            }
        }
    }
    if !s.allow_io_uring && !s.default_deny {
        for io in families::IO_URING {
            if !explicit(io) && !out.iter().any(|o| o == io) {
                out.push((*io).to_owned());
            }
        }
    }
    out
}

/// `socket(2)` limited to the families the policy needs (see
/// [`SOCKET_FAMILIES`]), unless the policy writes its own `socket` rules:
/// allow rules under a denying default, else deny rules for the rest.
fn socket_rules(s: &Syscalls, deny: &str) -> Vec<Value> {
    if s.advanced_rules.iter().any(|r| r.syscall == "socket") {
        return Vec::new();
    }
    let mut families: Vec<u64> = SOCKET_FAMILIES.to_vec();
    families.extend(s.allow_socket_families.iter().map(|f| f.number()));
    let all_netlink = families.contains(&AF_NETLINK);
    let route = [
        argset::cmp(0, Op::ScmpCmpEq, AF_NETLINK, None),
        argset::cmp(2, Op::ScmpCmpEq, NETLINK_ROUTE, None),
    ];
    if s.default_deny {
        if !s.allow.iter().any(|a| a == "socket") {
            return Vec::new();
        }
        let mut rules: Vec<Value> = families
            .iter()
            .map(|f| {
                oci_rule(
                    "socket",
                    "SCMP_ACT_ALLOW",
                    &[argset::cmp(0, Op::ScmpCmpEq, *f, None)],
                )
            })
            .collect();
        if !all_netlink {
            rules.push(oci_rule("socket", "SCMP_ACT_ALLOW", &route));
        }
        rules
    } else {
        if s.deny.iter().any(|d| d == "socket") {
            return Vec::new();
        }
        families.push(AF_NETLINK);
        let mut rules: Vec<Value> = argset::outside(0, &families)
            .iter()
            .map(|r| oci_rule("socket", deny, r))
            .collect();
        if !all_netlink {
            let other = [route[0], argset::cmp(2, Op::ScmpCmpNe, NETLINK_ROUTE, None)];
            rules.push(oci_rule("socket", deny, &other));
        }
        rules
    }
}

fn seccomp(s: &Syscalls) -> Option<Value> {
    if s.is_empty() {
        return None;
    }
    let default = default_action(s);
    let deny = seccomp_action(s.action);
    let denied = denied_calls(s);
    let mut rules = Vec::new();
    if s.default_deny {
        // `socket` is allowed per family below.
        let allow: Vec<&String> = s
            .allow
            .iter()
            .filter(|a| *a != "socket" || s.advanced_rules.iter().any(|r| r.syscall == "socket"))
            .collect();
        if !allow.is_empty() {
            rules.push(json!({ "names": allow, "action": "SCMP_ACT_ALLOW" }));
        }
        if !denied.is_empty() && deny != default {
            rules.push(with_errno(json!({ "names": denied, "action": deny }), deny));
        }
    } else if !denied.is_empty() {
        rules.push(with_errno(json!({ "names": denied, "action": deny }), deny));
    }
    rules.extend(socket_rules(s, deny));
    for r in &s.advanced_rules {
        let action = rule_action(r.action, s.action);
        if action == default && !r.conditions.is_empty() {
            // The load step warned: libseccomp refuses a rule equal to the default.
            continue;
        }
        for conds in condition_rules(&r.conditions) {
            rules.push(oci_rule(&r.syscall, action, &conds));
        }
    }
    let mut out = json!({
        "defaultAction": default,
        "architectures": architectures(),
        "syscalls": rules,
    });
    if default == "SCMP_ACT_ERRNO" {
        out["defaultErrnoRet"] = json!(libc_eperm());
    }
    Some(out)
}

/// Every whole disk's `major:minor` (partitions share their disk's queue).
fn whole_disks() -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    if let Ok(entries) = fs::read_dir("/sys/block") {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("loop") || name.starts_with("ram") {
                continue;
            }
            if let Ok(dev) = fs::read_to_string(e.path().join("dev")) {
                if let Some((a, b)) = dev.trim().split_once(':') {
                    if let (Ok(a), Ok(b)) = (a.parse(), b.parse()) {
                        out.push((a, b));
                    }
                }
            }
        }
    }
    out.sort_unstable();
    out
}

fn resources(r: &Resources) -> Value {
    // Only the devices a process needs (libcontainer creates these nodes).
    let dev = |t: &str, major: i64, minor: Option<i64>| {
        let mut d = json!({ "allow": true, "type": t, "major": major, "access": "rwm" });
        if let Some(m) = minor {
            d["minor"] = json!(m);
        }
        d
    };
    let mut out = json!({
        "devices": [
            { "allow": false, "access": "rwm" },
            dev("c", 1, Some(3)), dev("c", 1, Some(5)), dev("c", 1, Some(7)),
            dev("c", 1, Some(8)), dev("c", 1, Some(9)), dev("c", 5, Some(0)),
            dev("c", 5, Some(1)), dev("c", 5, Some(2)), dev("c", 136, None),
        ]
    });
    if let Some(m) = r.memory_limit_bytes {
        out["memory"] = json!({ "limit": m });
        if let Some(s) = r.swap_limit_bytes {
            // OCI's swap is memory plus swap.
            out["memory"]["swap"] = json!(m.saturating_add(s));
        }
    }
    if let Some(c) = r.cpu_shares {
        let limit = crate::units::cpu_limit(c).expect("validated when loaded");
        out["cpu"] = json!({ "quota": limit.quota, "period": limit.period });
    }
    if let Some(p) = r.pids_limit {
        out["pids"] = json!({ "limit": p });
    }
    if let Some(rate) = r.block_io_limit {
        let throttle: Vec<Value> = whole_disks()
            .into_iter()
            .map(|(major, minor)| json!({ "major": major, "minor": minor, "rate": rate }))
            .collect();
        out["blockIO"] = json!({
            "throttleReadBpsDevice": throttle,
            "throttleWriteBpsDevice": throttle,
        });
    }
    out
}

/// The capability set the process gets.
pub fn effective_capabilities(c: &Capabilities) -> Vec<String> {
    let mut caps: Vec<String> = if c.default_drop {
        Vec::new()
    } else {
        DEFAULT_CAPABILITIES.iter().map(|s| s.to_string()).collect()
    };
    for a in &c.add {
        if !caps.contains(a) {
            caps.push(a.clone());
        }
    }
    caps.retain(|x| !c.drop.contains(x));
    caps.sort();
    caps
}

/// The network section as the runtime's enforcement plan.
pub fn network_plan(n: &Network) -> NetworkPlan {
    let rule = |cidr: Cidr, action: Action, ports: Vec<PortRange>| Rule {
        cidr,
        action,
        ports,
        protocol: Protocol::Any,
        name: None,
    };
    let mut rules: Vec<Rule> = Vec::new();
    rules.extend(
        n.blocked_ips
            .iter()
            .map(|c| rule(*c, Action::Deny, Vec::new())),
    );
    rules.extend(
        n.allowed_ips
            .iter()
            .map(|c| rule(*c, Action::Allow, Vec::new())),
    );
    if !n.allow_outgoing.is_empty() {
        let (action, ports) = match n.mode {
            Mode::AllowList => (Action::Allow, n.allow_outgoing.ranges().to_vec()),
            Mode::DenyList => (Action::Deny, n.allow_outgoing.complement().into_vec()),
        };
        for any in ["0.0.0.0/0", "::/0"] {
            let cidr: Cidr = any.parse().expect("valid");
            if !rules.iter().any(|r| r.cidr == cidr) {
                rules.push(rule(cidr, action, ports.clone()));
            }
        }
    }
    NetworkPlan {
        mode: n.mode,
        rules,
        allow_metadata: n.allow_metadata,
        allow_rebinding: n.allow_rebinding,
        allowed_domains: n.allowed_domains.clone(),
        blocked_domains: n.blocked_domains.clone(),
        dns_servers: n.dns_servers.clone(),
        egress: None,
        judge_loopback: n.namespace == NetNamespace::Host,
    }
}

/// The policy's network plan with direct access to the LLM providers'
/// endpoints denied: the gateway is the only way there, so a key the agent
/// brings cannot be used around it (in allow-list mode too, where the
/// policy may have allowed the provider's name).
pub fn network_plan_of(p: &Policy) -> NetworkPlan {
    let mut plan = network_plan(&p.network);
    for provider in p.ai.iter().flat_map(|ai| &ai.providers) {
        let e = &provider.endpoint;
        match e.host.parse::<IpAddr>() {
            Ok(addr) => plan.rules.push(Rule {
                cidr: Cidr::host(addr),
                action: Action::Deny,
                ports: vec![PortRange {
                    first: e.port,
                    last: e.port,
                }],
                protocol: Protocol::Any,
                name: Some(LLM_PROVIDER_RULE.to_owned()),
            }),
            Err(_) => {
                let name: Domain = e.host.parse().expect("endpoint hosts are domain names");
                if !plan.blocked_domains.contains(&name) {
                    plan.blocked_domains.push(name);
                }
            }
        }
    }
    plan
}

/// The name of the rules that keep the sandbox off the providers' endpoints.
pub const LLM_PROVIDER_RULE: &str = "llm provider";

/// Whether the sandbox gets a network namespace of its own with the
/// runtime's user-mode egress (`isolated: false`, the namespace not shared).
fn user_mode_egress(n: &Network) -> bool {
    !n.isolated && n.namespace == NetNamespace::Private
}

/// The nameservers the sandbox's resolv.conf names, if Purple writes one:
/// the policy's, else slirp4netns's forwarder behind user-mode egress (the
/// caller's own resolvers may sit on its loopback, which the sandbox cannot
/// reach).
fn sandbox_nameservers(n: &Network) -> Vec<IpAddr> {
    if !n.dns_servers.is_empty() {
        return n.dns_servers.clone();
    }
    if user_mode_egress(n) {
        return vec![SLIRP_DNS.parse().expect("valid address")];
    }
    Vec::new()
}

pub fn audit_plan(a: &Audit) -> AuditPlan {
    AuditPlan {
        log_path: a.log_path.clone(),
        record_allowed: a.record.iter().any(|r| r == "network.allowed"),
        trace_exec: a.record.iter().any(|r| r == "process.exec"),
        trace_syscalls: a.trace_syscalls,
        alerts: a.alerts.clone(),
        on_failure: a.on_failure,
        max_size: a.max_size,
    }
}

pub fn session_plan(r: &Resources) -> SessionPlan {
    SessionPlan {
        timeout_seconds: r.session_timeout_seconds,
        cpu_seconds: r.cpu_time_limit_seconds,
        ..SessionPlan::default()
    }
}

/// Mounts of the host's sysfs that a recursive bind would show the sandbox.
const HOST_SYSFS_MASKED: &[&str] = &[
    "/sys/fs/bpf",
    "/sys/fs/fuse/connections",
    "/sys/fs/pstore",
    "/sys/kernel/config",
    "/sys/kernel/debug",
    "/sys/kernel/security",
    "/sys/kernel/tracing",
];

/// A user namespace may mount sysfs only with a network namespace of its own;
/// without one the sandbox gets the host's /sys bound read-only, as runc does.
fn host_sysfs(p: &Policy) -> bool {
    p.user.namespace.is_some() && p.network.namespace == NetNamespace::Host
}

fn mounts(p: &Policy) -> Vec<Value> {
    let shm = p.filesystem.scratch_size.min(64 << 20);
    // The tty group owns new ptys; a namespace too small to hold it leaves
    // them to the opener's group.
    let tty_gid = p.user.namespace.is_none_or(|m| m.host(5).is_some());
    let mut devpts = vec![
        "nosuid",
        "noexec",
        "newinstance",
        "ptmxmode=0666",
        "mode=0620",
    ];
    if tty_gid {
        devpts.push("gid=5");
    }
    let sys = if host_sysfs(p) {
        json!({"destination": "/sys", "type": "bind", "source": "/sys", "options": ["rbind", "nosuid", "noexec", "nodev", "rro"]})
    } else {
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]})
    };
    let mut m = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": devpts}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", format!("size={shm}")]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]}),
        sys,
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}),
    ];
    let bind = |b: &Bind, ro: bool| {
        let mut opts = vec!["bind", "nosuid", "nodev"];
        if ro {
            opts.push("ro");
        }
        json!({"destination": b.sandbox_path, "type": "bind", "source": b.host_path, "options": opts})
    };
    for b in &p.filesystem.immutable_paths {
        if b.optional && !b.host_path.exists() {
            continue;
        }
        m.push(bind(b, true));
    }
    for s in &p.filesystem.scratch_paths {
        m.push(
            json!({"destination": s.path, "type": "tmpfs", "source": "tmpfs",
            "options": ["nosuid", "nodev", "mode=1777", format!("size={}", s.size)]}),
        );
    }
    for b in &p.filesystem.output_paths {
        m.push(bind(b, false));
    }
    if !sandbox_nameservers(&p.network).is_empty() {
        m.push(
            json!({"destination": "/etc/resolv.conf", "type": "bind", "source": "resolv.conf",
            "options": ["bind", "nosuid", "nodev", "noexec", "ro"]}),
        );
    }
    m
}

/// The environment: PATH and HOME, the policy's, then the caller's.
fn environment(p: &Policy, extra: &[String]) -> Vec<String> {
    let mut env = std::collections::BTreeMap::new();
    env.insert("PATH".to_owned(), DEFAULT_PATH.to_owned());
    env.insert("HOME".to_owned(), "/".to_owned());
    for (k, v) in &p.environment {
        env.insert(k.clone(), v.clone());
    }
    for kv in extra {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        env.insert(k.to_owned(), v.to_owned());
    }
    env.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
}

/// The spec's `linux` section: namespaces, resources, masked and read-only
/// paths, seccomp, id maps. Also what [`crate::merge`] tightens an engine's
/// spec with.
pub(crate) fn linux(p: &Policy) -> Value {
    let mut namespaces = vec![
        json!({"type": "user"}),
        json!({"type": "pid"}),
        json!({"type": "mount"}),
        json!({"type": "ipc"}),
        json!({"type": "uts"}),
        json!({"type": "cgroup"}),
    ];
    if p.user.namespace.is_none() {
        namespaces.remove(0);
    }
    if p.network.namespace == NetNamespace::Private {
        namespaces.push(json!({"type": "network"}));
    }
    let mut masked = vec![
        "/proc/acpi",
        "/proc/asound",
        "/proc/kcore",
        "/proc/keys",
        "/proc/latency_stats",
        "/proc/timer_list",
        "/proc/timer_stats",
        "/proc/sched_debug",
        "/proc/scsi",
        "/sys/firmware",
        "/sys/devices/virtual/powercap",
    ];
    if host_sysfs(p) {
        masked.extend(HOST_SYSFS_MASKED);
    }
    let mut linux = json!({
        "namespaces": namespaces,
        "resources": resources(&p.resources),
        "maskedPaths": masked,
        "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
    });
    if let Some(s) = seccomp(&p.syscalls) {
        linux["seccomp"] = s;
    }
    if let Some(m) = p.user.namespace {
        let map = json!([{"containerID": 0, "hostID": m.host_id, "size": m.size}]);
        linux["uidMappings"] = map.clone();
        linux["gidMappings"] = map;
    }
    linux
}

/// The `io.purple.*` annotations of a policy: the plans the runtime enforces
/// and the policy itself for people.
pub(crate) fn annotations(p: &Policy) -> Value {
    let mut annotations = json!({
        POLICY_NAME_ANNOTATION: p.name,
        NETWORK_ANNOTATION: NetworkPlan {
            egress: user_mode_egress(&p.network).then_some(Egress::Slirp4netns),
            ..network_plan_of(p)
        }
        .to_json(),
        POLICY_ANNOTATION: serde_json::to_string(p).expect("policies serialise"),
    });
    let audit = audit_plan(&p.audit);
    if audit != AuditPlan::default() {
        annotations[AUDIT_ANNOTATION] = json!(serde_json::to_string(&audit).expect("serialises"));
    }
    let session = SessionPlan {
        output_limits: p
            .filesystem
            .output_paths
            .iter()
            .filter_map(|b| {
                Some(OutputLimit {
                    path: b.sandbox_path.clone(),
                    max_bytes: b.max_size?,
                })
            })
            .collect(),
        ..session_plan(&p.resources)
    };
    if session != SessionPlan::default() {
        annotations[SESSION_ANNOTATION] =
            json!(serde_json::to_string(&session).expect("serialises"));
    }
    if let Some(ai) = &p.ai {
        annotations[LLM_ANNOTATION] = json!(serde_json::to_string(ai).expect("serialises"));
    }
    annotations
}

/// The OCI spec of `policy` running `process` from `rootfs` (relative to the
/// bundle or absolute).
pub fn spec(p: &Policy, process: &Process, rootfs: &Path) -> Result<Spec, TranslateError> {
    if process.args.is_empty() {
        return Err(TranslateError::NoCommand);
    }
    let caps = effective_capabilities(&p.capabilities);
    let linux = linux(p);
    let annotations = annotations(p);
    let spec = json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": process.terminal,
            "user": { "uid": p.user.uid, "gid": p.user.gid, "additionalGids": p.user.additional_gids },
            "args": process.args,
            "env": environment(p, &process.env),
            "cwd": p.filesystem.working_dir,
            "capabilities": { "bounding": caps, "effective": caps, "permitted": caps, "inheritable": caps, "ambient": caps },
            "rlimits": rlimits(&p.filesystem),
            "noNewPrivileges": p.capabilities.no_new_privileges,
        },
        "root": { "path": rootfs, "readonly": p.filesystem.read_only_root },
        "hostname": p.hostname,
        "mounts": mounts(p),
        "linux": linux,
        "annotations": annotations,
    });
    serde_json::from_value(spec).map_err(|e| TranslateError::Spec(e.to_string()))
}

/// The process's rlimits: open files, and the per-file cap if the policy has
/// one (a write past it fails with EFBIG; SIGXFSZ, which would kill the
/// writer, is what the kernel sends first, so the cap stops the process
/// unless it ignores the signal).
pub fn rlimits(fs: &Filesystem) -> Value {
    let mut r = vec![json!({ "type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024 })];
    if let Some(max) = fs.max_file_size {
        r.push(json!({ "type": "RLIMIT_FSIZE", "hard": max, "soft": max }));
    }
    json!(r)
}

/// A spec as stable text: oci-spec keeps annotations in a HashMap and
/// capabilities in HashSets, whose order changes from run to run.
pub fn to_json(spec: &Spec) -> String {
    let mut value = serde_json::to_value(spec).expect("specs serialise");
    if let Some(sets) = value
        .pointer_mut("/process/capabilities")
        .and_then(Value::as_object_mut)
    {
        for set in sets.values_mut().filter_map(Value::as_array_mut) {
            set.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
        }
    }
    serde_json::to_string_pretty(&value).expect("values serialise") + "\n"
}

/// The `resolv.conf` the bundle carries, if Purple names the sandbox's
/// nameservers: written by the runtime's bundle code beside `config.json`.
pub fn resolv_conf(p: &Policy) -> Option<String> {
    let nameservers = sandbox_nameservers(&p.network);
    (!nameservers.is_empty()).then(|| {
        nameservers
            .iter()
            .map(|s| format!("nameserver {s}\n"))
            .collect()
    })
}
