//! Reading a policy file: YAML → [`Policy`] with every field checked, host
//! paths resolved (symlinks first, then the sensitive-path rules), and all
//! problems reported together. One file per section of the policy; this one
//! holds the entry point, the top level and the helpers every section uses.

mod ai;
mod audit;
mod filesystem;
mod monitoring;
mod network;
mod resources;
mod syscalls;
mod user;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::decode::{join, Decoder, Fields, Shape};
use crate::diag::Report;
use crate::schema::*;
use crate::yaml::{self, Node, Pos, Value};

pub use audit::OPTIONAL_RECORDS;
pub use filesystem::cli_bind;
pub use resources::capability;

use audit::{audit, AUDIT};
use filesystem::{check_sandbox_overlaps, filesystem, FILESYSTEM};
use monitoring::{monitoring, MONITORING};
use network::{network, NETWORK};
use resources::{capabilities, resources, CAPABILITIES, RESOURCES};
use syscalls::{syscalls, SYSCALLS};
use user::{user, USER};

const TOP: Shape = Shape {
    fields: &[
        "name",
        "description",
        "filesystem",
        "syscalls",
        "resources",
        "capabilities",
        "network",
        "audit",
        "environment",
        "user",
        "hostname",
        "ebpf_monitoring",
        "ai_policy",
    ],
    renamed: &[],
    inert: &[],
};

/// The shape of the mapping at `path` (`filesystem.output_paths`: the
/// items of that list), for writing a policy back in the loader's order.
pub(crate) fn shape_of(path: &str) -> Option<&'static Shape> {
    Some(match path {
        "" => &TOP,
        "filesystem" => &FILESYSTEM,
        "filesystem.immutable_paths" => &filesystem::BIND,
        "filesystem.output_paths" => &filesystem::OUTPUT_BIND,
        "filesystem.scratch_paths" => &filesystem::SCRATCH,
        "syscalls" => &SYSCALLS,
        "syscalls.advanced_rules" => &syscalls::RULE,
        "syscalls.advanced_rules.conditions" => &syscalls::CONDITION,
        "resources" => &RESOURCES,
        "capabilities" => &CAPABILITIES,
        "network" => &NETWORK,
        "audit" => &AUDIT,
        "audit.alerts" => &audit::ALERTS,
        "user" => &USER,
        "user.namespace" => &user::USER_NAMESPACE,
        "ebpf_monitoring" => &MONITORING,
        "ai_policy" => &ai::AI,
        "ai_policy.budget" => &ai::BUDGET,
        "ai_policy.rate_limits" => &ai::RATES,
        "ai_policy.llm_apis" => &ai::APIS,
        "ai_policy.llm_apis.providers" => &ai::PROVIDER,
        "ai_policy.security" => &ai::SECURITY,
        "ai_policy.monitoring" => &ai::MONITORING,
        "ai_policy.prices" => &ai::PRICE,
        _ => return None,
    })
}

/// Where relative host paths start and whether the host is consulted.
#[derive(Debug, Clone)]
pub struct Context {
    /// Base for relative host paths (the directory `purple` runs in).
    pub base: PathBuf,
    /// Resolve and check host paths. Off when the policy's filesystem section
    /// is not used (a profile merged into an engine's container).
    pub host_paths: bool,
}

impl Default for Context {
    fn default() -> Self {
        Self {
            base: std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/")),
            host_paths: true,
        }
    }
}

/// Parses and checks a policy. `Err` carries every error (and the warnings);
/// `Ok` carries the warnings.
pub fn parse_policy(text: &str, file: &Path, ctx: &Context) -> Result<(Policy, Report), Report> {
    let mut report = Report {
        file: file.to_owned(),
        diagnostics: Vec::new(),
    };
    let node = match yaml::parse(text) {
        Ok(n) => n,
        Err(e) => {
            let mut d = Decoder::default();
            d.error(e.pos, "", e.message, "fix the YAML syntax at this position");
            report.diagnostics = d.diagnostics;
            return Err(report);
        }
    };
    let mut d = Decoder::default();
    let policy = policy(&mut d, &node, ctx);
    report.diagnostics = d.diagnostics;
    report.diagnostics.sort_by_key(|x| (x.pos.line, x.pos.col));
    match policy {
        Some(p) if !report.has_errors() => Ok((p, report)),
        _ => Err(report),
    }
}

fn policy(d: &mut Decoder, n: &Node, ctx: &Context) -> Option<Policy> {
    let f = d.fields(n, "", &TOP)?;
    let name = d.required(&f, "name").and_then(|n| {
        let name = d.string(n, "name")?;
        check_name(d, &name, n.pos, "name")
    });
    let description = f
        .get("description")
        .and_then(|n| d.string(n, "description"))
        .unwrap_or_default();
    let filesystem = section(d, &f, "filesystem", &FILESYSTEM, |d, s| {
        filesystem(d, s, ctx)
    });
    let syscalls = section(d, &f, "syscalls", &SYSCALLS, syscalls);
    let resources = section(d, &f, "resources", &RESOURCES, resources);
    let capabilities = section(d, &f, "capabilities", &CAPABILITIES, capabilities);
    let network = section(d, &f, "network", &NETWORK, network);
    let mut audit = section(d, &f, "audit", &AUDIT, audit);
    let traces = section(d, &f, "ebpf_monitoring", &MONITORING, monitoring);
    for kind in traces.kinds {
        if !audit.record.contains(&kind) {
            audit.record.push(kind);
        }
    }
    audit.trace_syscalls = traces.syscalls;
    let environment = f
        .get("environment")
        .map(|n| environment(d, n))
        .unwrap_or_default();
    let user = section(d, &f, "user", &USER, user);
    let hostname = match f.get("hostname") {
        Some(n) => d
            .string(n, "hostname")
            .and_then(|h| check_hostname(d, h, n.pos)),
        None => name.clone(),
    };
    let ai = f.get("ai_policy").and_then(|n| ai::ai(d, n));
    check_sandbox_overlaps(d, &filesystem, n.pos);
    Some(Policy {
        name: name?,
        description,
        filesystem,
        syscalls,
        resources,
        capabilities,
        network,
        audit,
        environment,
        user,
        hostname: hostname.unwrap_or_default(),
        ai,
    })
}

/// Decodes an optional section: its defaults when absent.
fn section<T>(
    d: &mut Decoder,
    top: &Fields,
    key: &'static str,
    shape: &Shape,
    decode: impl FnOnce(&mut Decoder, &Fields) -> T,
) -> T {
    let empty = Node {
        value: Value::Map(Vec::new()),
        pos: top.pos,
    };
    let node = match top.get(key) {
        Some(Node {
            value: Value::Null, ..
        })
        | None => &empty,
        Some(n) => n,
    };
    let fields = d.fields(node, key, shape).unwrap_or_else(|| {
        d.fields(&empty, key, shape)
            .expect("an empty mapping has fields")
    });
    decode(d, &fields)
}

/// Lowercase letters, digits and dashes, at most 63, not starting with a dash.
pub fn is_policy_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn check_name(d: &mut Decoder, name: &str, pos: Pos, path: &str) -> Option<String> {
    if is_policy_name(name) {
        Some(name.to_owned())
    } else {
        d.error(
            pos,
            path,
            format!("{name:?} is not a policy name"),
            "use lowercase letters, digits and dashes (at most 63), e.g. \"secure-agent\"",
        );
        None
    }
}

fn check_hostname(d: &mut Decoder, h: String, pos: Pos) -> Option<String> {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    if h.len() <= 253 && h.split('.').all(label_ok) {
        Some(h)
    } else {
        d.error(
            pos,
            "hostname",
            format!("{h:?} is not a valid hostname"),
            "use letters, digits and dashes, dot-separated labels of at most 63",
        );
        None
    }
}

pub(super) fn opt_bool(d: &mut Decoder, f: &Fields, key: &'static str, default: bool) -> bool {
    f.get(key)
        .and_then(|n| d.bool(n, &f.path(key)))
        .unwrap_or(default)
}

pub(super) fn keyword<T: Copy>(
    d: &mut Decoder,
    n: &Node,
    path: &str,
    options: &[(&str, T)],
) -> Option<T> {
    let s = d.string(n, path)?;
    match options.iter().find(|(k, _)| *k == s) {
        Some((_, v)) => Some(*v),
        None => {
            let names: Vec<_> = options.iter().map(|(k, _)| *k).collect();
            d.error(
                n.pos,
                path,
                format!("{s:?} is not one of {}", names.join(", ")),
                format!("use one of: {}", names.join(", ")),
            );
            None
        }
    }
}

pub(super) fn absolute(d: &mut Decoder, n: &Node, path: &str) -> Option<PathBuf> {
    let s = d.string(n, path)?;
    if s.starts_with('/') && !s.split('/').any(|c| c == "..") {
        Some(PathBuf::from(s))
    } else {
        d.error(
            n.pos,
            path,
            format!("{s:?} is not an absolute path"),
            "write a host path starting with /",
        );
        None
    }
}

fn environment(d: &mut Decoder, n: &Node) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut put = |d: &mut Decoder, k: String, v: String, pos: Pos, path: &str| {
        if k.is_empty() || k.contains('=') || k.contains('\0') || v.contains('\0') {
            d.error(
                pos,
                path,
                format!("{k:?} is not an environment variable name"),
                "use NAME: value",
            );
        } else {
            out.insert(k, v);
        }
    };
    match &n.value {
        Value::Map(entries) => {
            for (k, v) in entries {
                let p = join("environment", &k.name);
                let text = match &v.value {
                    Value::Str(s) => s.clone(),
                    Value::Int(i) => i.to_string(),
                    Value::Float(x) => x.to_string(),
                    Value::Bool(b) => b.to_string(),
                    _ => {
                        d.error(
                            v.pos,
                            &p,
                            format!("expected a value, found {}", v.kind()),
                            "write NAME: value",
                        );
                        continue;
                    }
                };
                put(d, k.name.clone(), text, k.pos, &p);
            }
        }
        _ => {
            for (i, (s, pos)) in d.strings(n, "environment").into_iter().enumerate() {
                let p = format!("environment[{i}]");
                match s.split_once('=') {
                    Some((k, v)) => put(d, k.to_owned(), v.to_owned(), pos, &p),
                    None => d.error(
                        pos,
                        &p,
                        format!("{s:?} has no `=`"),
                        "write NAME=value, or use a mapping NAME: value",
                    ),
                }
            }
        }
    }
    out
}
