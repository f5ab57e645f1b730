//! Purple's kernel-enforced egress policy: BPF programs (C, in `src/bpf/`,
//! compiled by build.rs) attached to a container's cgroup2 directory, and
//! their aya-based loader.
//!
//! Hooks: `cgroup/connect4|6` and `cgroup/sendmsg4|6` refuse a denied
//! destination with EPERM at the system call; `cgroup_skb/egress` drops
//! packets that never pass those calls (raw sockets, ICMP). Rules live in two
//! LPM tries (IPv4, IPv6); the most specific prefix decides. Denials emit an
//! event on the `events` ring buffer, and so do allowed connect/sendmsg calls
//! when the config asks (never allowed packets). With a resolver
//! configured, `cgroup/recvmsg4|6` make its answers look as if they came from
//! the server the program asked.
//!
//! ```no_run
//! use purple_policy::plan::NetworkPlan;
//! let plan = NetworkPlan::default(); // blocks cloud metadata
//! let pins = std::path::Path::new("/sys/fs/bpf/purple/demo");
//! let config = purple_ebpf::maps::Config::new(plan.mode, None, false, false);
//! purple_ebpf::attach(std::path::Path::new("/sys/fs/cgroup/unified/purple/demo"), pins, config, &plan.effective_rules())?;
//! println!("{:?}", purple_ebpf::stats(pins)?);
//! purple_ebpf::detach(pins)?;
//! # Ok::<(), purple_ebpf::EbpfError>(())
//! ```

mod askers;
#[cfg(test)]
mod btf_layout;
pub mod events;
mod learned;
pub mod maps;
mod programs;
mod stats;
pub mod trail;

pub use askers::DnsAskers;
pub use learned::LearnedHosts;
pub use programs::{attach, detach, pin_root, BPFFS, PINNED_MAPS, PIN_ROOT};
pub use stats::{stats, Stats};

/// Opens the `events` ring buffer pinned in `pin_dir` (for the supervisor).
pub fn open_events(
    pin_dir: &std::path::Path,
) -> Result<aya::maps::RingBuf<aya::maps::MapData>, EbpfError> {
    let data = aya::maps::MapData::from_pin(pin_dir.join("events"))?;
    Ok(aya::maps::RingBuf::try_from(
        aya::maps::Map::from_map_data(data)?,
    )?)
}

#[derive(Debug, thiserror::Error)]
pub enum EbpfError {
    #[error("loading Purple's BPF object: {0}")]
    Load(#[from] aya::EbpfError),
    #[error("BPF program: {0}")]
    Program(#[from] aya::programs::ProgramError),
    #[error("BPF link: {0}")]
    Link(#[from] aya::programs::links::LinkError),
    #[error("BPF map: {0}")]
    Map(#[from] aya::maps::MapError),
    #[error("BPF object has no {0:?} (build mismatch)")]
    Missing(&'static str),
    #[error("cannot pin {0}")]
    Pin(String),
    #[error(transparent)]
    Rule(#[from] maps::RuleError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}
