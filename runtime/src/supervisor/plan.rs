//! The supervisor plan: the one written contract between `create` and the
//! supervisor. `create` writes it once, 0600, into the container's record
//! directory (`<root>/.purple/<id>/plan.json`); the supervisor is started
//! with `supervise --plan FILE` and nothing else on its command line, and
//! reads it once. `exec` (the filter of exec'd processes) and
//! `purple network stats` (the rule labels) read the same file.
//!
//! The descriptors the supervisor inherits are named here too ([`Fds`]):
//! [`Fds::assign`] gives them their numbers, in one place, and the plan
//! carries the numbers, so no file has to agree with another on them.

use std::fs;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxSeccomp;
use purple_policy::hostfs;
use purple_policy::plan::Rule;
use purple_policy::supervision::{Alerts, OnFailure, SessionPlan};
use serde::{Deserialize, Serialize};

use crate::cgroup2::LimitCounter;
use crate::dns::DnsConfig;
use crate::gateway::GatewayConfig;
use crate::network::RuleBook;
use crate::seccomp::Profile;

/// The plan's file name in the container's record directory.
pub const PLAN_FILE: &str = "plan.json";

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("supervisor plan {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("supervisor plan: descriptor {fd} ({name}) was not inherited")]
    NotInherited { fd: RawFd, name: &'static str },
    #[error("supervisor plan: more than {MAX_FDS} descriptors to hand over")]
    TooManyFds,
}

/// Everything the supervisor of one container needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    /// Container ID.
    pub id: String,
    /// The state root (the supervisor deletes the container from there when
    /// the caller it is tied to died).
    pub root: PathBuf,
    /// Audit log to append to.
    pub log: PathBuf,
    /// Policy name for the records.
    pub policy: Option<String>,
    /// The container's cgroup2 directory (exit when it empties).
    pub cgroup2: Option<PathBuf>,
    /// Where the BPF maps are pinned.
    pub pins: Option<PathBuf>,
    /// The container's registration with the host's activity trail (its
    /// ring is pinned in `pins`).
    #[serde(default)]
    pub trail: Option<purple_ebpf::trail::Registration>,
    /// The effective rule list (rule id = index + 1), to name the rule that decided.
    pub rules: Vec<Rule>,
    /// The container's resolver, served from the inherited [`Fds::resolver`].
    pub dns: Option<DnsConfig>,
    /// The LLM gateway, served from the inherited [`Fds::gateway`].
    pub llm: Option<GatewayConfig>,
    /// The original actions of the seccomp rules rewritten to notify.
    pub seccomp: Option<Profile>,
    /// The filter an `exec`'d process gets when the supervisor does not
    /// answer (the bundle's, as libcontainer installs it).
    pub exec_seccomp: Option<LinuxSeccomp>,
    /// Session budgets (`io.purple.session`).
    pub session: SessionPlan,
    /// Alert targets (the `alerts` of `io.purple.audit`).
    pub alerts: Alerts,
    /// When records cannot be written: stop the sandbox or let it run on.
    #[serde(default)]
    pub on_failure: OnFailure,
    /// The log's budget in bytes (`audit.max_size`).
    #[serde(default = "default_log_max_size")]
    pub log_max_size: u64,
    /// Resource-limit counters in the container's cgroup files.
    pub counters: Vec<LimitCounter>,
    /// Output binds' size limits, watched where no project quota holds them.
    #[serde(default)]
    pub disk_limits: crate::diskwatch::DiskLimits,
    /// Where a detached sandbox's output goes, read from [`Fds::output`].
    #[serde(default)]
    pub output: Option<OutputPlan>,
    /// The container's init process, whose exit status `exited` reports.
    pub init: Option<Init>,
    /// The numbers of the inherited descriptors.
    pub fds: Fds<RawFd>,
}

/// The output file of a detached sandbox and the most it may hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputPlan {
    pub path: PathBuf,
    pub limit: u64,
}

/// A process named by pid and start time (see `pidfd`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Init {
    pub pid: i32,
    /// `/proc/<pid>/stat` field 22; None if it could not be read at create.
    pub start_time: Option<u64>,
    /// The program init runs at create (device, inode): the runtime's own.
    /// Once it differs, `start` has let the user's program run, whether or
    /// not `start`'s signal reached the supervisor.
    #[serde(default)]
    pub exe: Option<(u64, u64)>,
}

/// The resolver's sockets: bound by `create` inside the container's
/// network namespace, served by the supervisor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolverFds<T> {
    pub netns: T,
    pub udp: T,
    pub tcp: T,
    /// One reserved upstream socket per upstream, in order.
    pub reserved: Vec<T>,
}

/// The descriptors the supervisor inherits, by name: `BorrowedFd`s in
/// `create`, their numbers in the supervisor (`RawFd`), then owned there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fds<T> {
    pub resolver: Option<ResolverFds<T>>,
    /// The seccomp listener socket (exec'd processes send their notify fd there).
    pub seccomp_listener: Option<T>,
    /// Notify fds already received (init's).
    pub seccomp_notify: Vec<T>,
    /// A pidfd of the caller the sandbox is tied to (`purple run`).
    pub caller: Option<T>,
    /// The write end of the egress helper's exit pipe: the helper lives as
    /// long as the supervisor holds it.
    pub egress_exit: Option<T>,
    /// The read end of a detached sandbox's stdout and stderr.
    pub output: Option<T>,
    /// The LLM gateway's listening socket, bound in the container's
    /// network namespace.
    pub gateway: Option<T>,
}

impl<T> Default for Fds<T> {
    fn default() -> Self {
        Self {
            resolver: None,
            seccomp_listener: None,
            seccomp_notify: Vec::new(),
            caller: None,
            egress_exit: None,
            output: None,
            gateway: None,
        }
    }
}

/// The most descriptors `spawn` passes on: the resolver's three and up to
/// three reserved upstream sockets, the seccomp listener and one notify fd,
/// the caller's pidfd, the egress exit pipe, the output pipe and the LLM
/// gateway's socket.
pub const MAX_FDS: usize = 12;

/// The first descriptor number after stdio.
const FIRST_FD: RawFd = 3;

impl<T> Fds<T> {
    /// The same names with `f` applied to each, in the one order that
    /// [`Fds::assign`] numbers them.
    fn map<U, E>(self, mut f: impl FnMut(T, &'static str) -> Result<U, E>) -> Result<Fds<U>, E> {
        let resolver = match self.resolver {
            Some(r) => Some(ResolverFds {
                netns: f(r.netns, "resolver netns")?,
                udp: f(r.udp, "resolver udp")?,
                tcp: f(r.tcp, "resolver tcp")?,
                reserved: r
                    .reserved
                    .into_iter()
                    .map(|fd| f(fd, "resolver upstream"))
                    .collect::<Result<_, _>>()?,
            }),
            None => None,
        };
        Ok(Fds {
            resolver,
            seccomp_listener: self
                .seccomp_listener
                .map(|fd| f(fd, "seccomp listener"))
                .transpose()?,
            seccomp_notify: self
                .seccomp_notify
                .into_iter()
                .map(|fd| f(fd, "seccomp notify"))
                .collect::<Result<_, _>>()?,
            caller: self.caller.map(|fd| f(fd, "caller pidfd")).transpose()?,
            egress_exit: self
                .egress_exit
                .map(|fd| f(fd, "egress exit pipe"))
                .transpose()?,
            output: self.output.map(|fd| f(fd, "output pipe")).transpose()?,
            gateway: self.gateway.map(|fd| f(fd, "llm gateway")).transpose()?,
        })
    }
}

impl Fds<BorrowedFd<'_>> {
    /// Numbers the descriptors as the supervisor will see them (3, 4, ...)
    /// and lists the sources in that order, for `spawn` to place.
    pub fn assign(self) -> Result<(Fds<RawFd>, Vec<RawFd>), PlanError> {
        let mut sources = Vec::new();
        let numbers = self.map(|fd, _| {
            if sources.len() == MAX_FDS {
                return Err(PlanError::TooManyFds);
            }
            sources.push(fd.as_raw_fd());
            Ok(FIRST_FD + sources.len() as RawFd - 1)
        })?;
        Ok((numbers, sources))
    }
}

impl Fds<RawFd> {
    /// Takes ownership of the inherited descriptors (once: call it once per
    /// process), checking that each one is open.
    pub fn take(self) -> Result<Fds<OwnedFd>, PlanError> {
        self.map(|fd, name| {
            // SAFETY: F_GETFD only reads the descriptor's flags.
            if fd < FIRST_FD || unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
                return Err(PlanError::NotInherited { fd, name });
            }
            // SAFETY: open (checked above), placed at this number by `spawn`
            // for this process alone, and taken once.
            Ok(unsafe { OwnedFd::from_raw_fd(fd) })
        })
    }
}

fn default_log_max_size() -> u64 {
    purple_policy::supervision::DEFAULT_LOG_MAX_SIZE
}

impl Plan {
    /// Writes the plan to `path`, 0600, no link followed.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let json = serde_json::to_vec(self).expect("plans serialise");
        hostfs::write_private(path, &json)
    }

    pub fn load(path: &Path) -> Result<Self, PlanError> {
        let err = |reason: String| PlanError::Read {
            path: path.to_owned(),
            reason,
        };
        let bytes = fs::read(path).map_err(|e| err(e.to_string()))?;
        serde_json::from_slice(&bytes).map_err(|e| err(e.to_string()))
    }

    /// The names of the rule ids the container's programs report.
    pub fn rule_book(&self) -> RuleBook {
        RuleBook {
            rules: self.rules.clone(),
            domains: self
                .dns
                .as_ref()
                .map(|d| d.domains.clone())
                .unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptors_are_numbered_in_one_order_from_three() {
        let files: Vec<std::fs::File> = (0..8)
            .map(|_| std::fs::File::open("/dev/null").unwrap())
            .collect();
        let b: Vec<BorrowedFd> = files.iter().map(std::os::fd::AsFd::as_fd).collect();
        let fds = Fds {
            resolver: Some(ResolverFds {
                netns: b[0],
                udp: b[1],
                tcp: b[2],
                reserved: vec![b[3], b[4]],
            }),
            seccomp_listener: Some(b[5]),
            seccomp_notify: vec![b[6]],
            caller: None,
            egress_exit: Some(b[7]),
            output: None,
            gateway: None,
        };
        let (numbers, sources) = fds.assign().unwrap();
        assert_eq!(
            numbers,
            Fds {
                resolver: Some(ResolverFds {
                    netns: 3,
                    udp: 4,
                    tcp: 5,
                    reserved: vec![6, 7],
                }),
                seccomp_listener: Some(8),
                seccomp_notify: vec![9],
                caller: None,
                egress_exit: Some(10),
                output: None,
                gateway: None,
            }
        );
        let raw: Vec<RawFd> = files.iter().map(AsRawFd::as_raw_fd).collect();
        assert_eq!(sources, raw);
    }

    #[test]
    fn more_descriptors_than_spawn_places_are_refused() {
        let files: Vec<std::fs::File> = (0..MAX_FDS + 1)
            .map(|_| std::fs::File::open("/dev/null").unwrap())
            .collect();
        let fds = Fds {
            seccomp_notify: files.iter().map(std::os::fd::AsFd::as_fd).collect(),
            ..Fds::default()
        };
        assert!(matches!(fds.assign(), Err(PlanError::TooManyFds)));
    }

    #[test]
    fn a_descriptor_not_inherited_is_named() {
        let fds = Fds::<RawFd> {
            caller: Some(1000),
            ..Fds::default()
        };
        let err = fds.take().unwrap_err().to_string();
        assert!(
            err.contains("1000") && err.contains("caller pidfd"),
            "{err}"
        );
    }
}
