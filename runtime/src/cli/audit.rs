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
    /// One JSON record per line instead of a table.
    #[arg(long)]
    json: bool,
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
    /// Check a log's hash chain: exits 1 if any record was changed, removed or moved.
    Verify {
        #[command(flatten)]
        source: Source,
    },
}

pub fn audit(args: Args, root: &Path) -> Result<i32> {
    match args.command {
        Some(AuditCommand::Verify { source }) => {
            let path = source.resolve(root)?;
            let records = audit::verify(&path)
                .with_context(|| format!("audit log {} does not verify", path.display()))?;
            println!(
                "{}: {} records, hash chain intact",
                path.display(),
                records.len()
            );
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
            show(&args.source.resolve(root)?, &filter, args.follow, args.json)
        }
    }
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

fn print(out: &mut impl Write, records: &[Record], filter: &Filter, json: bool) -> Result<()> {
    for r in records.iter().filter(|r| filter.keeps(r)) {
        if json {
            writeln!(out, "{}", serde_json::to_string(r)?)?;
        } else {
            writeln!(out, "{}", row(r))?;
        }
    }
    out.flush()?;
    Ok(())
}

fn show(path: &Path, filter: &Filter, follow: bool, json: bool) -> Result<i32> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("audit log {}", path.display()))?;
    let mut out = std::io::stdout().lock();
    if !json {
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
        print(&mut out, &records, filter, json)?;
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
