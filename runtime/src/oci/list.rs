//! `list`: the containers under the state root.

use anyhow::Result;
use serde_json::Value;

use super::Format;
use crate::container::Runtime;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(short, long, value_enum, default_value = "table")]
    pub format: Format,
    /// Print only the IDs.
    #[arg(short, long)]
    pub quiet: bool,
}

pub fn list(args: Args, rt: &Runtime) -> Result<i32> {
    let states: Vec<Value> = rt
        .list()?
        .iter()
        .filter_map(|id| rt.load(id).ok())
        .map(|c| super::state::to_json(&c, rt))
        .collect();
    if args.quiet {
        for s in &states {
            println!("{}", s["id"].as_str().unwrap_or_default());
        }
    } else if args.format == Format::Json {
        println!("{}", serde_json::to_string(&states)?);
    } else {
        println!(
            "{:<24} {:<8} {:<8} {:<32} BUNDLE",
            "ID", "PID", "STATUS", "CREATED"
        );
        for s in &states {
            let f = |k: &str| s[k].as_str().map(str::to_owned).unwrap_or_default();
            let pid = s["pid"].as_i64().map(|p| p.to_string()).unwrap_or_default();
            println!(
                "{:<24} {pid:<8} {:<8} {:<32} {}",
                f("id"),
                f("status"),
                f("created"),
                f("bundle")
            );
        }
    }
    Ok(0)
}
