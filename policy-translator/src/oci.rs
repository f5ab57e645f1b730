//! The runtime's one way into this crate at `create`: a spec someone else
//! wrote (an engine's, or a translated bundle's) in, the spec to run out.
//! The runtime reads annotations only; resolving a profile by name, loading
//! it and tightening the spec with it all happen here.

use std::path::Path;

use oci_spec::runtime::Spec;

use crate::annotations::{
    AUDIT_ANNOTATION, BUNDLE_ANNOTATIONS, NETWORK_ANNOTATION, PROFILE_ANNOTATION,
    SESSION_ANNOTATION,
};
use crate::floor::{self, Looser};
use crate::load::Context;
use crate::merge::{self, MergeError};
use crate::node::{Floor, Node};
use crate::plan::{NetworkPlan, PlanError};
use crate::profiles::{self, PolicyError};
use crate::schema::Policy;
use crate::supervision::{AuditPlan, SessionPlan, SupervisionError};
use crate::translate;

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Profile(#[from] PolicyError),
    #[error(transparent)]
    Merge(#[from] MergeError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Supervision(#[from] SupervisionError),
    #[error("annotation {key:?} is not one Purple reads: use one of {}, or remove it", BUNDLE_ANNOTATIONS.join(", "))]
    Unknown { key: String },
    #[error("annotation {key} is not honoured on this node ({config} lists the ones it honours): remove it, or ask the node's operator to add it to `annotations`")]
    NotHonoured { key: String, config: String },
    #[error("annotation {key} would loosen the node's floor, {floor}: {why}; tighten the annotation or ask the node's operator to lower the floor")]
    Loosens {
        key: &'static str,
        floor: String,
        why: Looser,
    },
}

/// Makes the effective spec of a container whose bundle someone else wrote
/// (an engine's, or a translated bundle); `bundle` is its directory. The
/// author is not trusted: only the `io.purple.*` keys Purple reads and the
/// node honours are accepted; `io.purple.profile` names a profile (built-in
/// or in the node's profile directory), never a path, and a broken profile
/// is reported without its text; a container with no Purple annotation
/// gets the node's default profile; and whatever the annotations ask for
/// must be at least as tight as the node's floor, or the create is refused
/// naming the key and the floor.
pub fn apply(spec: Spec, bundle: &Path, node: &Node) -> Result<Spec, ApplyError> {
    let annotations = spec.annotations().clone().unwrap_or_default();
    let mut keys: Vec<&String> = annotations
        .keys()
        .filter(|k| k.starts_with("io.purple."))
        .collect();
    keys.sort();
    for key in &keys {
        if !BUNDLE_ANNOTATIONS.contains(&key.as_str()) {
            return Err(ApplyError::Unknown {
                key: key.escape_debug().to_string(),
            });
        }
        if !node.honours(key) {
            return Err(ApplyError::NotHonoured {
                key: key.to_string(),
                config: node.describe_source(),
            });
        }
    }
    let floor = match &node.floor {
        Floor::Host => None,
        Floor::Default => Some(None),
        Floor::Profile(p) => Some(Some(p.as_ref())),
    };
    let loosens = |key, why| ApplyError::Loosens {
        key,
        floor: node.describe_floor(),
        why,
    };
    // The image brings its own filesystem: the profile's binds are not used.
    let ctx = Context {
        base: bundle.to_owned(),
        host_paths: false,
    };
    let (out, applied) = match annotations.get(PROFILE_ANNOTATION) {
        Some(name) => {
            let loaded = profiles::resolve_for_annotation(name, &node.profile_dir, &ctx)?;
            if let Some(Some(f)) = floor {
                floor::policy(&loaded.policy, f).map_err(|w| loosens(PROFILE_ANNOTATION, w))?;
            }
            (merge::tighten(&spec, &loaded.policy)?, None)
        }
        None if keys.is_empty() => match node.default_profile.as_deref().or(floor.flatten()) {
            Some(p) => (merge::tighten(&spec, p)?, Some(p)),
            None => (spec, None),
        },
        None => match floor.flatten() {
            Some(f) => (with_floor_plans(merge::tighten_spec(&spec, f)?, f), Some(f)),
            None => (spec, None),
        },
    };
    // A profile the node applied is named like one the bundle named, so
    // that exec'd processes are held to it too (`tenant::Ceiling`).
    let out = match applied {
        Some(p) => {
            let mut out = out;
            let mut a = out.annotations().clone().unwrap_or_default();
            a.insert(PROFILE_ANNOTATION.to_owned(), p.name.clone());
            out.set_annotations(Some(a));
            out
        }
        None => out,
    };
    if let Some(f) = floor {
        let a = out.annotations().as_ref();
        let (mut net, audit, session): (NetworkPlan, _, _) = match f {
            Some(f) => (
                translate::network_plan(&f.network),
                translate::audit_plan(&f.audit),
                translate::session_plan(&f.resources),
            ),
            None => Default::default(),
        };
        // A floor that lets the sandbox reach the network at all lets it do
        // so through the runtime's user-mode egress (judged by the same
        // rules); only an isolated floor refuses it.
        if f.is_none_or(|f| !f.network.isolated) {
            net.egress = Some(crate::plan::Egress::Slirp4netns);
        }
        floor::network(&NetworkPlan::from_annotations(a)?, &net)
            .map_err(|w| loosens(NETWORK_ANNOTATION, w))?;
        floor::audit(&AuditPlan::from_annotations(a)?, &audit)
            .map_err(|w| loosens(AUDIT_ANNOTATION, w))?;
        floor::session(&SessionPlan::from_annotations(a)?, &session)
            .map_err(|w| loosens(SESSION_ANNOTATION, w))?;
    }
    Ok(out)
}

/// The floor's plans wherever the bundle brings none of its own: a bundle
/// that writes only its network plan keeps the floor's budgets and records.
/// (The engine brings the network and the filesystem: no user-mode egress,
/// no output limits.)
fn with_floor_plans(mut spec: Spec, floor: &Policy) -> Spec {
    let audit = translate::audit_plan(&floor.audit);
    let session = translate::session_plan(&floor.resources);
    let plans = [
        (
            NETWORK_ANNOTATION,
            Some(translate::network_plan(&floor.network).to_json()),
        ),
        (
            AUDIT_ANNOTATION,
            (audit != AuditPlan::default())
                .then(|| serde_json::to_string(&audit).expect("serialises")),
        ),
        (
            SESSION_ANNOTATION,
            (session != SessionPlan::default())
                .then(|| serde_json::to_string(&session).expect("serialises")),
        ),
    ];
    let mut a = spec.annotations().clone().unwrap_or_default();
    for (key, value) in plans {
        if let (false, Some(v)) = (a.contains_key(key), value) {
            a.insert(key.to_owned(), v);
        }
    }
    spec.set_annotations(Some(a));
    spec
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
        assert_eq!(
            apply(s.clone(), Path::new("/nonexistent"), &Node::default()).unwrap(),
            s
        );
    }

    #[test]
    fn a_profile_tightens_and_names_itself() {
        let s = spec(&[(PROFILE_ANNOTATION, "secure-agent")]);
        let out = apply(s, Path::new("/nonexistent"), &Node::default()).unwrap();
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
            let err = apply(
                spec(&[(PROFILE_ANNOTATION, bad)]),
                Path::new("/"),
                &Node::default(),
            )
            .unwrap_err();
            assert!(matches!(err, ApplyError::Profile(_)), "{bad}: {err}");
        }
    }

    fn node(yaml: &str) -> Node {
        Node::parse(yaml, Path::new("/test/runtime.yaml")).unwrap()
    }

    fn refused(s: Spec, n: &Node) -> String {
        apply(s, Path::new("/"), n).unwrap_err().to_string()
    }

    #[test]
    fn unknown_and_unhonoured_keys_are_refused() {
        let e = refused(spec(&[("io.purple.netwrok", "{}")]), &Node::default());
        assert!(
            e.contains("io.purple.netwrok") && e.contains("not one Purple reads"),
            "{e}"
        );
        let n = node("annotations: [io.purple.profile]\n");
        let e = refused(spec(&[(NETWORK_ANNOTATION, "{}")]), &n);
        assert!(
            e.contains(NETWORK_ANNOTATION) && e.contains("/test/runtime.yaml"),
            "{e}"
        );
        apply(
            spec(&[(PROFILE_ANNOTATION, "secure-agent")]),
            Path::new("/"),
            &n,
        )
        .unwrap();
    }

    #[test]
    fn out_of_the_box_metadata_stays_closed() {
        let e = refused(
            spec(&[(NETWORK_ANNOTATION, r#"{"allow_metadata":true}"#)]),
            &Node::default(),
        );
        assert!(
            e.contains(NETWORK_ANNOTATION)
                && e.contains("Purple's default")
                && e.contains("allow_metadata"),
            "{e}"
        );
        // The host's own bundles (purple run) have no floor.
        apply(
            spec(&[(NETWORK_ANNOTATION, r#"{"allow_metadata":true}"#)]),
            Path::new("/"),
            &Node::host(),
        )
        .unwrap();
    }

    #[test]
    fn under_a_profile_floor_annotations_only_tighten() {
        let n = node("floor: secure-agent\n");
        let e = refused(spec(&[(PROFILE_ANNOTATION, "development")]), &n);
        assert!(
            e.contains(PROFILE_ANNOTATION) && e.contains("\"secure-agent\""),
            "{e}"
        );
        let e = refused(spec(&[(NETWORK_ANNOTATION, r#"{"mode":"deny-list"}"#)]), &n);
        assert!(e.contains(NETWORK_ANNOTATION), "{e}");
        // No annotation: the floor itself applies.
        let out = apply(spec(&[("org.example", "x")]), Path::new("/"), &n).unwrap();
        assert_eq!(
            out.annotations().as_ref().unwrap()[crate::annotations::POLICY_NAME_ANNOTATION],
            "secure-agent"
        );
        // The floor's own plan, with one rule more, is tighter.
        let mut own = translate::network_plan(&match &n.floor {
            Floor::Profile(p) => p.network.clone(),
            _ => unreachable!(),
        });
        own.rules
            .push(crate::plan::Rule::deny("10.0.0.0/8".parse().unwrap(), "x"));
        let out = apply(
            spec(&[(NETWORK_ANNOTATION, &own.to_json())]),
            Path::new("/"),
            &n,
        )
        .unwrap();
        assert_eq!(
            out.annotations().as_ref().unwrap()[NETWORK_ANNOTATION],
            own.to_json()
        );
    }

    /// The runtime's user-mode egress is judged by the same rules: it opens
    /// nothing a floor with network access closes; an isolated floor has none.
    #[test]
    fn egress_passes_a_floor_with_network_and_not_an_isolated_one() {
        let with_egress = r#"{"egress":"slirp4netns"}"#;
        apply(
            spec(&[(NETWORK_ANNOTATION, with_egress)]),
            Path::new("/"),
            &Node::default(),
        )
        .unwrap();
        let n = node("floor: secure-agent\n");
        let mut own = translate::network_plan(&match &n.floor {
            Floor::Profile(p) => p.network.clone(),
            _ => unreachable!(),
        });
        own.egress = Some(crate::plan::Egress::Slirp4netns);
        apply(
            spec(&[(NETWORK_ANNOTATION, &own.to_json())]),
            Path::new("/"),
            &n,
        )
        .unwrap();
        let e = refused(
            spec(&[(NETWORK_ANNOTATION, with_egress)]),
            &node("floor: code-analyst\n"),
        );
        assert!(e.contains("egress") && e.contains("isolated"), "{e}");
    }
}
