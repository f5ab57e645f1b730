//! Decision events from the `events` ring buffer: every denial, and allowed
//! connect/sendmsg calls when the container's config asks for them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use purple_policy::plan::Action;

/// `struct purple_event` from `bpf/lib/abi.h`.
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
    pub flags: u16,
    pub daddr: [u8; 16],
    pub comm: [u8; 16],
}

/// `PURPLE_FLAG_FORM`, `PURPLE_FLAG_PORTLESS` of `bpf/lib/abi.h`.
const FLAG_FORM: u16 = 0x0f;
const FLAG_PORTLESS: u16 = 0x10;

/// The IPv4-in-IPv6 form of a destination that an IPv4 rule judged
/// (`PURPLE_FORM_*` of `bpf/lib/v4_in_v6.h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    V4Mapped,
    V4Compatible,
    Nat64,
    Nat64Local96,
    Nat64Local48,
    SixToFour,
    TeredoServer,
    TeredoClient,
}

impl Form {
    fn from_flags(flags: u16) -> Option<Self> {
        Some(match flags & FLAG_FORM {
            1 => Self::V4Mapped,
            2 => Self::V4Compatible,
            3 => Self::Nat64,
            4 => Self::Nat64Local96,
            5 => Self::Nat64Local48,
            6 => Self::SixToFour,
            7 => Self::TeredoServer,
            8 => Self::TeredoClient,
            _ => return None,
        })
    }

    /// How records name it.
    pub fn name(self) -> &'static str {
        match self {
            Self::V4Mapped => "v4-mapped",
            Self::V4Compatible => "v4-compatible",
            Self::Nat64 => "nat64",
            Self::Nat64Local96 => "nat64-local/96",
            Self::Nat64Local48 => "nat64-local/48",
            Self::SixToFour => "6to4",
            Self::TeredoServer => "teredo-server",
            Self::TeredoClient => "teredo-client",
        }
    }

    /// The IPv4 address this form carries in `a` (what the IPv4 rule judged).
    pub fn embedded(self, a: Ipv6Addr) -> Ipv4Addr {
        let b = a.octets();
        let at = |i: usize| Ipv4Addr::new(b[i], b[i + 1], b[i + 2], b[i + 3]);
        match self {
            Self::V4Mapped | Self::V4Compatible | Self::Nat64 | Self::Nat64Local96 => at(12),
            Self::Nat64Local48 => Ipv4Addr::new(b[6], b[7], b[9], b[10]),
            Self::SixToFour => at(2),
            Self::TeredoServer => at(4),
            Self::TeredoClient => Ipv4Addr::from(!u32::from(at(12))),
        }
    }
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

/// The IPv4 addresses an IPv6 address carries, by form, as the BPF programs
/// find them (`purple_embedded_v4` in `bpf/lib/v4_in_v6.h`): what user space
/// judges an IPv6 address by when IPv4 rules must hold for it too.
pub fn embedded_v4(a: Ipv6Addr) -> Vec<(Form, Ipv4Addr)> {
    let s = a.segments();
    let forms: &[Form] = match s {
        [0, 0, 0, 0, 0, 0xffff, _, _] => &[Form::V4Mapped],
        [0, 0, 0, 0, 0, 0, hi, lo] if (u32::from(hi) << 16 | u32::from(lo)) > 1 => {
            &[Form::V4Compatible]
        }
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => &[Form::Nat64],
        [0x64, 0xff9b, 1, ..] => &[Form::Nat64Local96, Form::Nat64Local48],
        [0x2002, ..] => &[Form::SixToFour],
        [0x2001, 0, ..] => &[Form::TeredoServer, Form::TeredoClient],
        _ => &[],
    };
    forms.iter().map(|&f| (f, f.embedded(a))).collect()
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
    /// No port was judged: neither TCP nor UDP (ICMP, raw IP), or a packet
    /// whose ports were not read (IPv6 extension headers, later fragments).
    pub portless: bool,
    /// Set when an IPv4 rule judged an IPv6 destination through this form.
    pub form: Option<Form>,
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
            portless: raw.flags & FLAG_PORTLESS != 0,
            form: Form::from_flags(raw.flags),
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
            flags: 0,
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
        assert_eq!((e.portless, e.form), (false, None));
    }

    #[test]
    fn forms_name_their_embedded_address() {
        let meta = Ipv4Addr::new(169, 254, 169, 254);
        for (addr, form) in [
            ("::ffff:169.254.169.254", Form::V4Mapped),
            ("::169.254.169.254", Form::V4Compatible),
            ("64:ff9b::169.254.169.254", Form::Nat64),
            ("64:ff9b:1::169.254.169.254", Form::Nat64Local96),
            ("64:ff9b:1:a9fe:a9:fe00::", Form::Nat64Local48),
            ("2002:a9fe:a9fe::1", Form::SixToFour),
            ("2001:0:a9fe:a9fe::1", Form::TeredoServer),
            ("2001:0:1:2::5601:5601", Form::TeredoClient),
        ] {
            let a: Ipv6Addr = addr.parse().unwrap();
            assert_eq!(form.embedded(a), meta, "{addr}");
        }
        let forms = |s: &str| -> Vec<Form> {
            embedded_v4(s.parse().unwrap())
                .into_iter()
                .map(|(f, _)| f)
                .collect()
        };
        assert_eq!(
            forms("2001:0:a9fe:a9fe::1"),
            [Form::TeredoServer, Form::TeredoClient]
        );
        assert_eq!(forms("64:ff9b::1.2.3.4"), [Form::Nat64]);
        for none in ["::", "::1", "2001:db8::1", "64:ff9b:2::1", "fe80::1"] {
            assert!(forms(none).is_empty(), "{none}");
        }
        assert_eq!(Form::from_flags(0x13), Some(Form::Nat64));
        assert_eq!(Form::from_flags(0x10), None);
    }
}
