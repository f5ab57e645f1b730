//! Purple's runtime: the `purple-oci` command (runc's CLI contract) over
//! libcontainer, plus the parts Purple adds to a container's lifecycle.

pub mod alert;
/// The audit log (the `purple-audit` crate, which outside verifiers use alone).
pub use purple_audit as audit;
pub mod bundle;
pub mod cgroup2;
pub mod cgroupfs;
pub mod cli;
pub mod console;
pub mod container;
pub mod diskwatch;
pub mod dns;
pub mod egress;
pub mod escape;
pub mod foreground;
pub mod gateway;
pub mod id;
pub mod learn;
pub mod logging;
pub mod manual;
pub mod network;
pub mod oci;
pub mod pidfd;
pub mod scope;
pub mod sealed;
pub mod seccomp;
pub mod signal;
pub mod supervisor;
pub mod tenant;
pub mod trail;
