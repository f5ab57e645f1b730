//! Port lists of a policy and their operations: merged into as few ranges as
//! possible, complemented (a deny-list's `allow_outgoing` becomes a deny rule
//! for every other port) and counted against what one kernel rule holds.

use serde::Serialize;

use crate::limits::MAX_PORT_RANGES;
use crate::plan::PortRange;

/// Sorted, disjoint, non-adjacent port ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct PortRanges(Vec<PortRange>);

impl PortRanges {
    /// Merges adjacent and overlapping ranges, so `80, 81, 82` costs one slot.
    pub fn merged(mut ports: Vec<PortRange>) -> Self {
        ports.sort_by_key(|p| p.first);
        let mut out: Vec<PortRange> = Vec::new();
        for p in ports {
            match out.last_mut() {
                Some(last) if u32::from(p.first) <= u32::from(last.last) + 1 => {
                    last.last = last.last.max(p.last)
                }
                _ => out.push(p),
            }
        }
        Self(out)
    }

    /// Every port these ranges leave out: the ports a deny rule covers.
    /// Port 0 is a port like any other (TCP and UDP can be sent to it), so
    /// the complement starts there.
    pub fn complement(&self) -> Self {
        let mut out = Vec::new();
        let mut next: u32 = 0;
        for p in &self.0 {
            if u32::from(p.first) > next {
                out.push(PortRange {
                    first: next as u16,
                    last: p.first - 1,
                });
            }
            next = u32::from(p.last) + 1;
        }
        if next <= 65535 {
            out.push(PortRange {
                first: next as u16,
                last: 65535,
            });
        }
        Self(out)
    }

    /// Whether one kernel rule can hold them.
    pub fn fit(&self) -> bool {
        self.0.len() <= MAX_PORT_RANGES
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn ranges(&self) -> &[PortRange] {
        &self.0
    }

    pub fn into_vec(self) -> Vec<PortRange> {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranges(s: &[&str]) -> PortRanges {
        PortRanges::merged(s.iter().map(|p| p.parse().unwrap()).collect())
    }

    fn text(p: &PortRanges) -> Vec<String> {
        p.ranges().iter().map(|r| r.to_string()).collect()
    }

    #[test]
    fn merge_joins_neighbours_and_overlaps() {
        assert_eq!(
            text(&ranges(&["82", "80", "81", "90-100", "95-110"])),
            ["80-82", "90-110"]
        );
        assert_eq!(text(&ranges(&["0", "65535"])), ["0", "65535"]);
    }

    #[test]
    fn complement_covers_everything_else() {
        let c = ranges(&["53", "80", "443"]).complement();
        assert_eq!(text(&c), ["0-52", "54-79", "81-442", "444-65535"]);
        assert!(ranges(&["0-65535"]).complement().is_empty());
        assert_eq!(text(&ranges(&["1-65535"]).complement()), ["0"]);
    }

    #[test]
    fn a_rule_holds_at_most_the_kernel_limit() {
        let each = |n: u16| {
            PortRanges::merged(
                (0..n)
                    .map(|i| PortRange {
                        first: i * 2,
                        last: i * 2,
                    })
                    .collect(),
            )
        };
        assert!(each(MAX_PORT_RANGES as u16).fit());
        assert!(!each(MAX_PORT_RANGES as u16 + 1).fit());
    }
}
