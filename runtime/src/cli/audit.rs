//! `purple audit`: the container's audit trail.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Subcommand;

use crate::audit;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    command: AuditCommand,
}

#[derive(Subcommand, Debug)]
enum AuditCommand {
    /// Check a log's hash chain: exits 1 if any record was changed, removed or moved.
    Verify {
        /// Container ID (its log under /var/log/purple).
        #[arg(required_unless_present = "path", conflicts_with = "path")]
        id: Option<String>,
        /// The log file to check.
        #[arg(long, value_name = "FILE")]
        path: Option<PathBuf>,
    },
}

pub fn audit(args: Args, _root: &Path) -> Result<i32> {
    match args.command {
        AuditCommand::Verify { id, path } => {
            let path = match (path, id) {
                (Some(p), _) => p,
                (None, Some(id)) => {
                    audit::default_path(&crate::oci::container_id(&id)?.to_string())
                }
                (None, None) => unreachable!("clap requires an ID or --path"),
            };
            let records = audit::verify(&path)
                .with_context(|| format!("audit log {} does not verify", path.display()))?;
            println!(
                "{}: {} records, hash chain intact",
                path.display(),
                records.len()
            );
            Ok(0)
        }
    }
}
