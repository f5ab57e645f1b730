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
use purple_policy::hostfs;
use purple_policy::plan::{POLICY_NAME_ANNOTATION, PROFILE_ANNOTATION};
use purple_policy::supervision::{AuditPlan, SessionPlan, SupervisionError};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::audit::{self, AuditLog, Entry};
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
use crate::supervisor::plan::{Fds, Init, Plan, PLAN_FILE};
use crate::tenant;

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
    #[error("cgroup of container \"{id}\": {msg}")]
    Cgroup { id: ContainerId, msg: String },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error(transparent)]
    Supervision(#[from] SupervisionError),
    #[error("annotation io.purple.audit: {0}")]
    AuditPlan(String),
    #[error("{0}")]
    Libcontainer(String),
    #[error("annotation {PROFILE_ANNOTATION}: {0}")]
    Profile(String),
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
filesystems under /sys/fs/cgroup)";

/// The error of a cgroup step, with the reason and fix when cgroups are
/// hidden from this mount namespace.
fn explain_cgroups(err: LifecycleError) -> LifecycleError {
    if cgroup2::hidden() {
        LifecycleError::CgroupsHidden(err.to_string())
    } else {
        err
    }
}

/// Merges the profile named by `io.purple.profile` into the spec (tighten
/// only). The name comes from the bundle's author: only a profile's name is
/// taken (built-in or under /etc/purple/policies), never a path, and a broken
/// profile is reported without its text.
fn apply_profile(spec: Spec, bundle: &Path) -> Result<Spec, LifecycleError> {
    let Some(name) = spec
        .annotations()
        .as_ref()
        .and_then(|a| a.get(PROFILE_ANNOTATION).cloned())
    else {
        return Ok(spec);
    };
    // The image brings its own filesystem: the profile's binds are not used.
    let ctx = purple_policy::load::Context {
        base: bundle.to_owned(),
        host_paths: false,
    };
    let loaded = purple_policy::profiles::resolve_for_annotation(&name, &ctx)
        .map_err(|e| LifecycleError::Profile(e.to_string()))?;
    purple_policy::merge::tighten(&spec, &loaded.policy)
        .map_err(|e| LifecycleError::Profile(e.to_string()))
}

/// Alert targets make root act on the host: run a command in the host's
/// namespaces and cgroups, connect to any Unix socket (a root-only control
/// socket answers root), send HTTP from the host's network (its loopback
/// services, the cloud metadata address). A bundle's author is not the host,
/// so its annotation may name none unless the node said so
/// (`--annotation-alerts`); a profile's come from the host's configuration.
fn check_alert_source(spec: &Spec, trusted: bool) -> Result<(), LifecycleError> {
    let own = AuditPlan::from_annotations(spec.annotations().as_ref())?;
    if own.alerts.is_empty() || trusted {
        return Ok(());
    }
    Err(LifecycleError::AuditPlan(
        "alerts come only from the host's configuration: a command would run as root on the \
         host, a socket or URL would be reached by root; give them in the policy of \
         `purple run` or in a profile under /etc/purple/policies, or start purple-oci with \
         --annotation-alerts where every bundle author is trusted as root"
            .into(),
    ))
}

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

/// libcontainer 0.7's tenants enter every namespace of the container except
/// its user namespace (missing from the types it joins), so an exec'd process
/// would keep the host's ids: root in it would be root on the host. Entering
/// it here, before libcontainer forks, puts the tenant in it; the container's
/// other namespaces belong to it and can still be entered from inside.
fn join_user_namespace(init: Pid, init_fd: &OwnedFd) -> Result<(), LifecycleError> {
    use std::os::unix::fs::MetadataExt;
    let theirs = PathBuf::from(format!("/proc/{init}/ns/user"));
    let ours = Path::new("/proc/self/ns/user");
    let inode = |p: &Path| fs::metadata(p).map(|m| m.ino()).map_err(io_err(p));
    if inode(&theirs)? == inode(ours)? {
        return Ok(());
    }
    // Through the pidfd: the namespace of the verified process, not of
    // whatever holds the pid now.
    nix::sched::setns(init_fd, nix::sched::CloneFlags::CLONE_NEWUSER)
        .map_err(|e| io_err(&theirs)(io::Error::from(e)))
}

/// Why [`Runtime::purge`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purge {
    Delete,
    FailedCreate,
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
}

fn save_record(pdir: &Path, record: &Record) -> Result<(), LifecycleError> {
    let path = pdir.join("record.json");
    let json = serde_json::to_vec(record).expect("record serialises");
    hostfs::write_private(&path, &json).map_err(io_err(&path))
}

/// The supervisor's seccomp listener (`linux.seccomp.listenerPath`), next to the record.
const SECCOMP_SOCKET: &str = "seccomp.sock";

/// Where the container's audit log goes: the plan's `log_path`, which must
/// lie under the log root (/var/log/purple), or the default. The plan may be
/// a bundle author's: anywhere else, root would append to a file of their
/// choosing.
fn log_path(id: &ContainerId, plan: &AuditPlan) -> Result<PathBuf, LifecycleError> {
    let Some(path) = &plan.log_path else {
        return Ok(audit::default_path(id.as_str()));
    };
    let bad = |why: &str| {
        Err(LifecycleError::AuditPlan(format!(
            "log_path {}: {why}",
            path.display()
        )))
    };
    let plain = path.components().all(|c| {
        matches!(
            c,
            std::path::Component::RootDir | std::path::Component::Normal(_)
        )
    });
    if !path.is_absolute() || !plain {
        return bad(&format!(
            "must be an absolute host path without '.' or '..' (e.g. {}/agent.jsonl)",
            audit::LOG_DIR
        ));
    }
    if !path.starts_with(audit::LOG_DIR) || path == Path::new(audit::LOG_DIR) {
        return bad(&format!(
            "must be a file under {}, the log root: anywhere else Purple, as root, would \
             write where the bundle says",
            audit::LOG_DIR
        ));
    }
    Ok(path.clone())
}

/// Options of `create` and `run`.
#[derive(Debug, Default, Clone)]
pub struct CreateOptions {
    pub bundle: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub no_pivot: bool,
    pub preserve_fds: i32,
    /// `false` keeps the init process a child of the caller (foreground `run`).
    pub detach: bool,
    /// The sandbox lives only as long as the calling process (`purple run`):
    /// when it dies, SIGKILL included, the supervisor kills and deletes it.
    pub tied_to_caller: bool,
}

/// Options of `exec`.
#[derive(Debug, Default, Clone)]
pub struct ExecOptions {
    pub process: Option<PathBuf>,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: Option<PathBuf>,
    pub tty: bool,
    pub user: Option<(u32, Option<u32>)>,
    pub additional_gids: Vec<u32>,
    pub caps: Vec<String>,
    pub no_new_privs: bool,
    pub detach: bool,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub preserve_fds: i32,
}

/// The state root and how cgroups are managed; every command starts here.
#[derive(Debug, Clone)]
pub struct Runtime {
    root: PathBuf,
    systemd: bool,
    /// Whether bundle annotations may name alert targets.
    annotation_alerts: bool,
}

impl Runtime {
    pub fn new(root: impl Into<PathBuf>, systemd: bool) -> Self {
        Self {
            root: root.into(),
            systemd,
            annotation_alerts: false,
        }
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

    /// Creates the container: namespaces, cgroups, mounts and seccomp set up,
    /// the init process blocked until `start`. On any failure everything
    /// created so far is removed again.
    pub fn create(
        &self,
        id: &ContainerId,
        opts: &CreateOptions,
    ) -> Result<Container, LifecycleError> {
        let purple_root = self.root.join(".purple");
        hostfs::private_dirs(&purple_root).map_err(io_err(&purple_root))?;
        if self.state_dir(id).exists() {
            return Err(LifecycleError::Exists(id.clone()));
        }
        // The record directory is the lock: two creates of one ID cannot both make it.
        let pdir = self.purple_dir(id);
        match fs::DirBuilder::new().mode(0o700).create(&pdir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(LifecycleError::Exists(id.clone()))
            }
            Err(e) => return Err(io_err(&pdir)(e)),
        }
        let created = self.create_owned(id, opts, &pdir);
        if created.is_err() {
            if let Err(e) = self.purge(id, self.record(id).as_ref(), Purge::FailedCreate) {
                tracing::warn!("cleanup after failed create of {id}: {e}");
            }
        }
        created.map_err(|e| match e {
            // libcontainer's "failed to detect cgroup setup" says neither why nor what to do.
            LifecycleError::Libcontainer(_) => explain_cgroups(e),
            e => e,
        })
    }

    fn create_owned(
        &self,
        id: &ContainerId,
        opts: &CreateOptions,
        pdir: &Path,
    ) -> Result<Container, LifecycleError> {
        let bundle = Bundle::load(&opts.bundle)?;
        check_alert_source(&bundle.spec, self.annotation_alerts)?;
        let default_cgroup = (!self.systemd).then(|| PathBuf::from(format!("/purple/{id}")));
        let mut spec = apply_profile(
            bundle.effective_spec(default_cgroup.as_deref()),
            &bundle.dir,
        )?;
        // Rules are checked (and names resolved) before anything is created.
        let annotations = spec.annotations().clone();
        let shared_netns = egress::shares_caller_netns(&spec);
        let enforcement = Enforcement::from_annotations(annotations.as_ref(), shared_netns)?;
        if enforcement.plan.egress.is_some() && !egress::has_private_netns(&spec) {
            return Err(EgressError::NoPrivateNetns.into());
        }
        let audit_plan = AuditPlan::from_annotations(annotations.as_ref())?;
        let session = SessionPlan::from_annotations(annotations.as_ref())?;
        crate::alert::check(&audit_plan.alerts).map_err(LifecycleError::AuditPlan)?;
        let audit_log = log_path(id, &audit_plan)?;
        // Opened (made 0600, no link followed) now, so a refused path fails
        // the create instead of every record later.
        AuditLog::open(&audit_log, id.as_str(), None).map_err(|e| {
            LifecycleError::AuditPlan(format!("log_path {}: {e}", audit_log.display()))
        })?;
        let layout = cgroup2::detect();
        let mut record = Record {
            bundle: bundle.dir.clone(),
            cgroups_path: spec.linux().as_ref().and_then(|l| l.cgroups_path().clone()),
            systemd: self.systemd,
            cgroup2_dir: layout.purple_dir(id.as_str()),
            bpf_dir: Some(network::pin_dir(id.as_str())),
            audit_log: Some(audit_log.clone()),
            policy: spec
                .annotations()
                .as_ref()
                .and_then(|a| a.get(POLICY_NAME_ANNOTATION).cloned()),
            supervisor_pid: None,
            egress_pid: None,
            // Engines' containers on the host's network too (podman's
            // `--network host`), when they run under a Purple plan.
            scope_abstract_unix: shared_netns && enforcement.requested,
            init_start_time: None,
        };
        save_record(pdir, &record)?;
        // The filter exec'd processes get when the supervisor does not answer.
        let exec_seccomp =
            spec.linux()
                .as_ref()
                .and_then(|l| l.seccomp().clone())
                .map(|mut plain| {
                    seccomp::for_libcontainer(&mut plain);
                    plain
                });
        if record.bpf_dir.is_some() {
            // Refused before the container exists, not after.
            purple_ebpf::pin_root().map_err(NetworkError::from)?;
        }
        let (interim, seccomp_profile) =
            self.seccomp_listener(id, &record, &mut spec, pdir)?.unzip();
        seccomp::spec_for_libcontainer(&mut spec);
        let effective = pdir.join("bundle");
        bundle::write_spec(&spec, &effective)?;

        let visit = match (&record.cgroup2_dir, layout.unified()) {
            (Some(dir), Some(mount)) => {
                cgroup2::create(dir)?;
                Some(cgroup2::Visit::enter(dir, mount)?)
            }
            _ => None,
        };
        let mut base = ContainerBuilder::new(id.to_string(), SyscallType::default());
        if record.scope_abstract_unix {
            base = base.with_executor(ScopedExecutor {
                inner: libcontainer::workload::default::get_executor(),
            });
        }
        let container = base
            .with_pid_file(opts.pid_file.as_ref())
            .map_err(lc)?
            .with_console_socket(opts.console_socket.as_ref())
            .with_root_path(&self.root)
            .map_err(lc)?
            .with_preserved_fds(opts.preserve_fds)
            .as_init(&effective)
            .with_systemd(self.systemd)
            .with_detach(opts.detach)
            .with_no_pivot(opts.no_pivot)
            .build()
            .map_err(lc);
        drop(visit);
        let container = container?;

        let pid = container
            .pid()
            .ok_or_else(|| LifecycleError::Inconsistent {
                id: id.clone(),
                reason: "init process has no pid".into(),
            })?;
        record.init_start_time = pidfd::start_time(pid.as_raw());
        save_record(pdir, &record)?;
        cgroupfs::make_readonly(pid.as_raw(), &cgroupfs::readonly_destinations(&spec))?;
        let cgroup2_dir = match (&layout, &record.cgroup2_dir) {
            // init was born there (see Visit).
            (_, Some(dir)) => Some(dir.clone()),
            (cgroup2::Layout::V2, None) => Some(cgroup2::of_process(
                pid.as_raw(),
                Path::new("/sys/fs/cgroup"),
            )?),
            _ => None,
        };
        // The init process is still blocked before exec: nothing the agent runs
        // can send a packet before this returns.
        let helper = match enforcement.plan.egress {
            Some(_) => {
                let h = egress::start(id.as_str(), pid.as_raw(), pdir)?;
                record.egress_pid = Some(h.pid);
                save_record(pdir, &record)?;
                Some(h)
            }
            None => None,
        };
        let mut resolver = enforcement.prepare_resolver(pid.as_raw())?;
        if let Some(bpf_dir) = &record.bpf_dir {
            let port = resolver.as_ref().map(|r| r.config.port);
            enforcement.attach(
                cgroup2_dir.as_deref(),
                bpf_dir,
                port,
                audit_plan.record_allowed,
            )?;
            if let Some(r) = &mut resolver {
                r.install(bpf_dir).map_err(NetworkError::from)?;
            }
        }
        self.audit(
            id,
            &record,
            Entry::new(
                "lifecycle",
                json!({"event": "created", "pid": pid.as_raw()}),
            ),
        );
        let notifier = interim.and_then(Interim::finish);
        if notifier.as_ref().is_some_and(|n| !n.has_notify_fd()) {
            return Err(LifecycleError::Inconsistent {
                id: id.clone(),
                reason: "libcontainer never sent the seccomp notify fd".into(),
            });
        }
        // A pidfd names the caller even if its pid is reused after it dies.
        let caller = match opts.tied_to_caller {
            true => Some(
                pidfd::open(std::process::id() as i32)
                    .ok_or_else(|| io_err(Path::new("pidfd_open"))(io::Error::last_os_error()))?,
            ),
            false => None,
        };
        let Some(log) = &record.audit_log else {
            return Ok(container);
        };
        let (listener, notify) = notifier.as_ref().map(|n| n.handover()).unzip();
        let (fds, sources) = Fds {
            resolver: resolver.as_ref().map(|r| r.fds()),
            seccomp_listener: listener,
            seccomp_notify: notify.unwrap_or_default(),
            caller: caller.as_ref().map(|fd| fd.as_fd()),
            // The helper exits when its exit pipe closes: the supervisor holds
            // the write end, so the helper lives exactly as long as the sandbox.
            egress_exit: helper.as_ref().map(|h| h.exit.as_fd()),
        }
        .assign()
        .map_err(|e| io_err(Path::new("supervisor"))(io::Error::other(e)))?;
        let plan = Plan {
            id: id.to_string(),
            root: self.root.clone(),
            log: log.clone(),
            policy: record.policy.clone(),
            counters: record
                .cgroups_path
                .as_deref()
                .map(|p| cgroup2::limit_counters(p, cgroup2_dir.as_deref()))
                .unwrap_or_default(),
            cgroup2: cgroup2_dir,
            pins: record.bpf_dir.clone().filter(|d| d.exists()),
            rules: enforcement.rules,
            dns: resolver.as_ref().map(|r| r.config.clone()),
            seccomp: seccomp_profile.filter(|_| notifier.is_some()),
            exec_seccomp,
            session,
            alerts: audit_plan.alerts,
            init: Some(Init {
                pid: pid.as_raw(),
                start_time: record.init_start_time,
            }),
            fds,
        };
        let plan_path = self.plan_path(id);
        plan.save(&plan_path).map_err(io_err(&plan_path))?;
        let spid =
            supervisor::spawn(&plan_path, &sources).map_err(io_err(Path::new("supervisor")))?;
        record.supervisor_pid = Some(spid);
        save_record(pdir, &record)?;
        Ok(container)
    }

    /// Rewrites the spec's seccomp denials to notify a listener socket under
    /// `pdir` and answers them on a thread until the supervisor takes over
    /// (None: nothing to notify).
    fn seccomp_listener(
        &self,
        id: &ContainerId,
        record: &Record,
        spec: &mut Spec,
        pdir: &Path,
    ) -> Result<Option<(Interim, Profile)>, LifecycleError> {
        let socket = pdir.join(SECCOMP_SOCKET);
        let Some(profile) = seccomp::rewrite(spec, &socket) else {
            return Ok(None);
        };
        let listener = std::os::unix::net::UnixListener::bind(&socket).map_err(io_err(&socket))?;
        let notifier = seccomp::Notifier::new(listener, Vec::new(), profile.clone())
            .map_err(io_err(&socket))?;
        let (rt, id, record) = (self.clone(), id.clone(), record.clone());
        let interim = Interim::start(notifier, move |entries| {
            for e in entries {
                rt.audit(&id, &record, e);
            }
        });
        Ok(Some((interim, profile)))
    }

    /// Appends one record to the container's audit log. Auditing never stops
    /// the lifecycle: a failure is logged as a warning.
    fn audit(&self, id: &ContainerId, record: &Record, e: Entry) {
        let Some(path) = &record.audit_log else {
            return;
        };
        let written = AuditLog::open(path, id.as_str(), record.policy.as_deref())
            .and_then(|mut log| log.append(&[e]));
        if let Err(err) = written {
            tracing::warn!("audit record for {id}: {err}");
        }
    }

    /// Lets the init process exec the user's program, and returns once it has:
    /// a signal sent right after `start` must reach the program, not the
    /// runtime's init code (which would die of it or, as pid 1, ignore it).
    pub fn start(&self, id: &ContainerId) -> Result<Container, LifecycleError> {
        let mut c = self.load(id)?;
        if c.status() != ContainerStatus::Created {
            return Err(LifecycleError::CannotStart {
                id: id.clone(),
                status: c.status().to_string().to_lowercase(),
            });
        }
        let exe = |pid: Pid| fs::read_link(format!("/proc/{pid}/exe")).ok();
        let before = c.pid().and_then(exe);
        c.start().map_err(lc)?;
        if let Some(rec) = self.record(id) {
            self.audit(
                id,
                &rec,
                Entry::new("lifecycle", json!({"event": "started"})),
            );
            if let Some(pid) = rec.supervisor_pid {
                supervisor::started(pid, &self.plan_path(id));
            }
        }
        if let (Some(pid), Some(before)) = (c.pid(), before) {
            let deadline = Instant::now() + Duration::from_secs(1);
            while exe(pid).is_some_and(|now| now == before) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        Ok(c)
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

    /// Pids of every process in the container's cgroup.
    pub fn pids(&self, id: &ContainerId) -> Result<Vec<i32>, LifecycleError> {
        let c = self.load(id)?;
        let m = self.cgroup_manager(&c)?;
        let mut pids: Vec<i32> = m
            .get_all_pids()
            .map_err(|e| LifecycleError::Cgroup {
                id: id.clone(),
                msg: e.to_string(),
            })?
            .into_iter()
            .map(Pid::as_raw)
            .collect();
        pids.sort_unstable();
        Ok(pids)
    }

    /// Resource statistics of the container's cgroup.
    pub fn stats(&self, id: &ContainerId) -> Result<libcgroups::stats::Stats, LifecycleError> {
        let c = self.load(id)?;
        self.cgroup_manager(&c)?
            .stats()
            .map_err(|e| LifecycleError::Cgroup {
                id: id.clone(),
                msg: e.to_string(),
            })
    }

    /// The container's egress decisions so far (None without BPF programs).
    pub fn network_stats(
        &self,
        id: &ContainerId,
    ) -> Result<Option<purple_ebpf::Stats>, LifecycleError> {
        self.load(id)?;
        match self.record(id).and_then(|r| r.bpf_dir) {
            Some(dir) if dir.exists() => {
                Ok(Some(purple_ebpf::stats(&dir).map_err(NetworkError::from)?))
            }
            _ => Ok(None),
        }
    }

    /// The names of the rule ids the container's programs count and report
    /// (none known when its plan is unreadable).
    pub fn rule_book(&self, id: &ContainerId) -> RuleBook {
        Plan::load(&self.plan_path(id))
            .map(|p| p.rule_book())
            .unwrap_or_default()
    }

    /// Sends `signal` (a raw number, real-time signals included) to the init
    /// process, or with `all` to every process in the container's cgroup.
    pub fn kill(&self, id: &ContainerId, signal: i32, all: bool) -> Result<(), LifecycleError> {
        let c = self.load(id)?;
        let alive = matches!(
            c.status(),
            ContainerStatus::Created | ContainerStatus::Running | ContainerStatus::Paused
        );
        if !alive && !all {
            return Err(LifecycleError::NotRunning(id.clone()));
        }
        // Each target is held by a pidfd before it is checked, so a pid freed
        // and reused meanwhile is never signalled.
        let targets: Vec<OwnedFd> = if all {
            let held: Vec<(i32, OwnedFd)> = self
                .pids(id)?
                .into_iter()
                .filter_map(|pid| Some((pid, pidfd::open(pid)?)))
                .collect();
            let still = self.pids(id)?;
            held.into_iter()
                .filter(|(pid, _)| still.contains(pid))
                .map(|(_, fd)| fd)
                .collect()
        } else {
            self.init_pidfd(id, &c).into_iter().collect()
        };
        for fd in &targets {
            pidfd::send_signal(fd, signal).map_err(|source| LifecycleError::Io {
                path: format!("/proc/{}", c.pid().map_or(0, Pid::as_raw)).into(),
                source,
            })?;
        }
        // A frozen task cannot die until it is thawed.
        if signal == libc::SIGKILL && c.status() == ContainerStatus::Paused {
            self.cgroup_manager(&c)?
                .freeze(FreezerState::Thawed)
                .map_err(|e| LifecycleError::Cgroup {
                    id: id.clone(),
                    msg: e.to_string(),
                })?;
        }
        Ok(())
    }

    pub fn pause(&self, id: &ContainerId) -> Result<(), LifecycleError> {
        self.set_frozen(id, true)
    }

    pub fn resume(&self, id: &ContainerId) -> Result<(), LifecycleError> {
        self.set_frozen(id, false)
    }

    /// Freezes a running container (`pause`) or thaws a paused one (`resume`).
    fn set_frozen(&self, id: &ContainerId, frozen: bool) -> Result<(), LifecycleError> {
        let mut c = self.load(id)?;
        let (from, want) = match frozen {
            true => (ContainerStatus::Running, "running"),
            false => (ContainerStatus::Paused, "paused"),
        };
        if c.status() != from {
            return Err(LifecycleError::WrongStatus {
                id: id.clone(),
                want,
                status: c.status().to_string().to_lowercase(),
            });
        }
        match frozen {
            true => c.pause(),
            false => c.resume(),
        }
        .map_err(lc)
    }

    /// Applies new resource limits to a live container's cgroup.
    pub fn update(&self, id: &ContainerId, res: &LinuxResources) -> Result<(), LifecycleError> {
        let c = self.load(id)?;
        self.cgroup_manager(&c)?
            .apply(&ControllerOpt {
                resources: res,
                disable_oom_killer: false,
                oom_score_adj: None,
                freezer_state: None,
            })
            .map_err(|e| LifecycleError::Cgroup {
                id: id.clone(),
                msg: e.to_string(),
            })
    }

    /// Removes the container and everything Purple created for it. Without
    /// `force` a running container is refused; with it, a half-created one
    /// (no loadable state) is cleaned up from its record.
    pub fn delete(&self, id: &ContainerId, force: bool) -> Result<(), LifecycleError> {
        if !self.exists(id) {
            return if force {
                // A `purple run` killed before its create got far leaves only this.
                remove_dir(&self.run_bundle(id))
            } else {
                Err(LifecycleError::NotExist(id.clone()))
            };
        }
        // Checked before anything is stopped: from there no cgroup can be removed.
        if cgroup2::hidden() {
            return Err(LifecycleError::CgroupsHidden(format!(
                "cannot delete container \"{id}\""
            )));
        }
        let record = self.record(id);
        match self.load(id) {
            Ok(mut c) => {
                let status = c.status();
                if !force && !matches!(status, ContainerStatus::Stopped | ContainerStatus::Created)
                {
                    return Err(LifecycleError::NotStopped {
                        id: id.clone(),
                        status: status.to_string().to_lowercase(),
                    });
                }
                // libcontainer gives up removing cgroups after about half a second,
                // while a killed init stays a zombie (still counted by v1) until its
                // reaper gets to it; purge below retries for longer.
                if let Err(e) = c.delete(force) {
                    tracing::debug!("libcontainer delete of {id}: {}", lc(e));
                }
            }
            Err(e) if !force => return Err(e),
            Err(e) => tracing::debug!("force-deleting {id} without state: {e}"),
        }
        self.purge(id, record.as_ref(), Purge::Delete)
    }

    /// Removes what is left of `id` after libcontainer's delete, or instead of
    /// it when the container never got a loadable state. Every step is tried
    /// even when one fails; the state and record stay only if a kernel
    /// object could not be removed, so that `delete --force` can retry.
    fn purge(
        &self,
        id: &ContainerId,
        record: Option<&Record>,
        how: Purge,
    ) -> Result<(), LifecycleError> {
        let mut failed = None;
        if let Some(rec) = record {
            let mut step = |r: Result<(), LifecycleError>| {
                if let Err(e) = r {
                    tracing::debug!("delete of {id}: {e}");
                    failed.get_or_insert(e);
                }
            };
            // Stopped first, so that its last records precede "deleted".
            if let Some(pid) = rec.supervisor_pid {
                supervisor::stop(pid, &self.plan_path(id));
            }
            if let Some(pid) = rec.egress_pid {
                egress::stop(pid, id.as_str());
            }
            if let Some(path) = &rec.cgroups_path {
                step(self.remove_cgroup(id, path, rec.systemd, how));
            }
            if let Some(dir) = &rec.bpf_dir {
                step(purple_ebpf::detach(dir).map_err(|e| NetworkError::from(e).into()));
            }
            if let Some(dir) = &rec.cgroup2_dir {
                step(cgroup2::remove(dir, REMOVE_TIMEOUT).map_err(Into::into));
            }
        }
        if let Some(e) = failed {
            return Err(e);
        }
        if let Some(rec) = record {
            self.audit(
                id,
                rec,
                Entry::new("lifecycle", json!({"event": "deleted"})),
            );
        }
        for dir in [self.state_dir(id), self.purple_dir(id), self.run_bundle(id)] {
            remove_dir(&dir)?;
        }
        Ok(())
    }

    /// Kills what is left in the container's cgroups and removes them.
    fn remove_cgroup(
        &self,
        id: &ContainerId,
        path: &Path,
        systemd: bool,
        how: Purge,
    ) -> Result<(), LifecycleError> {
        let cgroup_err = |msg: String| LifecycleError::Cgroup {
            id: id.clone(),
            msg,
        };
        let m = match create_cgroup_manager(CgroupConfig {
            cgroup_path: path.to_owned(),
            systemd_cgroup: systemd,
            container_name: id.to_string(),
        }) {
            Ok(m) => m,
            // libcontainer builds its manager the same way, in this process and
            // mount namespace: it failed too and created no cgroup.
            Err(_) if how == Purge::FailedCreate => return Ok(()),
            Err(e) => return Err(cgroup_err(e.to_string())),
        };
        let deadline = Instant::now() + REMOVE_TIMEOUT;
        loop {
            // The manager SIGKILLs remaining tasks before each rmdir attempt.
            match m.remove() {
                Ok(()) => return Ok(()),
                // systemd removes the scope itself once it is empty.
                Err(_) if systemd => return Ok(()),
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                Err(e) => return Err(cgroup_err(format!("cannot remove {}: {e}", path.display()))),
            }
        }
    }

    /// Starts a new process in a running container; returns its pid.
    pub fn exec(&self, id: &ContainerId, opts: &ExecOptions) -> Result<Pid, LifecycleError> {
        check_exec(opts)?;
        let c = self.load(id)?;
        if c.status() != ContainerStatus::Running {
            return Err(LifecycleError::NotRunning(id.clone()));
        }
        // On hybrid hosts the tenant inherits the caller's cgroup2 directory: join
        // the container's first so that its eBPF programs cover the new process.
        if let Some(dir) = self.record(id).and_then(|r| r.cgroup2_dir) {
            cgroup2::join(&dir, 0)?;
        }
        // Held for the whole exec: libcontainer joins the namespaces of the
        // recorded pid, which must still be this container's init throughout.
        let init = self
            .init_pidfd(id, &c)
            .ok_or_else(|| LifecycleError::NotRunning(id.clone()))?;
        if let Some(pid) = c.pid() {
            join_user_namespace(pid, &init)?;
        }
        let pdir = self.purple_dir(id);
        let ceiling = tenant::Ceiling::of(&Bundle::load(&pdir.join("bundle"))?.spec);
        let process: Option<Process> = match (&opts.process, opts.tty) {
            (Some(p), _) => Some(read_process(p)?),
            (None, true) => Some(self.tty_process(&pdir, opts)?),
            (None, false) => None,
        };
        // A file of Purple's own when it changed the process (the terminal, the
        // profile's ceiling); the caller's otherwise.
        let process_file = match (process, &ceiling) {
            (Some(p), Some(ceiling)) => {
                Some(self.write_process(id, &pdir, &ceiling.cap_process(p))?)
            }
            (Some(p), None) if opts.process.is_none() => Some(self.write_process(id, &pdir, &p)?),
            (Some(_), None) => opts.process.clone(),
            (None, _) => None,
        };
        let own_file = process_file.is_some() && process_file != opts.process;
        let (caps, no_new_privs) = match &ceiling {
            Some(c) => (
                c.cap_names(&opts.caps),
                opts.no_new_privs || c.no_new_privileges(),
            ),
            None => (opts.caps.clone(), opts.no_new_privs),
        };
        let mut base = ContainerBuilder::new(id.to_string(), SyscallType::default())
            .with_root_path(&self.root)
            .map_err(lc)?
            .with_console_socket(opts.console_socket.as_ref())
            .with_pid_file(opts.pid_file.as_ref())
            .map_err(lc)?
            .with_preserved_fds(opts.preserve_fds);
        let plan = Plan::load(&self.plan_path(id)).map_err(|e| LifecycleError::Inconsistent {
            id: id.clone(),
            reason: e.to_string(),
        })?;
        let mut filtered = None;
        if let Some(plain) = plan.exec_seccomp {
            // The effective bundle holds the filter rewritten to notify, when
            // Purple rewrote it (a bundle's own listener is left alone).
            let socket = pdir.join(SECCOMP_SOCKET);
            let notify = Bundle::load(&pdir.join("bundle"))?
                .spec
                .linux()
                .as_ref()
                .and_then(|l| l.seccomp().clone())
                .filter(|s| s.listener_path().as_deref() == Some(socket.as_path()));
            filtered = Some(tenant::FilteredExecutor {
                filter: tenant::Filter::choose(plain, notify, &socket),
            });
        }
        let scoped = self.record(id).is_some_and(|r| r.scope_abstract_unix);
        base = match (filtered, scoped) {
            (Some(f), true) => base.with_executor(ScopedExecutor { inner: Box::new(f) }),
            (Some(f), false) => base.with_executor(f),
            (None, true) => base.with_executor(ScopedExecutor {
                inner: libcontainer::workload::default::get_executor(),
            }),
            (None, false) => base,
        };
        let mut builder = base
            .as_tenant()
            .with_detach(opts.detach)
            .with_env(opts.env.iter().cloned().collect())
            .with_cwd(opts.cwd.as_ref())
            .with_no_new_privs(no_new_privs)
            .with_capabilities(caps)
            .with_additional_gids(opts.additional_gids.clone())
            .with_user(opts.user.map(|u| u.0))
            .with_group(opts.user.and_then(|u| u.1))
            .with_process(process_file.as_ref());
        if process_file.is_none() {
            builder = builder.with_container_args(opts.args.clone());
        }
        let pid = builder.build().map_err(lc);
        if let Some(p) = process_file.as_ref().filter(|_| own_file) {
            let _ = fs::remove_file(p);
        }
        let pid = pid?;
        if pidfd::exited(&init) {
            // Init died while libcontainer looked up its namespaces by pid:
            // the new process may sit in another process's namespaces.
            if let Some(fd) = pidfd::open(pid.as_raw()) {
                let _ = pidfd::send_signal(&fd, libc::SIGKILL);
            }
            return Err(LifecycleError::NotRunning(id.clone()));
        }
        Ok(pid)
    }

    /// The process of `exec --tty CMD`: libcontainer only takes a terminal
    /// from a process file, so build one from the container's own process.
    fn tty_process(&self, pdir: &Path, opts: &ExecOptions) -> Result<Process, LifecycleError> {
        let bundle = Bundle::load(&pdir.join("bundle"))?;
        let mut process: Process = bundle.spec.process().clone().unwrap_or_default();
        process.set_args(Some(opts.args.clone()));
        process.set_terminal(Some(true));
        Ok(process)
    }

    fn write_process(
        &self,
        id: &ContainerId,
        pdir: &Path,
        process: &Process,
    ) -> Result<PathBuf, LifecycleError> {
        let path = pdir.join(format!("exec-{}-{}.json", id, std::process::id()));
        let json = serde_json::to_vec(process).expect("process serialises");
        hostfs::write_private(&path, &json).map_err(io_err(&path))?;
        Ok(path)
    }
}

/// The caller's process.json (`exec --process`).
fn read_process(path: &Path) -> Result<Process, LifecycleError> {
    let text = fs::read(path).map_err(io_err(path))?;
    serde_json::from_slice(&text).map_err(|e| LifecycleError::Io {
        path: path.to_owned(),
        source: io::Error::new(io::ErrorKind::InvalidData, e),
    })
}

/// The checks `create` makes of config.json's process, for an exec'd one:
/// libcontainer's tenant panics on the same values.
fn check_exec(opts: &ExecOptions) -> Result<(), LifecycleError> {
    let invalid = LifecycleError::InvalidProcess;
    if let Some(path) = &opts.process {
        return bundle::check_process(&read_process(path)?, "process")
            .map_err(|e| invalid(format!("{}: {e}", path.display())));
    }
    if opts.args.first().is_none_or(|a| a.is_empty()) {
        return Err(invalid("name the program to run".into()));
    }
    if let Some(i) = opts.args.iter().position(|a| a.contains('\0')) {
        return Err(invalid(format!("argument {i} contains a NUL byte")));
    }
    for (k, v) in &opts.env {
        let e = format!("{k}={v}");
        bundle::check_env(&e).map_err(|why| invalid(format!("--env {e:?}: {why}")))?;
    }
    match &opts.cwd {
        Some(cwd) if !cwd.is_absolute() => Err(invalid(format!(
            "--cwd {}: must be an absolute path",
            cwd.display()
        ))),
        _ => Ok(()),
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
