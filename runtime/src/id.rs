//! Container IDs: the one check every command runs before touching the disk.

use std::fmt;

/// Why a container ID was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdError {
    #[error("container ID must not be empty")]
    Empty,
    #[error("invalid container ID {0:?}: use letters, digits, '_', '.', '-', starting with a letter or digit, at most 1024 characters")]
    Invalid(String),
}

/// A validated container ID: `[A-Za-z0-9][A-Za-z0-9_.-]*`, so it can never name a
/// path outside the state root (`..`, `/`, leading dots are all refused).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ContainerId(String);

impl ContainerId {
    /// Checks `raw` and wraps it.
    ///
    /// ```
    /// use purple_runtime::id::ContainerId;
    /// assert!(ContainerId::parse("web-1").is_ok());
    /// assert!(ContainerId::parse("../x").is_err());
    /// ```
    pub fn parse(raw: &str) -> Result<Self, IdError> {
        let mut chars = raw.chars();
        let Some(first) = chars.next() else {
            return Err(IdError::Empty);
        };
        let ok = raw.len() <= 1024
            && first.is_ascii_alphanumeric()
            && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(IdError::Invalid(raw.to_owned()))
        }
    }

    /// A fresh ID for a container the caller did not name.
    pub fn generate(prefix: &str) -> Self {
        let nanos = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
        Self::parse(&format!("{prefix}-{}-{:x}", std::process::id(), nanos))
            .expect("generated IDs are valid")
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ContainerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_engine_ids() {
        for id in ["a", "abc123", "libpod-0f3a", "k8s_pod.1", "A-b_c.d"] {
            assert_eq!(ContainerId::parse(id).unwrap().as_str(), id);
        }
    }

    #[test]
    fn refuses_path_tricks() {
        for id in [
            "../x", "a/b", ".", "..", ".hidden", "-x", "a b", "a\0b", "x/",
        ] {
            assert_eq!(
                ContainerId::parse(id),
                Err(IdError::Invalid(id.into())),
                "{id}"
            );
        }
        assert_eq!(ContainerId::parse(""), Err(IdError::Empty));
        assert!(ContainerId::parse(&"a".repeat(1025)).is_err());
    }
}
