//! The kinds of record, typed: the string in the log is `Kind::as_str`.

/// The kinds of record Purple writes (a record's `kind`, as a string in the
/// log: readers keep kinds they do not know).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// `created`, `started`, `exited`, `deleted`.
    #[default]
    Lifecycle,
    NetworkBlocked,
    NetworkAllowed,
    DnsDenied,
    DnsError,
    SyscallDenied,
    SyscallLogged,
    ResourceOom,
    ResourcePids,
    ResourceTimeout,
    ResourceDisk,
    AlertDropped,
    SupervisorError,
    /// A program started in the sandbox (the activity trail).
    ProcessExec,
    /// The host key's signature over the chain's head (a seal closes the log).
    AuditCheckpoint,
    /// Records that could not be written, counted by kind.
    AuditLost,
    /// One request through the LLM gateway (not a violation).
    LlmRequest,
    /// A request the gateway refused (not a provider, unknown model, secret).
    LlmBlocked,
    /// A request refused past a session budget.
    LlmBudget,
}

impl Kind {
    pub const ALL: [Kind; 19] = [
        Kind::Lifecycle,
        Kind::NetworkBlocked,
        Kind::NetworkAllowed,
        Kind::DnsDenied,
        Kind::DnsError,
        Kind::SyscallDenied,
        Kind::SyscallLogged,
        Kind::ResourceOom,
        Kind::ResourcePids,
        Kind::ResourceTimeout,
        Kind::ResourceDisk,
        Kind::AlertDropped,
        Kind::SupervisorError,
        Kind::ProcessExec,
        Kind::AuditCheckpoint,
        Kind::AuditLost,
        Kind::LlmRequest,
        Kind::LlmBlocked,
        Kind::LlmBudget,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Kind::Lifecycle => "lifecycle",
            Kind::NetworkBlocked => "network.blocked",
            Kind::NetworkAllowed => "network.allowed",
            Kind::DnsDenied => "dns.denied",
            Kind::DnsError => "dns.error",
            Kind::SyscallDenied => "syscall.denied",
            Kind::SyscallLogged => "syscall.logged",
            Kind::ResourceOom => "resource.oom",
            Kind::ResourcePids => "resource.pids",
            Kind::ResourceTimeout => "resource.timeout",
            Kind::ResourceDisk => "resource.disk",
            Kind::AlertDropped => "alert.dropped",
            Kind::SupervisorError => "supervisor.error",
            Kind::ProcessExec => "process.exec",
            Kind::AuditCheckpoint => "audit.checkpoint",
            Kind::AuditLost => "audit.lost",
            Kind::LlmRequest => "llm.request",
            Kind::LlmBlocked => "llm.blocked",
            Kind::LlmBudget => "llm.budget",
        }
    }

    pub fn parse(kind: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == kind)
    }

    pub fn is_violation(self) -> bool {
        !matches!(
            self,
            Kind::Lifecycle
                | Kind::NetworkAllowed
                | Kind::ProcessExec
                | Kind::AuditCheckpoint
                | Kind::LlmRequest
        )
    }

    /// Records of this kind stand for `details.count` events.
    pub fn counts(self) -> bool {
        matches!(
            self,
            Kind::ResourceOom | Kind::ResourcePids | Kind::AlertDropped | Kind::AuditLost
        )
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::Kind;

    #[test]
    fn every_kind_reads_back_from_its_name() {
        for k in Kind::ALL {
            assert_eq!(Kind::parse(k.as_str()), Some(k));
        }
        assert_eq!(Kind::parse("gateway.request"), None);
        assert!(
            crate::is_violation("gateway.request"),
            "unknown kinds count"
        );
        assert!(!crate::is_violation("network.allowed"));
    }
}
