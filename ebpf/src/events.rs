//! Decision events from the `events` ring buffer: every denial, and allowed
//! connect/sendmsg calls when the container's config asks for them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use purple_policy::plan::Action;

/// `struct purple_event` from `bpf/purple.h`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct RawEvent {
    pub ts_ns: u64,
    pub cgroup_id: u64,
    pub pid: u32,
    pub rule_id: u32,
    pub hook: u8,
    pub family: u8,
    pub protocol: u8,
    pub action: u8,
    pub dport: u16,
    pub pad: u16,
    pub daddr: [u8; 16],
    pub comm: [u8; 16],
}

/// Which kernel hook decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    Connect4,
    Connect6,
    Sendmsg4,
    Sendmsg6,
    SkbEgress,
    Unknown(u8),
}

/// A decoded event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// CLOCK_MONOTONIC nanoseconds.
    pub ts_ns: u64,
    pub cgroup_id: u64,
    /// 0 when the skb hook decided (no task context there).
    pub pid: u32,
    pub comm: String,
    /// 0: the mode's default; [`crate::maps::RULE_DNS`],
    /// [`crate::maps::RULE_LOOPBACK`]; otherwise the 1-based index into the
    /// plan's effective rules (then its domains).
    pub rule_id: u32,
    /// What the rule decided (allowed events only come when asked for).
    pub action: Action,
    pub hook: Hook,
    pub protocol: u8,
    pub daddr: IpAddr,
    pub dport: u16,
}

impl Event {
    /// Decodes one ring buffer record; `None` when it is too short.
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        if bytes.len() < std::mem::size_of::<RawEvent>() {
            return None;
        }
        // SAFETY: length checked; RawEvent is plain data, read unaligned.
        let raw: RawEvent = unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) };
        let daddr = if raw.family == libc::AF_INET as u8 {
            IpAddr::V4(Ipv4Addr::new(
                raw.daddr[0],
                raw.daddr[1],
                raw.daddr[2],
                raw.daddr[3],
            ))
        } else {
            IpAddr::V6(Ipv6Addr::from(raw.daddr))
        };
        let end = raw
            .comm
            .iter()
            .position(|&c| c == 0)
            .unwrap_or(raw.comm.len());
        Some(Self {
            ts_ns: raw.ts_ns,
            cgroup_id: raw.cgroup_id,
            pid: raw.pid,
            comm: String::from_utf8_lossy(&raw.comm[..end]).into_owned(),
            rule_id: raw.rule_id,
            action: if raw.action == 0 {
                Action::Allow
            } else {
                Action::Deny
            },
            hook: match raw.hook {
                1 => Hook::Connect4,
                2 => Hook::Connect6,
                3 => Hook::Sendmsg4,
                4 => Hook::Sendmsg6,
                5 => Hook::SkbEgress,
                n => Hook::Unknown(n),
            },
            protocol: raw.protocol,
            daddr,
            dport: raw.dport,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_purple_h() {
        // 8 + 8 + 4 + 4 + 4*1 + 2 + 2 + 16 + 16
        assert_eq!(std::mem::size_of::<RawEvent>(), 64);
    }

    #[test]
    fn decodes_an_ipv4_event() {
        let mut raw = RawEvent {
            ts_ns: 1,
            cgroup_id: 2,
            pid: 3,
            rule_id: 4,
            hook: 1,
            family: libc::AF_INET as u8,
            protocol: 6,
            action: 1,
            dport: 443,
            pad: 0,
            daddr: [0; 16],
            comm: [0; 16],
        };
        raw.daddr[..4].copy_from_slice(&[1, 1, 1, 1]);
        raw.comm[..4].copy_from_slice(b"curl");
        // SAFETY: viewing a plain-data struct as bytes.
        let bytes =
            unsafe { std::slice::from_raw_parts((&raw as *const RawEvent).cast::<u8>(), 64) };
        let e = Event::parse(bytes).unwrap();
        assert_eq!(e.daddr, "1.1.1.1".parse::<IpAddr>().unwrap());
        assert_eq!(
            (e.pid, e.comm.as_str(), e.dport, e.hook, e.action),
            (3, "curl", 443, Hook::Connect4, Action::Deny)
        );
        assert!(Event::parse(&bytes[..10]).is_none());
    }
}
