//! The process tree of a recorded run (`purple audit tree`): one node per
//! process that ran a program (`process.exec`), its children under it, and
//! what each one did: its execs in order, then every other record that
//! names its pid (connections, DNS, violations).
//!
//! Lineage comes from the exec records' `ppid`. A pid the host reused for
//! a later process is a new node: an exec whose parent differs from the
//! node's is another process. A process that never exec'd (a fork that only
//! ran its parent's code) has no node of its own: its records go to the
//! nearest known process of that pid, or to `unattributed`.

use std::collections::HashMap;
use std::fmt::{self, Write as _};

use serde::Serialize;

use crate::{Kind, Record};

/// One process: its pid, parent, the programs it ran and its records.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Process {
    pub pid: u32,
    pub ppid: Option<u32>,
    /// `process.exec` records, in the order they ran.
    pub execs: Vec<Record>,
    /// Its other records (network, DNS, syscalls, ...), in log order.
    pub records: Vec<Record>,
    pub children: Vec<Process>,
}

/// The forest of a log: processes whose parent is not in the log at the
/// top, and the records no process can be found for.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Tree {
    pub processes: Vec<Process>,
    pub unattributed: Vec<Record>,
}

fn ppid(r: &Record) -> Option<u32> {
    r.details["ppid"]
        .as_u64()
        .and_then(|p| u32::try_from(p).ok())
}

/// Builds the tree of `records` (a whole log, in order).
pub fn tree(records: &[Record]) -> Tree {
    // Flat nodes first; `current` maps a pid to its latest node.
    let mut nodes: Vec<Process> = Vec::new();
    let mut current: HashMap<u32, usize> = HashMap::new();
    let mut unattributed = Vec::new();
    for r in records
        .iter()
        .filter(|r| r.kind == Kind::ProcessExec.as_str())
    {
        let Some(pid) = r.pid else { continue };
        let parent = ppid(r);
        let same = current
            .get(&pid)
            .filter(|&&i| nodes[i].ppid == parent || nodes[i].ppid.is_none());
        let i = match same {
            Some(&i) => i,
            None => {
                nodes.push(Process {
                    pid,
                    ppid: parent,
                    execs: Vec::new(),
                    records: Vec::new(),
                    children: Vec::new(),
                });
                current.insert(pid, nodes.len() - 1);
                nodes.len() - 1
            }
        };
        nodes[i].ppid = nodes[i].ppid.or(parent);
        nodes[i].execs.push(r.clone());
    }
    // A record goes to the process of its pid that had started by then; one
    // written before its process's first exec record (the supervisor reads
    // several rings) goes to the first process of that pid.
    // The sandbox's lifecycle and the log's own checkpoints are no process's.
    let not_of_a_process = [Kind::ProcessExec, Kind::Lifecycle, Kind::AuditCheckpoint];
    for r in records {
        if not_of_a_process.iter().any(|k| r.kind == k.as_str()) {
            continue;
        }
        let mut of_pid = nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| Some(n.pid) == r.pid)
            .map(|(i, n)| (i, n.execs[0].seq));
        let first = of_pid.next();
        let at = of_pid
            .rfind(|&(_, seq)| seq <= r.seq)
            .or(first)
            .map(|(i, _)| i);
        match at {
            Some(i) => nodes[i].records.push(r.clone()),
            None => unattributed.push(r.clone()),
        }
    }
    // The parent of a node is the latest node of its ppid created before it.
    let mut parent_of: Vec<Option<usize>> = vec![None; nodes.len()];
    let mut latest: HashMap<u32, usize> = HashMap::new();
    for (i, n) in nodes.iter().enumerate() {
        parent_of[i] = n.ppid.and_then(|p| latest.get(&p).copied());
        latest.insert(n.pid, i);
    }
    // Children were created after their parent: attach from the last node
    // back, so each subtree is complete before it moves.
    let mut slots: Vec<Option<Process>> = nodes.into_iter().map(Some).collect();
    for i in (0..slots.len()).rev() {
        if let Some(p) = parent_of[i] {
            let child = slots[i].take().expect("each node moves once");
            let parent = slots[p].as_mut().expect("parents precede children");
            parent.children.insert(0, child);
        }
    }
    Tree {
        processes: slots.into_iter().flatten().collect(),
        unattributed,
    }
}

fn argv(r: &Record) -> String {
    let mut s = r.details["argv"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|v| {
                    let arg = v.as_str().unwrap_or_default();
                    if arg.is_empty() || arg.contains(char::is_whitespace) {
                        format!("{arg:?}")
                    } else {
                        arg.to_owned()
                    }
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default();
    if r.details["argv_cut"] == true {
        s.push_str(" [argv cut]");
    }
    s
}

/// One line for a record that is not an exec: its kind and what it was about.
fn summary(r: &Record) -> String {
    let d = &r.details;
    let what = match (d.get("destination"), d.get("name"), d.get("syscall")) {
        (Some(dst), _, _) => match d["port"].as_u64() {
            Some(p) => format!(
                "{} {}:{p}",
                d["protocol"].as_str().unwrap_or("?"),
                dst.as_str().unwrap_or("?")
            ),
            None => format!(
                "{} {}",
                d["protocol"].as_str().unwrap_or("?"),
                dst.as_str().unwrap_or("?")
            ),
        },
        (_, Some(name), _) => name.as_str().unwrap_or("?").to_owned(),
        (_, _, Some(sc)) => sc.as_str().unwrap_or("?").to_owned(),
        _ => String::new(),
    };
    let rule = r
        .rule
        .as_deref()
        .map(|x| format!(" ({x})"))
        .unwrap_or_default();
    format!("{} {what}{rule}", r.kind)
}

fn draw(out: &mut String, p: &Process, prefix: &str, last: bool, top: bool) {
    let (branch, more) = match (top, last) {
        (true, _) => ("", ""),
        (false, true) => ("└─ ", "   "),
        (false, false) => ("├─ ", "│  "),
    };
    let inner = format!("{prefix}{more}");
    let mut execs = p.execs.iter();
    match execs.next() {
        Some(first) => {
            let _ = writeln!(out, "{prefix}{branch}{} {}", p.pid, argv(first));
        }
        None => {
            let _ = writeln!(out, "{prefix}{branch}{}", p.pid);
        }
    }
    let bar = if p.children.is_empty() {
        "   "
    } else {
        "│  "
    };
    for e in execs {
        let _ = writeln!(out, "{inner}{bar}then {}", argv(e));
    }
    for r in &p.records {
        let _ = writeln!(out, "{inner}{bar}{}", summary(r));
    }
    for (i, c) in p.children.iter().enumerate() {
        draw(out, c, &inner, i + 1 == p.children.len(), false);
    }
}

impl fmt::Display for Tree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        for p in &self.processes {
            draw(&mut out, p, "", true, true);
        }
        if !self.unattributed.is_empty() {
            out.push_str("not linked to a traced process:\n");
            for r in &self.unattributed {
                let pid = r.pid.map(|p| format!("{p} ")).unwrap_or_default();
                let _ = writeln!(out, "   {pid}{}", summary(r));
            }
        }
        f.write_str(&out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn rec(seq: u64, kind: &str, pid: Option<u32>, details: Value) -> Record {
        Record {
            schema: 1,
            seq,
            time: String::new(),
            container_id: "c".into(),
            policy: None,
            kind: kind.into(),
            pid,
            comm: None,
            rule: None,
            details,
            prev: String::new(),
        }
    }

    fn exec(seq: u64, pid: u32, ppid: u32, argv: &[&str]) -> Record {
        rec(
            seq,
            "process.exec",
            Some(pid),
            json!({"ppid": ppid, "argv": argv, "exec_id": seq}),
        )
    }

    #[test]
    fn children_nest_under_their_parent_with_their_records() {
        let recs = vec![
            rec(1, "lifecycle", None, json!({"event": "started"})),
            exec(2, 10, 1, &["sh", "-c", "x"]),
            exec(3, 11, 10, &["sh", "-c", "echo hi"]),
            exec(4, 11, 10, &["echo", "hi"]),
            exec(5, 12, 10, &["curl", "x"]),
            rec(
                6,
                "network.blocked",
                Some(12),
                json!({"destination": "1.1.1.1", "port": 443, "protocol": "tcp"}),
            ),
            rec(7, "syscall.denied", Some(99), json!({"syscall": "mkdir"})),
            exec(8, 13, 12, &["grandchild"]),
        ];
        let t = tree(&recs);
        assert_eq!(t.processes.len(), 1);
        let root = &t.processes[0];
        assert_eq!((root.pid, root.ppid), (10, Some(1)));
        let kids: Vec<u32> = root.children.iter().map(|c| c.pid).collect();
        assert_eq!(kids, [11, 12]);
        assert_eq!(root.children[0].execs.len(), 2);
        assert_eq!(root.children[1].records[0].kind, "network.blocked");
        assert_eq!(root.children[1].children[0].pid, 13);
        assert_eq!(t.unattributed.len(), 1);
        let text = t.to_string();
        assert!(text.starts_with("10 sh -c x\n"), "{text}");
        assert!(
            text.contains("├─ 11 sh -c \"echo hi\"\n│     then echo hi\n"),
            "{text}"
        );
        assert!(text.contains("└─ 12 curl x\n"), "{text}");
        assert!(text.contains("network.blocked tcp 1.1.1.1:443"), "{text}");
        assert!(
            text.contains("not linked to a traced process:\n   99 syscall.denied mkdir"),
            "{text}"
        );
    }

    #[test]
    fn a_reused_pid_is_another_process() {
        let recs = vec![
            exec(1, 10, 1, &["sh"]),
            exec(2, 20, 10, &["first"]),
            exec(3, 30, 10, &["other"]),
            exec(4, 20, 30, &["second"]),
        ];
        let t = tree(&recs);
        let root = &t.processes[0];
        assert_eq!(root.children.len(), 2);
        assert_eq!(root.children[0].execs.len(), 1, "{t}");
        assert_eq!(root.children[1].children[0].pid, 20, "{t}");
    }
}
