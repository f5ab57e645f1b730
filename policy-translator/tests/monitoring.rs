//! `ebpf_monitoring` decides which kernel traces are on: each field turns on
//! an optional record kind, which reaches the audit plan of the spec; the
//! fields not implemented warn that they have no effect.

use std::path::{Path, PathBuf};

use purple_policy::load::{parse_policy, Context};
use purple_policy::supervision::AuditPlan;
use purple_policy::translate::{self, Process};

fn load(yaml: &str) -> Result<(purple_policy::schema::Policy, String), String> {
    let ctx = Context {
        base: PathBuf::from("/nowhere"),
        host_paths: false,
    };
    parse_policy(&format!("name: t\n{yaml}"), Path::new("t.yaml"), &ctx)
        .map(|(p, report)| {
            let warnings = report
                .diagnostics
                .iter()
                .map(|d| format!("{}: {}\n", d.path, d.message))
                .collect();
            (p, warnings)
        })
        .map_err(|r| r.to_string())
}

fn audit_plan(yaml: &str) -> AuditPlan {
    let (p, _) = load(yaml).unwrap();
    let process = Process {
        args: vec!["true".into()],
        env: vec![],
        terminal: false,
    };
    let s = translate::spec(&p, &process, Path::new("rootfs")).unwrap();
    AuditPlan::from_annotations(s.annotations().as_ref()).unwrap()
}

#[test]
fn trace_exec_and_trace_network_reach_the_audit_plan() {
    let plan = audit_plan("ebpf_monitoring:\n  trace_exec: true\n  trace_network: true\n");
    assert!(plan.trace_exec && plan.record_allowed, "{plan:?}");
    let plan = audit_plan("ebpf_monitoring:\n  trace_exec: false\n");
    assert!(!plan.trace_exec && !plan.record_allowed, "{plan:?}");
    // The same kind asked for in `audit.record` is the same switch.
    let plan = audit_plan("audit:\n  record: [process.exec]\n");
    assert!(plan.trace_exec, "{plan:?}");
    assert!(!audit_plan("").trace_exec);
}

#[test]
fn trace_syscalls_reaches_the_audit_plan_and_nothing_else() {
    let plan = audit_plan("ebpf_monitoring:\n  trace_syscalls: true\n");
    assert!(plan.trace_syscalls && !plan.trace_exec, "{plan:?}");
    let (p, warnings) = load("ebpf_monitoring:\n  trace_syscalls: true\n").unwrap();
    assert!(warnings.is_empty(), "{warnings}");
    // Counts are no record kind: the exited record carries them.
    assert!(p.audit.record.is_empty());
    assert!(!audit_plan("ebpf_monitoring:\n  trace_syscalls: false\n").trace_syscalls);
    assert!(!audit_plan("").trace_syscalls);
    let err = load("ebpf_monitoring:\n  trace_syscalls: 3\n").unwrap_err();
    assert!(err.contains("ebpf_monitoring.trace_syscalls"), "{err}");
}

#[test]
fn unimplemented_traces_warn_and_bad_values_name_the_field() {
    let (p, warnings) = load("ebpf_monitoring:\n  trace_files: true\n").unwrap();
    assert!(
        warnings.contains("trace_files") && warnings.contains("not implemented"),
        "{warnings}"
    );
    assert!(p.audit.record.is_empty());
    let err = load("ebpf_monitoring:\n  trace_exec: yes please\n").unwrap_err();
    assert!(err.contains("ebpf_monitoring.trace_exec"), "{err}");
    let err = load("ebpf_monitoring:\n  trace_everything: true\n").unwrap_err();
    assert!(err.contains("trace_everything"), "{err}");
}
