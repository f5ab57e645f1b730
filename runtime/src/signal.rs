//! Signal names and numbers as `kill` accepts them.
//!
//! libcontainer's `Signal::try_from` swaps SIGBUS and SIGTRAP and cannot express
//! real-time signals (podman stops systemd images with `SIGRTMIN+3`), so Purple
//! parses signals itself and sends raw numbers.

/// Why a signal was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid signal {0:?}: use a number (1-{max}), a name such as TERM or SIGKILL, or RTMIN+n / RTMAX-n", max = libc::SIGRTMAX())]
pub struct SignalError(pub String);

const NAMES: &[(&str, libc::c_int)] = &[
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("ILL", libc::SIGILL),
    ("TRAP", libc::SIGTRAP),
    ("ABRT", libc::SIGABRT),
    ("IOT", libc::SIGIOT),
    ("BUS", libc::SIGBUS),
    ("FPE", libc::SIGFPE),
    ("KILL", libc::SIGKILL),
    ("USR1", libc::SIGUSR1),
    ("SEGV", libc::SIGSEGV),
    ("USR2", libc::SIGUSR2),
    ("PIPE", libc::SIGPIPE),
    ("ALRM", libc::SIGALRM),
    ("TERM", libc::SIGTERM),
    ("STKFLT", libc::SIGSTKFLT),
    ("CHLD", libc::SIGCHLD),
    ("CLD", libc::SIGCHLD),
    ("CONT", libc::SIGCONT),
    ("STOP", libc::SIGSTOP),
    ("TSTP", libc::SIGTSTP),
    ("TTIN", libc::SIGTTIN),
    ("TTOU", libc::SIGTTOU),
    ("URG", libc::SIGURG),
    ("XCPU", libc::SIGXCPU),
    ("XFSZ", libc::SIGXFSZ),
    ("VTALRM", libc::SIGVTALRM),
    ("PROF", libc::SIGPROF),
    ("WINCH", libc::SIGWINCH),
    ("IO", libc::SIGIO),
    ("POLL", libc::SIGPOLL),
    ("PWR", libc::SIGPWR),
    ("SYS", libc::SIGSYS),
];

/// Parses `9`, `KILL`, `SIGKILL`, `kill`, `RTMIN+3`, `SIGRTMAX-1` into a signal number.
///
/// ```
/// use purple_runtime::signal::parse;
/// assert_eq!(parse("SIGBUS").unwrap(), 7);
/// assert_eq!(parse("RTMIN+3").unwrap(), libc::SIGRTMIN() + 3);
/// ```
pub fn parse(raw: &str) -> Result<libc::c_int, SignalError> {
    let err = || SignalError(raw.to_owned());
    let (min, max) = (libc::SIGRTMIN(), libc::SIGRTMAX());
    if let Ok(n) = raw.parse::<libc::c_int>() {
        return if (1..=max).contains(&n) {
            Ok(n)
        } else {
            Err(err())
        };
    }
    let upper = raw.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some((_, n)) = NAMES.iter().find(|(n, _)| *n == name) {
        return Ok(*n);
    }
    let offset = |rest: &str| -> Result<libc::c_int, SignalError> {
        if rest.is_empty() {
            return Ok(0);
        }
        rest.parse::<libc::c_int>().map_err(|_| err())
    };
    let n = if let Some(rest) = name.strip_prefix("RTMIN") {
        min + offset(rest.strip_prefix('+').unwrap_or(rest))?
    } else if let Some(rest) = name.strip_prefix("RTMAX") {
        max - offset(rest.strip_prefix('-').unwrap_or(rest))?
    } else {
        return Err(err());
    };
    if (min..=max).contains(&n) {
        Ok(n)
    } else {
        Err(err())
    }
}

/// For a command whose whole job is printing: when its reader goes away
/// (`purple audit ID | head`) it ends quietly, as Unix filters do, instead
/// of failing in the middle of a `println!`. Not for commands that hold
/// sockets or leave state half-made when killed.
pub fn die_with_closed_stdout() {
    // SAFETY: restores the default disposition before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bus_and_trap_are_not_swapped() {
        assert_eq!(parse("5").unwrap(), libc::SIGTRAP);
        assert_eq!(parse("TRAP").unwrap(), 5);
        assert_eq!(parse("SIGBUS").unwrap(), 7);
        assert_eq!(parse("7").unwrap(), libc::SIGBUS);
    }

    #[test]
    fn names_in_every_spelling() {
        for s in ["TERM", "SIGTERM", "term", "sigterm", "15"] {
            assert_eq!(parse(s).unwrap(), libc::SIGTERM, "{s}");
        }
        assert_eq!(parse("KILL").unwrap(), 9);
        assert_eq!(parse("WINCH").unwrap(), libc::SIGWINCH);
    }

    #[test]
    fn realtime_signals() {
        assert_eq!(parse("RTMIN").unwrap(), libc::SIGRTMIN());
        assert_eq!(parse("SIGRTMIN+3").unwrap(), libc::SIGRTMIN() + 3);
        assert_eq!(parse("RTMIN3").unwrap(), libc::SIGRTMIN() + 3);
        assert_eq!(parse("RTMAX-2").unwrap(), libc::SIGRTMAX() - 2);
        assert_eq!(parse("37").unwrap(), 37);
    }

    #[test]
    fn nonsense_is_refused() {
        for s in [
            "0", "-1", "65", "NOPE", "RTMIN+99", "RTMAX-99", "RTMIN+x", "",
        ] {
            assert!(parse(s).is_err(), "{s}");
        }
    }
}
