//! The audit log: JSON Lines, one record per event, outside the container
//! (`/var/log/purple/<id>.jsonl` unless configured), append-only, each record
//! carrying the SHA-256 of the previous line so that a changed, removed or
//! reordered record is detected by [`verify`].
//!
//! Several processes append to one log (create, start, delete, the
//! supervisor); an exclusive `flock` around read-last-hash-and-append keeps
//! the chain linear.

use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use purple_policy::hostfs::{self, Scope};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

mod kind;
pub mod ocsf;
pub mod retention;
pub mod seal;
pub mod tree;

pub use ed25519_dalek::{SigningKey, VerifyingKey};
pub use kind::Kind;

/// Version of the record layout (`schema` field).
pub const SCHEMA: u32 = 1;
/// Where logs go unless the policy names a path.
pub const LOG_DIR: &str = "/var/log/purple";
/// `prev` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit log {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("alerts: {reason}")]
    Alerts { reason: String },
    #[error(transparent)]
    Key(#[from] seal::KeyError),
    #[error("audit log {path}, line {line}: {reason}")]
    Broken {
        path: PathBuf,
        line: usize,
        reason: String,
    },
}

/// One audit record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    pub schema: u32,
    /// Position in the log, from 1.
    pub seq: u64,
    /// RFC 3339 with nanoseconds, UTC.
    pub time: String,
    pub container_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// `lifecycle`, `network.blocked`, ...
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comm: Option<String>,
    /// The rule that decided, when one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    pub details: Value,
    /// SHA-256 (hex) of the previous line, or [`GENESIS`].
    pub prev: String,
}

/// What a caller fills in; the log adds schema, seq, time and prev.
#[derive(Debug, Clone, Default)]
pub struct Entry {
    pub kind: Kind,
    pub pid: Option<u32>,
    pub comm: Option<String>,
    pub rule: Option<String>,
    pub details: Value,
}

impl Entry {
    pub fn new(kind: Kind, details: Value) -> Self {
        Self {
            kind,
            details,
            ..Default::default()
        }
    }
}

/// The default log path of a container.
pub fn default_path(id: &str) -> PathBuf {
    Path::new(LOG_DIR).join(format!("{id}.jsonl"))
}

fn hash(line: &[u8]) -> String {
    digest(line)
}

/// SHA-256 of `bytes`, hex (the chain's links, and the digests a run's
/// first record binds: its policy and its bundle).
pub fn digest(bytes: &[u8]) -> String {
    seal::hex(&Sha256::digest(bytes))
}

/// An open, append-only audit log of one container.
pub struct AuditLog {
    path: PathBuf,
    file: File,
    container_id: String,
    policy: Option<String>,
    /// Records that would take the log past this size are not written.
    limit: Option<u64>,
}

/// Opens the log root (/var/log/purple), creating it 0700: logs hold
/// destinations, names and syscall arguments, for root only. A root-owned
/// root with wider bits is narrowed; one that is a link or someone else's is
/// refused (its owner could swap the logs).
pub fn log_root() -> std::io::Result<File> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let dir = hostfs::mkdirs(Path::new(LOG_DIR), 0o700)?;
    let meta = dir.metadata()?;
    if meta.uid() != 0 {
        return Err(std::io::Error::other(format!(
            "{LOG_DIR} is owned by uid {}, not root: remove it and let Purple create it",
            meta.uid()
        )));
    }
    if meta.mode() & 0o077 != 0 {
        dir.set_permissions(fs::Permissions::from_mode(0o700))?;
    }
    Ok(dir)
}

/// Opens (creating it 0600) the log file `path` without following a link on
/// any component: below the log root from its descriptor, elsewhere (logs a
/// person named, tests) from `/`.
fn open_log_file(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let path = if path.is_absolute() {
        path.to_owned()
    } else {
        std::env::current_dir()?.join(path)
    };
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(std::io::Error::other("not a file path"));
    };
    let dir = match parent.strip_prefix(LOG_DIR) {
        Ok(rel) => hostfs::mkdirs_beneath(&log_root()?, rel, 0o700)?,
        Err(_) => hostfs::mkdirs(parent, 0o700)?,
    };
    let flags = libc::O_RDWR | libc::O_APPEND | libc::O_CREAT;
    let fd = hostfs::openat2(
        dir.as_raw_fd(),
        Path::new(name),
        flags,
        0o600,
        Scope::Beneath,
    )
    .map_err(hostfs::explain)?;
    let file = File::from(fd);
    if file.metadata()?.mode() & 0o077 != 0 {
        file.set_permissions(fs::Permissions::from_mode(0o600))?;
    }
    Ok(file)
}

impl AuditLog {
    pub fn open(path: &Path, container_id: &str, policy: Option<&str>) -> Result<Self, AuditError> {
        let file = open_log_file(path).map_err(|source| AuditError::Io {
            path: path.to_owned(),
            source,
        })?;
        Ok(Self {
            path: path.to_owned(),
            file,
            container_id: container_id.to_owned(),
            policy: policy.map(str::to_owned),
            limit: None,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// From now on, appends write only the records that keep the log within
    /// `limit` bytes (in order: the first that does not fit and all after
    /// it are left out, and missing from what `append` returns); a
    /// checkpoint after them is always written. None: no limit.
    pub fn set_limit(&mut self, limit: Option<u64>) {
        self.limit = limit;
    }

    /// Bytes free for the log on its filesystem.
    pub fn free_space(&self) -> Result<u64, AuditError> {
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: fstatvfs on our own open fd into a zeroed struct.
        if unsafe { libc::fstatvfs(self.file.as_raw_fd(), &mut st) } != 0 {
            return Err(AuditError::Io {
                path: self.path.clone(),
                source: std::io::Error::last_os_error(),
            });
        }
        Ok(st.f_bavail as u64 * st.f_frsize as u64)
    }

    /// The log's size now.
    pub fn size(&self) -> Result<u64, AuditError> {
        self.file
            .metadata()
            .map(|m| m.len())
            .map_err(|source| AuditError::Io {
                path: self.path.clone(),
                source,
            })
    }

    pub fn container_id(&self) -> &str {
        &self.container_id
    }

    pub fn policy(&self) -> Option<&str> {
        self.policy.as_deref()
    }

    /// Appends records for `entries`, chained to whatever the log ends with;
    /// returns them as written.
    pub fn append(&mut self, entries: &[Entry]) -> Result<Vec<Record>, AuditError> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        self.locked(|log| log.append_locked(entries, None))
    }

    /// Appends `entries` and, in the same write, a checkpoint signed with
    /// `key` (a seal, which closes the log, when `seal`). Without entries the
    /// checkpoint is written only when records follow the last one.
    pub fn append_signed(
        &mut self,
        entries: &[Entry],
        key: &SigningKey,
        seal: bool,
    ) -> Result<Vec<Record>, AuditError> {
        self.locked(|log| log.append_locked(entries, Some((key, seal))))
    }

    /// Runs `f` holding the log's exclusive lock.
    fn locked<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> std::io::Result<T>,
    ) -> Result<T, AuditError> {
        let path = self.path.clone();
        let io = |source| AuditError::Io { path, source };
        // SAFETY: flock on our own open fd.
        if unsafe { libc::flock(self.file.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(io(std::io::Error::last_os_error()));
        }
        let result = f(self);
        // SAFETY: as above; closing the fd would release it too.
        unsafe { libc::flock(self.file.as_raw_fd(), libc::LOCK_UN) };
        result.map_err(io)
    }

    fn append_locked(
        &mut self,
        entries: &[Entry],
        checkpoint: Option<(&SigningKey, bool)>,
    ) -> std::io::Result<Vec<Record>> {
        let (mut seq, mut prev, last) = last_link(&mut self.file)?;
        let first = seq;
        let before = self.file.metadata()?.len();
        let room = self.limit.map(|l| l.saturating_sub(before) as usize);
        let mut out = Vec::new();
        let mut written = Vec::with_capacity(entries.len() + 1);
        let mut push = |rec: Record, line: Vec<u8>, prev: &mut String| {
            *prev = hash(&line);
            out.extend_from_slice(&line);
            out.push(b'\n');
            written.push(rec);
        };
        let mut used = 0;
        for e in entries {
            let rec = Record {
                pid: e.pid,
                comm: e.comm.clone(),
                rule: e.rule.clone(),
                details: e.details.clone(),
                ..self.record(seq + 1, e.kind, prev.clone())
            };
            let line = serde_json::to_vec(&rec).expect("records serialise");
            used += line.len() + 1;
            if room.is_some_and(|room| used > room) {
                break;
            }
            seq += 1;
            push(rec, line, &mut prev);
        }
        // Nothing new to sign: the log already ends with such a checkpoint.
        let signed = seq == first
            && last.is_some_and(|r| {
                r.kind == Kind::AuditCheckpoint.as_str()
                    && checkpoint.is_some_and(|(_, seal)| r.details["seal"] == seal)
            });
        if let (Some((key, seal)), false) = (checkpoint, signed) {
            seq += 1;
            let mut rec = self.record(seq, Kind::AuditCheckpoint, prev.clone());
            rec.details = seal::sign(key, &rec.container_id, seq, &rec.time, &rec.prev, seal);
            let line = serde_json::to_vec(&rec).expect("records serialise");
            push(rec, line, &mut prev);
        }
        if out.is_empty() {
            return Ok(written);
        }
        // Whole or not at all: a write cut short (disk full, I/O error) is
        // rolled back to the length before it, so the log never ends in
        // half a record and its chain still verifies.
        if let Err(e) = self
            .file
            .write_all(&out)
            .and_then(|()| self.file.sync_data())
        {
            let _ = self.file.set_len(before);
            return Err(e);
        }
        Ok(written)
    }

    /// A record of this log at `seq` with no details yet.
    fn record(&self, seq: u64, kind: Kind, prev: String) -> Record {
        Record {
            schema: SCHEMA,
            seq,
            time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            container_id: self.container_id.clone(),
            policy: self.policy.clone(),
            kind: kind.as_str().to_owned(),
            pid: None,
            comm: None,
            rule: None,
            details: Value::Null,
            prev,
        }
    }
}

/// Sequence number and hash of the last line (0 and GENESIS for an empty
/// log), and that line as a record if it is one.
fn last_link(file: &mut File) -> std::io::Result<(u64, String, Option<Record>)> {
    let len = file.seek(SeekFrom::End(0))?;
    if len == 0 {
        return Ok((0, GENESIS.to_owned(), None));
    }
    // Read a growing tail until it holds the whole last line.
    let mut window = 4096u64;
    loop {
        let start = len.saturating_sub(window);
        file.seek(SeekFrom::Start(start))?;
        let mut tail = Vec::new();
        file.read_to_end(&mut tail)?;
        let body = tail.strip_suffix(b"\n").unwrap_or(&tail);
        let line = match body.iter().rposition(|&b| b == b'\n') {
            Some(pos) => &body[pos + 1..],
            None if start == 0 => body,
            None => {
                window *= 2;
                continue;
            }
        };
        let last = serde_json::from_slice::<Record>(line).ok();
        return Ok((last.as_ref().map_or(0, |r| r.seq), hash(line), last));
    }
}

/// How a log ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// With a seal: closed, nothing after it.
    Sealed,
    /// Without one: still being written, its writer died, or cut short
    /// (only the container's state tells which). `unsigned` are the
    /// sequence numbers after the last checkpoint.
    Unsealed {
        last_checkpoint: Option<u64>,
        unsigned: Vec<u64>,
    },
}

/// A log whose chain and signatures hold.
#[derive(Debug, Clone)]
pub struct Checked {
    pub records: Vec<Record>,
    pub ending: Ending,
    pub checkpoints: usize,
}

impl Checked {
    /// The run binding of the last run in the log (its `created` record's
    /// `run`), which the container's state names too.
    pub fn run(&self) -> Option<&str> {
        self.records
            .iter()
            .rev()
            .find(|r| r.kind == Kind::Lifecycle.as_str() && r.details["event"] == "created")
            .and_then(|r| r.details["run"].as_str())
    }
}

/// Reads every record, checking the chain and every checkpoint's signature
/// against `trusted`. An `Err(Broken)` is a forgery (or a torn record): a
/// changed, removed or reordered record, a recomputed chain, a signature of
/// another key, records of another container.
pub fn check(path: &Path, trusted: &VerifyingKey) -> Result<Checked, AuditError> {
    let io = |source| AuditError::Io {
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    let mut prev = GENESIS.to_owned();
    let mut records: Vec<Record> = Vec::new();
    let mut last_checkpoint = None;
    let mut sealed = false;
    let mut checkpoints = 0;
    for (i, line) in BufReader::new(file).split(b'\n').enumerate() {
        let line = line.map_err(io)?;
        let broken = |reason: String| AuditError::Broken {
            path: path.to_owned(),
            line: i + 1,
            reason,
        };
        let rec: Record =
            serde_json::from_slice(&line).map_err(|e| broken(format!("not a record: {e}")))?;
        if rec.prev != prev {
            return Err(broken(
                "hash chain broken: the previous record was changed, removed or moved".into(),
            ));
        }
        if rec.seq != i as u64 + 1 {
            return Err(broken(format!(
                "sequence {} where {} was due",
                rec.seq,
                i + 1
            )));
        }
        if let Some(first) = records
            .first()
            .filter(|f| f.container_id != rec.container_id)
        {
            return Err(broken(format!(
                "a record of container {:?} in the log of {:?}: moved from another run",
                rec.container_id, first.container_id
            )));
        }
        sealed = false;
        if rec.kind == Kind::AuditCheckpoint.as_str() {
            sealed = seal::check(&rec, trusted).map_err(broken)?;
            last_checkpoint = Some(rec.seq);
            checkpoints += 1;
        }
        prev = hash(&line);
        records.push(rec);
    }
    if checkpoints == 0 && !records.is_empty() {
        return Err(AuditError::Broken {
            path: path.to_owned(),
            line: records.len(),
            reason: "no signed checkpoint: the log was rewritten, or not written by Purple".into(),
        });
    }
    let ending = if sealed {
        Ending::Sealed
    } else {
        Ending::Unsealed {
            last_checkpoint,
            unsigned: records
                .iter()
                .map(|r| r.seq)
                .filter(|&s| last_checkpoint.is_none_or(|c| s > c))
                .collect(),
        }
    };
    Ok(Checked {
        records,
        ending,
        checkpoints,
    })
}

/// [`check`] against the host's key; the records in order.
pub fn verify(path: &Path) -> Result<Vec<Record>, AuditError> {
    let key = seal::host_key()?;
    Ok(check(path, &key.verifying_key())?.records)
}

/// Reads every record without checking the chain (for showing a log that
/// may be growing or damaged; [`verify`] is the check).
pub fn records(path: &Path) -> Result<Vec<Record>, AuditError> {
    let text = fs::read(path).map_err(|source| AuditError::Io {
        path: path.to_owned(),
        source,
    })?;
    parse_lines(path, &text, 0)
}

/// Parses complete JSON lines; `first_line` numbers errors.
pub fn parse_lines(path: &Path, text: &[u8], first_line: usize) -> Result<Vec<Record>, AuditError> {
    text.split(|&b| b == b'\n')
        .enumerate()
        .filter(|(_, l)| !l.is_empty())
        .map(|(i, l)| {
            serde_json::from_slice(l).map_err(|e| AuditError::Broken {
                path: path.to_owned(),
                line: first_line + i + 1,
                reason: format!("not a record: {e}"),
            })
        })
        .collect()
}

/// How many events a record of `kind` with `details` stands for: a folded
/// record (`"folded": true`) or one of a counting kind its `count`, any
/// other one.
pub fn stands_for(kind: Kind, details: &Value) -> u64 {
    if kind.counts() || details["folded"] == true {
        details["count"].as_u64().unwrap_or(1)
    } else {
        1
    }
}

/// Whether records of `kind` are violations (counted as such and sent to the
/// alert targets): all but lifecycle events and the allowed connections a
/// policy asks to have recorded (a kind this version does not know is one).
pub fn is_violation(kind: &str) -> bool {
    Kind::parse(kind).is_none_or(Kind::is_violation)
}

/// Counts of a log's records: violations by kind and by the rule that
/// decided, and the lifecycle events. `purple audit summary` prints it, and
/// `purple run` when the agent exits.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Records but checkpoints.
    pub records: usize,
    /// Every kind but `lifecycle`, with its count (`network.allowed` too,
    /// which is not a violation).
    pub kinds: std::collections::BTreeMap<String, u64>,
    /// (kind, rule) with its count; records without a rule count under "-".
    pub rules: std::collections::BTreeMap<String, std::collections::BTreeMap<String, u64>>,
    /// `lifecycle` events in order (`exited` with its status where known).
    pub lifecycle: Vec<String>,
    /// What went through the LLM gateway (`llm.request` records).
    pub llm: LlmTotals,
    /// Syscall counts of the `exited` records (`trace_syscalls`), by name.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub syscalls: std::collections::BTreeMap<String, u64>,
}

/// Syscalls `purple audit summary` names; the JSON form has them all.
const TOP_SYSCALLS: usize = 10;

/// The sums of a log's `llm.request` records.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LlmTotals {
    pub requests: u64,
    pub tokens_in: u64,
    pub tokens_out: u64,
    pub tokens_cached: u64,
    /// Billionths of a dollar, of the requests whose cost is known.
    pub cost_nanousd: u64,
    /// Requests with tokens but no price.
    pub unknown_cost: u64,
}

impl LlmTotals {
    fn add(&mut self, d: &Value) {
        let n = |k: &str| d[k].as_u64().unwrap_or(0);
        self.requests += 1;
        self.tokens_in += n("tokens_in");
        self.tokens_out += n("tokens_out");
        self.tokens_cached += n("tokens_cached");
        match d["cost_usd"].as_f64() {
            Some(c) => self.cost_nanousd += (c * 1e9).round() as u64,
            None if d.get("tokens_in").is_some() => self.unknown_cost += 1,
            None => {}
        }
    }
}

impl Summary {
    pub fn of(records: &[Record]) -> Self {
        let mut s = Self::default();
        for r in records {
            // Signatures, not events.
            if r.kind == Kind::AuditCheckpoint.as_str() {
                continue;
            }
            s.records += 1;
            if r.kind == Kind::Lifecycle.as_str() {
                let event = r.details["event"].as_str().unwrap_or("?");
                s.lifecycle
                    .push(match (&r.details["code"], &r.details["signal"]) {
                        (Value::Number(c), _) => format!("{event} (code {c})"),
                        (_, Value::String(sig)) => format!("{event} ({sig})"),
                        _ => event.to_owned(),
                    });
                for (name, n) in r.details["syscalls"].as_object().into_iter().flatten() {
                    *s.syscalls.entry(name.clone()).or_default() += n.as_u64().unwrap_or(0);
                }
                continue;
            }
            if r.kind == Kind::LlmRequest.as_str() {
                s.llm.add(&r.details);
            }
            let n = Kind::parse(&r.kind).map_or(1, |k| stands_for(k, &r.details));
            *s.kinds.entry(r.kind.clone()).or_default() += n;
            *s.rules
                .entry(r.kind.clone())
                .or_default()
                .entry(r.rule.clone().unwrap_or_else(|| "-".into()))
                .or_default() += n;
        }
        s
    }

    /// Violations in all.
    pub fn violations(&self) -> u64 {
        self.kinds
            .iter()
            .filter(|(k, _)| is_violation(k))
            .map(|(_, n)| n)
            .sum()
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{} records, {} violations",
            self.records,
            self.violations()
        )?;
        for (kind, n) in &self.kinds {
            writeln!(f, "  {kind:<20} {n:>8}")?;
            for (rule, n) in &self.rules[kind] {
                writeln!(f, "    {rule:<38} {n:>8}")?;
            }
        }
        if !self.lifecycle.is_empty() {
            writeln!(f, "lifecycle: {}", self.lifecycle.join(", "))?;
        }
        if !self.syscalls.is_empty() {
            let mut top: Vec<(&String, &u64)> = self.syscalls.iter().collect();
            top.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            let total: u64 = top.iter().map(|(_, n)| *n).sum();
            writeln!(f, "syscalls: {total} ({} kinds)", top.len())?;
            for (name, n) in top.into_iter().take(TOP_SYSCALLS) {
                writeln!(f, "  {name:<20} {n:>8}")?;
            }
        }
        let l = &self.llm;
        if l.requests > 0 {
            write!(
                f,
                "llm: {} requests, {} tokens in ({} cached), {} out, ${:.6}",
                l.requests,
                l.tokens_in,
                l.tokens_cached,
                l.tokens_out,
                l.cost_nanousd as f64 / 1e9
            )?;
            if l.unknown_cost > 0 {
                write!(f, " (+{} of unknown cost)", l.unknown_cost)?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

/// The summary of the log at `path`.
pub fn summary(path: &Path) -> Result<Summary, AuditError> {
    Ok(Summary::of(&records(path)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(n: u8) -> SigningKey {
        SigningKey::from_bytes(&[n; 32])
    }

    fn checked(p: &Path) -> Result<Checked, AuditError> {
        check(p, &key(1).verifying_key())
    }

    /// `n` records then a checkpoint.
    fn log_with(n: usize) -> (tempfile::TempDir, PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.jsonl");
        let mut log = AuditLog::open(&p, "c1", Some("secure-agent")).unwrap();
        for i in 0..n {
            log.append(&[Entry::new(Kind::Lifecycle, json!({"n": i}))])
                .unwrap();
        }
        log.append_signed(&[], &key(1), false).unwrap();
        (d, p)
    }

    fn lines(p: &Path) -> Vec<String> {
        fs::read_to_string(p)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn write_lines(p: &Path, ls: &[String]) {
        fs::write(p, ls.join("\n") + "\n").unwrap();
    }

    /// The log's records with the chain recomputed, as someone who can
    /// write the file but has not the key would forge it.
    fn rechain(p: &Path, edit: impl Fn(&mut Record)) {
        let mut prev = GENESIS.to_owned();
        let out: Vec<String> = lines(p)
            .iter()
            .map(|l| {
                let mut r: Record = serde_json::from_str(l).unwrap();
                edit(&mut r);
                r.prev = prev.clone();
                let line = serde_json::to_string(&r).unwrap();
                prev = hash(line.as_bytes());
                line
            })
            .collect();
        write_lines(p, &out);
    }

    #[test]
    fn sealed_open_and_cut_logs_are_told_apart() {
        let (_d, p) = log_with(2);
        let mut log = AuditLog::open(&p, "c1", None).unwrap();
        log.append(&[Entry::new(Kind::NetworkBlocked, json!({}))])
            .unwrap();
        let c = checked(&p).unwrap();
        assert_eq!(
            c.ending,
            Ending::Unsealed {
                last_checkpoint: Some(3),
                unsigned: vec![4]
            }
        );
        // Nothing new: no second checkpoint in a row.
        log.append_signed(&[], &key(1), false).unwrap();
        log.append_signed(&[], &key(1), false).unwrap();
        assert_eq!(checked(&p).unwrap().checkpoints, 2);
        log.append_signed(
            &[Entry::new(Kind::Lifecycle, json!({"event": "deleted"}))],
            &key(1),
            true,
        )
        .unwrap();
        let c = checked(&p).unwrap();
        assert_eq!(
            (c.ending, c.checkpoints, c.records.len()),
            (Ending::Sealed, 3, 7)
        );
        // The seal cut off: the chain still holds, the end is missing.
        let mut ls = lines(&p);
        ls.pop();
        write_lines(&p, &ls);
        assert_eq!(
            checked(&p).unwrap().ending,
            Ending::Unsealed {
                last_checkpoint: Some(5),
                unsigned: vec![6]
            }
        );
    }

    #[test]
    fn a_recomputed_chain_another_key_and_another_run_are_forgeries() {
        let (_d, p) = log_with(3);
        let good = lines(&p);
        rechain(&p, |r| {
            if r.seq == 2 {
                r.details = json!({"n": 9});
            }
        });
        let err = checked(&p).unwrap_err().to_string();
        assert!(
            err.contains("line 4") && err.contains("signature mismatch"),
            "{err}"
        );

        // Re-signed with a key that is not the host's.
        write_lines(&p, &good[..3]);
        AuditLog::open(&p, "c1", None)
            .unwrap()
            .append_signed(&[], &key(2), true)
            .unwrap();
        let err = checked(&p).unwrap_err().to_string();
        assert!(err.contains("re-signed with another key"), "{err}");

        // Records of another container: moved.
        write_lines(&p, &good);
        let mut other = AuditLog::open(&p, "c2", None).unwrap();
        other
            .append(&[Entry::new(Kind::Lifecycle, json!({}))])
            .unwrap();
        let err = checked(&p).unwrap_err().to_string();
        assert!(err.contains("moved from another run"), "{err}");

        // Checkpoints removed and the chain recomputed.
        write_lines(&p, &good[..3]);
        rechain(&p, |_| {});
        let err = checked(&p).unwrap_err().to_string();
        assert!(err.contains("no signed checkpoint"), "{err}");

        write_lines(&p, &good);
        assert_eq!(checked(&p).unwrap().records.len(), 4);
    }

    #[test]
    fn summary_counts_by_kind_and_rule() {
        let (_d, p) = log_with(0);
        let mut log = AuditLog::open(&p, "c1", None).unwrap();
        let denied = |rule: &str| Entry {
            kind: Kind::SyscallDenied,
            rule: Some(rule.into()),
            details: json!({}),
            ..Default::default()
        };
        log.append(&[
            Entry::new(Kind::Lifecycle, json!({"event": "started"})),
            denied("seccomp #1 SCMP_ACT_ERRNO"),
            denied("seccomp #1 SCMP_ACT_ERRNO"),
            denied("seccomp #2 SCMP_ACT_KILL"),
            Entry::new(Kind::ResourceOom, json!({"count": 3})),
            Entry::new(Kind::NetworkAllowed, json!({})),
            Entry::new(Kind::Lifecycle, json!({"event": "exited", "code": 2})),
        ])
        .unwrap();
        let s = summary(&p).unwrap();
        assert_eq!(s.records, 7);
        assert_eq!(s.violations(), 6);
        assert_eq!(s.kinds["network.allowed"], 1);
        assert_eq!(s.kinds["syscall.denied"], 3);
        assert_eq!(s.rules["syscall.denied"]["seccomp #1 SCMP_ACT_ERRNO"], 2);
        assert_eq!(s.rules["resource.oom"]["-"], 3);
        assert_eq!(s.lifecycle, ["started", "exited (code 2)"]);
        let text = s.to_string();
        assert!(text.starts_with("7 records, 6 violations\n"), "{text}");
        assert!(text.contains("lifecycle: started, exited (code 2)"));
    }

    #[test]
    fn summary_sums_the_syscall_counts_and_names_the_top_ones() {
        let (_d, p) = log_with(0);
        let mut log = AuditLog::open(&p, "c1", None).unwrap();
        let counts: serde_json::Map<String, Value> = (0..12)
            .map(|i| (format!("call{i:02}"), json!(100 + i)))
            .collect();
        log.append(&[
            Entry::new(
                Kind::Lifecycle,
                json!({"event": "exited", "syscalls": counts}),
            ),
            Entry::new(
                Kind::Lifecycle,
                json!({"event": "exited", "syscalls": {"call00": 1}}),
            ),
        ])
        .unwrap();
        let s = summary(&p).unwrap();
        assert_eq!(s.syscalls["call00"], 101);
        assert_eq!(s.syscalls.len(), 12);
        let text = s.to_string();
        assert!(
            text.contains("syscalls: 1267 (12 kinds)\n  call11"),
            "{text}"
        );
        // The ten most called only: call00 and call01 (101) are cut.
        assert!(
            text.contains("call02") && !text.contains("call01"),
            "{text}"
        );
    }

    #[test]
    fn chain_verifies_across_reopens() {
        let (_d, p) = log_with(3);
        let mut again = AuditLog::open(&p, "c1", None).unwrap();
        again
            .append(&[
                Entry::new(Kind::NetworkBlocked, json!({})),
                Entry::new(Kind::Lifecycle, json!({})),
            ])
            .unwrap();
        again.append_signed(&[], &key(1), false).unwrap();
        let recs = checked(&p).unwrap().records;
        assert_eq!(recs.len(), 7);
        assert_eq!(recs[0].prev, GENESIS);
        assert_eq!(recs[5].seq, 6);
        assert_eq!(recs[0].policy.as_deref(), Some("secure-agent"));
    }

    #[test]
    fn edits_removals_and_reorders_are_detected() {
        let (_d, p) = log_with(4);
        let text = fs::read_to_string(&p).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let write = |ls: Vec<String>| fs::write(&p, ls.join("\n") + "\n").unwrap();
        let owned = |ls: &[&str]| ls.iter().map(|s| s.to_string()).collect::<Vec<_>>();

        let mut edited = owned(&lines);
        edited[1] = edited[1].replace("\"n\":1", "\"n\":7");
        write(edited);
        assert!(checked(&p).unwrap_err().to_string().contains("line 3"));

        let mut removed = owned(&lines);
        removed.remove(2);
        write(removed);
        assert!(checked(&p).is_err());

        let mut swapped = owned(&lines);
        swapped.swap(1, 2);
        write(swapped);
        assert!(checked(&p).is_err());

        write(owned(&lines));
        assert_eq!(checked(&p).unwrap().records.len(), 5);
    }
}
