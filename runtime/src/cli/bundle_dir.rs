//! Writing a translated bundle: the side effects of `purple translate` and
//! `purple run`, kept out of the policy crate (which only computes the spec
//! and the files' text). Host root does this in directories a sandbox may
//! have written, so nothing here follows a link: every path is opened
//! component by component (`hostfs`) and changed through its descriptor.

use std::fs::{self, File};
use std::io::Write as _;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;
use purple_policy::hostfs::{self, SandboxIds, Scope};
use purple_policy::schema::Policy;
use purple_policy::translate;
use purple_policy::userns::{self, HostIds, Unreachable};

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Unreachable(#[from] Unreachable),
    #[error(
        "bind source {path} lies below {under}, which a sandbox can write ({why}): an agent \
         could swap what is there for a link to any host directory\n    fix: bind a directory \
         that no sandbox owns, or copy what you need out of the agent's output first"
    )]
    SandboxWritable {
        path: PathBuf,
        under: PathBuf,
        why: String,
    },
}

fn write_err(path: &Path) -> impl FnOnce(std::io::Error) -> BundleError + '_ {
    move |source| BundleError::Write {
        path: path.to_owned(),
        source,
    }
}

/// Creates what the mounts need: missing output directories on the host and,
/// in a root filesystem the bundle owns (a relative `root.path`), every mount
/// point, so that a read-only root needs no writes at run time. Host root does
/// this in directories a sandbox may have written, so nothing here follows a
/// link: every path is opened component by component (`hostfs`) and changed
/// through its descriptor.
fn prepare(p: &Policy, spec: &Spec, bundle: &Path, dir: &File) -> Result<(), BundleError> {
    if let Some(map) = p.user.namespace {
        // Checked before anything is created, so a refusal leaves nothing.
        let root = HostIds::root(&map);
        let rootfs = spec.root().as_ref().map(|r| bundle.join(r.path()));
        let sources = spec
            .mounts()
            .iter()
            .flatten()
            .filter(|m| m.typ().as_deref() == Some("bind"))
            .filter_map(|m| m.source().as_ref().map(|s| bundle.join(s)));
        for path in rootfs.into_iter().chain(sources) {
            userns::check_reachable(&path, &root)?;
        }
    }
    // The loader refused binds below sandbox-writable directories of the
    // default range; the policy's own range is known only now.
    let ids = SandboxIds::with(p.user.namespace);
    for b in p
        .filesystem
        .immutable_paths
        .iter()
        .chain(&p.filesystem.output_paths)
    {
        if let Some((under, why)) = ids.writable_ancestor(&b.host_path) {
            return Err(BundleError::SandboxWritable {
                path: b.host_path.clone(),
                under,
                why,
            });
        }
    }
    let agent = HostIds::of(&p.user);
    for b in &p.filesystem.output_paths {
        let out = hostfs::mkdirs(&b.host_path, 0o755).map_err(write_err(&b.host_path))?;
        if let Some(ids) = &agent {
            userns::give(&out, ids).map_err(write_err(&b.host_path))?;
        }
    }
    let Some(root) = spec.root().as_ref().map(|r| r.path()) else {
        return Ok(());
    };
    let owned = root.is_relative();
    let rootfs = if owned {
        let rootfs = hostfs::mkdirs_beneath(dir, root, 0o755).map_err(write_err(root))?;
        if let (Some(map), false) = (p.user.namespace, p.filesystem.read_only_root) {
            // A writable root is written by sandbox root, a stranger to host root.
            userns::give(&rootfs, &HostIds::root(&map)).map_err(write_err(root))?;
        }
        merged_usr_links(spec, &rootfs, Path::new("/")).map_err(write_err(root))?;
        rootfs
    } else {
        hostfs::open_dir(root).map_err(write_err(root))?
    };
    // Mount points are made here, by host root: a read-only root cannot get
    // them at run time, nor can sandbox root in a root host root owns. Like
    // runc, the working directory too.
    let mut targets = vec![(PathBuf::from(&p.filesystem.working_dir), false)];
    if owned {
        targets.push((PathBuf::from("/etc"), false));
    }
    for m in spec.mounts().iter().flatten() {
        let is_file = m.typ().as_deref() == Some("bind")
            && m.source()
                .as_ref()
                .is_some_and(|s| bundle.join(s).is_file());
        targets.push((m.destination().clone(), is_file));
    }
    for (target, is_file) in targets {
        make_in_root(&rootfs, &target, is_file).map_err(write_err(&target))?;
    }
    Ok(())
}

/// The top-level directories a merged-/usr host (Debian 12, Fedora) makes
/// links into /usr.
const MERGED_USR: &[&str] = &["bin", "sbin", "lib", "lib64", "lib32", "libx32"];

/// On a merged-/usr host, `/lib64/ld-linux-x86-64.so.2` is only reachable
/// through the `/lib64 -> usr/lib64` link: a root that gets `/usr` bound but
/// no such link makes every dynamic program fail with ENOENT (exit 255, no
/// message). When `/usr` is bound from `host`'s /usr, the root gets the
/// host's links for the directories no mount covers.
fn merged_usr_links(spec: &Spec, rootfs: &File, host: &Path) -> std::io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let mounts: Vec<_> = spec.mounts().iter().flatten().collect();
    let usr_bound = mounts.iter().any(|m| {
        m.destination() == Path::new("/usr")
            && m.source()
                .as_deref()
                .is_some_and(|s| fs::canonicalize(s).is_ok_and(|s| s == host.join("usr")))
    });
    if !usr_bound {
        return Ok(());
    }
    for name in MERGED_USR {
        let Ok(target) = fs::read_link(host.join(name)) else {
            continue;
        };
        let into_usr = target
            .strip_prefix("/")
            .unwrap_or(&target)
            .starts_with("usr");
        let covered = mounts
            .iter()
            .any(|m| m.destination().starts_with(Path::new("/").join(name)));
        if !into_usr || covered {
            continue;
        }
        let c = |p: &Path| CString::new(p.as_os_str().as_bytes()).map_err(std::io::Error::other);
        let (target, link) = (c(&target)?, c(Path::new(name))?);
        // Made beside whatever is there, never through it: EEXIST keeps it.
        // SAFETY: both strings are NUL-terminated and live across the call.
        if unsafe { libc::symlinkat(target.as_ptr(), rootfs.as_raw_fd(), link.as_ptr()) } != 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() != std::io::ErrorKind::AlreadyExists {
                return Err(err);
            }
        }
    }
    Ok(())
}

/// Creates `target` (a file or a directory) and its missing parents under
/// `rootfs`, stopping at a symbolic link or a file on the way: the runtime
/// resolves those inside the root, where a link cannot lead to the host.
fn make_in_root(rootfs: &File, target: &Path, is_file: bool) -> std::io::Result<()> {
    let parts: Vec<_> = target
        .components()
        .filter(|c| matches!(c, std::path::Component::Normal(_)))
        .collect();
    let mut cur = rootfs.try_clone()?;
    for (i, part) in parts.iter().enumerate() {
        let name = Path::new(part.as_os_str());
        let last = i + 1 == parts.len();
        let dir = libc::O_RDONLY | libc::O_DIRECTORY;
        match hostfs::openat2(cur.as_raw_fd(), name, dir, 0, Scope::Beneath) {
            Ok(fd) => {
                cur = File::from(fd);
                continue;
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            // A link or a file: left for the runtime to resolve inside the root.
            Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR)) => {
                return Ok(())
            }
            Err(e) => return Err(e),
        }
        if is_file && last {
            let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL;
            hostfs::openat2(cur.as_raw_fd(), name, flags, 0o644, Scope::Beneath)?;
            return Ok(());
        }
        cur = hostfs::mkdirs_beneath(&cur, name, 0o755)?;
    }
    Ok(())
}

/// Writes `config.json` (and `resolv.conf` when the sandbox's nameservers are
/// Purple's to name)
/// into `dir`, with the directories its mounts need. The bundle holds the
/// caller's environment values: its files are 0600; `dir` is made 0711 unless
/// it exists (a sandbox's user namespace mounts the root from inside: it must
/// pass, but nobody may list).
pub fn write_bundle(p: &Policy, spec: &Spec, dir: &Path) -> Result<(), BundleError> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o711)
        .create(dir)
        .map_err(write_err(dir))?;
    let bundle = File::open(dir).map_err(write_err(dir))?;
    let write = |name: &str, text: String| {
        let path = dir.join(name);
        let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC;
        let fd = hostfs::openat2(
            bundle.as_raw_fd(),
            Path::new(name),
            flags,
            0o600,
            Scope::Beneath,
        )
        .map_err(hostfs::explain)
        .map_err(write_err(&path))?;
        let mut f = File::from(fd);
        f.write_all(text.as_bytes()).map_err(write_err(&path))
    };
    if let Some(text) = translate::resolv_conf(p) {
        write("resolv.conf", text)?;
    }
    prepare(p, spec, dir, &bundle)?;
    write("config.json", translate::to_json(spec))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_bound_usr_gets_the_hosts_merged_usr_links() {
        let host = tempfile::tempdir().unwrap();
        let host = fs::canonicalize(host.path()).unwrap();
        fs::create_dir_all(host.join("usr/lib64")).unwrap();
        std::os::unix::fs::symlink("usr/lib64", host.join("lib64")).unwrap();
        std::os::unix::fs::symlink("usr/bin", host.join("bin")).unwrap();
        std::os::unix::fs::symlink("/elsewhere", host.join("sbin")).unwrap();
        let rootfs = tempfile::tempdir().unwrap();
        let root = File::open(rootfs.path()).unwrap();
        let spec: Spec = serde_json::from_value(json!({
            "ociVersion": "1.0.2",
            "mounts": [
                {"destination": "/usr", "type": "bind", "source": host.join("usr")},
                {"destination": "/bin", "type": "bind", "source": "/bin"}
            ]
        }))
        .unwrap();
        merged_usr_links(&spec, &root, &host).unwrap();
        let link = fs::read_link(rootfs.path().join("lib64")).unwrap();
        assert_eq!(link, Path::new("usr/lib64"));
        // /bin has a mount of its own; /sbin's link does not lead into /usr.
        assert!(!rootfs.path().join("bin").exists());
        assert!(fs::symlink_metadata(rootfs.path().join("sbin")).is_err());
    }
}
