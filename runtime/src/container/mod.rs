//! Purple's lifecycle glue over libcontainer: everything a container owns is
//! recorded before it is created, so that `delete` (and `delete --force` after a
//! `create` that was killed half-way) can remove all of it.
//!
//! State layout under the root (default `/run/purple`):
//! - `<root>/<id>/`: libcontainer's state (state.json, its copy of the config).
//! - `<root>/.purple/<id>/record.json`: what Purple created (cgroup paths).
//! - `<root>/.purple/<id>/bundle/config.json`: the effective spec libcontainer runs.
//!
//! IDs never start with a dot, so `.purple` cannot collide with a container.

use std::fs;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use libcgroups::common::{
    create_cgroup_manager, AnyCgroupManager, CgroupConfig, CgroupManager, ControllerOpt,
    FreezerState,
};
use libcontainer::container::builder::ContainerBuilder;
use libcontainer::container::{Container, ContainerStatus};
use libcontainer::error::LibcontainerError;
use libcontainer::syscall::syscall::SyscallType;
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxResources, Process, Spec};
use purple_policy::annotations::{AUDIT_ANNOTATION, POLICY_NAME_ANNOTATION, PROFILE_ANNOTATION};
use purple_policy::hostfs;
use purple_policy::supervision::{AuditPlan, SessionPlan, SupervisionError};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::audit::{self, AuditLog, Entry, Kind};
use crate::bundle::{self, Bundle, BundleError};
use crate::cgroup2::{self, Cgroup2Error};
use crate::cgroupfs::{self, CgroupMountError};
use crate::egress::{self, EgressError};
use crate::id::ContainerId;
use crate::network::{self, Enforcement, NetworkError, RuleBook};
use crate::pidfd;
use crate::scope::ScopedExecutor;
use crate::seccomp::{self, Interim, Profile};
use crate::supervisor;
use crate::supervisor::plan::{Fds, Init, OutputPlan, Plan, PLAN_FILE};
use crate::tenant;

mod control;
mod create;
mod delete;
mod exec;

pub use create::CreateOptions;
pub use exec::ExecOptions;

/// Reads of a state.json caught mid-rewrite before giving up (5 ms apart).
const STATE_READ_RETRIES: u32 = 4;
/// How long delete waits for a killed container's processes to be reaped.
pub const REMOVE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error("container \"{0}\" does not exist")]
    NotExist(ContainerId),
    #[error("container \"{0}\" already exists: pick another ID or delete it first")]
    Exists(ContainerId),
    #[error("container \"{0}\": container not running")]
    NotRunning(ContainerId),
    #[error("cannot start container \"{id}\": it is {status}, not created")]
    CannotStart { id: ContainerId, status: String },
    #[error("cannot delete container \"{id}\" that is not stopped: {status} (use --force)")]
    NotStopped { id: ContainerId, status: String },
    #[error("container \"{id}\" is not {want}: it is {status}")]
    WrongStatus {
        id: ContainerId,
        want: &'static str,
        status: String,
    },
    #[error("container \"{id}\" was left half-created ({reason}): remove it with delete --force")]
    Inconsistent { id: ContainerId, reason: String },
    #[error(transparent)]
    Bundle(#[from] BundleError),
    #[error(transparent)]
    Cgroup2(#[from] Cgroup2Error),
    #[error(transparent)]
    CgroupMount(#[from] CgroupMountError),
    #[error(transparent)]
    Network(#[from] NetworkError),
    #[error(transparent)]
    Egress(#[from] EgressError),
    #[error(transparent)]
    Trail(#[from] crate::trail::TrailError),
    #[error(transparent)]
    Disk(#[from] crate::diskwatch::DiskError),
    #[error(transparent)]
    Gateway(#[from] crate::gateway::GatewayError),
    #[error("cgroup of container \"{id}\": {msg}")]
    Cgroup { id: ContainerId, msg: String },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error(transparent)]
    Supervision(#[from] SupervisionError),
    #[error("annotation {AUDIT_ANNOTATION}: {0}")]
    AuditPlan(String),
    #[error("{0}")]
    Libcontainer(String),
    #[error("annotation {PROFILE_ANNOTATION}: {0}")]
    Profile(String),
    /// An annotation the node does not take (unknown, not honoured, or
    /// looser than its floor).
    #[error("{0}")]
    Floor(String),
    #[error("exec: {0}")]
    InvalidProcess(String),
    #[error("{0}: {HIDDEN_CGROUPS}")]
    CgroupsHidden(String),
}

/// Why libcontainer cannot find cgroups, and the fix, when this process sees
/// none mounted (see [`cgroup2::hidden`]).
const HIDDEN_CGROUPS: &str = "no cgroup filesystem is mounted in this mount namespace, yet \
/proc/self/cgroup lists this process's cgroups: `ip netns exec` remounts /sys without them. \
Enter the network namespace with `nsenter --net=/run/netns/NAME` instead (or mount the cgroup \
filesystems under /sys/fs/cgroup); `purple doctor` checks the rest of this host";

/// libcontainer's errors hide their cause behind `#[error(transparent)]` chains
/// and `tracing` calls; flatten the chain into one line for the user.
fn lc(err: LibcontainerError) -> LifecycleError {
    let mut msg = err.to_string();
    let mut src = std::error::Error::source(&err);
    while let Some(s) = src {
        let s_msg = s.to_string();
        if !msg.contains(&s_msg) {
            msg = format!("{msg}: {s_msg}");
        }
        src = s.source();
    }
    if let Some(init) = init_failure(&format!("{err:?}")).filter(|i| !msg.contains(i)) {
        msg = format!("{msg}: the container's init failed: {init}");
    }
    LifecycleError::Libcontainer(msg)
}

/// The reason the container's init sent before dying. libcontainer keeps it
/// only inside a `CreateContainerError` that has no `source()`, so when the
/// runtime was waiting for another message (the seccomp notify fd, say) the
/// user would read "failed seccomp listener" alone; its `Debug` form still
/// holds the message.
fn init_failure(debug: &str) -> Option<String> {
    let start = debug.find("ExecFailed(\"")? + "ExecFailed(\"".len();
    let rest = &debug[start..];
    let end = rest.find("\")")?;
    Some(rest[..end].replace("\\\"", "\""))
}

fn remove_dir(dir: &Path) -> Result<(), LifecycleError> {
    match fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(dir)(e)),
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> LifecycleError + '_ {
    move |source| LifecycleError::Io {
        path: path.to_owned(),
        source,
    }
}

/// What Purple created for a container, written before libcontainer runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    /// The user's bundle directory (state reports this one).
    pub bundle: PathBuf,
    /// `linux.cgroupsPath` of the effective spec.
    pub cgroups_path: Option<PathBuf>,
    pub systemd: bool,
    /// The cgroup2 directory Purple created (hybrid hosts only).
    pub cgroup2_dir: Option<PathBuf>,
    /// Where the container's BPF links and maps are pinned.
    #[serde(default)]
    pub bpf_dir: Option<PathBuf>,
    /// The container's audit log.
    #[serde(default)]
    pub audit_log: Option<PathBuf>,
    /// The policy name records carry (`io.purple.policy.name`).
    #[serde(default)]
    pub policy: Option<String>,
    /// The supervisor process, once started.
    #[serde(default)]
    pub supervisor_pid: Option<u32>,
    /// The user-mode network helper (slirp4netns), once started.
    #[serde(default)]
    pub egress_pid: Option<u32>,
    /// The container shares its caller's network namespace under a Purple
    /// plan: its processes, `exec`'d ones too, are kept from abstract unix
    /// sockets created outside it (Landlock scoping).
    #[serde(default)]
    pub scope_abstract_unix: bool,
    /// The init process's start time: its pid alone may name a later
    /// process once init is gone.
    #[serde(default)]
    pub init_start_time: Option<u64>,
    /// What `purple run` asked for; engines' containers have none.
    #[serde(default)]
    pub launch: Option<Launch>,
    /// Where the container is registered with the host's activity trail
    /// (written before it is).
    #[serde(default)]
    pub trail: Option<purple_ebpf::trail::Registration>,
    /// What this run's first audit record binds (a random run id, the
    /// policy's and the bundle's digests): a log moved onto another run
    /// does not match it.
    #[serde(default)]
    pub binding: Option<serde_json::Value>,
}

/// A sandbox of `purple run`, as `purple ps` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Launch {
    /// The profile name or policy file given to `--profile`.
    pub profile: String,
    pub command: Vec<String>,
    /// Detached (`run -d`): the sandbox's stdout and stderr go to
    /// [`Runtime::output_log`], at most this many bytes.
    pub output_limit: Option<u64>,
    /// The `purple run` that made it (its undertaker deletes only that).
    #[serde(default)]
    pub caller_pid: u32,
}

fn save_record(pdir: &Path, record: &Record) -> Result<(), LifecycleError> {
    let path = pdir.join("record.json");
    let json = serde_json::to_vec(record).expect("record serialises");
    hostfs::write_private(&path, &json).map_err(io_err(&path))
}

/// The supervisor's seccomp listener (`linux.seccomp.listenerPath`), next to the record.
const SECCOMP_SOCKET: &str = "seccomp.sock";

/// The state root and how cgroups are managed; every command starts here.
#[derive(Debug, Clone)]
pub struct Runtime {
    root: PathBuf,
    systemd: bool,
    /// Whether bundle annotations may name alert targets.
    annotation_alerts: bool,
    /// The node's configuration: default profile, honoured annotations, floor.
    node: purple_policy::node::Node,
}

impl Runtime {
    pub fn new(root: impl Into<PathBuf>, systemd: bool) -> Self {
        Self {
            root: root.into(),
            systemd,
            annotation_alerts: false,
            node: purple_policy::node::Node::default(),
        }
    }

    /// The node configuration `create` holds bundles to.
    pub fn with_node(mut self, node: purple_policy::node::Node) -> Self {
        self.node = node;
        self
    }

    /// Takes alert targets from bundle annotations: for bundles only the
    /// host writes (`purple run`'s own) or nodes whose bundle authors are
    /// trusted as root.
    pub fn with_annotation_alerts(mut self, trusted: bool) -> Self {
        self.annotation_alerts = trusted;
        self
    }

    fn state_dir(&self, id: &ContainerId) -> PathBuf {
        self.root.join(id.as_str())
    }

    /// Makes the state root and its private part. Others may pass the root
    /// but not list it: a `purple run` sandbox's user namespace reaches its
    /// rootfs in `bundles/` through it. Records stay in `.purple/`, 0700;
    /// libcontainer's state directories are 0700 themselves.
    pub fn make_root(&self) -> io::Result<()> {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o711)
            .create(&self.root)?;
        // Earlier versions made it 0700: a root of theirs (root's, with
        // records) is opened for passing, nothing more.
        let meta = fs::metadata(&self.root)?;
        if meta.uid() == 0 && meta.mode() & 0o001 == 0 && self.root.join(".purple").is_dir() {
            let mode = (meta.mode() & 0o7777) | 0o011;
            fs::set_permissions(&self.root, fs::Permissions::from_mode(mode))?;
        }
        purple_policy::hostfs::private_dirs(&self.root.join(".purple"))
    }

    fn purple_dir(&self, id: &ContainerId) -> PathBuf {
        self.root.join(".purple").join(id.as_str())
    }

    /// The supervisor plan of `id` (see [`Plan`]).
    fn plan_path(&self, id: &ContainerId) -> PathBuf {
        self.purple_dir(id).join(PLAN_FILE)
    }

    /// The private bundle `purple run` writes for `id`; delete removes it.
    pub fn run_bundle(&self, id: &ContainerId) -> PathBuf {
        self.root.join("bundles").join(id.as_str())
    }

    /// The output of a detached `purple run` sandbox (`purple logs`).
    pub fn output_log(&self, id: &ContainerId) -> PathBuf {
        self.purple_dir(id).join("output.log")
    }

    /// What Purple recorded for `id`, if anything.
    pub fn record(&self, id: &ContainerId) -> Option<Record> {
        let text = fs::read(self.purple_dir(id).join("record.json")).ok()?;
        serde_json::from_slice(&text).ok()
    }

    /// The user's bundle directory. libcontainer's state names the effective
    /// bundle, which `exec` must keep reading; engines expect the original.
    pub fn user_bundle(&self, c: &Container) -> PathBuf {
        ContainerId::parse(c.id())
            .ok()
            .and_then(|id| self.record(&id))
            .map(|r| r.bundle)
            .unwrap_or_else(|| c.bundle().clone())
    }

    /// The audit log of `id`: the one its record names while it exists,
    /// else the default path (a policy's own `log_path` is only known while
    /// the container exists).
    pub fn audit_log(&self, id: &ContainerId) -> PathBuf {
        self.record(id)
            .and_then(|r| r.audit_log)
            .unwrap_or_else(|| audit::default_path(id.as_str()))
    }

    /// The supervisor of `id` (the writer of its log while it runs) and
    /// whether it is still running.
    pub fn supervisor(&self, id: &ContainerId) -> Option<(u32, bool)> {
        let pid = self.record(id)?.supervisor_pid?;
        Some((pid, supervisor::running(pid, &self.plan_path(id))))
    }

    /// Waits (up to 2 s) for the supervisor of `id` to write its last records
    /// and exit; a foreground `run` calls it while init is still an unreaped
    /// zombie, so that `exited` carries init's exit status.
    pub fn await_supervisor(&self, id: &ContainerId) {
        if let Some(pid) = self.record(id).and_then(|r| r.supervisor_pid) {
            supervisor::wait_exit(pid, &self.plan_path(id), Duration::from_secs(2));
        }
    }

    /// Whether anything of `id` exists under the root.
    pub fn exists(&self, id: &ContainerId) -> bool {
        self.state_dir(id).exists() || self.purple_dir(id).exists()
    }

    /// Loads a container with its status refreshed from the kernel.
    pub fn load(&self, id: &ContainerId) -> Result<Container, LifecycleError> {
        let dir = self.state_dir(id);
        if !dir.join("state.json").exists() {
            return Err(if self.exists(id) {
                LifecycleError::Inconsistent {
                    id: id.clone(),
                    reason: "no state.json".into(),
                }
            } else {
                LifecycleError::NotExist(id.clone())
            });
        }
        // libcontainer rewrites state.json in place (truncate, then write), so
        // a reader racing a writer can find it empty or cut short: read again.
        let mut attempt = 0;
        let mut c = loop {
            match Container::load(dir.clone()) {
                Ok(c) => break c,
                Err(_) if attempt < STATE_READ_RETRIES => {
                    attempt += 1;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => {
                    return Err(LifecycleError::Inconsistent {
                        id: id.clone(),
                        reason: lc(e).to_string(),
                    })
                }
            }
        };
        c.refresh_status().map_err(lc)?;
        if self.init_recycled(id, &c) {
            // Forget the pid: libcontainer's own delete and kill would
            // otherwise signal whatever process holds it now.
            c.state.pid = None;
            c.set_status(ContainerStatus::Stopped);
        }
        Ok(c)
    }

    /// Whether the recorded init pid now names another process.
    fn init_recycled(&self, id: &ContainerId, c: &Container) -> bool {
        let (Some(pid), Some(start)) = (c.pid(), self.record(id).and_then(|r| r.init_start_time))
        else {
            return false;
        };
        c.status() != ContainerStatus::Stopped && pidfd::start_time(pid.as_raw()) != Some(start)
    }

    /// A pidfd for the container's init process, if it is still that process.
    fn init_pidfd(&self, id: &ContainerId, c: &Container) -> Option<OwnedFd> {
        let pid = c.pid()?.as_raw();
        match self.record(id).and_then(|r| r.init_start_time) {
            Some(start) => pidfd::open_verified(pid, start),
            None => pidfd::open(pid),
        }
    }

    /// IDs of all containers under the root, sorted.
    pub fn list(&self) -> Result<Vec<ContainerId>, LifecycleError> {
        let entries = match fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err(&self.root)(e)),
        };
        let mut ids: Vec<ContainerId> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| ContainerId::parse(&e.file_name().to_string_lossy()).ok())
            .filter(|id| self.state_dir(id).join("state.json").exists())
            .collect();
        ids.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        Ok(ids)
    }

    /// Appends one record to the container's audit log. Auditing never stops
    /// the lifecycle: a failure is logged as a warning.
    fn audit(&self, id: &ContainerId, record: &Record, e: Entry) {
        self.write_audit(id, record, &[e], None);
    }

    /// Appends one record and a checkpoint signed with the host's key (a
    /// seal when `seal`: nothing follows it in this run).
    fn audit_signed(&self, id: &ContainerId, record: &Record, e: Entry, seal: bool) {
        self.write_audit(id, record, &[e], Some(seal));
    }

    fn write_audit(&self, id: &ContainerId, record: &Record, e: &[Entry], sign: Option<bool>) {
        let Some(path) = &record.audit_log else {
            return;
        };
        let written =
            AuditLog::open(path, id.as_str(), record.policy.as_deref()).and_then(|mut log| {
                match sign {
                    Some(seal) => log.append_signed(e, &audit::seal::host_key()?, seal),
                    None => log.append(e),
                }
            });
        if let Err(err) = written {
            tracing::warn!("audit record for {id}: {err}");
        }
    }

    fn cgroup_manager(&self, c: &Container) -> Result<AnyCgroupManager, LifecycleError> {
        let id = ContainerId::parse(c.id()).expect("loaded containers have valid IDs");
        let cgroup_path = c.spec().map_err(lc)?.cgroup_path;
        create_cgroup_manager(CgroupConfig {
            cgroup_path,
            systemd_cgroup: c.systemd(),
            container_name: c.id().to_owned(),
        })
        .map_err(|e| LifecycleError::Cgroup {
            id,
            msg: e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::init_failure;

    #[test]
    fn the_init_reason_is_read_from_a_create_error() {
        let debug = r#"CreateContainerError(MainProcess(SeccompListener(ChannelError(UnexpectedMessage { expected: "SeccompNotify", received: ExecFailed("failed to prepare rootfs") }))), None)"#;
        assert_eq!(
            init_failure(debug).as_deref(),
            Some("failed to prepare rootfs")
        );
        assert_eq!(init_failure("InvalidID(\"../x\")"), None);
    }
}
