//! No torn records, no silent loss: an agent's log on a filesystem that
//! fills up, or past its budget (`audit.max_size`). Under `on_failure:
//! kill` the sandbox is stopped, under `continue` it runs on; either way the
//! log still verifies once space is back, and an `audit.lost` counts by kind
//! what could not be written, so that records + lost = what the kernel
//! counted.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use purple_integration::audited::{delete_and_wait, events_of, sleeper};
use purple_integration::cli::{combined, run_purple};
use purple_integration::*;
use purple_runtime::audit;
use serde_json::json;

/// A small tmpfs under the log root, unmounted on drop.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn new(size: &str) -> Self {
        let dir = Path::new(audit::LOG_DIR).join(unique_id("evidence-disk"));
        fs::create_dir_all(&dir).unwrap();
        mount(
            &[
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ],
            &dir,
        );
        Self(dir)
    }

    fn grow(&self, size: &str) {
        mount(&["-o", &format!("remount,size={size}")], &self.0);
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        let _ = fs::remove_dir(&self.0);
    }
}

fn mount(args: &[&str], dir: &Path) {
    let st = Command::new("mount").args(args).arg(dir).status().unwrap();
    assert!(st.success(), "mount {args:?} {}", dir.display());
}

/// Waits until the log has not grown for a second (10 s at most): the
/// supervisor has worked through the ring buffer's backlog.
fn settle(log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = (0, Instant::now());
    while Instant::now() < deadline {
        let len = fs::metadata(log).map_or(0, |m| m.len());
        if len != last.0 {
            last = (len, Instant::now());
        } else if last.1.elapsed() >= Duration::from_secs(1) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The counts of `audit.lost` records of `kind` in `recs`.
fn lost_of(recs: &[audit::Record], kind: &str) -> u64 {
    recs.iter()
        .filter(|r| r.kind == "audit.lost")
        .map(|r| r.details["kinds"][kind].as_u64().unwrap_or(0))
        .sum()
}

/// Blocked datagrams to 250 destinations for a second (distinct
/// destinations: folding does not shrink them below 2,500 records), with
/// the log at `log` under `audit`; `space_back` runs once the agent is done.
/// Returns the log's records once the sandbox is deleted, and whether the
/// sandbox was still running after the flood.
fn flood(
    log: &Path,
    audit: serde_json::Value,
    space_back: impl FnOnce(),
) -> (Vec<audit::Record>, bool) {
    let (_net, oci, id, _b) = sleeper("203.0.113.0/24", Some(audit.clone()));
    oci.run(&[
        "exec",
        &id,
        "netprobe",
        "udp-flood",
        "203.0.113",
        "250",
        "1",
    ]);
    let kill = audit["on_failure"] != "continue";
    let deadline = Instant::now() + Duration::from_secs(5);
    while kill && oci.status(&id) != "stopped" && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let still_running = oci.status(&id) == "running";
    let stats: serde_json::Value =
        serde_json::from_str(&oci.ok(&["events", "--stats", &id])).unwrap();
    let denied = stats["purple"]["network"]["denied"].as_u64().unwrap();
    let in_kernel = stats["purple"]["network"]["events_lost"].as_u64().unwrap();
    assert!(denied > 0, "{stats}");
    settle(log);
    space_back();
    if still_running && audit["max_size"].is_null() {
        // The supervisor says so as soon as it can write again.
        let back = Instant::now();
        let deadline = back + Duration::from_secs(15);
        while !read(log).contains("\"audit.lost\"") {
            assert!(
                Instant::now() < deadline,
                "no audit.lost once space is back: {:?}",
                read(log).lines().rev().take(2).collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("audit.lost {:?} after space was back", back.elapsed());
    }
    delete_and_wait(&oci, &id);
    assert_no_leftovers(&oci, &id);
    let verified = run_purple(&oci, &["audit", "verify", "--path", log.to_str().unwrap()]);
    assert_eq!(verified.status.code(), Some(0), "{}", combined(&verified));
    let recs = audit::verify(log).unwrap();
    let blocked = events_of(&recs, "network.blocked");
    let lost = lost_of(&recs, "network.blocked");
    eprintln!(
        "{audit}: {denied} denied, {blocked} recorded, {lost} counted lost, {in_kernel} lost in \
         the kernel, log {} bytes",
        fs::metadata(log).unwrap().len()
    );
    assert!(lost > 0, "nothing was lost: {blocked} recorded");
    assert_eq!(
        blocked + lost + in_kernel,
        denied,
        "recorded {blocked}, lost {lost}, lost in the kernel {in_kernel}"
    );
    (recs, still_running)
}

fn full_disk(on_failure: &str) -> (Vec<audit::Record>, bool) {
    let disk = SmallDisk::new("64k");
    let log = disk.0.join("agent.jsonl");
    flood(
        &log,
        json!({"log_path": log, "on_failure": on_failure}),
        || disk.grow("16m"),
    )
}

#[test]
fn a_full_disk_under_kill_stops_the_sandbox_and_counts_what_was_lost() {
    let (recs, still_running) = full_disk("kill");
    assert!(!still_running, "the sandbox ran on: {recs:#?}");
}

#[test]
fn a_full_disk_under_continue_lets_it_run_and_counts_what_was_lost() {
    let (recs, still_running) = full_disk("continue");
    assert!(still_running, "the sandbox was stopped");
    let lost = recs.iter().find(|r| r.kind == "audit.lost").unwrap();
    assert!(
        lost.details["reason"]
            .as_str()
            .unwrap()
            .contains("could not be written"),
        "{lost:?}"
    );
}

#[test]
fn the_log_budget_bounds_the_log_and_counts_the_rest() {
    let log = Path::new(audit::LOG_DIR)
        .join(unique_id("evidence-budget"))
        .join("agent.jsonl");
    let (recs, still_running) = flood(
        &log,
        json!({"log_path": log, "on_failure": "continue", "max_size": 65536}),
        || {},
    );
    assert!(still_running, "the sandbox was stopped");
    let lost = recs.iter().find(|r| r.kind == "audit.lost").unwrap();
    assert!(
        lost.details["reason"]
            .as_str()
            .unwrap()
            .contains("audit.max_size"),
        "{lost:?}"
    );
    // Past the budget, only the trail's own: what was lost, the last
    // checkpoints, `exited`, `deleted` and the seal.
    let size = fs::metadata(&log).unwrap().len();
    assert!(size < 65536 + 8192, "log of {size} bytes");
    fs::remove_dir_all(log.parent().unwrap()).unwrap();
}
