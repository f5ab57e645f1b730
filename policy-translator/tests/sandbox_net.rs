//! `network.isolated` and `network.namespace` as the spec and the plan carry
//! them: a private namespace with user-mode egress by default, an empty one
//! when isolated, the caller's only by explicit opt-in (loopback judged),
//! and never Purple's egress for an engine's container.

use std::path::{Path, PathBuf};

use purple_policy::annotations::NETWORK_ANNOTATION;
use purple_policy::load::{parse_policy, Context};
use purple_policy::plan::{Egress, NetworkPlan};
use purple_policy::schema::Policy;
use purple_policy::translate::{self, Process};

fn parse(network: &str) -> Result<(Policy, String), String> {
    let yaml = format!("name: t\nnetwork:\n{network}\n");
    let ctx = Context {
        base: PathBuf::from("/"),
        host_paths: true,
    };
    parse_policy(&yaml, Path::new("t.yaml"), &ctx)
        .map(|(p, r)| (p, r.render(None)))
        .map_err(|r| r.to_string())
}

fn spec(p: &Policy) -> oci_spec::runtime::Spec {
    let process = Process {
        args: vec!["true".into()],
        env: vec![],
        terminal: false,
    };
    translate::spec(p, &process, Path::new("rootfs")).unwrap()
}

fn netns(s: &oci_spec::runtime::Spec) -> bool {
    s.linux()
        .as_ref()
        .and_then(|l| l.namespaces().clone())
        .unwrap_or_default()
        .iter()
        .any(|n| n.typ() == oci_spec::runtime::LinuxNamespaceType::Network && n.path().is_none())
}

fn plan(s: &oci_spec::runtime::Spec) -> NetworkPlan {
    NetworkPlan::from_json(&s.annotations().as_ref().unwrap()[NETWORK_ANNOTATION]).unwrap()
}

#[test]
fn default_is_a_private_namespace_with_user_mode_egress() {
    let (p, _) = parse("  isolated: false").unwrap();
    let s = spec(&p);
    assert!(netns(&s));
    assert_eq!(plan(&s).egress, Some(Egress::Slirp4netns));
    assert!(!plan(&s).judge_loopback);
    // The sandbox's resolv.conf names slirp4netns's forwarder.
    let mounts = s.mounts().clone().unwrap_or_default();
    assert!(mounts
        .iter()
        .any(|m| m.destination() == Path::new("/etc/resolv.conf")));
}

#[test]
fn isolated_is_an_empty_namespace() {
    let (p, _) = parse("  isolated: true").unwrap();
    let s = spec(&p);
    assert!(netns(&s));
    assert_eq!(plan(&s).egress, None);
}

#[test]
fn host_namespace_is_an_opt_in_with_a_warning_and_judged_loopback() {
    let (p, warnings) = parse("  namespace: host").unwrap();
    assert!(
        warnings.contains("shares the caller's network namespace"),
        "{warnings}"
    );
    let s = spec(&p);
    assert!(!netns(&s));
    assert_eq!(plan(&s).egress, None);
    assert!(plan(&s).judge_loopback);
}

#[test]
fn bad_namespace_values_are_refused_naming_the_field() {
    let err = parse("  namespace: hots").unwrap_err();
    assert!(err.contains("network.namespace"), "{err}");
    let err = parse("  namespace: host\n  isolated: true").unwrap_err();
    assert!(err.contains("network.namespace"), "{err}");
    assert!(err.contains("remove one of them"), "{err}");
}

#[test]
fn an_engine_container_never_gets_purples_egress() {
    let (p, _) = parse("  isolated: false").unwrap();
    let engine: oci_spec::runtime::Spec = Default::default();
    let merged = purple_policy::merge::tighten(&engine, &p).unwrap();
    assert_eq!(plan(&merged).egress, None);
}
