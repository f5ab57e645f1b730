//! `ebpf_monitoring`: which kernel traces are on. Each one is an optional
//! record kind of the audit trail, so the section only adds kinds to
//! `audit.record`: one representation downstream.

use crate::decode::{Decoder, Fields, Inert, Shape};

pub(super) const MONITORING: Shape = Shape {
    fields: &["trace_exec", "trace_network", "correlation_enabled"],
    renamed: &[],
    inert: &[
        Inert {
            key: "trace_files",
            why: "file records are not implemented yet (issue 17); `filesystem` decides what the sandbox can reach",
        },
        Inert {
            key: "trace_syscalls",
            why: "per-syscall counts are not implemented yet (issue 17); denied calls are recorded as syscall.denied",
        },
    ],
};

/// The record kinds the section turns on, in `audit.record`'s terms.
pub(super) fn monitoring(d: &mut Decoder, f: &Fields) -> Vec<String> {
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
    kinds
}
