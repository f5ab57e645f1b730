//! What a DNS answer may add to the maps: an answer never widens the policy.
//! The plan's denies win over learned allows whatever their prefix lengths
//! (the kernel's judge takes the most specific prefix, so a learned /32 would
//! beat a denied /8), and answers for allowed names that point into the
//! sandbox's own side of the network (DNS rebinding) are refused.

use std::net::IpAddr;

use purple_policy::plan::{Action, Cidr, Rule, REBINDING_CIDRS};
use serde::{Deserialize, Serialize};

/// The parts of the plan an answer is judged against.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnswerPolicy {
    /// Prefixes of the plan's deny rules (cloud metadata included), any ports.
    pub denied: Vec<Cidr>,
    /// Prefixes of the plan's allow rules: one inside a rebinding range
    /// allows that part of it explicitly.
    pub allowed: Vec<Cidr>,
    /// `dns_rebinding: allow`.
    pub allow_rebinding: bool,
    /// The networks of the sandbox's own interfaces (found at create).
    pub own_networks: Vec<Cidr>,
}

/// Why an answer's address is not learned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// A deny rule of the plan covers it: the plan's rule keeps deciding.
    Denied(Cidr),
    /// An allowed name pointing into a private, loopback or link-local range
    /// or the sandbox's own network.
    Rebinding(Cidr),
}

/// Whether `c` holds `addr`, in any spelling the BPF programs judge as IPv4.
fn covers(c: &Cidr, addr: IpAddr) -> bool {
    let inside = |a: IpAddr| match (c.addr, a) {
        (IpAddr::V4(n), IpAddr::V4(a)) => {
            c.prefix == 0 || (u32::from(n) ^ u32::from(a)) >> (32 - c.prefix) == 0
        }
        (IpAddr::V6(n), IpAddr::V6(a)) => {
            c.prefix == 0 || (u128::from(n) ^ u128::from(a)) >> (128 - c.prefix) == 0
        }
        _ => false,
    };
    inside(addr)
        || match addr {
            IpAddr::V6(a) => purple_ebpf::events::embedded_v4(a)
                .into_iter()
                .any(|(_, v4)| inside(IpAddr::V4(v4))),
            IpAddr::V4(_) => false,
        }
}

impl AnswerPolicy {
    /// From the effective rules of a plan.
    pub fn new(rules: &[Rule], allow_rebinding: bool, own_networks: Vec<Cidr>) -> Self {
        let of = |action| {
            rules
                .iter()
                .filter(|r| r.action == action)
                .map(|r| r.cidr)
                .collect()
        };
        Self {
            denied: of(Action::Deny),
            allowed: of(Action::Allow),
            allow_rebinding,
            own_networks,
        }
    }

    /// Whether `addr`, answered for a name whose rule has `action`, may enter
    /// the maps under that rule. Blocked names only narrow: always learned.
    /// Rebinding is judged first: such an answer is refused as a whole (and
    /// recorded), cloud metadata (link-local) included.
    pub fn judge(&self, addr: IpAddr, action: Action) -> Result<(), Refusal> {
        if action == Action::Deny {
            return Ok(());
        }
        if !self.allow_rebinding {
            let special = REBINDING_CIDRS
                .iter()
                .map(|c| c.parse::<Cidr>().expect("rebinding CIDRs are valid"))
                .chain(self.own_networks.iter().copied());
            for range in special {
                // An allow rule inside the range names it explicitly; a wider
                // one (0.0.0.0/0 with ports, from allow_outgoing) does not.
                let explicit = || {
                    self.allowed
                        .iter()
                        .any(|a| a.prefix >= range.prefix && covers(a, addr))
                };
                if covers(&range, addr) && !explicit() {
                    return Err(Refusal::Rebinding(range));
                }
            }
        }
        if let Some(c) = self.denied.iter().find(|c| covers(c, addr)) {
            return Err(Refusal::Denied(*c));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(cidr: &str, action: Action) -> Rule {
        Rule {
            cidr: cidr.parse().unwrap(),
            action,
            ports: Vec::new(),
            protocol: Default::default(),
            name: None,
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn plan_denies_win_whatever_the_prefix() {
        let p = AnswerPolicy::new(
            &[
                rule("203.0.0.0/8", Action::Deny),
                rule("198.51.100.0/24", Action::Deny),
                rule("169.254.169.254/32", Action::Deny),
            ],
            true,
            Vec::new(),
        );
        for (addr, by) in [
            ("203.1.2.3", "203.0.0.0/8"),
            ("198.51.100.7", "198.51.100.0/24"),
            ("169.254.169.254", "169.254.169.254/32"),
            ("::ffff:203.1.2.3", "203.0.0.0/8"),
            ("64:ff9b::a9fe:a9fe", "169.254.169.254/32"),
        ] {
            assert_eq!(
                p.judge(ip(addr), Action::Allow),
                Err(Refusal::Denied(by.parse().unwrap())),
                "{addr}"
            );
        }
        assert_eq!(p.judge(ip("8.8.8.8"), Action::Allow), Ok(()));
        assert_eq!(p.judge(ip("203.1.2.3"), Action::Deny), Ok(()));
    }

    #[test]
    fn rebinding_is_refused_unless_a_rule_or_the_switch_allows_it() {
        let own: Cidr = "10.0.2.0/24".parse().unwrap();
        let p = AnswerPolicy::new(
            &[
                rule("0.0.0.0/0", Action::Allow),
                rule("192.168.7.0/24", Action::Allow),
            ],
            false,
            vec![own],
        );
        for addr in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "100.64.0.1",
            "169.254.1.1",
            "fd00::1",
            "fe80::1",
            "::1",
            "::ffff:10.0.0.1",
            "2002:a00:1::",
        ] {
            assert!(
                matches!(p.judge(ip(addr), Action::Allow), Err(Refusal::Rebinding(_))),
                "{addr}"
            );
        }
        assert_eq!(p.judge(ip("192.168.7.9"), Action::Allow), Ok(()));
        assert_eq!(p.judge(ip("93.184.216.34"), Action::Allow), Ok(()));
        let open = AnswerPolicy {
            allow_rebinding: true,
            ..p
        };
        assert_eq!(open.judge(ip("10.1.2.3"), Action::Allow), Ok(()));
    }
}
