//! `purple policy validate|show`: check policy files, print the effective policy.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Subcommand;
use purple_policy::diag::Severity;
use purple_policy::load::Context;
use purple_policy::profiles::{self, PolicyError};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    command: PolicyCommand,
}

#[derive(Subcommand, Debug)]
enum PolicyCommand {
    /// Check policy files; prints every problem with file:line:column and a fix.
    Validate {
        /// Policy files (YAML).
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Print a policy as Purple reads it, defaults filled in (YAML-compatible JSON).
    Show {
        /// Profile name (see `purple profiles`) or policy file.
        profile: String,
    },
}

/// Loads a profile or file, printing its warnings to stderr.
pub fn load(name_or_path: &str) -> Result<profiles::Loaded> {
    match profiles::resolve(name_or_path, &Context::default()) {
        Ok(l) => {
            eprint!("{}", l.warnings.render(Some(Severity::Warning)));
            Ok(l)
        }
        Err(PolicyError::Invalid(report)) => {
            eprint!("{}", report.render(Some(Severity::Warning)));
            bail!("{report}")
        }
        Err(e) => Err(e.into()),
    }
}

pub fn policy(args: Args) -> Result<i32> {
    match args.command {
        PolicyCommand::Validate { files } => {
            let mut failed = 0;
            for f in &files {
                match profiles::load_file(f, &Context::default()) {
                    Ok(l) => {
                        eprint!("{}", l.warnings.render(Some(Severity::Warning)));
                        println!("{}: valid ({})", f.display(), l.policy.name);
                    }
                    Err(PolicyError::Invalid(report)) => {
                        failed += 1;
                        eprint!("{}", report.render(None));
                    }
                    Err(e) => {
                        failed += 1;
                        eprintln!("purple: {e}");
                    }
                }
            }
            if failed > 0 {
                eprintln!("purple: {failed} of {} policies invalid", files.len());
                return Ok(1);
            }
            Ok(0)
        }
        PolicyCommand::Show { profile } => {
            let l = load(&profile)?;
            println!("# {} ({})", l.policy.name, l.origin);
            println!("{}", serde_json::to_string_pretty(&l.policy)?);
            Ok(0)
        }
    }
}
