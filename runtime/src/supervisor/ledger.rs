//! What the supervisor took, counted where its death cannot erase it: a
//! small file next to its plan, mapped shared, one counter per record kind.
//!
//! A supervisor killed (delete's SIGKILL after its stop grace, the OOM
//! killer) or failing mid-way dies holding events it took from the kernel
//! (the ring buffer, seccomp notifications) and never wrote. Whoever deletes
//! the container then compares the ledger with the log: what was taken and
//! is neither a record nor counted in an `audit.lost` becomes one, and what
//! is still in the ring buffer is written. Records + lost = what happened.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use purple_ebpf::events::Event;
use serde_json::json;

use crate::audit::{self, stands_for as events, Entry, Kind, Record};

/// The ledger's file name, next to the plan.
const LEDGER_FILE: &str = "ledger";
/// Slot 0: set once the supervisor wrote everything it took and exited.
const CLOSED: usize = 0;
const SLOTS: usize = Kind::ALL.len() + 1;

fn path(plan: &Path) -> PathBuf {
    plan.with_file_name(LEDGER_FILE)
}

/// The kinds of events the supervisor's loop takes from the kernel and
/// writes alone (the resolver's and the gateway's threads write `dns.*` and
/// `llm.*` themselves, the lifecycle commands `lifecycle`;
/// `supervisor.error` is its own).
fn kept(kind: Kind) -> bool {
    !matches!(
        kind,
        Kind::Lifecycle
            | Kind::DnsDenied
            | Kind::DnsError
            | Kind::SupervisorError
            | Kind::AuditCheckpoint
            | Kind::AuditLost
            | Kind::LlmRequest
            | Kind::LlmBlocked
            | Kind::LlmBudget
    )
}

fn slot(kind: Kind) -> usize {
    1 + Kind::ALL
        .iter()
        .position(|&k| k == kind)
        .expect("every kind is in ALL")
}

pub(super) struct Ledger {
    map: *mut AtomicU64,
    _file: File,
}

impl Ledger {
    /// A new, zeroed ledger next to `plan`.
    pub(super) fn create(plan: &Path) -> std::io::Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path(plan))?;
        file.set_len((SLOTS * 8) as u64)?;
        // SAFETY: a shared mapping of the whole file we just sized; it lives
        // as long as `Ledger`, which unmaps it on drop.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                SLOTS * 8,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                std::os::fd::AsRawFd::as_raw_fd(&file),
                0,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Self {
            map: map.cast(),
            _file: file,
        })
    }

    fn counter(&self, i: usize) -> &AtomicU64 {
        assert!(i < SLOTS);
        // SAFETY: in bounds of the mapping, 8-aligned (page-aligned base).
        unsafe { &*self.map.add(i) }
    }

    /// Counts `entry` as taken (before it is written).
    pub(super) fn take(&self, entry: &Entry) {
        if kept(entry.kind) {
            self.counter(slot(entry.kind))
                .fetch_add(events(entry.kind, &entry.details), Ordering::Relaxed);
        }
    }

    /// Everything taken is written: nothing to account for after exit.
    pub(super) fn close(&self) {
        self.counter(CLOSED).store(1, Ordering::Release);
    }
}

impl Drop for Ledger {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `create`, unmapped once.
        unsafe { libc::munmap(self.map.cast(), SLOTS * 8) };
    }
}

/// The ledger next to `plan`: whether it was closed, and the counts by kind.
fn read(plan: &Path) -> Option<(bool, BTreeMap<Kind, u64>)> {
    let bytes = std::fs::read(path(plan)).ok()?;
    let words: Vec<u64> = bytes
        .chunks_exact(8)
        .map(|c| u64::from_ne_bytes(c.try_into().expect("8 bytes")))
        .collect();
    if words.len() != SLOTS {
        return None;
    }
    let counts = Kind::ALL
        .iter()
        .map(|&k| (k, words[slot(k)]))
        .filter(|&(_, n)| n > 0)
        .collect();
    Some((words[CLOSED] == 1, counts))
}

/// Events of each kept kind in the log's last run, records and `audit.lost`
/// counts together.
fn logged(records: &[Record]) -> BTreeMap<Kind, u64> {
    let start = records
        .iter()
        .rposition(|r| r.kind == Kind::Lifecycle.as_str() && r.details["event"] == "created")
        .unwrap_or(0);
    let mut out = BTreeMap::new();
    for r in &records[start..] {
        let Some(kind) = Kind::parse(&r.kind) else {
            continue;
        };
        if kind == Kind::AuditLost {
            for (k, n) in r.details["kinds"].as_object().into_iter().flatten() {
                if let (Some(k), Some(n)) = (Kind::parse(k), n.as_u64()) {
                    *out.entry(k).or_default() += n;
                }
            }
        } else if kept(kind) {
            *out.entry(kind).or_default() += events(kind, &r.details);
        }
    }
    out
}

/// The `audit.lost` record of `lost` events by kind, saying `why`.
pub(super) fn lost_entry(lost: &BTreeMap<Kind, u64>, why: &str) -> Entry {
    let kinds: serde_json::Map<_, _> = lost
        .iter()
        .map(|(k, n)| (k.as_str().to_owned(), json!(n)))
        .collect();
    Entry::new(
        Kind::AuditLost,
        json!({ "count": lost.values().sum::<u64>(), "kinds": kinds, "reason": why }),
    )
}

/// What a gone supervisor (of the plan at `plan`) left unwritten, as
/// records for `delete` to write before `deleted`: the events still in the
/// ring buffer pinned in `pins`, and an `audit.lost` for what it had taken
/// and not written (read from its ledger against the log at `log`).
pub fn leftovers(plan: &Path, pins: Option<&Path>, log: &Path) -> Vec<Entry> {
    let mut out = Vec::new();
    if let Some((false, taken)) = read(plan) {
        let logged = audit::records(log).map(|r| logged(&r)).unwrap_or_default();
        let lost: BTreeMap<Kind, u64> = taken
            .into_iter()
            .map(|(k, n)| (k, n.saturating_sub(logged.get(&k).copied().unwrap_or(0))))
            .filter(|&(_, n)| n > 0)
            .collect();
        if !lost.is_empty() {
            out.push(lost_entry(
                &lost,
                "the supervisor stopped before writing events it had taken",
            ));
        }
    }
    let rules = super::Plan::load(plan).map(|p| p.rule_book()).ok();
    if let (Some(pins), Some(rules)) = (pins, rules) {
        if let Ok(mut ring) = purple_ebpf::open_events(pins) {
            while let Some(item) = ring.next() {
                if let Some(e) = Event::parse(&item) {
                    out.push(super::entry(&e, &rules));
                }
            }
        }
    }
    out
}
