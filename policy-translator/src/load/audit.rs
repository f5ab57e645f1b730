//! `audit`: where records go, which optional ones are kept, and alerts.

use super::absolute;
use crate::decode::{Decoder, Fields, Inert, Shape};
use crate::schema::*;
use crate::supervision::{AlertFormat, AlertRecords, Alerts, OnFailure};
use crate::units;
use crate::yaml::{Node, Value};

pub(super) const AUDIT: Shape = Shape {
    fields: &[
        "enabled",
        "log_path",
        "record",
        "alerts",
        "on_failure",
        "max_size",
    ],
    renamed: &[],
    inert: &[Inert {
        key: "detail_level",
        why: "every violation is always recorded; ask for more with `record: [network.allowed]`",
    }],
};

pub(super) const ALERTS: Shape = Shape {
    fields: &[
        "command",
        "unix_socket",
        "http",
        "syslog",
        "records",
        "format",
    ],
    renamed: &[],
    inert: &[],
};

/// Record kinds a policy may ask for beyond violations.
pub const OPTIONAL_RECORDS: &[&str] = &["network.allowed", "process.exec"];

pub(super) fn audit(d: &mut Decoder, f: &Fields) -> Audit {
    if let Some(n) = f.get("enabled") {
        if d.bool(n, &f.path("enabled")) == Some(false) {
            d.warn(
                n.pos,
                &f.path("enabled"),
                "the audit trail cannot be turned off: violations are always recorded",
                "remove `enabled: false`",
            );
        }
    }
    let record = f
        .get("record")
        .map(|n| {
            d.parsed(
                n,
                &f.path("record"),
                &format!("choose from: {}", OPTIONAL_RECORDS.join(", ")),
                |s| {
                    if OPTIONAL_RECORDS.contains(&s) {
                        Ok(s.to_owned())
                    } else {
                        Err(format!("{s:?} is not an optional record kind"))
                    }
                },
            )
        })
        .unwrap_or_default();
    let alerts = f
        .get("alerts")
        .and_then(|n| {
            let path = f.path("alerts");
            let a = d.fields(n, &path, &ALERTS)?;
            let command = match a.get("command") {
                Some(Node { value: Value::Str(s), .. }) => vec![s.clone()],
                Some(c) => d.strings(c, &a.path("command")).into_iter().map(|(s, _)| s).collect(),
                None => Vec::new(),
            };
            let unix_socket = a.get("unix_socket").and_then(|s| absolute(d, s, &a.path("unix_socket")));
            let http = a.get("http").and_then(|h| {
                let p = a.path("http");
                let url = d.string(h, &p)?;
                if url.starts_with("http://") {
                    Some(url)
                } else {
                    d.error(h.pos, &p, format!("{url:?} is not an http:// URL"), "write e.g. http://127.0.0.1:9000/alerts (plain HTTP to a host-local collector)");
                    None
                }
            });
            let syslog = a.get("syslog").and_then(|s| absolute(d, s, &a.path("syslog")));
            let records = a
                .get("records")
                .and_then(|n| super::keyword(d, n, &a.path("records"), &[("violations", AlertRecords::Violations), ("all", AlertRecords::All)]))
                .unwrap_or_default();
            let format = a
                .get("format")
                .and_then(|n| super::keyword(d, n, &a.path("format"), &[("purple", AlertFormat::Purple), ("ocsf", AlertFormat::Ocsf)]))
                .unwrap_or_default();
            Some(Alerts { command, unix_socket, http, syslog, records, format })
        })
        .unwrap_or_default();
    let on_failure = f
        .get("on_failure")
        .and_then(|n| {
            let path = f.path("on_failure");
            match d.string(n, &path)?.as_str() {
                "kill" => Some(OnFailure::Kill),
                "continue" => Some(OnFailure::Continue),
                other => {
                    d.error(
                        n.pos,
                        &path,
                        format!("{other:?} is not a failure mode"),
                        "write `kill` (stop the sandbox when records cannot be written) or `continue`",
                    );
                    None
                }
            }
        })
        .unwrap_or_default();
    Audit {
        on_failure,
        max_size: f
            .get("max_size")
            .and_then(|n| d.unit(n, &f.path("max_size"), units::parse_size)),
        log_path: f
            .get("log_path")
            .and_then(|n| absolute(d, n, &f.path("log_path"))),
        record,
        alerts,
        trace_syscalls: false,
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use crate::load::{parse_policy, Context};
    use crate::supervision::OnFailure;

    fn on_failure(yaml: &str) -> Result<OnFailure, String> {
        let ctx = Context {
            base: PathBuf::from("/nowhere"),
            host_paths: false,
        };
        parse_policy(&format!("name: t\n{yaml}"), Path::new("t.yaml"), &ctx)
            .map(|(p, _)| p.audit.on_failure)
            .map_err(|r| r.to_string())
    }

    #[test]
    fn on_failure_is_kill_unless_the_policy_says_continue() {
        assert_eq!(on_failure(""), Ok(OnFailure::Kill));
        assert_eq!(
            on_failure("audit:\n  on_failure: continue\n"),
            Ok(OnFailure::Continue)
        );
        let err = on_failure("audit:\n  on_failure: shrug\n  max_size: 64K\n").unwrap_err();
        assert!(
            err.contains("audit.on_failure") && err.contains("`kill`"),
            "{err}"
        );
    }
}
