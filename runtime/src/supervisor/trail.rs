//! The supervisor's side of the audit log: writing its records, alerting
//! the violations among them, and signing the chain's head every
//! [`CHECKPOINT_RECORDS`] records or [`CHECKPOINT_SECONDS`] seconds.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::alert::Alerter;
use crate::audit::seal::{CHECKPOINT_RECORDS, CHECKPOINT_SECONDS};
use crate::audit::{AuditError, AuditLog, Entry, SigningKey};

pub(super) struct Trail {
    log: AuditLog,
    /// None when the host key could not be read (a `supervisor.error` says so).
    key: Option<SigningKey>,
    alerter: Arc<Alerter>,
    since_checkpoint: u64,
    last_checkpoint: Instant,
}

impl Trail {
    pub(super) fn new(log: AuditLog, key: Option<SigningKey>, alerter: Arc<Alerter>) -> Self {
        Self {
            log,
            key,
            alerter,
            since_checkpoint: 0,
            last_checkpoint: Instant::now(),
        }
    }

    /// Writes `entries` (possibly none), with a checkpoint when one is due.
    /// The timer runs whether or not the supervisor wrote: the resolver's
    /// threads append to the same log, and a checkpoint after nothing new is
    /// not written.
    pub(super) fn write(&mut self, entries: &[Entry]) -> Result<(), AuditError> {
        let due = self.since_checkpoint + entries.len() as u64 >= CHECKPOINT_RECORDS
            || self.last_checkpoint.elapsed() >= Duration::from_secs(CHECKPOINT_SECONDS);
        match (&self.key, due) {
            (Some(key), true) => {
                let written = self.log.append_signed(entries, key, false)?;
                self.alerter.send_violations(&written);
                self.since_checkpoint = 0;
                self.last_checkpoint = Instant::now();
            }
            _ if entries.is_empty() => {}
            _ => {
                let written = self.log.append(entries)?;
                self.alerter.send_violations(&written);
                self.since_checkpoint += written.len() as u64;
            }
        }
        Ok(())
    }

    /// Signs what the supervisor leaves behind when it exits (the seal is
    /// `delete`'s: its `deleted` is the run's last record).
    pub(super) fn checkpoint(&mut self) -> Result<(), AuditError> {
        if let Some(key) = &self.key {
            self.log.append_signed(&[], key, false)?;
        }
        Ok(())
    }
}
