//! The resolver the container's DNS is sent to: it answers only what the plan
//! allows, forwards the rest to the upstreams, and puts the answers'
//! addresses into the allow map before the asker sees them.

use std::io::Write;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use purple_policy::plan::Mode;
use serde_json::json;

use super::judge::{AnswerPolicy, Refusal};
use super::learned::{lifetime, Learned};
use super::names::{decide, normalise, Decision, DomainRule};
use super::upstream::{read_framed, Upstreams, MAX_UDP};
use super::wire::{self, Message};
use crate::alert::Alerter;
use crate::audit::{AuditLog, Entry, Kind};

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
    /// What an answer may add to the maps.
    pub answers: AnswerPolicy,
    /// Who asked, by the query's source port (for records).
    pub askers: Option<purple_ebpf::DnsAskers>,
    pub learned: Mutex<Learned>,
    pub audit: Mutex<AuditLog>,
    pub alerter: Arc<Alerter>,
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
            Decision::Forward(rule) => Some(self.forward(&msg, rule, tcp, peer)),
        }
    }

    fn forward(
        &self,
        msg: &Message,
        rule: Option<&DomainRule>,
        tcp: bool,
        peer: SocketAddr,
    ) -> Vec<u8> {
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
        let parsed = match wire::parse(&answer) {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!("answer for {:?}: {e}", msg.questions[0].name);
                return servfail();
            }
        };
        // Judged as a whole first: one address pointing inside (rebinding)
        // refuses the answer, so the name never leads there.
        let mut learn = Vec::new();
        for rr in &parsed.answers {
            let Some(addr) = rr.addr else { continue };
            match self.answers.judge(addr, rule.action) {
                Ok(()) => learn.push((addr, rr.ttl)),
                // The plan's deny rule keeps deciding (and records the connect).
                Err(Refusal::Denied(_)) => {}
                Err(Refusal::Rebinding(range)) => {
                    self.record_rebinding(msg, rule, addr, range, tcp, peer);
                    return wire::error_reply(msg, wire::RCODE_NXDOMAIN);
                }
            }
        }
        // The asker connects as soon as it has the answer: the addresses must
        // be in the map first. If they cannot be put there, no answer.
        let now = SystemTime::now();
        let mut learned = self.learned.lock().unwrap_or_else(|p| p.into_inner());
        let learned = learn.iter().try_for_each(|&(addr, ttl)| {
            learned.learn(addr, rule.id, rule.action, now + lifetime(ttl))
        });
        match learned {
            Ok(()) => answer,
            Err(e) => {
                tracing::warn!("learning the answer for {:?}: {e}", msg.questions[0].name);
                servfail()
            }
        }
    }

    /// (pid, comm) of the process that sent a query from `peer`: one map
    /// lookup, noted by the BPF programs when the query left.
    fn asker(&self, tcp: bool, peer: SocketAddr) -> Option<(u32, String)> {
        self.askers.as_ref()?.get(tcp, peer.port())
    }

    fn record_rebinding(
        &self,
        msg: &Message,
        rule: &DomainRule,
        addr: IpAddr,
        range: purple_policy::plan::Cidr,
        tcp: bool,
        peer: SocketAddr,
    ) {
        let q = &msg.questions[0];
        let who = self.asker(tcp, peer);
        self.record(Entry {
            kind: Kind::DnsDenied,
            pid: who.as_ref().map(|w| w.0),
            comm: who.map(|w| w.1),
            rule: Some("rebinding".into()),
            details: json!({
                "name": normalise(&q.name),
                "qtype": wire::type_name(q.qtype),
                "transport": if tcp { "tcp" } else { "udp" },
                "answer": "NXDOMAIN",
                "address": addr.to_string(),
                "range": range.to_string(),
                "allowed_by": rule.label(),
                "fix": "allow the range with an explicit rule (allowed_ips) or set network.dns_rebinding: allow",
            }),
        });
    }

    fn record_denied(&self, msg: &Message, rule: Option<&DomainRule>, tcp: bool, peer: SocketAddr) {
        let q = &msg.questions[0];
        let transport = if tcp { "tcp" } else { "udp" };
        let who = self.asker(tcp, peer);
        let entry = Entry {
            kind: Kind::DnsDenied,
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
            Ok(written) => self.alerter.forward(&written),
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
