//! The system-call probe (integration/probe/sysprobe.c) under `purple run`:
//! each step one real system call, its outcome a line, and the sandbox's
//! `syscall.denied` records to check against.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use purple_runtime::audit;

use crate::cli::purple_cmd;
use crate::leftovers::assert_run_left_nothing;
use crate::{repo, unique_id, Oci};

/// The probe's words: a path argument relative to the working directory,
/// and the line of a call refused with EPERM.
pub const AT_FDCWD: &str = "-100";
pub const EPERM: &str = "err EPERM";

// x86_64 numbers, then i386 ones for int 0x80.
pub const NR_IOCTL: &str = "16";
pub const NR_SOCKET: &str = "41";
pub const NR_MKDIR: &str = "83";
pub const NR_OPEN: &str = "2";
pub const NR_OPENAT: &str = "257";
pub const NR_MKDIRAT: &str = "258";
pub const NR_FCHMODAT: &str = "268";
pub const NR_RENAMEAT2: &str = "316";
pub const NR_IO_URING_SETUP: &str = "425";
pub const I386_MKDIR: &str = "39";
pub const I386_GETPID: &str = "20";

/// Builds the probe (static, non-PIE: int 0x80 needs its data below 4 GiB).
pub fn sysprobe() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let out = std::env::temp_dir().join(format!("purple-sysprobe-{}", std::process::id()));
        let st = Command::new("cc")
            .args(["-static", "-no-pie", "-O2", "-o"])
            .arg(&out)
            .arg(repo().join("integration/probe/sysprobe.c"))
            .status()
            .expect("a C compiler is installed (build-essential)");
        assert!(st.success(), "cannot build sysprobe");
        out
    })
}

/// One `purple run` of the probe: its lines, in step order, and its records.
pub struct Run {
    pub lines: Vec<String>,
    pub records: Vec<audit::Record>,
    /// The host directory bound writable at /out.
    pub out: tempfile::TempDir,
}

impl Run {
    pub fn line(&self, step: usize) -> &str {
        &self.lines[step]
    }

    /// The `syscall.denied` records of `call`.
    pub fn denied(&self, call: &str) -> Vec<&audit::Record> {
        self.records
            .iter()
            .filter(|r| r.kind == "syscall.denied" && r.details["syscall"] == call)
            .collect()
    }

    /// Exactly one refusal of `call` whose first argument is `arg0` (any
    /// when `None`: a pointer), by `rule`.
    pub fn assert_recorded(&self, call: &str, arg0: impl Into<Option<u64>>, rule: &str) {
        let arg = arg0.into().map(|a| format!("{a:#x}"));
        let denied = self.denied(call);
        let found: Vec<&&audit::Record> = denied
            .iter()
            .filter(|r| {
                arg.as_ref()
                    .is_none_or(|a| r.details["args"][0] == a.as_str())
            })
            .collect();
        assert_eq!(
            found.len(),
            1,
            "{call}({arg:?}) not recorded once: {:#?}",
            self.records
        );
        assert_eq!(found[0].rule.as_deref(), Some(rule), "{:?}", found[0]);
    }

    pub fn assert_not_recorded(&self, call: &str) {
        assert!(
            self.denied(call).is_empty(),
            "{call} recorded: {:?}",
            self.denied(call)
        );
    }
}

/// Runs the probe's `steps` under `profile` (a shipped name, or YAML text
/// written as `<name>.yaml` in the working directory).
pub fn run(profile: &str, steps: &[&[&str]]) -> Run {
    let work = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    fs::copy(sysprobe(), work.path().join("sysprobe")).unwrap();
    let profile = match profile.strip_prefix("name: ") {
        Some(rest) => {
            let name = rest.lines().next().unwrap().trim();
            fs::write(work.path().join(format!("{name}.yaml")), profile).unwrap();
            format!("./{name}.yaml")
        }
        None => profile.to_owned(),
    };
    let oci = Oci::new();
    let id = unique_id("scmp");
    let mut args: Vec<&str> = vec!["/work/sysprobe"];
    for (i, s) in steps.iter().enumerate() {
        if i > 0 {
            args.push("--");
        }
        args.extend_from_slice(s);
    }
    let o = purple_cmd(&oci, work.path())
        .args(["run", "--profile", &profile, "--id", &id])
        .arg("-v")
        .arg(format!("{}:/out", out.path().display()))
        .arg("--")
        .args(&args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{profile}: {stdout}{stderr}");
    let lines: Vec<String> = stdout.lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), steps.len(), "{profile}: {stdout}{stderr}");
    let log = stderr.rsplit("audit log ").next().unwrap().trim();
    let records = audit::verify(Path::new(log)).unwrap();
    assert_run_left_nothing(&oci, &id);
    Run {
        lines,
        records,
        out,
    }
}
