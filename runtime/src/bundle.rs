//! Reading a bundle's `config.json` and writing the effective one Purple hands
//! to libcontainer.
//!
//! The effective spec is the user's spec with paths made absolute (so it can
//! live in Purple's state directory) and a cgroup path filled in when the
//! bundle has none, so that every container has a predictable cgroup that
//! `delete --force` can find even after a `create` that was killed half-way.

use std::fs;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxIdMapping, Process, Spec};

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("cannot read bundle directory {path}: {source}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid {path}: {msg}")]
    Config { path: PathBuf, msg: String },
    #[error("cannot write effective config {path}: {msg}")]
    Write { path: PathBuf, msg: String },
}

/// Canonical bundle directory and its parsed spec.
pub struct Bundle {
    pub dir: PathBuf,
    pub spec: Spec,
    /// SHA-256 of `config.json` as read (bound into the audit log's first record).
    pub digest: String,
}

impl Bundle {
    /// Loads `dir/config.json` with an error that names the file and what is wrong.
    pub fn load(dir: &Path) -> Result<Self, BundleError> {
        let dir = fs::canonicalize(dir).map_err(|source| BundleError::Dir {
            path: dir.to_owned(),
            source,
        })?;
        let path = dir.join("config.json");
        let config = |msg: String| BundleError::Config {
            path: path.clone(),
            msg,
        };
        let text = fs::read_to_string(&path).map_err(|e| config(e.to_string()))?;
        let spec: Spec = serde_json::from_str(&text).map_err(|e| config(e.to_string()))?;
        if !spec.version().starts_with("1.") {
            return Err(config(format!(
                "ociVersion {:?} is not supported; use a 1.x version",
                spec.version()
            )));
        }
        let Some(root) = spec.root() else {
            return Err(config(
                "missing \"root\": set root.path to the rootfs directory".into(),
            ));
        };
        let rootfs = dir.join(root.path());
        if !rootfs.is_dir() {
            return Err(config(format!(
                "root.path {} is not a directory",
                rootfs.display()
            )));
        }
        check(&spec).map_err(config)?;
        let digest = crate::audit::digest(text.as_bytes());
        Ok(Self { dir, spec, digest })
    }

    /// The spec libcontainer runs, with bundle-relative paths made absolute and
    /// `cgroupsPath` defaulted to `default_cgroup` when empty.
    pub fn effective_spec(&self, default_cgroup: Option<&Path>) -> Spec {
        let mut spec = self.spec.clone();
        if let Some(mut root) = spec.root().clone() {
            let abs = fs::canonicalize(self.dir.join(root.path()))
                .unwrap_or_else(|_| self.dir.join(root.path()));
            root.set_path(abs);
            spec.set_root(Some(root));
        }
        if let Some(mounts) = spec.mounts().clone() {
            let mounts = mounts
                .into_iter()
                .map(|mut m| {
                    let rel = m.source().as_ref().filter(|s| s.is_relative()).cloned();
                    // Relative bind sources are relative to the bundle (OCI spec); other
                    // sources ("proc", "tmpfs") are names, not paths.
                    let is_bind = m
                        .typ()
                        .as_deref()
                        .is_none_or(|t| t == "bind" || t == "rbind")
                        || m.options()
                            .as_ref()
                            .is_some_and(|o| o.iter().any(|o| o == "bind" || o == "rbind"));
                    if let (Some(rel), true) = (rel, is_bind) {
                        m.set_source(Some(self.dir.join(rel)));
                    }
                    m
                })
                .collect();
            spec.set_mounts(Some(mounts));
        }
        if let (Some(cg), Some(mut linux)) = (default_cgroup, spec.linux().clone()) {
            if linux.cgroups_path().is_none() {
                linux.set_cgroups_path(Some(cg.to_owned()));
                spec.set_linux(Some(linux));
            }
        }
        spec
    }
}

/// Refuses, naming the field, what libcontainer 0.7 would choke on later:
/// its init calls `std::env::set_var` on every `process.env` entry (a panic
/// on an empty name or a NUL byte), indexes `process.args[0]`, and its exec
/// path unwraps `linux`. A panic in the container's init reaches the user
/// as "BrokenChannel"; runc refuses the same values up front.
pub fn check(spec: &Spec) -> Result<(), String> {
    if spec.linux().is_none() {
        return Err("missing \"linux\": a Linux container needs the section (at least {})".into());
    }
    let process = spec
        .process()
        .as_ref()
        .ok_or("missing \"process\": set process.args to the command the container runs")?;
    check_process(process, "process")?;
    for (field, value) in [
        ("hostname", spec.hostname()),
        ("domainname", spec.domainname()),
    ] {
        if let Some(v) = value {
            // HOST_NAME_MAX: sethostname(2) refuses longer names.
            if v.contains('\0') || v.len() > 64 {
                return Err(format!("{field} {v:?}: at most 64 bytes and no NUL byte"));
            }
        }
    }
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        let dest = m.destination();
        if !dest.is_absolute() || has_nul(dest) {
            return Err(format!(
                "mounts[{i}].destination {}: must be an absolute path inside the container (e.g. /data)",
                dest.display()
            ));
        }
        if m.source().as_deref().is_some_and(has_nul) {
            return Err(format!("mounts[{i}].source: contains a NUL byte"));
        }
    }
    if let Some(linux) = spec.linux() {
        for (field, maps) in [
            ("linux.uidMappings", linux.uid_mappings()),
            ("linux.gidMappings", linux.gid_mappings()),
        ] {
            for (i, m) in maps.iter().flatten().enumerate() {
                check_id_mapping(m).map_err(|why| format!("{field}[{i}]: {why}"))?;
            }
        }
    }
    Ok(())
}

/// The checks of [`check`] for one process (`process` of config.json, or
/// the process.json of `exec`); `field` names it in errors.
pub fn check_process(p: &Process, field: &str) -> Result<(), String> {
    let args = p.args().as_deref().unwrap_or_default();
    match args.first() {
        None => {
            return Err(format!(
                "{field}.args is empty: name the program to run (e.g. [\"/bin/sh\"])"
            ))
        }
        Some(a) if a.is_empty() => return Err(format!("{field}.args[0] is an empty program name")),
        Some(_) => {}
    }
    if let Some(i) = args.iter().position(|a| a.contains('\0')) {
        return Err(format!("{field}.args[{i}]: contains a NUL byte"));
    }
    for (i, e) in p.env().iter().flatten().enumerate() {
        check_env(e).map_err(|why| format!("{field}.env[{i}] {e:?}: {why}"))?;
    }
    if !p.cwd().is_absolute() || has_nul(p.cwd()) {
        return Err(format!(
            "{field}.cwd {}: must be an absolute path (e.g. /)",
            p.cwd().display()
        ));
    }
    let mut seen = Vec::new();
    for (i, r) in p.rlimits().iter().flatten().enumerate() {
        if r.soft() > r.hard() {
            return Err(format!(
                "{field}.rlimits[{i}] {}: soft {} is above hard {}",
                r.typ(),
                r.soft(),
                r.hard()
            ));
        }
        if seen.contains(&r.typ()) {
            return Err(format!("{field}.rlimits[{i}]: {} is set twice", r.typ()));
        }
        seen.push(r.typ());
    }
    Ok(())
}

/// One environment entry as runc accepts it: `NAME=VALUE`, NAME non-empty,
/// no NUL byte anywhere.
pub fn check_env(entry: &str) -> Result<(), &'static str> {
    match entry.split_once('=') {
        None => Err("invalid environment variable: use NAME=VALUE"),
        Some(("", _)) => Err("invalid environment variable: the name is empty"),
        Some(_) if entry.contains('\0') => Err("invalid environment variable: contains a NUL byte"),
        Some(_) => Ok(()),
    }
}

fn check_id_mapping(m: &LinuxIdMapping) -> Result<(), &'static str> {
    let end = |start: u32| start.checked_add(m.size());
    if m.size() == 0 {
        Err("size is 0: a mapping covers at least one id")
    } else if end(m.host_id()).is_none() || end(m.container_id()).is_none() {
        Err("hostID or containerID plus size is past 2^32")
    } else {
        Ok(())
    }
}

fn has_nul(p: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    p.as_os_str().as_bytes().contains(&0)
}

/// Writes `spec` as `dir/config.json`.
/// Writes `spec` as `dir/config.json`, the directory 0700 and the file 0600:
/// the spec holds the container's environment values.
pub fn write_spec(spec: &Spec, dir: &Path) -> Result<(), BundleError> {
    let path = dir.join("config.json");
    let write = |msg: String| BundleError::Write {
        path: path.clone(),
        msg,
    };
    purple_policy::hostfs::private_dirs(dir).map_err(|e| write(e.to_string()))?;
    let json = serde_json::to_vec(spec).map_err(|e| write(e.to_string()))?;
    purple_policy::hostfs::write_private(&path, &json).map_err(|e| write(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle_with(config: &str) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir(d.path().join("rootfs")).unwrap();
        fs::write(d.path().join("config.json"), config).unwrap();
        d
    }

    #[test]
    fn malformed_json_names_the_file() {
        let d = bundle_with("{ not json");
        let err = Bundle::load(d.path()).err().unwrap().to_string();
        assert!(err.contains("config.json"), "{err}");
    }

    #[test]
    fn missing_rootfs_is_refused() {
        let d = bundle_with(r#"{"ociVersion":"1.0.2","root":{"path":"nope"}}"#);
        let err = Bundle::load(d.path()).err().unwrap().to_string();
        assert!(err.contains("root.path"), "{err}");
    }

    #[test]
    fn effective_spec_is_absolute_and_has_a_cgroup() {
        let d = bundle_with(
            r#"{"ociVersion":"1.0.2","root":{"path":"rootfs"},"linux":{},
                "process":{"args":["/bin/true"],"cwd":"/","user":{"uid":0,"gid":0}},
                "mounts":[{"destination":"/data","source":"data","type":"bind","options":["rbind"]},
                          {"destination":"/proc","source":"proc","type":"proc"}]}"#,
        );
        let b = Bundle::load(d.path()).unwrap();
        let spec = b.effective_spec(Some(Path::new("/purple/x")));
        let dir = fs::canonicalize(d.path()).unwrap();
        assert_eq!(spec.root().as_ref().unwrap().path(), &dir.join("rootfs"));
        let mounts = spec.mounts().as_ref().unwrap();
        assert_eq!(mounts[0].source().as_ref().unwrap(), &dir.join("data"));
        assert_eq!(mounts[1].source().as_ref().unwrap(), Path::new("proc"));
        let linux = spec.linux().as_ref().unwrap();
        assert_eq!(
            linux.cgroups_path().as_deref(),
            Some(Path::new("/purple/x"))
        );
    }
}
