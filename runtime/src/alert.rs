//! Live alerts: each violation record (or, with `records: all`, every
//! record: a live copy of the trail off the host), as written to the log,
//! is also sent to the targets the policy names (a host command, a Unix
//! socket, an HTTP endpoint, syslog), as Purple's record or as an OCSF
//! event. Every target has its own thread and a bounded queue: a slow,
//! failing or hanging target loses its own alerts (counted, and recorded by
//! the supervisor as `alert.dropped`), never delays enforcement, the log or
//! the other targets.

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::os::unix::net::UnixDatagram;

use purple_policy::supervision::{AlertFormat, AlertRecords, Alerts};

use crate::audit::{is_violation, Record};

/// Alerts waiting per target; beyond that they are dropped and counted.
pub const QUEUE: usize = 1024;
/// The longest one delivery may take (connect, write, the command's run).
pub const TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Command(Vec<String>),
    Unix(std::path::PathBuf),
    Http {
        host: String,
        port: u16,
        path: String,
    },
    Syslog(std::path::PathBuf),
}

impl Target {
    fn describe(&self) -> String {
        match self {
            Self::Command(argv) => format!("command {}", argv.join(" ")),
            Self::Unix(p) => format!("unix socket {}", p.display()),
            Self::Http { host, port, path } => format!("http://{host}:{port}{path}"),
            Self::Syslog(p) => format!("syslog {}", p.display()),
        }
    }
}

/// Splits `http://host[:port][/path]`; the policy translator checks the URL,
/// this only refuses what it cannot speak (https, no host).
fn parse_http(url: &str) -> Option<Target> {
    let rest = url.strip_prefix("http://")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => (h, p.parse().ok()?),
        _ => (authority, 80),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (!host.is_empty()).then(|| Target::Http {
        host: host.to_owned(),
        port,
        path: path.to_owned(),
    })
}

fn targets(alerts: &Alerts) -> Result<Vec<Target>, String> {
    let mut targets = Vec::new();
    if !alerts.command.is_empty() {
        targets.push(Target::Command(alerts.command.clone()));
    }
    if let Some(p) = &alerts.unix_socket {
        if !p.is_absolute() {
            return Err(format!(
                "alerts.unix_socket {}: must be an absolute host path",
                p.display()
            ));
        }
        targets.push(Target::Unix(p.clone()));
    }
    if let Some(p) = &alerts.syslog {
        if !p.is_absolute() {
            return Err(format!(
                "alerts.syslog {}: must be an absolute host path (e.g. /dev/log)",
                p.display()
            ));
        }
        targets.push(Target::Syslog(p.clone()));
    }
    if let Some(url) = &alerts.http {
        targets.push(parse_http(url).ok_or_else(|| {
            format!("alerts.http {url:?}: only plain http://host[:port]/path is supported")
        })?);
    }
    Ok(targets)
}

/// Checks the alert targets without starting anything (create does, so
/// that a bad target fails there rather than in the supervisor).
pub fn check(alerts: &Alerts) -> Result<(), String> {
    targets(alerts).map(drop)
}

/// A record on its way: its bytes and whether it is a violation.
type Message = Arc<(Vec<u8>, bool)>;
/// One target's queue of serialised records and its count of dropped ones.
type Queue = (SyncSender<Message>, Arc<AtomicU64>);

/// Sends records to every configured target in the background.
pub struct Alerter {
    queues: Vec<Queue>,
    records: AlertRecords,
    format: AlertFormat,
}

impl Alerter {
    /// Starts one delivery thread per target; an unusable target is an error.
    pub fn new(alerts: &Alerts) -> Result<Self, String> {
        let queues = targets(alerts)?
            .into_iter()
            .map(|t| {
                let (tx, rx) = sync_channel(QUEUE);
                let dropped = Arc::new(AtomicU64::new(0));
                let counter = dropped.clone();
                std::thread::spawn(move || deliver_all(t, rx, counter));
                (tx, dropped)
            })
            .collect();
        Ok(Self {
            queues,
            records: alerts.records,
            format: alerts.format,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.queues.is_empty()
    }

    /// Queues what the targets take of `records` just written (the
    /// violations, or all of them), without waiting.
    pub fn forward(&self, records: &[Record]) {
        for rec in records {
            let violation = is_violation(&rec.kind);
            if violation || self.records == AlertRecords::All {
                self.send(rec, violation);
            }
        }
    }

    /// Queues `record` for every target without waiting.
    fn send(&self, record: &Record, violation: bool) {
        if self.queues.is_empty() {
            return;
        }
        let bytes = match self.format {
            AlertFormat::Purple => serde_json::to_vec(record),
            // A log checkpoint has no event: nothing to send.
            AlertFormat::Ocsf => match crate::audit::ocsf::event(record) {
                Some(e) => serde_json::to_vec(&e),
                None => return,
            },
        };
        let json = Arc::new((bytes.expect("records serialise"), violation));
        for (tx, dropped) in &self.queues {
            match tx.try_send(json.clone()) {
                Ok(()) => {}
                Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                    dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// Alerts dropped (queue full or delivery failed) since the last call.
    pub fn take_dropped(&self) -> u64 {
        self.queues
            .iter()
            .map(|(_, d)| d.swap(0, Ordering::Relaxed))
            .sum()
    }
}

fn deliver_all(target: Target, rx: Receiver<Message>, dropped: Arc<AtomicU64>) {
    let mut unix: Option<UnixStream> = None;
    for message in rx {
        let (json, violation) = (&message.0, message.1);
        let sent = match &target {
            Target::Command(argv) => run_command(argv, json),
            Target::Unix(path) => send_line(&mut unix, path, json),
            Target::Http { host, port, path } => post(host, *port, path, json),
            Target::Syslog(path) => syslog(path, json, violation),
        };
        if let Err(e) = sent {
            tracing::warn!("alert to {}: {e}", target.describe());
            dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn run_command(argv: &[String], json: &[u8]) -> io::Result<()> {
    let mut child = Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let mut stdin = child.stdin.take().expect("piped");
    // A command that does not read stdin gets EPIPE: still run to the end.
    let _ = stdin.write_all(json).and_then(|()| stdin.write_all(b"\n"));
    drop(stdin);
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(status) = child.try_wait()? {
            return if status.success() {
                Ok(())
            } else {
                Err(io::Error::other(format!("exited with {status}")))
            };
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::new(io::ErrorKind::TimedOut, "killed after 2 s"));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// One JSON line per record on a kept-open connection, reconnecting once
/// if the receiver went away.
fn send_line(conn: &mut Option<UnixStream>, path: &std::path::Path, json: &[u8]) -> io::Result<()> {
    let mut line = json.to_vec();
    line.push(b'\n');
    for attempt in 0..2 {
        if conn.is_none() {
            let s = UnixStream::connect(path)?;
            s.set_write_timeout(Some(TIMEOUT))?;
            *conn = Some(s);
        }
        match conn.as_mut().expect("connected above").write_all(&line) {
            Ok(()) => return Ok(()),
            Err(e) if attempt == 1 => return Err(e),
            Err(_) => *conn = None,
        }
    }
    unreachable!("the second attempt returns")
}

/// One RFC 5424 message per record on the syslog socket: facility auth,
/// severity warning for a violation and notice otherwise, app `purple`,
/// message id the record's kind.
fn syslog(path: &std::path::Path, json: &[u8], violation: bool) -> io::Result<()> {
    const AUTH: u8 = 4;
    let severity = if violation { 4 } else { 5 };
    let kind = serde_json::from_slice::<serde_json::Value>(json)
        .ok()
        .and_then(|v| {
            v["kind"]
                .as_str()
                .or_else(|| v["unmapped"]["purple"]["kind"].as_str())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "-".into());
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let mut msg = format!(
        "<{}>1 {now} - purple {} {kind} - ",
        AUTH * 8 + severity,
        std::process::id()
    )
    .into_bytes();
    msg.extend_from_slice(json);
    let s = UnixDatagram::unbound()?;
    s.set_write_timeout(Some(TIMEOUT))?;
    s.send_to(&msg, path).map(drop)
}

fn post(host: &str, port: u16, path: &str, json: &[u8]) -> io::Result<()> {
    let addr = (host, port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "host has no address"))?;
    let mut s = TcpStream::connect_timeout(&addr, TIMEOUT)?;
    s.set_write_timeout(Some(TIMEOUT))?;
    s.set_read_timeout(Some(TIMEOUT))?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        json.len()
    );
    s.write_all(head.as_bytes())?;
    s.write_all(json)?;
    let mut status = [0u8; 12];
    s.read_exact(&mut status)?;
    // "HTTP/1.1 2xx"
    match status.get(9) {
        Some(b'2') => Ok(()),
        _ => Err(io::Error::other(format!(
            "answered {}",
            String::from_utf8_lossy(&status)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};
    use std::net::TcpListener;

    fn record() -> Record {
        serde_json::from_value(serde_json::json!({
            "schema": 1, "seq": 3, "time": "2026-11-29T00:00:00.000000000Z",
            "container_id": "c", "kind": "syscall.denied", "details": {},
            "prev": crate::audit::GENESIS
        }))
        .unwrap()
    }

    #[test]
    fn http_urls() {
        assert_eq!(
            parse_http("http://127.0.0.1:8080/hook"),
            Some(Target::Http {
                host: "127.0.0.1".into(),
                port: 8080,
                path: "/hook".into()
            })
        );
        assert_eq!(
            parse_http("http://alerts.local"),
            Some(Target::Http {
                host: "alerts.local".into(),
                port: 80,
                path: "/".into()
            })
        );
        assert_eq!(parse_http("https://x/"), None);
        assert_eq!(parse_http("http://:80/"), None);
    }

    #[test]
    fn posts_reach_an_http_server() {
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = server.local_addr().unwrap().port();
        let a = Alerter::new(&Alerts {
            http: Some(format!("http://127.0.0.1:{port}/in")),
            ..Default::default()
        })
        .unwrap();
        a.send(&record(), true);
        let (conn, _) = server.accept().unwrap();
        let mut r = BufReader::new(conn);
        let mut first = String::new();
        r.read_line(&mut first).unwrap();
        assert_eq!(first, "POST /in HTTP/1.1\r\n");
        let mut line = String::new();
        let mut len = 0;
        while r.read_line(&mut line).unwrap() > 0 && line != "\r\n" {
            if let Some(v) = line.strip_prefix("Content-Length: ") {
                len = v.trim().parse().unwrap();
            }
            line.clear();
        }
        let mut body = vec![0; len];
        r.read_exact(&mut body).unwrap();
        let got: Record = serde_json::from_slice(&body).unwrap();
        assert_eq!(got, record());
        r.get_mut()
            .write_all(b"HTTP/1.1 204 No Content\r\n\r\n")
            .unwrap();
    }

    #[test]
    fn a_dead_target_counts_drops_and_never_blocks() {
        let a = Alerter::new(&Alerts {
            unix_socket: Some("/nonexistent/purple.sock".into()),
            ..Default::default()
        })
        .unwrap();
        let t = Instant::now();
        for _ in 0..3 * QUEUE {
            a.send(&record(), true);
        }
        assert!(t.elapsed() < Duration::from_millis(500));
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut dropped = 0;
        while dropped < 3 * QUEUE as u64 && Instant::now() < deadline {
            dropped += a.take_dropped();
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(dropped, 3 * QUEUE as u64);
    }
}
