//! Purple's resolver for a container: when a plan names domains (or DNS
//! servers), every DNS query the container makes is sent here by the BPF
//! programs (port 53 to anywhere is rewritten to 127.0.0.1:<port> in the
//! container's own network namespace; 853 and hand-made DNS packets are
//! refused). Only names the plan allows are answered; their addresses enter
//! the allow map, with their TTL, before the answer is sent.
//!
//! `create` prepares it ([`Prepared`]): it binds the sockets inside the
//! container's network namespace, resolves the plan's exact names, and hands
//! sockets, namespace and [`DnsConfig`] to the supervisor, which serves
//! ([`serve`]) and re-resolves names as their TTLs run out.

mod judge;
mod learned;
mod names;
pub(crate) mod netns;
mod proxy;
mod upstream;
pub mod wire;

use std::collections::HashSet;
use std::fs;
use std::net::{IpAddr, TcpListener, UdpSocket};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use purple_policy::plan::{Action, Mode};
use serde::{Deserialize, Serialize};

pub use judge::{AnswerPolicy, Refusal};
pub use learned::{Held, GRACE};
pub use names::DomainRule;

use crate::alert::Alerter;
use crate::audit::{AuditLog, Entry, Kind};
use crate::supervisor::plan::ResolverFds;
use learned::{lifetime, Learned};
use upstream::Upstreams;

/// Upstreams that get a reserved socket (resolv.conf names at most three).
const MAX_RESERVED: usize = 3;

#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error(transparent)]
    Wire(#[from] wire::WireError),
    #[error("DNS server {server}: {reason}")]
    Upstream { server: IpAddr, reason: String },
    #[error("no DNS server to forward to: set dns_servers in the plan (the container's resolv.conf names none outside its own loopback)")]
    NoUpstream,
    #[error("cannot resolve blocked domain {name:?}: {reason}; an unresolved block would not be enforced")]
    Blocked { name: String, reason: String },
    #[error("container network namespace, {what}: {source}")]
    Netns {
        what: String,
        source: std::io::Error,
    },
    #[error("random query id: {0}")]
    Random(std::io::Error),
    #[error("a resolver thread panicked")]
    Thread,
    #[error(transparent)]
    Ebpf(#[from] purple_ebpf::EbpfError),
    #[error("{path}: {reason}")]
    Config { path: PathBuf, reason: String },
}

/// After a failed refresh, the next attempt.
const RETRY: Duration = Duration::from_secs(5);
/// How often the supervisor looks for expired addresses and due names.
const TICK: Duration = Duration::from_millis(250);

/// An exact name of the plan, re-resolved at `at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refresh {
    pub rule: DomainRule,
    pub at: SystemTime,
}

/// What the supervisor needs to serve (the `dns` of its plan; its sockets
/// are the plan's `fds.resolver`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DnsConfig {
    pub mode: Mode,
    pub domains: Vec<DomainRule>,
    pub upstreams: Vec<IpAddr>,
    /// Host prefixes the plan's own rules hold: learned answers leave them be.
    pub fixed: Vec<IpAddr>,
    /// What an answer may add to the maps.
    pub answers: AnswerPolicy,
    pub port: u16,
    /// Addresses in the maps when `create` handed over.
    pub held: Vec<Held>,
    pub refresh: Vec<Refresh>,
}

/// The nameservers of the container's resolv.conf that the resolver can
/// forward to: not loopback (that would be the container itself, whose
/// answers must never be trusted) and not unspecified.
fn resolv_conf_servers(pid: i32) -> Vec<IpAddr> {
    let text = fs::read_to_string(format!("/proc/{pid}/root/etc/resolv.conf")).unwrap_or_default();
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|a| a.trim().parse::<IpAddr>().ok())
        .filter(|a| !a.is_loopback() && !a.is_unspecified())
        .collect()
}

/// What resolving one name gave: addresses with their TTLs, or why not.
type Resolution = Result<Vec<(IpAddr, u32)>, DnsError>;

/// One resolution of the plan's exact names.
fn resolve_exact(
    upstreams: &Upstreams,
    rules: &[DomainRule],
) -> Result<Vec<(DomainRule, Resolution)>, DnsError> {
    let resolved: Vec<_> = rules
        .iter()
        .filter(|r| !r.is_wildcard())
        .map(|r| (r.clone(), upstreams.resolve(&r.pattern)))
        .collect();
    for (rule, got) in &resolved {
        if rule.action == Action::Deny {
            match got {
                Ok(a) if !a.is_empty() => {}
                Ok(_) => {
                    return Err(DnsError::Blocked {
                        name: rule.pattern.clone(),
                        reason: "no addresses".into(),
                    })
                }
                Err(e) => {
                    return Err(DnsError::Blocked {
                        name: rule.pattern.clone(),
                        reason: e.to_string(),
                    })
                }
            }
        }
    }
    Ok(resolved)
}

/// Learns one resolution of `rule` (what `answers` lets in); returns when
/// to resolve it again, or why a blocked name's resolution failed.
fn learn_resolved(
    learned: &mut Learned,
    answers: &AnswerPolicy,
    rule: &DomainRule,
    got: &Resolution,
    now: SystemTime,
) -> Result<(SystemTime, Option<String>), DnsError> {
    match got {
        Ok(addrs) if !addrs.is_empty() => {
            for (addr, ttl) in addrs {
                match answers.judge(*addr, rule.action) {
                    Ok(()) => learned.learn(*addr, rule.id, rule.action, now + lifetime(*ttl))?,
                    Err(why) => tracing::warn!("{:?} -> {addr} not learned: {why:?}", rule.pattern),
                }
            }
            let ttl = addrs.iter().map(|(_, t)| *t).min().unwrap_or(0);
            Ok((
                now + Duration::from_secs(u64::from(ttl)).max(learned::MIN_TTL),
                None,
            ))
        }
        Ok(_) => Ok((now + RETRY, Some("no addresses".into()))),
        Err(e) => {
            tracing::warn!("resolving {:?}: {e}", rule.pattern);
            Ok((now + RETRY, Some(e.to_string())))
        }
    }
}

/// The resolver as `create` sets it up, before the programs are attached.
pub struct Prepared {
    pub config: DnsConfig,
    netns: OwnedFd,
    udp: UdpSocket,
    tcp: TcpListener,
    reserved: Vec<UdpSocket>,
    resolved: Vec<(DomainRule, Resolution)>,
}

impl Prepared {
    /// Binds the resolver in the network namespace of `pid` (the container's
    /// init), finds the upstreams (`dns_servers`, else the container's
    /// resolv.conf) and resolves the plan's exact names through them. A
    /// blocked name that does not resolve is an error. `answers` gains the
    /// networks of the namespace's interfaces.
    pub fn new(
        pid: i32,
        mode: Mode,
        domains: Vec<DomainRule>,
        dns_servers: &[IpAddr],
        fixed: Vec<IpAddr>,
        mut answers: AnswerPolicy,
    ) -> Result<Self, DnsError> {
        let netns = netns::open(pid)?;
        let servers = if dns_servers.is_empty() {
            resolv_conf_servers(pid)
        } else {
            dns_servers.to_vec()
        };
        if servers.is_empty() {
            return Err(DnsError::NoUpstream);
        }
        let (listeners, own, upstreams, resolved) = netns::run_in(netns.as_fd(), || {
            netns::loopback_up()?;
            let l = netns::listen()?;
            let reserved = servers
                .iter()
                .take(MAX_RESERVED)
                .map(|&s| upstream::udp_socket(s))
                .collect::<Result<_, _>>()?;
            let upstreams = Upstreams {
                servers: servers.clone(),
                reserved,
            };
            let resolved = resolve_exact(&upstreams, &domains)?;
            Ok((l, netns::own_networks()?, upstreams, resolved))
        })?;
        answers.own_networks = own;
        Ok(Self {
            config: DnsConfig {
                mode,
                domains,
                upstreams: servers,
                fixed,
                answers,
                port: listeners.port,
                held: Vec::new(),
                refresh: Vec::new(),
            },
            netns,
            udp: listeners.udp,
            tcp: listeners.tcp,
            reserved: upstreams.reserved,
            resolved,
        })
    }

    /// Puts the names resolved at create into the container's maps (pinned in
    /// `pins`, programs attached, init not started yet) and completes the
    /// supervisor's configuration with them.
    pub fn install(&mut self, pins: &Path) -> Result<(), DnsError> {
        let hosts = purple_ebpf::LearnedHosts::open(pins)?;
        let mut learned = Learned::new(hosts, self.config.fixed.iter().copied().collect());
        let now = SystemTime::now();
        self.config.refresh = self
            .resolved
            .iter()
            .map(|(rule, got)| {
                let (at, _) = learn_resolved(&mut learned, &self.config.answers, rule, got, now)?;
                Ok(Refresh {
                    rule: rule.clone(),
                    at,
                })
            })
            .collect::<Result<_, DnsError>>()?;
        self.config.held = learned.held();
        Ok(())
    }

    /// The sockets the supervisor inherits.
    pub fn fds(&self) -> ResolverFds<BorrowedFd<'_>> {
        ResolverFds {
            netns: self.netns.as_fd(),
            udp: self.udp.as_fd(),
            tcp: self.tcp.as_fd(),
            reserved: self.reserved.iter().map(AsFd::as_fd).collect(),
        }
    }
}

/// Where the audit records of the resolver go: the log, then the
/// supervisor's alert targets.
pub struct AuditTarget<'a> {
    pub log: &'a Path,
    pub id: &'a str,
    pub policy: Option<&'a str>,
    pub alerter: Arc<Alerter>,
}

/// Serves the container's DNS from the supervisor, on threads inside the
/// container's network namespace; returns once they run. They end with the
/// supervisor process.
pub fn serve(
    cfg: DnsConfig,
    fds: ResolverFds<OwnedFd>,
    pins: &Path,
    audit: AuditTarget<'_>,
) -> Result<(), DnsError> {
    let ResolverFds {
        netns,
        udp,
        tcp,
        reserved,
    } = fds;
    let reserved = reserved.into_iter().map(UdpSocket::from).collect();
    let mut learned = Learned::new(
        purple_ebpf::LearnedHosts::open(pins)?,
        cfg.fixed.iter().copied().collect::<HashSet<_>>(),
    );
    for h in &cfg.held {
        learned.learn(h.addr, h.id, h.action, h.until)?;
    }
    let log = AuditLog::open(audit.log, audit.id, audit.policy).map_err(|e| DnsError::Config {
        path: audit.log.to_owned(),
        reason: e.to_string(),
    })?;
    let proxy = Arc::new(proxy::Proxy {
        mode: cfg.mode,
        domains: cfg.domains.clone(),
        upstreams: Upstreams {
            servers: cfg.upstreams.clone(),
            reserved,
        },
        answers: cfg.answers.clone(),
        askers: pins_askers(pins),
        learned: Mutex::new(learned),
        audit: Mutex::new(log),
        alerter: audit.alerter,
        in_flight: Arc::new(AtomicUsize::new(0)),
    });
    let refresh = cfg.refresh;
    let spawn = |name: &str, f: Box<dyn FnOnce() + Send>| {
        std::thread::Builder::new()
            .name(name.into())
            .spawn(f)
            .map(drop)
            .map_err(|source| DnsError::Netns {
                what: format!("start {name}"),
                source,
            })
    };
    spawn(
        "dns",
        Box::new(move || {
            // Signals are the main thread's (SIGTERM flushes the audit log).
            let _ = nix::sys::signal::SigSet::all().thread_block();
            if let Err(e) = netns::enter(netns.as_fd()) {
                record_failure(&proxy, &e);
                return;
            }
            let (u, t) = (Arc::clone(&proxy), Arc::clone(&proxy));
            let udp = UdpSocket::from(udp);
            let tcp = TcpListener::from(tcp);
            let started = std::thread::Builder::new()
                .spawn(move || u.serve_udp(udp))
                .and_then(|_| std::thread::Builder::new().spawn(move || t.serve_tcp(tcp)));
            if let Err(e) = started {
                record_failure(
                    &proxy,
                    &DnsError::Netns {
                        what: "start the resolver".into(),
                        source: e,
                    },
                );
                return;
            }
            keep_fresh(&proxy, refresh);
        }),
    )
}

/// Re-resolves exact names as their TTLs run out and drops expired addresses.
/// A blocked name fails closed: when its refresh fails, the addresses of its
/// last answer stay denied until a refresh succeeds, and the failure is on
/// record (and alerted) as `dns.error`.
fn keep_fresh(proxy: &proxy::Proxy, mut refresh: Vec<Refresh>) {
    loop {
        std::thread::sleep(TICK);
        let now = SystemTime::now();
        for r in refresh.iter_mut().filter(|r| r.at <= now) {
            // Resolved without the lock: answers may take seconds.
            let got = proxy.upstreams.resolve(&r.rule.pattern);
            let mut learned = proxy.learned.lock().unwrap_or_else(|p| p.into_inner());
            let failed = match learn_resolved(&mut learned, &proxy.answers, &r.rule, &got, now) {
                Ok((at, failed)) => {
                    r.at = at;
                    failed
                }
                Err(e) => {
                    r.at = now + RETRY;
                    Some(e.to_string())
                }
            };
            let (Some(reason), Action::Deny) = (failed, r.rule.action) else {
                continue;
            };
            // Held past the next attempt, whatever it takes.
            let kept = learned.extend_rule(r.rule.id, SystemTime::now() + RETRY + GRACE);
            drop(learned);
            proxy.record(Entry {
                kind: Kind::DnsError,
                pid: None,
                comm: None,
                rule: Some(r.rule.label()),
                details: serde_json::json!({
                    "name": r.rule.pattern,
                    "error": reason,
                    "effect": "the addresses of the last answer stay blocked until a refresh succeeds",
                    "kept": kept,
                }),
            });
        }
        let mut learned = proxy.learned.lock().unwrap_or_else(|p| p.into_inner());
        match learned.expire(now) {
            Ok(gone) if !gone.is_empty() => tracing::debug!("expired: {gone:?}"),
            Ok(_) => {}
            Err(e) => tracing::warn!("removing expired addresses: {e}"),
        }
    }
}

/// The audit record of a resolver that could not start.
pub fn failure(e: &DnsError) -> Entry {
    Entry::new(
        Kind::DnsError,
        serde_json::json!({ "error": e.to_string(), "effect": "DNS queries go unanswered" }),
    )
}

fn record_failure(proxy: &proxy::Proxy, e: &DnsError) {
    proxy.record(failure(e));
}

/// The askers map of the container's programs; without it records of refused
/// names carry no process (never a scan of the sandbox's processes).
fn pins_askers(pins: &Path) -> Option<purple_ebpf::DnsAskers> {
    purple_ebpf::DnsAskers::open(pins)
        .map_err(|e| tracing::warn!("no askers map: {e}"))
        .ok()
}
