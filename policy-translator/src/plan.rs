//! The enforcement plan: what the runtime enforces beyond the OCI spec, carried
//! from the translator to the runtime in `io.purple.*` annotations.
//!
//! A policy value travels one way: YAML → `Policy` → `Spec` + annotations →
//! [`NetworkPlan`] → BPF maps. The runtime never reads the YAML.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::annotations::NETWORK_ANNOTATION;
use crate::domain::Domain;

/// Cloud metadata endpoints, blocked unless a plan sets `allow_metadata`.
pub const METADATA_CIDRS: &[&str] = &[
    "169.254.169.254/32",
    "169.254.0.0/16",
    "100.100.100.200/32",
    "fd00:ec2::254/128",
];

/// Where a DNS answer for an allowed name must not point (DNS rebinding): a
/// public name turned into a key to the sandbox's own side of the network.
/// Cloud metadata is in link-local; the v4 ranges hold in every IPv6 form the
/// BPF programs judge as IPv4.
pub const REBINDING_CIDRS: &[&str] = &[
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "::/128",
    "::1/128",
    "::ffff:0:0/96",
    "fc00::/7",
    "fe80::/10",
];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    #[error("annotation {NETWORK_ANNOTATION}: {0}")]
    Json(String),
    #[error("invalid CIDR {0:?}: use an address (10.0.0.1, ::1) or address/prefix (10.0.0.0/8, fd00::/8)")]
    Cidr(String),
    #[error("invalid port {0:?}: use a port (443) or a range (8000-8100), 0-65535")]
    Port(String),
}

/// How destinations that no rule matches are treated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Allow unless a rule denies.
    #[default]
    DenyList,
    /// Deny unless a rule allows.
    AllowList,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    Allow,
    Deny,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    #[default]
    Any,
    Tcp,
    Udp,
}

/// An IPv4 or IPv6 prefix, written `10.0.0.0/8` or a bare address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl FromStr for Cidr {
    type Err = PlanError;

    fn from_str(s: &str) -> Result<Self, PlanError> {
        let err = || PlanError::Cidr(s.to_owned());
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr.trim().parse().map_err(|_| err())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.trim().parse::<u8>().map_err(|_| err())?,
            None => max,
        };
        if prefix > max {
            return Err(err());
        }
        Ok(Self {
            addr: mask(addr, prefix),
            prefix,
        })
    }
}

impl Cidr {
    /// `addr/prefix` with the host bits zeroed; a prefix longer than the
    /// family's is the host prefix.
    pub fn masked(addr: IpAddr, prefix: u8) -> Self {
        let prefix = prefix.min(if addr.is_ipv4() { 32 } else { 128 });
        Self {
            addr: mask(addr, prefix),
            prefix,
        }
    }

    /// The prefix of one address: /32 or /128.
    pub fn host(addr: IpAddr) -> Self {
        Self {
            addr,
            prefix: if addr.is_ipv4() { 32 } else { 128 },
        }
    }
}

/// Zeroes the host bits, so `10.1.2.3/8` and `10.0.0.0/8` are one key.
fn mask(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            let m = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - prefix)
            };
            IpAddr::V4(Ipv4Addr::from(bits & m))
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            let m = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - prefix)
            };
            IpAddr::V6(Ipv6Addr::from(bits & m))
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Serialize for Cidr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Inclusive port range; `443` is `443-443`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

impl FromStr for PortRange {
    type Err = PlanError;

    fn from_str(s: &str) -> Result<Self, PlanError> {
        let err = || PlanError::Port(s.to_owned());
        // 0 is a real destination port, and the complement of a port list
        // (a deny-list's `allow_outgoing`) must be able to name it.
        let p = |x: &str| x.trim().parse::<u16>().map_err(|_| err());
        let (first, last) = match s.split_once('-') {
            Some((a, b)) => (p(a)?, p(b)?),
            None => (p(s)?, p(s)?),
        };
        if first > last {
            return Err(err());
        }
        Ok(Self { first, last })
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

impl Serialize for PortRange {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PortRange {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Accept 443 as a number as well as "443" / "8000-8100".
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        let s = match Raw::deserialize(d)? {
            Raw::N(n) => n.to_string(),
            Raw::S(s) => s,
        };
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// One destination rule: the most specific matching CIDR decides; when its
/// ports or protocol do not match the connection, the mode's default applies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub cidr: Cidr,
    pub action: Action,
    /// Empty: every port.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortRange>,
    #[serde(default, skip_serializing_if = "is_any")]
    pub protocol: Protocol,
    /// Why the rule is there, when the runtime or translator added it
    /// (`host address`, `cloud metadata`): shown in records and counters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl Rule {
    /// A deny rule for every port and protocol, named `name`.
    pub fn deny(cidr: Cidr, name: &str) -> Self {
        Self {
            cidr,
            action: Action::Deny,
            ports: Vec::new(),
            protocol: Protocol::Any,
            name: Some(name.to_owned()),
        }
    }
}

/// The user-mode network helper that gives a private network namespace its
/// way out (started and owned by the runtime, in the caller's namespace).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Egress {
    /// `slirp4netns --configure --disable-host-loopback`: a tap device inside
    /// the sandbox's namespace, 10.0.2.0/24, and nothing in the caller's.
    Slirp4netns,
}

/// slirp4netns's gateway, which is the caller's own namespace (its services
/// bound to 0.0.0.0 answer there).
pub const SLIRP_GATEWAY: &str = "10.0.2.2";
/// slirp4netns's DNS forwarder: it asks the caller's resolvers.
pub const SLIRP_DNS: &str = "10.0.2.3";

fn is_any(p: &Protocol) -> bool {
    *p == Protocol::Any
}

/// The network part of the enforcement plan.
///
/// ```
/// use purple_policy::plan::{NetworkPlan, Mode};
/// let plan = NetworkPlan::from_json(r#"{"mode":"deny-list","rules":[{"cidr":"1.1.1.1","action":"deny"}]}"#).unwrap();
/// assert_eq!(plan.mode, Mode::DenyList);
/// assert_eq!(plan.effective_rules().len(), 1 + 4); // the rule plus cloud metadata
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkPlan {
    #[serde(default)]
    pub mode: Mode,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<Rule>,
    /// Let the container reach cloud metadata endpoints.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_metadata: bool,
    /// Let answers for allowed names point into [`REBINDING_CIDRS`] (and the
    /// sandbox's own networks); without it such answers are refused, unless
    /// an allow rule of the plan covers the address.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_rebinding: bool,
    /// Names whose addresses are allowed (allow-list) — `*.example.com` wildcards allowed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_domains: Vec<Domain>,
    /// Names whose addresses are denied.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blocked_domains: Vec<Domain>,
    /// Resolvers the container's DNS goes to (for allow-lists: the upstreams
    /// of the runtime's DNS proxy).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_servers: Vec<IpAddr>,
    /// The container's network namespace gets user-mode egress from the
    /// runtime (`purple run` sandboxes with `isolated: false`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress: Option<Egress>,
    /// Loopback destinations are judged by the rules like any other (the
    /// container shares a namespace whose loopback is not its own). The
    /// runtime also judges them whenever the spec has no network namespace.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub judge_loopback: bool,
}

impl NetworkPlan {
    pub fn from_json(s: &str) -> Result<Self, PlanError> {
        serde_json::from_str(s).map_err(|e| PlanError::Json(e.to_string()))
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("plans serialise")
    }

    /// The plan from a spec's annotations; every container gets one, so that
    /// cloud metadata is blocked even without any Purple annotation.
    pub fn from_annotations(a: Option<&HashMap<String, String>>) -> Result<Self, PlanError> {
        match a.and_then(|a| a.get(NETWORK_ANNOTATION)) {
            Some(json) => Self::from_json(json),
            None => Ok(Self::default()),
        }
    }

    /// The rules to enforce: the plan's, plus deny rules for cloud metadata
    /// unless allowed. A rule the plan wrote for the same prefix wins.
    pub fn effective_rules(&self) -> Vec<Rule> {
        let mut rules = self.rules.clone();
        if !self.allow_metadata {
            for m in METADATA_CIDRS {
                let cidr: Cidr = m.parse().expect("metadata CIDRs are valid");
                if !rules.iter().any(|r| r.cidr == cidr) {
                    rules.push(Rule::deny(cidr, "cloud metadata"));
                }
            }
        }
        rules
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_parse_and_normalise() {
        assert_eq!(
            "10.1.2.3/8".parse::<Cidr>().unwrap().to_string(),
            "10.0.0.0/8"
        );
        assert_eq!("1.1.1.1".parse::<Cidr>().unwrap().to_string(), "1.1.1.1/32");
        assert_eq!(
            "fd00:ec2::254".parse::<Cidr>().unwrap().to_string(),
            "fd00:ec2::254/128"
        );
        assert_eq!("::/0".parse::<Cidr>().unwrap().prefix, 0);
        for bad in ["10.0.0.0/33", "::/129", "nope", "1.2.3.4/x", ""] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn ports_parse() {
        assert_eq!(
            "443".parse::<PortRange>().unwrap(),
            PortRange {
                first: 443,
                last: 443
            }
        );
        assert_eq!("8000-8100".parse::<PortRange>().unwrap().last, 8100);
        assert_eq!("0-52".parse::<PortRange>().unwrap().first, 0);
        for bad in ["70000", "9-1", "x", "-1", ""] {
            assert!(bad.parse::<PortRange>().is_err(), "{bad}");
        }
    }

    #[test]
    fn json_round_trip() {
        let j = r#"{"mode":"allow-list","rules":[{"cidr":"10.0.0.0/8","action":"allow","ports":[443,"8000-8100"],"protocol":"tcp"}],"allowed_domains":["*.example.com"]}"#;
        let p = NetworkPlan::from_json(j).unwrap();
        assert_eq!(p.rules[0].ports.len(), 2);
        assert_eq!(NetworkPlan::from_json(&p.to_json()).unwrap(), p);
        let err = NetworkPlan::from_json(r#"{"mdoe":"x"}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field"), "{err}");
    }

    #[test]
    fn annotation_domains_meet_the_loaders_rule() {
        // A hand-written plan once passed `*.com` (every .com name) and
        // single labels that the loader refuses.
        for bad in ["*.com", "localhost", "a..b", "x y.com"] {
            let j = format!(r#"{{"mode":"allow-list","allowed_domains":["{bad}"]}}"#);
            let err = NetworkPlan::from_json(&j).unwrap_err().to_string();
            assert!(
                err.contains(NETWORK_ANNOTATION) && err.contains("not a domain name"),
                "{bad}: {err}"
            );
        }
        let p = NetworkPlan::from_json(r#"{"blocked_domains":["*.Evil.Example.COM."]}"#).unwrap();
        assert_eq!(p.blocked_domains[0].as_str(), "*.evil.example.com");
    }

    #[test]
    fn metadata_is_blocked_unless_allowed() {
        let none = NetworkPlan::from_annotations(None).unwrap();
        let rules = none.effective_rules();
        assert!(rules.iter().all(|r| r.action == Action::Deny));
        assert_eq!(rules.len(), METADATA_CIDRS.len());
        let allowed = NetworkPlan {
            allow_metadata: true,
            ..Default::default()
        };
        assert!(allowed.effective_rules().is_empty());
        // An explicit allow for the exact prefix replaces the default deny.
        let exact = NetworkPlan {
            rules: vec![Rule {
                cidr: "169.254.169.254/32".parse().unwrap(),
                action: Action::Allow,
                ports: vec![],
                protocol: Protocol::Any,
                name: None,
            }],
            ..Default::default()
        };
        let r = exact.effective_rules();
        assert_eq!(
            r.iter()
                .filter(|r| r.cidr.to_string() == "169.254.169.254/32")
                .count(),
            1
        );
    }
}
