//! What a live container is asked or told: its processes, statistics and
//! network counters; signals; freezing; new resource limits.

use super::*;

impl Runtime {
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
    pub(super) fn set_frozen(&self, id: &ContainerId, frozen: bool) -> Result<(), LifecycleError> {
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
}
