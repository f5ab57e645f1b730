//! Rust mirrors of the map keys and values in `bpf/lib/abi.h`.

use std::net::IpAddr;

use purple_policy::plan::{Action, Mode, Protocol, Rule};

/// `PURPLE_MAX_PORT_RANGES` and `PURPLE_MAX_RULES`: build.rs passes these
/// very constants to clang.
pub use purple_policy::limits::{MAX_PORT_RANGES, MAX_RULES};

/// `struct purple_port_range`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

/// `struct purple_rule`: the value of both LPM tries.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RuleValue {
    pub id: u32,
    pub action: u8,
    pub protocol: u8,
    pub nports: u8,
    pub pad: u8,
    pub ports: [PortRange; MAX_PORT_RANGES],
}

/// `PURPLE_RULE_DNS`: the rule id of DNS sent past Purple's resolver.
pub const RULE_DNS: u32 = MAX_RULES as u32 + 1;
/// `PURPLE_RULE_LOOPBACK`: the rule id of loopback, always allowed.
pub const RULE_LOOPBACK: u32 = MAX_RULES as u32 + 2;

/// `struct purple_config`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Config {
    pub mode: u8,
    /// 1: allowed connect/sendmsg decisions emit events too (`network.allowed`).
    pub record_allowed: u8,
    /// The resolver's port on 127.0.0.1, network byte order; 0: none.
    pub dns_port: u16,
    /// 1: loopback destinations are judged by the rules (the container's
    /// loopback is not its own); 0: always allowed.
    pub judge_loopback: u8,
    pub pad: [u8; 3],
}

/// `struct purple_asker_key`: a DNS query's source port and protocol.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AskerKey {
    /// Host byte order.
    pub port: u16,
    pub protocol: u8,
    pub pad: u8,
}

/// `struct purple_asker`: the process that sent the query.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Asker {
    pub pid: u32,
    pub comm: [u8; 16],
}

// SAFETY: plain #[repr(C)] integers, no padding the kernel could leak into.
unsafe impl aya::Pod for AskerKey {}
unsafe impl aya::Pod for Asker {}
unsafe impl aya::Pod for PortRange {}
unsafe impl aya::Pod for RuleValue {}
unsafe impl aya::Pod for Config {}

/// `PURPLE_STAT_*` indexes of the `stats` map.
pub const STAT_EVENTS_LOST: u32 = 0;
pub const STAT_DENIED: u32 = 1;
pub const STAT_ALLOWED: u32 = 2;
pub const STAT_DNS_REDIRECTED: u32 = 3;
pub const STAT_PORTLESS_DENIED: u32 = 4;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RuleError {
    #[error("rule for {cidr} has {n} port ranges; at most {MAX_PORT_RANGES} fit in one rule")]
    TooManyPorts { cidr: String, n: usize },
    #[error("{n} rules do not fit: at most {MAX_RULES} per address family")]
    TooManyRules { n: usize },
}

impl Config {
    /// `dns_port`: the port of the resolver every DNS query is sent to, if
    /// any; `record_allowed`: emit events for allowed calls too;
    /// `judge_loopback`: loopback is judged like any destination.
    pub fn new(
        mode: Mode,
        dns_port: Option<u16>,
        record_allowed: bool,
        judge_loopback: bool,
    ) -> Self {
        let mode = match mode {
            Mode::DenyList => 0,
            Mode::AllowList => 1,
        };
        Self {
            mode,
            record_allowed: u8::from(record_allowed),
            dns_port: dns_port.map_or(0, u16::to_be),
            judge_loopback: u8::from(judge_loopback),
            pad: [0; 3],
        }
    }
}

impl RuleValue {
    /// The map value for `rule`, numbered `id` (1-based; 0 is the default decision).
    pub fn new(id: u32, rule: &Rule) -> Result<Self, RuleError> {
        if rule.ports.len() > MAX_PORT_RANGES {
            return Err(RuleError::TooManyPorts {
                cidr: rule.cidr.to_string(),
                n: rule.ports.len(),
            });
        }
        let mut ports = [PortRange::default(); MAX_PORT_RANGES];
        for (slot, p) in ports.iter_mut().zip(&rule.ports) {
            *slot = PortRange {
                first: p.first,
                last: p.last,
            };
        }
        Ok(Self {
            id,
            action: match rule.action {
                Action::Allow => 0,
                Action::Deny => 1,
            },
            protocol: match rule.protocol {
                Protocol::Any => 0,
                Protocol::Tcp => libc::IPPROTO_TCP as u8,
                Protocol::Udp => libc::IPPROTO_UDP as u8,
            },
            nports: rule.ports.len() as u8,
            pad: 0,
            ports,
        })
    }
}

/// Key data of the tries: the address bytes in network order.
pub enum KeyData {
    V4([u8; 4]),
    V6([u8; 16]),
}

pub fn key_data(addr: IpAddr) -> KeyData {
    match addr {
        IpAddr::V4(a) => KeyData::V4(a.octets()),
        IpAddr::V6(a) => KeyData::V6(a.octets()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_match_purple_h() {
        // sizeof in bpf/lib/abi.h: purple_port_range 4, purple_rule 4+4+8*4, purple_config 8.
        assert_eq!(std::mem::size_of::<PortRange>(), 4);
        assert_eq!(std::mem::size_of::<RuleValue>(), 40);
        assert_eq!(std::mem::size_of::<Config>(), 8);
        // purple_asker_key 2+1+1, purple_asker 4+16.
        assert_eq!(std::mem::size_of::<AskerKey>(), 4);
        assert_eq!(std::mem::size_of::<Asker>(), 20);
    }

    #[test]
    fn rule_values() {
        let r: Rule = serde_json::from_str(
            r#"{"cidr":"10.0.0.0/8","action":"deny","ports":[443,"8000-8100"],"protocol":"tcp"}"#,
        )
        .unwrap();
        let v = RuleValue::new(3, &r).unwrap();
        assert_eq!((v.id, v.action, v.protocol, v.nports), (3, 1, 6, 2));
        assert_eq!(
            v.ports[1],
            PortRange {
                first: 8000,
                last: 8100
            }
        );
        let many: Vec<String> = (1..=9).map(|p| p.to_string()).collect();
        let r: Rule = serde_json::from_value(
            serde_json::json!({"cidr":"1.1.1.1","action":"deny","ports":many}),
        )
        .unwrap();
        assert!(RuleValue::new(1, &r).is_err());
    }
}
