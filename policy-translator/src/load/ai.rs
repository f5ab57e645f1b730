//! `ai_policy`: the providers the sandbox reaches through Purple's LLM
//! gateway, their keys' host sources, prices, budgets and what is logged.
//! Decoded straight into the gateway's plan ([`LlmPlan`]).

use std::collections::HashMap;

use super::{absolute, opt_bool};
use crate::decode::{Decoder, Shape};
use crate::llm::{
    parse_dollars, provider_name_ok, shipped_prices, Api, Budget, Endpoint, KeySource, LlmPlan,
    Price, RateLimits,
};
use crate::yaml::{Node, Value};

pub(super) const AI: Shape = Shape {
    fields: &[
        "budget",
        "rate_limits",
        "llm_apis",
        "security",
        "monitoring",
        "prices",
    ],
    renamed: &[],
    inert: &[],
};

pub(super) const BUDGET: Shape = Shape {
    fields: &["max_tokens", "max_cost", "stop_session"],
    renamed: &[],
    inert: &[],
};

pub(super) const RATES: Shape = Shape {
    fields: &["requests_per_minute", "tokens_per_minute"],
    renamed: &[],
    inert: &[],
};

pub(super) const APIS: Shape = Shape {
    fields: &["providers", "block_unknown"],
    renamed: &[],
    inert: &[],
};

pub(super) const PROVIDER: Shape = Shape {
    fields: &[
        "name",
        "api",
        "endpoints",
        "models",
        "api_key_env",
        "api_key_file",
    ],
    renamed: &[],
    inert: &[],
};

pub(super) const SECURITY: Shape = Shape {
    fields: &["prompt_injection_detection", "sensitive_data_scanning"],
    renamed: &[],
    inert: &[],
};

pub(super) const MONITORING: Shape = Shape {
    fields: &["log_prompts", "log_responses", "log_tokens", "log_costs"],
    renamed: &[],
    inert: &[],
};

pub(super) const PRICE: Shape = Shape {
    fields: &[
        "provider",
        "model",
        "input",
        "output",
        "cached_input",
        "cache_write",
    ],
    renamed: &[],
    inert: &[],
};

/// `None` when the section is absent.
pub(super) fn ai(d: &mut Decoder, n: &Node) -> Option<LlmPlan> {
    let f = d.fields(n, "ai_policy", &AI)?;
    let rate_limits = f
        .get("rate_limits")
        .and_then(|r| {
            let path = f.path("rate_limits");
            let r = d.fields(r, &path, &RATES)?;
            let mut per_minute = |key: &'static str| {
                r.get(key)
                    .and_then(|n| d.int(n, &r.path(key), 1, u64::MAX >> 1))
            };
            Some(RateLimits {
                requests_per_minute: per_minute("requests_per_minute"),
                tokens_per_minute: per_minute("tokens_per_minute"),
            })
        })
        .unwrap_or_default();
    let budget = f
        .get("budget")
        .and_then(|b| budget(d, b, &f.path("budget")))
        .unwrap_or_default();
    let (scan_secrets, _) = f
        .get("security")
        .and_then(|s| security(d, s, &f.path("security")))
        .unwrap_or_default();
    let (log_prompts, log_responses) = f
        .get("monitoring")
        .and_then(|m| {
            let path = f.path("monitoring");
            let m = d.fields(m, &path, &MONITORING)?;
            // Tokens and costs are always in `llm.request`: the two flags
            // only confirm that.
            for key in ["log_tokens", "log_costs"] {
                if let Some(n) = m.get(key) {
                    if d.bool(n, &m.path(key)) == Some(false) {
                        d.warn(
                            n.pos,
                            &m.path(key),
                            "tokens and costs are always recorded in llm.request",
                            format!("remove `{key}: false`"),
                        );
                    }
                }
            }
            Some((
                opt_bool(d, &m, "log_prompts", false),
                opt_bool(d, &m, "log_responses", false),
            ))
        })
        .unwrap_or_default();
    let apis = d.required(&f, "llm_apis")?;
    let apis_path = f.path("llm_apis");
    let apis = d.fields(apis, &apis_path, &APIS)?;
    let block_unknown = opt_bool(d, &apis, "block_unknown", false);
    let providers_node = d.required(&apis, "providers")?;
    let providers = d.list(providers_node, &apis.path("providers"), provider);
    for (i, p) in providers.iter().enumerate() {
        if providers[..i].iter().any(|q| q.name == p.name) {
            d.error(
                providers_node.pos,
                &apis.path("providers"),
                format!("provider {:?} is listed twice", p.name),
                "list each provider once",
            );
        }
    }
    if providers.is_empty()
        && !d
            .diagnostics
            .iter()
            .any(|x| x.path.starts_with("ai_policy"))
    {
        d.error(
            providers_node.pos,
            &apis.path("providers"),
            "no provider is listed",
            "add e.g. `- name: openai`, or remove `ai_policy`",
        );
    }
    let mut prices: HashMap<String, HashMap<String, Price>> = providers
        .iter()
        .map(|p| (p.name.clone(), shipped_prices(p.api)))
        .collect();
    if let Some(list) = f.get("prices") {
        let path = f.path("prices");
        for (provider, model, price) in d.list(list, &path, price) {
            match prices.get_mut(&provider) {
                Some(table) => {
                    table.insert(model, price);
                }
                None => d.error(
                    list.pos,
                    &path,
                    format!("a price names provider {provider:?}, which is not listed"),
                    "name one of `llm_apis.providers`",
                ),
            }
        }
    }
    Some(LlmPlan {
        providers,
        block_unknown,
        budget,
        rate_limits,
        scan_secrets,
        log_prompts,
        log_responses,
        prices,
    })
}

fn budget(d: &mut Decoder, n: &Node, path: &str) -> Option<Budget> {
    let b = d.fields(n, path, &BUDGET)?;
    let max_tokens = b
        .get("max_tokens")
        .and_then(|n| d.int(n, &b.path("max_tokens"), 1, u64::MAX >> 1));
    let max_cost_micros = b
        .get("max_cost")
        .and_then(|n| dollars(d, n, &b.path("max_cost")));
    Some(Budget {
        max_tokens,
        max_cost_micros,
        stop_session: opt_bool(d, &b, "stop_session", false),
    })
}

fn dollars(d: &mut Decoder, n: &Node, path: &str) -> Option<u64> {
    let text = match &n.value {
        Value::Int(i) => i.to_string(),
        Value::Float(x) => x.to_string(),
        Value::Str(s) => s.clone(),
        _ => String::new(),
    };
    match parse_dollars(&text) {
        Ok(v) => Some(v),
        Err(why) => {
            d.error(n.pos, path, why, "write dollars, e.g. \"$10.00\" or 2.5");
            None
        }
    }
}

/// (`sensitive_data_scanning`, `prompt_injection_detection`).
fn security(d: &mut Decoder, n: &Node, path: &str) -> Option<(bool, bool)> {
    let s = d.fields(n, path, &SECURITY)?;
    let injection = opt_bool(d, &s, "prompt_injection_detection", false);
    if injection {
        let n = s.get("prompt_injection_detection").expect("read above");
        d.error(
            n.pos,
            &s.path("prompt_injection_detection"),
            "prompt injection cannot be detected reliably by pattern matching, and Purple \
             does not claim what it cannot enforce",
            "remove it or set it to false; contain what an injected agent can do with the \
             policy's network, filesystem and budget limits",
        );
    }
    Some((opt_bool(d, &s, "sensitive_data_scanning", false), injection))
}

fn provider(d: &mut Decoder, n: &Node, path: &str) -> Option<crate::llm::Provider> {
    let f = d.fields(n, path, &PROVIDER)?;
    let name_node = d.required(&f, "name")?;
    let name = d.string(name_node, &f.path("name"))?;
    if !provider_name_ok(&name) {
        d.error(
            name_node.pos,
            &f.path("name"),
            format!("{name:?} is not a provider name"),
            "use lowercase letters, digits and dashes, e.g. openai",
        );
        return None;
    }
    let apis = [("openai", Api::Openai), ("anthropic", Api::Anthropic)];
    let api = match f.get("api") {
        Some(a) => super::keyword(d, a, &f.path("api"), &apis)?,
        None => match apis.iter().find(|(k, _)| *k == name) {
            Some((_, api)) => *api,
            None => {
                d.error(
                    name_node.pos,
                    &f.path("api"),
                    format!("provider {name:?} does not say which API it speaks"),
                    "add `api: openai` or `api: anthropic`",
                );
                return None;
            }
        },
    };
    let endpoint = match f.get("endpoints") {
        Some(e) => {
            let epath = f.path("endpoints");
            let urls = d.strings(e, &epath);
            if urls.len() != 1 {
                d.error(
                    e.pos,
                    &epath,
                    format!("{} endpoints are listed", urls.len()),
                    "list exactly one https:// URL (the gateway sends every request there)",
                );
                return None;
            }
            let (url, pos) = &urls[0];
            match Endpoint::parse(url) {
                Ok(ep) => ep,
                Err(why) => {
                    d.error(
                        *pos,
                        &format!("{epath}[0]"),
                        why,
                        "write e.g. https://api.openai.com/v1",
                    );
                    return None;
                }
            }
        }
        None => Endpoint::parse(api.default_endpoint()).expect("shipped endpoints parse"),
    };
    let models = f
        .get("models")
        .map(|m| {
            d.strings(m, &f.path("models"))
                .into_iter()
                .map(|(s, _)| s)
                .collect()
        })
        .unwrap_or_default();
    let key = match (f.get("api_key_env"), f.get("api_key_file")) {
        (Some(_), Some(file)) => {
            d.error(
                file.pos,
                &f.path("api_key_file"),
                "both `api_key_env` and `api_key_file` are given",
                "keep one",
            );
            return None;
        }
        (Some(e), None) => {
            let p = f.path("api_key_env");
            let var = d.string(e, &p)?;
            let ok = !var.is_empty()
                && !var.starts_with(|c: char| c.is_ascii_digit())
                && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !ok {
                d.error(
                    e.pos,
                    &p,
                    format!("{var:?} is not a variable name"),
                    "write e.g. OPENAI_API_KEY",
                );
                return None;
            }
            KeySource::Env(var)
        }
        (None, Some(file)) => KeySource::File(absolute(d, file, &f.path("api_key_file"))?),
        (None, None) => KeySource::Env(api.default_key_env().to_owned()),
    };
    Some(crate::llm::Provider {
        name,
        api,
        endpoint,
        models,
        key,
    })
}

fn price(d: &mut Decoder, n: &Node, path: &str) -> Option<(String, String, Price)> {
    let f = d.fields(n, path, &PRICE)?;
    let provider = d
        .required(&f, "provider")
        .and_then(|n| d.string(n, &f.path("provider")));
    let model = d
        .required(&f, "model")
        .and_then(|n| d.string(n, &f.path("model")));
    let input = d
        .required(&f, "input")
        .and_then(|n| dollars(d, n, &f.path("input")));
    let output = d
        .required(&f, "output")
        .and_then(|n| dollars(d, n, &f.path("output")));
    let input = input?;
    let cached_input = match f.get("cached_input") {
        Some(n) => dollars(d, n, &f.path("cached_input"))?,
        None => input,
    };
    let cache_write = match f.get("cache_write") {
        Some(n) => dollars(d, n, &f.path("cache_write"))?,
        None => input,
    };
    Some((
        provider?,
        model?,
        Price {
            input,
            output: output?,
            cached_input,
            cache_write,
        },
    ))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::diag::Severity;
    use crate::llm::{Api, KeySource};
    use crate::load::{parse_policy, Context};

    fn ctx() -> Context {
        Context {
            base: "/".into(),
            host_paths: false,
        }
    }

    fn errors(yaml: &str) -> Vec<(usize, String, String)> {
        let report = parse_policy(yaml, Path::new("p.yaml"), &ctx()).unwrap_err();
        report
            .diagnostics
            .into_iter()
            .filter(|d| d.severity == Severity::Error)
            .map(|d| (d.pos.line, d.path, d.message))
            .collect()
    }

    #[test]
    fn a_full_section_becomes_the_gateway_plan() {
        let yaml = r#"
name: a
ai_policy:
  budget: { max_tokens: 1000, max_cost: "$2.50" }
  rate_limits: { requests_per_minute: 60, tokens_per_minute: "100000" }
  llm_apis:
    block_unknown: true
    providers:
      - name: openai
        models: [gpt-4o-mini]
      - name: local
        api: anthropic
        endpoints: ["https://llm.example.com:8443/api/"]
        api_key_file: /etc/purple/keys/local
  security: { sensitive_data_scanning: true, prompt_injection_detection: false }
  monitoring: { log_prompts: true, log_tokens: true }
  prices:
    - { provider: local, model: house-model, input: "0.5", output: 1 }
"#;
        let (p, _) = parse_policy(yaml, Path::new("p.yaml"), &ctx()).unwrap();
        let ai = p.ai.unwrap();
        assert_eq!(ai.budget.max_tokens, Some(1000));
        assert_eq!(ai.budget.max_cost_micros, Some(2_500_000));
        assert_eq!(ai.rate_limits.requests_per_minute, Some(60));
        assert_eq!(ai.rate_limits.tokens_per_minute, Some(100_000));
        assert!(ai.block_unknown && ai.scan_secrets && ai.log_prompts && !ai.log_responses);
        let openai = &ai.providers[0];
        assert_eq!(
            (openai.api, openai.endpoint.host.as_str()),
            (Api::Openai, "api.openai.com")
        );
        assert_eq!(openai.key, KeySource::Env("OPENAI_API_KEY".into()));
        let local = &ai.providers[1];
        assert_eq!(
            (local.endpoint.port, local.endpoint.base_path.as_str()),
            (8443, "/api")
        );
        assert_eq!(local.key, KeySource::File("/etc/purple/keys/local".into()));
        let house = ai.price("local", "house-model").unwrap();
        assert_eq!(
            (house.input, house.output, house.cached_input),
            (500_000, 1_000_000, 500_000)
        );
        assert!(
            ai.price("openai", "gpt-4o-mini").is_some(),
            "shipped prices kept"
        );
    }

    #[test]
    fn what_cannot_be_enforced_is_refused_at_its_line() {
        let yaml = "name: a
ai_policy:
  rate_limits: { requests_per_minute: 0 }
  security: { prompt_injection_detection: true }
  llm_apis:
    providers:
      - name: openai
        endpoints: [\"http://api.openai.com\"]
      - name: mystery
      - name: anthropic
        api_key_env: \"BAD-NAME\"
        colour: blue
";
        let e = errors(yaml);
        let at = |line: usize, path: &str| {
            assert!(
                e.iter().any(|(l, p, _)| *l == line && p == path),
                "no error at {line} {path}: {e:#?}"
            )
        };
        at(3, "ai_policy.rate_limits.requests_per_minute");
        at(4, "ai_policy.security.prompt_injection_detection");
        at(8, "ai_policy.llm_apis.providers[0].endpoints[0]");
        at(9, "ai_policy.llm_apis.providers[1].api");
        at(11, "ai_policy.llm_apis.providers[2].api_key_env");
        at(12, "ai_policy.llm_apis.providers[2].colour");
    }

    #[test]
    fn bad_amounts_and_unlisted_price_providers_are_named() {
        let e = errors(
            "name: a
ai_policy:
  budget: { max_cost: \"ten dollars\" }
  llm_apis: { providers: [{ name: openai }] }
  prices:
    - { provider: other, model: m, input: 1, output: 1 }
",
        );
        assert!(
            e.iter()
                .any(|(l, p, _)| *l == 3 && p == "ai_policy.budget.max_cost"),
            "{e:#?}"
        );
        assert!(
            e.iter()
                .any(|(_, p, m)| p == "ai_policy.prices" && m.contains("other")),
            "{e:#?}"
        );
    }
}
