//! Finding policies by name: `./policies`, then `/etc/purple/policies`, then
//! the profiles built into the binary (`policy-translator/profiles/*.yaml`).

use std::fs;
use std::path::{Path, PathBuf};

use crate::diag::Report;
use crate::load::{parse_policy, Context};
use crate::schema::Policy;

/// The shipped profiles, embedded so that `purple run --profile` works from
/// any directory.
pub const BUILT_IN: &[(&str, &str)] = &[
    ("ai-dev-safe", include_str!("../profiles/ai-dev-safe.yaml")),
    ("cicd-worker", include_str!("../profiles/cicd-worker.yaml")),
    (
        "code-analyst",
        include_str!("../profiles/code-analyst.yaml"),
    ),
    (
        "data-retriever",
        include_str!("../profiles/data-retriever.yaml"),
    ),
    ("development", include_str!("../profiles/development.yaml")),
    ("honeypot", include_str!("../profiles/honeypot.yaml")),
    (
        "production-secure",
        include_str!("../profiles/production-secure.yaml"),
    ),
    (
        "secure-agent",
        include_str!("../profiles/secure-agent.yaml"),
    ),
];

/// Directories searched before the built-in profiles, in order.
pub fn search_dirs() -> Vec<PathBuf> {
    vec![
        PathBuf::from("policies"),
        PathBuf::from("/etc/purple/policies"),
    ]
}

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read policy {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no profile named {name:?} (searched {searched} and the built-in profiles); `purple profiles` lists them")]
    NotFound { name: String, searched: String },
    #[error("{0}")]
    Invalid(Report),
    #[error("{name:?} is not a profile name: give the name of a built-in profile or of a file in {HOST_PROFILE_DIR} (letters, digits, '-', '_', '.'), not a path")]
    NotAName { name: String },
    #[error("profile {name:?} ({}) has {errors} error(s): run `purple policy check {}` on the host", file.display(), file.display())]
    Unusable {
        name: String,
        errors: usize,
        file: PathBuf,
    },
}

/// Where a policy's text came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    File(PathBuf),
    BuiltIn,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::File(p) => write!(f, "{}", p.display()),
            Origin::BuiltIn => f.write_str("built-in"),
        }
    }
}

/// A policy read and checked, with its warnings.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub policy: Policy,
    pub origin: Origin,
    /// The text it was read from, comments and all.
    pub text: String,
    pub warnings: Report,
}

/// Whether an argument names a file rather than a profile.
fn is_path(s: &str) -> bool {
    s.contains('/') || s.ends_with(".yaml") || s.ends_with(".yml")
}

fn read(path: &Path) -> Result<String, PolicyError> {
    fs::read_to_string(path).map_err(|source| PolicyError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Loads a policy file given by its path: any `name` goes, as the path
/// already says which file is meant.
pub fn load_file(path: &Path, ctx: &Context) -> Result<Loaded, PolicyError> {
    let text = read(path)?;
    check(&text, path, None, Origin::File(path.to_owned()), ctx)
}

/// Loads the file a profile name was found as: its `name` must be that name,
/// or `--profile NAME` would run a policy that calls itself something else.
fn load_named(path: &Path, name: &str, ctx: &Context) -> Result<Loaded, PolicyError> {
    let text = read(path)?;
    check(&text, path, Some(name), Origin::File(path.to_owned()), ctx)
}

fn check(
    text: &str,
    file: &Path,
    expected: Option<&str>,
    origin: Origin,
    ctx: &Context,
) -> Result<Loaded, PolicyError> {
    let (policy, mut report) = parse_policy(text, file, ctx).map_err(PolicyError::Invalid)?;
    if let Some(stem) = expected {
        if policy.name != stem {
            report.diagnostics.push(crate::diag::Diagnostic {
                severity: crate::diag::Severity::Error,
                pos: crate::yaml::Pos { line: 1, col: 1 },
                path: "name".into(),
                message: format!(
                    "name {:?} does not match the file name {stem:?}",
                    policy.name
                ),
                fix: format!(
                    "rename the file to {}.yaml or set `name: {stem}`",
                    policy.name
                ),
            });
            return Err(PolicyError::Invalid(report));
        }
    }
    Ok(Loaded {
        policy,
        origin,
        text: text.to_owned(),
        warnings: report,
    })
}

/// Finds a profile by name, or loads a path.
pub fn resolve(name_or_path: &str, ctx: &Context) -> Result<Loaded, PolicyError> {
    if is_path(name_or_path) {
        return load_file(Path::new(name_or_path), ctx);
    }
    for dir in search_dirs() {
        let path = dir.join(format!("{name_or_path}.yaml"));
        if path.exists() {
            return load_named(&path, name_or_path, ctx);
        }
    }
    match BUILT_IN.iter().find(|(n, _)| *n == name_or_path) {
        Some((name, text)) => check(
            text,
            Path::new(&format!("<built-in>/{name}.yaml")),
            Some(name),
            Origin::BuiltIn,
            ctx,
        ),
        None => Err(PolicyError::NotFound {
            name: name_or_path.to_owned(),
            searched: search_dirs()
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// Directories a bundle annotation may name profiles from: the host's, not
/// the caller's working directory (an engine's is anyone's guess).
pub const HOST_PROFILE_DIR: &str = "/etc/purple/policies";

/// Finds the profile a bundle's `io.purple.profile` names. Its author is not
/// the host: only a profile name is accepted (built-in, or a file of the
/// host's profile directory `dir`, [`HOST_PROFILE_DIR`] unless the node's
/// configuration says otherwise), and a profile that does not load is
/// reported by name and count only, so no file's text reaches the author.
pub fn resolve_for_annotation(
    name: &str,
    dir: &Path,
    ctx: &Context,
) -> Result<Loaded, PolicyError> {
    let plain = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && !name.starts_with('.');
    if !plain || is_path(name) {
        return Err(PolicyError::NotAName {
            name: name.escape_debug().to_string(),
        });
    }
    let path = dir.join(format!("{name}.yaml"));
    let loaded = if path.exists() {
        load_file(&path, ctx)
    } else {
        match BUILT_IN.iter().find(|(n, _)| *n == name) {
            Some((_, text)) => check(
                text,
                Path::new(&format!("<built-in>/{name}.yaml")),
                Some(name),
                Origin::BuiltIn,
                ctx,
            ),
            None => {
                return Err(PolicyError::NotFound {
                    name: name.to_owned(),
                    searched: dir.display().to_string(),
                })
            }
        }
    };
    loaded.map_err(|e| match e {
        PolicyError::Invalid(report) => PolicyError::Unusable {
            name: name.to_owned(),
            errors: report.errors().count(),
            file: report.file,
        },
        other => other,
    })
}

/// Every profile name visible from here, first hit winning, in name order.
pub fn names() -> Vec<String> {
    let mut names: Vec<String> = BUILT_IN.iter().map(|(n, _)| n.to_string()).collect();
    for dir in search_dirs() {
        if let Ok(entries) = fs::read_dir(&dir) {
            for e in entries.flatten() {
                let p = e.path();
                if p.extension().is_some_and(|x| x == "yaml") {
                    if let Some(stem) = p.file_stem() {
                        names.push(stem.to_string_lossy().into_owned());
                    }
                }
            }
        }
    }
    names.sort();
    names.dedup();
    names
}
