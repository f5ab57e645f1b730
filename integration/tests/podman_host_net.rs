//! podman's `--network host` under a Purple profile is the same hole as
//! `network.namespace: host`, and closed the same way: a container run by
//! `podman --runtime purple run --network host --annotation
//! io.purple.profile=...` cannot reach an abstract unix socket listening in
//! the namespace it shares (Landlock scoping; its own abstract sockets
//! work), and a TCP service on that namespace's loopback is judged by the
//! rules: refused and recorded in allow-list mode (and as a host address in
//! deny-list mode, `secure-agent`).
//!
//! podman runs inside a client namespace of the test's own (nsenter), where
//! the "host services" listen: nothing here touches the machine's namespace.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use purple_integration::host_services::HostServices;
use purple_integration::netns::TestNet;
use purple_integration::*;
use purple_runtime::audit;

const PORT: u16 = 7778;

/// The agent, static so it runs in the busybox image: for each `NAME=TARGET`
/// (`@abstract-name`, `own` for an abstract socket of its own, or
/// `ADDR:PORT`) prints `NAME connected` or `NAME <errno name>`.
const PROBE: &str = r#"
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static int abstract(const char *name, int listen_too) {
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	size_t n = strlen(name);
	memcpy(a.sun_path + 1, name, n);
	socklen_t len = offsetof(struct sockaddr_un, sun_path) + 1 + n;
	if (listen_too) {
		int l = socket(AF_UNIX, SOCK_STREAM, 0);
		if (bind(l, (void *)&a, len) || listen(l, 1))
			return -1;
	}
	int s = socket(AF_UNIX, SOCK_STREAM, 0);
	return connect(s, (void *)&a, len);
}

int main(int argc, char **argv) {
	for (int i = 1; i < argc; i++) {
		char *name = argv[i], *t = strchr(name, '=');
		*t++ = 0;
		int r;
		if (*t == '@') {
			r = abstract(t + 1, 0);
		} else if (!strcmp(t, "own")) {
			char own[64];
			snprintf(own, sizeof own, "purple-own-%d", getpid());
			r = abstract(own, 1);
		} else {
			char *p = strrchr(t, ':');
			*p++ = 0;
			struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(p))};
			inet_pton(AF_INET, t, &a.sin_addr);
			r = connect(socket(AF_INET, SOCK_STREAM, 0), (void *)&a, sizeof a);
		}
		printf("%s %s\n", name, r == 0 ? "connected" : strerrorname_np(errno));
	}
	return 0;
}
"#;

fn probe(dir: &Path) -> PathBuf {
    let src = dir.join("probe.c");
    let bin = dir.join("probe");
    fs::write(&src, PROBE).unwrap();
    let st = Command::new("cc")
        .args(["-static", "-O2", "-o"])
        .arg(&bin)
        .arg(&src)
        .status()
        .expect("a C compiler is installed (build-essential)");
    assert!(st.success(), "cannot build the probe");
    bin
}

/// A profile in the host's profile directory, removed on drop.
struct HostProfile(PathBuf);

impl HostProfile {
    fn new(name: &str, network: &str) -> Self {
        let dir = Path::new("/etc/purple/policies");
        fs::create_dir_all(dir).unwrap();
        let path = dir.join(format!("{name}.yaml"));
        fs::write(&path, format!("name: {name}\nnetwork:\n{network}\n")).unwrap();
        Self(path)
    }
}

impl Drop for HostProfile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// `podman run --network host` of the probe under `profile`, inside the
/// client namespace; returns its output and the container's audit records.
fn podman_probe(
    net: &TestNet,
    dir: &Path,
    probe: &Path,
    profile: &str,
    targets: &[&str],
) -> (Output, Vec<audit::Record>) {
    let cidfile = dir.join(format!("{profile}.cid"));
    let _ = fs::remove_file(&cidfile);
    let out = Command::new("nsenter")
        .arg(format!("--net={}", net.client_path()))
        .args([
            "podman",
            "--runtime",
            "purple",
            "run",
            "--rm",
            "--network",
            "host",
        ])
        .arg("--cidfile")
        .arg(&cidfile)
        .args(["--annotation", &format!("io.purple.profile={profile}")])
        .arg("-v")
        .arg(format!("{}:/probe:ro", probe.display()))
        .args([PODMAN_IMAGE, "/probe"])
        .args(targets)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let id = fs::read_to_string(&cidfile).unwrap_or_default();
    let id = id.trim();
    let records = match id {
        "" => Vec::new(),
        id => {
            // podman --rm deletes the container: its state and cgroups are gone.
            assert!(
                !Path::new("/run/purple").join(id).exists(),
                "state of {id} left"
            );
            assert!(
                !Path::new("/run/purple/.purple").join(id).exists(),
                "record of {id} left"
            );
            assert_no_cgroup_named(id);
            assert!(
                !Path::new("/sys/fs/bpf/purple").join(id).exists(),
                "BPF pins of {id} left"
            );
            audit::verify(&audit::default_path(id)).unwrap()
        }
    };
    (out, records)
}

fn assert_line(out: &Output, want: &str) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.lines().any(|l| l == want),
        "missing {want:?} in {stdout:?}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The rule of the `network.blocked` record of `addr`.
fn blocked_rule(records: &[audit::Record], addr: &str) -> Option<String> {
    records
        .iter()
        .find(|r| r.kind == "network.blocked" && r.details["destination"] == addr)
        .map(|r| r.rule.clone().unwrap_or_default())
}

#[test]
fn podman_host_network_is_scoped_and_judged_under_a_profile() {
    podman_setup();
    let net = TestNet::new();
    let dir = tempfile::tempdir().unwrap();
    let probe = probe(dir.path());
    let abstract_name = unique_id("purple-host-ab");
    let host = HostServices::on(&net, PORT, &abstract_name);
    let targets = [
        format!("abstract=@{abstract_name}"),
        "own=own".to_owned(),
        format!("loopback=127.0.0.1:{PORT}"),
    ];
    let targets: Vec<&str> = targets.iter().map(String::as_str).collect();

    // Allow-list mode: loopback is not listed, so it is refused and recorded.
    let name = unique_id("pmhost-allow");
    let _profile = HostProfile::new(
        &name,
        "  namespace: host\n  mode: allow-list\n  allowed_ips: [\"10.99.0.1\"]",
    );
    let (out, records) = podman_probe(&net, dir.path(), &probe, &name, &targets);
    assert!(out.status.success(), "{out:?}");
    assert_line(&out, "abstract EPERM");
    assert_line(&out, "own connected");
    assert_line(&out, "loopback EPERM");
    let rule = blocked_rule(&records, "127.0.0.1").expect("a record for loopback");
    assert!(!rule.is_empty(), "no rule named");

    // secure-agent (deny-list): the shared namespace's own addresses are the
    // host's, refused as such.
    let (out, records) = podman_probe(&net, dir.path(), &probe, "secure-agent", &targets);
    assert!(out.status.success(), "{out:?}");
    assert_line(&out, "abstract EPERM");
    assert_line(&out, "own connected");
    assert_line(&out, "loopback EPERM");
    let rule = blocked_rule(&records, "127.0.0.1").expect("a record for loopback");
    assert!(rule.ends_with("(host address)"), "{rule}");
    assert_eq!(host.hits(), "", "a host service was reached");
}
