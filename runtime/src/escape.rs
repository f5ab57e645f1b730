//! Text for people's terminals. Agents choose their process names, arguments,
//! file names and DNS questions; printed raw, a control sequence in one of
//! them could erase lines, hide text or forge rows on the operator's screen.
//! Every human-readable output passes agent-reachable strings through
//! [`for_terminal`]; JSON output keeps the exact bytes (JSON escapes them).

use std::borrow::Cow;

/// Whether `c` changes what a terminal shows rather than being shown:
/// C0 and C1 controls, DEL, and the bidirectional overrides and isolates
/// that reorder text.
fn hides(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `s` with every control character shown as an escape (`\r`, `\x1b`,
/// `\u{9b}`); unchanged, and not copied, when it has none.
pub fn for_terminal(s: &str) -> Cow<'_, str> {
    if !s.chars().any(hides) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if hides(c) && (c as u32) < 0x80 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if hides(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// A message of several lines (an error with its fix), each line escaped.
pub fn lines_for_terminal(s: &str) -> String {
    s.split('\n')
        .map(for_terminal)
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_are_shown_not_obeyed() {
        assert_eq!(for_terminal("netprobe"), "netprobe");
        assert!(matches!(for_terminal("plain"), Cow::Borrowed(_)));
        assert_eq!(for_terminal("\r\x1b[2K\x1b[8m"), "\\r\\x1b[2K\\x1b[8m");
        assert_eq!(
            for_terminal("a\u{9b}b\u{202e}c\x7f"),
            "a\\u{9b}b\\u{202e}c\\x7f"
        );
        assert_eq!(
            lines_for_terminal("one\x1b\n    fix: two"),
            "one\\x1b\n    fix: two"
        );
    }
}
