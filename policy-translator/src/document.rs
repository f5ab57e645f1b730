//! A [`Policy`] written back as a policy file: the form [`crate::load`]
//! reads, defaults filled in, so that what `purple policy show` prints can be
//! saved, edited and loaded again into the same policy.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use yaml_rust2::yaml::Hash;
use yaml_rust2::{Yaml, YamlEmitter};

use crate::llm::{shipped_prices, KeySource, LlmPlan};
use crate::load::shape_of;
use crate::schema::Policy;

/// The policy as the loader's input (JSON: keys sorted).
pub fn document(p: &Policy) -> Value {
    let mut v = serde_json::to_value(p).expect("a policy serialises");
    let top = v.as_object_mut().expect("a policy is a mapping");
    // The schema's names and forms where they differ from the file's.
    let network = top["network"].as_object_mut().expect("a section");
    if network.remove("allow_rebinding") == Some(Value::Bool(true)) {
        network.insert("dns_rebinding".into(), json!("allow"));
    }
    let user = top["user"].as_object_mut().expect("a section");
    if user.get("namespace") == Some(&Value::Null) {
        user.insert("namespace".into(), json!({ "enabled": false }));
    }
    // Syscall counting is asked for under ebpf_monitoring.
    let audit = top["audit"].as_object_mut().expect("a section");
    if audit.remove("trace_syscalls") == Some(Value::Bool(true)) {
        top.insert("ebpf_monitoring".into(), json!({ "trace_syscalls": true }));
    }
    top.remove("ai");
    if let Some(ai) = &p.ai {
        top.insert("ai_policy".into(), ai_policy(ai));
    }
    strip_nulls(&mut v);
    v
}

/// The policy as YAML text, keys in the order the loader's shapes list them
/// (comments are not kept: the loader reads none).
pub fn yaml(p: &Policy) -> String {
    let mut out = String::new();
    YamlEmitter::new(&mut out)
        .dump(&to_yaml(&document(p), ""))
        .expect("writing to a string cannot fail");
    out.push('\n');
    out
}

/// `ai_policy` from the gateway's plan: dollars as strings, only the prices
/// the policy set (the shipped ones come back by themselves).
fn ai_policy(plan: &LlmPlan) -> Value {
    let providers: Vec<Value> = plan
        .providers
        .iter()
        .map(|pr| {
            let e = &pr.endpoint;
            let port = if e.port == 443 {
                String::new()
            } else {
                format!(":{}", e.port)
            };
            let mut v = json!({
                "name": pr.name,
                "api": pr.api,
                "endpoints": [format!("https://{}{port}{}", e.host, e.base_path)],
                "models": pr.models,
            });
            match &pr.key {
                KeySource::Env(var) => v["api_key_env"] = json!(var),
                KeySource::File(path) => v["api_key_file"] = json!(path),
            }
            v
        })
        .collect();
    let mut prices = Vec::new();
    for pr in &plan.providers {
        let shipped = shipped_prices(pr.api);
        let table: BTreeMap<_, _> = plan.prices.get(&pr.name).into_iter().flatten().collect();
        for (model, price) in table {
            if shipped.get(model) != Some(price) {
                prices.push(json!({
                    "provider": pr.name,
                    "model": model,
                    "input": dollars(price.input),
                    "output": dollars(price.output),
                    "cached_input": dollars(price.cached_input),
                    "cache_write": dollars(price.cache_write),
                }));
            }
        }
    }
    let mut budget = json!({ "stop_session": plan.budget.stop_session });
    if let Some(t) = plan.budget.max_tokens {
        budget["max_tokens"] = json!(t);
    }
    if let Some(c) = plan.budget.max_cost_micros {
        budget["max_cost"] = json!(dollars(c));
    }
    json!({
        "budget": budget,
        "rate_limits": plan.rate_limits,
        "llm_apis": { "providers": providers, "block_unknown": plan.block_unknown },
        "security": { "sensitive_data_scanning": plan.scan_secrets },
        "monitoring": { "log_prompts": plan.log_prompts, "log_responses": plan.log_responses },
        "prices": prices,
    })
}

/// Millionths of a dollar as `"$W.FFFFFF"`, trailing zeros dropped.
fn dollars(micros: u64) -> String {
    let frac = format!("{:06}", micros % 1_000_000);
    let frac = frac.trim_end_matches('0');
    let frac = if frac.is_empty() { "00" } else { frac };
    format!("${}.{frac}", micros / 1_000_000)
}

/// Unset optional fields are absent from a file, not null.
fn strip_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, x| !x.is_null());
            m.values_mut().for_each(strip_nulls);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

/// `path` names a mapping as the loader's shapes do (`filesystem`,
/// `filesystem.output_paths`: list items share their list's path); its keys
/// come in its shape's order.
fn to_yaml(v: &Value, path: &str) -> Yaml {
    match v {
        Value::Null => Yaml::Null,
        Value::Bool(b) => Yaml::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Yaml::Integer(i),
            None => Yaml::Real(n.to_string()),
        },
        Value::String(s) => Yaml::String(s.clone()),
        Value::Array(a) => Yaml::Array(a.iter().map(|i| to_yaml(i, path)).collect()),
        Value::Object(m) => {
            let order = shape_of(path).map_or(&[][..], |s| s.fields);
            let rank = |k: &str| order.iter().position(|f| *f == k).unwrap_or(order.len());
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort_by_key(|k| (rank(k), k.as_str()));
            let mut h = Hash::new();
            for k in keys {
                let child = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                h.insert(Yaml::String(k.clone()), to_yaml(&m[k], &child));
            }
            Yaml::Hash(h)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::load::{parse_policy, Context};
    use crate::profiles::BUILT_IN;

    fn load(text: &str, ctx: &Context) -> Policy {
        match parse_policy(text, Path::new("p.yaml"), ctx) {
            Ok((p, _)) => p,
            Err(report) => panic!("{}\n--- in:\n{text}", report.render(None)),
        }
    }

    /// Loading what `yaml` wrote gives the policy back, field for field.
    fn round_trip(text: &str, ctx: &Context) {
        let p = load(text, ctx);
        let written = yaml(&p);
        assert_eq!(load(&written, ctx), p, "--- written:\n{written}");
        let json = serde_json::to_string(&document(&p)).unwrap();
        assert_eq!(load(&json, ctx), p, "--- written:\n{json}");
    }

    #[test]
    fn every_built_in_profile_comes_back_as_it_was_read() {
        let ctx = Context {
            base: std::env::temp_dir(),
            host_paths: true,
        };
        for (name, text) in BUILT_IN {
            eprintln!("{name}");
            round_trip(text, &ctx);
        }
    }

    #[test]
    fn every_field_a_default_leaves_out_comes_back() {
        let ctx = Context {
            base: "/".into(),
            host_paths: false,
        };
        round_trip(
            r#"
name: every-field
description: "all of it"
hostname: box
environment: { A: "1", B: "two words" }
filesystem:
  immutable_paths: [{ host_path: /usr, sandbox_path: /usr, optional: true }]
  output_paths: [{ host_path: /var/tmp/out, sandbox_path: /out, max_size: "10M" }]
  scratch_paths: ["/tmp", { path: /scratch, size: "1G" }]
  working_dir: /work
  read_only_root: true
  scratch_size: "8M"
  max_file_size: "1M"
syscalls:
  default_deny: true
  action: kill
  allow: [read, write, exit_group, accept4, sendmsg, close, statx, newfstatat, execve]
  advanced_rules:
    - { syscall: socket, action: allow, conditions: [{ arg: 0, op: eq, value: 2 }] }
    - { syscall: ioctl, action: errno, conditions: [{ arg: 1, op: masked_eq, value: 4, mask: 12 }] }
  allow_io_uring: true
  allow_socket_families: [netlink, vsock]
resources:
  memory_limit_bytes: "256M"
  swap_limit_bytes: 0
  cpu_shares: 1.5
  pids_limit: 64
  block_io_limit: "10M"
  session_timeout_seconds: 600
  cpu_time_limit_seconds: 60
capabilities: { default_drop: true, add: [NET_BIND_SERVICE], no_new_privileges: true }
network:
  isolated: false
  mode: allow-list
  allowed_ips: ["10.1.0.0/16"]
  blocked_ips: ["10.1.2.0/24", "fd00::/8"]
  allow_outgoing: [443, "8000-8100"]
  allow_incoming: [8080]
  allowed_domains: [example.com, "*.example.org"]
  dns_servers: [10.1.0.53]
  dns_rebinding: allow
audit:
  log_path: /var/log/purple/x.jsonl
  record: [network.allowed]
  on_failure: continue
  max_size: "100M"
  alerts: { command: [/usr/bin/logger, -t, purple], syslog: /dev/log, records: all, format: ocsf }
ebpf_monitoring: { trace_exec: true, trace_syscalls: true }
user:
  uid: 1000
  gid: 1000
  additional_gids: [27]
  namespace: { host_id: 200000, size: 70000 }
ai_policy:
  budget: { max_tokens: 1000, max_cost: "$2.50", stop_session: true }
  rate_limits: { requests_per_minute: 60 }
  llm_apis:
    block_unknown: true
    providers:
      - { name: openai, models: [gpt-4o] }
      - name: local
        api: anthropic
        endpoints: ["https://llm.internal:8443/anthropic"]
        api_key_file: /etc/purple/keys/local
  security: { sensitive_data_scanning: true }
  monitoring: { log_prompts: true }
  prices:
    - { provider: local, model: small, input: "0.10", output: "0.40" }
    - { provider: openai, model: gpt-4o, input: "3", output: "11", cached_input: "1.5" }
"#,
            &ctx,
        );
    }

    #[test]
    fn a_policy_without_a_user_namespace_says_so() {
        let ctx = Context {
            base: "/".into(),
            host_paths: false,
        };
        let p = load("name: a\nuser: { namespace: { enabled: false } }\n", &ctx);
        let written = yaml(&p);
        assert!(written.contains("enabled: false"), "{written}");
        assert_eq!(load(&written, &ctx), p);
    }

    #[test]
    fn dollars_keep_every_digit() {
        assert_eq!(dollars(2_500_000), "$2.5");
        assert_eq!(dollars(3_000_000), "$3.00");
        assert_eq!(dollars(1), "$0.000001");
    }
}
