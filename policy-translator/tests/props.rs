//! Whatever the YAML, loading a policy returns a policy or diagnostics: never
//! a panic, never an overflow.

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use purple_policy::load::{parse_policy, Context};

const BASE: &str = include_str!("../../bundles/policies/secure-agent.yaml");

fn ctx() -> Context {
    Context {
        base: PathBuf::from("/tmp"),
        host_paths: true,
    }
}

fn scalar() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| format!("{n}P")),
        any::<f64>().prop_map(|f| f.to_string()),
        "[ -~]{0,12}".prop_map(|s| format!("{s:?}")),
        Just("~".to_owned()),
        Just("[]".to_owned()),
        Just("{a: 1}".to_owned()),
        Just("18446744073709551616".to_owned()),
        Just("-1".to_owned()),
        Just("0x".to_owned()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,400}") {
        let _ = parse_policy(&text, Path::new("x.yaml"), &ctx());
    }

    /// The shipped profile with one value replaced by something random.
    #[test]
    fn mutated_values_never_panic(line in 0usize..200, value in scalar()) {
        let lines: Vec<&str> = BASE.lines().collect();
        let i = line % lines.len();
        let mutated: Vec<String> = lines
            .iter()
            .enumerate()
            .map(|(j, l)| match (j == i, l.split_once(": ")) {
                (true, Some((k, _))) => format!("{k}: {value}"),
                _ => l.to_string(),
            })
            .collect();
        let _ = parse_policy(&mutated.join("\n"), Path::new("x.yaml"), &ctx());
    }

    #[test]
    fn every_section_takes_any_value(key in prop::sample::select(vec![
        "name", "filesystem", "syscalls", "resources", "capabilities", "network",
        "audit", "environment", "user", "hostname", "description",
    ]), value in scalar()) {
        let text = format!("name: x\n{key}: {value}\n");
        let _ = parse_policy(&text, Path::new("x.yaml"), &ctx());
    }
}
