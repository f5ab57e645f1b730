//! The sandboxes of `purple run` under a state root: what `ps`, `stop` and
//! `logs` work on. Containers of podman, containerd or `purple-oci` alone
//! carry no [`Launch`] and are not Purple's to list or stop here.

use std::path::Path;

use anyhow::{bail, Result};

use crate::container::{Launch, Runtime};
use crate::id::ContainerId;

/// The runtime under `root` and the sandbox `raw` names, or why it is not one.
pub(super) fn find(root: &Path, raw: &str) -> Result<(Runtime, ContainerId, Launch)> {
    let rt = Runtime::new(root, false);
    let id = ContainerId::parse(raw)?;
    if !rt.exists(&id) {
        bail!(
            "no sandbox \"{id}\" under {}: `purple ps` lists them",
            root.display()
        );
    }
    match rt.record(&id).and_then(|r| r.launch) {
        Some(launch) => Ok((rt, id, launch)),
        None => bail!(
            "\"{id}\" is not a sandbox of `purple run` (an engine or purple-oci made it): \
             use the tool that made it, or `purple-oci --root {} delete --force {id}`",
            root.display()
        ),
    }
}
