//! Records as OCSF events (Open Cybersecurity Schema Framework, 1.3), so
//! that a SIEM ingests Purple's trail without a parser of its own:
//! connections as Network Activity, DNS refusals as DNS Activity, programs
//! started as Process Activity, LLM requests as HTTP Activity, the
//! sandbox's lifecycle as Application Lifecycle, every other violation
//! (system calls, limits, lost records) as a Detection Finding. Each event
//! keeps the original record under `unmapped.purple`, whose `seq` and
//! `prev` tie it to the signed log. `audit.checkpoint` records are the log's
//! own bookkeeping and have no event.

use serde_json::{json, Map, Value};

use crate::{is_violation, stands_for, Kind, Record};

/// The OCSF schema version the events follow.
pub const VERSION: &str = "1.3.0";

const SEVERITY_INFORMATIONAL: u8 = 1;
const SEVERITY_MEDIUM: u8 = 3;

/// A class: its uid, its category's uid, and the event's activity id.
struct Class {
    uid: u32,
    category: u32,
    activity: u32,
}

impl Class {
    const fn new(uid: u32, category: u32, activity: u32) -> Self {
        Self {
            uid,
            category,
            activity,
        }
    }
}

/// The OCSF event of `r`; `None` for a log checkpoint.
pub fn event(r: &Record) -> Option<Value> {
    let kind = Kind::parse(&r.kind);
    let d = &r.details;
    let violation = is_violation(&r.kind);
    let mut e = Map::new();
    let class = match kind {
        Some(Kind::AuditCheckpoint) => return None,
        Some(Kind::NetworkBlocked | Kind::NetworkAllowed) => {
            network(&mut e, r);
            // Open for a connect, Traffic for datagrams and raw packets.
            let activity = if d["hook"] == "connect" || d["hook"] == "unix_connect" {
                1
            } else {
                6
            };
            Class::new(4001, 4, activity)
        }
        Some(Kind::DnsDenied | Kind::DnsError) => {
            e.insert(
                "query".into(),
                json!({ "hostname": d["name"], "type": d["qtype"] }),
            );
            if let Some(t) = d["transport"].as_str() {
                e.insert("connection_info".into(), json!({ "protocol_name": t }));
            }
            Class::new(4003, 4, 1)
        }
        Some(Kind::ProcessExec) => {
            e.insert("process".into(), exec_process(r));
            Class::new(1007, 1, 1)
        }
        Some(Kind::LlmRequest | Kind::LlmBlocked | Kind::LlmBudget) => {
            e.insert(
                "http_request".into(),
                json!({ "http_method": "POST", "url": { "path": d["endpoint"] } }),
            );
            if let Some(status) = d["status"].as_u64() {
                e.insert("http_response".into(), json!({ "code": status }));
            }
            Class::new(4002, 4, 3)
        }
        Some(Kind::Lifecycle) => {
            // Start for created and started, Stop for exited and deleted.
            let activity = match d["event"].as_str() {
                Some("created" | "started") => 3,
                Some("exited" | "deleted") => 4,
                _ => 99,
            };
            e.insert(
                "app".into(),
                json!({ "name": "purple sandbox", "uid": r.container_id }),
            );
            Class::new(6002, 6, activity)
        }
        _ => {
            e.insert(
                "finding_info".into(),
                json!({
                    "title": finding_title(r),
                    "uid": format!("{}:{}", r.container_id, r.seq),
                    "types": [r.kind],
                }),
            );
            Class::new(2004, 2, 1)
        }
    };
    if kind.is_some_and(|k| matches!(k, Kind::NetworkBlocked | Kind::NetworkAllowed)) || violation {
        let (action, disposition) = if violation { (2, 2) } else { (1, 1) };
        e.insert("action_id".into(), json!(action));
        e.insert("disposition_id".into(), json!(disposition));
    }
    if let Some(rule) = &r.rule {
        e.insert("firewall_rule".into(), json!({ "name": rule }));
    }
    if !e.contains_key("process") {
        if let Some(pid) = r.pid {
            let mut process = json!({ "pid": pid });
            if let Some(comm) = &r.comm {
                process["name"] = json!(comm);
            }
            e.insert("actor".into(), json!({ "process": process }));
        }
    }
    let n = kind.map_or(1, |k| stands_for(k, d));
    if n > 1 {
        e.insert("count".into(), json!(n));
        if let (Some(first), Some(last)) = (d["first"].as_str(), d["last"].as_str()) {
            e.insert("start_time_dt".into(), json!(first));
            e.insert("end_time_dt".into(), json!(last));
        }
    }
    e.insert("class_uid".into(), json!(class.uid));
    e.insert("category_uid".into(), json!(class.category));
    e.insert("activity_id".into(), json!(class.activity));
    e.insert("type_uid".into(), json!(class.uid * 100 + class.activity));
    e.insert(
        "severity_id".into(),
        json!(if violation {
            SEVERITY_MEDIUM
        } else {
            SEVERITY_INFORMATIONAL
        }),
    );
    e.insert("time_dt".into(), json!(r.time));
    if let Some(ms) = epoch_ms(&r.time) {
        e.insert("time".into(), json!(ms));
    }
    e.insert(
        "metadata".into(),
        json!({
            "version": VERSION,
            "uid": format!("{}:{}", r.container_id, r.seq),
            "product": { "name": "Purple", "vendor_name": "Purple" },
            "labels": r.policy.iter().map(|p| format!("policy:{p}")).collect::<Vec<_>>(),
        }),
    );
    e.insert(
        "unmapped".into(),
        json!({ "purple": serde_json::to_value(r).expect("a record serialises") }),
    );
    Some(Value::Object(e))
}

/// Network Activity's endpoints and protocol.
fn network(e: &mut Map<String, Value>, r: &Record) {
    let d = &r.details;
    let mut dst = json!({});
    match d["protocol"].as_str() {
        Some(p) if p.starts_with("unix") => dst["path"] = d["destination"].clone(),
        _ => dst["ip"] = d["destination"].clone(),
    }
    if let Some(port) = d["port"].as_u64() {
        dst["port"] = json!(port);
    }
    e.insert("dst_endpoint".into(), dst);
    e.insert(
        "connection_info".into(),
        json!({ "protocol_name": d["protocol"], "direction_id": 2 }),
    );
}

/// Process Activity's process: the program started, its parent and user.
fn exec_process(r: &Record) -> Value {
    let d = &r.details;
    let argv: Vec<&str> = d["argv"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    json!({
        "pid": r.pid,
        "name": r.comm,
        "cmd_line": argv.join(" "),
        "file": { "path": d["filename"] },
        "parent_process": { "pid": d["ppid"] },
        "user": { "uid": d["uid"] },
    })
}

/// What a Detection Finding is about, in a few words.
fn finding_title(r: &Record) -> String {
    let d = &r.details;
    match d["syscall"].as_str() {
        Some(call) => format!("{}: {call}", r.kind),
        None => r.kind.clone(),
    }
}

/// Milliseconds since the epoch of an RFC 3339 time.
fn epoch_ms(time: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(time)
        .ok()
        .map(|t| t.timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(kind: &str, rule: Option<&str>, details: Value) -> Record {
        Record {
            schema: 1,
            seq: 7,
            time: "2026-12-02T10:00:00.250000000Z".into(),
            container_id: "agent-1".into(),
            policy: Some("secure-agent".into()),
            kind: kind.into(),
            pid: Some(42),
            comm: Some("python3".into()),
            rule: rule.map(str::to_owned),
            details,
            prev: "ab".into(),
        }
    }

    #[test]
    fn a_blocked_connect_is_a_denied_network_open() {
        let r = record(
            "network.blocked",
            Some("#2 deny 169.254.169.254/32"),
            json!({"hook": "connect", "protocol": "tcp", "destination": "169.254.169.254", "port": 80, "cgroup_id": 9}),
        );
        let e = event(&r).unwrap();
        assert_eq!(e["class_uid"], 4001);
        assert_eq!(e["type_uid"], 400101);
        assert_eq!(
            (e["action_id"].clone(), e["disposition_id"].clone()),
            (json!(2), json!(2))
        );
        assert_eq!(
            e["dst_endpoint"],
            json!({"ip": "169.254.169.254", "port": 80})
        );
        assert_eq!(e["firewall_rule"]["name"], "#2 deny 169.254.169.254/32");
        assert_eq!(e["actor"]["process"], json!({"pid": 42, "name": "python3"}));
        assert_eq!(e["time"], 1_796_205_600_250i64);
        assert_eq!(e["metadata"]["uid"], "agent-1:7");
        assert_eq!(e["metadata"]["labels"], json!(["policy:secure-agent"]));
        assert_eq!(e["unmapped"]["purple"]["seq"], 7);
        assert_eq!(e["severity_id"], SEVERITY_MEDIUM);
    }

    #[test]
    fn an_allowed_datagram_is_allowed_traffic() {
        let r = record(
            "network.allowed",
            Some("#1 allow 10.0.0.0/8"),
            json!({"hook": "sendmsg", "protocol": "udp", "destination": "10.0.0.1", "port": 53}),
        );
        let e = event(&r).unwrap();
        assert_eq!(
            (e["activity_id"].clone(), e["action_id"].clone()),
            (json!(6), json!(1))
        );
        assert_eq!(e["severity_id"], SEVERITY_INFORMATIONAL);
    }

    #[test]
    fn a_folded_record_carries_its_count_and_span() {
        let r = record(
            "network.blocked",
            Some("#1 deny 10.0.0.0/8"),
            json!({"hook": "sendmsg", "protocol": "udp", "destination": "10.0.0.9", "port": 9,
                   "folded": true, "count": 1200, "first": "2026-12-02T10:00:00Z", "last": "2026-12-02T10:00:10Z"}),
        );
        let e = event(&r).unwrap();
        assert_eq!(e["count"], 1200);
        assert_eq!(e["end_time_dt"], "2026-12-02T10:00:10Z");
    }

    #[test]
    fn every_kind_maps_to_its_class() {
        let class = |kind: &str, details: Value| {
            event(&record(kind, None, details)).map(|e| e["class_uid"].clone())
        };
        assert_eq!(
            class("dns.denied", json!({"name": "evil.example", "qtype": "A"})),
            Some(json!(4003))
        );
        assert_eq!(
            class(
                "process.exec",
                json!({"argv": ["sh", "-c", "x"], "filename": "/bin/sh", "ppid": 1, "uid": 0})
            ),
            Some(json!(1007))
        );
        assert_eq!(
            class(
                "llm.request",
                json!({"endpoint": "/chat/completions", "status": 200})
            ),
            Some(json!(4002))
        );
        assert_eq!(
            class("lifecycle", json!({"event": "exited", "code": 0})),
            Some(json!(6002))
        );
        assert_eq!(
            class("syscall.denied", json!({"syscall": "ptrace"})),
            Some(json!(2004))
        );
        assert_eq!(class("audit.lost", json!({"count": 3})), Some(json!(2004)));
        assert_eq!(class("audit.checkpoint", json!({})), None);
        let exec = event(&record(
            "process.exec",
            None,
            json!({"argv": ["sh", "-c", "x"], "filename": "/bin/sh", "ppid": 1, "uid": 0}),
        ))
        .unwrap();
        assert_eq!(exec["process"]["cmd_line"], "sh -c x");
        assert!(exec.get("action_id").is_none());
        let finding = event(&record(
            "syscall.denied",
            Some("seccomp #1"),
            json!({"syscall": "ptrace"}),
        ))
        .unwrap();
        assert_eq!(finding["finding_info"]["title"], "syscall.denied: ptrace");
    }
}
