//! `purple audit`: show, follow, summarise and verify a container's audit trail.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use chrono::{DateTime, Utc};
use clap::Subcommand;

use crate::audit::{self, Kind, Record};
use crate::container::Runtime;

/// Show a container's audit log: a table by default, JSON lines with --json.
///
/// Examples:
///   purple audit agent-1
///   purple audit agent-1 --kind syscall.denied --since 10m
///   purple audit --path /var/log/purple/agent-1.jsonl --follow --json
///   purple audit agent-1 --format ocsf
///   purple audit summary agent-1
///   purple audit tree agent-1
#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true, verbatim_doc_comment)]
pub struct Args {
    #[command(subcommand)]
    command: Option<AuditCommand>,
    #[command(flatten)]
    source: Source,
    /// Only records of this kind (repeatable; `network` matches `network.*`).
    #[arg(long, value_name = "KIND")]
    kind: Vec<String>,
    /// Only records since an RFC 3339 time or a duration ago (`90s`, `10m`, `2h`).
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
    /// Keep printing records as they are written, until the container is deleted.
    #[arg(short, long)]
    follow: bool,
    /// One JSON record per line instead of a table (`--format json`).
    #[arg(long, conflicts_with = "format")]
    json: bool,
    /// How records are printed: a table, Purple's JSON records, or OCSF
    /// events (one JSON object per line, for a SIEM).
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Table,
    Json,
    Ocsf,
}

/// Which log: a container's (by ID, under --root) or a file.
#[derive(clap::Args, Debug)]
struct Source {
    /// Container ID (its log, as its record names it, else /var/log/purple/ID.jsonl).
    #[arg(conflicts_with = "path")]
    id: Option<String>,
    /// The log file.
    #[arg(long, value_name = "FILE")]
    path: Option<PathBuf>,
}

impl Source {
    fn resolve(self, root: &Path) -> Result<PathBuf> {
        match (self.path, self.id) {
            (Some(p), _) => Ok(p),
            (None, Some(id)) => {
                let id = crate::oci::container_id(&id)?;
                Ok(Runtime::new(root, false).audit_log(&id))
            }
            (None, None) => bail!("name a container ID or a log file with --path FILE"),
        }
    }
}

#[derive(Subcommand, Debug)]
enum AuditCommand {
    /// Count violations by kind and by the rule that decided.
    Summary {
        #[command(flatten)]
        source: Source,
        /// The counts as JSON.
        #[arg(long)]
        json: bool,
    },
    /// The process tree of a run traced with `ebpf_monitoring.trace_exec`:
    /// each process with the programs it ran, its connections, DNS names
    /// and violations.
    Tree {
        #[command(flatten)]
        source: Source,
        /// The tree as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check a log's hash chain and signed checkpoints. Exits 0: intact and
    /// closed; 3: intact but open (still written, or its writer died);
    /// 4: truncated; 5: forged; 1: the log could not be read.
    Verify {
        #[command(flatten)]
        source: Source,
        /// The public key to check signatures with (as `purple audit key`
        /// prints it); this host's by default.
        #[arg(long, value_name = "HEX")]
        key: Option<String>,
    },
    /// Print this host's public audit key (hex), to verify its logs elsewhere.
    Key,
}

/// `purple audit verify`'s exit codes, one per outcome.
pub const VERIFY_OPEN: i32 = 3;
pub const VERIFY_TRUNCATED: i32 = 4;
pub const VERIFY_FORGED: i32 = 5;

pub fn audit(args: Args, root: &Path) -> Result<i32> {
    match args.command {
        Some(AuditCommand::Verify { source, key }) => {
            let id = source.id.clone();
            let path = source.resolve(root)?;
            let key = match key {
                Some(hex) => audit::seal::public_key(&hex)?,
                None => audit::seal::host_key()?.verifying_key(),
            };
            let (message, code) = verify(&path, &key, id.as_deref(), &Runtime::new(root, false))?;
            println!(
                "{}: {}",
                path.display(),
                crate::escape::for_terminal(&message)
            );
            Ok(code)
        }
        Some(AuditCommand::Key) => {
            let key = audit::seal::host_key()?;
            println!("{}", audit::seal::public_hex(&key.verifying_key()));
            Ok(0)
        }
        Some(AuditCommand::Summary { source, json }) => {
            let path = source.resolve(root)?;
            let s = audit::summary(&path)?;
            if json {
                println!("{}", serde_json::to_string(&s)?);
            } else {
                print!("{}", crate::escape::lines_for_terminal(&s.to_string()));
            }
            Ok(0)
        }
        Some(AuditCommand::Tree { source, json }) => {
            let path = source.resolve(root)?;
            let records = audit::records(&path)?;
            let tree = audit::tree::tree(&records);
            if json {
                println!("{}", serde_json::to_string(&tree)?);
            } else {
                // argv, comm and names are the agent's choice.
                print!("{}", crate::escape::lines_for_terminal(&tree.to_string()));
            }
            Ok(0)
        }
        None => {
            let filter = Filter {
                kinds: args.kind,
                since: args.since.as_deref().map(since).transpose()?,
            };
            let format = if args.json { Format::Json } else { args.format };
            show(&args.source.resolve(root)?, &filter, args.follow, format)
        }
    }
}

/// The outcome of verifying the log at `path` (of container `id` when the
/// caller named one), as a sentence and an exit code. The file tells a
/// sealed log from an unsealed one; the container's state tells an open
/// one (its container still exists) from one cut short (it was deleted,
/// and `delete` always seals).
fn verify(
    path: &Path,
    key: &audit::VerifyingKey,
    id: Option<&str>,
    runtime: &Runtime,
) -> Result<(String, i32)> {
    let forged = |why: String| Ok((format!("forged: {why}"), VERIFY_FORGED));
    let checked = match audit::check(path, key) {
        Ok(c) => c,
        Err(audit::AuditError::Broken { line, reason, .. }) => {
            return forged(format!("line {line}: {reason}"))
        }
        Err(e) => return Err(e).context("cannot verify"),
    };
    let Some(first) = checked.records.first() else {
        return Ok(("truncated: no records at all".into(), VERIFY_TRUNCATED));
    };
    let owner = first.container_id.clone();
    if let Some(id) = id.filter(|id| *id != owner) {
        return forged(format!(
            "its records are of container {owner:?}, not {id:?}: moved onto another run"
        ));
    }
    let container = crate::id::ContainerId::parse(&owner)
        .ok()
        .filter(|c| runtime.exists(c));
    if let Some(c) = &container {
        let bound = runtime
            .record(c)
            .and_then(|r| r.binding)
            .and_then(|b| b["run"].as_str().map(str::to_owned));
        if let Some(run) = bound.filter(|run| checked.run() != Some(run.as_str())) {
            return forged(format!(
                "container {owner:?} is run {run}, the log's last run is {}: moved onto another run",
                checked.run().unwrap_or("unbound")
            ));
        }
    }
    let n = checked.records.len();
    let signed = checked.checkpoints;
    let audit::Ending::Unsealed {
        last_checkpoint,
        unsigned,
    } = &checked.ending
    else {
        return Ok((
            format!("intact and closed: {n} records, hash chain intact, {signed} signed checkpoints, sealed"),
            0,
        ));
    };
    let tail = match (unsigned.first(), unsigned.last()) {
        (Some(a), Some(b)) if a == b => format!("record {a} is after the last checkpoint"),
        (Some(a), Some(b)) => format!("records {a}-{b} are after the last checkpoint"),
        _ => "nothing is after the last checkpoint".into(),
    };
    let last = last_checkpoint.map_or("none".into(), |c| format!("record {c}"));
    let Some(c) = container else {
        return Ok((
            format!(
                "truncated: {n} records, hash chain intact, {signed} signed checkpoints (last: {last}), \
                 but no seal: container {owner:?} no longer exists, so the end was cut off; {tail} \
                 and unsigned"
            ),
            VERIFY_TRUNCATED,
        ));
    };
    let writer = match runtime.supervisor(&c) {
        Some((pid, true)) => format!("its writer (supervisor pid {pid}) is still running"),
        Some((pid, false)) => {
            format!("its writer (supervisor pid {pid}) died: the tail was never signed")
        }
        None => "it has no supervisor".into(),
    };
    Ok((
        format!(
            "intact but open: {n} records, hash chain intact, {signed} signed checkpoints (last: {last}); \
             {tail}; {writer}"
        ),
        VERIFY_OPEN,
    ))
}

struct Filter {
    kinds: Vec<String>,
    since: Option<DateTime<Utc>>,
}

impl Filter {
    fn keeps(&self, r: &Record) -> bool {
        let kind_ok = self.kinds.is_empty()
            || self.kinds.iter().any(|k| {
                r.kind == *k
                    || r.kind
                        .strip_prefix(k.as_str())
                        .is_some_and(|rest| rest.starts_with('.'))
            });
        let time_ok = self
            .since
            .is_none_or(|since| DateTime::parse_from_rfc3339(&r.time).is_ok_and(|t| t >= since));
        kind_ok && time_ok
    }
}

fn since(raw: &str) -> Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        return Ok(t.with_timezone(&Utc));
    }
    let secs = purple_policy::units::parse_duration(raw).with_context(|| {
        format!("--since {raw:?}: give an RFC 3339 time (2026-11-29T01:00:00Z) or a duration (10m)")
    })?;
    Ok(Utc::now() - chrono::Duration::seconds(secs as i64))
}

/// One table row; details as `key=value` pairs.
fn row(r: &Record) -> String {
    let time = DateTime::parse_from_rfc3339(&r.time)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S%.3f").to_string())
        .unwrap_or_else(|_| r.time.clone());
    let details = match &r.details {
        serde_json::Value::Object(m) => m
            .iter()
            .map(|(k, v)| match v {
                serde_json::Value::String(s) => format!("{k}={s}"),
                v => format!("{k}={v}"),
            })
            .collect::<Vec<_>>()
            .join(" "),
        v => v.to_string(),
    };
    let line = format!(
        "{:>5}  {time}  {:<16}  {:>7}  {:<15}  {:<30}  {details}",
        r.seq,
        r.kind,
        r.pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
        r.comm.as_deref().unwrap_or("-"),
        r.rule.as_deref().unwrap_or("-"),
    );
    // comm, paths and names in details are the agent's choice.
    crate::escape::for_terminal(&line).into_owned()
}

fn print(out: &mut impl Write, records: &[Record], filter: &Filter, format: Format) -> Result<()> {
    for r in records.iter().filter(|r| filter.keeps(r)) {
        match format {
            Format::Json => writeln!(out, "{}", serde_json::to_string(r)?)?,
            Format::Table => writeln!(out, "{}", row(r))?,
            Format::Ocsf => {
                if let Some(e) = audit::ocsf::event(r) {
                    writeln!(out, "{}", serde_json::to_string(&e)?)?;
                }
            }
        }
    }
    out.flush()?;
    Ok(())
}

fn show(path: &Path, filter: &Filter, follow: bool, format: Format) -> Result<i32> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("audit log {}", path.display()))?;
    let mut out = std::io::stdout().lock();
    if format == Format::Table {
        writeln!(
            out,
            "{:>5}  {:<23}  {:<16}  {:>7}  {:<15}  {:<30}  DETAILS",
            "SEQ", "TIME", "KIND", "PID", "COMM", "RULE"
        )?;
    }
    let mut pending = Vec::new();
    let mut lines = 0;
    loop {
        file.read_to_end(&mut pending)?;
        // Only complete lines: a writer may be half-way through one.
        let end = pending
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        let records = audit::parse_lines(path, &pending[..end], lines)?;
        lines += records.len();
        pending.drain(..end);
        print(&mut out, &records, filter, format)?;
        let deleted = records
            .iter()
            .any(|r| r.kind == Kind::Lifecycle.as_str() && r.details["event"] == "deleted");
        if !follow || deleted {
            return Ok(0);
        }
        std::thread::sleep(Duration::from_millis(100));
        // Picks up appends; a truncated file starts over.
        let pos = file.stream_position()?;
        if file.metadata()?.len() < pos {
            file.seek(SeekFrom::Start(0))?;
            pending.clear();
            lines = 0;
        }
    }
}
