//! Domain names as policies and plans hold them: the one rule for what a name
//! or `*.` wildcard may be, applied where a policy is loaded and again where
//! the `io.purple.network` annotation is parsed (a bundle author can write it
//! by hand).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A domain name (`api.example.com`) or a wildcard for every name below one
/// (`*.example.com`), normalised: lower case, no trailing dot.
///
/// A name needs at least two labels: `*.com` would open a whole top-level
/// domain, and a single label (`localhost`) is no public name at all.
///
/// ```
/// use purple_policy::domain::Domain;
/// let d: Domain = "API.Example.com.".parse().unwrap();
/// assert_eq!(d.as_str(), "api.example.com");
/// assert!("*.com".parse::<Domain>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Domain(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0:?} is not a domain name or *.wildcard")]
pub struct DomainError(pub String);

impl FromStr for Domain {
    type Err = DomainError;

    fn from_str(s: &str) -> Result<Self, DomainError> {
        let name = s.trim().trim_end_matches('.').to_ascii_lowercase();
        let bare = name.strip_prefix("*.").unwrap_or(&name);
        let ok = bare.contains('.')
            && bare.len() <= 253
            && bare.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            });
        if ok {
            Ok(Self(name))
        } else {
            Err(DomainError(s.to_owned()))
        }
    }
}

impl Domain {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_wildcard(&self) -> bool {
        self.0.starts_with("*.")
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Domain {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Domain {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_wildcards() {
        for good in [
            "example.com",
            "*.example.com",
            "a_b.example.com",
            " Mixed.Case.ORG. ",
        ] {
            assert!(good.parse::<Domain>().is_ok(), "{good}");
        }
        let long = format!("{}.com", "a".repeat(64));
        for bad in [
            "", "com", "*.com", "*", "a..b", "a b.com", "é.com", "x.*.com", &long,
        ] {
            assert!(bad.parse::<Domain>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_wire_refuses_what_the_loader_refuses() {
        let err = serde_json::from_str::<Domain>(r#""localhost""#).unwrap_err();
        assert!(err.to_string().contains("not a domain name"), "{err}");
        let d: Domain = serde_json::from_str(r#""*.Example.com.""#).unwrap();
        assert_eq!(serde_json::to_string(&d).unwrap(), r#""*.example.com""#);
    }
}
