//! Test hosts in network namespaces of the test's own. The agent's container
//! joins the client namespace, whose only link leads to the host namespace:
//! even a block that fails reaches nothing outside this machine. Nothing is
//! ever routed in the host's own namespace.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::repo;

/// Addresses the test host answers on (besides its link address 10.200.0.2).
pub const HOST_ADDRS_V4: &[&str] = &[
    "1.1.1.1",
    "169.254.169.254",
    "100.100.100.200",
    "10.99.0.1",
    "10.99.1.1",
    "10.98.0.1",
];
pub const HOST_ADDRS_V6: &[&str] = &["fd00:ec2::254", "fd00:99::1"];
pub const HOST_LINK_V4: &str = "10.200.0.2";
pub const HOST_LINK_V6: &str = "fd00:200::2";

fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .expect("iproute2 is installed");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A client namespace (for the container) wired to a host namespace serving
/// TCP on 80 and 8080 and DNS (UDP and TCP; UDP echo for non-DNS datagrams)
/// on 53 on every test address; [`HOST_LINK_V4`] is the upstream resolver.
pub struct TestNet {
    pub client: String,
    pub host: String,
    server: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl TestNet {
    pub fn new() -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let tag = format!(
            "{}{}",
            std::process::id() % 100000,
            N.fetch_add(1, Ordering::Relaxed)
        );
        let (client, host) = (format!("pc{tag}"), format!("ph{tag}"));
        let (cv, hv) = (format!("c{tag}"), format!("h{tag}"));
        ip(&["netns", "add", &client]);
        ip(&["netns", "add", &host]);
        ip(&[
            "link", "add", &cv, "netns", &client, "type", "veth", "peer", "name", &hv, "netns",
            &host,
        ]);
        let c = |args: &[&str]| ip(&[&["-n", &client], args].concat());
        let h = |args: &[&str]| ip(&[&["-n", &host], args].concat());
        c(&["link", "set", "lo", "up"]);
        c(&["addr", "add", "10.200.0.1/24", "dev", &cv]);
        c(&["-6", "addr", "add", "fd00:200::1/64", "dev", &cv, "nodad"]);
        c(&["link", "set", &cv, "up"]);
        c(&["route", "add", "default", "via", HOST_LINK_V4]);
        c(&["-6", "route", "add", "default", "via", HOST_LINK_V6]);
        h(&["link", "set", "lo", "up"]);
        h(&["addr", "add", "10.200.0.2/24", "dev", &hv]);
        h(&["-6", "addr", "add", "fd00:200::2/64", "dev", &hv, "nodad"]);
        h(&["link", "set", &hv, "up"]);
        for a in HOST_ADDRS_V4 {
            h(&["addr", "add", &format!("{a}/32"), "dev", "lo"]);
        }
        for a in HOST_ADDRS_V6 {
            h(&[
                "-6",
                "addr",
                "add",
                &format!("{a}/128"),
                "dev",
                "lo",
                "nodad",
            ]);
        }
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("received.log");
        let server = Command::new("ip")
            .args(["netns", "exec", &host, "python3"])
            .arg(repo().join("integration/probe/testhost.py"))
            .arg(&log)
            .args([HOST_LINK_V4, "80", "8080"])
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let ready = PathBuf::from(format!("{}.ready", log.display()));
        let deadline = Instant::now() + Duration::from_secs(10);
        while !ready.exists() {
            assert!(Instant::now() < deadline, "test host server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self {
            client,
            host,
            server,
            log,
            _dir: dir,
        }
    }

    /// The bind-mountable path of the client namespace.
    pub fn client_path(&self) -> String {
        format!("/var/run/netns/{}", self.client)
    }

    /// Stops (or resumes) the test host's server: nothing it serves answers
    /// meanwhile, DNS included.
    pub fn pause(&self, paused: bool) {
        let sig = if paused { libc::SIGSTOP } else { libc::SIGCONT };
        // SAFETY: signals our own child.
        assert_eq!(unsafe { libc::kill(self.server.id() as i32, sig) }, 0);
    }

    /// What the test host received so far (one line per connection/datagram).
    pub fn received(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Default for TestNet {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
        // The python child of `ip netns exec` is killed with the namespace's users.
        let _ = Command::new("ip")
            .args(["netns", "pids", &self.host])
            .output()
            .map(|o| {
                for pid in String::from_utf8_lossy(&o.stdout).split_whitespace() {
                    if let Ok(p) = pid.parse::<i32>() {
                        unsafe { libc::kill(p, libc::SIGKILL) };
                    }
                }
            });
        let _ = Command::new("ip")
            .args(["netns", "del", &self.client])
            .status();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.host])
            .status();
    }
}

/// Builds `integration/probe/netprobe.c` (static) once per test process.
pub fn netprobe() -> &'static Path {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| {
        let out = std::env::temp_dir().join(format!("purple-netprobe-{}", std::process::id()));
        let st = Command::new("cc")
            .args(["-static", "-O2", "-o"])
            .arg(&out)
            .arg(repo().join("integration/probe/netprobe.c"))
            .status()
            .expect("a C compiler is installed (build-essential)");
        assert!(st.success(), "cannot build netprobe");
        out
    })
}
