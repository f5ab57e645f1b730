//! `ai_policy` through the translator: the gateway's plan in
//! `io.purple.llm` (names of key sources, never keys) and the direct routes
//! to the providers denied in the network plan, in both modes.

use std::path::Path;

use purple_policy::annotations::{LLM_ANNOTATION, NETWORK_ANNOTATION};
use purple_policy::llm::LlmPlan;
use purple_policy::load::{parse_policy, Context};
use purple_policy::plan::{Action, NetworkPlan};
use purple_policy::translate::{self, Process};
use serde_json::Value;

fn annotations(network: &str) -> (NetworkPlan, LlmPlan) {
    let yaml = format!(
        "name: a
{network}
ai_policy:
  llm_apis:
    providers:
      - name: openai
      - name: anthropic
        endpoints: [\"https://10.99.0.1:8443\"]
"
    );
    let ctx = Context {
        base: "/".into(),
        host_paths: false,
    };
    let (p, _) = parse_policy(&yaml, Path::new("p.yaml"), &ctx).unwrap();
    let process = Process {
        args: vec!["true".into()],
        env: Vec::new(),
        terminal: false,
    };
    let spec = translate::spec(&p, &process, Path::new("rootfs")).unwrap();
    let a = spec.annotations().clone().unwrap();
    let network = NetworkPlan::from_json(&a[NETWORK_ANNOTATION]).unwrap();
    let llm = LlmPlan::from_annotations(Some(&a)).unwrap().unwrap();
    let env: Value = serde_json::to_value(spec.process().as_ref().unwrap().env()).unwrap();
    assert!(
        !env.to_string().contains("OPENAI"),
        "the translator sets no gateway variables: {env}"
    );
    (network, llm)
}

#[test]
fn the_providers_endpoints_are_denied_by_name_and_address() {
    for mode in [
        "",
        "network:\n  mode: allow-list\n  allowed_domains: [api.openai.com]",
    ] {
        let (net, llm) = annotations(mode);
        assert!(
            net.blocked_domains
                .iter()
                .any(|d| d.as_str() == "api.openai.com"),
            "{net:?}"
        );
        let rule = net
            .rules
            .iter()
            .find(|r| r.name.as_deref() == Some(translate::LLM_PROVIDER_RULE))
            .unwrap_or_else(|| panic!("{net:?}"));
        assert_eq!(rule.action, Action::Deny);
        assert_eq!(rule.cidr.to_string(), "10.99.0.1/32");
        assert_eq!((rule.ports[0].first, rule.ports[0].last), (8443, 8443));
        assert_eq!(llm.providers.len(), 2);
    }
}

#[test]
fn a_bundle_plan_with_unknown_fields_or_duplicate_providers_is_refused() {
    let bad = |json: &str| {
        let a = std::collections::HashMap::from([(LLM_ANNOTATION.to_owned(), json.to_owned())]);
        LlmPlan::from_annotations(Some(&a)).unwrap_err().to_string()
    };
    let provider = r#"{"name":"openai","api":"openai","endpoint":{"host":"api.openai.com","port":443,"base_path":"/v1"},"key":{"env":"K"}}"#;
    let e = bad(&format!(
        r#"{{"providers":[{provider},{provider}],"prices":{{}}}}"#
    ));
    assert!(e.contains("twice"), "{e}");
    let e = bad(r#"{"providers":[],"prices":{},"key":"sk-x"}"#);
    assert!(e.contains("unknown field"), "{e}");
    let evil = provider.replace("api.openai.com", "a/b");
    let e = bad(&format!(r#"{{"providers":[{evil}],"prices":{{}}}}"#));
    assert!(e.contains("not a host"), "{e}");
}
