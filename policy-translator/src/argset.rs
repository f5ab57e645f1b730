//! Sets of system-call argument values as seccomp rules. A seccomp rule
//! compares each argument at most once, so a set such as "3 to 9" or "every
//! value but these" is written as several rules with the same action (the
//! kernel takes a call when any of them matches). Comparisons are in the
//! OCI meaning (runc's): `masked_eq` is `(arg & value) == valueTwo`.

use oci_spec::runtime::{LinuxSeccompArg, LinuxSeccompArgBuilder, LinuxSeccompOperator as Op};

/// One comparison: argument `index`, operator, value and (masked) datum.
pub fn cmp(index: usize, op: Op, value: u64, two: Option<u64>) -> LinuxSeccompArg {
    let mut b = LinuxSeccompArgBuilder::default()
        .index(index)
        .op(op)
        .value(value);
    if let Some(t) = two {
        b = b.value_two(t);
    }
    b.build().expect("every field is set")
}

/// Rules (each a list of comparisons that must all hold) matching exactly
/// the values `lo..=hi` of argument `index`: `le`/`ge` at the ends, else
/// aligned power-of-two blocks as masked comparisons (at most 128).
pub fn range(index: usize, lo: u64, hi: u64) -> Vec<Vec<LinuxSeccompArg>> {
    match (lo, hi) {
        _ if lo > hi => Vec::new(),
        (0, u64::MAX) => vec![Vec::new()],
        (l, h) if l == h => vec![vec![cmp(index, Op::ScmpCmpEq, l, None)]],
        (0, h) => vec![vec![cmp(index, Op::ScmpCmpLe, h, None)]],
        (l, u64::MAX) => vec![vec![cmp(index, Op::ScmpCmpGe, l, None)]],
        (mut l, h) => {
            let mut out = Vec::new();
            loop {
                // The largest block starting at l (aligned) that ends by h.
                let mut size: u64 = if l == 0 {
                    1 << 63
                } else {
                    1 << l.trailing_zeros()
                };
                while size > 1 && l.checked_add(size - 1).is_none_or(|end| end > h) {
                    size >>= 1;
                }
                let rule = if size == 1 {
                    cmp(index, Op::ScmpCmpEq, l, None)
                } else {
                    cmp(index, Op::ScmpCmpMaskedEq, !(size - 1), Some(l))
                };
                out.push(vec![rule]);
                match l.checked_add(size) {
                    Some(next) if next <= h => l = next,
                    _ => return out,
                }
            }
        }
    }
}

/// Rules matching exactly the values of argument `index` not in `values`.
pub fn outside(index: usize, values: &[u64]) -> Vec<Vec<LinuxSeccompArg>> {
    let points: Vec<(u64, u64)> = values.iter().map(|v| (*v, *v)).collect();
    gaps(&points)
        .into_iter()
        .flat_map(|(a, b)| range(index, a, b))
        .collect()
}

/// The values a comparison on its own accepts, as inclusive ranges, when it
/// is an ordering (`masked_eq` is not one).
fn ranges(c: &LinuxSeccompArg) -> Option<Vec<(u64, u64)>> {
    let v = c.value();
    Some(match c.op() {
        Op::ScmpCmpEq => vec![(v, v)],
        Op::ScmpCmpNe => gaps(&[(v, v)]),
        Op::ScmpCmpLt => v.checked_sub(1).map(|b| vec![(0, b)]).unwrap_or_default(),
        Op::ScmpCmpLe => vec![(0, v)],
        Op::ScmpCmpGt => v
            .checked_add(1)
            .map(|a| vec![(a, u64::MAX)])
            .unwrap_or_default(),
        Op::ScmpCmpGe => vec![(v, u64::MAX)],
        Op::ScmpCmpMaskedEq => return None,
    })
}

/// Rules matching exactly the calls for which `c` does not hold.
pub fn negate(c: &LinuxSeccompArg) -> Vec<Vec<LinuxSeccompArg>> {
    let i = c.index();
    match ranges(c) {
        Some(r) => gaps(&r)
            .into_iter()
            .flat_map(|(a, b)| range(i, a, b))
            .collect(),
        None => {
            let (mask, datum) = (c.value(), c.value_two().unwrap_or(0));
            if datum & !mask != 0 {
                // Never equal: every value is outside.
                return vec![Vec::new()];
            }
            // Outside when any bit of the mask differs from the datum's.
            (0..64)
                .map(|b| 1u64 << b)
                .filter(|bit| mask & bit != 0)
                .map(|bit| vec![cmp(i, Op::ScmpCmpMaskedEq, bit, Some(!datum & bit))])
                .collect()
        }
    }
}

/// The complement of a union of inclusive ranges, as sorted ranges.
fn gaps(ranges: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut sorted = ranges.to_vec();
    sorted.sort_unstable();
    let mut out = Vec::new();
    let mut next: Option<u64> = Some(0);
    for (a, b) in sorted {
        if let Some(n) = next {
            if a > n {
                out.push((n, a - 1));
            }
            if b >= n {
                next = b.checked_add(1);
            }
        }
    }
    if let Some(n) = next {
        out.push((n, u64::MAX));
    }
    out
}

/// Rules matching exactly the calls that match none of `rules` (each an AND
/// of comparisons), when that is cheap to write: every rule one ordering on
/// the same argument, or a single rule. `None` otherwise.
pub fn complement(rules: &[Vec<LinuxSeccompArg>]) -> Option<Vec<Vec<LinuxSeccompArg>>> {
    if rules.iter().any(|r| r.is_empty()) {
        return Some(Vec::new());
    }
    if let [only] = rules {
        return Some(only.iter().flat_map(negate).collect());
    }
    let index = rules[0][0].index();
    let mut accepted = Vec::new();
    for r in rules {
        match r.as_slice() {
            [c] if c.index() == index => accepted.extend(ranges(c)?),
            _ => return None,
        }
    }
    Some(
        gaps(&accepted)
            .into_iter()
            .flat_map(|(a, b)| range(index, a, b))
            .collect(),
    )
}

/// Whether `args` satisfies every comparison of `rule`.
pub fn matches(rule: &[LinuxSeccompArg], args: &[u64; 6]) -> bool {
    rule.iter().all(|c| holds(c, args))
}

/// Whether one comparison holds, as the kernel compares (64 bits, unsigned).
pub fn holds(c: &LinuxSeccompArg, args: &[u64; 6]) -> bool {
    let Some(&arg) = args.get(c.index()) else {
        return false;
    };
    let v = c.value();
    match c.op() {
        Op::ScmpCmpNe => arg != v,
        Op::ScmpCmpLt => arg < v,
        Op::ScmpCmpLe => arg <= v,
        Op::ScmpCmpEq => arg == v,
        Op::ScmpCmpGe => arg >= v,
        Op::ScmpCmpGt => arg > v,
        Op::ScmpCmpMaskedEq => arg & v == c.value_two().unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn any(rules: &[Vec<LinuxSeccompArg>], x: u64) -> bool {
        rules.iter().any(|r| matches(r, &[x, 0, 0, 0, 0, 0]))
    }

    const PROBES: &[u64] = &[
        0,
        1,
        2,
        3,
        4,
        7,
        8,
        9,
        10,
        11,
        15,
        16,
        17,
        39,
        40,
        41,
        0x5400,
        0x5401,
        0x5402,
        1 << 32,
        u64::MAX - 1,
        u64::MAX,
    ];

    #[test]
    fn ranges_are_exact() {
        for (lo, hi) in [
            (3, 9),
            (0, 1),
            (11, u64::MAX),
            (0x5402, u64::MAX),
            (5, 5),
            (1, 1 << 40),
        ] {
            let r = range(0, lo, hi);
            assert!(r.len() <= 128);
            for &x in PROBES
                .iter()
                .chain(&[lo, hi, lo.wrapping_sub(1), hi.wrapping_add(1)])
            {
                assert_eq!(any(&r, x), (lo..=hi).contains(&x), "{lo}..={hi} at {x}");
            }
        }
    }

    #[test]
    fn complements_are_exact() {
        let eq = |v| vec![cmp(0, Op::ScmpCmpEq, v, None)];
        let cases: Vec<Vec<Vec<LinuxSeccompArg>>> = vec![
            vec![eq(2), eq(10)],
            vec![vec![cmp(0, Op::ScmpCmpMaskedEq, 3, Some(0))]],
            vec![vec![cmp(0, Op::ScmpCmpNe, 9, None)]],
            vec![
                vec![cmp(0, Op::ScmpCmpLt, 4, None)],
                vec![cmp(0, Op::ScmpCmpGt, 40, None)],
            ],
            vec![vec![cmp(0, Op::ScmpCmpGe, 0, None)]],
            vec![vec![cmp(0, Op::ScmpCmpMaskedEq, 3, Some(4))]],
            vec![vec![
                cmp(0, Op::ScmpCmpEq, 16, None),
                cmp(2, Op::ScmpCmpEq, 0, None),
            ]],
        ];
        for rules in cases {
            let c = complement(&rules).unwrap();
            for &x in PROBES {
                for &y in &[0u64, 1] {
                    let args = [x, 0, y, 0, 0, 0];
                    let inside = rules.iter().any(|r| matches(r, &args));
                    let outside = c.iter().any(|r| matches(r, &args));
                    assert_ne!(inside, outside, "{rules:?} at {x}, {y}");
                }
            }
        }
        let two_args = vec![
            vec![cmp(0, Op::ScmpCmpEq, 1, None)],
            vec![cmp(1, Op::ScmpCmpEq, 1, None)],
        ];
        assert_eq!(complement(&two_args), None);
    }
}
