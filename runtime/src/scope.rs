//! Landlock scoping (ABI 6) for containers that share their caller's network
//! namespace: abstract unix sockets live in the network namespace, so without
//! a namespace of its own a container reaches every abstract socket of the
//! host (a desktop bus, an engine's or an agent's control socket), and no
//! connect hook judges unix sockets. A Landlock domain scoped with
//! `LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET` can only connect or send to abstract
//! sockets created inside the same domain: the container's own keep working.
//!
//! Applied by the executor, in the container's process right before exec
//! (after libcontainer dropped capabilities and installed seccomp), so every
//! process of the container inherits it; `exec`'d processes get it the same
//! way. Landlock needs `no_new_privs` here (capabilities are gone): a scoped
//! container always runs with it.

use std::io;

use libcontainer::workload::{Executor, ExecutorError, ExecutorValidationError};
use oci_spec::runtime::Spec;

/// `LANDLOCK_CREATE_RULESET_VERSION`: ask for the ABI version.
const CREATE_RULESET_VERSION: libc::c_ulong = 1;
/// `LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET`.
const SCOPE_ABSTRACT_UNIX_SOCKET: u64 = 1;
/// The first ABI with scopes (Linux 6.12).
pub const SCOPE_ABI: i64 = 6;

/// `struct landlock_ruleset_attr` of ABI 6.
#[repr(C)]
struct RulesetAttr {
    handled_access_fs: u64,
    handled_access_net: u64,
    scoped: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ScopeError {
    #[error("this kernel's Landlock ABI is {0}; scoping abstract unix sockets needs ABI 6 (Linux 6.12) with Landlock enabled (lsm=...,landlock)")]
    Unsupported(i64),
    #[error("cannot scope abstract unix sockets with Landlock: {0}")]
    Syscall(io::Error),
}

/// The kernel's Landlock ABI version (an error when Landlock is off).
pub fn abi() -> Result<i64, ScopeError> {
    // SAFETY: with the VERSION flag the kernel reads no attribute.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<RulesetAttr>(),
            0usize,
            CREATE_RULESET_VERSION,
        )
    };
    if v < 0 {
        return Err(ScopeError::Unsupported(0));
    }
    Ok(v)
}

/// Puts the calling thread (and what it later runs) in a Landlock domain
/// that reaches no abstract unix socket created outside it.
pub fn scope_abstract_unix() -> Result<(), ScopeError> {
    let v = abi()?;
    if v < SCOPE_ABI {
        return Err(ScopeError::Unsupported(v));
    }
    let attr = RulesetAttr {
        handled_access_fs: 0,
        handled_access_net: 0,
        scoped: SCOPE_ABSTRACT_UNIX_SOCKET,
    };
    // SAFETY: the kernel reads `size_of::<RulesetAttr>()` bytes of `attr`.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            &attr as *const RulesetAttr,
            std::mem::size_of::<RulesetAttr>(),
            0u32,
        )
    };
    if fd < 0 {
        return Err(ScopeError::Syscall(io::Error::last_os_error()));
    }
    let fd = fd as libc::c_int;
    // SAFETY: prctl with integer arguments; restrict_self takes the ruleset
    // fd just made; close releases it.
    let failed = unsafe {
        libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
            || libc::syscall(libc::SYS_landlock_restrict_self, fd, 0u32) != 0
    };
    let restricted = match failed {
        true => Err(io::Error::last_os_error()),
        false => Ok(()),
    };
    // SAFETY: closing the fd made above, used by nothing else.
    unsafe { libc::close(fd) };
    restricted.map_err(ScopeError::Syscall)
}

/// Scopes the process, then runs `inner` (the program, or Purple's exec
/// filter before it).
#[derive(Clone)]
pub struct ScopedExecutor {
    pub inner: Box<dyn Executor>,
}

impl Executor for ScopedExecutor {
    fn exec(&self, spec: &Spec) -> Result<(), ExecutorError> {
        scope_abstract_unix().map_err(|e| ExecutorError::Other(e.to_string()))?;
        self.inner.exec(spec)
    }

    fn validate(&self, spec: &Spec) -> Result<(), ExecutorValidationError> {
        self.inner.validate(spec)
    }
}
