//! Issue 13 item 1, the exec race (CVE-2016-9962 class): a process `exec`
//! starts must not appear in the container's pid namespace while it still
//! holds the host's root, cwd or fds. A container with CAP_SYS_PTRACE and no
//! user namespace races `/proc/<new pid>/{root,cwd,fd}` for host-only files
//! through 50 execs, under Purple and under runc in the same test.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use purple_integration::*;

const EXECS: usize = 50;

/// Builds `integration/probe/execrace.c` (static) once per test process.
fn execrace() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let out = std::env::temp_dir().join(format!("purple-execrace-{}", std::process::id()));
        let st = Command::new("cc")
            .args(["-static", "-O2", "-o"])
            .arg(&out)
            .arg(repo().join("integration/probe/execrace.c"))
            .status()
            .expect("a C compiler is installed (build-essential)");
        assert!(st.success(), "cannot build execrace");
        out
    })
}

#[derive(Clone, Copy, Debug)]
enum Rt {
    Purple,
    Runc,
}

/// `RUNTIME --root ROOT`.
fn runtime(rt: Rt, root: &Path) -> Command {
    let mut c = match rt {
        Rt::Purple => Command::new(purple_oci()),
        Rt::Runc => Command::new("runc"),
    };
    c.arg("--root").arg(root);
    c
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// What the racer printed, after the execs.
struct Raced {
    racer: String,
    dropped: Vec<PathBuf>,
}

/// Where the execs go.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Target {
    /// The racer's own container.
    Same,
    /// A neighbour sharing the racer's pid namespace (a pod's containers).
    Neighbour,
}

/// A container running the racer under `rt`, 50 execs into `target` called
/// from a host directory holding the marker and the secret, and one exec
/// checking the process's env, cwd and user.
fn race(rt: Rt, target: Target) -> Raced {
    // Host-only: the container's rootfs has its own, empty /tmp.
    let host = tempfile::Builder::new()
        .prefix("purple-race-host-")
        .tempdir()
        .unwrap();
    let marker = host.path().join("marker");
    let secret = host.path().join("secret");
    let drop = host.path().join("drop");
    fs::write(&marker, "").unwrap();
    fs::write(&secret, "host-only-secret\n").unwrap();
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o600)).unwrap();
    fs::create_dir(&drop).unwrap();

    let path = |p: &Path| p.to_str().unwrap().to_owned();
    let (m, sec, d) = (path(&marker), path(&secret), path(&drop));
    let mut args = vec!["/execrace", &m, &sec, &d];
    // The neighbour's own creation is exposed under runc and Purple alike
    // (docs/runtime.md): the racer arms only once it exists.
    if target == Target::Neighbour {
        args.push("armed");
    }
    let b = TestBundle::new(&args);
    fs::copy(execrace(), b.path().join("rootfs/execrace")).unwrap();
    b.edit(|v| {
        let caps = &mut v["process"]["capabilities"];
        for set in ["bounding", "effective", "permitted"] {
            caps[set]
                .as_array_mut()
                .unwrap()
                .push("CAP_SYS_PTRACE".into());
        }
        let ns = v["linux"]["namespaces"].as_array().unwrap();
        assert!(
            ns.iter().all(|n| n["type"] != "user"),
            "the race needs no user namespace: {ns:?}"
        );
    });

    let root = tempfile::Builder::new()
        .prefix("race-root-")
        .tempdir()
        .unwrap();
    let id = unique_id(&format!("race-{rt:?}").to_lowercase());
    let out_file = b.path().join("stdout");
    let st = runtime(rt, root.path())
        .args(["create", "--bundle"])
        .arg(b.path())
        .arg(&id)
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out_file).unwrap())
        .stderr(fs::File::create(b.path().join("stderr")).unwrap())
        .status()
        .unwrap();
    assert!(
        st.success(),
        "{rt:?} create: {}",
        read(b.path().join("stderr"))
    );
    let out = runtime(rt, root.path())
        .args(["start", &id])
        .output()
        .unwrap();
    assert!(out.status.success(), "{rt:?} start: {}", text(&out));
    let wait_for = |line: &str| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !read(&out_file).lines().any(|l| l == line) {
            assert!(
                Instant::now() < deadline,
                "{rt:?}: the racer never said {line}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    wait_for(if target == Target::Neighbour {
        "waiting"
    } else {
        "ready"
    });

    let neighbour = (target == Target::Neighbour).then(|| {
        let out = runtime(rt, root.path())
            .args(["state", &id])
            .output()
            .unwrap();
        let state: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let pid = state["pid"].as_i64().unwrap();
        let n = TestBundle::new(&["sleep", "1000"]);
        n.edit(|v| {
            for ns in v["linux"]["namespaces"].as_array_mut().unwrap() {
                if ns["type"] == "pid" {
                    ns["path"] = format!("/proc/{pid}/ns/pid").into();
                }
            }
        });
        let nid = format!("{id}-n");
        let st = runtime(rt, root.path())
            .args(["create", "--bundle"])
            .arg(n.path())
            .arg(&nid)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(n.path().join("stderr")).unwrap())
            .status()
            .unwrap();
        assert!(
            st.success(),
            "{rt:?} create neighbour: {}",
            read(n.path().join("stderr"))
        );
        let out = runtime(rt, root.path())
            .args(["start", &nid])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{rt:?} start neighbour: {}",
            text(&out)
        );
        let out = runtime(rt, root.path())
            .args(["kill", &id, "USR1"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{rt:?} kill USR1: {}", text(&out));
        wait_for("ready");
        (n, nid)
    });
    let into = neighbour
        .as_ref()
        .map_or(id.as_str(), |(_, nid)| nid.as_str());
    for i in 0..EXECS {
        let out = runtime(rt, root.path())
            .args(["exec", into, "sh", "-c", "exit 7"])
            .current_dir(host.path())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(7),
            "{rt:?} exec {i}: {}",
            text(&out)
        );
    }
    let out = runtime(rt, root.path())
        .args([
            "exec",
            "--env",
            "K=v",
            "--cwd",
            "/tmp",
            "--user",
            "65534:65534",
        ])
        .args([into, "sh", "-c", "echo $K $PWD $(id -u):$(id -g)"])
        .current_dir(host.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(text(&out), "v /tmp 65534:65534\n", "{rt:?}");

    if let Some((_, nid)) = &neighbour {
        let out = runtime(rt, root.path())
            .args(["delete", "--force", nid])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{rt:?} delete neighbour: {}",
            text(&out)
        );
    }
    let out = runtime(rt, root.path())
        .args(["kill", &id, "TERM"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{rt:?} kill: {}", text(&out));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !read(&out_file).contains("scanned") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = runtime(rt, root.path())
        .args(["delete", "--force", &id])
        .output()
        .unwrap();
    assert!(out.status.success(), "{rt:?} delete: {}", text(&out));
    if let Rt::Purple = rt {
        let oci = Oci { root };
        assert_no_leftovers(&oci, &id);
        if let Some((_, nid)) = &neighbour {
            assert_no_leftovers(&oci, nid);
        }
    }
    Raced {
        racer: read(&out_file),
        dropped: fs::read_dir(&drop)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect(),
    }
}

/// Races 50 execs into `target` under Purple, then runc: none may reach
/// the host.
fn assert_never_reaches_the_host(target: Target) {
    for rt in [Rt::Purple, Rt::Runc] {
        let r = race(rt, target);
        let reached: Vec<&str> = r
            .racer
            .lines()
            .filter(|l| {
                ["REACHED", "SECRET", "WROTE"]
                    .iter()
                    .any(|w| l.starts_with(w))
            })
            .collect();
        assert!(
            reached.is_empty() && r.dropped.is_empty(),
            "{rt:?} ({target:?}): the container reached the host through exec'd processes \
             ({} lines, first: {:?}); {} files written on the host",
            reached.len(),
            &reached[..reached.len().min(6)],
            r.dropped.len()
        );
        assert!(
            !r.racer.contains("host-only-secret"),
            "{rt:?} ({target:?}): the secret was read"
        );
        // The racer really watched the exec'd processes while they lived
        // (it misses some that come and go between two of its scans).
        let saw = r.racer.lines().filter(|l| l.starts_with("saw ")).count();
        println!("{rt:?} ({target:?}): the racer watched {saw} of {EXECS} exec'd processes");
        assert!(
            saw >= EXECS / 5,
            "{rt:?} ({target:?}): the racer saw only {saw} of {EXECS} exec'd processes:\n{}",
            r.racer
        );
    }
}

#[test]
fn exec_never_shows_the_host_to_a_ptrace_capable_container_like_runc() {
    assert_never_reaches_the_host(Target::Same);
}

/// A pod's containers share one pid namespace: an exec into one must not
/// show the host to its neighbour either.
#[test]
fn exec_never_shows_the_host_to_a_neighbour_in_the_pid_namespace_like_runc() {
    assert_never_reaches_the_host(Target::Neighbour);
}
