//! `create` and `start`: the container's bundle made effective, its
//! cgroup2 directory, network programs and resolver, then the supervisor
//! started from its plan; a failed create removes all it made.

use super::delete::Purge;
use super::*;
use crate::dns::Prepared;
use crate::egress::Helper;
use crate::gateway::{self, GatewayConfig};
use oci_spec::runtime::LinuxSeccomp;
use purple_policy::annotations::LLM_ANNOTATION;
use purple_policy::llm::LlmPlan;
use purple_policy::oci::ApplyError;
use std::net::TcpListener;

/// What `create` has checked and made so far, handed from step to step.
struct Draft {
    /// The effective spec, as written to `effective`.
    spec: Spec,
    effective: PathBuf,
    enforcement: Enforcement,
    audit_plan: AuditPlan,
    session: SessionPlan,
    record: Record,
    layout: cgroup2::Layout,
    exec_seccomp: Option<LinuxSeccomp>,
    /// Answers notified calls until the supervisor takes over.
    interim: Option<Interim>,
    seccomp_profile: Option<Profile>,
    /// Output binds' size limits the supervisor watches.
    disk_limits: crate::diskwatch::DiskLimits,
    llm: Option<GatewayConfig>,
}

/// What [`Runtime::attach_network`] started for the supervisor to take over.
struct Network {
    helper: Option<Helper>,
    resolver: Option<Prepared>,
    gateway: Option<TcpListener>,
}

/// The error of a cgroup step, with the reason and fix when cgroups are
/// hidden from this mount namespace.
pub(super) fn explain_cgroups(err: LifecycleError) -> LifecycleError {
    if cgroup2::hidden() {
        LifecycleError::CgroupsHidden(err.to_string())
    } else {
        err
    }
}

/// Alert targets make root act on the host: run a command in the host's
/// namespaces and cgroups, connect to any Unix socket (a root-only control
/// socket answers root), send HTTP from the host's network (its loopback
/// services, the cloud metadata address). A bundle's author is not the host,
/// so its annotation may name none unless the node said so
/// (`--annotation-alerts`); a profile's come from the host's configuration.
pub(super) fn check_alert_source(spec: &Spec, trusted: bool) -> Result<(), LifecycleError> {
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

/// The LLM gateway sends the host's keys to the plan's endpoints and reads
/// key files as root: a bundle author naming them could send any host
/// secret anywhere. So, like alerts, the plan comes from the host's
/// configuration (`purple run`'s policy, a profile) unless the node trusts
/// its bundle authors (`--annotation-alerts`).
fn check_llm_source(spec: &Spec, trusted: bool) -> Result<(), LifecycleError> {
    let own = spec
        .annotations()
        .as_ref()
        .is_some_and(|a| a.contains_key(LLM_ANNOTATION));
    if !own || trusted {
        return Ok(());
    }
    Err(gateway::GatewayError::Untrusted.into())
}

/// The gateway's plan and port, and its variables put into the spec's
/// process environment (base URLs, placeholder keys).
fn prepare_gateway(spec: &mut Spec) -> Result<Option<GatewayConfig>, LifecycleError> {
    let Some(plan) = LlmPlan::from_annotations(spec.annotations().as_ref())? else {
        return Ok(None);
    };
    if !egress::has_private_netns(spec) {
        return Err(gateway::GatewayError::SharedNetns.into());
    }
    let port = gateway::choose_port();
    let vars = gateway::sandbox_env(&plan, port);
    if let Some(process) = spec.process_mut() {
        let mut env: Vec<String> = process
            .env()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .filter(|e| !vars.iter().any(|(k, _)| e.starts_with(&format!("{k}="))))
            .collect();
        env.extend(vars.iter().map(|(k, v)| format!("{k}={v}")));
        process.set_env(Some(env));
    }
    Ok(Some(GatewayConfig { plan, port }))
}

/// Where the container's audit log goes: the plan's `log_path`, which must
/// lie under the log root (/var/log/purple), or the default. The plan may be
/// a bundle author's: anywhere else, root would append to a file of their
/// choosing.
pub(super) fn log_path(id: &ContainerId, plan: &AuditPlan) -> Result<PathBuf, LifecycleError> {
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
    /// Set by `purple run`: kept in the record, and with an output limit
    /// the sandbox's stdio goes to the supervisor instead of the caller's.
    pub launch: Option<Launch>,
}

impl Runtime {
    /// Creates the container: namespaces, cgroups, mounts and seccomp set up,
    /// the init process blocked until `start`. On any failure everything
    /// created so far is removed again.
    pub fn create(
        &self,
        id: &ContainerId,
        opts: &CreateOptions,
    ) -> Result<Container, LifecycleError> {
        self.make_root().map_err(io_err(&self.root))?;
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

    /// The steps of `create`, in order; each records what it made before
    /// the next runs (see [`Runtime::purge`]).
    pub(super) fn create_owned(
        &self,
        id: &ContainerId,
        opts: &CreateOptions,
        pdir: &Path,
    ) -> Result<Container, LifecycleError> {
        let mut draft = self.prepare_bundle(id, opts, pdir)?;
        let output = match opts.launch.as_ref().and_then(|l| l.output_limit) {
            Some(_) => Some(
                nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
                    .map_err(|e| io_err(Path::new("output pipe"))(e.into()))?,
            ),
            None => None,
        };
        let (output_read, output_write) = output.unzip();
        let container = self.place_cgroup2(id, opts, &draft, output_write)?;
        let pid = container
            .pid()
            .ok_or_else(|| LifecycleError::Inconsistent {
                id: id.clone(),
                reason: "init process has no pid".into(),
            })?
            .as_raw();
        draft.record.init_start_time = pidfd::start_time(pid);
        save_record(pdir, &draft.record)?;
        cgroupfs::make_readonly(pid, &cgroupfs::readonly_destinations(&draft.spec))?;
        let cgroup2_dir = match (&draft.layout, &draft.record.cgroup2_dir) {
            // init was born there (see Visit).
            (_, Some(dir)) => Some(dir.clone()),
            (cgroup2::Layout::V2, None) => {
                Some(cgroup2::of_process(pid, Path::new("/sys/fs/cgroup"))?)
            }
            _ => None,
        };
        let network = self.attach_network(id, pdir, &mut draft, pid, cgroup2_dir.as_deref())?;
        let mut created = json!({"event": "created", "pid": pid});
        if let Some(binding) = &draft.record.binding {
            created["run"] = binding["run"].clone();
            created["policy_digest"] = binding["policy_digest"].clone();
            created["bundle_digest"] = binding["bundle_digest"].clone();
        }
        self.audit_signed(
            id,
            &draft.record,
            Entry::new(Kind::Lifecycle, created),
            false,
        );
        let output = output_read.map(|fd| (fd, self.output_log(id)));
        self.start_supervisor(id, opts, pdir, draft, network, pid, cgroup2_dir, output)?;
        Ok(container)
    }

    /// Step 1: checks the bundle and its annotations (rules checked, names
    /// resolved before anything is created), records what will be made,
    /// and writes the effective bundle libcontainer runs.
    fn prepare_bundle(
        &self,
        id: &ContainerId,
        opts: &CreateOptions,
        pdir: &Path,
    ) -> Result<Draft, LifecycleError> {
        let bundle = Bundle::load(&opts.bundle)?;
        check_alert_source(&bundle.spec, self.annotation_alerts)?;
        check_llm_source(&bundle.spec, self.annotation_alerts)?;
        let default_cgroup = (!self.systemd).then(|| PathBuf::from(format!("/purple/{id}")));
        let mut spec = purple_policy::oci::apply(
            bundle.effective_spec(default_cgroup.as_deref()),
            &bundle.dir,
            &self.node,
        )
        .map_err(|e| match e {
            ApplyError::Profile(_) | ApplyError::Merge(_) => LifecycleError::Profile(e.to_string()),
            e => LifecycleError::Floor(e.to_string()),
        })?;
        let annotations = spec.annotations().clone();
        let shared_netns = egress::shares_caller_netns(&spec);
        let enforcement = Enforcement::from_annotations(annotations.as_ref(), shared_netns)?;
        if enforcement.plan.egress.is_some() && !egress::has_private_netns(&spec) {
            return Err(EgressError::NoPrivateNetns.into());
        }
        let audit_plan = AuditPlan::from_annotations(annotations.as_ref())?;
        let llm = prepare_gateway(&mut spec)?;
        let session = SessionPlan::from_annotations(annotations.as_ref())?;
        crate::alert::check(&audit_plan.alerts).map_err(LifecycleError::AuditPlan)?;
        let audit_log = log_path(id, &audit_plan)?;
        // Opened (made 0600, no link followed) now, so a refused path fails
        // the create instead of every record later.
        AuditLog::open(&audit_log, id.as_str(), None).map_err(|e| {
            LifecycleError::AuditPlan(format!("log_path {}: {e}", audit_log.display()))
        })?;
        // The key that signs its checkpoints, made or refused now too.
        audit::seal::host_key().map_err(|e| LifecycleError::AuditPlan(e.to_string()))?;
        let layout = cgroup2::detect();
        let record = Record {
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
            launch: opts.launch.clone(),
            trail: None,
            binding: Some(binding(&bundle, annotations.as_ref())),
        };
        save_record(pdir, &record)?;
        let disk_limits =
            crate::diskwatch::setup(id.as_str(), &spec, &session.output_limits, pdir)?;
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
        Ok(Draft {
            spec,
            effective,
            enforcement,
            audit_plan,
            session,
            record,
            layout,
            exec_seccomp,
            interim,
            seccomp_profile,
            disk_limits,
            llm,
        })
    }

    /// Step 2: libcontainer creates the init process, born in the
    /// container's cgroup2 directory on hybrid hosts; with `output`, its
    /// stdout and stderr are that pipe and its stdin is /dev/null.
    fn place_cgroup2(
        &self,
        id: &ContainerId,
        opts: &CreateOptions,
        draft: &Draft,
        output: Option<OwnedFd>,
    ) -> Result<Container, LifecycleError> {
        let visit = match (&draft.record.cgroup2_dir, draft.layout.unified()) {
            (Some(dir), Some(mount)) => {
                cgroup2::create(dir)?;
                Some(cgroup2::Visit::enter(dir, mount)?)
            }
            _ => None,
        };
        let mut base = ContainerBuilder::new(id.to_string(), SyscallType::default());
        if draft.record.scope_abstract_unix {
            base = base.with_executor(ScopedExecutor {
                inner: libcontainer::workload::default::get_executor(),
            });
        }
        if let Some(w) = output {
            let err = io_err(Path::new("output pipe"));
            let null = fs::File::open("/dev/null").map_err(io_err(Path::new("/dev/null")))?;
            let stderr = w.try_clone().map_err(err)?;
            base = base.with_stdin(null).with_stdout(w).with_stderr(stderr);
        }
        let container = base
            .with_pid_file(opts.pid_file.as_ref())
            .map_err(lc)?
            .with_console_socket(opts.console_socket.as_ref())
            .with_root_path(&self.root)
            .map_err(lc)?
            .with_preserved_fds(opts.preserve_fds)
            .as_init(&draft.effective)
            .with_systemd(self.systemd)
            .with_detach(opts.detach)
            .with_no_pivot(opts.no_pivot)
            .build()
            .map_err(lc);
        drop(visit);
        container
    }

    /// Step 3: the egress helper, the resolver and the network programs,
    /// while init is still blocked before exec: nothing the agent runs can
    /// send a packet before this returns.
    fn attach_network(
        &self,
        id: &ContainerId,
        pdir: &Path,
        draft: &mut Draft,
        pid: i32,
        cgroup2_dir: Option<&Path>,
    ) -> Result<Network, LifecycleError> {
        let helper = match draft.enforcement.plan.egress {
            Some(_) => {
                let h = egress::start(id.as_str(), pid, pdir)?;
                draft.record.egress_pid = Some(h.pid);
                save_record(pdir, &draft.record)?;
                Some(h)
            }
            None => None,
        };
        let mut resolver = draft.enforcement.prepare_resolver(pid)?;
        if let Some(bpf_dir) = &draft.record.bpf_dir {
            let port = resolver.as_ref().map(|r| r.config.port);
            draft.enforcement.attach(
                cgroup2_dir,
                bpf_dir,
                port,
                draft.audit_plan.record_allowed,
            )?;
            if let Some(r) = &mut resolver {
                r.install(bpf_dir).map_err(NetworkError::from)?;
            }
            draft.record.trail = crate::trail::registration(cgroup2_dir, &draft.audit_plan)?;
            if let Some(reg) = &draft.record.trail {
                save_record(pdir, &draft.record)?;
                crate::trail::register(reg, bpf_dir, &draft.audit_plan)?;
            }
        }
        let gateway = match &draft.llm {
            Some(cfg) => {
                let netns = crate::dns::netns::open(pid).map_err(gateway::GatewayError::from)?;
                Some(gateway::listen(netns.as_fd(), cfg.port)?)
            }
            None => None,
        };
        Ok(Network {
            helper,
            resolver,
            gateway,
        })
    }

    /// Step 4: the supervisor plan written and the supervisor started with
    /// it and the descriptors it names.
    #[allow(clippy::too_many_arguments)]
    fn start_supervisor(
        &self,
        id: &ContainerId,
        opts: &CreateOptions,
        pdir: &Path,
        draft: Draft,
        network: Network,
        pid: i32,
        cgroup2_dir: Option<PathBuf>,
        output: Option<(OwnedFd, PathBuf)>,
    ) -> Result<(), LifecycleError> {
        let Draft {
            enforcement,
            audit_plan,
            session,
            mut record,
            exec_seccomp,
            interim,
            seccomp_profile,
            disk_limits,
            llm,
            ..
        } = draft;
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
            return Ok(());
        };
        let (listener, notify) = notifier.as_ref().map(|n| n.handover()).unzip();
        let (fds, sources) = Fds {
            resolver: network.resolver.as_ref().map(|r| r.fds()),
            seccomp_listener: listener,
            seccomp_notify: notify.unwrap_or_default(),
            caller: caller.as_ref().map(|fd| fd.as_fd()),
            // The helper exits when its exit pipe closes: the supervisor holds
            // the write end, so the helper lives exactly as long as the sandbox.
            egress_exit: network.helper.as_ref().map(|h| h.exit.as_fd()),
            output: output.as_ref().map(|(fd, _)| fd.as_fd()),
            gateway: network.gateway.as_ref().map(|l| l.as_fd()),
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
            trail: record.trail.clone(),
            rules: enforcement.rules,
            dns: network.resolver.as_ref().map(|r| r.config.clone()),
            llm,
            seccomp: seccomp_profile.filter(|_| notifier.is_some()),
            exec_seccomp,
            session,
            on_failure: audit_plan.on_failure,
            log_max_size: audit_plan.max_size(),
            alerts: audit_plan.alerts,
            disk_limits,
            output: output
                .as_ref()
                .zip(record.launch.as_ref())
                .and_then(|((_, path), l)| {
                    l.output_limit.map(|limit| OutputPlan {
                        path: path.clone(),
                        limit,
                    })
                }),
            init: Some(Init {
                pid,
                start_time: record.init_start_time,
                exe: pidfd::exe_id(pid),
            }),
            fds,
        };
        let plan_path = self.plan_path(id);
        plan.save(&plan_path).map_err(io_err(&plan_path))?;
        let spid =
            supervisor::spawn(&plan_path, &sources).map_err(io_err(Path::new("supervisor")))?;
        record.supervisor_pid = Some(spid);
        save_record(pdir, &record)
    }

    /// Rewrites the spec's seccomp denials to notify a listener socket under
    /// `pdir` and answers them on a thread until the supervisor takes over
    /// (None: nothing to notify).
    pub(super) fn seccomp_listener(
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
                Entry::new(Kind::Lifecycle, json!({"event": "started"})),
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
}

/// A run's binding: a random id and the digests of its policy (the
/// `io.purple.*` annotations it runs under, in key order) and its bundle.
fn binding(
    bundle: &Bundle,
    annotations: Option<&std::collections::HashMap<String, String>>,
) -> serde_json::Value {
    let policy: std::collections::BTreeMap<_, _> = annotations
        .into_iter()
        .flatten()
        .filter(|(k, _)| k.starts_with("io.purple."))
        .collect();
    let policy = serde_json::to_vec(&policy).expect("annotations serialise");
    let mut run = [0u8; 16];
    // SAFETY: getrandom writes at most `len` bytes into our buffer; a short
    // read leaves zeros, and the digests still tell runs apart.
    unsafe { libc::getrandom(run.as_mut_ptr().cast(), run.len(), 0) };
    json!({
        "run": audit::seal::hex(&run),
        "policy_digest": audit::digest(&policy),
        "bundle_digest": bundle.digest,
    })
}
