//! A terminal for a foreground container: receive the pty master libcontainer
//! sends to a console socket, put the caller's terminal in raw mode, and copy
//! bytes both ways until the container's side closes.

use std::fs::File;
use std::io::{self, IoSliceMut, Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::thread::JoinHandle;

use nix::cmsg_space;
use nix::sys::signal::{pthread_sigmask, SigSet, SigmaskHow};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use nix::sys::termios::{self, SetArg, Termios};

/// Waits (in a thread) for the pty master on a console socket.
pub struct ConsoleSocket {
    receiver: JoinHandle<io::Result<OwnedFd>>,
}

fn receive(listener: UnixListener) -> io::Result<OwnedFd> {
    let (conn, _) = listener.accept()?;
    let mut buf = [0u8; 4096];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = recvmsg::<()>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::empty(),
    )
    .map_err(io::Error::from)?;
    for c in msg.cmsgs().map_err(io::Error::from)? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            if let Some(&fd) = fds.first() {
                // SAFETY: the kernel just installed this descriptor for us.
                return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        "the console socket message carried no file descriptor",
    ))
}

/// Spawns a thread with every signal blocked: the signals sent to `purple`
/// belong to the thread that forwards them to the container.
fn spawn_quiet<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> JoinHandle<T> {
    let mut old = SigSet::empty();
    let blocked = pthread_sigmask(
        SigmaskHow::SIG_SETMASK,
        Some(&SigSet::all()),
        Some(&mut old),
    );
    let handle = std::thread::spawn(f);
    if blocked.is_ok() {
        let _ = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
    }
    handle
}

impl ConsoleSocket {
    pub fn listen(path: &Path) -> io::Result<Self> {
        let listener = UnixListener::bind(path)?;
        Ok(Self {
            receiver: spawn_quiet(move || receive(listener)),
        })
    }

    /// The master, once the container was created.
    pub fn master(self) -> io::Result<OwnedFd> {
        self.receiver
            .join()
            .map_err(|_| io::Error::other("console receiver panicked"))?
    }
}

/// The caller's terminal in raw mode, restored when dropped.
pub struct RawTerminal {
    saved: Termios,
}

impl RawTerminal {
    pub fn enter() -> io::Result<Self> {
        let stdin = io::stdin();
        let saved = termios::tcgetattr(stdin.as_fd()).map_err(io::Error::from)?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw).map_err(io::Error::from)?;
        Ok(Self { saved })
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(io::stdin().as_fd(), SetArg::TCSANOW, &self.saved);
    }
}

/// Copies the caller's stdin to the master and the master to stdout, sized
/// like the caller's terminal. Returns the output copier, which ends when the
/// container's last process closes the pty.
pub fn proxy(master: OwnedFd) -> io::Result<JoinHandle<()>> {
    let mut size: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ/TIOCSWINSZ read and write one winsize.
    unsafe {
        if libc::ioctl(io::stdin().as_raw_fd(), libc::TIOCGWINSZ, &mut size) == 0 {
            libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &size);
        }
    }
    let mut to_container = File::from(master.try_clone()?);
    let mut from_container = File::from(master);
    // The input copier is left to die with the process: stdin reads block.
    spawn_quiet(move || {
        let _ = io::copy(&mut io::stdin().lock(), &mut to_container);
    });
    Ok(spawn_quiet(move || {
        let mut buf = [0u8; 8192];
        let mut out = io::stdout().lock();
        // EIO means the pty's other side is closed: the container is done.
        while let Ok(n) = from_container.read(&mut buf) {
            if n == 0 || out.write_all(&buf[..n]).is_err() {
                break;
            }
            let _ = out.flush();
        }
    }))
}
