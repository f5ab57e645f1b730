//! `state`: print OCI state JSON, and nothing else (containerd reads stdout and
//! stderr together).

use anyhow::Result;
use libcontainer::container::{Container, ContainerStatus};
use serde_json::{json, Value};

use crate::container::Runtime;

#[derive(clap::Args, Debug)]
pub struct Args {
    pub container_id: String,
}

/// The OCI state of `c`; `pid` only while a process exists.
pub(super) fn to_json(c: &Container, rt: &Runtime) -> Value {
    let s = &c.state;
    let mut v = json!({
        "ociVersion": s.oci_version,
        "id": s.id,
        "status": s.status,
        "bundle": rt.user_bundle(c),
        "annotations": s.annotations.clone().unwrap_or_default(),
    });
    if s.status != ContainerStatus::Stopped {
        v["pid"] = json!(s.pid.unwrap_or(0));
    }
    if let Some(created) = s.created {
        v["created"] = json!(created);
    }
    if let Some(owner) = s.creator {
        v["owner"] = json!(owner.to_string());
    }
    v
}

pub fn state(args: Args, rt: &Runtime) -> Result<i32> {
    let c = rt.load(&super::container_id(&args.container_id)?)?;
    println!("{}", serde_json::to_string_pretty(&to_json(&c, rt))?);
    Ok(0)
}
