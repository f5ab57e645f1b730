//! What a sandbox may leave behind, beyond [`crate::assert_no_leftovers`]:
//! the private bundle and BPF pins of `purple run`, and processes.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::{assert_no_leftovers, cgroup_dirs, Oci};

/// Whether `pid` still runs (a zombie no longer does).
pub fn alive(pid: i64) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        !s.rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
    })
}

/// Waits up to `limit` for `pid` to stop running; `what` names it in the failure.
pub fn wait_dead(pid: i64, limit: Duration, what: &str) {
    let deadline = Instant::now() + limit;
    while alive(pid) {
        assert!(Instant::now() < deadline, "{what} {pid} is still alive");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Nothing `purple run` made survives it: container state, cgroups,
/// processes, BPF pins, its private bundle.
pub fn assert_run_left_nothing(oci: &Oci, id: &str) {
    assert_no_leftovers(oci, id);
    assert!(
        !oci.root.path().join("bundles").join(id).exists(),
        "bundle of {id} left behind"
    );
    assert!(
        !Path::new("/sys/fs/bpf/purple").join(id).exists(),
        "BPF pins of {id} left behind"
    );
}

/// What is still there of sandbox `id` (state, record, private bundle, BPF
/// pins, cgroups) and which of `pids` still run; empty once it is all gone.
pub fn remains(oci: &Oci, id: &str, pids: &[i64]) -> Vec<String> {
    let root = oci.root.path();
    let mut left: Vec<String> = [
        root.join(id),
        root.join(".purple").join(id),
        root.join("bundles").join(id),
        Path::new("/sys/fs/bpf/purple").join(id),
    ]
    .into_iter()
    .chain(cgroup_dirs(&format!("purple/{id}")))
    .filter(|p| p.exists())
    .map(|p| p.display().to_string())
    .collect();
    left.extend(
        pids.iter()
            .filter(|&&p| alive(p))
            .map(|p| format!("process {p}")),
    );
    left
}
