//! What the supervisor watches in the container's cgroups: the session's
//! time budgets and the kernel's limit counters.

use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use purple_policy::supervision::SessionPlan;
use serde_json::json;

use crate::audit::{Entry, Kind};
use crate::cgroup2::LimitCounter;

/// A kernel counter of limit hits, with the value last reported.
pub(super) struct Counter {
    counter: LimitCounter,
    seen: u64,
}

impl Counter {
    pub(super) fn new(counter: LimitCounter) -> Self {
        let seen = counter.read().unwrap_or(0);
        Self { counter, seen }
    }

    /// A record when the counter grew since last time (hits are summed per check).
    pub(super) fn check(&mut self) -> Option<Entry> {
        let now = self.counter.read()?;
        if now <= self.seen {
            return None;
        }
        let delta = now - self.seen;
        self.seen = now;
        Some(Entry::new(
            self.counter.limit.kind(),
            json!({ "count": delta, "total": now, "source": self.counter.file }),
        ))
    }
}

/// Where a session stands against its budgets.
pub(super) struct Session {
    pub(super) plan: SessionPlan,
    pub(super) cgroup2: Option<PathBuf>,
    pub(super) started: Option<Instant>,
    /// When SIGTERM went out.
    terminated: Option<Instant>,
    killed: bool,
}

impl Session {
    pub(super) fn new(plan: SessionPlan, cgroup2: Option<PathBuf>) -> Self {
        Self {
            plan,
            cgroup2,
            started: None,
            terminated: None,
            killed: false,
        }
    }

    fn cpu_used(&self) -> Option<Duration> {
        let text = fs::read_to_string(self.cgroup2.as_ref()?.join("cpu.stat")).ok()?;
        let usec = text
            .lines()
            .find_map(|l| l.strip_prefix("usage_usec ")?.trim().parse().ok())?;
        Some(Duration::from_micros(usec))
    }

    /// The budget that ran out, as a record, the first time one does.
    fn overrun(&self) -> Option<Entry> {
        if self.terminated.is_some() {
            return None;
        }
        let started = self.started?;
        let over = |budget: &str, limit: u64, used: Duration| {
            (used.as_secs_f64() >= limit as f64).then(|| {
                Entry::new(
                    Kind::ResourceTimeout,
                    json!({
                        "budget": budget,
                        "limit_seconds": limit,
                        "used_seconds": (used.as_secs_f64() * 1000.0).round() / 1000.0,
                        "grace_seconds": self.plan.grace_seconds,
                    }),
                )
            })
        };
        let wall = self
            .plan
            .timeout_seconds
            .and_then(|l| over("wall_clock", l, started.elapsed()));
        wall.or_else(|| {
            let limit = self.plan.cpu_seconds?;
            over("cpu", limit, self.cpu_used()?)
        })
    }

    /// Sends `sig` to every process in the container's cgroup2 directory.
    pub(super) fn signal_all(&self, sig: libc::c_int) {
        let Some(dir) = &self.cgroup2 else { return };
        let procs = fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
        for pid in procs.lines().filter_map(|l| l.parse::<i32>().ok()) {
            // SAFETY: kill(2) on the container's own processes; ESRCH is fine.
            unsafe { libc::kill(pid, sig) };
        }
    }

    /// Ends the session for a budget spent elsewhere (the LLM gateway's): SIGTERM
    /// now, SIGKILL after the grace period (see [`Session::enforce`]).
    pub(super) fn terminate(&mut self) {
        if self.terminated.is_none() {
            self.signal_all(libc::SIGTERM);
            self.terminated = Some(Instant::now());
        }
    }

    /// Enforces the budgets: SIGTERM to every process once one runs out,
    /// SIGKILL after the grace period. Returns the record to write, if any.
    pub(super) fn enforce(&mut self) -> Option<Entry> {
        if let Some(entry) = self.overrun() {
            self.signal_all(libc::SIGTERM);
            self.terminated = Some(Instant::now());
            return Some(entry);
        }
        let term = self.terminated?;
        if !self.killed && term.elapsed() >= Duration::from_secs(self.plan.grace_seconds) {
            self.signal_all(libc::SIGKILL);
            self.killed = true;
        }
        None
    }
}
