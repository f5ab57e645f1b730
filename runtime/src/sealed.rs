//! The runtime binary and CVE-2019-5736: a process inside the container can
//! reach the binary through /proc/<pid>/exe while the runtime is in its
//! namespaces, so commands that enter a container run from a sealed memfd
//! copy (pentacle re-executes the process from it). The supervisor runs
//! from the file on disk, whose path is carried across that re-exec.

use std::path::PathBuf;
use std::process::ExitCode;

/// Carries the runtime binary's path on disk across pentacle's re-exec from
/// the sealed copy (afterwards /proc/self/exe names the copy). libcontainer
/// clears the environment before the container's program runs.
const BINARY_ENV: &str = "PURPLE_RUNTIME_BINARY";

/// Call first in `main` of both binaries: records where the binary lives on
/// disk, then, for a command that enters a container, re-executes from the
/// sealed copy. The error is the exit code, already explained on stderr.
pub fn prepare(program: &str, enters_container: bool) -> Result<(), ExitCode> {
    if !pentacle::is_sealed() {
        if let Ok(exe) = std::env::current_exe() {
            std::env::set_var(BINARY_ENV, exe);
        }
    }
    if enters_container {
        if let Err(e) = pentacle::ensure_sealed() {
            eprintln!("{program}: cannot seal the runtime binary: {e}");
            return Err(ExitCode::from(1));
        }
    }
    Ok(())
}

/// The binary on disk (not the sealed copy).
pub(crate) fn on_disk() -> PathBuf {
    std::env::var_os(BINARY_ENV)
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .unwrap_or_else(|| PathBuf::from("/proc/self/exe"))
}
