//! Shell completions and man pages of both commands, generated from their
//! clap definitions so they never drift from the flags.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

use clap::CommandFactory;
pub use clap_complete::Shell;

/// `purple completions SHELL` / `purple-oci completions SHELL`.
#[derive(clap::Args, Debug)]
pub struct CompletionsArgs {
    /// The shell to write a completion script for (to stdout).
    #[arg(value_enum)]
    pub shell: Shell,
}

/// `man DIR` (hidden: scripts/setup.sh installs the pages).
#[derive(clap::Args, Debug)]
pub struct ManArgs {
    /// Directory to write `NAME.1` and one `NAME-SUBCOMMAND.1` per command into.
    pub dir: std::path::PathBuf,
}

/// Writes the completion script of `C` for `shell` to stdout.
pub fn completions<C: CommandFactory>(args: &CompletionsArgs) -> io::Result<i32> {
    let mut cmd = C::command();
    let name = cmd.get_name().to_owned();
    // clap_complete panics on a failed write (a closed pipe): render first.
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, name, &mut script);
    match io::stdout().write_all(&script) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(0),
        other => other.map(|()| 0),
    }
}

/// Writes the man pages of `C` and of each visible subcommand into `dir`.
pub fn man_pages<C: CommandFactory>(args: &ManArgs) -> io::Result<i32> {
    fs::create_dir_all(&args.dir)?;
    let cmd = C::command();
    let root = cmd.get_name().to_owned();
    write_page(cmd.clone(), &args.dir.join(format!("{root}.1")))?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("{root}-{}", sub.get_name());
        let sub = sub
            .clone()
            .name(name.clone())
            .version(cmd.get_version().unwrap_or_default().to_owned());
        write_page(sub, &args.dir.join(format!("{name}.1")))?;
    }
    Ok(0)
}

fn write_page(cmd: clap::Command, path: &Path) -> io::Result<()> {
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd).render(&mut out)?;
    fs::write(path, out)
}
