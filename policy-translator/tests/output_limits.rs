//! `output_paths[].max_size` and `filesystem.max_file_size` as the spec
//! carries them: the session plan's `output_limits` (by sandbox path) and
//! `RLIMIT_FSIZE`; under an engine, the profile's per-file cap is taken
//! where lower and its output limits are dropped (its binds are not used).

use std::path::{Path, PathBuf};

use purple_policy::load::{parse_policy, Context};
use purple_policy::schema::Policy;
use purple_policy::supervision::{OutputLimit, SessionPlan};
use purple_policy::translate::{self, Process};
use serde_json::json;

fn parse(filesystem: &str) -> Policy {
    let yaml = format!("name: t\nfilesystem:\n{filesystem}\n");
    let ctx = Context {
        base: PathBuf::from("/nowhere"),
        host_paths: false,
    };
    parse_policy(&yaml, Path::new("t.yaml"), &ctx)
        .map_err(|r| r.to_string())
        .unwrap()
        .0
}

fn spec(p: &Policy) -> oci_spec::runtime::Spec {
    let process = Process {
        args: vec!["true".into()],
        env: vec![],
        terminal: false,
    };
    translate::spec(p, &process, Path::new("rootfs")).unwrap()
}

fn fsize(s: &oci_spec::runtime::Spec) -> Option<(u64, u64)> {
    s.process()
        .as_ref()?
        .rlimits()
        .as_ref()?
        .iter()
        .find(|r| format!("{:?}", r.typ()) == "RlimitFsize")
        .map(|r| (r.hard(), r.soft()))
}

#[test]
fn limits_reach_the_session_plan_and_the_rlimits() {
    let p = parse(
        "  output_paths:\n    - { host_path: ./a, sandbox_path: /a, max_size: 1G }\n    \
         - { host_path: ./b, sandbox_path: /b }\n  max_file_size: 2M",
    );
    let s = spec(&p);
    let plan = SessionPlan::from_annotations(s.annotations().as_ref()).unwrap();
    assert_eq!(
        plan.output_limits,
        vec![OutputLimit {
            path: "/a".into(),
            max_bytes: 1 << 30
        }]
    );
    assert_eq!(fsize(&s), Some((2 << 20, 2 << 20)));

    let plain = spec(&parse(
        "  output_paths:\n    - { host_path: ./a, sandbox_path: /a }",
    ));
    assert!(SessionPlan::from_annotations(plain.annotations().as_ref())
        .unwrap()
        .output_limits
        .is_empty());
    assert_eq!(fsize(&plain), None);
}

#[test]
fn an_engine_container_gets_the_cap_but_not_the_profiles_bind_limits() {
    let p = parse(
        "  output_paths:\n    - { host_path: ./a, sandbox_path: /a, max_size: 1G }\n  \
         max_file_size: 2M",
    );
    let engine: oci_spec::runtime::Spec = serde_json::from_value(json!({
        "ociVersion": "1.0.2",
        "root": {"path": "rootfs"},
        "process": {"cwd": "/", "args": ["sh"], "user": {"uid": 0, "gid": 0},
            "rlimits": [{"type": "RLIMIT_FSIZE", "hard": 4194304, "soft": 1048576}]},
    }))
    .unwrap();
    let merged = purple_policy::merge::tighten(&engine, &p).unwrap();
    // The lower of each: the engine's soft 1M stays, its hard 4M drops to 2M.
    assert_eq!(fsize(&merged), Some((2 << 20, 1 << 20)));
    assert!(SessionPlan::from_annotations(merged.annotations().as_ref())
        .unwrap()
        .output_limits
        .is_empty());
}
