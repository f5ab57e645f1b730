//! The container's egress rules: the `io.purple.network` plan, cloud metadata
//! defaults and domain names, enforced by purple-ebpf and, for names, by
//! Purple's resolver (`crate::dns`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use purple_ebpf::maps::{Config, MAX_RULES, RULE_DNS, RULE_LOOPBACK};
use purple_policy::annotations::NETWORK_ANNOTATION;
use purple_policy::plan::{Action, Cidr, NetworkPlan, PlanError, Rule, SLIRP_GATEWAY};

use crate::dns::{AnswerPolicy, DnsError, DomainRule, Prepared};

#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error("{NETWORK_ANNOTATION} has {n} rules and domains; at most {MAX_RULES} fit")]
    TooManyRules { n: usize },
    #[error("{NETWORK_ANNOTATION} asks for network rules but this host has no cgroup2 hierarchy to attach eBPF programs to (`purple doctor` says what it lacks)")]
    NoCgroup2,
    #[error("cannot enforce network rules: {0} (`purple doctor` checks this host's BPF support)")]
    Ebpf(#[from] purple_ebpf::EbpfError),
    #[error("cannot set up Purple's resolver for the container: {0}")]
    Dns(#[from] DnsError),
    #[error("cannot read the addresses of the caller's network namespace: {0}")]
    HostAddresses(std::io::Error),
}

/// The rules to enforce, numbered by position (rule id = index + 1), and the
/// plan's domains, numbered after them.
#[derive(Debug, Clone)]
pub struct Enforcement {
    pub plan: NetworkPlan,
    pub rules: Vec<Rule>,
    pub domains: Vec<DomainRule>,
    /// Whether the bundle asked for rules itself (else only the default
    /// metadata block applies, which a v1-only host cannot enforce).
    pub requested: bool,
}

/// The name of the rules that keep the caller's own addresses out of reach.
pub const HOST_ADDRESS: &str = "host address";

/// Every address of the calling thread's network namespace (the one the
/// container's traffic leaves from when it shares it or goes through
/// slirp4netns): one host prefix each, the whole prefix on loopback
/// interfaces (127.0.0.0/8 answers on every address). Read with
/// getifaddrs(3), which asks the kernel over netlink.
pub fn caller_addresses() -> Result<Vec<Cidr>, NetworkError> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we free below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(NetworkError::HostAddresses(std::io::Error::last_os_error()));
    }
    let mut out = Vec::new();
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: a node of the list getifaddrs returned, not freed yet.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        // SAFETY: ifa_addr and ifa_netmask are null or point at a sockaddr of
        // the family they say.
        let (Some(addr), mask) = (unsafe { sockaddr_ip(ifa.ifa_addr) }, unsafe {
            sockaddr_ip(ifa.ifa_netmask)
        }) else {
            continue;
        };
        let loopback = ifa.ifa_flags & libc::IFF_LOOPBACK as u32 != 0;
        let cidr = match (loopback, mask) {
            (true, Some(m)) => Cidr::masked(addr, prefix_len(m)),
            _ => Cidr::host(addr),
        };
        if !out.contains(&cidr) {
            out.push(cidr);
        }
    }
    // SAFETY: the list getifaddrs returned, freed once.
    unsafe { libc::freeifaddrs(head) };
    Ok(out)
}

/// The address of an AF_INET or AF_INET6 sockaddr.
///
/// # Safety
/// `sa` is null or points at a sockaddr as large as its family says.
unsafe fn sockaddr_ip(sa: *const libc::sockaddr) -> Option<IpAddr> {
    if sa.is_null() {
        return None;
    }
    match (*sa).sa_family as i32 {
        libc::AF_INET => {
            let sin = &*(sa as *const libc::sockaddr_in);
            Some(IpAddr::from(
                u32::from_be(sin.sin_addr.s_addr).to_be_bytes(),
            ))
        }
        libc::AF_INET6 => {
            let sin6 = &*(sa as *const libc::sockaddr_in6);
            Some(IpAddr::from(sin6.sin6_addr.s6_addr))
        }
        _ => None,
    }
}

fn prefix_len(mask: IpAddr) -> u8 {
    match mask {
        IpAddr::V4(m) => u32::from(m).leading_ones() as u8,
        IpAddr::V6(m) => u128::from(m).leading_ones() as u8,
    }
}

impl Enforcement {
    /// Builds the rule set from a spec's annotations. `shared_netns`: the
    /// container shares the caller's network namespace, whose loopback is
    /// then the host's and judged by the rules. When the container's traffic
    /// leaves from the caller's namespace (shared, or through user-mode
    /// egress), that namespace's addresses are the host: denied unless the
    /// plan has a rule for that exact prefix; so is slirp4netns's gateway.
    pub fn from_annotations(
        a: Option<&HashMap<String, String>>,
        shared_netns: bool,
    ) -> Result<Self, NetworkError> {
        let mut plan = NetworkPlan::from_annotations(a)?;
        plan.judge_loopback |= shared_netns;
        let requested = a.is_some_and(|a| a.contains_key(NETWORK_ANNOTATION));
        let mut rules = plan.effective_rules();
        let mut host = Vec::new();
        if shared_netns || plan.egress.is_some() {
            host = caller_addresses()?;
        }
        if plan.egress.is_some() {
            host.push(Cidr::host(SLIRP_GATEWAY.parse().expect("valid address")));
        }
        for cidr in host {
            if !rules.iter().any(|r| r.cidr == cidr) {
                rules.push(Rule::deny(cidr, HOST_ADDRESS));
            }
        }
        let listed = plan
            .allowed_domains
            .iter()
            .map(|d| (d, Action::Allow))
            .chain(plan.blocked_domains.iter().map(|d| (d, Action::Deny)));
        // The names were checked when the plan was parsed (`Domain`).
        let domains: Vec<DomainRule> = listed
            .enumerate()
            .map(|(i, (pattern, action))| DomainRule {
                pattern: pattern.to_string(),
                action,
                id: (rules.len() + i + 1) as u32,
            })
            .collect();
        let n = rules.len() + domains.len();
        if n > MAX_RULES {
            return Err(NetworkError::TooManyRules { n });
        }
        Ok(Self {
            plan,
            rules,
            domains,
            requested,
        })
    }

    /// Whether the container's DNS goes through Purple's resolver: when the
    /// plan names domains (only the resolver sees names) or DNS servers.
    pub fn needs_resolver(&self) -> bool {
        !self.domains.is_empty() || !self.plan.dns_servers.is_empty()
    }

    /// Sets up the resolver in the network namespace of `pid` (the blocked
    /// init process), when the plan needs one.
    pub fn prepare_resolver(&self, pid: i32) -> Result<Option<Prepared>, NetworkError> {
        if !self.needs_resolver() {
            return Ok(None);
        }
        let fixed: Vec<IpAddr> = self
            .rules
            .iter()
            .filter(|r| r.cidr == Cidr::host(r.cidr.addr))
            .map(|r| r.cidr.addr)
            .collect();
        Ok(Some(Prepared::new(
            pid,
            self.plan.mode,
            self.domains.clone(),
            &self.plan.dns_servers,
            fixed,
            AnswerPolicy::new(&self.rules, self.plan.allow_rebinding, Vec::new()),
        )?))
    }

    /// Attaches the programs to `cgroup2_dir` (None on v1-only hosts) and pins
    /// them under `pin_dir`, DNS sent to the resolver listening on
    /// `dns_port` if given, allowed calls reported too with `record_allowed`;
    /// fails closed when rules were requested.
    pub fn attach(
        &self,
        cgroup2_dir: Option<&Path>,
        pin_dir: &Path,
        dns_port: Option<u16>,
        record_allowed: bool,
    ) -> Result<(), NetworkError> {
        let config = Config::new(
            self.plan.mode,
            dns_port,
            record_allowed,
            self.plan.judge_loopback,
        );
        match cgroup2_dir {
            Some(dir) => Ok(purple_ebpf::attach(dir, pin_dir, config, &self.rules)?),
            None if self.requested => Err(NetworkError::NoCgroup2),
            None => {
                tracing::warn!(
                    "no cgroup2 hierarchy: cloud metadata cannot be blocked on this host"
                );
                Ok(())
            }
        }
    }
}

/// Where a container's BPF links and maps are pinned.
pub fn pin_dir(id: &str) -> PathBuf {
    Path::new(purple_ebpf::PIN_ROOT).join(id)
}

/// Names of the rule ids a container's programs report (from its
/// supervisor plan: the rules, and the resolver's domains).
#[derive(Debug, Clone, Default)]
pub struct RuleBook {
    pub rules: Vec<Rule>,
    pub domains: Vec<DomainRule>,
}

impl RuleBook {
    /// `#3 deny 1.1.1.1/32`, `#7 allowed domain *.example.com`, ...
    pub fn label(&self, id: u32) -> String {
        if id == RULE_DNS {
            return "DNS to a server other than Purple's resolver".into();
        }
        if id == RULE_LOOPBACK {
            return "loopback (always allowed)".into();
        }
        if let Some(r) = id.checked_sub(1).and_then(|i| self.rules.get(i as usize)) {
            let action = match r.action {
                Action::Allow => "allow",
                Action::Deny => "deny",
            };
            return match &r.name {
                Some(name) => format!("#{id} {action} {} ({name})", r.cidr),
                None => format!("#{id} {action} {}", r.cidr),
            };
        }
        match self.domains.iter().find(|d| d.id == id) {
            Some(d) => d.label(),
            None => "default (mode)".to_owned(),
        }
    }
}
