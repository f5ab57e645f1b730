//! A profile applied to a spec someone else wrote (`io.purple.profile` on a
//! podman or containerd container). The rule: the profile only ever tightens.
//! Limits take the smaller value, capability sets their intersection,
//! `noNewPrivileges` and a read-only root are switched on, system calls the
//! profile denies are removed from the spec's allow rules and denied, and
//! the profile's network, audit and session plans are attached (without
//! output size limits: the profile's binds are not used), its per-file cap
//! taken where lower. Devices,
//! `/sys` and the cgroup mounts are cut back to the profile's (read-only,
//! its device allow-list), whatever `--privileged` opened. The image's other
//! mounts, user and process stay as they are.

use oci_spec::runtime::Linux;
use serde_json::{json, Value};

use crate::annotations::{NETWORK_ANNOTATION, POLICY_NAME_ANNOTATION, SESSION_ANNOTATION};
use crate::schema::Policy;
use crate::supervision::SessionPlan;
use crate::translate;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MergeError {
    #[error("profile {0:?} filters system calls by allow-list and the container already has a seccomp profile: two allow-lists cannot be intersected safely; start the container without its own seccomp profile (podman: --security-opt seccomp=unconfined) so the profile's allow-list applies")]
    TwoAllowLists(String),
    #[error("the container has its own {NETWORK_ANNOTATION} annotation and profile {0:?} brings another; give one of them")]
    TwoNetworkPlans(String),
    #[error("the container's spec cannot be merged: {0}")]
    Spec(String),
}

/// `v[key]`, inserted as `default` when missing (`v` is always an object
/// here: it comes from a serialised spec or was inserted as one).
fn entry<'a>(v: &'a mut Value, key: &str, default: Value) -> &'a mut Value {
    v.as_object_mut()
        .expect("spec objects")
        .entry(key)
        .or_insert(default)
}

fn min_field(target: &mut Value, key: &str, limit: &Value) {
    let Some(l) = limit.as_i64() else { return };
    match target.get(key).and_then(Value::as_i64) {
        Some(cur) if cur > 0 && cur <= l => {}
        _ => target[key] = json!(l),
    }
}

fn tighten_resources(res: &mut Value, profile: &Value) {
    if let Some(limit) = profile.pointer("/memory/limit") {
        let mem = entry(res, "memory", json!({}));
        min_field(mem, "limit", limit);
    }
    if let Some(limit) = profile.pointer("/pids/limit") {
        let pids = entry(res, "pids", json!({}));
        min_field(pids, "limit", limit);
    }
    if let (Some(q), Some(p)) = (
        profile.pointer("/cpu/quota").and_then(Value::as_i64),
        profile.pointer("/cpu/period").and_then(Value::as_u64),
    ) {
        let cpu = entry(res, "cpu", json!({}));
        let cur_q = cpu.get("quota").and_then(Value::as_i64).filter(|q| *q > 0);
        let cur_p = cpu.get("period").and_then(Value::as_u64).filter(|p| *p > 0);
        let tighter = match (cur_q, cur_p) {
            (Some(cq), Some(cp)) => (q as f64 / p as f64) < (cq as f64 / cp as f64),
            _ => true,
        };
        if tighter {
            cpu["quota"] = json!(q);
            cpu["period"] = json!(p);
        }
    }
    if let Some(io) = profile.get("blockIO") {
        entry(res, "blockIO", io.clone());
    }
}

/// The profile's rlimit `want` (hard = soft), or the spec's where lower.
fn tighten_rlimit(out: &mut Value, want: &Value) {
    let Some(p) = out.get_mut("process").filter(|p| p.is_object()) else {
        return;
    };
    let list = entry(p, "rlimits", json!([]));
    let Some(list) = list.as_array_mut() else {
        return;
    };
    let limit = want["hard"].as_u64().unwrap_or(u64::MAX);
    match list.iter_mut().find(|l| l["type"] == want["type"]) {
        Some(cur) => {
            for k in ["hard", "soft"] {
                if cur[k].as_u64().is_none_or(|c| c > limit) {
                    cur[k] = json!(limit);
                }
            }
        }
        None => list.push(want.clone()),
    }
}

fn intersect_caps(caps: &mut Value, allowed: &[String]) {
    if let Some(sets) = caps.as_object_mut() {
        for set in sets.values_mut() {
            if let Some(list) = set.as_array_mut() {
                list.retain(|c| c.as_str().is_some_and(|c| allowed.iter().any(|a| a == c)));
            }
        }
    }
}

fn tighten_seccomp(
    linux: &mut Value,
    profile: Option<&Value>,
    p: &Policy,
) -> Result<(), MergeError> {
    let Some(profile) = profile else {
        return Ok(());
    };
    let Some(existing) = linux.get_mut("seccomp").filter(|s| !s.is_null()) else {
        linux["seccomp"] = profile.clone();
        return Ok(());
    };
    if p.syscalls.default_deny {
        return Err(MergeError::TwoAllowLists(p.name.clone()));
    }
    // Every call the policy denies outright, families expanded.
    let denied: Vec<&str> = profile["syscalls"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["action"] != "SCMP_ACT_ALLOW" && r.get("args").is_none())
        .flat_map(|r| r["names"].as_array().into_iter().flatten())
        .filter_map(Value::as_str)
        .collect();
    let rules = entry(existing, "syscalls", json!([]));
    if let Some(list) = rules.as_array_mut() {
        for rule in list.iter_mut() {
            if rule["action"] == "SCMP_ACT_ALLOW" {
                if let Some(names) = rule["names"].as_array_mut() {
                    names.retain(|n| !n.as_str().is_some_and(|n| denied.contains(&n)));
                }
            }
        }
        list.retain(|r| r["names"].as_array().is_none_or(|n| !n.is_empty()));
        if let Some(extra) = profile["syscalls"].as_array() {
            list.extend(extra.iter().cloned());
        }
    }
    Ok(())
}

/// Whether the profile's device rules (`wanted`, a deny-all followed by
/// allows) let the container use device `d` (an OCI `linux.devices` entry).
fn device_allowed(d: &Value, wanted: &[Value]) -> bool {
    wanted.iter().any(|r| {
        r["allow"] == json!(true)
            && (r["type"] == d["type"] || r["type"] == json!("a"))
            && r.get("major").is_none_or(|m| *m == d["major"])
            && r.get("minor").is_none_or(|m| *m == d["minor"])
    })
}

/// What reaches the host beyond the process: devices, `/sys` and the cgroup
/// mounts. An engine's `--privileged` opens all of them (every host device
/// node, `a *:* rwm`, a writable `/sys`); under a profile they are cut back to
/// the profile's: its device allow-list, `/sys` and cgroups read-only.
fn tighten_host_access(out: &mut Value, wanted: &Value) {
    if let Some(mounts) = out.get_mut("mounts").and_then(Value::as_array_mut) {
        for m in mounts {
            let host_fs = matches!(m["type"].as_str(), Some("sysfs" | "cgroup" | "cgroup2"))
                || m["destination"] == json!("/sys");
            if !host_fs {
                continue;
            }
            let options = entry(m, "options", json!([]));
            if let Some(o) = options.as_array_mut() {
                o.retain(|o| o != "rw");
                if !o.iter().any(|o| o == "ro") {
                    o.push(json!("ro"));
                }
            }
        }
    }
    let rules = wanted["linux"]["resources"]["devices"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let linux = entry(out, "linux", json!({}));
    if let Some(devices) = linux.get_mut("devices").and_then(Value::as_array_mut) {
        devices.retain(|d| device_allowed(d, &rules));
    }
    let res = entry(linux, "resources", json!({}));
    res["devices"] = json!(rules);
}

/// What a profile tightens with, in the form a spec holds it (through
/// oci-spec's types, as the translator's own spec is).
fn wanted(policy: &Policy) -> Result<Value, MergeError> {
    let linux: Linux = serde_json::from_value(translate::linux(policy)).map_err(bad)?;
    Ok(json!({
        "linux": serde_json::to_value(&linux).map_err(bad)?,
        "annotations": translate::annotations(policy),
        "process": { "rlimits": translate::rlimits(&policy.filesystem) },
    }))
}

fn bad(e: serde_json::Error) -> MergeError {
    MergeError::Spec(e.to_string())
}

/// Applies `policy` to `spec`, tightening only: its plans replace the
/// spec's (which may have none of its own network plan).
pub fn tighten(
    spec: &oci_spec::runtime::Spec,
    policy: &Policy,
) -> Result<oci_spec::runtime::Spec, MergeError> {
    let wanted = wanted(policy)?;
    let mut out = serde_json::to_value(spec).map_err(bad)?;

    let annotations = entry(&mut out, "annotations", json!({}));
    if annotations.get(NETWORK_ANNOTATION).is_some() {
        return Err(MergeError::TwoNetworkPlans(policy.name.clone()));
    }
    if let Some(w) = wanted["annotations"].as_object() {
        for (k, v) in w {
            annotations
                .as_object_mut()
                .expect("object")
                .insert(k.clone(), v.clone());
        }
    }
    annotations[POLICY_NAME_ANNOTATION] = json!(policy.name);
    // The profile's binds are not used, so neither are their size limits.
    if let Some(session) = annotations.get(SESSION_ANNOTATION).and_then(Value::as_str) {
        let mut plan: SessionPlan = serde_json::from_str(session).map_err(bad)?;
        plan.output_limits.clear();
        let map = annotations.as_object_mut().expect("object");
        if plan == SessionPlan::default() {
            map.remove(SESSION_ANNOTATION);
        } else {
            map.insert(
                SESSION_ANNOTATION.into(),
                json!(serde_json::to_string(&plan).map_err(bad)?),
            );
        }
    }
    // The engine brings the container's network: no user-mode egress of
    // Purple's (the runtime judges loopback and scopes abstract sockets
    // itself when the engine shares the host's namespace).
    annotations[NETWORK_ANNOTATION] = json!(translate::network_plan_of(policy).to_json());
    tighten_parts(&mut out, policy, &wanted)?;
    serde_json::from_value(out).map_err(bad)
}

/// Applies the parts of `policy` that are not plans to `spec` (a node's
/// floor under a container that brings its own plans, which the floor
/// checks instead: [`crate::floor`]).
pub fn tighten_spec(
    spec: &oci_spec::runtime::Spec,
    policy: &Policy,
) -> Result<oci_spec::runtime::Spec, MergeError> {
    let wanted = wanted(policy)?;
    let mut out = serde_json::to_value(spec).map_err(bad)?;
    tighten_parts(&mut out, policy, &wanted)?;
    serde_json::from_value(out).map_err(bad)
}

fn tighten_parts(out: &mut Value, policy: &Policy, wanted: &Value) -> Result<(), MergeError> {
    let caps = translate::effective_capabilities(&policy.capabilities);
    if let Some(c) = out.pointer_mut("/process/capabilities") {
        intersect_caps(c, &caps);
    }
    if policy.capabilities.no_new_privileges {
        if let Some(p) = out.get_mut("process").filter(|p| p.is_object()) {
            p["noNewPrivileges"] = json!(true);
        }
    }
    if let Some(env) = out
        .pointer_mut("/process/env")
        .and_then(Value::as_array_mut)
    {
        for (k, v) in &policy.environment {
            let set = env
                .iter()
                .any(|e| e.as_str().is_some_and(|e| e.starts_with(&format!("{k}="))));
            if !set {
                env.push(json!(format!("{k}={v}")));
            }
        }
    }
    if let Some(cap) = wanted
        .pointer("/process/rlimits")
        .and_then(Value::as_array)
        .and_then(|r| r.iter().find(|l| l["type"] == "RLIMIT_FSIZE"))
    {
        tighten_rlimit(out, cap);
    }
    if policy.filesystem.read_only_root {
        if let Some(root) = out.get_mut("root").filter(|r| r.is_object()) {
            root["readonly"] = json!(true);
        }
    }

    let linux = entry(out, "linux", json!({}));
    let res = entry(linux, "resources", json!({}));
    tighten_resources(res, &wanted["linux"]["resources"]);
    for key in ["maskedPaths", "readonlyPaths"] {
        let list = entry(linux, key, json!([]));
        if let (Some(list), Some(add)) = (list.as_array_mut(), wanted["linux"][key].as_array()) {
            for a in add {
                if !list.contains(a) {
                    list.push(a.clone());
                }
            }
        }
    }
    if policy.network.isolated {
        let ns = entry(linux, "namespaces", json!([]));
        if let Some(ns) = ns.as_array_mut() {
            if !ns.iter().any(|n| n["type"] == "network") {
                ns.push(json!({"type": "network"}));
            }
        }
    }
    tighten_seccomp(linux, wanted["linux"].get("seccomp"), policy)?;
    tighten_host_access(out, wanted);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::Context;
    use crate::profiles;
    use crate::translate::Process;

    /// What a profile tightens with is what the translator puts in a spec
    /// (merge once re-ran the whole translator to get it).
    #[test]
    fn the_parts_merged_are_the_translators() {
        let ctx = Context {
            base: "/".into(),
            host_paths: false,
        };
        for (name, _) in profiles::BUILT_IN {
            let policy = profiles::resolve_for_annotation(
                name,
                std::path::Path::new(profiles::HOST_PROFILE_DIR),
                &ctx,
            )
            .unwrap()
            .policy;
            let process = Process {
                args: vec!["sh".into()],
                env: Vec::new(),
                terminal: false,
            };
            let spec = translate::spec(&policy, &process, std::path::Path::new("rootfs")).unwrap();
            let spec = serde_json::to_value(&spec).unwrap();
            let linux: Linux = serde_json::from_value(translate::linux(&policy)).unwrap();
            assert_eq!(
                serde_json::to_value(&linux).unwrap(),
                spec["linux"],
                "{name}"
            );
            assert_eq!(
                translate::annotations(&policy),
                spec["annotations"],
                "{name}"
            );
        }
    }
}
