//! `delete`: the container and everything Purple created for it.

use super::*;

/// Why [`Runtime::purge`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Purge {
    Delete,
    FailedCreate,
}

impl Runtime {
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
    pub(super) fn purge(
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
                let plan = self.plan_path(id);
                supervisor::stop(pid, &plan);
                // What it could not write is written (or counted lost) here,
                // while the ring buffer is still pinned.
                if let Some(log) = &rec.audit_log {
                    let late = supervisor::leftovers(&plan, rec.bpf_dir.as_deref(), log);
                    self.write_audit(id, rec, &late, None);
                }
            }
            if let Some(pid) = rec.egress_pid {
                egress::stop(pid, id.as_str());
            }
            if let Some(path) = &rec.cgroups_path {
                step(self.remove_cgroup(id, path, rec.systemd, how));
            }
            if let Some(reg) = &rec.trail {
                step(
                    purple_ebpf::trail::unregister(reg)
                        .map_err(|e| crate::trail::TrailError::from(e).into()),
                );
            }
            if let Some(dir) = &rec.bpf_dir {
                step(purple_ebpf::detach(dir).map_err(|e| NetworkError::from(e).into()));
            }
            if let Some(dir) = &rec.cgroup2_dir {
                step(cgroup2::remove(dir, REMOVE_TIMEOUT).map_err(Into::into));
            }
        }
        let pdir = self.purple_dir(id);
        if let Err(e) = crate::diskwatch::release(&pdir) {
            tracing::debug!("delete of {id}: {e}");
            failed.get_or_insert(io_err(&pdir)(e));
        }
        if let Some(e) = failed {
            return Err(e);
        }
        if let Some(rec) = record {
            self.audit_signed(
                id,
                rec,
                Entry::new(Kind::Lifecycle, json!({"event": "deleted"})),
                true,
            );
        }
        for dir in [self.state_dir(id), self.purple_dir(id), self.run_bundle(id)] {
            remove_dir(&dir)?;
        }
        if how == Purge::Delete {
            self.prune_logs();
        }
        Ok(())
    }

    /// Applies the node's log retention once a log is sealed. Best effort:
    /// a log that cannot be removed now is removed by a later delete.
    fn prune_logs(&self) {
        let retention = match &self.node.source {
            Some(_) => self.node.retention,
            // `purple run` and the supervisors hold no node configuration
            // of their own: the host's file says how long logs are kept.
            None => {
                match purple_policy::node::Node::load(Path::new(purple_policy::node::NODE_CONFIG)) {
                    Ok(n) => n.retention,
                    Err(e) => {
                        tracing::warn!("log retention: {e}; keeping Purple's defaults");
                        Default::default()
                    }
                }
            }
        };
        let root = Path::new(crate::audit::LOG_DIR);
        match crate::audit::retention::prune(root, &retention, std::time::SystemTime::now()) {
            Ok(gone) => gone
                .iter()
                .for_each(|p| tracing::debug!("log retention removed {}", p.display())),
            Err(e) => tracing::warn!("log retention under {}: {e}", root.display()),
        }
    }

    /// Kills what is left in the container's cgroups and removes them.
    pub(super) fn remove_cgroup(
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
}
