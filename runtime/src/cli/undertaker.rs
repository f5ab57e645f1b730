//! The undertaker of one `purple run`: a process of its own, started before
//! the sandbox is made, that deletes what that run made if the run dies
//! before the sandbox's supervisor watches it (`create` in progress: a
//! half-made container, its cgroups, pins and private bundle). Once the
//! supervisor holds the run's pidfd (or a detached sandbox is meant to
//! outlive it), or the run ends on its own, it is told so and exits.
//!
//! It holds a pidfd of the run, which turns readable when the run dies, and
//! the read end of a pipe the run says its words on ("bundle made",
//! "done"). Not the pipe's end of file: the container's init, forked by
//! libcontainer before it execs, keeps a copy of the write end. It sits in
//! a process group and session of its own, so the terminal's Ctrl-C or a
//! signal to the run's group does not take it along.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::container::Runtime;
use crate::id::ContainerId;

/// The run has made its private bundle directory: it is its to remove.
const BUNDLE_MADE: u8 = b'b';
/// Nothing is left for the undertaker: the supervisor or the run itself
/// takes care of the sandbox.
const DONE: u8 = b'd';
/// Where the undertaker finds the run's pidfd.
const CALLER_FD: RawFd = 3;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The sandbox the run makes.
    #[arg(long)]
    id: String,
    /// The pid of the `purple run` (its records name it).
    #[arg(long)]
    caller: u32,
}

/// The run's side: the write end of the pipe.
pub struct Undertaker {
    pipe: Option<File>,
}

impl Undertaker {
    /// Starts the undertaker of the run of `id` under `root`.
    pub fn spawn(root: &Path, id: &ContainerId) -> Result<Self> {
        let (read, write) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("undertaker pipe")?;
        let me = crate::pidfd::open(std::process::id() as i32)
            .context("cannot open a pidfd of purple run")?;
        let mut cmd = Command::new(crate::sealed::on_disk());
        cmd.arg("--root")
            .arg(root)
            .arg("undertake")
            .arg("--id")
            .arg(id.as_str())
            .arg("--caller")
            .arg(std::process::id().to_string())
            .stdin(Stdio::from(read))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0);
        let me_raw = me.as_raw_fd();
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                libc::setsid();
                if libc::dup2(me_raw, CALLER_FD) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        cmd.spawn()
            .context("cannot start purple run's undertaker")?;
        Ok(Self {
            pipe: Some(File::from(write)),
        })
    }

    fn say(&mut self, word: u8) {
        if let Some(p) = self.pipe.as_mut() {
            // It may have died: then there is no one to tell.
            let _ = p.write_all(&[word]);
        }
    }

    pub fn bundle_made(&mut self) {
        self.say(BUNDLE_MADE);
    }

    /// The supervisor took over (or the sandbox, started, outlives the run
    /// by design).
    pub fn done(&mut self) {
        self.say(DONE);
        self.pipe = None;
    }
}

impl Drop for Undertaker {
    /// Returning or unwinding is ending on its own: what failed was
    /// cleaned by the code that failed.
    fn drop(&mut self) {
        self.done();
    }
}

/// `purple undertake`: waits for the run's last word or its death.
pub fn undertake(args: Args, root: &Path) -> Result<i32> {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT] {
        // SAFETY: ignoring signals, before any thread exists.
        unsafe {
            libc::signal(sig, libc::SIG_IGN);
        }
    }
    // SAFETY: stdin is the pipe's read end and CALLER_FD the run's pidfd,
    // both ours alone.
    let mut pipe = File::from(unsafe { OwnedFd::from_raw_fd(0) });
    let caller = unsafe { OwnedFd::from_raw_fd(CALLER_FD) };
    let mut bundle_made = false;
    let mut word = [0u8];
    loop {
        let mut fds = [
            PollFd::new(pipe.as_fd(), PollFlags::POLLIN),
            PollFd::new(caller.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e).context("undertaker poll"),
            Ok(_) => {}
        }
        let (mut said, died) = (fds[0].any().unwrap_or(false), fds[1].any().unwrap_or(false));
        // Words said just before dying are read before acting on the death.
        while said {
            match pipe.read(&mut word) {
                Ok(1) if word[0] == DONE => return Ok(0),
                Ok(1) => bundle_made |= word[0] == BUNDLE_MADE,
                _ => break,
            }
            let mut more = [PollFd::new(pipe.as_fd(), PollFlags::POLLIN)];
            said = poll(&mut more, PollTimeout::ZERO).unwrap_or(0) > 0;
        }
        if died {
            break;
        }
    }
    if !bundle_made {
        return Ok(0);
    }
    let id = ContainerId::parse(&args.id)?;
    let rt = Runtime::new(root, false);
    bury(&rt, &id, args.caller)
}

/// Deletes the sandbox the dead run `caller` was making: only one whose
/// record says that run made it, and only if no supervisor watches it
/// (a supervisor tied to the run deletes it itself).
fn bury(rt: &Runtime, id: &ContainerId, caller: u32) -> Result<i32> {
    // No record yet: the run died before `create` wrote one; the ID was its
    // (no other run gets past making the same private bundle directory).
    let ours = rt
        .record(id)
        .is_none_or(|r| r.launch.is_some_and(|l| l.caller_pid == caller));
    if !ours || rt.supervisor(id).is_some_and(|(_, running)| running) {
        return Ok(0);
    }
    if rt.exists(id) {
        rt.delete(id, true)
            .with_context(|| format!("delete {id} after its run died"))?;
    }
    // Made before the record, or left by a delete that had no record.
    let bundle: PathBuf = rt.run_bundle(id);
    match std::fs::remove_dir_all(&bundle) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("remove {}", bundle.display()))
        }
        _ => Ok(0),
    }
}
