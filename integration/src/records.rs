//! An [`Agent`]'s audit records as JSON while it runs: the supervisor writes
//! them a moment after the kernel decided, so tests wait for them.

use std::fs;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::agent::Agent;

/// The records written so far (a line being written is not one yet).
pub fn records(a: &Agent) -> Vec<Value> {
    fs::read_to_string(purple_runtime::audit::default_path(&a.id))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Waits (5 s at most) for the supervisor to write the records `done` wants.
pub fn log_until(a: &Agent, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let log = records(a);
        if done(&log) || Instant::now() > deadline {
            return log;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The `network.blocked` records of `destination`.
pub fn blocked<'a>(log: &'a [Value], destination: &str) -> Vec<&'a Value> {
    log.iter()
        .filter(|r| r["kind"] == "network.blocked" && r["details"]["destination"] == destination)
        .collect()
}

/// The first words of a netprobe verdict, without its trailing milliseconds.
pub fn first_word(verdict: &str) -> String {
    let mut w: Vec<&str> = verdict.split_whitespace().collect();
    w.pop();
    w.join(" ")
}
