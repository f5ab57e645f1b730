//! The runtime's one way into this crate at `create`: a spec someone else
//! wrote (an engine's, or a translated bundle's) in, the spec to run out.
//! The runtime reads annotations only; resolving a profile by name, loading
//! it and tightening the spec with it all happen here.

use std::path::Path;

use oci_spec::runtime::Spec;

use crate::annotations::PROFILE_ANNOTATION;
use crate::load::Context;
use crate::merge::{self, MergeError};
use crate::profiles::{self, PolicyError};

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Profile(#[from] PolicyError),
    #[error(transparent)]
    Merge(#[from] MergeError),
}

/// Applies the profile `io.purple.profile` names, if any, to `spec` (tighten
/// only: see [`merge`]); `bundle` is the bundle's directory. The name comes
/// from the bundle's author: only a profile's name is taken (built-in or
/// under /etc/purple/policies), never a path, and a broken profile is
/// reported without its text.
pub fn apply(spec: Spec, bundle: &Path) -> Result<Spec, ApplyError> {
    let Some(name) = spec
        .annotations()
        .as_ref()
        .and_then(|a| a.get(PROFILE_ANNOTATION).cloned())
    else {
        return Ok(spec);
    };
    // The image brings its own filesystem: the profile's binds are not used.
    let ctx = Context {
        base: bundle.to_owned(),
        host_paths: false,
    };
    let loaded = profiles::resolve_for_annotation(&name, &ctx)?;
    Ok(merge::tighten(&spec, &loaded.policy)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn spec(annotations: &[(&str, &str)]) -> Spec {
        let mut s = Spec::default();
        let a: HashMap<String, String> = annotations
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        s.set_annotations(Some(a));
        s
    }

    #[test]
    fn without_a_profile_the_spec_is_untouched() {
        let s = spec(&[("org.example", "x")]);
        assert_eq!(apply(s.clone(), Path::new("/nonexistent")).unwrap(), s);
    }

    #[test]
    fn a_profile_tightens_and_names_itself() {
        let s = spec(&[(PROFILE_ANNOTATION, "secure-agent")]);
        let out = apply(s, Path::new("/nonexistent")).unwrap();
        let a = out.annotations().as_ref().unwrap();
        assert_eq!(
            a[crate::annotations::POLICY_NAME_ANNOTATION],
            "secure-agent"
        );
        assert!(a.contains_key(crate::annotations::NETWORK_ANNOTATION));
    }

    #[test]
    fn a_path_is_no_profile_name() {
        for bad in ["../etc/shadow", "/etc/purple/policies/x.yaml", "x.yaml", ""] {
            let err = apply(spec(&[(PROFILE_ANNOTATION, bad)]), Path::new("/")).unwrap_err();
            assert!(matches!(err, ApplyError::Profile(_)), "{bad}: {err}");
        }
    }
}
