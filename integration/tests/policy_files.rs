//! `purple policy new` and `purple policy show`: a first policy file a
//! person can start from, and the effective policy printed as a file that
//! loads into the same policy.

use std::fs;

use purple_integration::cli::{purple_in, stderr, stdout_ok};
use purple_integration::leftovers::assert_run_left_nothing;
use purple_integration::{unique_id, Oci};

/// `purple policy new ARGS` run in `dir`.
fn policy_new(oci: &Oci, dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    let mut all = vec!["policy", "new"];
    all.extend(args);
    purple_in(oci, dir, &all)
}

#[test]
fn a_policy_started_from_a_profile_keeps_its_comments_validates_and_runs() {
    let oci = Oci::new();
    let dir = tempfile::tempdir().unwrap();
    let out = policy_new(
        &oci,
        dir.path(),
        &["--from", "secure-agent", "--name", "my-agent"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let file = dir.path().join("my-agent.yaml");
    let text = fs::read_to_string(&file).unwrap();
    assert!(text.contains("\nname: my-agent\n"), "{text}");
    // The profile's own comments come along: they say why each line is there.
    assert!(text.contains("# cloud metadata"), "{text}");
    assert!(stderr(&out).contains("purple policy validate my-agent.yaml"));

    let valid = stdout_ok(purple_in(
        &oci,
        dir.path(),
        &["policy", "validate", "my-agent.yaml"],
    ));
    assert!(valid.contains("valid (my-agent)"), "{valid}");

    let id = unique_id("policy-new");
    let run = purple_in(
        &oci,
        dir.path(),
        &[
            "run",
            "--profile",
            "./my-agent.yaml",
            "--id",
            &id,
            "--",
            "/bin/sh",
            "-c",
            "echo started from secure-agent",
        ],
    );
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(String::from_utf8_lossy(&run.stdout).contains("started from secure-agent"));
    assert_run_left_nothing(&oci, &id);

    // An existing file is kept unless asked.
    let again = policy_new(
        &oci,
        dir.path(),
        &["--from", "secure-agent", "--name", "my-agent"],
    );
    assert!(!again.status.success());
    assert!(stderr(&again).contains("--force"), "{}", stderr(&again));
    assert_eq!(fs::read_to_string(&file).unwrap(), text);
    let forced = policy_new(
        &oci,
        dir.path(),
        &["--from", "development", "--name", "my-agent", "--force"],
    );
    assert!(forced.status.success(), "{}", stderr(&forced));
    assert!(fs::read_to_string(&file)
        .unwrap()
        .contains("from development"));
}

#[test]
fn policy_new_refuses_what_it_cannot_do() {
    let oci = Oci::new();
    let dir = tempfile::tempdir().unwrap();
    // No terminal to ask on, and nothing to start from.
    let out = policy_new(&oci, dir.path(), &[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--from PROFILE"), "{}", stderr(&out));
    let out = policy_new(&oci, dir.path(), &["--from", "no-such-profile"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no-such-profile"), "{}", stderr(&out));
    let out = policy_new(
        &oci,
        dir.path(),
        &["--from", "secure-agent", "--name", "Not A Name"],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("is not a policy name"),
        "{}",
        stderr(&out)
    );
    // Root does not write through a link planted where the file goes.
    std::os::unix::fs::symlink("/etc/purple-planted", dir.path().join("linked.yaml")).unwrap();
    let out = policy_new(
        &oci,
        dir.path(),
        &["--from", "secure-agent", "-o", "linked.yaml", "--force"],
    );
    assert!(!out.status.success());
    assert!(!std::path::Path::new("/etc/purple-planted").exists());
    assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn every_profile_shown_loads_back_into_the_same_policy() {
    let oci = Oci::new();
    let dir = tempfile::tempdir().unwrap();
    let profiles = stdout_ok(purple_in(&oci, dir.path(), &["profiles"]));
    let names: Vec<&str> = profiles
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(names.contains(&"secure-agent"), "{profiles}");
    for name in names {
        let shown = stdout_ok(purple_in(&oci, dir.path(), &["policy", "show", name]));
        assert!(shown.starts_with(&format!("# {name} ")), "{shown}");
        let file = dir.path().join(format!("{name}.shown.yaml"));
        fs::write(&file, &shown).unwrap();
        let path = file.to_str().unwrap();
        let again = stdout_ok(purple_in(&oci, dir.path(), &["policy", "show", path]));
        // Only the header (where it was read from) differs.
        let body = |s: &str| s.lines().skip(1).collect::<Vec<_>>().join("\n");
        assert_eq!(body(&again), body(&shown), "{name}");

        let json = stdout_ok(purple_in(
            &oci,
            dir.path(),
            &["policy", "show", "--json", name],
        ));
        let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(doc["name"], name);
        let file = dir.path().join(format!("{name}.shown.json"));
        fs::write(&file, &json).unwrap();
        let from_json = stdout_ok(purple_in(
            &oci,
            dir.path(),
            &["policy", "show", file.to_str().unwrap()],
        ));
        assert_eq!(body(&from_json), body(&shown), "{name} (json)");
    }
}

/// `purple policy show X | head`: a reader that goes away ends a printing
/// command quietly (SIGPIPE, as Unix filters end), never with a panic.
#[test]
fn printing_commands_end_quietly_when_their_reader_is_gone() {
    use std::os::unix::process::ExitStatusExt;
    let cases: [(std::path::PathBuf, &[&str]); 3] = [
        (
            purple_integration::purple(),
            &["policy", "show", "secure-agent"],
        ),
        (purple_integration::purple(), &["profiles"]),
        (purple_integration::purple_oci(), &["features"]),
    ];
    for (bin, args) in cases {
        // The read end is closed before the command starts: its first write fails.
        let (read, write) = nix::unistd::pipe().unwrap();
        drop(read);
        let out = std::process::Command::new(&bin)
            .args(args)
            .stdout(std::process::Stdio::from(write))
            .output()
            .unwrap();
        let err = stderr(&out);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert_eq!(out.status.signal(), Some(libc::SIGPIPE), "{args:?}: {err}");
    }
}
