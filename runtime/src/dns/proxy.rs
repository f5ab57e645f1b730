//! The resolver the container's DNS is sent to: it answers only what the plan
//! allows, forwards the rest to the upstreams, and puts the answers'
//! addresses into the allow map before the asker sees them.

use std::fs;
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use purple_policy::plan::Mode;
use serde_json::json;

use super::learned::{lifetime, Learned};
use super::names::{decide, normalise, Decision, DomainRule};
use super::upstream::{read_framed, Upstreams, MAX_UDP};
use super::wire::{self, Message};
use crate::alert::Alerter;
use crate::audit::{AuditLog, Entry};

/// Queries being forwarded at once (UDP) and TCP clients served at once:
/// beyond that a query gets SERVFAIL and a connection is closed, so a
/// flooding container cannot make the supervisor start threads without end.
const MAX_IN_FLIGHT: usize = 64;
const MAX_TCP_CLIENTS: usize = 16;
/// An idle TCP client is dropped after this.
const TCP_IDLE: Duration = Duration::from_secs(10);

pub struct Proxy {
    pub mode: Mode,
    pub domains: Vec<DomainRule>,
    pub upstreams: Upstreams,
    pub learned: Mutex<Learned>,
    pub audit: Mutex<AuditLog>,
    pub alerter: Arc<Alerter>,
    /// The container's cgroup2 directory: whose socket asked (for records).
    pub cgroup2: Option<PathBuf>,
    pub in_flight: Arc<AtomicUsize>,
}

/// Releases one slot of a counter when dropped.
struct Slot(Arc<AtomicUsize>);

impl Slot {
    fn take(counter: &Arc<AtomicUsize>, max: usize) -> Option<Self> {
        counter
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| Self(Arc::clone(counter)))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The process in `cgroup2` owning the socket bound to local `port` in this
/// thread's network namespace (`proto`: "udp" or "tcp"), as (pid, comm).
fn asker(cgroup2: &std::path::Path, proto: &str, port: u16) -> Option<(u32, String)> {
    let inode = ["", "6"].iter().find_map(|v| {
        let table = fs::read_to_string(format!("/proc/thread-self/net/{proto}{v}")).ok()?;
        table.lines().skip(1).find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let local_port = f.get(1)?.rsplit(':').next()?;
            (u16::from_str_radix(local_port, 16).ok()? == port)
                .then(|| f.get(9).map(|s| s.to_string()))?
        })
    })?;
    let want = format!("socket:[{inode}]");
    let procs = fs::read_to_string(cgroup2.join("cgroup.procs")).ok()?;
    procs
        .lines()
        .filter_map(|p| p.parse::<u32>().ok())
        .find_map(|pid| {
            let fds = fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
            let owns = fds
                .filter_map(|e| e.ok())
                .any(|e| fs::read_link(e.path()).is_ok_and(|l| l.as_os_str() == want.as_str()));
            owns.then(|| {
                let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
                (pid, comm.trim_end().to_owned())
            })
        })
}

impl Proxy {
    /// The reply to one query from `peer`, or None to stay silent (a message
    /// that is not a query at all).
    pub fn answer(&self, query: &[u8], tcp: bool, peer: SocketAddr) -> Option<Vec<u8>> {
        let msg = wire::parse(query).ok()?;
        if msg.header.is_response() {
            return None;
        }
        let question = match (msg.header.opcode(), msg.questions.as_slice()) {
            (0, [q]) if q.qclass == wire::CLASS_IN => q,
            (0, [_]) => return Some(wire::error_reply(&msg, wire::RCODE_NOTIMP)),
            (0, _) => return Some(wire::error_reply(&msg, wire::RCODE_FORMERR)),
            _ => return Some(wire::error_reply(&msg, wire::RCODE_NOTIMP)),
        };
        match decide(&self.domains, self.mode, &question.name) {
            Decision::Deny(rule) => {
                self.record_denied(&msg, rule, tcp, peer);
                Some(wire::error_reply(&msg, wire::RCODE_NXDOMAIN))
            }
            Decision::Forward(rule) => Some(self.forward(&msg, rule, tcp)),
        }
    }

    fn forward(&self, msg: &Message, rule: Option<&DomainRule>, tcp: bool) -> Vec<u8> {
        let servfail = || wire::error_reply(msg, wire::RCODE_SERVFAIL);
        let answer = match self.upstreams.exchange(&msg.questions[0], tcp) {
            Ok(mut a) => {
                wire::set_id(&mut a, msg.header.id);
                a
            }
            Err(e) => {
                tracing::warn!("forwarding {:?}: {e}", msg.questions[0].name);
                return servfail();
            }
        };
        let Some(rule) = rule else { return answer };
        // The asker connects as soon as it has the answer: the addresses must
        // be in the map first. If they cannot be put there, no answer.
        let learned = wire::parse(&answer)
            .map_err(super::DnsError::from)
            .and_then(|a| {
                let now = SystemTime::now();
                let mut learned = self.learned.lock().unwrap_or_else(|p| p.into_inner());
                a.answers.iter().try_for_each(|rr| match rr.addr {
                    Some(addr) => learned.learn(addr, rule.id, rule.action, now + lifetime(rr.ttl)),
                    None => Ok(()),
                })
            });
        match learned {
            Ok(()) => answer,
            Err(e) => {
                tracing::warn!("learning the answer for {:?}: {e}", msg.questions[0].name);
                servfail()
            }
        }
    }

    fn record_denied(&self, msg: &Message, rule: Option<&DomainRule>, tcp: bool, peer: SocketAddr) {
        let q = &msg.questions[0];
        let transport = if tcp { "tcp" } else { "udp" };
        let who = self
            .cgroup2
            .as_deref()
            .and_then(|cg| asker(cg, transport, peer.port()));
        let entry = Entry {
            kind: "dns.denied".into(),
            pid: who.as_ref().map(|w| w.0),
            comm: who.map(|w| w.1),
            rule: Some(match rule {
                Some(r) => r.label(),
                None => "allow-list: no allowed domain matches".into(),
            }),
            details: json!({
                "name": normalise(&q.name),
                "qtype": wire::type_name(q.qtype),
                "transport": transport,
                "answer": "NXDOMAIN",
            }),
        };
        self.record(entry);
    }

    /// Appends `entry` to the log and sends it to the alert targets (which
    /// queue it: a failing target never delays the answer).
    pub fn record(&self, entry: Entry) {
        let mut audit = self.audit.lock().unwrap_or_else(|p| p.into_inner());
        match audit.append(&[entry]) {
            Ok(written) => self.alerter.send_violations(&written),
            Err(e) => tracing::warn!("audit record of the resolver: {e}"),
        }
    }

    /// Serves DNS over UDP until the socket fails.
    pub fn serve_udp(self: &Arc<Self>, sock: UdpSocket) {
        let sock = Arc::new(sock);
        let mut buf = vec![0u8; MAX_UDP];
        loop {
            let (n, peer) = match sock.recv_from(&mut buf) {
                Ok(r) => r,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    tracing::error!("DNS over UDP stopped: {e}");
                    return;
                }
            };
            let query = buf[..n].to_vec();
            let Some(slot) = Slot::take(&self.in_flight, MAX_IN_FLIGHT) else {
                if let Ok(m) = wire::parse(&query) {
                    let _ = sock.send_to(&wire::error_reply(&m, wire::RCODE_SERVFAIL), peer);
                }
                continue;
            };
            // Forwarding waits on the network: one thread per query keeps a
            // slow upstream from holding up the others.
            let (me, sock) = (Arc::clone(self), Arc::clone(&sock));
            let spawned = std::thread::Builder::new().spawn(move || {
                let _slot = slot;
                if let Some(reply) = me.answer(&query, false, peer) {
                    let _ = sock.send_to(&reply, peer);
                }
            });
            if let Err(e) = spawned {
                tracing::warn!("no thread for a DNS query: {e}");
            }
        }
    }

    /// Serves DNS over TCP until the listener fails.
    pub fn serve_tcp(self: &Arc<Self>, listener: TcpListener) {
        let clients = Arc::new(AtomicUsize::new(0));
        for conn in listener.incoming() {
            let conn = match conn {
                Ok(c) => c,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    tracing::warn!("accepting a DNS client: {e}");
                    continue;
                }
            };
            let Some(slot) = Slot::take(&clients, MAX_TCP_CLIENTS) else {
                continue; // dropping the connection closes it
            };
            let me = Arc::clone(self);
            let spawned = std::thread::Builder::new().spawn(move || {
                let _slot = slot;
                me.serve_tcp_client(conn);
            });
            if let Err(e) = spawned {
                tracing::warn!("no thread for a DNS client: {e}");
            }
        }
    }

    fn serve_tcp_client(&self, mut conn: TcpStream) {
        let Ok(peer) = conn.peer_addr() else { return };
        if conn.set_read_timeout(Some(TCP_IDLE)).is_err()
            || conn.set_write_timeout(Some(TCP_IDLE)).is_err()
        {
            return;
        }
        while let Ok(query) = read_framed(&mut conn) {
            let Some(reply) = self.answer(&query, true, peer) else {
                return;
            };
            let Ok(len) = u16::try_from(reply.len()) else {
                return;
            };
            let mut framed = len.to_be_bytes().to_vec();
            framed.extend_from_slice(&reply);
            if conn.write_all(&framed).is_err() {
                return;
            }
        }
    }
}
