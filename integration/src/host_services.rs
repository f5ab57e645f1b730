//! Services of the "host" side of a [`TestNet`] (its client namespace, which
//! stands for the caller's machine): TCP on 0.0.0.0 and an abstract unix
//! socket, each logging what connects to it. A sandbox must reach neither
//! unless its policy says so.

use std::fs;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::netns::TestNet;

/// The client namespace's own address (its veth end): a host address.
pub const CALLER_ADDR: &str = "10.200.0.1";
/// slirp4netns's gateway, which is the caller's namespace.
pub const SLIRP_GATEWAY: &str = "10.0.2.2";
pub const SERVICE_PORT: u16 = 7777;
pub const ABSTRACT: &str = "purple-test-xyz";

/// Services of the "host" (the client namespace): TCP on 0.0.0.0 and an
/// abstract unix socket, each logging what connects to it.
pub struct HostServices {
    child: Child,
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl HostServices {
    pub fn start(net: &TestNet) -> Self {
        Self::on(net, SERVICE_PORT, ABSTRACT)
    }

    /// The services on TCP `port` and the abstract socket `abstract_name`.
    pub fn on(net: &TestNet, port: u16, abstract_name: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("hits.log");
        let script = format!(
            r#"
import socket, threading, sys
log = open(sys.argv[1], "a", buffering=1)
def serve(s, what):
    while True:
        c, _ = s.accept()
        log.write(what + "\n")
        c.close()
tcp = socket.socket(); tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
tcp.bind(("0.0.0.0", {port})); tcp.listen(16)
ab = socket.socket(socket.AF_UNIX); ab.bind("\0{abstract_name}"); ab.listen(16)
for s, w in [(tcp, "tcp"), (ab, "abstract")]:
    threading.Thread(target=serve, args=(s, w), daemon=True).start()
open(sys.argv[1] + ".ready", "w").close()
threading.Event().wait()
"#
        );
        let child = Command::new("nsenter")
            .arg(format!("--net={}", net.client_path()))
            .args(["python3", "-c", &script])
            .arg(&log)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let ready = dir.path().join("hits.log.ready");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !ready.exists() {
            assert!(Instant::now() < deadline, "host services did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self {
            child,
            log,
            _dir: dir,
        }
    }

    /// What connected so far, one line each (`tcp`, `abstract`).
    pub fn hits(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for HostServices {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
