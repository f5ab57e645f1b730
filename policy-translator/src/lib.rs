//! Purple policies: the schema users write, its translation to OCI bundles, and
//! the enforcement plan the runtime reads back from `io.purple.*` annotations.

pub mod plan;
pub mod supervision;
pub mod units;
