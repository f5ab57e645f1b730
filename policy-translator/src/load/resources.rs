//! `resources` (cgroup limits and session budgets) and `capabilities`.

use super::opt_bool;
use crate::decode::{Decoder, Fields, Renamed, Shape};
use crate::schema::*;
use crate::units;

pub(super) const RESOURCES: Shape = Shape {
    fields: &[
        "memory_limit_bytes",
        "swap_limit_bytes",
        "cpu_shares",
        "pids_limit",
        "block_io_limit",
        "session_timeout_seconds",
        "cpu_time_limit_seconds",
    ],
    renamed: &[
        Renamed {
            old: "io_limit_bytes_per_sec",
            new: "block_io_limit",
        },
        Renamed {
            old: "block_io_limit_bytes_per_sec",
            new: "block_io_limit",
        },
    ],
    inert: &[],
};

pub(super) const CAPABILITIES: Shape = Shape {
    fields: &["default_drop", "add", "drop", "no_new_privileges"],
    renamed: &[],
    inert: &[],
};

pub(super) fn resources(d: &mut Decoder, f: &Fields) -> Resources {
    let size = |d: &mut Decoder, key: &'static str| {
        f.get(key)
            .and_then(|n| d.unit(n, &f.path(key), units::parse_size))
    };
    let memory_limit_bytes = size(d, "memory_limit_bytes");
    if let (Some(m), Some(n)) = (memory_limit_bytes, f.get("memory_limit_bytes")) {
        // Below this the container cannot even start its first process.
        if m < 4 << 20 {
            d.error(
                n.pos,
                &f.path("memory_limit_bytes"),
                format!("{m} bytes is too small to start a process"),
                "give at least \"4M\"",
            );
        }
    }
    let cpu_shares = f.get("cpu_shares").and_then(|n| {
        let p = f.path("cpu_shares");
        let limit = d.unit(n, &p, units::parse_cpu)?;
        Some(limit.quota as f64 / limit.period as f64)
    });
    let duration = |d: &mut Decoder, key: &'static str| {
        f.get(key).and_then(|n| {
            let s = d.unit(n, &f.path(key), units::parse_duration)?;
            if s == 0 {
                d.error(
                    n.pos,
                    &f.path(key),
                    "a zero budget ends the session at once",
                    "give at least 1 second, or remove the field",
                );
                return None;
            }
            Some(s)
        })
    };
    Resources {
        memory_limit_bytes,
        swap_limit_bytes: size(d, "swap_limit_bytes"),
        cpu_shares,
        pids_limit: f
            .get("pids_limit")
            .and_then(|n| d.int(n, &f.path("pids_limit"), 1, 4_194_304)),
        block_io_limit: f
            .get("block_io_limit")
            .and_then(|n| d.unit(n, &f.path("block_io_limit"), units::parse_rate)),
        session_timeout_seconds: duration(d, "session_timeout_seconds"),
        cpu_time_limit_seconds: duration(d, "cpu_time_limit_seconds"),
    }
}

/// `CAP_NET_ADMIN` or `net_admin` → `CAP_NET_ADMIN`, if the kernel names it.
pub fn capability(name: &str) -> Option<String> {
    let upper = name.trim().to_ascii_uppercase();
    let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
    bare.parse::<oci_spec::runtime::Capability>()
        .ok()
        .map(|_| format!("CAP_{bare}"))
}

pub(super) fn capabilities(d: &mut Decoder, f: &Fields) -> Capabilities {
    let list = |d: &mut Decoder, key: &'static str| {
        f.get(key)
            .map(|n| {
                d.parsed(
                    n,
                    &f.path(key),
                    "use a name such as CAP_NET_BIND_SERVICE (see `man 7 capabilities`)",
                    |s| capability(s).ok_or_else(|| format!("{s:?} is not a Linux capability")),
                )
            })
            .unwrap_or_default()
    };
    let add = list(d, "add");
    let drop = list(d, "drop");
    for c in &add {
        if drop.contains(c) {
            d.error(
                f.pos,
                &f.path("add"),
                format!("{c} is both added and dropped"),
                "remove it from one list",
            );
        }
    }
    Capabilities {
        default_drop: opt_bool(d, f, "default_drop", true),
        add,
        drop,
        no_new_privileges: opt_bool(d, f, "no_new_privileges", true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_take_either_spelling() {
        assert_eq!(capability("net_admin").as_deref(), Some("CAP_NET_ADMIN"));
        assert_eq!(
            capability("CAP_SYS_PTRACE").as_deref(),
            Some("CAP_SYS_PTRACE")
        );
        assert_eq!(capability("CAP_BOGUS"), None);
    }
}
