//! `ebpf_monitoring`: which kernel traces are on. Each trace that makes
//! records is an optional record kind of the audit trail, so the section
//! adds kinds to `audit.record`: one representation downstream. Syscall
//! counts are no record of their own (the `exited` record carries them).

use crate::decode::{Decoder, Fields, Inert, Shape};

pub(super) const MONITORING: Shape = Shape {
    fields: &[
        "trace_exec",
        "trace_network",
        "trace_syscalls",
        "correlation_enabled",
    ],
    renamed: &[],
    inert: &[
        Inert {
            key: "trace_files",
            why: "file records are not implemented yet (issue 17); `filesystem` decides what the sandbox can reach",
        },
    ],
};

/// What the section turns on.
pub(super) struct Traces {
    /// Record kinds, in `audit.record`'s terms.
    pub kinds: Vec<String>,
    /// Per-syscall counts in the `exited` record.
    pub syscalls: bool,
}

pub(super) fn monitoring(d: &mut Decoder, f: &Fields) -> Traces {
    let mut kinds = Vec::new();
    for (field, kind) in [
        ("trace_exec", "process.exec"),
        ("trace_network", "network.allowed"),
    ] {
        if let Some(n) = f.get(field) {
            if d.bool(n, &f.path(field)) == Some(true) {
                kinds.push(kind.to_owned());
            }
        }
    }
    if let Some(n) = f.get("correlation_enabled") {
        if d.bool(n, &f.path("correlation_enabled")) == Some(false) {
            d.warn(
                n.pos,
                &f.path("correlation_enabled"),
                "process.exec records always carry the pid, parent pid and exec id that link them",
                "remove `correlation_enabled: false`",
            );
        }
    }
    let syscalls = f
        .get("trace_syscalls")
        .is_some_and(|n| d.bool(n, &f.path("trace_syscalls")) == Some(true));
    Traces { kinds, syscalls }
}
