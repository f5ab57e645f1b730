//! `syscalls`: the seccomp lists and argument rules, checked against what
//! the runtime itself must be able to call once the filter is installed.

use std::collections::HashSet;

use super::{keyword, opt_bool};
use crate::decode::{Decoder, Fields, Shape};
use crate::schema::*;
use crate::yaml::{Node, Pos, Value};
use crate::{families, handover};

pub(super) const SYSCALLS: Shape = Shape {
    fields: &[
        "default_deny",
        "action",
        "allow",
        "deny",
        "advanced_rules",
        "allow_io_uring",
        "allow_socket_families",
    ],
    renamed: &[],
    inert: &[],
};

pub(super) const RULE: Shape = Shape {
    fields: &["syscall", "action", "conditions"],
    renamed: &[],
    inert: &[],
};

pub(super) const CONDITION: Shape = Shape {
    fields: &["arg", "op", "value", "mask"],
    renamed: &[],
    inert: &[],
};

fn syscall_name(d: &mut Decoder, name: &str, pos: Pos, path: &str) -> Option<String> {
    if libseccomp::ScmpSyscall::from_name(name).is_ok() {
        Some(name.to_owned())
    } else {
        d.error(
            pos,
            path,
            format!("{name:?} is not a system call this host's libseccomp knows"),
            "check the spelling (lowercase, as in `man 2 syscalls`)",
        );
        None
    }
}

fn syscall_list(d: &mut Decoder, f: &Fields, key: &'static str) -> Vec<(String, Pos)> {
    let Some(n) = f.get(key) else {
        return Vec::new();
    };
    let p = f.path(key);
    let items = d.strings(n, &p);
    items
        .into_iter()
        .enumerate()
        .filter_map(|(i, (s, pos))| {
            syscall_name(d, &s, pos, &format!("{p}[{i}]")).map(|s| (s, pos))
        })
        .collect()
}

pub(super) fn syscalls(d: &mut Decoder, f: &Fields) -> Syscalls {
    let default_deny = opt_bool(d, f, "default_deny", false);
    let action = f
        .get("action")
        .and_then(|n| {
            keyword(
                d,
                n,
                &f.path("action"),
                &[
                    ("errno", DenyAction::Errno),
                    ("kill", DenyAction::Kill),
                    ("log", DenyAction::Log),
                ],
            )
        })
        .unwrap_or(DenyAction::Errno);
    let allow = syscall_list(d, f, "allow");
    let deny = syscall_list(d, f, "deny");
    for (name, pos) in &deny {
        if allow.iter().any(|(a, _)| a == name) {
            d.error(
                *pos,
                &f.path("deny"),
                format!("{name} is both allowed and denied"),
                "remove it from one of the lists",
            );
        }
    }
    if !default_deny {
        if let Some((_, pos)) = allow.first() {
            d.warn(
                *pos,
                &f.path("allow"),
                "has no effect: every system call not denied is allowed when default_deny is false",
                "set `default_deny: true` to allow only these, or remove the list",
            );
        }
    }
    let advanced_rules = f
        .get("advanced_rules")
        .map(|n| d.list(n, &f.path("advanced_rules"), rule))
        .unwrap_or_default();
    let default = if default_deny { Some(action) } else { None };
    for (i, r) in advanced_rules.iter().enumerate() {
        let p = format!("{}[{i}]", f.path("advanced_rules"));
        let pos = f.get("advanced_rules").map_or(f.pos, |n| n.pos);
        if allow.iter().chain(&deny).any(|(s, _)| *s == r.syscall) {
            d.error(
                pos,
                &p,
                format!("{} has both a list entry and an advanced rule", r.syscall),
                "remove it from `allow`/`deny`; the advanced rule decides",
            );
        }
        let same = match r.action {
            RuleAction::Allow => default.is_none(),
            RuleAction::Deny => default.is_some(),
            RuleAction::Errno => default == Some(DenyAction::Errno),
            RuleAction::Kill => default == Some(DenyAction::Kill),
            RuleAction::Log => default == Some(DenyAction::Log),
        };
        if same {
            d.warn(
                pos,
                &p,
                "has no effect: its action is what unlisted calls get anyway",
                "remove the rule, or change its action",
            );
        }
    }
    if default_deny {
        let missing: Vec<&str> = handover::start_calls()
            .filter(|h| !allow.iter().any(|(s, _)| s == h))
            .collect();
        if !missing.is_empty() {
            d.error(
                f.get("allow").map_or(f.pos, |n| n.pos),
                &f.path("allow"),
                format!("{} not allowed: the container could never start (the runtime's start handshake makes these calls after the filter is installed)", missing.join(", ")),
                format!("add {} to `allow`", missing.join(", ")),
            );
        }
    }
    let allow_io_uring = opt_bool(d, f, "allow_io_uring", false);
    if !allow_io_uring {
        let allowed = allow.iter().map(|(s, p)| (s.as_str(), *p)).chain(
            advanced_rules
                .iter()
                .filter(|r| r.action == RuleAction::Allow)
                .map(|r| (r.syscall.as_str(), f.pos)),
        );
        for (name, pos) in allowed.filter(|(n, _)| families::IO_URING.contains(n)) {
            d.error(
                pos,
                &f.path("allow"),
                format!("{name} is allowed but `allow_io_uring` is not set: io_uring's operations (openat, mkdirat, connect, ...) run without passing the seccomp filter"),
                "set `allow_io_uring: true` to allow io_uring knowingly, or remove it",
            );
        }
    }
    let allow_socket_families = f
        .get("allow_socket_families")
        .map(|n| {
            let p = f.path("allow_socket_families");
            d.list(n, &p, |d, it, ip| keyword(d, it, ip, SocketFamily::ALL))
        })
        .unwrap_or_default();
    for (name, pos) in &deny {
        let skipped: Vec<&str> = families::members(name)
            .into_iter()
            .filter(|m| m != name && handover::starts(m))
            .collect();
        if !skipped.is_empty() {
            d.warn(
                *pos,
                &f.path("deny"),
                format!("denies {name}'s family but not {}: the runtime's start handshake needs them, so the agent can still use them", skipped.join(", ")),
                "accept it, or enforce the operation another way (filesystem binds, Landlock)",
            );
        }
    }
    for r in advanced_rules.iter().filter(|r| !r.conditions.is_empty()) {
        let named = |v: &str| {
            deny.iter().any(|(s, _)| s == v) || advanced_rules.iter().any(|o| o.syscall == v)
        };
        let uncovered: Vec<&str> = families::members(&r.syscall)
            .into_iter()
            .filter(|v| !named(v))
            .collect();
        if !uncovered.is_empty() {
            d.warn(
                f.get("advanced_rules").map_or(f.pos, |n| n.pos),
                &f.path("advanced_rules"),
                format!("the rule on {} does not cover {}: their arguments differ", r.syscall, uncovered.join(", ")),
                "write a rule for each variant, or deny the variants (clone3's flags sit in memory: seccomp cannot compare them)",
            );
        }
    }
    for (name, pos) in &deny {
        if handover::starts(name) {
            d.error(
                *pos,
                &f.path("deny"),
                format!("{name} cannot be denied: the runtime's start handshake makes this call after the filter is installed, so the container could never start"),
                "remove it; to keep an agent from accepting connections deny `socket` or `listen` instead",
            );
        }
    }
    Syscalls {
        default_deny,
        action,
        allow: allow.into_iter().map(|(s, _)| s).collect(),
        deny: deny.into_iter().map(|(s, _)| s).collect(),
        advanced_rules,
        allow_io_uring,
        allow_socket_families,
    }
}

fn rule(d: &mut Decoder, n: &Node, path: &str) -> Option<SyscallRule> {
    let f = d.fields(n, path, &RULE)?;
    let syscall = d.required(&f, "syscall").and_then(|s| {
        let p = f.path("syscall");
        let name = d.string(s, &p)?;
        syscall_name(d, &name, s.pos, &p)
    });
    let action = d.required(&f, "action").and_then(|a| {
        keyword(
            d,
            a,
            &f.path("action"),
            &[
                ("allow", RuleAction::Allow),
                ("deny", RuleAction::Deny),
                ("errno", RuleAction::Errno),
                ("kill", RuleAction::Kill),
                ("log", RuleAction::Log),
            ],
        )
    });
    let conditions = f
        .get("conditions")
        .map(|c| d.list(c, &f.path("conditions"), condition))
        .unwrap_or_default();
    let mut args = HashSet::new();
    for c in &conditions {
        if !args.insert(c.arg) {
            d.error(
                n.pos,
                &f.path("conditions"),
                format!("argument {} is compared twice in one rule", c.arg),
                "seccomp takes one comparison per argument per rule: split it into two rules",
            );
        }
    }
    if conditions
        .iter()
        .filter(|c| c.op == CmpOp::MaskedNeq)
        .count()
        > 1
    {
        d.error(
            n.pos,
            &f.path("conditions"),
            "more than one masked_neq in one rule",
            "seccomp has no masked_neq: each becomes one rule per mask bit, so give each its own rule",
        );
    }
    Some(SyscallRule {
        syscall: syscall?,
        action: action?,
        conditions,
    })
}

/// An argument value: a whole number, or text in decimal, 0x hex or 0o octal.
fn arg_value(d: &mut Decoder, n: &Node, path: &str) -> Option<u64> {
    let v = match &n.value {
        Value::Int(i) => u64::try_from(*i).ok(),
        Value::Str(s) => {
            let s = s.trim();
            if let Some(h) = s.strip_prefix("0x") {
                u64::from_str_radix(h, 16).ok()
            } else if let Some(o) = s.strip_prefix("0o") {
                u64::from_str_radix(o, 8).ok()
            } else {
                s.parse().ok()
            }
        }
        _ => None,
    };
    if v.is_none() {
        d.error(
            n.pos,
            path,
            format!("expected an unsigned 64-bit value, found {}", n.kind()),
            "write a number such as 2 or \"0x80000\"",
        );
    }
    v
}

fn condition(d: &mut Decoder, n: &Node, path: &str) -> Option<Condition> {
    let f = d.fields(n, path, &CONDITION)?;
    let arg = d
        .required(&f, "arg")
        .and_then(|a| d.int(a, &f.path("arg"), 0, 5))
        .map(|a| a as u8);
    let op_node = d.required(&f, "op");
    let op = op_node.and_then(|o| {
        let p = f.path("op");
        keyword(
            d,
            o,
            &p,
            &[
                ("eq", CmpOp::Eq),
                ("neq", CmpOp::Neq),
                ("lt", CmpOp::Lt),
                ("lte", CmpOp::Lte),
                ("gt", CmpOp::Gt),
                ("gte", CmpOp::Gte),
                ("masked_eq", CmpOp::MaskedEq),
                ("masked_neq", CmpOp::MaskedNeq),
            ],
        )
    });
    let value = d
        .required(&f, "value")
        .and_then(|v| arg_value(d, v, &f.path("value")));
    let mask = f.get("mask").and_then(|m| arg_value(d, m, &f.path("mask")));
    let masked = |op| matches!(op, CmpOp::MaskedEq | CmpOp::MaskedNeq);
    match (op, mask) {
        (Some(op), None) if masked(op) => d.error(
            f.pos,
            &f.path("mask"),
            format!(
                "{} needs a mask",
                if op == CmpOp::MaskedEq {
                    "masked_eq"
                } else {
                    "masked_neq"
                }
            ),
            "add `mask:` (the bits of the argument to compare)",
        ),
        (Some(op), Some(_)) if !masked(op) => d.error(
            f.pos,
            &f.path("mask"),
            "a mask only applies to masked_eq and masked_neq",
            "remove `mask`, or use `op: masked_eq`",
        ),
        _ => {}
    }
    Some(Condition {
        arg: arg?,
        op: op?,
        value: value?,
        mask,
    })
}
