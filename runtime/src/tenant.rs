//! The program of an `exec`'d process, under the container's seccomp filter.
//!
//! libcontainer 0.7 rebuilds the spec of an exec'd process from namespaces,
//! cgroups path, personality and time offsets only, dropping
//! `linux.seccomp`: without this executor, `exec` would start processes with
//! no filter at all. Capabilities are already dropped when the executor runs,
//! so the filter can only be installed with `no_new_privs` set: an exec'd
//! process of a filtered container always runs with it (a setuid program
//! cannot raise its privileges), even when the container's own process does
//! not.
//!
//! When the container's denials are recorded (its filter was rewritten to
//! notify the supervisor) and the supervisor still listens, the exec'd process
//! gets that same notify filter and hands its notify fd to the supervisor over
//! a connection `exec` opened on the host before entering the container (the
//! listener's path is not reachable from inside): its denials are answered
//! and recorded like init's. Otherwise it gets the filter as written in the
//! bundle: refused exactly the same, by the kernel, unrecorded.

use std::io::IoSlice;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;

use libcontainer::workload::{Executor, ExecutorError, ExecutorValidationError};
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags, UnixAddr};
use oci_spec::runtime::{Capabilities, Capability, LinuxSeccomp, Process, Spec};
use purple_policy::annotations::PROFILE_ANNOTATION;

/// The seccomp filter an exec'd process gets.
#[derive(Clone)]
pub enum Filter {
    /// As written in the bundle: the kernel answers denials, unrecorded.
    Plain(LinuxSeccomp),
    /// Denials notify the supervisor, connected here: the notify fd goes over
    /// `supervisor` before the program runs.
    Notify {
        seccomp: LinuxSeccomp,
        supervisor: Arc<UnixStream>,
    },
}

impl Filter {
    /// `notify` (the container's rewritten filter) when the supervisor
    /// accepts a connection on `socket`; else `plain`, so that an exec still
    /// works, enforced, once the supervisor is gone.
    pub fn choose(plain: LinuxSeccomp, notify: Option<LinuxSeccomp>, socket: &Path) -> Self {
        let Some(seccomp) = notify else {
            return Self::Plain(plain);
        };
        match UnixStream::connect(socket) {
            Ok(s) => Self::Notify {
                seccomp,
                supervisor: Arc::new(s),
            },
            Err(e) => {
                tracing::warn!(
                    "seccomp listener {}: {e}; the exec'd process's denials are enforced but not recorded",
                    socket.display()
                );
                Self::Plain(plain)
            }
        }
    }
}

#[derive(Clone)]
pub struct FilteredExecutor {
    pub filter: Filter,
}

fn failed(what: &str, e: impl std::fmt::Display) -> ExecutorError {
    ExecutorError::Other(format!("{what}: {e}"))
}

const INSTALL: &str = "cannot install the container's seccomp filter";

/// Sends the notify fd the way libcontainer's init does (one SCM_RIGHTS
/// message). `sendmsg` is never notified, so this cannot wait on itself.
fn hand_over(supervisor: &UnixStream, fd: &OwnedFd) -> nix::Result<usize> {
    let fds = [fd.as_raw_fd()];
    sendmsg::<UnixAddr>(
        supervisor.as_raw_fd(),
        &[IoSlice::new(b"exec")],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
}

impl Executor for FilteredExecutor {
    fn exec(&self, spec: &Spec) -> Result<(), ExecutorError> {
        // SAFETY: prctl with integer arguments.
        if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
            return Err(failed(
                "cannot set no_new_privs",
                std::io::Error::last_os_error(),
            ));
        }
        match &self.filter {
            Filter::Plain(seccomp) => {
                libcontainer::seccomp::initialize_seccomp(seccomp)
                    .map_err(|e| failed(INSTALL, e))?;
            }
            Filter::Notify {
                seccomp,
                supervisor,
            } => {
                let raw = libcontainer::seccomp::initialize_seccomp(seccomp)
                    .map_err(|e| failed(INSTALL, e))?
                    .ok_or_else(|| failed(INSTALL, "the filter has no notify fd"))?;
                // SAFETY: libseccomp just created this fd for this process.
                let fd = unsafe { OwnedFd::from_raw_fd(raw) };
                // Unsent, every notified call would fail with ENOSYS: refuse
                // to run the program instead. Closed afterwards, so the
                // program cannot answer its own calls.
                hand_over(supervisor, &fd).map_err(|e| {
                    failed("cannot hand the seccomp notify fd to the supervisor", e)
                })?;
            }
        }
        libcontainer::workload::default::get_executor().exec(spec)
    }

    fn validate(&self, spec: &Spec) -> Result<(), ExecutorValidationError> {
        libcontainer::workload::default::get_executor().validate(spec)
    }
}

/// The capabilities a profile allows: the ceiling of every exec'd process.
///
/// libcontainer gives an exec'd process what the engine asks (podman
/// `exec --privileged` writes every capability into its process.json), not
/// what the container's init got. Under a profile (`io.purple.profile`) the
/// init's bounding set, already cut to the profile, caps every set of every
/// exec'd process, and its `noNewPrivileges` holds for them too.
pub struct Ceiling {
    allowed: Capabilities,
    no_new_privileges: bool,
}

impl Ceiling {
    /// The ceiling of a container whose effective spec is `spec`; None when
    /// no profile applies (the engine's word stands, as under runc).
    pub fn of(spec: &Spec) -> Option<Self> {
        spec.annotations().as_ref()?.get(PROFILE_ANNOTATION)?;
        let process = spec.process().as_ref();
        Some(Self {
            allowed: process
                .and_then(|p| p.capabilities().as_ref())
                .and_then(|c| c.bounding().clone())
                .unwrap_or_default(),
            no_new_privileges: process.and_then(|p| p.no_new_privileges()) == Some(true),
        })
    }

    /// `process` with each capability set cut to the ceiling.
    pub fn cap_process(&self, mut process: Process) -> Process {
        if let Some(mut caps) = process.capabilities().clone() {
            let cut = |set: &Option<Capabilities>| {
                set.as_ref()
                    .map(|s| s.intersection(&self.allowed).copied().collect())
            };
            let sets = [
                cut(caps.bounding()),
                cut(caps.effective()),
                cut(caps.permitted()),
                cut(caps.inheritable()),
                cut(caps.ambient()),
            ];
            let [bounding, effective, permitted, inheritable, ambient] = sets;
            caps.set_bounding(bounding)
                .set_effective(effective)
                .set_permitted(permitted)
                .set_inheritable(inheritable)
                .set_ambient(ambient);
            process.set_capabilities(Some(caps));
        }
        if self.no_new_privileges {
            process.set_no_new_privileges(Some(true));
        }
        process
    }

    /// The `--cap` names the ceiling allows; names that do not parse are
    /// kept for libcontainer to refuse.
    pub fn cap_names(&self, names: &[String]) -> Vec<String> {
        names
            .iter()
            .filter(|n| {
                let full = if n.starts_with("CAP_") {
                    n.to_string()
                } else {
                    format!("CAP_{n}")
                };
                // The spec's own spelling (serde), which `FromStr` does not share.
                serde_json::from_value::<Capability>(serde_json::Value::String(full))
                    .map_or(true, |c| self.allowed.contains(&c))
            })
            .cloned()
            .collect()
    }

    pub fn no_new_privileges(&self) -> bool {
        self.no_new_privileges
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_names_beyond_the_ceiling_are_dropped() {
        let ceiling = Ceiling {
            allowed: [Capability::Kill].into_iter().collect(),
            no_new_privileges: true,
        };
        let asked: Vec<String> = ["CAP_KILL", "SYS_ADMIN", "CAP_DAC_OVERRIDE", "CAP_NOPE"]
            .map(String::from)
            .to_vec();
        assert_eq!(ceiling.cap_names(&asked), ["CAP_KILL", "CAP_NOPE"]);
    }
}
