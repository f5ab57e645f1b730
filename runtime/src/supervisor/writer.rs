//! The supervisor's side of the audit log: writing its records, alerting
//! the violations among them, signing the chain's head every
//! [`CHECKPOINT_RECORDS`] records or [`CHECKPOINT_SECONDS`] seconds, and
//! counting what cannot be written.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use super::ledger::lost_entry;
use crate::alert::Alerter;
use crate::audit::seal::{CHECKPOINT_RECORDS, CHECKPOINT_SECONDS};
use crate::audit::{stands_for as events, AuditLog, Entry, Kind, Record, SigningKey, SCHEMA};

pub(super) struct Writer {
    log: AuditLog,
    /// None when the host key could not be read (a `supervisor.error` says so).
    key: Option<SigningKey>,
    alerter: Arc<Alerter>,
    since_checkpoint: u64,
    last_checkpoint: Instant,
    /// Events whose records could not be written, by kind, not yet in an
    /// `audit.lost`.
    lost: BTreeMap<Kind, u64>,
    /// Why writes fail, while they do.
    failing: Option<String>,
    /// The log's budget (`audit.max_size`).
    max_size: u64,
}

impl Writer {
    pub(super) fn new(
        log: AuditLog,
        key: Option<SigningKey>,
        alerter: Arc<Alerter>,
        max_size: u64,
    ) -> Self {
        Self {
            max_size,
            log,
            key,
            alerter,
            since_checkpoint: 0,
            last_checkpoint: Instant::now(),
            lost: BTreeMap::new(),
            failing: None,
        }
    }

    /// Writes `entries` (possibly none), after an `audit.lost` for what
    /// could not be written before and with a checkpoint when one is due.
    /// The timer runs whether or not the supervisor wrote: the resolver's
    /// threads append to the same log, and a checkpoint after nothing new is
    /// not written. False when records could not be written (the log's
    /// budget is spent, or the write failed): they are counted, an alert
    /// goes out the first time, and the next write that succeeds (past the
    /// budget: the last one, at exit) says so.
    pub(super) fn write(&mut self, entries: &[Entry]) -> bool {
        self.append(entries, false)
    }

    /// Appends `entries` within the budget and the filesystem's free space
    /// (`unbounded`: past them, for the last, small write at exit).
    fn append(&mut self, entries: &[Entry], unbounded: bool) -> bool {
        let (limit, full) = if unbounded {
            (None, String::new())
        } else {
            self.limit()
        };
        self.log.set_limit(limit);
        let mut with_lost_entry;
        let reported = !self.lost.is_empty();
        let all = if reported {
            let why = format!(
                "records could not be written: {}",
                self.failing.as_deref().unwrap_or("unknown error")
            );
            with_lost_entry = vec![lost_entry(&self.lost, &why)];
            with_lost_entry.extend_from_slice(entries);
            &with_lost_entry[..]
        } else {
            entries
        };
        let due = self.since_checkpoint + all.len() as u64 >= CHECKPOINT_RECORDS
            || self.last_checkpoint.elapsed() >= Duration::from_secs(CHECKPOINT_SECONDS);
        let written = match (&self.key, due) {
            (Some(key), true) => self.log.append_signed(all, key, false),
            _ if all.is_empty() => return true,
            _ => self.log.append(all),
        };
        match written {
            Ok(written) => {
                self.alerter.forward(&written);
                if due && self.key.is_some() {
                    self.since_checkpoint = 0;
                    self.last_checkpoint = Instant::now();
                } else {
                    self.since_checkpoint += written.len() as u64;
                }
                let n = written
                    .iter()
                    .filter(|r| r.kind != Kind::AuditCheckpoint.as_str())
                    .count();
                // The `audit.lost` goes first: written, its counts are told.
                let taken = if reported && n > 0 {
                    self.lost.clear();
                    self.failing = None;
                    n - 1
                } else {
                    n
                };
                let refused = &entries[taken.min(entries.len())..];
                self.count(refused, full);
                refused.is_empty()
            }
            // A checkpoint alone that could not be written loses nothing:
            // the next one signs the same records.
            Err(_) if entries.is_empty() => true,
            Err(e) => {
                self.count(entries, e.to_string());
                false
            }
        }
    }

    /// The size the log may reach now: its budget, or less when its
    /// filesystem has less room (keeping some for the records that say
    /// what was lost, the checkpoints, `exited`, `deleted` and the seal),
    /// and why records past it are refused.
    fn limit(&self) -> (Option<u64>, String) {
        const RESERVE: u64 = 16 << 10;
        let size = self.log.size().unwrap_or(0);
        let room = self
            .log
            .free_space()
            .map_or(u64::MAX, |f| size + f.saturating_sub(RESERVE));
        if room < self.max_size {
            (Some(room), "the log's filesystem is full".into())
        } else {
            (
                Some(self.max_size),
                format!("audit.max_size ({} bytes) reached", self.max_size),
            )
        }
    }

    /// Counts `entries` as lost for `why`; the first time, says so.
    fn count(&mut self, entries: &[Entry], why: String) {
        if entries.is_empty() {
            return;
        }
        for e in entries {
            *self.lost.entry(e.kind).or_default() += events(e.kind, &e.details);
        }
        if self.failing.is_none() {
            tracing::error!("audit records lost: {why}");
            self.alert_failure(&why);
            self.failing = Some(why);
        }
    }

    /// Tells the alert targets at once that records are being lost (a
    /// record that is not in the log: `seq` 0; the log gets its
    /// `audit.lost` once it can be written).
    fn alert_failure(&self, error: &str) {
        self.alerter.forward(&[Record {
            kind: Kind::AuditLost.as_str().to_owned(),
            details: json!({
                "count": self.lost.values().sum::<u64>(),
                "kinds": self.lost.iter().map(|(k, n)| (k.as_str(), *n)).collect::<BTreeMap<_, _>>(),
                "reason": format!("records could not be written: {error}"),
                "written": false,
            }),
            ..self.blank()
        }]);
    }

    /// A record of this log with nothing in it yet.
    fn blank(&self) -> Record {
        Record {
            schema: SCHEMA,
            seq: 0,
            time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            container_id: self.log.container_id().to_owned(),
            policy: self.log.policy().map(str::to_owned),
            kind: String::new(),
            pid: None,
            comm: None,
            rule: None,
            details: serde_json::Value::Null,
            prev: String::new(),
        }
    }

    /// Signs what the supervisor leaves behind when it exits (the seal is
    /// `delete`'s: its `deleted` is the run's last record). True when
    /// everything it took is in the log (or counted there as lost).
    pub(super) fn finish(&mut self) -> bool {
        // One last try for what is pending, past the budget: one record.
        if !self.append(&[], true) {
            return false;
        }
        match &self.key {
            Some(key) => self.log.append_signed(&[], key, false).is_ok(),
            None => true,
        }
    }
}
