//! `filesystem`: binds of host paths (resolved the way the kernel will, and
//! refused when sensitive or writable by a sandbox), scratch space, the root.

use std::collections::HashSet;
use std::path::{Component, Path, PathBuf};

use super::{opt_bool, Context};
use crate::decode::{Decoder, Fields, Shape};
use crate::schema::*;
use crate::units;
use crate::yaml::{Node, Pos, Value};

pub(super) const FILESYSTEM: Shape = Shape {
    fields: &[
        "immutable_paths",
        "scratch_paths",
        "output_paths",
        "working_dir",
        "read_only_root",
        "scratch_size",
        "max_file_size",
    ],
    renamed: &[],
    inert: &[],
};

pub(super) const BIND: Shape = Shape {
    fields: &["host_path", "sandbox_path", "optional"],
    renamed: &[],
    inert: &[],
};

pub(super) const OUTPUT_BIND: Shape = Shape {
    fields: &["host_path", "sandbox_path", "optional", "max_size"],
    renamed: &[],
    inert: &[],
};

pub(super) const SCRATCH: Shape = Shape {
    fields: &["path", "size"],
    renamed: &[],
    inert: &[],
};

/// Host paths a policy may never bind: the path, anything under it, or any
/// directory above it (binding `/etc` would expose `/etc/shadow`).
const SENSITIVE: &[&str] = &[
    "/etc/shadow",
    "/etc/gshadow",
    "/etc/sudoers",
    "/etc/sudoers.d",
    "/etc/ssh",
    "/etc/ssl/private",
    "/root",
    "/boot",
    "/proc",
    "/sys",
    "/dev",
    "/run",
    "/var/lib/private",
    "/var/lib/containers",
    "/var/lib/containerd",
    "/var/log/purple",
];

/// Directories of secrets in home directories: refused at and under them.
const SECRET_DIRS: &[&str] = &[
    ".ssh",
    ".gnupg",
    ".aws",
    ".kube",
    ".docker",
    ".config/gcloud",
];

fn abs_sandbox_path(d: &mut Decoder, s: String, pos: Pos, path: &str) -> Option<String> {
    let p = Path::new(&s);
    let bad = if !p.is_absolute() {
        Some("must be an absolute path inside the sandbox")
    } else if p.components().any(|c| c == Component::ParentDir) {
        Some("must not contain `..`")
    } else if s == "/" {
        Some("cannot replace the sandbox's root")
    } else if ["/proc", "/sys", "/dev"]
        .iter()
        .any(|k| p.starts_with(k) && !p.starts_with("/dev/shm"))
    {
        Some("would hide the runtime's /proc, /sys or /dev")
    } else {
        None
    };
    match bad {
        Some(why) => {
            d.error(
                pos,
                path,
                format!("{s:?} {why}"),
                "use an absolute path such as /data",
            );
            None
        }
        None => Some(s),
    }
}

/// Host directories a writable bind may not be, hold or sit in: what root
/// runs or trusts (programs, libraries, configuration, cron, login scripts,
/// services, boot). A second layer behind [`resolve_host`]'s walk: an agent
/// that can write there owns the host.
const SYSTEM_DIRS: &[&str] = &[
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/usr",
    "/etc",
    "/boot",
    "/opt",
    "/var/spool/cron",
    "/var/lib/systemd",
];

/// Symbolic links followed while resolving one path, as the kernel allows.
const MAX_LINKS: usize = 40;

/// Resolves a host path the way the kernel will (symlinks included) and
/// refuses sensitive ones. Missing paths resolve through their longest
/// existing ancestor, so a symlink there cannot smuggle them elsewhere.
///
/// Every directory a name is looked up in must be one no sandbox can write:
/// a link planted there by an agent (its output directory, say) would turn a
/// later run's bind into a bind of whatever the agent chose, and a directory
/// the agent can write can gain such a link between this check and the mount.
fn resolve_host(raw: &str, ctx: &Context, writable: bool) -> Result<(PathBuf, bool), String> {
    let ids = crate::hostfs::SandboxIds::with(None);
    let mut todo: Vec<std::ffi::OsString> = Vec::new();
    let push = |todo: &mut Vec<std::ffi::OsString>, p: &Path| {
        for c in p.components().rev() {
            todo.push(c.as_os_str().to_owned());
        }
    };
    push(&mut todo, &ctx.base.join(raw));
    let mut full = PathBuf::from("/");
    let mut exists = true;
    let mut links = 0;
    while let Some(part) = todo.pop() {
        match part.to_str() {
            Some("/") => {
                full = PathBuf::from("/");
                continue;
            }
            Some(".") => continue,
            Some("..") if exists => {
                full.pop();
                continue;
            }
            Some("..") => {
                return Err(format!(
                    "{raw:?} climbs out of a directory that does not exist"
                ))
            }
            _ => {}
        }
        let next = full.join(&part);
        if !exists {
            full = next;
            continue;
        }
        let entry = match std::fs::symlink_metadata(&next) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                exists = false;
                full = next;
                continue;
            }
            Err(e) => return Err(format!("{raw:?}: cannot look at {}: {e}", next.display())),
        };
        let dir = std::fs::metadata(&full)
            .map_err(|e| format!("{raw:?}: cannot look at {}: {e}", full.display()))?;
        if let Some(why) = ids.writes(&dir, Some(std::os::unix::fs::MetadataExt::uid(&entry))) {
            return Err(format!(
                "{raw:?} passes through {}, which a sandbox can write ({why}): an agent \
                 could have placed or could swap {} (a link to a host directory, say)",
                full.display(),
                next.display()
            ));
        }
        if entry.file_type().is_symlink() {
            links += 1;
            if links > MAX_LINKS {
                return Err(format!("{raw:?}: too many symbolic links"));
            }
            let target = std::fs::read_link(&next)
                .map_err(|e| format!("{raw:?}: cannot read link {}: {e}", next.display()))?;
            push(&mut todo, &target);
            continue;
        }
        full = next;
    }
    if let Some(s) = SENSITIVE
        .iter()
        .find(|s| full.starts_with(s) || Path::new(s).starts_with(&full))
    {
        return Err(format!(
            "{raw:?} resolves to {} which exposes {s}, a sensitive host path",
            full.display()
        ));
    }
    if let Some(s) = SYSTEM_DIRS
        .iter()
        .find(|s| writable && (full.starts_with(s) || Path::new(s).starts_with(&full)))
    {
        return Err(format!(
            "{raw:?} resolves to {}: a writable bind there would let the agent change {s}, \
             which the host runs or trusts as root; bind it read-only or pick a directory of its own",
            full.display()
        ));
    }
    let text = full.to_string_lossy();
    if let Some(s) = SECRET_DIRS.iter().find(|s| {
        text.split('/')
            .collect::<Vec<_>>()
            .windows(s.split('/').count())
            .any(|w| w.join("/") == **s)
    }) {
        return Err(format!(
            "{raw:?} resolves to {} inside a {s} secrets directory",
            full.display()
        ));
    }
    Ok((full, exists))
}

/// A bind given on the command line (`HOST:SANDBOX[:ro]`), checked like the
/// policy's own; returns it and whether it is read-only.
pub fn cli_bind(spec: &str, ctx: &Context) -> Result<(Bind, bool), String> {
    let mut parts = spec.splitn(3, ':');
    let (host, sandbox, mode) = (parts.next(), parts.next(), parts.next());
    let (Some(host), Some(sandbox)) = (host.filter(|h| !h.is_empty()), sandbox) else {
        return Err(format!("{spec:?} is not HOST:SANDBOX[:ro]"));
    };
    let ro = match mode {
        None | Some("rw") => false,
        Some("ro") => true,
        Some(m) => return Err(format!("{spec:?}: mode {m:?} is neither ro nor rw")),
    };
    let mut d = Decoder::default();
    let sandbox_path = abs_sandbox_path(&mut d, sandbox.to_owned(), Pos::default(), "volume");
    let (host_path, exists) = resolve_host(host, ctx, !ro)?;
    match (sandbox_path, d.diagnostics.pop()) {
        (Some(sandbox_path), None) if exists => Ok((
            Bind {
                host_path,
                sandbox_path,
                optional: false,
                max_size: None,
            },
            ro,
        )),
        (_, Some(diag)) => Err(format!("{spec:?}: {}", diag.message)),
        _ => Err(format!("{spec:?}: {host} does not exist on this host")),
    }
}

/// A bind of the policy; `writable` ones (output paths) may be missing (they
/// are created) and may not touch the host's system directories.
fn bind(d: &mut Decoder, n: &Node, path: &str, ctx: &Context, writable: bool) -> Option<Bind> {
    let f = d.fields(n, path, if writable { &OUTPUT_BIND } else { &BIND })?;
    let max_size = match f.get("max_size") {
        Some(m) => Some(positive_size(d, m, &f.path("max_size"))?),
        None => None,
    };
    let host = d.required(&f, "host_path");
    let sandbox = d.required(&f, "sandbox_path");
    let optional = opt_bool(d, &f, "optional", false);
    let sandbox_path = sandbox.and_then(|s| {
        let p = f.path("sandbox_path");
        let v = d.string(s, &p)?;
        abs_sandbox_path(d, v, s.pos, &p)
    });
    let host = host?;
    let hpath = f.path("host_path");
    let raw = d.string(host, &hpath)?;
    if !ctx.host_paths {
        return Some(Bind {
            host_path: ctx.base.join(&raw),
            sandbox_path: sandbox_path?,
            optional,
            max_size,
        });
    }
    match resolve_host(&raw, ctx, writable) {
        Ok((host_path, exists)) => {
            if !writable && !exists && !optional {
                d.error(
                    host.pos,
                    &hpath,
                    format!("{raw:?} does not exist on this host"),
                    "create it, or add `optional: true` to skip the bind where it is missing",
                );
                return None;
            }
            Some(Bind {
                host_path,
                sandbox_path: sandbox_path?,
                optional,
                max_size,
            })
        }
        Err(why) => {
            d.error(
                host.pos,
                &hpath,
                why,
                "bind a narrower directory that holds only what the agent needs",
            );
            None
        }
    }
}

pub(super) fn filesystem(d: &mut Decoder, f: &Fields, ctx: &Context) -> Filesystem {
    let scratch_size = f
        .get("scratch_size")
        .and_then(|n| d.unit(n, &f.path("scratch_size"), units::parse_size))
        .unwrap_or(DEFAULT_SCRATCH_SIZE);
    let binds = |d: &mut Decoder, key: &'static str, writable: bool| {
        f.get(key)
            .map(|n| d.list(n, &f.path(key), |d, it, p| bind(d, it, p, ctx, writable)))
            .unwrap_or_default()
    };
    let immutable_paths = binds(d, "immutable_paths", false);
    let output_paths = binds(d, "output_paths", true);
    let scratch_paths = f
        .get("scratch_paths")
        .map(|n| {
            d.list(n, &f.path("scratch_paths"), |d, it, p| {
                let (path, pos, size) = match &it.value {
                    Value::Str(s) => (s.clone(), it.pos, scratch_size),
                    _ => {
                        let sf = d.fields(it, p, &SCRATCH)?;
                        let pn = d.required(&sf, "path")?;
                        let path = d.string(pn, &sf.path("path"))?;
                        let size = match sf.get("size") {
                            Some(s) => d.unit(s, &sf.path("size"), units::parse_size)?,
                            None => scratch_size,
                        };
                        (path, pn.pos, size)
                    }
                };
                let path = abs_sandbox_path(d, path, pos, p)?;
                Some(Scratch { path, size })
            })
        })
        .unwrap_or_default();
    let working_dir = match f.get("working_dir") {
        Some(n) => {
            let p = f.path("working_dir");
            d.string(n, &p).and_then(|w| {
                if w.starts_with('/') && !w.split('/').any(|c| c == "..") {
                    Some(w)
                } else {
                    d.error(
                        n.pos,
                        &p,
                        format!("{w:?} is not an absolute path"),
                        "write e.g. /work",
                    );
                    None
                }
            })
        }
        None => None,
    }
    .unwrap_or_else(|| "/".into());
    Filesystem {
        immutable_paths,
        scratch_paths,
        output_paths,
        working_dir,
        read_only_root: opt_bool(d, f, "read_only_root", true),
        scratch_size,
        max_file_size: f
            .get("max_file_size")
            .and_then(|n| positive_size(d, n, &f.path("max_file_size"))),
    }
}

/// A size limit; 0 would mean "no limit" to the kernel's quotas and
/// "nothing at all" to a reader, so it is refused.
fn positive_size(d: &mut Decoder, n: &Node, path: &str) -> Option<u64> {
    let size = d.unit(n, path, units::parse_size)?;
    if size == 0 {
        d.error(
            n.pos,
            path,
            "a size limit of 0",
            "write the largest size allowed, e.g. \"1G\"",
        );
        return None;
    }
    Some(size)
}

/// Two mounts at one sandbox path would silently shadow each other.
pub(super) fn check_sandbox_overlaps(d: &mut Decoder, fs: &Filesystem, pos: Pos) {
    let mut seen = HashSet::new();
    let all = fs
        .immutable_paths
        .iter()
        .chain(&fs.output_paths)
        .map(|b| b.sandbox_path.as_str())
        .chain(fs.scratch_paths.iter().map(|s| s.path.as_str()));
    for p in all {
        if !seen.insert(p) {
            d.error(
                pos,
                "filesystem",
                format!("{p} is mounted twice"),
                "give each sandbox_path / scratch path once",
            );
        }
    }
}
