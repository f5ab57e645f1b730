//! `events`: resource statistics as runc's event lines
//! (`{"type":"stats","id":...,"data":{...}}`), once with --stats or every
//! --interval until the container stops.

use std::time::Duration;

use anyhow::Result;
use libcontainer::container::ContainerStatus;
use serde_json::json;

use crate::container::Runtime;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Seconds between reports (a unit suffix "s" is accepted).
    #[arg(long, default_value = "5", value_parser = parse_interval)]
    pub interval: u64,
    /// Print statistics once and exit.
    #[arg(long)]
    pub stats: bool,
    pub container_id: String,
}

fn parse_interval(raw: &str) -> Result<u64, String> {
    match raw.trim_end_matches('s').parse() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!(
            "invalid interval {raw:?}: use whole seconds, e.g. 5 or 5s"
        )),
    }
}

pub fn events(args: Args, rt: &Runtime) -> Result<i32> {
    let id = super::container_id(&args.container_id)?;
    loop {
        let data = rt.stats(&id)?;
        let network = rt.network_stats(&id)?;
        println!(
            "{}",
            json!({ "type": "stats", "id": id.as_str(), "data": data, "purple": { "network": network } })
        );
        if args.stats || rt.load(&id)?.status() == ContainerStatus::Stopped {
            return Ok(0);
        }
        std::thread::sleep(Duration::from_secs(args.interval));
    }
}
