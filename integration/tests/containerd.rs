//! containerd drives purple-oci through its runc v2 shim (`ctr run --runc-binary`),
//! on a private containerd (own socket, root and state dirs) started here.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use purple_integration::*;

const IMAGE: &str = "localhost/purple-busybox:ctr";

struct Containerd {
    dir: tempfile::TempDir,
    child: Child,
}

impl Containerd {
    fn start() -> Self {
        Self::start_with_env(&[])
    }

    /// A containerd whose shims (and so purple-oci) get `env`.
    fn start_with_env(env: &[(&str, &Path)]) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("purple-ctrd-")
            .tempdir()
            .unwrap();
        let d = dir.path();
        let config = format!(
            "version = 2\nroot = \"{root}\"\nstate = \"{state}\"\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             [grpc]\n  address = \"{sock}\"\n[ttrpc]\n  address = \"{sock}.ttrpc\"\n",
            root = d.join("root").display(),
            state = d.join("state").display(),
            sock = d.join("containerd.sock").display(),
        );
        fs::write(d.join("config.toml"), config).unwrap();
        let log = fs::File::create(d.join("containerd.log")).unwrap();
        let child = Command::new("containerd")
            .envs(env.iter().copied())
            .arg("--config")
            .arg(d.join("config.toml"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("containerd is installed (scripts/setup.sh)");
        let me = Self { dir, child };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !me.ctr(&["version"]).status.success() {
            assert!(
                Instant::now() < deadline,
                "containerd did not come up: {}",
                me.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        me
    }

    fn sock(&self) -> PathBuf {
        self.dir.path().join("containerd.sock")
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }

    fn ctr(&self, args: &[&str]) -> Output {
        Command::new("ctr")
            .arg("--address")
            .arg(self.sock())
            .args(["--namespace", "purple-test"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.ctr(args);
        assert!(
            out.status.success(),
            "ctr {args:?}: {}\ncontainerd log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Imports the busybox rootfs as an OCI image (built with podman, then `ctr images import`).
    fn import_image(&self) {
        let b = TestBundle::new(&["true"]);
        let tar = b.path().join("rootfs.tar");
        let st = Command::new("tar")
            .arg("-C")
            .arg(b.path().join("rootfs"))
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .status()
            .unwrap();
        assert!(st.success());
        let podman = |args: &[&str]| {
            let out = Command::new("podman").args(args).output().unwrap();
            assert!(
                out.status.success(),
                "podman {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        podman(&["import", tar.to_str().unwrap(), IMAGE]);
        let archive = b.path().join("image.tar");
        podman(&[
            "save",
            "--format",
            "oci-archive",
            "-o",
            archive.to_str().unwrap(),
            IMAGE,
        ]);
        self.ok(&[
            "images",
            "import",
            "--base-name",
            "localhost/purple-busybox",
            archive.to_str().unwrap(),
        ]);
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        // Tasks first, so no shim outlives the test.
        if let Ok(out) = String::from_utf8(self.ctr(&["tasks", "ls", "-q"]).stdout) {
            for t in out.lines() {
                self.ctr(&["tasks", "kill", "-s", "KILL", t]);
                self.ctr(&["tasks", "rm", "-f", t]);
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn runc_root(id: &str) -> PathBuf {
    Path::new("/run/containerd/runc/purple-test").join(id)
}

#[test]
fn ctr_run_and_task_exec() {
    let c = Containerd::start();
    c.import_image();
    let bin = purple_oci().canonicalize().unwrap();
    let bin = bin.to_str().unwrap();

    let id = unique_id("ctr-fg");
    let out = c.ok(&[
        "run",
        "--rm",
        "--runc-binary",
        bin,
        IMAGE,
        &id,
        "echo",
        "hi-from-ctr",
    ]);
    assert_eq!(out.trim_end_matches('\r').trim(), "hi-from-ctr");
    assert!(!runc_root(&id).exists(), "state of {id} left");
    assert_no_cgroup_named(&id);

    let id = unique_id("ctr-d");
    c.ok(&[
        "run",
        "-d",
        "--runc-binary",
        bin,
        IMAGE,
        &id,
        "sleep",
        "1000",
    ]);
    let tasks = c.ok(&["tasks", "ls"]);
    assert!(
        tasks
            .lines()
            .any(|l| l.starts_with(&id) && l.contains("RUNNING")),
        "{tasks}"
    );
    // containerd's shim called purple-oci with its own --root.
    assert!(runc_root(&id).join("state.json").exists());
    let out = c.ok(&[
        "tasks",
        "exec",
        "--exec-id",
        "e1",
        &id,
        "sh",
        "-c",
        "echo exec-ok; tail -n1 /proc/self/cgroup",
    ]);
    assert!(out.starts_with("exec-ok"), "{out}");
    let out = c.ctr(&[
        "tasks",
        "exec",
        "--exec-id",
        "e2",
        &id,
        "sh",
        "-c",
        "exit 6",
    ]);
    assert_eq!(out.status.code(), Some(6));
    let ps = c.ok(&["tasks", "ps", &id]);
    assert!(ps.lines().count() >= 2, "{ps}");
    c.ok(&["tasks", "kill", "-s", "SIGKILL", &id]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while c
        .ok(&["tasks", "ls"])
        .lines()
        .any(|l| l.starts_with(&id) && l.contains("RUNNING"))
    {
        assert!(Instant::now() < deadline, "task did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
    c.ok(&["tasks", "rm", &id]);
    c.ok(&["containers", "rm", &id]);
    assert!(!runc_root(&id).exists(), "state of {id} left");
    assert_no_cgroup_named(&id);
}

/// A RuntimeClass handler is a link named after it to purple-oci (the
/// shim's BinaryName; here ctr's --runc-binary): its containers get the
/// handler's profile, and an annotation cannot loosen it.
#[test]
fn a_handler_link_holds_its_containers_to_its_profile() {
    let node = tempfile::Builder::new()
        .prefix("purple-node-")
        .tempdir()
        .unwrap();
    let policies = node.path().join("policies");
    fs::create_dir(&policies).unwrap();
    fs::write(
        policies.join("ctr-strict.yaml"),
        "name: ctr-strict\nnetwork:\n  isolated: false\n  blocked_ips: [\"10.99.0.0/16\"]\nresources:\n  pids_limit: 42\n",
    )
    .unwrap();
    let config = node.path().join("runtime.yaml");
    fs::write(
        &config,
        format!(
            "profile_dir: {}\nhandlers:\n  purple-ctr-strict: ctr-strict\n",
            policies.display()
        ),
    )
    .unwrap();
    let link = node.path().join("purple-ctr-strict");
    std::os::unix::fs::symlink(purple_oci().canonicalize().unwrap(), &link).unwrap();
    let unmapped = node.path().join("purple-ctr-unmapped");
    std::os::unix::fs::symlink(purple_oci().canonicalize().unwrap(), &unmapped).unwrap();
    let c = Containerd::start_with_env(&[("PURPLE_NODE_CONFIG", &config)]);
    c.import_image();

    let id = unique_id("ctr-class");
    c.ok(&[
        "run",
        "-d",
        "--runc-binary",
        link.to_str().unwrap(),
        IMAGE,
        &id,
        "sleep",
        "1000",
    ]);
    let effective = Path::new("/run/containerd/runc/purple-test/.purple")
        .join(&id)
        .join("bundle/config.json");
    let spec: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&effective).unwrap()).unwrap();
    assert_eq!(
        spec["annotations"]["io.purple.policy.name"], "ctr-strict",
        "{spec}"
    );
    assert_eq!(spec["linux"]["resources"]["pids"]["limit"], 42, "{spec}");
    c.ok(&["tasks", "kill", "-s", "SIGKILL", &id]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while c
        .ok(&["tasks", "ls"])
        .lines()
        .any(|l| l.starts_with(&id) && l.contains("RUNNING"))
    {
        assert!(Instant::now() < deadline, "task did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
    c.ok(&["tasks", "rm", &id]);
    c.ok(&["containers", "rm", &id]);
    assert!(!runc_root(&id).exists(), "state of {id} left");
    assert_no_cgroup_named(&id);

    // A pod author's annotation cannot loosen the handler's profile.
    let id = unique_id("ctr-loose");
    let out = c.ctr(&[
        "run",
        "--rm",
        "--runc-binary",
        link.to_str().unwrap(),
        "--annotation",
        "io.purple.network={\"mode\":\"deny-list\"}",
        IMAGE,
        &id,
        "true",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "ran: {err}");
    assert!(
        err.contains("io.purple.network") && err.contains("ctr-strict"),
        "{err}"
    );
    c.ctr(&["containers", "rm", &id]);
    assert!(!runc_root(&id).exists(), "state of {id} left");
    assert_no_cgroup_named(&id);

    // A link the node does not map is refused, not run under the default.
    let id = unique_id("ctr-unmapped");
    let out = c.ctr(&[
        "run",
        "--rm",
        "--runc-binary",
        unmapped.to_str().unwrap(),
        IMAGE,
        &id,
        "true",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("purple-ctr-unmapped"),
        "{err}"
    );
    c.ctr(&["containers", "rm", &id]);
    assert_no_cgroup_named(&id);
}
