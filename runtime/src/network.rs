//! The container's egress rules: the `io.purple.network` plan, cloud metadata
//! defaults and resolved domain names, enforced by purple-ebpf.

use std::collections::HashMap;
use std::net::ToSocketAddrs;
use std::path::{Path, PathBuf};

use purple_policy::plan::{
    Action, Cidr, NetworkPlan, PlanError, Protocol, Rule, NETWORK_ANNOTATION,
};

#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error("cannot resolve blocked domain {name:?}: {reason}; fix DNS on the host or remove it (an unresolved block would not be enforced)")]
    Resolve { name: String, reason: String },
    #[error("blocked domain {0:?}: wildcard blocks need Purple's DNS proxy, which this version does not have; list the names instead")]
    WildcardBlock(String),
    #[error("{NETWORK_ANNOTATION} asks for network rules but this host has no cgroup2 hierarchy to attach eBPF programs to")]
    NoCgroup2,
    #[error("cannot enforce network rules: {0}")]
    Ebpf(#[from] purple_ebpf::EbpfError),
}

/// The rules to enforce, numbered by position (rule id = index + 1).
#[derive(Debug, Clone)]
pub struct Enforcement {
    pub plan: NetworkPlan,
    pub rules: Vec<Rule>,
    /// Whether the bundle asked for rules itself (else only the default
    /// metadata block applies, which a v1-only host cannot enforce).
    pub requested: bool,
}

fn resolve(name: &str) -> Result<Vec<Cidr>, String> {
    let addrs = (name, 0).to_socket_addrs().map_err(|e| e.to_string())?;
    let mut cidrs: Vec<Cidr> = addrs
        .map(|a| {
            let ip = a.ip();
            Cidr {
                addr: ip,
                prefix: if ip.is_ipv4() { 32 } else { 128 },
            }
        })
        .collect();
    cidrs.sort_by_key(|c| c.to_string());
    cidrs.dedup();
    Ok(cidrs)
}

impl Enforcement {
    /// Builds the rule set from a spec's annotations, resolving domain names
    /// now (create time).
    pub fn from_annotations(a: Option<&HashMap<String, String>>) -> Result<Self, NetworkError> {
        let plan = NetworkPlan::from_annotations(a)?;
        let requested = a.is_some_and(|a| a.contains_key(NETWORK_ANNOTATION));
        let mut rules = plan.effective_rules();
        let domain_rule = |cidr, action| Rule {
            cidr,
            action,
            ports: Vec::new(),
            protocol: Protocol::Any,
        };
        for name in &plan.blocked_domains {
            if name.contains('*') {
                return Err(NetworkError::WildcardBlock(name.clone()));
            }
            let cidrs = resolve(name).map_err(|reason| NetworkError::Resolve {
                name: name.clone(),
                reason,
            })?;
            rules.extend(cidrs.into_iter().map(|c| domain_rule(c, Action::Deny)));
        }
        for name in &plan.allowed_domains {
            // An allow that cannot be resolved (or a wildcard) allows nothing:
            // the safe direction, so only warn.
            match resolve(name) {
                Ok(cidrs) if !name.contains('*') => {
                    rules.extend(cidrs.into_iter().map(|c| domain_rule(c, Action::Allow)))
                }
                Ok(_) | Err(_) => {
                    tracing::warn!("allowed domain {name:?} not resolved; nothing allowed for it")
                }
            }
        }
        Ok(Self {
            plan,
            rules,
            requested,
        })
    }

    /// Attaches the programs to `cgroup2_dir` (None on v1-only hosts) and pins
    /// them under `pin_dir`; fails closed when rules were requested.
    pub fn attach(&self, cgroup2_dir: Option<&Path>, pin_dir: &Path) -> Result<(), NetworkError> {
        match cgroup2_dir {
            Some(dir) => Ok(purple_ebpf::attach(
                dir,
                pin_dir,
                self.plan.mode,
                &self.rules,
            )?),
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
    Path::new(purple_ebpf::BPFFS).join("purple").join(id)
}
