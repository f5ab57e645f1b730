//! Domain patterns of a plan (`api.example.com`, `*.example.com`) and the
//! resolver's decision for a name.

use purple_policy::plan::{Action, Mode};
use serde::{Deserialize, Serialize};

/// One allowed or blocked domain of the plan, with the rule id its learned
/// addresses carry in the BPF maps and in audit records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainRule {
    pub pattern: String,
    pub action: Action,
    pub id: u32,
}

/// A name as compared: lower case, no trailing dot.
pub fn normalise(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

impl DomainRule {
    /// `*.example.com` matches every name below example.com (any depth) but
    /// not example.com itself; other patterns match exactly. Case-insensitive.
    pub fn matches(&self, name: &str) -> bool {
        let name = normalise(name);
        let pattern = normalise(&self.pattern);
        match pattern.strip_prefix("*.") {
            Some(parent) => name
                .strip_suffix(parent)
                .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
            None => name == pattern,
        }
    }

    pub fn is_wildcard(&self) -> bool {
        self.pattern.starts_with("*.")
    }

    /// How the rule reads in audit records and `purple network stats`.
    pub fn label(&self) -> String {
        let kind = match self.action {
            Action::Allow => "allowed",
            Action::Deny => "blocked",
        };
        format!("#{} {kind} domain {}", self.id, self.pattern)
    }
}

/// What the resolver does with a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision<'a> {
    /// Forward it; learn the answers' addresses under this rule if any.
    Forward(Option<&'a DomainRule>),
    /// Answer NXDOMAIN; `None`: no allowed domain matches (allow-list).
    Deny(Option<&'a DomainRule>),
}

/// A blocked match wins over an allowed one; in allow-list mode a name no
/// allowed domain matches is denied, in deny-list mode it is forwarded.
pub fn decide<'a>(rules: &'a [DomainRule], mode: Mode, name: &str) -> Decision<'a> {
    let hit = |action| rules.iter().find(|r| r.action == action && r.matches(name));
    if let Some(r) = hit(Action::Deny) {
        return Decision::Deny(Some(r));
    }
    match (hit(Action::Allow), mode) {
        (Some(r), _) => Decision::Forward(Some(r)),
        (None, Mode::AllowList) => Decision::Deny(None),
        (None, Mode::DenyList) => Decision::Forward(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(pattern: &str, action: Action, id: u32) -> DomainRule {
        DomainRule {
            pattern: pattern.into(),
            action,
            id,
        }
    }

    #[test]
    fn wildcards_match_below_the_parent_only() {
        let r = rule("*.allowed.test", Action::Allow, 1);
        for yes in ["api.allowed.test", "a.b.allowed.test", "API.Allowed.Test."] {
            assert!(r.matches(yes), "{yes}");
        }
        for no in [
            "allowed.test",
            "evilallowed.test",
            "allowed.test.evil",
            ".allowed.test",
            "",
        ] {
            assert!(!r.matches(no), "{no}");
        }
        let exact = rule("allowed.test", Action::Allow, 2);
        assert!(exact.matches("ALLOWED.test."));
        assert!(!exact.matches("api.allowed.test"));
    }

    #[test]
    fn blocked_wins_and_mode_decides_the_rest() {
        let rules = [
            rule("*.allowed.test", Action::Allow, 5),
            rule("leak.allowed.test", Action::Deny, 6),
        ];
        assert_eq!(
            decide(&rules, Mode::AllowList, "api.allowed.test"),
            Decision::Forward(Some(&rules[0]))
        );
        assert_eq!(
            decide(&rules, Mode::AllowList, "leak.allowed.test"),
            Decision::Deny(Some(&rules[1]))
        );
        assert_eq!(
            decide(&rules, Mode::AllowList, "evil.test"),
            Decision::Deny(None)
        );
        assert_eq!(
            decide(&rules, Mode::DenyList, "evil.test"),
            Decision::Forward(None)
        );
    }
}
