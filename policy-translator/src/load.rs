//! Reading a policy file: YAML → [`Policy`] with every field checked, host
//! paths resolved (symlinks first, then the sensitive-path rules), and all
//! problems reported together.

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::path::{Component, Path, PathBuf};

use crate::decode::{join, Decoder, Fields, Inert, Renamed, Shape};
use crate::diag::Report;
use crate::families;
use crate::plan::{Cidr, Mode, PortRange};
use crate::schema::*;
use crate::supervision::Alerts;
use crate::units;
use crate::yaml::{self, Node, Pos, Value};

/// Rules per destination in the kernel map hold at most this many port ranges.
pub const MAX_PORT_RANGES: usize = 8;

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
    ],
    renamed: &[],
    inert: &[
        Inert {
            key: "ai_policy",
            why: "Purple does not meter LLM tokens or costs; limit which APIs an agent reaches with `network.allowed_domains`",
        },
        Inert {
            key: "ebpf_monitoring",
            why: "Purple's eBPF enforcement and audit trail are always on",
        },
    ],
};
const FILESYSTEM: Shape = Shape {
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
const BIND: Shape = Shape {
    fields: &["host_path", "sandbox_path", "optional"],
    renamed: &[],
    inert: &[],
};
const OUTPUT_BIND: Shape = Shape {
    fields: &["host_path", "sandbox_path", "optional", "max_size"],
    renamed: &[],
    inert: &[],
};
const SCRATCH: Shape = Shape {
    fields: &["path", "size"],
    renamed: &[],
    inert: &[],
};
const SYSCALLS: Shape = Shape {
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
const RULE: Shape = Shape {
    fields: &["syscall", "action", "conditions"],
    renamed: &[],
    inert: &[],
};
const CONDITION: Shape = Shape {
    fields: &["arg", "op", "value", "mask"],
    renamed: &[],
    inert: &[],
};
const RESOURCES: Shape = Shape {
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
const CAPABILITIES: Shape = Shape {
    fields: &["default_drop", "add", "drop", "no_new_privileges"],
    renamed: &[],
    inert: &[],
};
const NETWORK: Shape = Shape {
    fields: &[
        "isolated",
        "namespace",
        "mode",
        "blocked_ips",
        "allowed_ips",
        "allow_outgoing",
        "allow_incoming",
        "allowed_domains",
        "blocked_domains",
        "dns_servers",
        "allow_metadata",
        "dns_rebinding",
    ],
    renamed: &[
        Renamed {
            old: "allowed_outgoing_ports",
            new: "allow_outgoing",
        },
        Renamed {
            old: "allowed_incoming_ports",
            new: "allow_incoming",
        },
        Renamed {
            old: "blocked_ips_v4",
            new: "blocked_ips",
        },
    ],
    inert: &[],
};
const AUDIT: Shape = Shape {
    fields: &["enabled", "log_path", "record", "alerts"],
    renamed: &[],
    inert: &[Inert {
        key: "detail_level",
        why: "every violation is always recorded; ask for more with `record: [network.allowed]`",
    }],
};
const ALERTS: Shape = Shape {
    fields: &["command", "unix_socket", "http"],
    renamed: &[],
    inert: &[],
};
const USER: Shape = Shape {
    fields: &["uid", "gid", "additional_gids", "namespace"],
    renamed: &[],
    inert: &[],
};
const USER_NAMESPACE: Shape = Shape {
    fields: &["enabled", "host_id", "size"],
    renamed: &[],
    inert: &[],
};

/// System calls libcontainer makes between installing the filter and exec'ing
/// the agent (start handshake, environment check, exec): a filter that
/// refuses them keeps every container from starting.
pub const HANDSHAKE: &[&str] = &[
    "accept4",
    "read",
    "write",
    "sendmsg",
    "close",
    "statx",
    "newfstatat",
    "execve",
];

/// Record kinds a policy may ask for beyond violations.
pub const OPTIONAL_RECORDS: &[&str] = &["network.allowed"];

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
    let audit = section(d, &f, "audit", &AUDIT, audit);
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

fn check_name(d: &mut Decoder, name: &str, pos: Pos, path: &str) -> Option<String> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
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

fn opt_bool(d: &mut Decoder, f: &Fields, key: &'static str, default: bool) -> bool {
    f.get(key)
        .and_then(|n| d.bool(n, &f.path(key)))
        .unwrap_or(default)
}

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

fn filesystem(d: &mut Decoder, f: &Fields, ctx: &Context) -> Filesystem {
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
fn check_sandbox_overlaps(d: &mut Decoder, fs: &Filesystem, pos: Pos) {
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

fn keyword<T: Copy>(d: &mut Decoder, n: &Node, path: &str, options: &[(&str, T)]) -> Option<T> {
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

fn syscalls(d: &mut Decoder, f: &Fields) -> Syscalls {
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
        let missing: Vec<&str> = HANDSHAKE
            .iter()
            .filter(|h| !allow.iter().any(|(s, _)| s == *h))
            .copied()
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
            .filter(|m| m != name && HANDSHAKE.contains(m))
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
        if HANDSHAKE.contains(&name.as_str()) {
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

fn resources(d: &mut Decoder, f: &Fields) -> Resources {
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

fn capabilities(d: &mut Decoder, f: &Fields) -> Capabilities {
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

fn domain(s: &str) -> Result<String, String> {
    let name = s.trim().trim_end_matches('.').to_ascii_lowercase();
    let bare = name.strip_prefix("*.").unwrap_or(&name);
    let ok = bare.contains('.')
        && bare.len() <= 253
        && bare.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        });
    if ok {
        Ok(name)
    } else {
        Err(format!("{s:?} is not a domain name or *.wildcard"))
    }
}

/// Splits the complement of `allowed` into ranges: the ports a deny rule covers.
/// Port 0 is a port like any other (TCP and UDP can be sent to it), so the
/// complement starts there.
pub fn complement(allowed: &[PortRange]) -> Vec<PortRange> {
    let mut out = Vec::new();
    let mut next: u32 = 0;
    for p in allowed {
        if u32::from(p.first) > next {
            out.push(PortRange {
                first: next as u16,
                last: p.first - 1,
            });
        }
        next = u32::from(p.last) + 1;
    }
    if next <= 65535 {
        out.push(PortRange {
            first: next as u16,
            last: 65535,
        });
    }
    out
}

/// Merges adjacent and overlapping ranges, so `80, 81, 82` costs one slot.
pub fn merge_ports(mut ports: Vec<PortRange>) -> Vec<PortRange> {
    ports.sort_by_key(|p| p.first);
    let mut out: Vec<PortRange> = Vec::new();
    for p in ports {
        match out.last_mut() {
            Some(last) if u32::from(p.first) <= u32::from(last.last) + 1 => {
                last.last = last.last.max(p.last)
            }
            _ => out.push(p),
        }
    }
    out
}

fn network(d: &mut Decoder, f: &Fields) -> Network {
    let cidrs = |d: &mut Decoder, key: &'static str| {
        f.get(key)
            .map(|n| {
                d.parsed(
                    n,
                    &f.path(key),
                    "write an address (1.1.1.1, fd00::1) or a CIDR (10.0.0.0/8)",
                    |s| s.parse::<Cidr>(),
                )
            })
            .unwrap_or_default()
    };
    let ports = |d: &mut Decoder, key: &'static str| {
        let list = f
            .get(key)
            .map(|n| {
                d.parsed(
                    n,
                    &f.path(key),
                    "write a port (443) or a range (8000-8100)",
                    |s| s.parse::<PortRange>(),
                )
            })
            .unwrap_or_default();
        let merged = merge_ports(list);
        if merged.len() > MAX_PORT_RANGES {
            d.error(
                f.get(key).map_or(f.pos, |n| n.pos),
                &f.path(key),
                format!(
                    "{} separate port ranges; the kernel rule holds at most {MAX_PORT_RANGES}",
                    merged.len()
                ),
                "merge neighbouring ports into ranges such as 8000-8100",
            );
        }
        merged
    };
    let domains = |d: &mut Decoder, key: &'static str| {
        f.get(key)
            .map(|n| {
                d.parsed(
                    n,
                    &f.path(key),
                    "write a name such as api.example.com or *.example.com",
                    domain,
                )
            })
            .unwrap_or_default()
    };
    let blocked_ips = cidrs(d, "blocked_ips");
    let allowed_ips = cidrs(d, "allowed_ips");
    for c in &blocked_ips {
        if allowed_ips.contains(c) {
            d.error(
                f.pos,
                &f.path("blocked_ips"),
                format!("{c} is both blocked and allowed"),
                "remove it from one list",
            );
        }
    }
    let mode = f
        .get("mode")
        .and_then(|n| {
            keyword(
                d,
                n,
                &f.path("mode"),
                &[
                    ("deny-list", Mode::DenyList),
                    ("allow-list", Mode::AllowList),
                ],
            )
        })
        .unwrap_or_default();
    let allowed_domains = domains(d, "allowed_domains");
    if mode == Mode::DenyList && !allowed_domains.is_empty() {
        if let Some(n) = f.get("allowed_domains") {
            d.warn(
                n.pos,
                &f.path("allowed_domains"),
                "in deny-list mode every name is reachable anyway, and `blocked_ips` wins over their addresses: these only refuse answers pointing into private ranges (`dns_rebinding`)",
                "set `mode: allow-list` to allow only these names",
            );
        }
    }
    let allow_outgoing = ports(d, "allow_outgoing");
    if !allow_outgoing.is_empty() {
        let pos = f.get("allow_outgoing").map_or(f.pos, |n| n.pos);
        if mode == Mode::DenyList && complement(&allow_outgoing).len() > MAX_PORT_RANGES {
            d.error(
                pos,
                &f.path("allow_outgoing"),
                format!("the ports outside these ranges form more than {MAX_PORT_RANGES} ranges, which the kernel rule cannot hold"),
                "merge neighbouring ports into ranges, or use `mode: allow-list`",
            );
        }
        let anywhere = |c: &Cidr| c.prefix == 0;
        if blocked_ips.iter().chain(&allowed_ips).any(anywhere) {
            d.error(
                pos,
                &f.path("allow_outgoing"),
                "a rule for 0.0.0.0/0 or ::/0 leaves no room for the port rule allow_outgoing creates",
                "use `mode: allow-list` instead of a rule for everything",
            );
        }
    }
    if let (Mode::AllowList, true, Some(n)) =
        (mode, allowed_domains.is_empty(), f.get("dns_servers"))
    {
        d.warn(
            n.pos,
            &f.path("dns_servers"),
            "in allow-list mode with no `allowed_domains`, Purple's resolver answers no name at all",
            "list the names the agent may resolve in `allowed_domains`",
        );
    }
    let allow_incoming = ports(d, "allow_incoming");
    if let (Some(n), false) = (f.get("allow_incoming"), allow_incoming.is_empty()) {
        d.warn(
            n.pos,
            &f.path("allow_incoming"),
            "not enforced: Purple filters what the agent sends, not what reaches it",
            "use `isolated: true` (nothing can connect in) or the engine's port publishing",
        );
    }
    let dns_servers = f
        .get("dns_servers")
        .map(|n| {
            d.parsed(
                n,
                &f.path("dns_servers"),
                "write an IP address such as 10.0.0.53",
                |s| s.trim().parse::<IpAddr>(),
            )
        })
        .unwrap_or_default();
    let isolated = opt_bool(d, f, "isolated", false);
    let namespace = f
        .get("namespace")
        .and_then(|n| {
            keyword(
                d,
                n,
                &f.path("namespace"),
                &[
                    ("private", NetNamespace::Private),
                    ("host", NetNamespace::Host),
                ],
            )
        })
        .unwrap_or_default();
    if let (NetNamespace::Host, Some(n)) = (namespace, f.get("namespace")) {
        if isolated {
            d.error(
                n.pos,
                &f.path("namespace"),
                "`namespace: host` shares the caller's network, `isolated: true` asks for none",
                "remove one of them",
            );
        } else {
            d.warn(
                n.pos,
                &f.path("namespace"),
                "the sandbox shares the caller's network namespace: its interfaces, routes and sockets are visible, loopback is judged by the rules and abstract unix sockets are scoped, but nothing else about the namespace is private",
                "leave `namespace` out: the sandbox gets a namespace of its own with user-mode egress",
            );
        }
    }
    Network {
        isolated,
        namespace,
        mode,
        blocked_ips,
        allowed_ips,
        allow_outgoing,
        allow_incoming,
        allowed_domains,
        blocked_domains: domains(d, "blocked_domains"),
        dns_servers,
        allow_metadata: opt_bool(d, f, "allow_metadata", false),
        allow_rebinding: f
            .get("dns_rebinding")
            .and_then(|n| {
                keyword(
                    d,
                    n,
                    &f.path("dns_rebinding"),
                    &[("deny", false), ("allow", true)],
                )
            })
            .unwrap_or(false),
    }
}

fn absolute(d: &mut Decoder, n: &Node, path: &str) -> Option<PathBuf> {
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

fn audit(d: &mut Decoder, f: &Fields) -> Audit {
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
            Some(Alerts { command, unix_socket, http })
        })
        .unwrap_or_default();
    Audit {
        log_path: f
            .get("log_path")
            .and_then(|n| absolute(d, n, &f.path("log_path"))),
        record,
        alerts,
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

fn user(d: &mut Decoder, f: &Fields) -> User {
    let namespace = user_namespace(d, f);
    let mut ids = Vec::new();
    for key in ["uid", "gid"] {
        if let Some(n) = f.get(key) {
            let path = f.path(key);
            if let Some(v) = d.int(n, &path, 0, u32::MAX as u64 - 1) {
                ids.push((key, v as u32, n.pos, path));
            }
        }
    }
    let additional_gids: Vec<u32> = f
        .get("additional_gids")
        .map(|n| {
            d.list(n, &f.path("additional_gids"), |d, it, p| {
                let v = d.int(it, p, 0, u32::MAX as u64 - 1)? as u32;
                ids.push(("additional_gids", v, it.pos, p.to_owned()));
                Some(v)
            })
        })
        .unwrap_or_default();
    if let Some(map) = namespace {
        for (_, id, pos, path) in ids.iter().filter(|(_, id, ..)| map.host(*id).is_none()) {
            d.error(
                *pos,
                path,
                format!(
                    "id {id} is outside the sandbox's user namespace (ids 0 to {})",
                    map.size - 1
                ),
                format!("use an id below {} or raise user.namespace.size", map.size),
            );
        }
    }
    let id = |key| ids.iter().find(|(k, ..)| *k == key).map_or(0, |i| i.1);
    User {
        uid: id("uid"),
        gid: id("gid"),
        additional_gids,
        namespace,
    }
}

/// `user.namespace`: on by default, so that root in the sandbox is nobody on
/// the host.
fn user_namespace(d: &mut Decoder, f: &Fields) -> Option<IdMap> {
    let Some(n) = f.get("namespace") else {
        return Some(IdMap::DEFAULT);
    };
    let path = f.path("namespace");
    let ns = d.fields(n, &path, &USER_NAMESPACE)?;
    if let Some(e) = ns.get("enabled") {
        if d.bool(e, &ns.path("enabled")) == Some(false) {
            d.warn(
                e.pos,
                &ns.path("enabled"),
                "without a user namespace, root in the sandbox is root on the host",
                "remove `enabled: false` unless the agent must own files as host root",
            );
            return None;
        }
    }
    let host_id = match ns.get("host_id") {
        Some(h) => {
            let p = ns.path("host_id");
            let v = d.int(h, &p, 0, u32::MAX as u64 - 1)? as u32;
            if v == 0 {
                d.error(
                    h.pos,
                    &p,
                    "host id 0 makes root in the sandbox root on the host",
                    "map the sandbox onto unused host ids, e.g. host_id: 100000",
                );
            }
            v
        }
        None => IdMap::DEFAULT.host_id,
    };
    let size = match ns.get("size") {
        Some(s) => {
            let p = ns.path("size");
            let v = d.int(s, &p, 1, u32::MAX as u64)? as u32;
            // Host id 4294967295 is (uid_t)-1, "no id", and cannot be mapped.
            if host_id as u64 + v as u64 > u32::MAX as u64 {
                d.error(
                    s.pos,
                    &p,
                    format!("host ids {host_id} + {v} run past the last host id"),
                    format!("use a size of at most {}", u32::MAX - host_id),
                );
                return None;
            }
            v
        }
        None => IdMap::DEFAULT.size.min(u32::MAX - host_id),
    };
    Some(IdMap { host_id, size })
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

    #[test]
    fn complement_covers_everything_else() {
        let c = complement(&[
            PortRange {
                first: 53,
                last: 53,
            },
            PortRange {
                first: 80,
                last: 80,
            },
            PortRange {
                first: 443,
                last: 443,
            },
        ]);
        let s: Vec<String> = c.iter().map(|p| p.to_string()).collect();
        assert_eq!(s, ["0-52", "54-79", "81-442", "444-65535"]);
        assert_eq!(
            complement(&[PortRange {
                first: 0,
                last: 65535
            }]),
            vec![]
        );
        let from_1 = complement(&[PortRange {
            first: 1,
            last: 65535,
        }]);
        assert_eq!(from_1, vec![PortRange { first: 0, last: 0 }]);
    }
}
