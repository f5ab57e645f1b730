//! Working inside the container's network namespace from outside it: the
//! resolver's sockets live there (so that the container reaches them on
//! loopback and the upstreams are reached the way the container would), while
//! the process stays in the host's. setns(2) with CLONE_NEWNET moves only the
//! calling thread, and threads it starts inherit that namespace.

use std::fs::File;
use std::io;
use std::net::{IpAddr, Ipv4Addr, TcpListener, UdpSocket};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use nix::sched::{setns, CloneFlags};
use purple_policy::plan::Cidr;

use super::DnsError;

/// Attempts at finding a port free for both UDP and TCP on 127.0.0.1.
const BIND_ATTEMPTS: usize = 16;

/// The network namespace of process `pid`.
pub fn open(pid: i32) -> Result<OwnedFd, DnsError> {
    let path = format!("/proc/{pid}/ns/net");
    File::open(&path)
        .map(OwnedFd::from)
        .map_err(|source| DnsError::Netns { what: path, source })
}

/// Moves the calling thread into `netns`.
pub fn enter(netns: BorrowedFd<'_>) -> Result<(), DnsError> {
    setns(netns, CloneFlags::CLONE_NEWNET).map_err(|e| DnsError::Netns {
        what: "setns".into(),
        source: e.into(),
    })
}

/// Runs `f` on a thread inside `netns` and returns its result.
pub fn run_in<T: Send>(
    netns: BorrowedFd<'_>,
    f: impl FnOnce() -> Result<T, DnsError> + Send,
) -> Result<T, DnsError> {
    std::thread::scope(|s| {
        s.spawn(|| {
            enter(netns)?;
            f()
        })
        .join()
        .unwrap_or(Err(DnsError::Thread))
    })
}

/// Brings `lo` up (a fresh network namespace has it down, and the resolver
/// listens on 127.0.0.1). By ioctl: no netlink round trip needed for one flag.
pub fn loopback_up() -> Result<(), DnsError> {
    let err = |source: io::Error| DnsError::Netns {
        what: "bring lo up".into(),
        source,
    };
    let sock = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).map_err(err)?;
    // SAFETY: ifreq is plain data; zeroed is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write an ifreq we own.
    unsafe {
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) < 0 {
            return Err(err(io::Error::last_os_error()));
        }
        if req.ifr_ifru.ifru_flags & libc::IFF_UP as libc::c_short != 0 {
            return Ok(());
        }
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) < 0 {
            return Err(err(io::Error::last_os_error()));
        }
    }
    Ok(())
}

/// The networks of the calling thread's namespace's interfaces but loopback
/// (10.0.2.0/24 behind slirp4netns, a veth's subnet): answers pointing there
/// are rebinding.
pub fn own_networks() -> Result<Vec<Cidr>, DnsError> {
    let addrs = nix::ifaddrs::getifaddrs().map_err(|e| DnsError::Netns {
        what: "list interface addresses".into(),
        source: e.into(),
    })?;
    let mut out = Vec::new();
    for a in addrs {
        let (Some(addr), Some(mask)) = (a.address, a.netmask) else {
            continue;
        };
        let (addr, prefix) =
            if let (Some(a), Some(m)) = (addr.as_sockaddr_in(), mask.as_sockaddr_in()) {
                (IpAddr::V4(a.ip()), m.ip().to_bits().count_ones())
            } else if let (Some(a), Some(m)) = (addr.as_sockaddr_in6(), mask.as_sockaddr_in6()) {
                (IpAddr::V6(a.ip()), m.ip().to_bits().count_ones())
            } else {
                continue;
            };
        if addr.is_loopback() {
            continue;
        }
        let cidr: Cidr = format!("{addr}/{prefix}")
            .parse()
            .map_err(|_| DnsError::Netns {
                what: format!("interface address {addr}/{prefix}"),
                source: io::Error::from(io::ErrorKind::InvalidData),
            })?;
        if !out.contains(&cidr) {
            out.push(cidr);
        }
    }
    Ok(out)
}

/// The resolver's sockets: UDP and TCP on one port of 127.0.0.1. The port is
/// the kernel's choice, so containers sharing a namespace each get their own
/// and nothing in the container can have taken it first.
pub struct Listeners {
    pub udp: UdpSocket,
    pub tcp: TcpListener,
    pub port: u16,
}

pub fn listen() -> Result<Listeners, DnsError> {
    let err = |source: io::Error| DnsError::Netns {
        what: "bind the resolver on 127.0.0.1".into(),
        source,
    };
    let mut last = io::Error::from(io::ErrorKind::AddrInUse);
    for _ in 0..BIND_ATTEMPTS {
        let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).map_err(err)?;
        let port = udp.local_addr().map_err(err)?.port();
        match TcpListener::bind((Ipv4Addr::LOCALHOST, port)) {
            Ok(tcp) => return Ok(Listeners { udp, tcp, port }),
            Err(e) => last = e,
        }
    }
    Err(err(last))
}
