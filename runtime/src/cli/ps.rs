//! `purple ps`: the sandboxes of `purple run`, running or waiting to be
//! stopped, with what they were refused so far.

use std::path::Path;

use anyhow::Result;
use chrono::Utc;
use libcontainer::container::ContainerStatus;
use serde::Serialize;

use crate::audit;
use crate::container::Runtime;
use crate::escape::for_terminal;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// One JSON object per sandbox.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
struct Row {
    id: String,
    profile: String,
    state: String,
    pid: Option<i32>,
    age_seconds: Option<i64>,
    violations: Option<u64>,
    detached: bool,
    command: Vec<String>,
}

fn rows(rt: &Runtime) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    for id in rt.list()? {
        let Some(launch) = rt.record(&id).and_then(|r| r.launch) else {
            continue;
        };
        // Gone between list and load: deleted meanwhile, not an error.
        let Ok(c) = rt.load(&id) else { continue };
        let summary = audit::summary(&rt.audit_log(&id)).ok();
        let state = match c.status() {
            ContainerStatus::Stopped => summary
                .as_ref()
                .and_then(|s| s.lifecycle.iter().rev().find(|e| e.starts_with("exited")))
                .cloned()
                .unwrap_or_else(|| "stopped".into()),
            other => other.to_string().to_lowercase(),
        };
        rows.push(Row {
            id: id.to_string(),
            profile: launch.profile,
            pid: c
                .pid()
                .map(|p| p.as_raw())
                .filter(|_| c.status() != ContainerStatus::Stopped),
            age_seconds: c.created().map(|t| (Utc::now() - t).num_seconds()),
            violations: summary.as_ref().map(audit::Summary::violations),
            state,
            detached: launch.output_limit.is_some(),
            command: launch.command,
        });
    }
    Ok(rows)
}

fn age(seconds: Option<i64>) -> String {
    match seconds {
        None => "-".into(),
        Some(s) if s < 120 => format!("{s}s"),
        Some(s) if s < 7200 => format!("{}m", s / 60),
        Some(s) if s < 172_800 => format!("{}h", s / 3600),
        Some(s) => format!("{}d", s / 86_400),
    }
}

pub fn ps(args: Args, root: &Path) -> Result<i32> {
    let rows = rows(&Runtime::new(root, false))?;
    if args.json {
        for r in &rows {
            println!("{}", serde_json::to_string(r)?);
        }
        return Ok(0);
    }
    println!(
        "{:<24} {:<16} {:<18} {:>8} {:>5} {:>10}  COMMAND",
        "ID", "PROFILE", "STATE", "PID", "AGE", "VIOLATIONS"
    );
    for r in rows {
        let line = format!(
            "{:<24} {:<16} {:<18} {:>8} {:>5} {:>10}  {}{}",
            r.id,
            r.profile,
            r.state,
            r.pid.map_or("-".into(), |p| p.to_string()),
            age(r.age_seconds),
            r.violations.map_or("?".into(), |v| v.to_string()),
            r.command.join(" "),
            if r.detached { "  (detached)" } else { "" },
        );
        // Names and commands come from whoever started the sandbox.
        println!("{}", for_terminal(&line));
    }
    Ok(0)
}
