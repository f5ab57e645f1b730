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
    Sha256::digest(line)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// An open, append-only audit log of one container.
pub struct AuditLog {
    path: PathBuf,
    file: File,
    container_id: String,
    policy: Option<String>,
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
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends records for `entries`, chained to whatever the log ends with;
    /// returns them as written.
    pub fn append(&mut self, entries: &[Entry]) -> Result<Vec<Record>, AuditError> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let path = self.path.clone();
        let io = |source| AuditError::Io { path, source };
        // SAFETY: flock on our own open fd.
        if unsafe { libc::flock(self.file.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(io(std::io::Error::last_os_error()));
        }
        let result = self.append_locked(entries);
        // SAFETY: as above; closing the fd would release it too.
        unsafe { libc::flock(self.file.as_raw_fd(), libc::LOCK_UN) };
        result.map_err(io)
    }

    fn append_locked(&mut self, entries: &[Entry]) -> std::io::Result<Vec<Record>> {
        let (mut seq, mut prev) = last_link(&mut self.file)?;
        let mut out = Vec::new();
        let mut written = Vec::with_capacity(entries.len());
        for e in entries {
            seq += 1;
            let rec = Record {
                schema: SCHEMA,
                seq,
                time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
                container_id: self.container_id.clone(),
                policy: self.policy.clone(),
                kind: e.kind.as_str().to_owned(),
                pid: e.pid,
                comm: e.comm.clone(),
                rule: e.rule.clone(),
                details: e.details.clone(),
                prev: prev.clone(),
            };
            let line = serde_json::to_vec(&rec).expect("records serialise");
            prev = hash(&line);
            out.extend_from_slice(&line);
            out.push(b'\n');
            written.push(rec);
        }
        self.file.write_all(&out)?;
        self.file.sync_data()?;
        Ok(written)
    }
}

/// Sequence number and hash of the last line (0 and GENESIS for an empty log).
fn last_link(file: &mut File) -> std::io::Result<(u64, String)> {
    let len = file.seek(SeekFrom::End(0))?;
    if len == 0 {
        return Ok((0, GENESIS.to_owned()));
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
        let seq = serde_json::from_slice::<Record>(line).map_or(0, |r| r.seq);
        return Ok((seq, hash(line)));
    }
}

/// Reads every record, checking the chain; returns them in order.
pub fn verify(path: &Path) -> Result<Vec<Record>, AuditError> {
    let io = |source| AuditError::Io {
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    let mut prev = GENESIS.to_owned();
    let mut records = Vec::new();
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
        prev = hash(&line);
        records.push(rec);
    }
    Ok(records)
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
}

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
        let mut s = Self {
            records: records.len(),
            ..Default::default()
        };
        for r in records {
            if r.kind == Kind::Lifecycle.as_str() {
                let event = r.details["event"].as_str().unwrap_or("?");
                s.lifecycle
                    .push(match (&r.details["code"], &r.details["signal"]) {
                        (Value::Number(c), _) => format!("{event} (code {c})"),
                        (_, Value::String(sig)) => format!("{event} ({sig})"),
                        _ => event.to_owned(),
                    });
                continue;
            }
            if r.kind == Kind::LlmRequest.as_str() {
                s.llm.add(&r.details);
            }
            // Records that carry a count stand for that many events.
            let n = match Kind::parse(&r.kind) {
                Some(k) if k.counts() => r.details["count"].as_u64().unwrap_or(1),
                _ => 1,
            };
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

    fn log_with(n: usize) -> (tempfile::TempDir, PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.jsonl");
        let mut log = AuditLog::open(&p, "c1", Some("secure-agent")).unwrap();
        for i in 0..n {
            log.append(&[Entry::new(Kind::Lifecycle, json!({"n": i}))])
                .unwrap();
        }
        (d, p)
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
    fn chain_verifies_across_reopens() {
        let (_d, p) = log_with(3);
        let mut again = AuditLog::open(&p, "c1", None).unwrap();
        again
            .append(&[
                Entry::new(Kind::NetworkBlocked, json!({})),
                Entry::new(Kind::Lifecycle, json!({})),
            ])
            .unwrap();
        let recs = verify(&p).unwrap();
        assert_eq!(recs.len(), 5);
        assert_eq!(recs[0].prev, GENESIS);
        assert_eq!(recs[4].seq, 5);
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
        assert!(verify(&p).unwrap_err().to_string().contains("line 3"));

        let mut removed = owned(&lines);
        removed.remove(2);
        write(removed);
        assert!(verify(&p).is_err());

        let mut swapped = owned(&lines);
        swapped.swap(1, 2);
        write(swapped);
        assert!(verify(&p).is_err());

        write(owned(&lines));
        assert_eq!(verify(&p).unwrap().len(), 4);
    }
}
