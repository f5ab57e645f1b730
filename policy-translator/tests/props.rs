//! Whatever the YAML, loading a policy returns a policy or diagnostics: never
//! a panic, never an overflow.

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use purple_policy::load::{parse_policy, Context};
use purple_policy::translate::{self, Process};

const BASE: &str = include_str!("../profiles/secure-agent.yaml");

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

/// Loads `text` and, when it is a policy, translates it: neither may panic.
/// The policy written back (`purple policy show`) loads into the same policy.
fn load_and_translate(text: &str) {
    if let Ok((policy, _)) = parse_policy(text, Path::new("x.yaml"), &ctx()) {
        let written = purple_policy::document::yaml(&policy);
        match parse_policy(&written, Path::new("shown.yaml"), &ctx()) {
            Ok((again, _)) => assert_eq!(again, policy, "written back:\n{written}"),
            Err(r) => panic!("{}\nwritten back:\n{written}", r.render(None)),
        }
        let process = Process {
            args: vec!["/bin/true".into()],
            env: vec!["A=b".into()],
            terminal: false,
        };
        let _ = translate::spec(&policy, &process, Path::new("rootfs"));
        let _ = translate::network_plan(&policy.network);
        let _ = translate::audit_plan(&policy.audit);
        let _ = translate::session_plan(&policy.resources);
    }
}

/// Every field of every section, nested ones inside a one-entry list or map
/// as the schema nests them; `@` is where the value goes.
const FIELDS: &[&str] = &[
    "filesystem:\n  immutable_paths: @",
    "filesystem:\n  immutable_paths:\n    - { host_path: @, sandbox_path: /x }",
    "filesystem:\n  immutable_paths:\n    - { host_path: /usr, sandbox_path: @ }",
    "filesystem:\n  output_paths:\n    - { host_path: /tmp, sandbox_path: /o, optional: @ }",
    "filesystem:\n  scratch_paths: @",
    "filesystem:\n  scratch_paths:\n    - { path: @, size: 1M }",
    "filesystem:\n  scratch_paths:\n    - { path: /t, size: @ }",
    "filesystem:\n  working_dir: @",
    "filesystem:\n  read_only_root: @",
    "filesystem:\n  scratch_size: @",
    "syscalls:\n  default_deny: @",
    "syscalls:\n  action: @",
    "syscalls:\n  allow: @",
    "syscalls:\n  deny: @",
    "syscalls:\n  deny: [@]",
    "syscalls:\n  advanced_rules: @",
    "syscalls:\n  advanced_rules:\n    - { syscall: @, action: deny }",
    "syscalls:\n  advanced_rules:\n    - { syscall: socket, action: @ }",
    "syscalls:\n  advanced_rules:\n    - { syscall: socket, action: deny, conditions: @ }",
    "syscalls:\n  advanced_rules:\n    - { syscall: socket, action: deny, conditions: [{ arg: @, op: eq, value: 1 }] }",
    "syscalls:\n  advanced_rules:\n    - { syscall: socket, action: deny, conditions: [{ arg: 0, op: @, value: 1 }] }",
    "syscalls:\n  advanced_rules:\n    - { syscall: socket, action: deny, conditions: [{ arg: 0, op: eq, value: @ }] }",
    "syscalls:\n  advanced_rules:\n    - { syscall: socket, action: deny, conditions: [{ arg: 0, op: masked_eq, value: 1, mask: @ }] }",
    "resources:\n  memory_limit_bytes: @",
    "resources:\n  swap_limit_bytes: @",
    "resources:\n  cpu_shares: @",
    "resources:\n  pids_limit: @",
    "resources:\n  block_io_limit: @",
    "resources:\n  io_limit_bytes_per_sec: @",
    "resources:\n  session_timeout_seconds: @",
    "resources:\n  cpu_time_limit_seconds: @",
    "capabilities:\n  default_drop: @",
    "capabilities:\n  add: @",
    "capabilities:\n  add: [@]",
    "capabilities:\n  drop: @",
    "capabilities:\n  no_new_privileges: @",
    "network:\n  isolated: @",
    "network:\n  mode: @",
    "network:\n  blocked_ips: @",
    "network:\n  blocked_ips: [@]",
    "network:\n  allowed_ips: [@]",
    "network:\n  allow_outgoing: @",
    "network:\n  allow_incoming: @",
    "network:\n  allowed_domains: [@]",
    "network:\n  blocked_domains: [@]",
    "network:\n  dns_servers: [@]",
    "network:\n  allow_metadata: @",
    "audit:\n  enabled: @",
    "audit:\n  log_path: @",
    "audit:\n  record: @",
    "audit:\n  record: [@]",
    "audit:\n  alerts: @",
    "audit:\n  alerts:\n    command: @",
    "audit:\n  alerts:\n    unix_socket: @",
    "audit:\n  alerts:\n    http: @",
    "environment: @",
    "environment:\n  @: x",
    "environment:\n  K: @",
    "user:\n  uid: @",
    "user:\n  gid: @",
    "user:\n  additional_gids: [@]",
    "user:\n  namespace: @",
    "user:\n  namespace:\n    enabled: @",
    "user:\n  namespace:\n    host_id: @",
    "user:\n  namespace:\n    size: @",
    "ebpf_monitoring: @",
    "ebpf_monitoring:\n  trace_exec: @",
    "ebpf_monitoring:\n  trace_network: @",
    "ebpf_monitoring:\n  correlation_enabled: @",
    "ebpf_monitoring:\n  trace_files: @",
    "hostname: @",
    "description: @",
    "name: @",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Each field of each section, with a random value, loaded and translated.
    #[test]
    fn every_field_takes_any_value(field in prop::sample::select(FIELDS), value in scalar()) {
        load_and_translate(&format!("name: x\n{}\n", field.replace('@', &value)));
    }

    /// Every shipped profile with one value replaced, loaded and translated.
    #[test]
    fn mutated_profiles_never_panic(
        profile in prop::sample::select(purple_policy::profiles::BUILT_IN),
        line in 0usize..400,
        value in scalar(),
    ) {
        let lines: Vec<&str> = profile.1.lines().collect();
        let i = line % lines.len();
        let mutated: Vec<String> = lines
            .iter()
            .enumerate()
            .map(|(j, l)| match (j == i, l.split_once(": ")) {
                (true, Some((k, _))) => format!("{k}: {value}"),
                _ => l.to_string(),
            })
            .collect();
        load_and_translate(&mutated.join("\n"));
    }

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
        "audit", "environment", "user", "hostname", "description", "ebpf_monitoring",
    ]), value in scalar()) {
        let text = format!("name: x\n{key}: {value}\n");
        let _ = parse_policy(&text, Path::new("x.yaml"), &ctx());
    }
}
