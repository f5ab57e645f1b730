//! Purple policies.
