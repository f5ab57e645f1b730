use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;

use pathrs::flags::OpenFlags;
use pathrs::procfs::{ProcfsBase, ProcfsHandle};
use procfs::ProcError;
use procfs::process::MountInfo;

use super::ControllerType;
use super::controller_type::CONTROLLERS;

#[derive(thiserror::Error, Debug)]
pub enum V1MountPointError {
    #[error("io error: {0}")]
    Io(#[from] std::io::Error),
    #[error("failed to get mountinfo: {0}")]
    MountInfo(ProcError),
    #[error("could not find mountpoint for {subsystem}")]
    NotFound { subsystem: ControllerType },
    #[error(transparent)]
    Pathrs(#[from] pathrs::error::Error),
}

/// List all cgroup v1 subsystem mount points on the system. This can include unsupported
/// subsystems, comounted controllers and named hierarchies.
pub fn list_subsystem_mount_points() -> Result<Vec<PathBuf>, V1MountPointError> {
    let reader = BufReader::new(ProcfsHandle::new()?.open(
        ProcfsBase::ProcSelf,
        "mountinfo",
        OpenFlags::O_RDONLY | OpenFlags::O_CLOEXEC,
    )?);

    reader
        .lines()
        .map(|lr| {
            lr.map_err(V1MountPointError::Io)
                .and_then(|line| MountInfo::from_line(&line).map_err(V1MountPointError::MountInfo))
        })
        .try_fold(Vec::new(), |mut mount_points, r| {
            r.map(|m| {
                if m.fs_type == "cgroup" {
                    mount_points.push(m.mount_point);
                }
                mount_points
            })
        })
}

/// List the mount points of all currently supported cgroup subsystems.
pub fn list_supported_mount_points() -> Result<HashMap<ControllerType, PathBuf>, V1MountPointError>
{
    let mut mount_paths = HashMap::with_capacity(CONTROLLERS.len());

    for controller in CONTROLLERS {
        if let Ok(mount_point) = get_subsystem_mount_point(controller) {
            mount_paths.insert(controller.to_owned(), mount_point);
        }
    }

    Ok(mount_paths)
}

pub fn get_subsystem_mount_point(subsystem: &ControllerType) -> Result<PathBuf, V1MountPointError> {
    let reader = BufReader::new(ProcfsHandle::new()?.open(
        ProcfsBase::ProcSelf,
        "mountinfo",
        OpenFlags::O_RDONLY | OpenFlags::O_CLOEXEC,
    )?);

    let mounts = reader.lines().map(|lr| {
        lr.map_err(V1MountPointError::Io)
            .and_then(|line| MountInfo::from_line(&line).map_err(V1MountPointError::MountInfo))
            .map(|m| (m.fs_type == "cgroup").then_some(m.mount_point))
    });
    find_subsystem_mount_point(mounts, subsystem)
}

/// The mount point of `subsystem` among the cgroup v1 mount points listed by
/// [`list_subsystem_mount_points`], without reading mountinfo again: for
/// callers that look up several subsystems at once.
pub fn subsystem_mount_point_in(
    mount_points: &[PathBuf],
    subsystem: &ControllerType,
) -> Result<PathBuf, V1MountPointError> {
    find_subsystem_mount_point(
        mount_points.iter().map(|m| Ok(Some(m.clone()))),
        subsystem,
    )
}

/// The first of `mounts` (a mount point if it is a cgroup v1 mount, `None` if
/// not) that is `subsystem`'s; stops at the first error before it.
fn find_subsystem_mount_point(
    mut mounts: impl Iterator<Item = Result<Option<PathBuf>, V1MountPointError>>,
    subsystem: &ControllerType,
) -> Result<PathBuf, V1MountPointError> {
    let subsystem_name = subsystem.to_string();
    mounts
        .find_map(|r| match r {
            Err(e) => Some(Err(e)),
            Ok(Some(mount_point)) => {
                // Some systems mount net_prio and net_cls in the same directory
                // other systems mount them in their own directories. This
                // should handle both cases.
                let ok = match subsystem_name.as_str() {
                    "net_cls" => ["net_cls,net_prio", "net_prio,net_cls", "net_cls"]
                        .iter()
                        .any(|s| mount_point.ends_with(s)),
                    "net_prio" => ["net_cls,net_prio", "net_prio,net_cls", "net_prio"]
                        .iter()
                        .any(|s| mount_point.ends_with(s)),
                    "cpu" => ["cpu,cpuacct", "cpu"]
                        .iter()
                        .any(|s| mount_point.ends_with(s)),
                    "cpuacct" => ["cpu,cpuacct", "cpuacct"]
                        .iter()
                        .any(|s| mount_point.ends_with(s)),
                    _ => mount_point.ends_with(&subsystem_name),
                };
                if ok { Some(Ok(mount_point)) } else { None }
            }
            Ok(None) => None,
        })
        .transpose()?
        .ok_or(V1MountPointError::NotFound {
            subsystem: *subsystem,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subsystem_mount_point_in_matches_comounted_and_separate_hierarchies() {
        let mounts: Vec<PathBuf> = [
            "/sys/fs/cgroup/cpu,cpuacct",
            "/sys/fs/cgroup/net_cls,net_prio",
            "/sys/fs/cgroup/memory",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        let found = |c| subsystem_mount_point_in(&mounts, &c).ok();
        assert_eq!(found(ControllerType::Cpu), Some(mounts[0].clone()));
        assert_eq!(found(ControllerType::CpuAcct), Some(mounts[0].clone()));
        assert_eq!(found(ControllerType::NetworkPriority), Some(mounts[1].clone()));
        assert_eq!(found(ControllerType::Memory), Some(mounts[2].clone()));
        assert!(matches!(
            subsystem_mount_point_in(&mounts, &ControllerType::Pids),
            Err(V1MountPointError::NotFound { .. })
        ));
    }
}
