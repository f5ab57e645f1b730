//! Policy diagnostics: each names the file, line, column and field, says what
//! is wrong and how to fix it. A policy is checked whole, so one run reports
//! every problem at once.

use std::fmt;
use std::path::PathBuf;

use crate::yaml::Pos;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub pos: Pos,
    /// Dotted field path, e.g. `filesystem.immutable_paths[2].host_path`.
    pub path: String,
    pub message: String,
    pub fix: String,
}

/// Every diagnostic of one file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Report {
    pub file: PathBuf,
    pub diagnostics: Vec<Diagnostic>,
}

impl Report {
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
    }

    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Warning)
    }

    pub fn has_errors(&self) -> bool {
        self.errors().next().is_some()
    }

    /// One line per diagnostic, warnings included, in `file:line:col:` form
    /// that editors jump to.
    pub fn render(&self, which: Option<Severity>) -> String {
        let mut out = String::new();
        for d in &self.diagnostics {
            if which.is_some_and(|s| s != d.severity) {
                continue;
            }
            let sev = match d.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            };
            out.push_str(&format!(
                "{}:{}:{}: {sev}: {}: {}\n    fix: {}\n",
                self.file.display(),
                d.pos.line,
                d.pos.col,
                d.path,
                d.message,
                d.fix
            ));
        }
        out
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.errors().count();
        writeln!(
            f,
            "{}: {n} error{} in policy",
            self.file.display(),
            if n == 1 { "" } else { "s" }
        )?;
        write!(f, "{}", self.render(Some(Severity::Error)).trim_end())
    }
}
