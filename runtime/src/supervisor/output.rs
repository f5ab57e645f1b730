//! The output of a detached sandbox (`purple run -d`): its stdout and stderr
//! arrive on a pipe and go to the file `purple logs` reads, up to a limit, so
//! that a chatty or hostile agent cannot fill the host's disk through it.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;

use super::plan::OutputPlan;

/// Reads per [`Output::pump`]: a writer faster than the file cannot keep
/// the supervisor from its other work.
const READS_PER_PUMP: usize = 16;

pub(super) struct Output {
    /// None once every writer has closed it.
    pipe: Option<File>,
    /// None when it could not be created: the pipe is still drained, so
    /// the sandbox never blocks on a full pipe.
    file: Option<File>,
    written: u64,
    limit: u64,
    dropped: u64,
}

impl Output {
    /// Creates the output file (0600, never an existing file or a link) and
    /// takes the pipe; a file that cannot be created is the error, with the
    /// pipe still served.
    pub(super) fn open(plan: &OutputPlan, pipe: OwnedFd) -> (Self, Option<io::Error>) {
        let pipe = File::from(pipe);
        let nonblocking = nix::fcntl::fcntl(
            pipe.as_raw_fd(),
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        );
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&plan.path);
        let error = match (&file, nonblocking) {
            (Err(e), _) => Some(io::Error::new(
                e.kind(),
                format!("{}: {e}", plan.path.display()),
            )),
            (_, Err(e)) => Some(io::Error::other(format!("output pipe: {e}"))),
            _ => None,
        };
        let out = Self {
            pipe: Some(pipe),
            file: file.ok(),
            written: 0,
            limit: plan.limit,
            dropped: 0,
        };
        (out, error)
    }

    /// The pipe, to poll, while it has writers.
    pub(super) fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.pipe.as_ref().map(|p| p.as_fd())
    }

    /// Moves what the pipe holds into the file, past the limit only counting.
    pub(super) fn pump(&mut self) {
        let mut buf = vec![0u8; 64 * 1024];
        for _ in 0..READS_PER_PUMP {
            let Some(pipe) = self.pipe.as_mut() else {
                return;
            };
            let n = match pipe.read(&mut buf) {
                Ok(0) => {
                    self.pipe = None;
                    return;
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    tracing::warn!("output pipe: {e}");
                    self.pipe = None;
                    return;
                }
            };
            let room =
                usize::try_from(self.limit.saturating_sub(self.written)).unwrap_or(usize::MAX);
            let keep = n.min(room);
            let stored = keep > 0
                && self
                    .file
                    .as_mut()
                    .is_some_and(|f| f.write_all(&buf[..keep]).is_ok());
            if stored {
                self.written += keep as u64;
                self.dropped += (n - keep) as u64;
            } else {
                self.dropped += n as u64;
            }
        }
    }

    /// Takes what is left (the sandbox is gone, so the pipe has no more
    /// writers) and returns how many bytes were not kept; the file ends
    /// with a line saying so.
    pub(super) fn finish(&mut self) -> u64 {
        while self.pipe.is_some() {
            let before = (self.written, self.dropped);
            self.pump();
            if (self.written, self.dropped) == before && self.pipe.is_some() {
                // Still a writer somewhere (an exec'd process of a stopping
                // sandbox): what it sends later is not waited for.
                break;
            }
        }
        if self.dropped > 0 {
            if let Some(f) = self.file.as_mut() {
                let _ = writeln!(
                    f,
                    "\n[purple: {} bytes of output not kept: the limit is {} bytes]",
                    self.dropped, self.limit
                );
            }
        }
        self.dropped
    }
}
