//! Purple policies: the schema users write, its translation to OCI bundles, and
//! the enforcement plan the runtime reads back from `io.purple.*` annotations.

pub mod annotations;
pub mod argset;
pub mod decode;
pub mod diag;
pub mod document;
pub mod domain;
pub mod families;
pub mod floor;
pub mod handover;
pub mod hostfs;
pub mod limits;
pub mod llm;
pub mod load;
pub mod merge;
pub mod node;
pub mod oci;
pub mod plan;
pub mod ports;
pub mod profiles;
pub mod schema;
pub mod supervision;
pub mod translate;
pub mod units;
pub mod userns;
pub mod yaml;
