//! Policies end to end: the shipped profiles validate and run the host's
//! python3, bad policies are refused with every error positioned, and bad
//! arguments to `purple run` are refused cleanly. `purple run` itself is in
//! policy_run.rs, the sandbox's user namespace in policy_userns.rs.

use std::fs;

use purple_integration::cli::{purple_in, text};
use purple_integration::leftovers::assert_run_left_nothing;
use purple_integration::*;

const PROFILES: &[&str] = &[
    "ai-dev-safe",
    "cicd-worker",
    "code-analyst",
    "data-retriever",
    "development",
    "honeypot",
    "production-secure",
    "secure-agent",
];

#[test]
fn shipped_profiles_validate_and_run_host_python() {
    let work = tempfile::tempdir().unwrap();
    let oci = Oci::new();
    let files: Vec<String> = PROFILES
        .iter()
        .map(|p| {
            repo()
                .join(format!("policy-translator/profiles/{p}.yaml"))
                .display()
                .to_string()
        })
        .collect();
    let mut args = vec!["policy", "validate"];
    args.extend(files.iter().map(String::as_str));
    let out = purple_in(&oci, work.path(), &args);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert_eq!(
        stdout.matches(": valid").count(),
        PROFILES.len(),
        "{stdout}"
    );
    assert!(
        !stderr.contains("warning"),
        "shipped profiles warn: {stderr}"
    );

    let listed = text(&purple_in(&oci, work.path(), &["profiles"])).0;
    for p in PROFILES {
        assert!(
            listed.lines().any(|l| l.starts_with(p)),
            "{p} not listed: {listed}"
        );
        let id = unique_id("prof");
        let out = purple_in(
            &oci,
            work.path(),
            &[
                "run",
                "--profile",
                p,
                "--id",
                &id,
                "--",
                "python3",
                "-c",
                "import os; print('ran', os.getcwd())",
            ],
        );
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{p}: {stdout}{stderr}");
        assert_eq!(stdout, "ran /work\n", "{p}: {stderr}");
        assert!(
            stderr.contains("purple: exit 0"),
            "{p}: no summary: {stderr}"
        );
        assert_run_left_nothing(&oci, &id);
    }
}

#[test]
fn invalid_policy_reports_every_error_at_its_line() {
    let dir = tempfile::tempdir().unwrap();
    // A symlink to a sensitive file must be judged by where it leads.
    std::os::unix::fs::symlink("/etc/shadow", dir.path().join("innocent")).unwrap();
    let policy = format!(
        "name: bad\n\
         descripton: typo\n\
         network:\n  blocked_ips_v4: [\"1.1.1.1\", \"300.1.1.1\"]\n\
         resources:\n  memory_limit_bytes: \"99999999999P\"\n  cpu_shares: 0\n\
         filesystem:\n  immutable_paths:\n    - {{ host_path: {}, sandbox_path: /data }}\n\
         syscalls:\n  advanced_rules:\n    - syscall: socket\n      action: deny\n      conditions: [{{arg: 6, op: masked_neq, value: 1}}]\n\
         user:\n  uid: 70000\n  namespace: {{ host_id: 0 }}\n",
        dir.path().join("innocent").display()
    );
    let file = dir.path().join("bad.yaml");
    fs::write(&file, policy).unwrap();
    let oci = Oci::new();
    let out = purple_in(&oci, dir.path(), &["policy", "validate", "bad.yaml"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    for want in [
        "bad.yaml:2:1: error: descripton: unknown field `descripton`",
        "did you mean `description`?",
        "bad.yaml:4:3: warning: network.blocked_ips_v4: `blocked_ips_v4` is a deprecated name",
        "rename it to `blocked_ips`",
        "bad.yaml:4:31: error: network.blocked_ips[1]: invalid CIDR \"300.1.1.1\"",
        "bad.yaml:6:23: error: resources.memory_limit_bytes:",
        "too large",
        "bad.yaml:7:15: error: resources.cpu_shares:",
        "resolves to /etc/shadow",
        "arg: 6 is out of range",
        "masked_neq needs a mask",
        "bad.yaml:17:8: error: user.uid: id 70000 is outside the sandbox's user namespace (ids 0 to 65535)",
        "bad.yaml:18:25: error: user.namespace.host_id: host id 0 makes root in the sandbox root on the host",
    ] {
        assert!(stderr.contains(want), "missing {want:?} in:\n{stderr}");
    }
    assert!(!stderr.contains("panicked"), "{stderr}");

    // The same policy refused by `run` and `translate`, leaving nothing behind.
    let out = purple_in(
        &oci,
        dir.path(),
        &[
            "run",
            "--profile",
            "bad.yaml",
            "--id",
            "never",
            "--",
            "true",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).1.contains("errors in policy"),
        "{}",
        text(&out).1
    );
    assert_run_left_nothing(&oci, "never");
    let out = purple_in(
        &oci,
        dir.path(),
        &["translate", "bad.yaml", "-o", "b", "--", "true"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        !dir.path().join("b").exists(),
        "translate wrote a bundle for an invalid policy"
    );

    fs::write(&file, "name: [unclosed\n").unwrap();
    let out = purple_in(&oci, dir.path(), &["policy", "validate", "bad.yaml"]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("bad.yaml:2:1: error: (top level): not valid YAML"),
        "{stderr}"
    );
}

#[test]
fn run_refuses_bad_arguments_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let oci = Oci::new();
    let cases: &[(&[&str], &str)] = &[
        (
            &["run", "--profile", "no-such-profile", "--", "true"],
            "no profile named \"no-such-profile\"",
        ),
        (
            &[
                "run",
                "--profile",
                "secure-agent",
                "--id",
                "../x",
                "--",
                "true",
            ],
            "invalid container ID \"../x\"",
        ),
        (
            &[
                "run",
                "--profile",
                "secure-agent",
                "-v",
                "/etc:/etc:ro",
                "--",
                "true",
            ],
            "sensitive host path",
        ),
        (
            &[
                "run",
                "--profile",
                "secure-agent",
                "-v",
                "/tmp:relative",
                "--",
                "true",
            ],
            "must be an absolute path",
        ),
        (
            &["run", "--profile", "secure-agent", "--", "no-such-program"],
            "no-such-program: command not found in the sandbox",
        ),
    ];
    for (args, want) in cases {
        let out = purple_in(&oci, dir.path(), args);
        let (_, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(want), "{args:?}: want {want:?} in {stderr}");
        assert_eq!(
            stderr.lines().filter(|l| l.starts_with("purple:")).count(),
            1,
            "{stderr}"
        );
    }
    let bundles = oci.root.path().join("bundles");
    let left = fs::read_dir(&bundles).map(|d| d.count()).unwrap_or(0);
    assert_eq!(left, 0, "bundles left in {}", bundles.display());
}
