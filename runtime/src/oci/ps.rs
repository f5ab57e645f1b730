//! `ps`: the processes in a container's cgroup, as a JSON pid list or a table.

use anyhow::Result;

use super::Format;
use crate::container::Runtime;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(short, long, value_enum, default_value = "table")]
    pub format: Format,
    pub container_id: String,
    /// Accepted for runc compatibility (ps(1) options); the table has fixed columns.
    #[arg(trailing_var_arg = true, hide = true)]
    pub ps_options: Vec<String>,
}

fn row(pid: i32) -> Option<String> {
    let p = procfs::process::Process::new(pid).ok()?;
    let stat = p.stat().ok()?;
    let uid = p.uid().ok()?;
    let cmd = p
        .cmdline()
        .ok()
        .filter(|c| !c.is_empty())
        .map(|c| c.join(" "))
        .unwrap_or_else(|| format!("[{}]", stat.comm));
    let ticks = procfs::ticks_per_second();
    let secs = (stat.utime + stat.stime) / ticks;
    Some(format!(
        "{uid:<8} {pid:<8} {:<8} {:<4} {:02}:{:02}:{:02} {cmd}",
        stat.ppid,
        stat.state,
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    ))
}

pub fn ps(args: Args, rt: &Runtime) -> Result<i32> {
    let pids = rt.pids(&super::container_id(&args.container_id)?)?;
    match args.format {
        Format::Json => println!("{}", serde_json::to_string(&pids)?),
        Format::Table => {
            println!(
                "{:<8} {:<8} {:<8} {:<4} {:<8} CMD",
                "UID", "PID", "PPID", "S", "TIME"
            );
            for line in pids.into_iter().filter_map(row) {
                println!("{line}");
            }
        }
    }
    Ok(0)
}
