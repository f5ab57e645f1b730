//! Retention: the logs of deleted containers do not pile up under the log
//! root. Only a sealed log is ever removed (`delete` seals a run's log as
//! its last act, so a log without a seal belongs to a container that still
//! runs, or to a run whose end was cut off, which is evidence); among the
//! sealed ones, those older than the age limit go, then the oldest while
//! all logs together hold more than the size limit.

use std::fs;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use purple_policy::node::Retention;

use crate::{Kind, Record};

/// A log's last line is at most this long (a seal is about 400 bytes).
const TAIL: u64 = 64 << 10;

struct Log {
    path: PathBuf,
    bytes: u64,
    modified: SystemTime,
    sealed: bool,
}

/// Whether the log at `path` ends with a seal.
fn sealed(path: &Path, len: u64) -> io::Result<bool> {
    let mut f = fs::File::open(path)?;
    f.seek(SeekFrom::Start(len.saturating_sub(TAIL)))?;
    let mut tail = Vec::new();
    f.take(TAIL).read_to_end(&mut tail)?;
    let last = tail
        .strip_suffix(b"\n")
        .and_then(|t| t.rsplit(|&b| b == b'\n').next());
    Ok(last
        .and_then(|l| serde_json::from_slice::<Record>(l).ok())
        .is_some_and(|r| r.kind == Kind::AuditCheckpoint.as_str() && r.details["seal"] == true))
}

/// Every `*.jsonl` below `dir`, links not followed.
fn logs(dir: &Path, out: &mut Vec<Log>) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        let path = entry.path();
        if meta.is_dir() {
            logs(&path, out)?;
        } else if meta.is_file() && path.extension().is_some_and(|x| x == "jsonl") {
            out.push(Log {
                sealed: sealed(&path, meta.len())?,
                bytes: meta.len(),
                modified: meta.modified()?,
                path,
            });
        }
    }
    Ok(())
}

/// Removes the sealed logs under `root` that `r` does not keep, as of
/// `now`; returns them, oldest first.
pub fn prune(root: &Path, r: &Retention, now: SystemTime) -> io::Result<Vec<PathBuf>> {
    let mut all = Vec::new();
    match logs(root, &mut all) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        other => other?,
    }
    all.sort_by_key(|l| l.modified);
    let oldest_kept = now
        .checked_sub(Duration::from_secs(r.max_age_seconds))
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let mut total: u64 = all.iter().map(|l| l.bytes).sum();
    let mut removed = Vec::new();
    for log in all.iter().filter(|l| l.sealed) {
        if log.modified >= oldest_kept && total <= r.max_total_bytes {
            // Sorted by age: every later one is younger and the total fits.
            break;
        }
        match fs::remove_file(&log.path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        total -= log.bytes;
        removed.push(log.path.clone());
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;

    const SEAL: &str = r#"{"schema":1,"seq":9,"time":"t","container_id":"c","kind":"audit.checkpoint","details":{"seal":true},"prev":"p"}"#;
    const OPEN: &str = r#"{"schema":1,"seq":3,"time":"t","container_id":"c","kind":"network.blocked","details":{},"prev":"p"}"#;

    fn log(dir: &Path, name: &str, last: &str, bytes: usize, age_days: u64) -> PathBuf {
        let path = dir.join(name);
        let filler = "x".repeat(bytes.saturating_sub(last.len() + 2));
        fs::write(&path, format!("{filler}\n{last}\n")).unwrap();
        let when = SystemTime::now() - Duration::from_secs(age_days * 86_400);
        File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(when)
            .unwrap();
        path
    }

    #[test]
    fn old_sealed_logs_go_and_open_ones_stay_whatever_their_age() {
        let d = tempfile::tempdir().unwrap();
        let old = log(d.path(), "old.jsonl", SEAL, 1000, 40);
        let open_old = log(d.path(), "open.jsonl", OPEN, 1000, 400);
        let fresh = log(d.path(), "fresh.jsonl", SEAL, 1000, 1);
        fs::create_dir(d.path().join("team")).unwrap();
        let nested = log(&d.path().join("team"), "n.jsonl", SEAL, 1000, 31);
        let r = Retention::default();
        let gone = prune(d.path(), &r, SystemTime::now()).unwrap();
        assert_eq!(gone, [old.clone(), nested.clone()]);
        assert!(!old.exists() && !nested.exists());
        assert!(open_old.exists() && fresh.exists());
    }

    #[test]
    fn past_the_size_limit_the_oldest_sealed_go_first() {
        let d = tempfile::tempdir().unwrap();
        let a = log(d.path(), "a.jsonl", SEAL, 4000, 3);
        let open = log(d.path(), "b.jsonl", OPEN, 4000, 2);
        let c = log(d.path(), "c.jsonl", SEAL, 4000, 1);
        let e = log(d.path(), "e.jsonl", SEAL, 4000, 0);
        let r = Retention {
            max_age_seconds: 30 * 86_400,
            max_total_bytes: 9000,
        };
        let gone = prune(d.path(), &r, SystemTime::now()).unwrap();
        // 16,000 bytes: a, then c (the open one stays) bring it to 8,000.
        assert_eq!(gone, [a, c]);
        assert!(open.exists() && e.exists());
        assert!(prune(d.path(), &r, SystemTime::now()).unwrap().is_empty());
    }

    #[test]
    fn a_link_is_not_followed_and_a_missing_root_is_nothing_to_do() {
        let d = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let target = log(outside.path(), "x.jsonl", SEAL, 100, 90);
        std::os::unix::fs::symlink(outside.path(), d.path().join("link")).unwrap();
        std::os::unix::fs::symlink(&target, d.path().join("l.jsonl")).unwrap();
        assert!(prune(d.path(), &Retention::default(), SystemTime::now())
            .unwrap()
            .is_empty());
        assert!(target.exists());
        assert!(prune(
            &d.path().join("none"),
            &Retention::default(),
            SystemTime::now()
        )
        .unwrap()
        .is_empty());
    }
}
