//! The node's configuration (`/etc/purple/runtime.yaml`): what the node's
//! operator decides for every container an engine creates, whoever wrote
//! its bundle. Read strictly, with positioned errors, like policies.
//!
//! ```yaml
//! default_profile: secure-agent   # containers without any io.purple.* annotation
//! floor: secure-agent             # annotations may only tighten this profile
//! annotations: [io.purple.profile, io.purple.network]   # honoured; others refused
//! profile_dir: /etc/purple/policies
//! handlers:                       # containerd runtime handlers (RuntimeClasses)
//!   purple-secure-agent: secure-agent
//! log_retention:                  # closed audit logs under /var/log/purple
//!   max_age: 30d
//!   max_total_size: 1G
//! ```
//!
//! A handler is a link named after it to `purple-oci` (the runc shim's
//! `BinaryName`); called by that name, `purple-oci` holds every container
//! to the handler's profile: its default and its floor.

use std::path::{Path, PathBuf};

use crate::annotations::BUNDLE_ANNOTATIONS;
use crate::decode::{Decoder, Shape};
use crate::diag::Report;
use crate::floor;
use crate::load::Context;
use crate::plan::NetworkPlan;
use crate::profiles::{self, HOST_PROFILE_DIR};
use crate::schema::Policy;
use crate::translate;
use crate::yaml::{self, Node as YamlNode, Pos};

/// Where the node's configuration lives unless `--node-config` says otherwise.
pub const NODE_CONFIG: &str = "/etc/purple/runtime.yaml";

const TOP: Shape = Shape {
    fields: &[
        "default_profile",
        "floor",
        "annotations",
        "profile_dir",
        "handlers",
        "log_retention",
    ],
    renamed: &[],
    inert: &[],
};

const RETENTION: Shape = Shape {
    fields: &["max_age", "max_total_size"],
    renamed: &[],
    inert: &[],
};

/// How long the audit logs of deleted containers are kept under the log
/// root: sealed logs older than `max_age_seconds` go, then the oldest sealed
/// ones while all logs together hold more than `max_total_bytes`. Defaults
/// that keep a busy host's disk bounded: 30 days, 1 GiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub max_age_seconds: u64,
    pub max_total_bytes: u64,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            max_age_seconds: 30 * 86_400,
            max_total_bytes: 1 << 30,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("cannot read the node configuration {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {} error(s) in the node configuration\n{}", .0.file.display(), .0.errors().count(), .0.render(Some(crate::diag::Severity::Error)).trim_end())]
    Invalid(Report),
    #[error("this runtime was called as {name:?}, a handler {config} does not name: add `handlers: {{{name}: PROFILE}}` there, or call it as {RUNTIME_NAME}")]
    UnknownHandler { name: String, config: String },
}

/// The name `purple-oci` has when no handler is meant.
pub const RUNTIME_NAME: &str = "purple-oci";

/// What every container's effective policy must be at least as tight as.
#[derive(Debug, Clone)]
pub enum Floor {
    /// Bundles only the host writes (`purple run`'s own): no floor.
    Host,
    /// Purple's own: cloud metadata denied (no node configuration, or one
    /// without `floor`).
    Default,
    /// The operator's profile.
    Profile(Box<Policy>),
}

/// The node's configuration, profiles resolved.
#[derive(Debug, Clone)]
pub struct Node {
    /// The file it was read from; None: Purple's defaults.
    pub source: Option<PathBuf>,
    /// Where `io.purple.profile` names are looked up (before the built-ins).
    pub profile_dir: PathBuf,
    pub default_profile: Option<Box<Policy>>,
    pub floor: Floor,
    /// The `io.purple.*` annotations a bundle may carry.
    pub honoured: Vec<String>,
    /// containerd runtime handlers and their profiles.
    pub handlers: Vec<(String, Box<Policy>)>,
    pub retention: Retention,
}

impl Default for Node {
    /// Purple's defaults: every annotation honoured, the default floor.
    fn default() -> Self {
        Self {
            source: None,
            profile_dir: HOST_PROFILE_DIR.into(),
            default_profile: None,
            floor: Floor::Default,
            honoured: BUNDLE_ANNOTATIONS.iter().map(|s| s.to_string()).collect(),
            handlers: Vec::new(),
            retention: Retention::default(),
        }
    }
}

impl Node {
    /// For bundles the host itself wrote (`purple run`): no floor.
    pub fn host() -> Self {
        Self {
            floor: Floor::Host,
            ..Self::default()
        }
    }

    /// Reads the node configuration at `path`; a missing file at the default
    /// path is Purple's defaults, one the caller named is an error.
    pub fn load(path: &Path) -> Result<Self, NodeError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e)
                if e.kind() == std::io::ErrorKind::NotFound && path == Path::new(NODE_CONFIG) =>
            {
                return Ok(Self::default())
            }
            Err(source) => {
                return Err(NodeError::Io {
                    path: path.to_owned(),
                    source,
                })
            }
        };
        Self::parse(&text, path)
    }

    pub fn parse(text: &str, file: &Path) -> Result<Self, NodeError> {
        let mut d = Decoder::default();
        let node = match yaml::parse(text) {
            Ok(n) => Some(n),
            Err(e) => {
                d.error(e.pos, "", e.message, "fix the YAML syntax at this position");
                None
            }
        };
        let out = node.and_then(|n| decode(&mut d, &n, file));
        let mut report = Report {
            file: file.to_owned(),
            diagnostics: d.diagnostics,
        };
        report.diagnostics.sort_by_key(|x| (x.pos.line, x.pos.col));
        match out {
            Some(node) if !report.has_errors() => Ok(node),
            _ => Err(NodeError::Invalid(report)),
        }
    }

    /// The node as the runtime called `name` (its argv[0]'s file name) sees
    /// it: under a handler's name, the handler's profile is both the default
    /// and the floor (checked at least as tight as the node's when read).
    pub fn for_handler(self, name: &str) -> Result<Self, NodeError> {
        if name == RUNTIME_NAME {
            return Ok(self);
        }
        let Some((_, p)) = self.handlers.iter().find(|(h, _)| h == name) else {
            return Err(NodeError::UnknownHandler {
                name: name.escape_debug().to_string(),
                config: self.describe_source(),
            });
        };
        let p = p.clone();
        Ok(Self {
            default_profile: Some(p.clone()),
            floor: Floor::Profile(p),
            ..self
        })
    }

    pub fn honours(&self, key: &str) -> bool {
        self.honoured.iter().any(|k| k == key)
    }

    /// The floor in words, for errors.
    pub fn describe_floor(&self) -> String {
        let file = self
            .source
            .as_ref()
            .map_or(format!("no {NODE_CONFIG}"), |p| p.display().to_string());
        match &self.floor {
            Floor::Host => "none (a bundle of the host's own)".into(),
            Floor::Default => format!("Purple's default, cloud metadata denied ({file})"),
            Floor::Profile(p) => format!("profile {:?} ({file})", p.name),
        }
    }

    /// The configuration file, for errors about what it does not allow.
    pub fn describe_source(&self) -> String {
        self.source
            .as_ref()
            .map_or(format!("{NODE_CONFIG} (absent)"), |p| {
                p.display().to_string()
            })
    }
}

fn decode(d: &mut Decoder, n: &YamlNode, file: &Path) -> Option<Node> {
    let f = d.fields(n, "", &TOP)?;
    let mut node = Node {
        source: Some(file.to_owned()),
        ..Node::default()
    };
    if let Some(n) = f.get("profile_dir") {
        let dir = d.string(n, "profile_dir")?;
        if !Path::new(&dir).is_absolute() {
            d.error(
                n.pos,
                "profile_dir",
                format!("{dir:?} is not an absolute path"),
                format!("give an absolute directory, e.g. {HOST_PROFILE_DIR}"),
            );
        }
        node.profile_dir = dir.into();
    }
    if let Some(n) = f.get("annotations") {
        let keys = d.strings(n, "annotations");
        node.honoured = Vec::new();
        for (i, (key, pos)) in keys.into_iter().enumerate() {
            if BUNDLE_ANNOTATIONS.contains(&key.as_str()) {
                node.honoured.push(key);
            } else {
                d.error(
                    pos,
                    &format!("annotations[{i}]"),
                    format!("{key:?} is no annotation Purple reads from a bundle"),
                    format!("use some of: {}", BUNDLE_ANNOTATIONS.join(", ")),
                );
            }
        }
    }
    if let Some(n) = f.get("log_retention") {
        if let Some(r) = d.fields(n, "log_retention", &RETENTION) {
            if let Some(age) = r.get("max_age") {
                let path = r.path("max_age");
                if let Some(v) = d.unit(age, &path, crate::units::parse_duration) {
                    node.retention.max_age_seconds = v;
                }
            }
            if let Some(size) = r.get("max_total_size") {
                let path = r.path("max_total_size");
                if let Some(v) = d.unit(size, &path, crate::units::parse_size) {
                    node.retention.max_total_bytes = v;
                }
            }
        }
    }
    let ctx = Context {
        base: "/".into(),
        host_paths: false,
    };
    let profile = |d: &mut Decoder, field: &'static str| -> Option<(Policy, Pos)> {
        let n = f.get(field)?;
        let name = d.string(n, field)?;
        match profiles::resolve_for_annotation(&name, &node.profile_dir, &ctx) {
            Ok(l) => Some((l.policy, n.pos)),
            Err(e) => {
                d.error(
                    n.pos,
                    field,
                    e.to_string(),
                    format!(
                        "name a built-in profile (`purple profiles`) or a file of {}",
                        node.profile_dir.display()
                    ),
                );
                None
            }
        }
    };
    let floor = profile(d, "floor");
    let default = profile(d, "default_profile");
    if let Some((p, pos)) = &default {
        let (looser, floor_name) = match &floor {
            Some((f, _)) => (floor::policy(p, f), format!("{:?}", f.name)),
            None => (
                floor::network(
                    &translate::network_plan(&p.network),
                    &NetworkPlan::default(),
                )
                .map_err(|e| format!("network: {e}")),
                "(Purple's default, cloud metadata denied)".into(),
            ),
        };
        if let Err(why) = looser {
            d.error(
                *pos,
                "default_profile",
                format!(
                    "profile {:?} is looser than the floor {floor_name}: {why}",
                    p.name
                ),
                "name a default profile at least as tight as the floor, or lower the floor",
            );
        }
    }
    if let Some(n) = f.get("handlers") {
        let entries = match &n.value {
            crate::yaml::Value::Map(e) => e.clone(),
            _ => {
                d.error(
                    n.pos,
                    "handlers",
                    format!("expected a mapping, found {}", n.kind()),
                    "write `handler-name: profile` lines indented under it",
                );
                Vec::new()
            }
        };
        for (key, value) in entries {
            let path = format!("handlers.{}", key.name);
            let ok_name = key.name.starts_with("purple")
                && key
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c));
            if !ok_name || key.name == RUNTIME_NAME {
                d.error(
                    key.pos,
                    &path,
                    format!("{:?} is no handler name Purple can be called by", key.name),
                    format!(
                        "name it purple-SOMETHING (letters, digits, '-', '_'), not {RUNTIME_NAME}"
                    ),
                );
                continue;
            }
            let Some(name) = d.string(&value, &path) else {
                continue;
            };
            let p = match profiles::resolve_for_annotation(&name, &node.profile_dir, &ctx) {
                Ok(l) => l.policy,
                Err(e) => {
                    d.error(
                        value.pos,
                        &path,
                        e.to_string(),
                        "name a built-in profile or a file of profile_dir",
                    );
                    continue;
                }
            };
            if let Some((f, _)) = &floor {
                if let Err(why) = floor::policy(&p, f) {
                    d.error(
                        value.pos,
                        &path,
                        format!(
                            "profile {:?} is looser than the floor {:?}: {why}",
                            p.name, f.name
                        ),
                        "name a profile at least as tight as the floor",
                    );
                    continue;
                }
            }
            node.handlers.push((key.name.clone(), Box::new(p)));
        }
    }
    node.floor = match floor {
        Some((f, _)) => Floor::Profile(Box::new(f)),
        None => Floor::Default,
    };
    node.default_profile = default.map(|(p, _)| Box::new(p));
    Some(node)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Node, String> {
        Node::parse(text, Path::new("/test/runtime.yaml")).map_err(|e| e.to_string())
    }

    #[test]
    fn a_full_configuration_reads() {
        let n = parse(
            "default_profile: secure-agent\nfloor: secure-agent\nannotations: [io.purple.profile]\n",
        )
        .unwrap();
        assert!(matches!(&n.floor, Floor::Profile(p) if p.name == "secure-agent"));
        assert_eq!(n.default_profile.unwrap().name, "secure-agent");
        assert_eq!(n.honoured, ["io.purple.profile"]);
        let empty = parse("{}").unwrap();
        assert!(matches!(empty.floor, Floor::Default));
        assert_eq!(empty.honoured.len(), BUNDLE_ANNOTATIONS.len());
    }

    #[test]
    fn log_retention_reads_with_units_and_defaults() {
        assert_eq!(parse("{}").unwrap().retention, Retention::default());
        let n = parse("log_retention: { max_age: 7d, max_total_size: 200M }\n").unwrap();
        assert_eq!(
            n.retention,
            Retention {
                max_age_seconds: 7 * 86_400,
                max_total_bytes: 200 << 20,
            }
        );
        let e = parse("log_retention:\n  max_age: forever\n").unwrap_err();
        assert!(
            e.contains(":2:12") && e.contains("log_retention.max_age"),
            "{e}"
        );
        let e = parse("log_retention: { keep: 3 }\n").unwrap_err();
        assert!(e.contains("keep"), "{e}");
    }

    #[test]
    fn mistakes_are_positioned() {
        let e = parse("floor: secure-agent\nflor: x\n").unwrap_err();
        assert!(
            e.contains("runtime.yaml:2:1") && e.contains("did you mean `floor`"),
            "{e}"
        );
        let e = parse("annotations:\n  - io.purple.version\n").unwrap_err();
        assert!(e.contains(":2:5") && e.contains("io.purple.version"), "{e}");
        let e = parse("floor: ../etc/shadow\n").unwrap_err();
        assert!(
            e.contains(":1:8") && e.contains("not a profile name"),
            "{e}"
        );
        let e = parse("floor: production-secure\ndefault_profile: development\n").unwrap_err();
        assert!(
            e.contains(":2:18") && e.contains("looser than the floor"),
            "{e}"
        );
        let e = parse("profile_dir: policies\n").unwrap_err();
        assert!(e.contains("absolute"), "{e}");
        let e = parse("floor: [\n").unwrap_err();
        assert!(e.contains("YAML"), "{e}");
    }

    #[test]
    fn handlers_name_profiles_that_become_floor_and_default() {
        let n = parse("floor: secure-agent\nhandlers:\n  purple-secure: secure-agent\n").unwrap();
        let h = n.clone().for_handler("purple-secure").unwrap();
        assert!(matches!(&h.floor, Floor::Profile(p) if p.name == "secure-agent"));
        assert_eq!(h.default_profile.unwrap().name, "secure-agent");
        assert!(n
            .clone()
            .for_handler(RUNTIME_NAME)
            .unwrap()
            .default_profile
            .is_none());
        let e = n.for_handler("purple-other").unwrap_err().to_string();
        assert!(
            e.contains("purple-other") && e.contains("/test/runtime.yaml"),
            "{e}"
        );
        let e =
            parse("floor: production-secure\nhandlers:\n  purple-dev: development\n").unwrap_err();
        assert!(
            e.to_string().contains(":3:15") && e.to_string().contains("looser"),
            "{e}"
        );
        let e = parse("handlers:\n  ../x: secure-agent\n").unwrap_err();
        assert!(e.to_string().contains("no handler name"), "{e}");
    }

    #[test]
    fn only_the_default_path_may_be_missing() {
        assert!(Node::load(Path::new("/nonexistent/runtime.yaml")).is_err());
    }
}
