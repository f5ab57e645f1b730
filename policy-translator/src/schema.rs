//! The policy users write, after defaults: what `purple policy show` prints
//! and what the translator reads. Field by field in docs/policy.md.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use serde::Serialize;

use crate::domain::Domain;
use crate::plan::{Cidr, Mode};
use crate::ports::PortRanges;
use crate::supervision::Alerts;

/// Default size of a scratch tmpfs when neither the path nor `scratch_size` says.
pub const DEFAULT_SCRATCH_SIZE: u64 = 64 << 20;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Policy {
    pub name: String,
    pub description: String,
    pub filesystem: Filesystem,
    pub syscalls: Syscalls,
    pub resources: Resources,
    pub capabilities: Capabilities,
    pub network: Network,
    pub audit: Audit,
    pub environment: BTreeMap<String, String>,
    pub user: User,
    pub hostname: String,
    /// `ai_policy`: the LLM gateway (docs/llm.md).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ai: Option<crate::llm::LlmPlan>,
}

/// A bind mount from the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Bind {
    /// Absolute, symlinks resolved.
    pub host_path: PathBuf,
    pub sandbox_path: String,
    /// Skip the bind when the host path does not exist (profiles meant for
    /// several distributions).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub optional: bool,
    /// Output binds only: the most bytes the directory may hold.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_size: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Scratch {
    pub path: String,
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Filesystem {
    pub immutable_paths: Vec<Bind>,
    pub scratch_paths: Vec<Scratch>,
    pub output_paths: Vec<Bind>,
    pub working_dir: String,
    pub read_only_root: bool,
    pub scratch_size: u64,
    /// The largest file any process of the sandbox may write (RLIMIT_FSIZE).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_file_size: Option<u64>,
}

/// What happens to a denied system call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DenyAction {
    /// Fails with EPERM.
    Errno,
    /// The process is killed.
    Kill,
    /// Allowed, but recorded.
    Log,
}

/// The action of an advanced rule: `deny` takes the section's `action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleAction {
    Allow,
    Deny,
    Errno,
    Kill,
    Log,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CmpOp {
    Eq,
    Neq,
    Lt,
    Lte,
    Gt,
    Gte,
    MaskedEq,
    MaskedNeq,
}

/// A socket family a policy may allow beyond the default set (`unix`,
/// `inet`, `inet6`, netlink's routing protocol).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SocketFamily {
    /// Every netlink protocol, not only routing.
    Netlink,
    Key,
    Packet,
    Rds,
    Can,
    Tipc,
    Bluetooth,
    Alg,
    Vsock,
    Kcm,
    Smc,
    Xdp,
    Mctp,
}

impl SocketFamily {
    pub const ALL: &[(&str, SocketFamily)] = &[
        ("netlink", Self::Netlink),
        ("key", Self::Key),
        ("packet", Self::Packet),
        ("rds", Self::Rds),
        ("can", Self::Can),
        ("tipc", Self::Tipc),
        ("bluetooth", Self::Bluetooth),
        ("alg", Self::Alg),
        ("vsock", Self::Vsock),
        ("kcm", Self::Kcm),
        ("smc", Self::Smc),
        ("xdp", Self::Xdp),
        ("mctp", Self::Mctp),
    ];

    /// Its `AF_*` number (linux/socket.h).
    pub fn number(self) -> u64 {
        match self {
            Self::Key => 15,
            Self::Netlink => 16,
            Self::Packet => 17,
            Self::Rds => 21,
            Self::Can => 29,
            Self::Tipc => 30,
            Self::Bluetooth => 31,
            Self::Alg => 38,
            Self::Vsock => 40,
            Self::Kcm => 41,
            Self::Smc => 43,
            Self::Xdp => 44,
            Self::Mctp => 45,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Condition {
    pub arg: u8,
    pub op: CmpOp,
    pub value: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mask: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SyscallRule {
    pub syscall: String,
    pub action: RuleAction,
    pub conditions: Vec<Condition>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Syscalls {
    pub default_deny: bool,
    pub action: DenyAction,
    pub allow: Vec<String>,
    pub deny: Vec<String>,
    pub advanced_rules: Vec<SyscallRule>,
    /// io_uring allowed although its operations bypass the filter.
    pub allow_io_uring: bool,
    pub allow_socket_families: Vec<SocketFamily>,
}

impl Syscalls {
    /// Whether the section asks for any filtering at all.
    pub fn is_empty(&self) -> bool {
        !self.default_deny && self.deny.is_empty() && self.advanced_rules.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Resources {
    pub memory_limit_bytes: Option<u64>,
    pub swap_limit_bytes: Option<u64>,
    /// CPUs (0.5 = half of one CPU).
    pub cpu_shares: Option<f64>,
    pub pids_limit: Option<u64>,
    /// Bytes per second, read and write, on every whole disk.
    pub block_io_limit: Option<u64>,
    pub session_timeout_seconds: Option<u64>,
    pub cpu_time_limit_seconds: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Capabilities {
    pub default_drop: bool,
    pub add: Vec<String>,
    pub drop: Vec<String>,
    pub no_new_privileges: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Network {
    pub isolated: bool,
    /// Whose network namespace the sandbox lives in.
    pub namespace: NetNamespace,
    pub mode: Mode,
    pub blocked_ips: Vec<Cidr>,
    pub allowed_ips: Vec<Cidr>,
    pub allow_outgoing: PortRanges,
    pub allow_incoming: PortRanges,
    pub allowed_domains: Vec<Domain>,
    pub blocked_domains: Vec<Domain>,
    pub dns_servers: Vec<IpAddr>,
    pub allow_metadata: bool,
    /// `dns_rebinding: allow`: answers for allowed names may point into
    /// loopback, link-local and private ranges (default: refused).
    pub allow_rebinding: bool,
}

/// `network.namespace`: a namespace of the sandbox's own (with user-mode
/// egress unless `isolated`), or the caller's, shared by explicit opt-in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NetNamespace {
    #[default]
    Private,
    Host,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Audit {
    pub log_path: Option<PathBuf>,
    /// Extra record kinds beyond violations (`network.allowed`).
    pub record: Vec<String>,
    pub alerts: Alerts,
    pub on_failure: crate::supervision::OnFailure,
    /// The log's budget in bytes (`audit.max_size`).
    pub max_size: Option<u64>,
    /// Count the sandbox's syscalls (`ebpf_monitoring.trace_syscalls`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub trace_syscalls: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    /// The sandbox's user namespace; `None` runs it with the host's ids.
    pub namespace: Option<IdMap>,
}

/// Sandbox ids `0..size` are host ids `host_id..host_id + size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct IdMap {
    pub host_id: u32,
    pub size: u32,
}

impl IdMap {
    /// Unused host ids on a stock Debian (subordinate ids start at 100000).
    pub const DEFAULT: IdMap = IdMap {
        host_id: 100_000,
        size: 65_536,
    };

    /// The host id of sandbox id `id`, if the map covers it.
    pub fn host(&self, id: u32) -> Option<u32> {
        (id < self.size).then(|| self.host_id + id)
    }
}
