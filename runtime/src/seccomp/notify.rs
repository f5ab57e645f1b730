//! Answering notified calls: the supervisor's [`Notifier`] (the listener
//! exec'd processes send their notify fd to, and the notify fds), and the
//! [`Interim`] thread that answers for `create` until the supervisor runs.

use super::*;
use crate::audit::Kind;

/// Receives one notification on `fd`, answers it and returns its record
/// (`None` if the notification vanished: the caller died meanwhile).
pub fn handle(fd: BorrowedFd<'_>, profile: &Profile) -> Option<Entry> {
    let raw = fd.as_raw_fd();
    let req = ScmpNotifReq::receive(raw).ok()?;
    let arch = call_arch(req.data.arch, req.data.syscall);
    let known = req.data.syscall.get_name_by_arch(arch).ok();
    let (verdict, rule) = profile.decide(known.as_deref(), &req.data.args);
    let name = known.unwrap_or_else(|| req.data.syscall.to_string());
    let comm = std::fs::read_to_string(format!("/proc/{}/comm", req.pid))
        .ok()
        .map(|c| c.trim_end().to_owned());
    // The pid may have been reused if the caller died before /proc was read.
    let valid = libseccomp::notify_id_valid(raw, req.id).is_ok();
    let resp = match verdict {
        Verdict::Errno(e) => ScmpNotifResp::new_error(req.id, -e, ScmpNotifRespFlags::empty()),
        Verdict::Log | Verdict::Allow => {
            ScmpNotifResp::new_continue(req.id, ScmpNotifRespFlags::empty())
        }
        Verdict::Kill => {
            if valid {
                // SIGKILL takes the whole thread group, as KILL_PROCESS does.
                // SAFETY: kill(2) on the pid the kernel just named, checked valid.
                unsafe { libc::kill(req.pid as i32, libc::SIGKILL) };
            }
            ScmpNotifResp::new_error(req.id, -libc::EPERM, ScmpNotifRespFlags::empty())
        }
    };
    // Fails with ENOENT when the caller is gone (killed above): nothing to answer.
    let _ = resp.respond(raw);
    if verdict == Verdict::Allow {
        return None;
    }
    let mut details = json!({
        "syscall": name,
        "nr": req.data.syscall.as_raw_syscall(),
        "arch": arch_name(arch),
        "args": req.data.args.iter().map(|a| format!("{a:#x}")).collect::<Vec<_>>(),
        "action": verdict.name(),
    });
    if let Verdict::Errno(e) = verdict {
        details["errno"] = json!(e);
    }
    let kind = if verdict == Verdict::Log {
        Kind::SyscallLogged
    } else {
        Kind::SyscallDenied
    };
    Some(Entry {
        kind,
        pid: Some(req.pid),
        comm: comm.filter(|_| valid),
        rule: Some(rule),
        details,
    })
}

/// The listener side of `linux.seccomp.listenerPath`: accepts the notify fd
/// libcontainer sends for init and the ones Purple's executor sends for
/// `exec`'d processes (`crate::tenant`), then answers the calls on all of
/// them. `create` runs one while libcontainer builds the container
/// (init's calls between loading the filter and exec must be answered, or
/// the build would wait forever), then hands its fds to the supervisor.
pub struct Notifier {
    listener: UnixListener,
    fds: Vec<OwnedFd>,
    /// Accepted connections whose notify fd has not come yet: `exec`
    /// connects on the host before it builds the process whose executor
    /// sends it; reading them only once readable keeps the calls of the
    /// other processes answered meanwhile.
    waiting: Vec<UnixStream>,
    profile: Profile,
}

impl Notifier {
    pub fn new(
        listener: UnixListener,
        fds: Vec<OwnedFd>,
        profile: Profile,
    ) -> std::io::Result<Self> {
        listener.set_nonblocking(true)?;
        Ok(Self {
            listener,
            fds,
            waiting: Vec::new(),
            profile,
        })
    }

    /// What the supervisor inherits: the listener and the notify fds.
    pub fn handover(&self) -> (BorrowedFd<'_>, Vec<BorrowedFd<'_>>) {
        (
            self.listener.as_fd(),
            self.fds.iter().map(AsFd::as_fd).collect(),
        )
    }

    /// The listener first, then the notify fds.
    fn raw_fds(&self) -> Vec<RawFd> {
        std::iter::once(self.listener.as_raw_fd())
            .chain(self.fds.iter().map(|f| f.as_raw_fd()))
            .collect()
    }

    /// What to wait on for [`Notifier::service`]: [`Notifier::raw_fds`],
    /// then the connections still to send their fd.
    pub fn wait_fds(&self) -> Vec<RawFd> {
        let mut fds = self.raw_fds();
        fds.extend(self.waiting.iter().map(|c| c.as_raw_fd()));
        fds
    }

    pub fn has_notify_fd(&self) -> bool {
        !self.fds.is_empty()
    }

    /// Waits up to `timeout` for work, then accepts new notify fds, answers
    /// pending calls and forgets fds whose processes are all gone; returns
    /// the records of the calls answered.
    pub fn service(&mut self, timeout: PollTimeout) -> Vec<Entry> {
        let ready: Vec<PollFlags> = {
            let mut pfds: Vec<PollFd> = std::iter::once(self.listener.as_fd())
                .chain(self.fds.iter().map(|f| f.as_fd()))
                .chain(self.waiting.iter().map(|c| c.as_fd()))
                .map(|fd| PollFd::new(fd, PollFlags::POLLIN))
                .collect();
            if poll(&mut pfds, timeout).unwrap_or(0) <= 0 {
                return Vec::new();
            }
            pfds.iter()
                .map(|p| p.revents().unwrap_or(PollFlags::empty()))
                .collect()
        };
        let (notify, waiting) = ready[1..].split_at(self.fds.len());
        let mut out = Vec::new();
        let mut gone = Vec::new();
        for (i, r) in notify.iter().enumerate() {
            let fd = self.fds[i].as_fd();
            if r.contains(PollFlags::POLLIN) {
                out.extend(handle(fd, &self.profile));
            } else if r.intersects(PollFlags::POLLHUP | PollFlags::POLLERR) {
                gone.push(i);
            }
        }
        for i in gone.into_iter().rev() {
            self.fds.remove(i);
        }
        let arrived: Vec<usize> = (0..waiting.len())
            .filter(|&i| !waiting[i].is_empty())
            .collect();
        for i in arrived.into_iter().rev() {
            let conn = self.waiting.remove(i);
            self.take_fd(conn);
        }
        if ready[0].contains(PollFlags::POLLIN) {
            while let Ok((conn, _)) = self.listener.accept() {
                self.take_fd(conn);
            }
        }
        out
    }

    /// Keeps the notify fd `conn` carries, or `conn` until it has sent it.
    fn take_fd(&mut self, conn: UnixStream) {
        match receive_fd(conn.as_raw_fd()) {
            Ok(Some(fd)) => self.fds.push(fd),
            Err(nix::errno::Errno::EAGAIN) => self.waiting.push(conn),
            Ok(None) | Err(_) => {
                tracing::warn!("seccomp listener: a connection without a notify fd")
            }
        }
    }
}

/// A [`Notifier`] served on a thread of `create` while libcontainer builds
/// the container; stopped (and joined) by [`Interim::finish`] or on drop.
pub struct Interim {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Notifier>>,
}

impl Interim {
    /// Serves `n`, passing the records of the calls it answers to `record`.
    pub fn start(mut n: Notifier, mut record: impl FnMut(Vec<Entry>) + Send + 'static) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            // `finish` waits for the poll under way to time out: with 50 ms
            // that added 25 ms on average (31 ms median measured) to every
            // create with seccomp notify; 5 ms costs a few idle wake-ups.
            while !flag.load(Ordering::Relaxed) {
                record(n.service(PollTimeout::from(5u16)));
            }
            // libcontainer sent the fd before build returned: take it now.
            record(n.service(PollTimeout::ZERO));
            n
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops serving and hands the notifier back (for the supervisor).
    pub fn finish(mut self) -> Option<Notifier> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take()?.join().ok()
    }
}

impl Drop for Interim {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The fd of the first SCM_RIGHTS message on `conn` (the container state
/// JSON that comes with it is not needed), without waiting: `EAGAIN` when
/// nothing was sent yet.
fn receive_fd(conn: RawFd) -> nix::Result<Option<OwnedFd>> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut iov = [IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let flags = MsgFlags::MSG_CMSG_CLOEXEC | MsgFlags::MSG_DONTWAIT;
    let msg = recvmsg::<UnixAddr>(conn, &mut iov, Some(&mut space), flags)?;
    let fd = msg.cmsgs()?.find_map(|c| match c {
        ControlMessageOwned::ScmRights(fds) => fds.first().copied(),
        _ => None,
    });
    // SAFETY: the kernel just installed this fd for us; nothing else owns it.
    Ok(fd.map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }))
}

/// x32 calls come with the x86_64 audit arch and the x32 bit in their number.
fn call_arch(arch: ScmpArch, nr: ScmpSyscall) -> ScmpArch {
    const X32_SYSCALL_BIT: i32 = 0x4000_0000;
    if arch == ScmpArch::X8664 && nr.as_raw_syscall() & X32_SYSCALL_BIT != 0 {
        ScmpArch::X32
    } else {
        arch
    }
}

fn arch_name(arch: ScmpArch) -> String {
    format!("{arch:?}").to_lowercase()
}
