//! `purple network`: what a container's egress rules decided so far.

use std::path::Path;

use anyhow::{Context, Result};
use clap::Subcommand;
use serde_json::json;

use crate::container::Runtime;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    command: NetworkCommand,
}

#[derive(Subcommand, Debug)]
enum NetworkCommand {
    /// Hits per rule and totals of a container's eBPF decisions.
    ///
    /// Rule 0 is the mode's default; domain rules count the addresses learned
    /// from DNS answers. Exits 1 if the container has no network programs.
    Stats {
        /// Container ID.
        id: String,
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
}

pub fn network(args: Args, root: &Path) -> Result<i32> {
    match args.command {
        NetworkCommand::Stats { id, json } => stats(&id, json, root),
    }
}

fn stats(raw_id: &str, as_json: bool, root: &Path) -> Result<i32> {
    let id = crate::oci::container_id(raw_id)?;
    let rt = Runtime::new(root, false);
    let Some(stats) = rt
        .network_stats(&id)
        .with_context(|| format!("network counters of container \"{id}\""))?
    else {
        eprintln!("purple: container \"{id}\" has no network programs");
        return Ok(1);
    };
    let book = rt.rule_book(&id);
    let rules: Vec<_> = stats
        .rule_hits
        .iter()
        .map(|&(rule, hits)| json!({ "id": rule, "hits": hits, "rule": book.label(rule) }))
        .collect();
    if as_json {
        let out = json!({
            "id": id.as_str(),
            "allowed": stats.allowed,
            "denied": stats.denied,
            "dns_redirected": stats.dns_redirected,
            "events_lost": stats.events_lost,
            "rules": rules,
        });
        println!("{out}");
        return Ok(0);
    }
    println!(
        "{id}: {} allowed, {} denied, {} DNS queries to Purple's resolver, {} events lost",
        stats.allowed, stats.denied, stats.dns_redirected, stats.events_lost
    );
    println!("{:>6}  {:>10}  RULE", "ID", "HITS");
    for &(rule, hits) in &stats.rule_hits {
        // Labels carry domain names, which DNS answers the agent asked for fill.
        let label = book.label(rule);
        println!(
            "{rule:>6}  {hits:>10}  {}",
            crate::escape::for_terminal(&label)
        );
    }
    Ok(0)
}
