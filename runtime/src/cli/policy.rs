//! `purple policy validate|show|new`: check policy files, print the
//! effective policy, start one from a profile.

use std::io::{BufRead, IsTerminal, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};
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
    /// Print a policy as Purple reads it, defaults filled in, as a policy
    /// file that loads into the same policy.
    Show {
        /// Profile name (see `purple profiles`) or policy file.
        profile: String,
        /// JSON instead of YAML.
        #[arg(long)]
        json: bool,
    },
    /// Write a least-privilege policy from a recorded run (learn mode): the
    /// addresses and names it reached, the syscalls it made; see
    /// `purple run --learn` for a run recorded for it.
    Learn {
        /// The run's audit log (a container ID: its log).
        #[arg(value_name = "ID|FILE")]
        log: String,
        /// The policy to start from [default: the one the run's records name].
        #[arg(long, value_name = "PROFILE")]
        base: Option<String>,
        /// The new policy's name [default: learned].
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        to: Written,
    },
    /// Write a starter policy: a profile's file, comments and all, under a
    /// new name. Without --from, asks on the terminal.
    New {
        /// The profile (see `purple profiles`) or policy file to start from.
        #[arg(long, value_name = "PROFILE")]
        from: Option<String>,
        /// The new policy's name [default: my-agent].
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        to: Written,
    },
}

/// Where a written policy goes.
#[derive(clap::Args, Debug)]
struct Written {
    /// Where to write it ("-": standard output) [default: NAME.yaml].
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Replace FILE if it exists.
    #[arg(long)]
    force: bool,
}

impl Written {
    fn path(&self, name: &str) -> PathBuf {
        self.output
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("{name}.yaml")))
    }
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

pub fn policy(args: Args, root: &Path) -> Result<i32> {
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
        PolicyCommand::Show { profile, json } => {
            let l = load(&profile)?;
            if json {
                let doc = purple_policy::document::document(&l.policy);
                println!("{}", serde_json::to_string_pretty(&doc)?);
            } else {
                println!("# {} ({}), defaults filled in", l.policy.name, l.origin);
                print!("{}", purple_policy::document::yaml(&l.policy));
            }
            Ok(0)
        }
        PolicyCommand::New { from, name, to } => new(from, name, to),
        PolicyCommand::Learn {
            log,
            base,
            name,
            to,
        } => {
            let path = if log.contains('/') {
                PathBuf::from(&log)
            } else {
                let id = crate::oci::container_id(&log)?;
                crate::container::Runtime::new(root, false).audit_log(&id)
            };
            let name = name.unwrap_or_else(|| "learned".to_owned());
            learn_to(
                &path,
                base.as_deref(),
                &name,
                Default::default(),
                &to.path(&name),
                to.force,
            )?;
            Ok(0)
        }
    }
}

/// Writes the policy learned from the log at `log` to `output`.
pub(super) fn learn_to(
    log: &Path,
    base: Option<&str>,
    name: &str,
    measured: crate::learn::Measured,
    output: &Path,
    force: bool,
) -> Result<()> {
    // A forged or cut log would teach a policy nobody ran.
    let records = crate::audit::verify(log)
        .with_context(|| format!("cannot learn from {}", log.display()))?;
    let base_name = match base {
        Some(b) => b.to_owned(),
        None => records
            .iter()
            .find_map(|r| r.policy.clone())
            .context("the log's records name no policy: give --base PROFILE")?,
    };
    let base = load(&base_name)?;
    learn_from(log, &base.policy, &base_name, name, measured, output, force)
}

/// Writes the policy learned from the log at `log` over `base` to `output`.
pub(super) fn learn_from(
    log: &Path,
    base: &purple_policy::schema::Policy,
    base_name: &str,
    name: &str,
    measured: crate::learn::Measured,
    output: &Path,
    force: bool,
) -> Result<()> {
    let records = crate::audit::verify(log)
        .with_context(|| format!("cannot learn from {}", log.display()))?;
    let text = crate::learn::learn(&records, base, base_name, name, measured, log)?;
    write_policy(&text, output, force)?;
    eprintln!(
        "purple: wrote {} from {}; check it with `purple policy validate {0}`",
        output.display(),
        log.display()
    );
    Ok(())
}

/// Writes a policy's text to `output` ("-": standard output), never
/// replacing a file unless `force`, never through a link.
fn write_policy(text: &str, output: &Path, force: bool) -> Result<()> {
    if output == Path::new("-") {
        print!("{text}");
        return Ok(());
    }
    let shown = output.display().to_string();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .create_new(!force)
        // Root writes where it is told, not where a link points.
        .custom_flags(libc::O_NOFOLLOW)
        .open(output)
        .with_context(|| match output.exists() {
            true => format!("{shown} exists: choose another --output, or --force to replace it"),
            false => format!("cannot write {shown}"),
        })?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("cannot write {shown}"))
}

const DEFAULT_BASE: &str = "secure-agent";
const DEFAULT_NAME: &str = "my-agent";

fn new(from: Option<String>, name: Option<String>, to: Written) -> Result<i32> {
    let (from, name) = match from {
        Some(f) => (f, name.unwrap_or_else(|| DEFAULT_NAME.to_owned())),
        None if std::io::stdin().is_terminal() => ask(name)?,
        None => bail!(
            "purple policy new: give --from PROFILE (e.g. --from {DEFAULT_BASE}; `purple profiles` lists them), or run it on a terminal to be asked"
        ),
    };
    let base = load(&from)?;
    let text = starter(&base, &from, &name);
    let output = to.path(&name);
    let shown = output.display().to_string();
    // The file must load as written, under the name it was given.
    let ctx = Context {
        base: output
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| Context::default().base, Path::to_path_buf),
        ..Context::default()
    };
    if let Err(e) = purple_policy::load::parse_policy(&text, &output, &ctx) {
        bail!(
            "purple policy new: the starter policy does not load:\n{}",
            e.render(None)
        );
    }
    write_policy(&text, &output, to.force)?;
    if output == Path::new("-") {
        return Ok(0);
    }
    eprintln!(
        "purple: wrote {shown} from {from}; check it with `purple policy validate {shown}`, run with `purple run --profile {shown} -- CMD`"
    );
    Ok(0)
}

/// The base's text under `name`, with a header saying where it came from.
fn starter(base: &profiles::Loaded, from: &str, name: &str) -> String {
    let mut out = format!(
        "# {name}: a policy started from {from} ({}) by `purple policy new`.\n\
         # Every field is in docs/policy.md; `purple policy show FILE` prints it\n\
         # with every default filled in.\n\n",
        base.origin
    );
    let mut renamed = false;
    for line in base.text.lines() {
        if !renamed && line.starts_with("name:") {
            out.push_str(&format!("name: {name}\n"));
            renamed = true;
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The two answers a starter policy needs, asked on the terminal.
fn ask(name: Option<String>) -> Result<(String, String)> {
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    let mut question = |q: &str, default: &str| -> Result<String> {
        eprint!("{q} [{default}]: ");
        std::io::stderr().flush()?;
        let answer = lines.next().transpose()?.unwrap_or_default();
        let answer = answer.trim();
        Ok(if answer.is_empty() { default } else { answer }.to_owned())
    };
    eprintln!("profiles: {}", profiles::names().join(", "));
    let from = question("start from which profile or policy file", DEFAULT_BASE)?;
    let name = match name {
        Some(n) => n,
        None => question("name of the new policy", DEFAULT_NAME)?,
    };
    Ok((from, name))
}
