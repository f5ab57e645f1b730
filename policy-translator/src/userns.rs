//! The host side of the sandbox's user namespace. Inside it, root is an
//! unmapped stranger to host files: it reaches a bind source or the root
//! filesystem only through directories that let "others" (or its own host ids)
//! pass, and writes only where its host ids may write. libcontainer mounts from
//! inside the namespace, so a path the sandbox cannot reach fails the
//! container's start with a bare EPERM; checking here turns that into an error
//! naming the directory and the fix.

use std::fs;
use std::io;
use std::os::unix::fs::{fchown, MetadataExt};
use std::path::{Path, PathBuf};

use crate::schema::{IdMap, User};

/// The sandbox user's ids as the host sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostIds {
    pub uid: u32,
    pub gids: Vec<u32>,
}

impl HostIds {
    /// `None` without a user namespace: host root passes everywhere.
    pub fn of(user: &User) -> Option<HostIds> {
        let map = user.namespace?;
        let host = |id| {
            map.host(id)
                .expect("the policy loader checks ids are mapped")
        };
        Some(HostIds {
            uid: host(user.uid),
            gids: std::iter::once(user.gid)
                .chain(user.additional_gids.iter().copied())
                .map(host)
                .collect(),
        })
    }

    /// Sandbox root, who sets up mounts and owns what the bundle creates.
    pub fn root(map: &IdMap) -> HostIds {
        HostIds {
            uid: map.host_id,
            gids: vec![map.host_id],
        }
    }

    /// The permission bits of `meta` that apply to these ids (`rwx`, 0–7).
    fn bits(&self, meta: &fs::Metadata) -> u32 {
        let mode = meta.mode();
        if meta.uid() == self.uid {
            mode >> 6 & 7
        } else if self.gids.contains(&meta.gid()) {
            mode >> 3 & 7
        } else {
            mode & 7
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error(
    "the sandbox cannot reach {path}: {blocker} (owner {owner}, mode {mode:04o}) does not let \
     host uid {uid} pass\n    fix: `chmod o+x {blocker}`, use a path outside it, or set \
     user.namespace.host_id to the owner's ids"
)]
pub struct Unreachable {
    pub path: PathBuf,
    pub blocker: PathBuf,
    pub owner: u32,
    pub mode: u32,
    pub uid: u32,
}

/// Checks that `ids` may search every directory from `/` down to `path`
/// (included when it is a directory). Missing components end the walk: what
/// does not exist yet is created by the bundle writer.
pub fn check_reachable(path: &Path, ids: &HostIds) -> Result<(), Unreachable> {
    let mut dirs: Vec<&Path> = path.ancestors().collect();
    dirs.reverse();
    for dir in dirs {
        let Ok(meta) = fs::metadata(dir) else {
            return Ok(());
        };
        if meta.is_dir() && ids.bits(&meta) & 1 == 0 {
            return Err(Unreachable {
                path: path.to_owned(),
                blocker: dir.to_owned(),
                owner: meta.uid(),
                mode: meta.mode() & 0o7777,
                uid: ids.uid,
            });
        }
    }
    Ok(())
}

/// Hands the open directory `dir` to `ids` unless they may already write
/// and search it, as podman's `:U` does; what is inside keeps its owners.
/// On the descriptor: a name could have been swapped for a link meanwhile.
pub fn give(dir: &fs::File, ids: &HostIds) -> io::Result<()> {
    if ids.bits(&dir.metadata()?) & 0o3 == 0o3 {
        return Ok(());
    }
    fchown(dir, Some(ids.uid), ids.gids.first().copied())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn stranger() -> HostIds {
        HostIds::root(&IdMap::DEFAULT)
    }

    #[test]
    fn a_closed_ancestor_is_named() {
        let t = tempfile::tempdir().unwrap();
        let closed = t.path().join("closed");
        fs::create_dir_all(closed.join("inner")).unwrap();
        fs::set_permissions(t.path(), fs::Permissions::from_mode(0o755)).unwrap();
        fs::set_permissions(&closed, fs::Permissions::from_mode(0o700)).unwrap();
        let err = check_reachable(&closed.join("inner/missing"), &stranger()).unwrap_err();
        assert_eq!(err.blocker, closed);
        assert_eq!(err.mode, 0o700);
        assert!(err.to_string().contains("chmod o+x"), "{err}");

        fs::set_permissions(&closed, fs::Permissions::from_mode(0o711)).unwrap();
        check_reachable(&closed.join("inner/missing"), &stranger()).unwrap();
    }

    #[test]
    fn own_directories_pass_on_owner_bits() {
        let t = tempfile::tempdir().unwrap();
        fs::set_permissions(t.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let mine = t.path().join("mine");
        fs::create_dir(&mine).unwrap();
        fs::set_permissions(&mine, fs::Permissions::from_mode(0o700)).unwrap();
        let ids = stranger();
        assert!(check_reachable(&mine, &ids).is_err());
        give(&fs::File::open(&mine).unwrap(), &ids).unwrap();
        check_reachable(&mine, &ids).unwrap();
        assert_eq!(fs::metadata(&mine).unwrap().uid(), ids.uid);
    }

    #[test]
    fn writable_directories_are_left_alone() {
        let t = tempfile::tempdir().unwrap();
        fs::set_permissions(t.path(), fs::Permissions::from_mode(0o1777)).unwrap();
        give(&fs::File::open(t.path()).unwrap(), &stranger()).unwrap();
        assert_eq!(fs::metadata(t.path()).unwrap().uid(), 0);
    }
}
