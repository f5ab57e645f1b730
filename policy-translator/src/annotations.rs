//! Every `io.purple.*` annotation name: the written part of the contract
//! between the translator (or a bundle author) and the runtime. The values'
//! types live where they are parsed: [`crate::plan`] and [`crate::supervision`].

/// JSON of a [`crate::plan::NetworkPlan`].
pub const NETWORK_ANNOTATION: &str = "io.purple.network";
/// JSON of a [`crate::supervision::AuditPlan`].
pub const AUDIT_ANNOTATION: &str = "io.purple.audit";
/// JSON of a [`crate::supervision::SessionPlan`].
pub const SESSION_ANNOTATION: &str = "io.purple.session";
/// JSON of a [`crate::llm::LlmPlan`].
pub const LLM_ANNOTATION: &str = "io.purple.llm";
/// The name of the policy a bundle was translated from (for audit records).
pub const POLICY_NAME_ANNOTATION: &str = "io.purple.policy.name";
/// The whole policy a bundle was translated from, as JSON, for the reader:
/// the runtime enforces the plans above, never this.
pub const POLICY_ANNOTATION: &str = "io.purple.policy";
/// A shipped profile the runtime applies to an engine's spec at `create`.
pub const PROFILE_ANNOTATION: &str = "io.purple.profile";
/// The runtime's version, in `purple-oci features`.
pub const VERSION_ANNOTATION: &str = "io.purple.version";

/// Every `io.purple.*` annotation a bundle may carry; the runtime refuses
/// any other (a misspelt key must not pass for one that is not there).
pub const BUNDLE_ANNOTATIONS: &[&str] = &[
    PROFILE_ANNOTATION,
    NETWORK_ANNOTATION,
    AUDIT_ANNOTATION,
    SESSION_ANNOTATION,
    LLM_ANNOTATION,
    POLICY_NAME_ANNOTATION,
    POLICY_ANNOTATION,
];
