//! The translator's output, byte for byte: a change to a bundle shows up as a
//! diff here. `UPDATE_GOLDEN=1 cargo test -p purple-policy --test golden`
//! rewrites the expected files after a deliberate change.

use std::path::{Path, PathBuf};

use purple_policy::load::{parse_policy, Context};
use purple_policy::translate::{self, Process};

fn golden(name: &str) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let yaml = std::fs::read_to_string(dir.join(format!("{name}.yaml"))).unwrap();
    let ctx = Context {
        base: PathBuf::from("/"),
        host_paths: true,
    };
    let (policy, report) =
        parse_policy(&yaml, Path::new("full.yaml"), &ctx).unwrap_or_else(|r| panic!("{r}"));
    assert!(report.diagnostics.is_empty(), "{}", report.render(None));
    let process = Process {
        args: vec!["python3".into(), "agent.py".into()],
        env: vec!["EXTRA=1".into()],
        terminal: false,
    };
    let spec = translate::spec(&policy, &process, Path::new("rootfs")).unwrap();
    let got = translate::to_json(&spec);
    let file = dir.join(format!("{name}.json"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&file, &got).unwrap();
    }
    let want = std::fs::read_to_string(&file).unwrap();
    assert!(got == want, "translation of {name}.yaml changed:\n{got}");
    // Deterministic: a second translation is identical.
    let again =
        translate::to_json(&translate::spec(&policy, &process, Path::new("rootfs")).unwrap());
    assert_eq!(got, again);
}

#[test]
fn full_policy_translates_as_recorded() {
    golden("full");
}
