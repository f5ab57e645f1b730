//! The sandbox's user namespace: sandbox root is a stranger on the host,
//! `exec` enters the same namespace, and `purple translate` writes bundles
//! that purple-oci runs as they are.

use std::fs;

use purple_integration::cli::{purple_in, text};
use purple_integration::leftovers::assert_run_left_nothing;
use purple_integration::*;

/// Root in the sandbox is a stranger on the host (the default user
/// namespace): it cannot read host root's private file or change host root's
/// file bound into it, what it writes is owned by its mapped ids, a bind the
/// namespace cannot reach is refused before anything starts, and turning the
/// namespace off is warned about.
#[test]
fn sandbox_root_is_a_stranger_on_the_host() {
    use std::os::unix::fs::MetadataExt;
    let work = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    set_mode(data.path(), 0o755);
    fs::write(data.path().join("secret"), "s3cret").unwrap();
    set_mode(&data.path().join("secret"), 0o600);
    let out_dir = work.path().join("out");
    fs::create_dir(&out_dir).unwrap();
    fs::write(out_dir.join("keep.txt"), "host\n").unwrap();
    let oci = Oci::new();
    let id = unique_id("userns");
    let ro = format!("{}:/data:ro", data.path().display());
    let rw = format!("{}:/out", out_dir.display());
    let script = "cat /proc/self/uid_map; id -u; \
        cat /data/secret || echo read-refused; \
        echo agent >> /out/keep.txt || echo write-refused; \
        echo new > /out/new.txt";
    let out = purple_in(
        &oci,
        work.path(),
        &[
            "run",
            "-q",
            "--profile",
            "secure-agent",
            "--id",
            &id,
            "--no-workdir",
            "-v",
            &ro,
            "-v",
            &rw,
            "--",
            "sh",
            "-c",
            script,
        ],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    let words: Vec<&str> = stdout.split_whitespace().collect();
    assert_eq!(
        words,
        ["0", "100000", "65536", "0", "read-refused", "write-refused"],
        "{stderr}"
    );
    assert_eq!(stderr.matches("Permission denied").count(), 2, "{stderr}");
    assert_eq!(
        fs::read_to_string(out_dir.join("keep.txt")).unwrap(),
        "host\n"
    );
    let made = fs::metadata(out_dir.join("new.txt")).unwrap();
    assert_eq!((made.uid(), made.gid()), (100000, 100000));
    assert_eq!(fs::metadata(&out_dir).unwrap().uid(), 100000);
    assert_run_left_nothing(&oci, &id);

    // A bind source behind a directory only host root may enter: refused
    // with the directory and the fix named, nothing created.
    let closed = tempfile::tempdir().unwrap();
    fs::create_dir(closed.path().join("inner")).unwrap();
    set_mode(closed.path(), 0o700);
    let id = unique_id("closed");
    let bind = format!("{}:/x:ro", closed.path().join("inner").display());
    let out = purple_in(
        &oci,
        work.path(),
        &[
            "run",
            "--profile",
            "secure-agent",
            "--id",
            &id,
            "-v",
            &bind,
            "--",
            "true",
        ],
    );
    let stderr = text(&out).1;
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let want = format!(
        "the sandbox cannot reach {}/inner: {} (owner 0, mode 0700) does not let host uid 100000 pass",
        closed.path().display(),
        closed.path().display()
    );
    assert!(stderr.contains(&want), "want {want:?} in {stderr}");
    assert!(stderr.contains(&format!("chmod o+x {}", closed.path().display())));
    assert_run_left_nothing(&oci, &id);

    // Opting out gives the sandbox the host's ids, with a warning.
    let b = TestBundle::new(&["true"]);
    fs::write(
        work.path().join("hostids.yaml"),
        "name: hostids\nuser:\n  namespace:\n    enabled: false\n",
    )
    .unwrap();
    let rootfs = b.path().join("rootfs");
    let out = purple_in(
        &oci,
        work.path(),
        &[
            "run",
            "-q",
            "--profile",
            "hostids.yaml",
            "--rootfs",
            rootfs.to_str().unwrap(),
            "--no-workdir",
            "--",
            "cat",
            "/proc/self/uid_map",
        ],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert_eq!(
        stdout.split_whitespace().collect::<Vec<_>>(),
        ["0", "0", "4294967295"]
    );
    assert!(
        stderr.contains("user.namespace.enabled: without a user namespace, root in the sandbox is root on the host"),
        "{stderr}"
    );
}

/// `exec` enters the sandbox's user namespace too (libcontainer 0.7's
/// tenants skip it): an exec'd process would otherwise be host root.
#[test]
fn exec_enters_the_sandbox_user_namespace() {
    let work = tempfile::tempdir().unwrap();
    set_mode(work.path(), 0o711);
    let b = TestBundle::new(&["true"]);
    let rootfs = b.path().join("rootfs");
    fs::write(work.path().join("sleepy.yaml"), "name: sleepy\n").unwrap();
    let oci = Oci::new();
    let out = purple_in(
        &oci,
        work.path(),
        &[
            "translate",
            "sleepy.yaml",
            "-o",
            "bundle",
            "--rootfs",
            rootfs.to_str().unwrap(),
            "--",
            "sleep",
            "60",
        ],
    );
    assert!(out.status.success(), "{}", text(&out).1);
    let id = unique_id("exec-userns");
    let bundle = work.path().join("bundle");
    oci.create(&id, &bundle, &[]);
    oci.ok(&["start", &id]);
    let init = oci.state(&id)["pid"].as_u64().unwrap();
    let init_ns = fs::read_link(format!("/proc/{init}/ns/user")).unwrap();
    let exec = |args: &[&str]| {
        let mut all = vec!["exec", id.as_str()];
        all.extend(args);
        oci.ok(&all)
    };
    assert_eq!(
        exec(&["readlink", "/proc/self/ns/user"]).trim(),
        init_ns.to_str().unwrap()
    );
    assert_eq!(
        exec(&["cat", "/proc/self/uid_map"])
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["0", "100000", "65536"]
    );
    oci.ok(&["delete", "--force", &id]);
    assert_no_leftovers(&oci, &id);
}

#[test]
fn translated_bundle_runs_under_purple_oci() {
    let work = tempfile::tempdir().unwrap();
    let oci = Oci::new();
    let out = purple_in(
        &oci,
        work.path(),
        &["translate", "code-analyst", "-o", "bundle", "--", "python3", "-c", "import socket\ntry:\n socket.socket()\nexcept OSError as e:\n print('socket', e.errno)"],
    );
    assert!(out.status.success(), "{}", text(&out).1);
    let bundle = work.path().join("bundle");
    let config: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(bundle.join("config.json")).unwrap()).unwrap();
    assert_eq!(
        config["annotations"]["io.purple.policy.name"],
        "code-analyst"
    );
    assert!(config["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n["type"] == "network"));
    // code-analyst has no /work bind of its own: give the process a cwd that exists.
    let id = unique_id("tr");
    let out = oci.run(&["run", "--bundle", bundle.to_str().unwrap(), &id]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert_eq!(stdout, "socket 1\n", "socket() must fail with EPERM");
    assert_no_leftovers(&oci, &id);
}
