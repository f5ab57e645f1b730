//! Human units in policies: sizes (`"512M"`, `"1.5GiB"`, `536870912`), byte
//! rates (`"10MBps"`), CPU fractions (`0.5`, `"50%"`) and durations (`"5m"`,
//! `300`). Every parser rejects nonsense and overflow with a message that says
//! what to write instead; none of them panics.

/// The CFS period Purple uses: quota = fraction × period.
pub const CPU_PERIOD_US: u64 = 100_000;
/// The kernel refuses quotas below 1 ms.
const MIN_CPU_QUOTA_US: u64 = 1_000;
/// More CPUs than any host Purple runs on: a bigger number is a typo.
const MAX_CPUS: f64 = 4096.0;
/// Fraction digits beyond this cannot change a byte count a policy cares about,
/// and bounding them keeps the decimal arithmetic inside `u128`.
const MAX_FRACTION_DIGITS: usize = 9;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    #[error("{0:?} is not a size: write bytes (536870912) or a number with a unit K, M, G, T, P (powers of 1024), e.g. \"512M\" or \"1.5GiB\"")]
    Size(String),
    #[error("{0:?} is too large: a size must fit in 64 bits (below 16 EiB)")]
    SizeOverflow(String),
    #[error("{0:?} is not a byte rate: write bytes per second (10485760) or a size per second, e.g. \"10MBps\" or \"10M/s\"")]
    Rate(String),
    #[error("{0:?} is not a CPU fraction: write a number of CPUs such as 0.5 or 2, or a percentage such as \"50%\" (at least 0.01, at most 4096)")]
    Cpu(String),
    #[error("{0:?} is not a duration: write seconds (300) or numbers with units s, m, h, d, e.g. \"5m\" or \"1h30m\"")]
    Duration(String),
    #[error("{0:?} is too long: a duration must fit in 64 bits of seconds")]
    DurationOverflow(String),
}

/// A CFS bandwidth limit: `quota` µs of CPU time every `period` µs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuLimit {
    pub quota: i64,
    pub period: u64,
}

/// Splits `"1.5GiB"` into `("1.5", "GiB")`.
fn split_number(s: &str) -> (&str, &str) {
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    (&s[..end], s[end..].trim())
}

/// `digits[.fraction]` as `(mantissa, 10^fraction_digits)`, exactly; `None`
/// when malformed, `Some(None)` when too long for the arithmetic.
fn decimal(num: &str) -> Option<Option<(u128, u128)>> {
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    let all_digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    if (int.is_empty() && frac.is_empty()) || !all_digits(int) || !all_digits(frac) {
        return None;
    }
    if num.ends_with('.') || frac.len() > MAX_FRACTION_DIGITS {
        return None;
    }
    let mut mantissa: u128 = 0;
    for b in int.bytes().chain(frac.bytes()) {
        match mantissa
            .checked_mul(10)
            .and_then(|m| m.checked_add(u128::from(b - b'0')))
        {
            Some(m) => mantissa = m,
            None => return Some(None),
        }
    }
    Some(Some((mantissa, 10u128.pow(frac.len() as u32))))
}

/// Multiplier of a size unit. The original Purple read K/KB/M/MB/G/GB as powers
/// of 1024, and existing policies rely on it, so every spelling is binary.
fn size_unit(unit: &str) -> Option<u128> {
    let shift = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        "p" | "pb" | "pib" => 50,
        _ => return None,
    };
    Some(1u128 << shift)
}

/// Parses a size such as `"512M"`, `"1.5GiB"`, `"4096"` into bytes.
///
/// ```
/// use purple_policy::units::parse_size;
/// assert_eq!(parse_size("512M").unwrap(), 512 << 20);
/// assert_eq!(parse_size("1.5GiB").unwrap(), 3 << 29);
/// assert!(parse_size("lots").is_err());
/// ```
pub fn parse_size(s: &str) -> Result<u64, UnitError> {
    let t = s.trim();
    let (num, unit) = split_number(t);
    let bad = || UnitError::Size(s.to_owned());
    let mult = size_unit(unit).ok_or_else(bad)?;
    let overflow = || UnitError::SizeOverflow(s.to_owned());
    let (mantissa, scale) = decimal(num).ok_or_else(bad)?.ok_or_else(overflow)?;
    // Fractional bytes make no sense: "1.5" needs a unit.
    if unit.is_empty() && scale != 1 {
        return Err(bad());
    }
    let bytes = mantissa.checked_mul(mult).ok_or_else(overflow)? / scale;
    u64::try_from(bytes).map_err(|_| overflow())
}

/// Parses a byte rate such as `"10MBps"`, `"10M/s"` or `"1048576"` into bytes per second.
///
/// ```
/// use purple_policy::units::parse_rate;
/// assert_eq!(parse_rate("10MBps").unwrap(), 10 << 20);
/// ```
pub fn parse_rate(s: &str) -> Result<u64, UnitError> {
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    let size = ["/s", "ps"]
        .iter()
        .find_map(|suffix| lower.strip_suffix(suffix).map(|_| &t[..t.len() - 2]))
        .unwrap_or(t);
    parse_size(size).map_err(|e| match e {
        UnitError::SizeOverflow(_) => UnitError::SizeOverflow(s.to_owned()),
        _ => UnitError::Rate(s.to_owned()),
    })
}

/// Turns a CPU fraction (`0.5` = half a CPU, `2` = two CPUs) into a CFS limit.
///
/// ```
/// use purple_policy::units::{cpu_limit, CpuLimit};
/// assert_eq!(cpu_limit(0.5).unwrap(), CpuLimit { quota: 50_000, period: 100_000 });
/// ```
pub fn cpu_limit(cpus: f64) -> Result<CpuLimit, UnitError> {
    let bad = || UnitError::Cpu(cpus.to_string());
    if !cpus.is_finite() || cpus <= 0.0 || cpus > MAX_CPUS {
        return Err(bad());
    }
    // In range by the checks above: at most 4096 × 100000.
    let quota = (cpus * CPU_PERIOD_US as f64).round() as u64;
    if quota < MIN_CPU_QUOTA_US {
        return Err(bad());
    }
    Ok(CpuLimit {
        quota: quota as i64,
        period: CPU_PERIOD_US,
    })
}

/// Parses a CPU fraction written as text: `"0.5"`, `"2"` or `"50%"`.
pub fn parse_cpu(s: &str) -> Result<CpuLimit, UnitError> {
    let t = s.trim();
    let bad = || UnitError::Cpu(s.to_owned());
    let (num, percent) = match t.strip_suffix('%') {
        Some(n) => (n.trim_end(), true),
        None => (t, false),
    };
    // f64's parser also takes "inf", "nan" and exponents; policies want plain decimals.
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(bad());
    }
    let n: f64 = num.parse().map_err(|_| bad())?;
    cpu_limit(if percent { n / 100.0 } else { n }).map_err(|_| bad())
}

/// Parses a duration such as `"300"`, `"90s"`, `"5m"` or `"1h30m"` into seconds.
///
/// ```
/// use purple_policy::units::parse_duration;
/// assert_eq!(parse_duration("1h30m").unwrap(), 5400);
/// assert_eq!(parse_duration("300").unwrap(), 300);
/// ```
pub fn parse_duration(s: &str) -> Result<u64, UnitError> {
    let t = s.trim();
    let bad = || UnitError::Duration(s.to_owned());
    let overflow = || UnitError::DurationOverflow(s.to_owned());
    if t.is_empty() {
        return Err(bad());
    }
    if t.bytes().all(|b| b.is_ascii_digit()) {
        return t.parse().map_err(|_| overflow());
    }
    let mut total: u64 = 0;
    let mut rest = t;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| overflow())?;
        rest = &rest[digits..];
        let unit = rest.chars().next().ok_or_else(bad)?;
        let secs = match unit {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(bad()),
        };
        rest = &rest[unit.len_utf8()..];
        total = n
            .checked_mul(secs)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(overflow)?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sizes() {
        for (s, want) in [
            ("512M", 512u64 << 20),
            ("512MB", 512 << 20),
            ("512 MiB", 512 << 20),
            ("2G", 2 << 30),
            ("1.5GiB", 3 << 29),
            ("0.5k", 512),
            ("4096", 4096),
            ("4096b", 4096),
            ("1T", 1 << 40),
            (" 64k ", 64 << 10),
        ] {
            assert_eq!(parse_size(s), Ok(want), "{s}");
        }
        assert_eq!(parse_size("18446744073709551615"), Ok(u64::MAX));
    }

    #[test]
    fn nonsense_sizes_are_refused() {
        for s in [
            "", "M", "-1M", "1.5", "1..5M", "1.M", ".", "12Q", "1 2M", "0x10", "∞",
        ] {
            assert_eq!(parse_size(s), Err(UnitError::Size(s.into())), "{s}");
        }
        for s in [
            "18446744073709551616",
            "16384P",
            "99999999999999999999999999999999999999999",
        ] {
            assert_eq!(parse_size(s), Err(UnitError::SizeOverflow(s.into())), "{s}");
        }
        let msg = parse_size("12Q").unwrap_err().to_string();
        assert!(
            msg.contains("\"512M\""),
            "the message shows what to write: {msg}"
        );
    }

    #[test]
    fn rates() {
        assert_eq!(parse_rate("10MBps"), Ok(10 << 20));
        assert_eq!(parse_rate("10M/s"), Ok(10 << 20));
        assert_eq!(parse_rate("1048576"), Ok(1 << 20));
        assert_eq!(parse_rate("fast"), Err(UnitError::Rate("fast".into())));
        assert_eq!(parse_rate("ps"), Err(UnitError::Rate("ps".into())));
    }

    #[test]
    fn cpu_fractions() {
        assert_eq!(parse_cpu("0.5").unwrap().quota, 50_000);
        assert_eq!(parse_cpu("50%").unwrap().quota, 50_000);
        assert_eq!(parse_cpu("2").unwrap().quota, 200_000);
        assert_eq!(cpu_limit(0.01).unwrap().quota, 1_000);
        for s in ["0", "-1", "0.001", "nan", "inf", "1e3", "5000", "", "%"] {
            assert!(parse_cpu(s).is_err(), "{s}");
        }
        for f in [f64::NAN, f64::INFINITY, -0.5, 0.0, 1e300] {
            assert!(cpu_limit(f).is_err(), "{f}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("300"), Ok(300));
        assert_eq!(parse_duration("90s"), Ok(90));
        assert_eq!(parse_duration("5m"), Ok(300));
        assert_eq!(parse_duration("2h"), Ok(7200));
        assert_eq!(parse_duration("1d1h1m1s"), Ok(90_061));
        for s in ["", "m", "5x", "5 m", "-5m", "1.5h"] {
            assert_eq!(parse_duration(s), Err(UnitError::Duration(s.into())), "{s}");
        }
        for s in ["99999999999999999999", "999999999999999999d"] {
            assert_eq!(
                parse_duration(s),
                Err(UnitError::DurationOverflow(s.into())),
                "{s}"
            );
        }
    }

    proptest! {
        #[test]
        fn parsers_never_panic(s in "\\PC{0,24}") {
            let _ = parse_size(&s);
            let _ = parse_rate(&s);
            let _ = parse_cpu(&s);
            let _ = parse_duration(&s);
        }

        #[test]
        fn unit_shaped_strings_never_panic(s in "[0-9.]{0,30}[kmgtpbiKMGTPBI/sdh%]{0,4}") {
            let _ = parse_size(&s);
            let _ = parse_rate(&s);
            let _ = parse_cpu(&s);
            let _ = parse_duration(&s);
        }

        #[test]
        fn whole_mebibytes_round_trip(n in 0u64..(1 << 40)) {
            prop_assert_eq!(parse_size(&format!("{n}M")), Ok(n << 20));
        }

        #[test]
        fn cpu_limit_never_panics(f in proptest::num::f64::ANY) {
            let _ = cpu_limit(f);
        }
    }
}
