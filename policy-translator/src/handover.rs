//! The system calls libcontainer makes after it has installed the seccomp
//! filter: one list, read by the loader (a policy that denies a call the
//! container needs to start is refused) and by the runtime's seccomp rewrite
//! (a call that hands the notify fd over must never itself be notified).

/// One call libcontainer's init makes once the filter is loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Call {
    pub name: &'static str,
    /// Made on the way to exec'ing the agent (start handshake, environment
    /// check, exec): a filter that refuses it keeps every container from
    /// starting.
    pub starts: bool,
    /// Sends or acknowledges the seccomp notify fd over libcontainer's
    /// channel: notified, it would wait for the very fd it is sending.
    pub hands_over: bool,
}

const fn call(name: &'static str, starts: bool, hands_over: bool) -> Call {
    Call {
        name,
        starts,
        hands_over,
    }
}

/// Every call libcontainer makes after the filter, in the order the loader
/// names them.
pub const AFTER_FILTER: &[Call] = &[
    call("accept4", true, false),
    call("read", true, false),
    call("write", true, true),
    call("sendmsg", true, true),
    call("close", true, false),
    call("statx", true, false),
    call("newfstatat", true, false),
    call("execve", true, false),
    call("recvmsg", false, true),
];

/// The calls a container needs to start, which a policy may not deny.
pub fn start_calls() -> impl Iterator<Item = &'static str> {
    AFTER_FILTER.iter().filter(|c| c.starts).map(|c| c.name)
}

/// The calls that hand the notify fd over, which are never notified.
pub fn handover_calls() -> impl Iterator<Item = &'static str> {
    AFTER_FILTER.iter().filter(|c| c.hands_over).map(|c| c.name)
}

pub fn starts(name: &str) -> bool {
    start_calls().any(|c| c == name)
}

pub fn hands_over(name: &str) -> bool {
    handover_calls().any(|c| c == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lists_the_loader_and_the_runtime_used() {
        let start: Vec<_> = start_calls().collect();
        assert_eq!(
            start,
            [
                "accept4",
                "read",
                "write",
                "sendmsg",
                "close",
                "statx",
                "newfstatat",
                "execve"
            ]
        );
        let handover: Vec<_> = handover_calls().collect();
        assert_eq!(handover, ["write", "sendmsg", "recvmsg"]);
        for c in AFTER_FILTER {
            assert!(
                libseccomp::ScmpSyscall::from_name(c.name).is_ok(),
                "{}",
                c.name
            );
        }
    }
}
