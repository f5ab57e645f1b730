//! `user`: the ids the agent runs as and the user namespace they live in.

use crate::decode::{Decoder, Fields, Shape};
use crate::schema::*;

pub(super) const USER: Shape = Shape {
    fields: &["uid", "gid", "additional_gids", "namespace"],
    renamed: &[],
    inert: &[],
};

pub(super) const USER_NAMESPACE: Shape = Shape {
    fields: &["enabled", "host_id", "size"],
    renamed: &[],
    inert: &[],
};

pub(super) fn user(d: &mut Decoder, f: &Fields) -> User {
    let namespace = user_namespace(d, f);
    let mut ids = Vec::new();
    for key in ["uid", "gid"] {
        if let Some(n) = f.get(key) {
            let path = f.path(key);
            if let Some(v) = d.int(n, &path, 0, u32::MAX as u64 - 1) {
                ids.push((key, v as u32, n.pos, path));
            }
        }
    }
    let additional_gids: Vec<u32> = f
        .get("additional_gids")
        .map(|n| {
            d.list(n, &f.path("additional_gids"), |d, it, p| {
                let v = d.int(it, p, 0, u32::MAX as u64 - 1)? as u32;
                ids.push(("additional_gids", v, it.pos, p.to_owned()));
                Some(v)
            })
        })
        .unwrap_or_default();
    if let Some(map) = namespace {
        for (_, id, pos, path) in ids.iter().filter(|(_, id, ..)| map.host(*id).is_none()) {
            d.error(
                *pos,
                path,
                format!(
                    "id {id} is outside the sandbox's user namespace (ids 0 to {})",
                    map.size - 1
                ),
                format!("use an id below {} or raise user.namespace.size", map.size),
            );
        }
    }
    let id = |key| ids.iter().find(|(k, ..)| *k == key).map_or(0, |i| i.1);
    User {
        uid: id("uid"),
        gid: id("gid"),
        additional_gids,
        namespace,
    }
}

/// `user.namespace`: on by default, so that root in the sandbox is nobody on
/// the host.
fn user_namespace(d: &mut Decoder, f: &Fields) -> Option<IdMap> {
    let Some(n) = f.get("namespace") else {
        return Some(IdMap::DEFAULT);
    };
    let path = f.path("namespace");
    let ns = d.fields(n, &path, &USER_NAMESPACE)?;
    if let Some(e) = ns.get("enabled") {
        if d.bool(e, &ns.path("enabled")) == Some(false) {
            d.warn(
                e.pos,
                &ns.path("enabled"),
                "without a user namespace, root in the sandbox is root on the host",
                "remove `enabled: false` unless the agent must own files as host root",
            );
            return None;
        }
    }
    let host_id = match ns.get("host_id") {
        Some(h) => {
            let p = ns.path("host_id");
            let v = d.int(h, &p, 0, u32::MAX as u64 - 1)? as u32;
            if v == 0 {
                d.error(
                    h.pos,
                    &p,
                    "host id 0 makes root in the sandbox root on the host",
                    "map the sandbox onto unused host ids, e.g. host_id: 100000",
                );
            }
            v
        }
        None => IdMap::DEFAULT.host_id,
    };
    let size = match ns.get("size") {
        Some(s) => {
            let p = ns.path("size");
            let v = d.int(s, &p, 1, u32::MAX as u64)? as u32;
            // Host id 4294967295 is (uid_t)-1, "no id", and cannot be mapped.
            if host_id as u64 + v as u64 > u32::MAX as u64 {
                d.error(
                    s.pos,
                    &p,
                    format!("host ids {host_id} + {v} run past the last host id"),
                    format!("use a size of at most {}", u32::MAX - host_id),
                );
                return None;
            }
            v
        }
        None => IdMap::DEFAULT.size.min(u32::MAX - host_id),
    };
    Some(IdMap { host_id, size })
}
