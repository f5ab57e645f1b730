//! Helpers for Purple's integration tests: they run real containers as root
//! with the release `purple-oci` binary (built by the README's test command).

pub mod agent;
pub mod audited;
pub mod cli;
pub mod host_services;
pub mod leftovers;
pub mod llm;
pub mod netns;
pub mod podman;
pub mod records;
pub mod sysprobe;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Once;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The repository's top directory.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// A release binary of this workspace; the environment variable `var` overrides.
fn built(name: &str, var: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(var) {
        return p.into();
    }
    let p = repo().join("target/release").join(name);
    assert!(
        p.exists(),
        "{} missing: run `cargo build --release` first (the README's test command does)",
        p.display()
    );
    p
}

/// The `purple-oci` binary under test (`PURPLE_OCI` overrides).
pub fn purple_oci() -> PathBuf {
    built("purple-oci", "PURPLE_OCI")
}

/// The `purple` binary under test (`PURPLE` overrides).
pub fn purple() -> PathBuf {
    built("purple", "PURPLE")
}

/// A container ID unique to this test process and call.
pub fn unique_id(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A busybox bundle in a temporary directory, built by `bundles/make-busybox-bundle.sh`.
pub struct TestBundle {
    pub dir: tempfile::TempDir,
}

impl AsRef<Path> for TestBundle {
    fn as_ref(&self) -> &Path {
        self.path()
    }
}

impl TestBundle {
    pub fn new(args: &[&str]) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("purple-bundle-")
            .tempdir()
            .unwrap();
        let out = Command::new(repo().join("bundles/make-busybox-bundle.sh"))
            .arg(dir.path())
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "make-busybox-bundle: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn config(&self) -> Value {
        serde_json::from_slice(&fs::read(self.path().join("config.json")).unwrap()).unwrap()
    }

    /// Edits config.json in place.
    pub fn edit(&self, f: impl FnOnce(&mut Value)) -> &Self {
        let mut v = self.config();
        f(&mut v);
        fs::write(
            self.path().join("config.json"),
            serde_json::to_vec_pretty(&v).unwrap(),
        )
        .unwrap();
        self
    }
}

/// A private state root so tests run in parallel without seeing each other.
pub struct Oci {
    pub root: tempfile::TempDir,
}

impl Default for Oci {
    fn default() -> Self {
        Self::new()
    }
}

impl Oci {
    pub fn new() -> Self {
        Self {
            root: tempfile::Builder::new()
                .prefix("purple-root-")
                .tempdir()
                .unwrap(),
        }
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(purple_oci());
        c.arg("--root").arg(self.root.path());
        c
    }

    /// Runs `purple-oci --root R ARGS` with stdio captured (and stdin closed).
    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).stdin(Stdio::null()).output().unwrap()
    }

    /// Like `run`, but fails the test unless it exits 0; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "purple-oci {args:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs a command whose container process outlives it (`exec -d`,
    /// `run -d`): stdio goes nowhere so no test pipe stays open.
    pub fn detached(&self, args: &[&str]) {
        let st = self
            .cmd()
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success(), "purple-oci {args:?} failed ({st})");
    }

    /// `create` with the container's stdio sent to files in the bundle
    /// (`stdout`, `stderr`), so that no test pipe is held open by the container.
    pub fn create(&self, id: &str, bundle: impl AsRef<Path>, extra: &[&str]) {
        let bundle = bundle.as_ref();
        let out = fs::File::create(bundle.join("stdout")).unwrap();
        let err = fs::File::create(bundle.join("stderr")).unwrap();
        // The tests wrote the bundle: its alert targets are trusted like the
        // node's own (purple-oci refuses them from annotations otherwise).
        let audit = fs::read_to_string(bundle.join("config.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .and_then(|c| {
                c["annotations"]["io.purple.audit"]
                    .as_str()
                    .map(str::to_owned)
            })
            .unwrap_or_default();
        let trust: &[&str] = if audit.contains("\"alerts\"") {
            &["--annotation-alerts"]
        } else {
            &[]
        };
        let st = self
            .cmd()
            .args(["create", "--bundle"])
            .arg(bundle)
            .args(trust)
            .args(extra)
            .arg(id)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .status()
            .unwrap();
        assert!(
            st.success(),
            "create {id}: {}",
            fs::read_to_string(bundle.join("stderr")).unwrap()
        );
    }

    pub fn state(&self, id: &str) -> Value {
        serde_json::from_str(&self.ok(&["state", id])).unwrap()
    }

    pub fn status(&self, id: &str) -> String {
        self.state(id)["status"].as_str().unwrap().to_owned()
    }

    /// Polls `state` until the container reaches `want` (or panics after 10 s).
    pub fn wait_status(&self, id: &str, want: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let s = self.status(id);
            if s == want {
                return;
            }
            assert!(Instant::now() < deadline, "{id} stayed {s}, wanted {want}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Polls until `state` answers for `id` (e.g. after spawning `run`).
    pub fn wait_status_exists(&self, id: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.run(&["state", id]).status.success() {
            assert!(Instant::now() < deadline, "{id} never appeared");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The runtime's record of a container (cgroup paths), while it exists.
    pub fn record(&self, id: &str) -> Value {
        let p = self
            .root
            .path()
            .join(".purple")
            .join(id)
            .join("record.json");
        serde_json::from_slice(&fs::read(&p).unwrap()).unwrap()
    }
}

/// Where the host mounts cgroup2 (`/sys/fs/cgroup/unified` on hybrid hosts).
pub fn cgroup2_mount() -> PathBuf {
    if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        PathBuf::from("/sys/fs/cgroup")
    } else {
        PathBuf::from("/sys/fs/cgroup/unified")
    }
}

pub fn is_hybrid() -> bool {
    cgroup2_mount() != Path::new("/sys/fs/cgroup")
}

/// Every cgroup directory a container with cgroup path `rel` may have on this
/// host: each v1 controller's and the cgroup2 one.
pub fn cgroup_dirs(rel: &str) -> Vec<PathBuf> {
    let rel = rel.trim_start_matches('/');
    if !is_hybrid() {
        return vec![PathBuf::from("/sys/fs/cgroup").join(rel)];
    }
    let mut dirs: Vec<PathBuf> = fs::read_dir("/sys/fs/cgroup")
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path().join(rel))
        .collect();
    dirs.push(cgroup2_mount().join(rel));
    dirs
}

/// Asserts that nothing of container `id` remains: state, record, cgroups
/// (v1 and v2, by its cgroup path), processes.
pub fn assert_no_leftovers(oci: &Oci, id: &str) {
    let root = oci.root.path();
    assert!(!root.join(id).exists(), "state dir of {id} left behind");
    assert!(
        !root.join(".purple").join(id).exists(),
        "record of {id} left behind"
    );
    for d in cgroup_dirs(&format!("purple/{id}")) {
        assert!(!d.exists(), "cgroup {} left behind", d.display());
    }
    assert_no_helper(id);
    // No process may still be in a cgroup named after the container.
    for p in fs::read_dir("/proc").unwrap().filter_map(|e| e.ok()) {
        if let Ok(cg) = fs::read_to_string(p.path().join("cgroup")) {
            assert!(
                !cg.contains(&format!("purple/{id}\n")),
                "process {} still in a cgroup of {id}",
                p.file_name().to_string_lossy()
            );
        }
    }
}

/// The pids of the helpers (slirp4netns) the runtime started for `id`:
/// marked `PURPLE_SANDBOX=<id>` in their environment.
pub fn helpers_of(id: &str) -> Vec<u32> {
    let mark = format!("PURPLE_SANDBOX={id}");
    fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter_map(|p| {
            let pid: u32 = p.file_name().to_str()?.parse().ok()?;
            let env = fs::read(p.path().join("environ")).ok()?;
            env.split(|b| *b == 0)
                .any(|kv| kv == mark.as_bytes())
                .then_some(pid)
        })
        .collect()
}

/// No helper process of `id` is left running.
pub fn assert_no_helper(id: &str) {
    let left = helpers_of(id);
    assert!(left.is_empty(), "helper processes of {id} left: {left:?}");
}

/// The busybox image the podman tests import.
pub const PODMAN_IMAGE: &str = "localhost/purple-busybox:test";

/// Installs the podman drop-in for purple-oci and imports the busybox image (once per process).
pub fn podman_setup() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let conf = format!(
            "# Installed by Purple's integration tests.\n\
             [containers]\n\
             # conmon runs under this host's hard limits (nofile 20000, nproc 32768).\n\
             default_ulimits = [\"nofile=20000:20000\", \"nproc=32768:32768\"]\n\n\
             [engine]\n\
             runtime_supports_json = [\"crun\", \"runc\", \"kata\", \"runsc\", \"youki\", \"krun\", \"purple\"]\n\n\
             [engine.runtimes]\n\
             purple = [\"{}\"]\n",
            purple_oci().canonicalize().unwrap().display()
        );
        fs::create_dir_all("/etc/containers/containers.conf.d").unwrap();
        fs::write("/etc/containers/containers.conf.d/purple.conf", conf).unwrap();
        let b = TestBundle::new(&["true"]);
        let tar = Command::new("tar")
            .arg("-C")
            .arg(b.path().join("rootfs"))
            .args(["-cf", "-", "."])
            .output()
            .unwrap();
        assert!(tar.status.success());
        let tarfile = b.path().join("rootfs.tar");
        fs::write(&tarfile, tar.stdout).unwrap();
        let out = Command::new("podman").args(["import", tarfile.to_str().unwrap(), PODMAN_IMAGE]).output().expect("podman is installed (scripts/setup.sh)");
        assert!(out.status.success(), "podman import: {}", String::from_utf8_lossy(&out.stderr));
    });
}

/// Asserts that no cgroup directory (any hierarchy, three levels deep) has a
/// name containing `needle`: engines choose their own cgroup paths.
pub fn assert_no_cgroup_named(needle: &str) {
    fn walk(dir: &Path, depth: u32, needle: &str) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for e in entries.filter_map(|e| e.ok()) {
            if !e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                continue;
            }
            let name = e.file_name().to_string_lossy().into_owned();
            assert!(
                !name.contains(needle),
                "cgroup {} left behind",
                e.path().display()
            );
            if depth > 0 {
                walk(&e.path(), depth - 1, needle);
            }
        }
    }
    walk(Path::new("/sys/fs/cgroup"), 3, needle);
}

/// Waits up to 3 s for `pid` to be gone (or a zombie, which no longer runs).
pub fn assert_dead(pid: i64) {
    leftovers::wait_dead(pid, Duration::from_secs(3), "process");
}

/// Text of a file the container wrote to its stdout (see [`Oci::create`]).
pub fn read(path: impl AsRef<Path>) -> String {
    fs::read_to_string(path).unwrap_or_default()
}

/// chmod.
pub fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}
