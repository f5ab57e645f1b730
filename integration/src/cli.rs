//! The `purple` command (the people's CLI, next to `purple-oci`) as the
//! tests run it, and the text of what it printed.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::{purple, Oci};

/// `purple --root R` run from `dir`, to be given its arguments.
pub fn purple_cmd(oci: &Oci, dir: &Path) -> Command {
    let mut c = Command::new(purple());
    c.current_dir(dir).arg("--root").arg(oci.root.path());
    c
}

/// `purple --root R ARGS` run from `dir`, stdin closed, output captured.
pub fn purple_in(oci: &Oci, dir: &Path, args: &[&str]) -> Output {
    purple_cmd(oci, dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// `purple --root R ARGS` from the test's own directory.
pub fn run_purple(oci: &Oci, args: &[&str]) -> Output {
    let bin = purple();
    Command::new(&bin)
        .arg("--root")
        .arg(oci.root.path())
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", bin.display()))
}

/// The stdout of a command that must have succeeded.
pub fn stdout_ok(out: Output) -> String {
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// (stdout, stderr).
pub fn text(o: &Output) -> (String, String) {
    (String::from_utf8_lossy(&o.stdout).into_owned(), stderr(o))
}

/// stdout then stderr, as one text.
pub fn combined(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), stderr(o))
}
