//! The program of an `exec`'d process, under the container's seccomp filter.
//!
//! libcontainer 0.7 rebuilds the spec of an exec'd process from namespaces,
//! cgroups path, personality and time offsets only, dropping
//! `linux.seccomp`: without this executor, `exec` would start processes with
//! no filter at all. The filter installed is the container's as written in
//! its bundle (before denials were routed to the supervisor), so an exec'd
//! process is refused exactly what the container is; its denials are not
//! recorded. Capabilities are already dropped when the executor runs, so the
//! filter can only be installed with `no_new_privs` set: an exec'd process of
//! a filtered container always runs with it (a setuid program cannot raise
//! its privileges), even when the container's own process does not.

use libcontainer::workload::{Executor, ExecutorError, ExecutorValidationError};
use oci_spec::runtime::{LinuxSeccomp, Spec};

/// Stored next to the record at create: the filter exec'd processes get.
pub const SECCOMP_FILE: &str = "exec-seccomp.json";

#[derive(Clone)]
pub struct FilteredExecutor {
    pub seccomp: LinuxSeccomp,
}

impl Executor for FilteredExecutor {
    fn exec(&self, spec: &Spec) -> Result<(), ExecutorError> {
        // SAFETY: prctl with integer arguments.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
            return Err(ExecutorError::Other(format!(
                "cannot set no_new_privs: {}",
                std::io::Error::last_os_error()
            )));
        }
        libcontainer::seccomp::initialize_seccomp(&self.seccomp).map_err(|e| {
            ExecutorError::Other(format!(
                "cannot install the container's seccomp filter: {e}"
            ))
        })?;
        libcontainer::workload::default::get_executor().exec(spec)
    }

    fn validate(&self, spec: &Spec) -> Result<(), ExecutorValidationError> {
        libcontainer::workload::default::get_executor().validate(spec)
    }
}
