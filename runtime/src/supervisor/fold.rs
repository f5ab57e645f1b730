//! Repeated violations fold: within a window, the first [`FIRST`] records
//! of one (kind, rule, destination or syscall, process) are written as they
//! come, the rest are counted and written as one record with the count and
//! the time span when the window ends. A flood then costs the host a few
//! records per distinct target and window, and no distinct destination,
//! syscall or process is ever missing from the trail.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

#[cfg(test)]
use crate::audit::stands_for as events;
use crate::audit::{Entry, Kind};

/// Records of one group written as they come, per window.
pub const FIRST: u64 = 10;
/// How long a group's window lasts.
pub const WINDOW: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    kind: Kind,
    rule: Option<String>,
    /// The destination (address, port, protocol) or the syscall.
    target: String,
    pid: Option<u32>,
}

struct Group {
    opened: Instant,
    written: u64,
    /// The first folded entry (its fields stand for the others) and how
    /// many it stands for, from when to when.
    folded: Option<(Entry, u64, String, String)>,
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

fn key(e: &Entry) -> Option<Key> {
    // Only violations fold: lifecycle, allowed connections the policy asked
    // to see, and the trail's own records are written as they are.
    if !e.kind.is_violation()
        || e.kind.counts()
        || matches!(e.kind, Kind::SupervisorError | Kind::ResourceTimeout)
    {
        return None;
    }
    let d = &e.details;
    let part = |k: &str| match &d[k] {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        v => v.to_string(),
    };
    let target = ["destination", "port", "protocol", "syscall", "name", "path"]
        .iter()
        .map(|k| part(k))
        .collect::<Vec<_>>()
        .join("|");
    Some(Key {
        kind: e.kind,
        rule: e.rule.clone(),
        target,
        pid: e.pid,
    })
}

#[derive(Default)]
pub(super) struct Folder {
    groups: HashMap<Key, Group>,
}

impl Folder {
    /// The entries of `batch` to write now; the rest are counted.
    pub(super) fn fold(&mut self, batch: Vec<Entry>, now: Instant) -> Vec<Entry> {
        let mut out = Vec::with_capacity(batch.len());
        for e in batch {
            let Some(k) = key(&e) else {
                out.push(e);
                continue;
            };
            let g = self.groups.entry(k).or_insert(Group {
                opened: now,
                written: 0,
                folded: None,
            });
            if g.written < FIRST {
                g.written += 1;
                out.push(e);
                continue;
            }
            let t = now_rfc3339();
            match &mut g.folded {
                Some((_, n, _, last)) => {
                    *n += 1;
                    *last = t;
                }
                None => g.folded = Some((e, 1, t.clone(), t)),
            }
        }
        out
    }

    /// The records of the windows that ended by `now` (all of them when
    /// `all`, at exit), one per group that folded anything.
    pub(super) fn expired(&mut self, now: Instant, all: bool) -> Vec<Entry> {
        let mut out = Vec::new();
        self.groups.retain(|_, g| {
            if !all && now.duration_since(g.opened) < WINDOW {
                return true;
            }
            if let Some((mut e, n, first, last)) = g.folded.take() {
                e.details["folded"] = json!(true);
                e.details["count"] = json!(n);
                e.details["first"] = json!(first);
                e.details["last"] = json!(last);
                out.push(e);
            }
            false
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocked(dest: &str, pid: u32) -> Entry {
        Entry {
            kind: Kind::NetworkBlocked,
            pid: Some(pid),
            rule: Some("#1 deny".into()),
            details: json!({"destination": dest, "port": 53, "protocol": "udp"}),
            ..Default::default()
        }
    }

    #[test]
    fn floods_fold_per_target_and_process_and_add_up() {
        let mut f = Folder::default();
        let t0 = Instant::now();
        let mut batch = Vec::new();
        for i in 0..1000 {
            batch.push(blocked(&format!("10.0.0.{}", i % 4), 7));
        }
        batch.push(blocked("10.0.0.0", 8));
        batch.push(Entry::new(Kind::Lifecycle, json!({"event": "exited"})));
        let now = f.fold(batch, t0);
        assert_eq!(now.len(), 4 * FIRST as usize + 2);
        assert!(f.expired(t0 + WINDOW / 2, false).is_empty());
        let later = f.expired(t0 + WINDOW, false);
        assert_eq!(later.len(), 4);
        let total: u64 = now
            .iter()
            .chain(&later)
            .filter(|e| e.kind == Kind::NetworkBlocked)
            .map(|e| events(e.kind, &e.details))
            .sum();
        assert_eq!(total, 1001);
        assert!(later.iter().all(|e| e.details["folded"] == true
            && e.details["count"] == 1000 / 4 - FIRST
            && e.details["first"].is_string()));
        // A new window writes the first ones again.
        assert_eq!(f.fold(vec![blocked("10.0.0.1", 7)], t0 + WINDOW).len(), 1);
    }
}
