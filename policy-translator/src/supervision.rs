//! What the per-container supervisor does beyond enforcement: where the audit
//! log goes, what it records, whom it alerts, and the session's time budgets.
//! Carried in `io.purple.audit` and `io.purple.session`.

use std::collections::HashMap;
use std::path::PathBuf;

use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::annotations::{AUDIT_ANNOTATION, SESSION_ANNOTATION};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("annotation {annotation}: {reason}")]
pub struct SupervisionError {
    pub annotation: &'static str,
    pub reason: String,
}

/// Audit settings from the policy's `audit` section.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditPlan {
    /// Absolute host path of the log; `None`: `/var/log/purple/<id>.jsonl`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_path: Option<PathBuf>,
    /// Also record connections the network rules allowed (`network.allowed`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub record_allowed: bool,
    /// Record every program started in the sandbox (`process.exec`), from
    /// the host's trail programs.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub trace_exec: bool,
    /// Count the sandbox's syscalls by number, in the kernel; the `exited`
    /// record carries them by name (`syscalls`, `syscalls_total`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub trace_syscalls: bool,
    #[serde(default, skip_serializing_if = "Alerts::is_empty")]
    pub alerts: Alerts,
    /// What the supervisor does when records cannot be written.
    #[serde(default, skip_serializing_if = "OnFailure::is_default")]
    pub on_failure: OnFailure,
    /// The log's budget in bytes; `None`: [`DEFAULT_LOG_MAX_SIZE`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_size: Option<u64>,
}

/// A sandbox's log budget unless its policy says otherwise: a busy agent's
/// folded trail takes a few MB an hour.
pub const DEFAULT_LOG_MAX_SIZE: u64 = 1 << 30;

impl AuditPlan {
    pub fn max_size(&self) -> u64 {
        self.max_size.unwrap_or(DEFAULT_LOG_MAX_SIZE)
    }
}

/// When audit records cannot be written (disk full, I/O error, log
/// removed): either way they are counted and an `audit.lost` says so as
/// soon as it can be written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    /// Stop the sandbox: nothing it does goes unrecorded.
    #[default]
    Kill,
    /// Let it run on.
    Continue,
}

impl OnFailure {
    fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// Where each violation (or every record) is sent, live, besides the log.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Alerts {
    /// A host command (argv) run with the record as JSON on stdin.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// A Unix stream socket on the host that receives one JSON line per record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unix_socket: Option<PathBuf>,
    /// An `http://` URL that receives each record as a JSON POST.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<String>,
    /// A syslog datagram socket on the host (`/dev/log`): one message per
    /// record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub syslog: Option<PathBuf>,
    /// Which records go to the targets: the violations, or all of them (a
    /// live copy of the trail off the host).
    #[serde(default, skip_serializing_if = "AlertRecords::is_default")]
    pub records: AlertRecords,
    /// How each record is written: Purple's record or an OCSF event.
    #[serde(default, skip_serializing_if = "AlertFormat::is_default")]
    pub format: AlertFormat,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertRecords {
    #[default]
    Violations,
    All,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertFormat {
    #[default]
    Purple,
    Ocsf,
}

impl AlertRecords {
    fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

impl AlertFormat {
    fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

impl Alerts {
    pub fn is_empty(&self) -> bool {
        self.command.is_empty()
            && self.unix_socket.is_none()
            && self.http.is_none()
            && self.syslog.is_none()
    }
}

/// Time budgets of a session: past one, the supervisor sends SIGTERM to every
/// process of the container, then SIGKILL after `grace_seconds`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionPlan {
    /// Wall-clock seconds from `start`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u64>,
    /// CPU seconds used by the whole container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_seconds: Option<u64>,
    #[serde(default = "default_grace")]
    pub grace_seconds: u64,
    /// Size limits of output binds, enforced by project quotas where the
    /// filesystem has them, else by the supervisor (which stops the sandbox).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub output_limits: Vec<OutputLimit>,
}

/// The most bytes the bind mounted at `path` in the sandbox may hold. The
/// runtime takes the host directory from the spec's bind at that
/// destination, never from the annotation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputLimit {
    pub path: String,
    pub max_bytes: u64,
}

fn default_grace() -> u64 {
    2
}

impl Default for SessionPlan {
    fn default() -> Self {
        Self {
            timeout_seconds: None,
            cpu_seconds: None,
            grace_seconds: default_grace(),
            output_limits: Vec::new(),
        }
    }
}

fn from_annotation<T: DeserializeOwned + Default>(
    a: Option<&HashMap<String, String>>,
    annotation: &'static str,
) -> Result<T, SupervisionError> {
    match a.and_then(|a| a.get(annotation)) {
        Some(json) => serde_json::from_str(json).map_err(|e| SupervisionError {
            annotation,
            reason: e.to_string(),
        }),
        None => Ok(T::default()),
    }
}

impl AuditPlan {
    pub fn from_annotations(a: Option<&HashMap<String, String>>) -> Result<Self, SupervisionError> {
        from_annotation(a, AUDIT_ANNOTATION)
    }
}

impl SessionPlan {
    pub fn from_annotations(a: Option<&HashMap<String, String>>) -> Result<Self, SupervisionError> {
        from_annotation(a, SESSION_ANNOTATION)
    }
}
