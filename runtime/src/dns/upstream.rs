//! Asking the plan's upstream resolvers, over UDP or TCP, from the calling
//! thread's network namespace (the container's: see `netns.rs`).

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use super::wire::{self, Message, Question, CLASS_IN, TYPE_A, TYPE_AAAA};
use super::DnsError;

/// How long one upstream gets to answer before the next is asked.
pub const TIMEOUT: Duration = Duration::from_secs(2);
/// The largest UDP answer accepted (EDNS0 sizes in practice).
pub const MAX_UDP: usize = 4096;

/// The resolvers queries are forwarded to, tried in order, and the UDP
/// sockets reserved for the plan's own names: bound (and connected to their
/// server) at create, before the agent runs, so that an agent holding every
/// ephemeral port of its namespace cannot make a refresh fail.
#[derive(Debug)]
pub struct Upstreams {
    pub servers: Vec<IpAddr>,
    /// `reserved[i]` is connected to `servers[i]`.
    pub reserved: Vec<UdpSocket>,
}

fn random_id() -> Result<u16, DnsError> {
    let mut b = [0u8; 2];
    loop {
        // SAFETY: getrandom(2) writes at most b.len() bytes into b.
        let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
        if n == 2 {
            return Ok(u16::from_ne_bytes(b));
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(DnsError::Random(err));
        }
    }
}

fn io(what: &str, server: IpAddr) -> impl FnOnce(std::io::Error) -> DnsError + '_ {
    let what = what.to_owned();
    move |source| DnsError::Upstream {
        server,
        reason: format!("{what}: {source}"),
    }
}

/// Whether `answer` answers `query`: same id, a response, the same question.
fn answers(query: &Message, answer: &Message) -> bool {
    let same = |a: &wire::Question, b: &wire::Question| {
        a.name.eq_ignore_ascii_case(&b.name) && a.qtype == b.qtype && a.qclass == b.qclass
    };
    answer.header.is_response()
        && answer.header.id == query.header.id
        && query.questions.len() == answer.questions.len()
        && query
            .questions
            .iter()
            .zip(&answer.questions)
            .all(|(a, b)| same(a, b))
}

/// A UDP socket of the calling thread's namespace connected to `server`:53
/// (the kernel then takes datagrams from that address only).
pub fn udp_socket(server: IpAddr) -> Result<UdpSocket, DnsError> {
    let bind: SocketAddr = match server {
        IpAddr::V4(_) => "0.0.0.0:0".parse().expect("literal"),
        IpAddr::V6(_) => "[::]:0".parse().expect("literal"),
    };
    let s = UdpSocket::bind(bind).map_err(io("bind", server))?;
    s.connect((server, 53)).map_err(io("connect", server))?;
    Ok(s)
}

fn udp_once(
    s: &UdpSocket,
    server: IpAddr,
    query: &[u8],
    parsed: &Message,
) -> Result<Vec<u8>, DnsError> {
    s.send(query).map_err(io("send", server))?;
    let deadline = Instant::now() + TIMEOUT;
    let mut buf = vec![0u8; MAX_UDP];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(DnsError::Upstream {
                server,
                reason: "no answer".into(),
            });
        }
        s.set_read_timeout(Some(left))
            .map_err(io("timeout", server))?;
        let n = s.recv(&mut buf).map_err(io("receive", server))?;
        // Stray or spoofed datagrams are skipped, not taken as the answer.
        if wire::parse(&buf[..n]).is_ok_and(|a| answers(parsed, &a)) {
            buf.truncate(n);
            return Ok(buf);
        }
    }
}

fn tcp_once(server: IpAddr, query: &[u8], parsed: &Message) -> Result<Vec<u8>, DnsError> {
    let mut s = TcpStream::connect_timeout(&SocketAddr::new(server, 53), TIMEOUT)
        .map_err(io("connect", server))?;
    s.set_read_timeout(Some(TIMEOUT))
        .map_err(io("timeout", server))?;
    s.set_write_timeout(Some(TIMEOUT))
        .map_err(io("timeout", server))?;
    let len = u16::try_from(query.len()).map_err(|_| DnsError::Upstream {
        server,
        reason: "query too long".into(),
    })?;
    let mut framed = len.to_be_bytes().to_vec();
    framed.extend_from_slice(query);
    s.write_all(&framed).map_err(io("send", server))?;
    let answer = read_framed(&mut s).map_err(io("receive", server))?;
    match wire::parse(&answer) {
        Ok(a) if answers(parsed, &a) => Ok(answer),
        _ => Err(DnsError::Upstream {
            server,
            reason: "answer does not match the question".into(),
        }),
    }
}

/// One length-prefixed message of DNS over TCP (RFC 1035 4.2.2).
pub fn read_framed(s: &mut impl Read) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 2];
    s.read_exact(&mut len)?;
    let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
    s.read_exact(&mut msg)?;
    Ok(msg)
}

impl Upstreams {
    /// Asks each upstream in turn for `question` until one answers; returns
    /// the answer (its id is the query's, random: set the client's on it).
    /// Only the question leaves: a query built here, not the container's
    /// bytes, so nothing the container adds (EDNS options, extra records)
    /// reaches the upstream.
    pub fn exchange(&self, question: &Question, tcp: bool) -> Result<Vec<u8>, DnsError> {
        self.exchange_on(question, tcp, false)
    }

    /// `exchange`, over the reserved sockets with `reserved` (for UDP).
    fn exchange_on(
        &self,
        question: &Question,
        tcp: bool,
        reserved: bool,
    ) -> Result<Vec<u8>, DnsError> {
        let query = wire::query(random_id()?, &question.name, question.qtype);
        let parsed = wire::parse(&query)?;
        let mut last = DnsError::NoUpstream;
        for (i, &server) in self.servers.iter().enumerate() {
            let sent = match (tcp, self.reserved.get(i).filter(|_| reserved)) {
                (true, _) => tcp_once(server, &query, &parsed),
                (false, Some(s)) => udp_once(s, server, &query, &parsed),
                (false, None) => {
                    udp_socket(server).and_then(|s| udp_once(&s, server, &query, &parsed))
                }
            };
            match sent {
                Ok(answer) => return Ok(answer),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// The A and AAAA addresses of `name` with their TTLs, over the reserved
    /// sockets; over TCP when the UDP answer was truncated.
    pub fn resolve(&self, name: &str) -> Result<Vec<(IpAddr, u32)>, DnsError> {
        let mut out = Vec::new();
        for qtype in [TYPE_A, TYPE_AAAA] {
            let q = Question {
                name: name.to_owned(),
                qtype,
                qclass: CLASS_IN,
            };
            let mut answer = self.exchange_on(&q, false, true)?;
            if wire::parse(&answer)?.header.truncated() {
                answer = self.exchange_on(&q, true, true)?;
            }
            let m = wire::parse(&answer)?;
            out.extend(m.answers.iter().filter_map(|a| Some((a.addr?, a.ttl))));
        }
        Ok(out)
    }
}
