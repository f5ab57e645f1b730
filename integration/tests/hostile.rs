//! Hostile input on the host side: what an agent leaves behind (links in its
//! output, process names) and what a bundle's author writes (annotations)
//! never makes Purple act as root for them. Each test is the attack. Here:
//! links an agent plants in its output; annotations are in
//! hostile_annotations.rs, the sandbox's secrets in hostile_secrets.rs.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use purple_integration::cli::{purple_in, stderr};
use purple_integration::leftovers::assert_run_left_nothing;
use purple_integration::{unique_id, Oci};

/// A root-owned 0755 host directory holding one root-owned tool: a stand-in
/// for /usr/local/bin that the sandbox must never be handed.
fn host_bin_dir() -> tempfile::TempDir {
    let d = tempfile::Builder::new()
        .prefix("h2-hostbin-")
        .tempdir()
        .unwrap();
    fs::set_permissions(d.path(), fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(d.path().join("tool"), "#!/bin/sh\necho original\n").unwrap();
    fs::set_permissions(d.path().join("tool"), fs::Permissions::from_mode(0o755)).unwrap();
    d
}

fn assert_untouched(dir: &Path) {
    let meta = fs::metadata(dir).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid()),
        (0, 0),
        "{} changed owner",
        dir.display()
    );
    assert_eq!(meta.mode() & 0o7777, 0o755);
    let tool = dir.join("tool");
    assert_eq!(fs::metadata(&tool).unwrap().uid(), 0);
    assert_eq!(
        fs::read_to_string(&tool).unwrap(),
        "#!/bin/sh\necho original\n"
    );
    assert_eq!(
        fs::read_dir(dir).unwrap().count(),
        1,
        "files planted in {}",
        dir.display()
    );
}

#[test]
fn a_link_planted_by_one_run_does_not_hand_a_host_dir_to_the_next() {
    let oci = Oci::new();
    let target = host_bin_dir();
    let work = tempfile::tempdir().unwrap();
    fs::set_permissions(work.path(), fs::Permissions::from_mode(0o755)).unwrap();
    // Run 1: the agent leaves a link in its output directory.
    let plant = format!("ln -s {} /output/results", target.path().display());
    let id1 = unique_id("plant");
    let out = purple_in(
        &oci,
        work.path(),
        &[
            "run",
            "--profile",
            "development",
            "--id",
            &id1,
            "-q",
            "--",
            "/bin/sh",
            "-c",
            &plant,
        ],
    );
    assert!(out.status.success(), "run 1: {}", stderr(&out));
    let link = work.path().join("output/results");
    let meta = fs::symlink_metadata(&link).unwrap();
    assert!(meta.file_type().is_symlink());
    assert!(
        meta.uid() >= 100_000,
        "the link is the sandbox's: {}",
        meta.uid()
    );
    assert_run_left_nothing(&oci, &id1);

    // Run 2: a person reuses the agent's output, writable and read-only.
    let attack = "rm -f /results/tool; echo pwned > /results/tool; chmod 777 /results";
    for volume in ["./output/results:/results", "./output/results:/results:ro"] {
        let id2 = unique_id("reuse");
        let out = purple_in(
            &oci,
            work.path(),
            &[
                "run",
                "--profile",
                "development",
                "--id",
                &id2,
                "-v",
                volume,
                "--",
                "/bin/sh",
                "-c",
                attack,
            ],
        );
        let err = stderr(&out);
        assert!(!out.status.success(), "{volume}: run 2 was let through");
        assert!(
            err.contains("which a sandbox can write") && err.contains("output"),
            "{volume}: {err}"
        );
        assert_untouched(target.path());
        assert_run_left_nothing(&oci, &id2);
    }
    // What is the agent's own stays usable: its output directory itself.
    let id3 = unique_id("again");
    let out = purple_in(
        &oci,
        work.path(),
        &[
            "run",
            "--profile",
            "development",
            "--id",
            &id3,
            "-q",
            "--",
            "/bin/sh",
            "-c",
            "ls /output",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_untouched(target.path());
    assert_run_left_nothing(&oci, &id3);
}

#[test]
fn a_policy_output_path_through_an_agent_link_is_refused() {
    // The same link, reached by a policy file's output_paths rather than -v.
    let oci = Oci::new();
    let target = host_bin_dir();
    let work = tempfile::tempdir().unwrap();
    fs::set_permissions(work.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let output = work.path().join("output");
    fs::create_dir(&output).unwrap();
    std::os::unix::fs::chown(&output, Some(100_000), Some(100_000)).unwrap();
    std::os::unix::fs::symlink(target.path(), output.join("results")).unwrap();
    std::os::unix::fs::lchown(output.join("results"), Some(100_000), Some(100_000)).unwrap();
    let dev = fs::read_to_string(
        purple_integration::repo().join("policy-translator/profiles/development.yaml"),
    )
    .unwrap()
    .replace("name: development", "name: reuse")
    .replace("\"./output\"", "\"./output/results\"");
    fs::write(work.path().join("reuse.yaml"), dev).unwrap();
    let id = unique_id("polreuse");
    let out = purple_in(
        &oci,
        work.path(),
        &[
            "run",
            "--profile",
            "./reuse.yaml",
            "--id",
            &id,
            "--",
            "/bin/true",
        ],
    );
    let err = stderr(&out);
    assert!(!out.status.success());
    assert!(
        err.contains("output_paths") && err.contains("which a sandbox can write"),
        "{err}"
    );
    assert_untouched(target.path());
    assert_run_left_nothing(&oci, &id);
}
