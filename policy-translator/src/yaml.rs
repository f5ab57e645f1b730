//! YAML read into a tree that remembers where every value came from, so that
//! each error can name the file, line and column. Anchors and aliases are
//! resolved; documents with more than [`MAX_NODES`] nodes are refused (a
//! policy is small, and aliases can otherwise expand without bound).

use std::collections::HashMap;
use std::fmt;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// More nodes than any real policy has; bounds alias expansion.
pub const MAX_NODES: usize = 100_000;

/// A 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

impl From<Marker> for Pos {
    fn from(m: Marker) -> Self {
        Self {
            line: m.line(),
            col: m.col() + 1,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// Keys in document order; duplicates are refused while reading.
    Map(Vec<(Key, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    pub name: String,
    pub pos: Pos,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub pos: Pos,
}

impl Node {
    /// What a user would call this value's type, for "expected X, found Y".
    pub fn kind(&self) -> &'static str {
        match self.value {
            Value::Null => "nothing",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
}

/// A document that is not YAML, or not a policy-shaped YAML document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub pos: Pos,
    pub message: String,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.pos.line, self.pos.col, self.message)
    }
}

enum Frame {
    Seq(Pos, usize, Vec<Node>),
    Map(Pos, usize, Vec<(Key, Node)>, Option<Key>),
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    anchors: HashMap<usize, Node>,
    docs: Vec<Node>,
    nodes: usize,
    error: Option<SyntaxError>,
}

/// YAML 1.2 core schema for plain scalars; quoted scalars are always strings.
fn scalar(s: String, style: TScalarStyle) -> Value {
    if style != TScalarStyle::Plain {
        return Value::Str(s);
    }
    match s.as_str() {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    let int = if let Some(h) = s.strip_prefix("0x") {
        i128::from_str_radix(h, 16).ok()
    } else if let Some(o) = s.strip_prefix("0o") {
        i128::from_str_radix(o, 8).ok()
    } else {
        s.parse::<i128>().ok()
    };
    if let Some(i) = int {
        return Value::Int(i);
    }
    let looks_numeric = s
        .trim_start_matches(['-', '+'])
        .starts_with(|c: char| c.is_ascii_digit() || c == '.');
    match s.parse::<f64>() {
        Ok(f) if looks_numeric && f.is_finite() => Value::Float(f),
        _ => Value::Str(s),
    }
}

impl Builder {
    fn fail(&mut self, pos: Pos, message: impl Into<String>) {
        if self.error.is_none() {
            self.error = Some(SyntaxError {
                pos,
                message: message.into(),
            });
        }
    }

    fn count(&mut self, n: usize, pos: Pos) -> bool {
        self.nodes = self.nodes.saturating_add(n);
        if self.nodes > MAX_NODES {
            self.fail(
                pos,
                format!("document too large (over {MAX_NODES} values, aliases expanded)"),
            );
            return false;
        }
        true
    }

    fn push(&mut self, node: Node, anchor: usize) {
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => self.docs.push(node),
            Some(Frame::Seq(_, _, items)) => items.push(node),
            Some(Frame::Map(_, _, entries, key)) => match key.take() {
                Some(k) => {
                    if entries.iter().any(|(e, _)| e.name == k.name) {
                        let msg = format!("key {:?} appears twice in this mapping", k.name);
                        self.fail(k.pos, msg);
                    } else {
                        entries.push((k, node));
                    }
                }
                None => match node.value {
                    Value::Str(name) => {
                        *key = Some(Key {
                            name,
                            pos: node.pos,
                        })
                    }
                    Value::Null | Value::Bool(_) | Value::Int(_) | Value::Float(_) => {
                        *key = Some(Key {
                            name: display_scalar(&node.value),
                            pos: node.pos,
                        })
                    }
                    _ => self.fail(node.pos, "a mapping key must be a plain name"),
                },
            },
        }
    }
}

fn display_scalar(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        _ => String::new(),
    }
}

fn node_count(n: &Node) -> usize {
    1 + match &n.value {
        Value::Seq(items) => items.iter().map(node_count).sum(),
        Value::Map(entries) => entries.iter().map(|(_, v)| node_count(v)).sum(),
        _ => 0,
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if self.error.is_some() {
            return;
        }
        let pos = Pos::from(mark);
        match ev {
            Event::Scalar(s, style, anchor, tag) => {
                if let Some(t) = tag {
                    return self.fail(
                        pos,
                        format!(
                            "YAML tags ({}{}) are not supported in policies",
                            t.handle, t.suffix
                        ),
                    );
                }
                if self.count(1, pos) {
                    let value = scalar(s, style);
                    self.push(Node { value, pos }, anchor);
                }
            }
            Event::SequenceStart(anchor, _) => self.stack.push(Frame::Seq(pos, anchor, Vec::new())),
            Event::MappingStart(anchor, _) => {
                self.stack.push(Frame::Map(pos, anchor, Vec::new(), None))
            }
            Event::SequenceEnd => {
                if let Some(Frame::Seq(p, anchor, items)) = self.stack.pop() {
                    if self.count(1, p) {
                        self.push(
                            Node {
                                value: Value::Seq(items),
                                pos: p,
                            },
                            anchor,
                        );
                    }
                }
            }
            Event::MappingEnd => {
                if let Some(Frame::Map(p, anchor, entries, _)) = self.stack.pop() {
                    if self.count(1, p) {
                        self.push(
                            Node {
                                value: Value::Map(entries),
                                pos: p,
                            },
                            anchor,
                        );
                    }
                }
            }
            Event::Alias(id) => match self.anchors.get(&id).cloned() {
                Some(node) => {
                    if self.count(node_count(&node), pos) {
                        self.push(node, 0);
                    }
                }
                None => self.fail(pos, "alias to an unknown anchor"),
            },
            Event::Nothing
            | Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart
            | Event::DocumentEnd => {}
        }
    }
}

/// Reads one YAML document. An empty file is an error (a policy needs a name).
pub fn parse(text: &str) -> Result<Node, SyntaxError> {
    let mut b = Builder::default();
    let mut parser = Parser::new_from_str(text);
    if let Err(e) = parser.load(&mut b, true) {
        let m = e.marker();
        return Err(SyntaxError {
            pos: Pos {
                line: m.line(),
                col: m.col() + 1,
            },
            message: format!("not valid YAML: {}", e.info()),
        });
    }
    if let Some(e) = b.error {
        return Err(e);
    }
    let first = Pos { line: 1, col: 1 };
    match b.docs.len() {
        0 => Err(SyntaxError {
            pos: first,
            message: "the file is empty: a policy is a mapping with at least `name`".into(),
        }),
        1 => Ok(b.docs.pop().expect("one document")),
        _ => Err(SyntaxError {
            pos: first,
            message: "the file holds several YAML documents (---): put one policy per file".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(n: &Node) -> &[(Key, Node)] {
        match &n.value {
            Value::Map(m) => m,
            _ => panic!("not a map: {n:?}"),
        }
    }

    #[test]
    fn positions_are_one_based() {
        let n = parse("name: x\nresources:\n  memory_limit_bytes: \"512M\"\n").unwrap();
        let top = map(&n);
        assert_eq!(top[0].0.pos, Pos { line: 1, col: 1 });
        let res = map(&top[1].1);
        assert_eq!(res[0].0.pos, Pos { line: 3, col: 3 });
        assert_eq!(res[0].1.value, Value::Str("512M".into()));
        assert_eq!(res[0].1.pos, Pos { line: 3, col: 23 });
    }

    #[test]
    fn scalars_follow_the_core_schema() {
        let n = parse("a: 1\nb: \"1\"\nc: 0.5\nd: true\ne: ~\nf: 0x10\ng: .inf\nh: 1e3\n").unwrap();
        let v: Vec<_> = map(&n).iter().map(|(_, n)| n.value.clone()).collect();
        assert_eq!(v[0], Value::Int(1));
        assert_eq!(v[1], Value::Str("1".into()));
        assert_eq!(v[2], Value::Float(0.5));
        assert_eq!(v[3], Value::Bool(true));
        assert_eq!(v[4], Value::Null);
        assert_eq!(v[5], Value::Int(16));
        assert_eq!(v[6], Value::Str(".inf".into()));
        assert_eq!(v[7], Value::Float(1000.0));
    }

    #[test]
    fn duplicates_tags_and_alias_bombs_are_refused() {
        assert!(parse("a: 1\na: 2\n").unwrap_err().message.contains("twice"));
        assert!(parse("a: !!str 1\n").unwrap_err().message.contains("tags"));
        let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let prev = format!("*a{}", i - 1);
            bomb.push_str(&format!("a{i}: &a{i} [{}]\n", vec![prev; 10].join(", ")));
        }
        assert!(parse(&bomb).unwrap_err().message.contains("too large"));
        assert!(parse("").is_err());
        assert!(parse("a: [1, 2\n")
            .unwrap_err()
            .message
            .contains("not valid YAML"));
    }

    #[test]
    fn aliases_copy_their_anchor() {
        let n = parse("a: &x {k: 1}\nb: *x\n").unwrap();
        let m = map(&n);
        assert_eq!(map(&m[1].1)[0].1.value, Value::Int(1));
    }
}
