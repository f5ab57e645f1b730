//! Addresses learned from DNS answers, in the container's BPF rule tries for
//! as long as their TTL plus a grace period.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use purple_ebpf::LearnedHosts;
use purple_policy::plan::Action;
use serde::{Deserialize, Serialize};

use super::DnsError;

/// Kept past the TTL: a program that resolved a name just before the TTL ran
/// out still connects, and a clock tick between the answer and the check does
/// not refuse it.
pub const GRACE: Duration = Duration::from_secs(5);
/// A TTL of 0 still lets the asker connect.
pub const MIN_TTL: Duration = Duration::from_secs(1);

/// One address in the maps and until when (wall clock, so that `create` can
/// hand its entries to the supervisor).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    pub addr: IpAddr,
    pub id: u32,
    pub action: Action,
    pub until: SystemTime,
}

/// The learned host entries of one container.
pub struct Learned {
    hosts: LearnedHosts,
    /// Host prefixes the plan wrote itself: never replaced, never removed.
    fixed: HashSet<IpAddr>,
    held: HashMap<IpAddr, Held>,
}

/// How long an answer with `ttl` seconds stays in the maps.
pub fn lifetime(ttl: u32) -> Duration {
    Duration::from_secs(u64::from(ttl)).max(MIN_TTL) + GRACE
}

impl Learned {
    pub fn new(hosts: LearnedHosts, fixed: HashSet<IpAddr>) -> Self {
        Self {
            hosts,
            fixed,
            held: HashMap::new(),
        }
    }

    /// Puts `addr` in the maps under rule `id` until `until` (or keeps it
    /// longer if it is already held longer). A deny is never turned into an
    /// allow by another name resolving to the same address.
    pub fn learn(
        &mut self,
        addr: IpAddr,
        id: u32,
        action: Action,
        until: SystemTime,
    ) -> Result<(), DnsError> {
        if self.fixed.contains(&addr) {
            return Ok(());
        }
        let entry = match self.held.get(&addr) {
            Some(h) if h.action == Action::Deny || h.action == action => Held {
                until: h.until.max(until),
                ..h.clone()
            },
            _ => Held {
                addr,
                id,
                action,
                until,
            },
        };
        let changed = self
            .held
            .get(&addr)
            .is_none_or(|h| (h.id, h.action) != (entry.id, entry.action));
        if changed {
            self.hosts.insert(addr, entry.id, entry.action)?;
        }
        self.held.insert(addr, entry);
        Ok(())
    }

    /// Keeps every address held under rule `id` at least until `until`;
    /// returns them.
    pub fn extend_rule(&mut self, id: u32, until: SystemTime) -> Vec<IpAddr> {
        let mut kept: Vec<IpAddr> = self
            .held
            .values_mut()
            .filter(|h| h.id == id)
            .map(|h| {
                h.until = h.until.max(until);
                h.addr
            })
            .collect();
        kept.sort();
        kept
    }

    /// Removes what expired by `now` from the maps; returns those addresses.
    pub fn expire(&mut self, now: SystemTime) -> Result<Vec<IpAddr>, DnsError> {
        let gone: Vec<IpAddr> = self
            .held
            .values()
            .filter(|h| h.until <= now)
            .map(|h| h.addr)
            .collect();
        for addr in &gone {
            self.hosts.remove(*addr)?;
            self.held.remove(addr);
        }
        Ok(gone)
    }

    /// Everything held now, for `create` to hand over to the supervisor.
    pub fn held(&self) -> Vec<Held> {
        let mut v: Vec<Held> = self.held.values().cloned().collect();
        v.sort_by_key(|h| h.addr);
        v
    }
}
