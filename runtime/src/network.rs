//! The container's egress rules: the `io.purple.network` plan, cloud metadata
//! defaults and domain names, enforced by purple-ebpf and, for names, by
//! Purple's resolver (`crate::dns`).

use std::collections::HashMap;
use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use purple_ebpf::maps::{Config, MAX_RULES, RULE_DNS, RULE_LOOPBACK};
use purple_policy::plan::{Action, Cidr, NetworkPlan, PlanError, Rule, NETWORK_ANNOTATION};

use crate::dns::{self, DnsConfig, DnsError, DomainRule, Prepared};

#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error("{NETWORK_ANNOTATION} has {n} rules and domains; at most {MAX_RULES} fit")]
    TooManyRules { n: usize },
    #[error("invalid domain {0:?}: use a name (api.example.com) or a wildcard (*.example.com)")]
    Domain(String),
    #[error("{NETWORK_ANNOTATION} asks for network rules but this host has no cgroup2 hierarchy to attach eBPF programs to")]
    NoCgroup2,
    #[error("cannot enforce network rules: {0}")]
    Ebpf(#[from] purple_ebpf::EbpfError),
    #[error("cannot set up Purple's resolver for the container: {0}")]
    Dns(#[from] DnsError),
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

/// A name or `*.` wildcard of hostname characters, at most 253 long.
fn valid_domain(pattern: &str) -> bool {
    let name = pattern.strip_prefix("*.").unwrap_or(pattern);
    let name = name.strip_suffix('.').unwrap_or(name);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

impl Enforcement {
    /// Builds the rule set from a spec's annotations.
    pub fn from_annotations(a: Option<&HashMap<String, String>>) -> Result<Self, NetworkError> {
        let plan = NetworkPlan::from_annotations(a)?;
        let requested = a.is_some_and(|a| a.contains_key(NETWORK_ANNOTATION));
        let rules = plan.effective_rules();
        let listed = plan
            .allowed_domains
            .iter()
            .map(|d| (d, Action::Allow))
            .chain(plan.blocked_domains.iter().map(|d| (d, Action::Deny)));
        let domains = listed
            .enumerate()
            .map(|(i, (pattern, action))| {
                if !valid_domain(pattern) {
                    return Err(NetworkError::Domain(pattern.clone()));
                }
                Ok(DomainRule {
                    pattern: pattern.clone(),
                    action,
                    id: (rules.len() + i + 1) as u32,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
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
        let config = Config::new(self.plan.mode, dns_port, record_allowed);
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

/// The effective rule list in a container's record directory.
pub const RULES_FILE: &str = "rules.json";

/// Names of the rule ids a container's programs report, from the files its
/// record directory holds (`rules.json`, and `dns.json` with a resolver).
#[derive(Debug, Clone, Default)]
pub struct RuleBook {
    pub rules: Vec<Rule>,
    pub domains: Vec<DomainRule>,
}

impl RuleBook {
    /// Reads `rules` and the `dns.json` next to it; what is missing is empty.
    pub fn load(rules: &Path) -> Self {
        let read = |p: &Path| fs::read(p).ok();
        let dns = rules
            .parent()
            .map(|d| d.join(dns::CONFIG_FILE))
            .and_then(|p| DnsConfig::load(&p).ok());
        Self {
            rules: read(rules)
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or_default(),
            domains: dns.map(|d| d.domains).unwrap_or_default(),
        }
    }

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
            return format!("#{id} {action} {}", r.cidr);
        }
        match self.domains.iter().find(|d| d.id == id) {
            Some(d) => d.label(),
            None => "default (mode)".to_owned(),
        }
    }
}
