//! The machinery that turns a positioned YAML tree into typed values while
//! collecting every problem: unknown keys (with a "did you mean"), deprecated
//! names, wrong types, bad units. Nothing here knows the policy's fields; the
//! schema module drives it.

use std::collections::HashMap;

use crate::diag::{Diagnostic, Severity};
use crate::units::UnitError;
use crate::yaml::{Key, Node, Pos, Value};

/// A key from the original Purple files that is read under another name.
pub struct Renamed {
    pub old: &'static str,
    pub new: &'static str,
}

/// A key accepted for compatibility that has no effect.
pub struct Inert {
    pub key: &'static str,
    pub why: &'static str,
}

/// What one mapping may hold.
pub struct Shape {
    pub fields: &'static [&'static str],
    pub renamed: &'static [Renamed],
    pub inert: &'static [Inert],
}

#[derive(Default)]
pub struct Decoder {
    pub diagnostics: Vec<Diagnostic>,
}

/// The known keys of one mapping, after renames.
pub struct Fields<'n> {
    pub path: String,
    pub pos: Pos,
    entries: HashMap<&'static str, (&'n Key, &'n Node)>,
}

impl<'n> Fields<'n> {
    pub fn get(&self, field: &'static str) -> Option<&'n Node> {
        self.entries.get(field).map(|(_, n)| *n)
    }

    pub fn path(&self, field: &str) -> String {
        join(&self.path, field)
    }
}

pub fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_owned()
    } else {
        format!("{path}.{field}")
    }
}

/// The closest known name, when it is close enough to be a typo.
fn suggestion(unknown: &str, known: &[&'static str]) -> Option<&'static str> {
    known
        .iter()
        .map(|k| (strsim::jaro_winkler(unknown, k), *k))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k)
}

impl Decoder {
    pub fn error(
        &mut self,
        pos: Pos,
        path: &str,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) {
        self.push(Severity::Error, pos, path, message.into(), fix.into());
    }

    pub fn warn(
        &mut self,
        pos: Pos,
        path: &str,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) {
        self.push(Severity::Warning, pos, path, message.into(), fix.into());
    }

    fn push(&mut self, severity: Severity, pos: Pos, path: &str, message: String, fix: String) {
        self.diagnostics.push(Diagnostic {
            severity,
            pos,
            path: if path.is_empty() {
                "(top level)".into()
            } else {
                path.to_owned()
            },
            message,
            fix,
        });
    }

    fn wrong_type(&mut self, n: &Node, path: &str, expected: &str, example: &str) {
        self.error(
            n.pos,
            path,
            format!("expected {expected}, found {}", n.kind()),
            format!("write {expected}, e.g. {example}"),
        );
    }

    /// Checks a mapping against its shape; `None` (after an error) when it is not a mapping.
    pub fn fields<'n>(&mut self, n: &'n Node, path: &str, shape: &Shape) -> Option<Fields<'n>> {
        let Value::Map(entries) = &n.value else {
            self.wrong_type(n, path, "a mapping", "`key: value` lines indented under it");
            return None;
        };
        let mut out = Fields {
            path: path.to_owned(),
            pos: n.pos,
            entries: HashMap::new(),
        };
        for (key, value) in entries {
            let kpath = join(path, &key.name);
            if let Some(&f) = shape.fields.iter().find(|f| **f == key.name) {
                if out.entries.contains_key(f) {
                    self.error(
                        key.pos,
                        &kpath,
                        format!("`{f}` is given twice (once under an old name)"),
                        format!("keep only `{f}`"),
                    );
                } else {
                    out.entries.insert(f, (key, value));
                }
            } else if let Some(r) = shape.renamed.iter().find(|r| r.old == key.name) {
                self.warn(
                    key.pos,
                    &kpath,
                    format!("`{}` is a deprecated name", r.old),
                    format!("rename it to `{}`", r.new),
                );
                if out.entries.contains_key(r.new) {
                    self.error(
                        key.pos,
                        &kpath,
                        format!("`{}` and its new name `{}` are both given", r.old, r.new),
                        format!("keep only `{}`", r.new),
                    );
                } else {
                    out.entries.insert(r.new, (key, value));
                }
            } else if let Some(i) = shape.inert.iter().find(|i| i.key == key.name) {
                self.warn(
                    key.pos,
                    &kpath,
                    format!("has no effect: {}", i.why),
                    "remove it",
                );
            } else {
                let fix = match suggestion(&key.name, shape.fields) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => format!("known fields here: {}", shape.fields.join(", ")),
                };
                self.error(
                    key.pos,
                    &kpath,
                    format!("unknown field `{}`", key.name),
                    fix,
                );
            }
        }
        Some(out)
    }

    /// A field that must be present.
    pub fn required<'n>(&mut self, f: &Fields<'n>, field: &'static str) -> Option<&'n Node> {
        let n = f.get(field);
        if n.is_none() {
            self.error(
                f.pos,
                &f.path(field),
                format!("`{field}` is missing"),
                format!("add `{field}:`"),
            );
        }
        n
    }

    pub fn string(&mut self, n: &Node, path: &str) -> Option<String> {
        match &n.value {
            Value::Str(s) => Some(s.clone()),
            _ => {
                self.wrong_type(n, path, "a string", "\"text\"");
                None
            }
        }
    }

    pub fn bool(&mut self, n: &Node, path: &str) -> Option<bool> {
        match n.value {
            Value::Bool(b) => Some(b),
            _ => {
                self.wrong_type(n, path, "true or false", "true");
                None
            }
        }
    }

    /// An integer in `lo..=hi`; numeric strings are accepted as the original files had them.
    pub fn int(&mut self, n: &Node, path: &str, lo: u64, hi: u64) -> Option<u64> {
        let v = match &n.value {
            Value::Int(i) => Some(*i),
            Value::Str(s) => s.trim().parse::<i128>().ok(),
            _ => None,
        };
        match v {
            Some(i) if i >= lo as i128 && i <= hi as i128 => Some(i as u64),
            Some(i) => {
                self.error(
                    n.pos,
                    path,
                    format!("{i} is out of range"),
                    format!("use a whole number from {lo} to {hi}"),
                );
                None
            }
            None => {
                self.wrong_type(n, path, "a whole number", &lo.max(1).to_string());
                None
            }
        }
    }

    /// A number or a string handed to a unit parser (sizes, rates, durations).
    pub fn unit<T>(
        &mut self,
        n: &Node,
        path: &str,
        parse: impl Fn(&str) -> Result<T, UnitError>,
    ) -> Option<T> {
        let text = match &n.value {
            Value::Int(i) => i.to_string(),
            Value::Float(f) => f.to_string(),
            Value::Str(s) => s.clone(),
            _ => {
                self.wrong_type(n, path, "a number or a string with a unit", "\"512M\"");
                return None;
            }
        };
        match parse(&text) {
            Ok(v) => Some(v),
            Err(e) => {
                let msg = e.to_string();
                let (what, fix) = msg.split_once(": ").unwrap_or((&msg, "see docs/policy.md"));
                self.error(n.pos, path, what.to_owned(), fix.to_owned());
                None
            }
        }
    }

    /// A list whose items `item` decodes; bad items are reported and dropped.
    pub fn list<T>(
        &mut self,
        n: &Node,
        path: &str,
        mut item: impl FnMut(&mut Self, &Node, &str) -> Option<T>,
    ) -> Vec<T> {
        match &n.value {
            Value::Seq(items) => items
                .iter()
                .enumerate()
                .filter_map(|(i, it)| item(self, it, &format!("{path}[{i}]")))
                .collect(),
            Value::Null => Vec::new(),
            _ => {
                self.wrong_type(n, path, "a list", "[a, b] or `- a` lines");
                Vec::new()
            }
        }
    }

    /// A list of strings; numbers are taken as their text (ports were written both ways).
    pub fn strings(&mut self, n: &Node, path: &str) -> Vec<(String, Pos)> {
        self.list(n, path, |d, it, p| match &it.value {
            Value::Str(s) => Some((s.clone(), it.pos)),
            Value::Int(i) => Some((i.to_string(), it.pos)),
            _ => {
                d.wrong_type(it, p, "a string", "\"text\"");
                None
            }
        })
    }

    /// Parses each string of a list with `parse`, reporting each failure at its item.
    pub fn parsed<T, E: std::fmt::Display>(
        &mut self,
        n: &Node,
        path: &str,
        fix: &str,
        parse: impl Fn(&str) -> Result<T, E>,
    ) -> Vec<T> {
        let items = self.strings(n, path);
        let mut out = Vec::new();
        for (i, (s, pos)) in items.into_iter().enumerate() {
            match parse(&s) {
                Ok(v) => out.push(v),
                Err(e) => self.error(pos, &format!("{path}[{i}]"), e.to_string(), fix),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_get_a_suggestion() {
        assert_eq!(
            suggestion("memory_limit", &["memory_limit_bytes", "pids_limit"]),
            Some("memory_limit_bytes")
        );
        assert_eq!(suggestion("zzz", &["memory_limit_bytes"]), None);
    }
}
