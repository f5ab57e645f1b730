//! `exec`: a new process in a running container, under the container's
//! user namespace, seccomp filter and the profile's ceiling.

use super::*;

/// libcontainer 0.7's tenants enter every namespace of the container except
/// its user namespace (missing from the types it joins), so an exec'd process
/// would keep the host's ids: root in it would be root on the host. Entering
/// it here, before libcontainer forks, puts the tenant in it; the container's
/// other namespaces belong to it and can still be entered from inside.
pub(super) fn join_user_namespace(init: Pid, init_fd: &OwnedFd) -> Result<(), LifecycleError> {
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

/// The caller's process.json (`exec --process`).
pub(super) fn read_process(path: &Path) -> Result<Process, LifecycleError> {
    let text = fs::read(path).map_err(io_err(path))?;
    serde_json::from_slice(&text).map_err(|e| LifecycleError::Io {
        path: path.to_owned(),
        source: io::Error::new(io::ErrorKind::InvalidData, e),
    })
}

/// The checks `create` makes of config.json's process, for an exec'd one:
/// libcontainer's tenant panics on the same values.
pub(super) fn check_exec(opts: &ExecOptions) -> Result<(), LifecycleError> {
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

impl Runtime {
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
    pub(super) fn tty_process(
        &self,
        pdir: &Path,
        opts: &ExecOptions,
    ) -> Result<Process, LifecycleError> {
        let bundle = Bundle::load(&pdir.join("bundle"))?;
        let mut process: Process = bundle.spec.process().clone().unwrap_or_default();
        process.set_args(Some(opts.args.clone()));
        process.set_terminal(Some(true));
        Ok(process)
    }

    pub(super) fn write_process(
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
