//! Learn mode: a least-privilege policy written from what a run did. The
//! base policy is the starting point; the run's audit trail narrows it:
//!
//! - network: an allow-list of the addresses the agent connected to and the
//!   names its allowed connections were learned from (`network.allowed`
//!   records, which a learning run asks for);
//! - syscalls: an allow-list of the calls it made (the `exited` record's
//!   counts, `ebpf_monitoring.trace_syscalls`) and those the runtime's start
//!   needs;
//! - resources: memory and wall time from the run's peaks, with headroom,
//!   when the caller measured them (`purple run --learn`).
//!
//! What the trail cannot tell (the files it used: no file records yet) stays
//! the base's. The text says where each part came from; the policy is
//! loaded before it is handed back, so what is written always validates.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::Path;

use purple_policy::domain::Domain;
use purple_policy::load::{parse_policy, Context};
use purple_policy::plan::{Cidr, Mode};
use purple_policy::schema::Policy;

use crate::audit::{Kind, Record};

#[derive(Debug, thiserror::Error)]
pub enum LearnError {
    #[error("{0} holds no run: no `created` record (is it a Purple audit log?)")]
    NotARun(String),
    #[error("the learned policy does not load (a bug: please report it):\n{0}")]
    Invalid(String),
}

/// What the caller measured of the run, beyond its trail.
#[derive(Debug, Clone, Copy, Default)]
pub struct Measured {
    pub memory_peak: Option<u64>,
    pub wall_seconds: Option<u64>,
}

/// What the trail says the run did.
#[derive(Debug, Default)]
struct Seen {
    /// Address → (ports, connections).
    addresses: BTreeMap<IpAddr, (BTreeSet<u16>, u64)>,
    domains: BTreeSet<String>,
    blocked: u64,
    syscalls: Option<BTreeMap<String, u64>>,
    programs: BTreeSet<String>,
}

/// The rule label of an address learned from a DNS answer.
const DOMAIN_RULE: &str = "allowed domain ";

fn seen(records: &[Record]) -> Seen {
    let mut s = Seen::default();
    for r in records {
        match Kind::parse(&r.kind) {
            Some(Kind::NetworkAllowed) => {
                let d = &r.details;
                let Some(addr) = d["destination"].as_str().and_then(|a| a.parse().ok()) else {
                    continue;
                };
                if let Some(name) = r.rule.as_deref().and_then(|l| l.split_once(DOMAIN_RULE)) {
                    s.domains.insert(name.1.trim().to_owned());
                    continue;
                }
                // Loopback in the sandbox's own namespace is always free.
                if r.rule.as_deref().is_some_and(|l| l.starts_with("loopback")) {
                    continue;
                }
                let e = s.addresses.entry(addr).or_default();
                if let Some(p) = d["port"].as_u64() {
                    e.0.insert(p as u16);
                }
                e.1 += crate::audit::stands_for(Kind::NetworkAllowed, d);
            }
            Some(Kind::NetworkBlocked) => s.blocked += 1,
            Some(Kind::ProcessExec) => {
                if let Some(f) = r.details["filename"].as_str() {
                    s.programs.insert(f.to_owned());
                }
            }
            Some(Kind::Lifecycle) if r.details["event"] == "exited" => {
                if let Some(m) = r.details["syscalls"].as_object() {
                    s.syscalls = Some(
                        m.iter()
                            .filter_map(|(k, v)| Some((k.clone(), v.as_u64()?)))
                            .collect(),
                    );
                }
            }
            _ => {}
        }
    }
    s
}

/// Rounded up to a whole MiB, with room to grow: twice the peak, at least 64 MiB.
fn with_headroom(peak: u64) -> u64 {
    let want = (peak * 2).max(64 << 20);
    want.div_ceil(1 << 20) << 20
}

/// The learned policy named `name`, as a commented policy file.
pub fn learn(
    records: &[Record],
    base: &Policy,
    base_name: &str,
    name: &str,
    measured: Measured,
    source: &Path,
) -> Result<String, LearnError> {
    if !records
        .iter()
        .any(|r| r.kind == Kind::Lifecycle.as_str() && r.details["event"] == "created")
    {
        return Err(LearnError::NotARun(source.display().to_string()));
    }
    let s = seen(records);
    let mut p = base.clone();
    p.name = name.to_owned();
    p.description = format!(
        "learned from {} (base {base_name}); check it before trusting it",
        source.display()
    );
    p.network.mode = Mode::AllowList;
    p.network.allowed_ips = s.addresses.keys().map(|a| Cidr::host(*a)).collect();
    p.network.allowed_domains = s
        .domains
        .iter()
        .filter_map(|d| d.parse::<Domain>().ok())
        .collect();
    if p.network.allowed_domains.is_empty() {
        // No name was used: the resolver would answer none anyway.
        p.network.dns_servers.clear();
    }
    let mut unnamed = Vec::new();
    if let Some(calls) = &s.syscalls {
        let mut allow: BTreeSet<String> = BTreeSet::new();
        for name in calls.keys() {
            if name.starts_with("nr_") {
                unnamed.push(name.clone());
            } else {
                allow.insert(name.clone());
            }
        }
        allow.extend(
            purple_policy::handover::start_calls()
                .chain(purple_policy::handover::handover_calls())
                .map(str::to_owned),
        );
        p.syscalls.default_deny = true;
        p.syscalls.deny.retain(|d| !allow.contains(d));
        p.syscalls.allow = allow.into_iter().collect();
        // The learning run counted; the learned policy need not.
        p.audit.trace_syscalls = false;
    }
    if let Some(peak) = measured.memory_peak {
        p.resources.memory_limit_bytes = Some(with_headroom(peak));
    }
    if let Some(wall) = measured.wall_seconds {
        p.resources.session_timeout_seconds = Some((wall * 3).max(60));
    }
    let mut text = header(&s, base_name, source, measured, &unnamed);
    text.push_str(&purple_policy::document::yaml(&p));
    let ctx = Context {
        host_paths: false,
        ..Context::default()
    };
    parse_policy(&text, Path::new("learned.yaml"), &ctx)
        .map_err(|r| LearnError::Invalid(r.render(None)))?;
    Ok(text)
}

/// Where each part of the policy came from, as comments.
fn header(s: &Seen, base: &str, source: &Path, m: Measured, unnamed: &[String]) -> String {
    let mut out = format!(
        "# Learned by `purple policy learn` from {}, starting from {base}.\n\
         # Check it, then: purple policy validate FILE; purple run --profile FILE -- CMD\n",
        source.display()
    );
    out.push_str("#\n# network: allow-list (nothing else is reachable)\n");
    for (addr, (ports, n)) in &s.addresses {
        let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
        out.push_str(&format!(
            "#   {addr}: {n} connection(s), port(s) {}; allowed on every port (allowed_ips has none)\n",
            if ports.is_empty() { "-".into() } else { ports.join(", ") }
        ));
    }
    for d in &s.domains {
        out.push_str(&format!("#   {d}: its addresses were connected to\n"));
    }
    if s.addresses.is_empty() && s.domains.is_empty() {
        out.push_str("#   the run made no allowed connection\n");
    }
    if s.blocked > 0 {
        out.push_str(&format!(
            "#   {} refused connection(s) of the run stay refused\n",
            s.blocked
        ));
    }
    match &s.syscalls {
        Some(c) => {
            out.push_str(&format!(
                "# syscalls: allow-list of the {} call(s) the run made, plus what the runtime's start and its supervisor need\n",
                c.len()
            ));
            if !unnamed.is_empty() {
                out.push_str(&format!(
                    "#   not named by libseccomp, left out: {}\n",
                    unnamed.join(", ")
                ));
            }
        }
        None => out.push_str(
            "# syscalls: the base's (the run did not count them: ebpf_monitoring.trace_syscalls)\n",
        ),
    }
    match m.memory_peak {
        Some(peak) => out.push_str(&format!(
            "# resources.memory_limit_bytes: twice the run's peak of {} KiB (at least 64M)\n",
            peak / 1024
        )),
        None => out.push_str("# resources: the base's (no peak measured)\n"),
    }
    if let Some(w) = m.wall_seconds {
        out.push_str(&format!(
            "# resources.session_timeout_seconds: three times the run's {w} s (at least 60)\n"
        ));
    }
    out.push_str("# filesystem: the base's (file records are not kept yet)\n");
    if !s.programs.is_empty() {
        let list: Vec<&str> = s.programs.iter().map(String::as_str).collect();
        out.push_str(&format!(
            "# programs the run started: {}\n",
            list.join(", ")
        ));
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rec(kind: &str, rule: Option<&str>, details: serde_json::Value) -> Record {
        Record {
            schema: 1,
            seq: 1,
            time: "t".into(),
            container_id: "c".into(),
            policy: None,
            kind: kind.into(),
            pid: Some(1),
            comm: None,
            rule: rule.map(str::to_owned),
            details,
            prev: "p".into(),
        }
    }

    fn base() -> Policy {
        let text = purple_policy::profiles::BUILT_IN
            .iter()
            .find(|(n, _)| *n == "secure-agent")
            .unwrap()
            .1;
        let ctx = Context {
            host_paths: false,
            ..Context::default()
        };
        parse_policy(text, Path::new("b.yaml"), &ctx).unwrap().0
    }

    #[test]
    fn connections_and_calls_become_allow_lists_that_validate() {
        let records = [
            rec("lifecycle", None, json!({"event": "created"})),
            rec(
                "network.allowed",
                Some("default (deny-list)"),
                json!({"destination": "10.99.0.1", "port": 80}),
            ),
            rec(
                "network.allowed",
                Some("#4 allowed domain api.example.com"),
                json!({"destination": "10.99.0.7", "port": 443}),
            ),
            rec(
                "network.allowed",
                Some("loopback (always allowed)"),
                json!({"destination": "127.0.0.1", "port": 8000}),
            ),
            rec(
                "network.blocked",
                Some("#2 deny 169.254.169.254/32"),
                json!({"destination": "169.254.169.254", "port": 80}),
            ),
            rec(
                "lifecycle",
                None,
                json!({"event": "exited", "code": 0, "syscalls": {"read": 10, "write": 2, "nr_999": 1}}),
            ),
        ];
        let text = learn(
            &records,
            &base(),
            "secure-agent",
            "mine",
            Measured {
                memory_peak: Some(10 << 20),
                wall_seconds: Some(5),
            },
            Path::new("/var/log/purple/x.jsonl"),
        )
        .unwrap();
        let ctx = Context {
            host_paths: false,
            ..Context::default()
        };
        let (p, _) = parse_policy(&text, Path::new("l.yaml"), &ctx).unwrap();
        assert_eq!(p.network.mode, Mode::AllowList);
        assert_eq!(
            p.network.allowed_ips,
            ["10.99.0.1/32".parse::<Cidr>().unwrap()]
        );
        assert_eq!(
            p.network.allowed_domains,
            ["api.example.com".parse::<Domain>().unwrap()]
        );
        assert!(p.syscalls.default_deny);
        assert!(p.syscalls.allow.iter().any(|c| c == "read"));
        assert!(p.syscalls.allow.iter().any(|c| c == "execve"));
        assert_eq!(p.resources.memory_limit_bytes, Some(64 << 20));
        assert_eq!(p.resources.session_timeout_seconds, Some(60));
        assert!(text.contains("# network: allow-list"), "{text}");
        assert!(
            text.contains("10.99.0.1: 1 connection(s), port(s) 80"),
            "{text}"
        );
        assert!(text.contains("left out: nr_999"), "{text}");
    }

    #[test]
    fn a_log_without_a_run_is_refused() {
        let e = learn(
            &[],
            &base(),
            "secure-agent",
            "x",
            Measured::default(),
            Path::new("f"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("no `created` record"), "{e}");
    }
}
