//! The LLM gateway: the sandbox's only way to its LLM providers. It runs in
//! the supervisor (threads, outside the container and its cgroup) and
//! listens on 127.0.0.1 inside the container's network namespace, on a
//! socket `create` binds there and hands over ([`listen`], the plan's
//! `fds.gateway`). The sandbox's SDKs find it through their base-URL
//! variables ([`sandbox_env`]) and hold placeholder keys; the gateway puts
//! the host's real key into each upstream request, which leaves from the
//! host's namespace over TLS.
//!
//! It proxies only the configured providers' accounted endpoints (OpenAI
//! chat completions, Anthropic messages), meters each answer from the
//! provider's own usage numbers, enforces the session's budgets, and writes
//! one `llm.request` record per request (`llm.blocked`, `llm.budget` for
//! refusals). docs/llm.md says what it does and does not do.

mod http;
mod secrets;
mod upstream;
mod usage;

use std::collections::VecDeque;
use std::io::{self, BufRead, BufReader, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::fd::BorrowedFd;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use purple_policy::llm::{Api, KeySource, LlmPlan, Provider};
use rustls::ClientConfig;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::alert::Alerter;
use crate::audit::{AuditLog, Entry, Kind};
use crate::dns::AuditTarget;
use http::{BodyKind, Head, HttpError};
use usage::{StreamMeter, Usage};

pub use upstream::EXTRA_CA_ENV;

/// What the supervisor needs (the `llm` of its plan; its socket is the
/// plan's `fds.gateway`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GatewayConfig {
    pub plan: LlmPlan,
    /// The port on the container's 127.0.0.1.
    pub port: u16,
}

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("LLM gateway: {0}")]
    Netns(#[from] crate::dns::DnsError),
    #[error("LLM gateway: cannot listen on 127.0.0.1:{port} in the container's network namespace: {source}")]
    Listen { port: u16, source: io::Error },
    #[error("LLM gateway: the container has no network namespace of its own; the gateway listens on its loopback, which would be the host's")]
    SharedNetns,
    #[error("LLM gateway: {0}")]
    Audit(String),
    #[error("{} comes only from the host's configuration: its key sources would be read by root and sent to its endpoints; give ai_policy in the policy of `purple run` or in a profile under /etc/purple/policies, or start purple-oci with --annotation-alerts where every bundle author is trusted as root", purple_policy::annotations::LLM_ANNOTATION)]
    Untrusted,
}

/// The most connections served at once; more are closed unanswered.
const MAX_CONNECTIONS: usize = 16;
/// A client connection idle this long is closed.
const IDLE: Duration = Duration::from_secs(300);

/// The gateway's port, chosen before the container exists because its
/// environment must name it. Any port is free then: the namespace is the
/// container's own and new, and nothing of the container runs before
/// `start`. Random, so that it tells nothing about other sandboxes.
pub fn choose_port() -> u16 {
    let mut b = [0u8; 2];
    // SAFETY: getrandom writes at most b.len() bytes into b.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    let r = if n == 2 {
        u16::from_ne_bytes(b)
    } else {
        std::process::id() as u16
    };
    // Below the kernel's ephemeral range (32768-60999): no outgoing
    // connection of the container can be holding it.
    10_000 + r % 20_000
}

/// The placeholder the sandbox's SDKs hold instead of a key.
pub const PLACEHOLDER_KEY: &str = "purple-gateway-holds-the-key";

/// The variables the sandbox gets: for the first provider of each API, its
/// SDK's base URL and a placeholder key; for every provider
/// `PURPLE_LLM_<NAME>_URL`.
pub fn sandbox_env(plan: &LlmPlan, port: u16) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut seen = Vec::new();
    for p in &plan.providers {
        let url = format!("http://127.0.0.1:{port}/{}", p.name);
        if !seen.contains(&p.api) {
            seen.push(p.api);
            let (base, key) = p.api.sandbox_env();
            out.push((base.to_owned(), url.clone()));
            out.push((key.to_owned(), PLACEHOLDER_KEY.to_owned()));
        }
        let var = format!(
            "PURPLE_LLM_{}_URL",
            p.name.to_ascii_uppercase().replace('-', "_")
        );
        out.push((var, url));
    }
    out
}

/// Binds the gateway's socket on 127.0.0.1:`port` inside `netns` (the
/// blocked init process's), loopback brought up.
pub fn listen(netns: BorrowedFd<'_>, port: u16) -> Result<TcpListener, GatewayError> {
    let bound = crate::dns::netns::run_in(netns, || {
        crate::dns::netns::loopback_up()?;
        Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, port)))
    })?;
    bound.map_err(|source| GatewayError::Listen { port, source })
}

/// The spent part of the session's budgets and of the last minute's limits.
#[derive(Debug, Default)]
struct Spent {
    tokens: u64,
    /// Picodollars (of requests whose cost is known).
    cost: u128,
    /// When the last minute's requests were let through.
    started: VecDeque<Instant>,
    /// When the last minute's answers ended, and their tokens.
    answered: VecDeque<(Instant, u64)>,
}

const MINUTE: Duration = Duration::from_secs(60);

struct Gateway {
    plan: LlmPlan,
    /// Per provider, in plan order: its key, or why there is none.
    keys: Vec<Result<String, String>>,
    /// Every key, for scanning and scrubbing.
    all_keys: Vec<String>,
    tls: Result<Arc<ClientConfig>, String>,
    spent: Mutex<Spent>,
    log: Mutex<AuditLog>,
    alerter: Arc<Alerter>,
    connections: AtomicUsize,
    /// Raised when a spent budget ends the session (`budget.stop_session`).
    stop: Arc<AtomicBool>,
}

fn read_key(source: &KeySource) -> Result<String, String> {
    let key = match source {
        KeySource::Env(var) => std::env::var(var).map_err(|_| {
            format!("{var} is not set in the environment the runtime was started in")
        })?,
        KeySource::File(path) => std::fs::read_to_string(path)
            .map_err(|e| format!("key file {}: {e}", path.display()))?,
    };
    let key = key.trim().to_owned();
    if key.is_empty() || key.contains(['\r', '\n', '\0']) {
        return Err("the key is empty or not a single line".into());
    }
    Ok(key)
}

/// Serves the gateway on threads of the supervisor; returns once they run.
pub fn serve(
    cfg: GatewayConfig,
    listener: TcpListener,
    audit: AuditTarget<'_>,
    stop: Arc<AtomicBool>,
) -> Result<(), GatewayError> {
    let log = AuditLog::open(audit.log, audit.id, audit.policy)
        .map_err(|e| GatewayError::Audit(e.to_string()))?;
    let keys: Vec<_> = cfg
        .plan
        .providers
        .iter()
        .map(|p| read_key(&p.key))
        .collect();
    let extra_ca = std::env::var_os(EXTRA_CA_ENV);
    let tls =
        upstream::client_config(extra_ca.as_deref().map(Path::new)).map_err(|e| e.to_string());
    let mut problems = Vec::new();
    for (p, k) in cfg.plan.providers.iter().zip(&keys) {
        if let Err(why) = k {
            problems.push(crate::supervisor::failure(
                "llm gateway",
                format!("no key for provider {}: {why}", p.name),
                &format!("requests to {} are refused", p.name),
            ));
        }
    }
    if let Err(why) = &tls {
        problems.push(crate::supervisor::failure(
            "llm gateway",
            why,
            "every request is refused",
        ));
    }
    let gw = Arc::new(Gateway {
        all_keys: keys.iter().filter_map(|k| k.clone().ok()).collect(),
        keys,
        tls,
        plan: cfg.plan,
        spent: Mutex::new(Spent::default()),
        log: Mutex::new(log),
        alerter: audit.alerter,
        connections: AtomicUsize::new(0),
        stop,
    });
    gw.write(&problems);
    std::thread::Builder::new()
        .name("llm-gateway".into())
        .spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                if gw.connections.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
                    gw.connections.fetch_sub(1, Ordering::SeqCst);
                    continue;
                }
                let gw = Arc::clone(&gw);
                let spawned =
                    std::thread::Builder::new()
                        .name("llm-conn".into())
                        .spawn(move || {
                            gw.connection(conn);
                            gw.connections.fetch_sub(1, Ordering::SeqCst);
                        });
                if spawned.is_err() {
                    // The closure (and its count) went with the failed spawn.
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        })
        .map_err(|source| GatewayError::Listen { port: 0, source })?;
    Ok(())
}

/// An error answer in the provider's own shape, so that its SDK raises its
/// usual exception with Purple's message.
fn error_body(api: Option<Api>, status: u16, code: &str, message: &str) -> Vec<u8> {
    let v = match api {
        Some(Api::Anthropic) => {
            let kind = match status {
                400 => "invalid_request_error",
                401 => "authentication_error",
                403 => "permission_error",
                404 => "not_found_error",
                413 => "request_too_large",
                429 => "rate_limit_error",
                _ => "api_error",
            };
            json!({"type": "error", "error": {"type": kind, "message": message}})
        }
        _ => {
            json!({"error": {"message": message, "type": "purple_gateway", "param": null, "code": code}})
        }
    };
    serde_json::to_vec(&v).expect("values serialise")
}

/// Whether a request may go on after its answer (the connection is kept).
type KeepAlive = bool;

/// A client connection's kept upstream connection, with its provider's index.
type Pool = Option<(usize, upstream::Tls)>;

/// What a refused request records and answers.
struct Refusal {
    kind: Kind,
    status: u16,
    code: &'static str,
    message: String,
    details: Value,
}

fn truncated(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

impl Gateway {
    fn write(&self, entries: &[Entry]) {
        if entries.is_empty() {
            return;
        }
        let records = self.log.lock().map(|mut l| l.append(entries));
        match records {
            Ok(Ok(r)) => self.alerter.forward(&r),
            Ok(Err(e)) => tracing::error!("llm gateway: audit log: {e}"),
            Err(_) => tracing::error!("llm gateway: audit log lock poisoned"),
        }
    }

    fn connection(&self, client: TcpStream) {
        let _ = client.set_read_timeout(Some(IDLE));
        let _ = client.set_nodelay(true);
        let Ok(read_half) = client.try_clone() else {
            return;
        };
        let mut reader = BufReader::new(read_half);
        let mut writer = client;
        let mut pool: Pool = None;
        loop {
            let head = match http::read_request(&mut reader) {
                Ok(Some(h)) => h,
                Ok(None) => return,
                Err(e) => {
                    self.refuse_bad(&mut writer, None, &e);
                    return;
                }
            };
            let body = head
                .body_kind()
                .and_then(|k| http::read_body(&mut reader, k, http::MAX_REQUEST_BODY, false));
            let body = match body {
                Ok(b) => b,
                Err(e) => {
                    self.refuse_bad(&mut writer, Some(&head), &e);
                    return;
                }
            };
            let close = head.has_token("connection", "close");
            if !self.request(&head, body, &mut writer, &mut pool) || close {
                return;
            }
        }
    }

    fn refuse_bad(&self, w: &mut TcpStream, head: Option<&Head>, e: &HttpError) {
        let status = match e {
            HttpError::TooLarge(_) => 413,
            _ => 400,
        };
        if matches!(e, HttpError::Io(_)) {
            return;
        }
        let target = head.map(|h| truncated(&h.target, 256));
        self.refuse(
            w,
            None,
            Refusal {
                kind: Kind::LlmBlocked,
                status,
                code: "bad_request",
                message: format!("purple LLM gateway: {e}"),
                details: json!({"reason": "malformed request", "error": e.to_string(), "target": target}),
            },
        );
    }

    fn refuse(&self, w: &mut TcpStream, api: Option<Api>, r: Refusal) {
        self.write(&[Entry::new(r.kind, r.details)]);
        let body = error_body(api, r.status, r.code, &r.message);
        let head = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nx-should-retry: false\r\n\r\n",
            r.status,
            http::reason(r.status),
            body.len()
        );
        let _ = w
            .write_all(head.as_bytes())
            .and_then(|()| w.write_all(&body));
        let _ = w.flush();
    }

    /// The provider and the path under its endpoint a target names.
    fn route<'a>(&'a self, target: &'a str) -> Option<(usize, &'a Provider, &'a str)> {
        let rest = target.strip_prefix('/')?;
        let (name, _) = rest.split_once('/')?;
        let i = self.plan.providers.iter().position(|p| p.name == name)?;
        Some((i, &self.plan.providers[i], &rest[name.len()..]))
    }

    fn request(&self, head: &Head, body: Vec<u8>, w: &mut TcpStream, pool: &mut Pool) -> KeepAlive {
        let started = Instant::now();
        let target = truncated(&head.target, 256);
        let Some((index, provider, path)) = self.route(&head.target) else {
            self.refuse(
                w,
                None,
                Refusal {
                    kind: Kind::LlmBlocked,
                    status: 404,
                    code: "not_a_provider",
                    message: "purple LLM gateway: not a configured provider (the gateway is not an open proxy)".into(),
                    details: json!({"reason": "not a configured provider", "method": head.method, "target": target}),
                },
            );
            return true;
        };
        let api = provider.api;
        let accounted = head.method == "POST"
            && match api {
                Api::Openai => path == "/chat/completions",
                Api::Anthropic => path == "/v1/messages",
            };
        let blocked = |reason: &str, extra: Value| {
            let mut d = json!({"reason": reason, "provider": provider.name, "method": head.method, "target": target});
            if let (Some(d), Some(extra)) = (d.as_object_mut(), extra.as_object()) {
                d.extend(extra.clone());
            }
            d
        };
        if !accounted {
            self.refuse(
                w,
                Some(api),
                Refusal {
                    kind: Kind::LlmBlocked,
                    status: 404,
                    code: "path_not_proxied",
                    message: format!("purple LLM gateway: {} {path} is not proxied (only the metered endpoint is)", head.method),
                    details: blocked("path not proxied", json!({})),
                },
            );
            return true;
        }
        let mut request: Value = match serde_json::from_slice(&body) {
            Ok(v @ Value::Object(_)) => v,
            _ => {
                self.refuse(
                    w,
                    Some(api),
                    Refusal {
                        kind: Kind::LlmBlocked,
                        status: 400,
                        code: "invalid_body",
                        message: "purple LLM gateway: the request body is not a JSON object".into(),
                        details: blocked("body is not a JSON object", json!({})),
                    },
                );
                return true;
            }
        };
        let model = request
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let listed = provider.models.is_empty() || provider.models.contains(&model);
        let price = self.plan.price(&provider.name, &model);
        if !listed || (self.plan.block_unknown && price.is_none()) {
            let why = if listed {
                "model has no price (block_unknown)"
            } else {
                "model not listed"
            };
            self.refuse(
                w,
                Some(api),
                Refusal {
                    kind: Kind::LlmBlocked,
                    status: 403,
                    code: "model_not_allowed",
                    message: format!("purple LLM gateway: model {model:?} is not allowed: {why}"),
                    details: blocked("unknown model", json!({"model": model, "why": why})),
                },
            );
            return true;
        }
        if self.plan.scan_secrets {
            if let Some(kind) = secrets::find(&body, &self.all_keys) {
                self.refuse(
                    w,
                    Some(api),
                    Refusal {
                        kind: Kind::LlmBlocked,
                        status: 400,
                        code: "sensitive_data",
                        message: format!("purple LLM gateway: the request carries a secret ({kind}) and was not sent"),
                        details: blocked("sensitive data", json!({"model": model, "secret": kind})),
                    },
                );
                return true;
            }
        }
        if let Some(r) = self.over_budget(&provider.name, &model) {
            self.refuse(w, Some(api), r);
            return true;
        }
        let key = match (&self.keys[index], &self.tls) {
            (Ok(k), Ok(tls)) => (k.clone(), Arc::clone(tls)),
            (Err(why), _) | (_, Err(why)) => {
                self.refuse(
                    w,
                    Some(api),
                    Refusal {
                        kind: Kind::LlmBlocked,
                        status: 503,
                        code: "gateway_not_ready",
                        message: format!(
                            "purple LLM gateway cannot reach {}: {why}",
                            provider.name
                        ),
                        details: blocked(
                            "gateway not ready",
                            json!({"model": model, "error": why}),
                        ),
                    },
                );
                return true;
            }
        };
        let streamed = request.get("stream") == Some(&Value::Bool(true));
        let body = if streamed && api == Api::Openai {
            // Without it OpenAI's streams carry no usage at all.
            request["stream_options"] = json!({"include_usage": true});
            serde_json::to_vec(&request).expect("values serialise")
        } else {
            body
        };
        let mut record = json!({
            "provider": provider.name,
            "api": api.name(),
            "model": model,
            "endpoint": path,
            "streamed": streamed,
        });
        if self.plan.log_prompts {
            let text = String::from_utf8_lossy(&secrets::scrub(&body, &self.all_keys)).into_owned();
            record["prompt"] = json!(truncated(&text, usage::MAX_LOGGED));
        }
        let outcome = self.forward(
            provider,
            path,
            head,
            &body,
            &key,
            (index, pool),
            w,
            started,
            &mut record,
        );
        let (usage, keep) = outcome;
        if let Some(u) = usage {
            record["tokens_in"] = json!(u.input);
            record["tokens_out"] = json!(u.output);
            record["tokens_cached"] = json!(u.cached);
            let answered = record
                .get("model_answered")
                .and_then(Value::as_str)
                .map(str::to_owned);
            let price = price.or_else(|| self.plan.price(&provider.name, answered.as_deref()?));
            let cost = price.map(|p| u.cost(&p));
            record["cost_usd"] = match cost {
                Some(c) => json!(c as f64 / 1e12),
                None => Value::Null,
            };
            if let Ok(mut s) = self.spent.lock() {
                s.tokens += u.total();
                s.cost += cost.unwrap_or(0);
                s.answered.push_back((Instant::now(), u.total()));
            }
        }
        record["latency_ms"] = json!(started.elapsed().as_millis() as u64);
        self.write(&[Entry::new(Kind::LlmRequest, record)]);
        keep
    }

    /// The refusal of a request past a session budget or a per-minute
    /// limit, if it is; else the request counts towards the minute.
    fn over_budget(&self, provider: &str, model: &str) -> Option<Refusal> {
        let mut spent = self.spent.lock().ok()?;
        let now = Instant::now();
        while spent.started.front().is_some_and(|t| now - *t >= MINUTE) {
            spent.started.pop_front();
        }
        while spent
            .answered
            .front()
            .is_some_and(|(t, _)| now - *t >= MINUTE)
        {
            spent.answered.pop_front();
        }
        let minute_tokens: u64 = spent.answered.iter().map(|(_, n)| n).sum();
        let b = &self.plan.budget;
        let r = &self.plan.rate_limits;
        let (limit, max, used) = if let Some(max) = b.max_tokens.filter(|m| spent.tokens >= *m) {
            ("max_tokens", json!(max), json!(spent.tokens))
        } else if let Some(max) = b
            .max_cost_micros
            .filter(|m| spent.cost >= *m as u128 * 1_000_000)
        {
            (
                "max_cost",
                json!(max as f64 / 1e6),
                json!(spent.cost as f64 / 1e12),
            )
        } else if let Some(max) = r
            .requests_per_minute
            .filter(|m| spent.started.len() as u64 >= *m)
        {
            (
                "requests_per_minute",
                json!(max),
                json!(spent.started.len()),
            )
        } else if let Some(max) = r.tokens_per_minute.filter(|m| minute_tokens >= *m) {
            ("tokens_per_minute", json!(max), json!(minute_tokens))
        } else {
            spent.started.push_back(now);
            return None;
        };
        // Per-minute limits pass; a session budget does not.
        let stops = b.stop_session && limit.starts_with("max_");
        if stops {
            self.stop.store(true, Ordering::SeqCst);
        }
        Some(Refusal {
            kind: Kind::LlmBudget,
            status: 429,
            code: "budget_exceeded",
            message: format!("purple LLM gateway: the session's {limit} limit ({max}) is reached"),
            details: json!({"limit": limit, "max": max, "spent": used, "provider": provider, "model": model, "stops_session": stops}),
        })
    }

    /// Sends the request upstream and the answer back as it arrives.
    /// Returns the usage the answer reported and whether the client
    /// connection may carry another request.
    #[allow(clippy::too_many_arguments)]
    fn forward(
        &self,
        provider: &Provider,
        path: &str,
        head: &Head,
        body: &[u8],
        (key, tls): &(String, Arc<ClientConfig>),
        (index, pool): (usize, &mut Pool),
        w: &mut TcpStream,
        started: Instant,
        record: &mut Value,
    ) -> (Option<Usage>, KeepAlive) {
        let api = provider.api;
        let e = &provider.endpoint;
        let fail = |w: &mut TcpStream, record: &mut Value, status: u16, why: String| {
            record["status"] = json!(status);
            record["error"] = json!(why);
            let body = error_body(
                Some(api),
                status,
                "upstream_error",
                &format!("purple LLM gateway: {why}"),
            );
            let head = format!(
                "HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                http::reason(status),
                body.len()
            );
            let _ = w
                .write_all(head.as_bytes())
                .and_then(|()| w.write_all(&body));
        };
        let host = if e.port == 443 {
            e.host.clone()
        } else {
            format!("{}:{}", e.host, e.port)
        };
        let mut out = format!(
            "{} {}{path} HTTP/1.1\r\nHost: {host}\r\n",
            head.method, e.base_path
        );
        for (k, v) in &head.headers {
            let credential = [
                "authorization",
                "x-api-key",
                "api-key",
                "cookie",
                "accept-encoding",
            ]
            .iter()
            .any(|h| k.eq_ignore_ascii_case(h));
            if !http::hop_by_hop(k) && !credential {
                out.push_str(&format!("{k}: {v}\r\n"));
            }
        }
        match api {
            Api::Openai => out.push_str(&format!("Authorization: Bearer {key}\r\n")),
            Api::Anthropic => out.push_str(&format!("x-api-key: {key}\r\n")),
        }
        out.push_str(&format!(
            "Accept-Encoding: identity\r\nContent-Length: {}\r\n\r\n",
            body.len()
        ));
        // The connection of this client's last request to the same provider,
        // if the provider kept it open; a kept one the provider has closed
        // meanwhile fails before any answer byte, and is replaced once.
        let mut kept = match pool.take() {
            Some((i, c)) if i == index => Some(c),
            _ => None,
        };
        let (mut up, resp) = loop {
            let reused = kept.is_some();
            let mut up = match kept.take() {
                Some(c) => c,
                None => match upstream::connect(tls, e) {
                    Ok(c) => c,
                    Err(err) => {
                        fail(w, record, 502, format!("provider unreachable: {err}"));
                        return (None, true);
                    }
                },
            };
            let sent = up
                .get_mut()
                .write_all(out.as_bytes())
                .and_then(|()| up.get_mut().write_all(body))
                .and_then(|()| up.get_mut().flush());
            if let Err(err) = sent {
                if reused {
                    continue;
                }
                fail(w, record, 502, format!("sending to the provider: {err}"));
                return (None, true);
            }
            match http::read_response(&mut up) {
                Ok(r) => break (up, r),
                Err(HttpError::Closed | HttpError::Io(_)) if reused => continue,
                Err(err) => {
                    fail(w, record, 502, format!("the provider's answer: {err}"));
                    return (None, true);
                }
            }
        };
        let reusable = !resp.has_token("connection", "close");
        record["ttfb_ms"] = json!(started.elapsed().as_millis() as u64);
        record["status"] = json!(resp.status);
        let request_id = resp
            .header("x-request-id")
            .or_else(|| resp.header("request-id"));
        record["request_id"] = json!(request_id);
        let kind = match resp.body_kind() {
            Ok(k) => k,
            Err(err) => {
                fail(w, record, 502, format!("the provider's answer: {err}"));
                return (None, true);
            }
        };
        let event_stream = resp
            .header("content-type")
            .is_some_and(|c| c.starts_with("text/event-stream"));
        let mut head_out = format!("HTTP/1.1 {} {}\r\n", resp.status, http::reason(resp.status));
        for (k, v) in &resp.headers {
            if !http::hop_by_hop(k) {
                head_out.push_str(&format!("{k}: {v}\r\n"));
            }
        }
        let keep_text = self.plan.log_responses;
        if kind == BodyKind::Length(0)
            || !(kind == BodyKind::Chunked || (kind == BodyKind::None && event_stream))
        {
            // A whole answer: read, metered, keys scrubbed, sent.
            let whole = http::read_body(
                &mut up,
                kind,
                http::MAX_RESPONSE_BODY,
                kind == BodyKind::None,
            );
            let bytes = match whole {
                Ok(b) => secrets::scrub(&b, &self.all_keys),
                Err(err) => {
                    fail(
                        w,
                        record,
                        502,
                        format!("the provider's answer was cut: {err}"),
                    );
                    return (None, true);
                }
            };
            let usage = if event_stream {
                let mut m = StreamMeter::new(api, keep_text);
                m.feed(&bytes);
                self.note_stream(record, &m);
                m.usage
            } else {
                match serde_json::from_slice::<Value>(&bytes) {
                    Ok(v) => {
                        let u = usage::of_body(api, &v);
                        if let Some(m) = u.as_ref().and_then(|(_, m)| m.as_ref()) {
                            record["model_answered"] = json!(m);
                        }
                        if keep_text {
                            record["response"] = json!(truncated(
                                &String::from_utf8_lossy(&bytes),
                                usage::MAX_LOGGED
                            ));
                        }
                        u.map(|(u, _)| u)
                    }
                    Err(err) => {
                        record["error"] =
                            json!(format!("the provider's answer is not JSON: {err}"));
                        None
                    }
                }
            };
            head_out.push_str(&format!("Content-Length: {}\r\n\r\n", bytes.len()));
            let sent = w
                .write_all(head_out.as_bytes())
                .and_then(|()| w.write_all(&bytes))
                .and_then(|()| w.flush());
            if reusable && kind != BodyKind::None {
                *pool = Some((index, up));
            }
            return (usage, sent.is_ok());
        }
        // A stream: passed on chunk by chunk as it arrives.
        head_out.push_str("Transfer-Encoding: chunked\r\n\r\n");
        if w.write_all(head_out.as_bytes())
            .and_then(|()| w.flush())
            .is_err()
        {
            return (None, false);
        }
        let mut meter = StreamMeter::new(api, keep_text);
        let ended = loop {
            let piece = match kind {
                BodyKind::Chunked => http::read_chunk(&mut up, http::MAX_RESPONSE_BODY),
                _ => read_some(&mut up),
            };
            match piece {
                Ok(Some(data)) => {
                    meter.feed(&data);
                    if http::write_chunk(w, &data).is_err() {
                        break Err("the client went away".to_owned());
                    }
                }
                Ok(None) => break Ok(()),
                Err(err) => break Err(format!("the provider's stream was cut: {err}")),
            }
        };
        self.note_stream(record, &meter);
        match ended {
            Ok(()) => {
                let done = http::end_chunks(w).is_ok();
                if reusable && kind == BodyKind::Chunked {
                    *pool = Some((index, up));
                }
                if !meter.done {
                    record["incomplete"] = json!(true);
                }
                (meter.usage, done)
            }
            Err(why) => {
                record["error"] = json!(why);
                record["incomplete"] = json!(true);
                // Closing without the last chunk tells the client the
                // answer is incomplete.
                (meter.usage, false)
            }
        }
    }

    fn note_stream(&self, record: &mut Value, m: &StreamMeter) {
        if let Some(model) = &m.model {
            record["model_answered"] = json!(model);
        }
        if m.malformed > 0 {
            record["malformed_events"] = json!(m.malformed);
        }
        if let Some(t) = &m.text {
            record["response"] = json!(t);
        }
    }
}

/// What a close-delimited body holds next (`None` at its end).
fn read_some(r: &mut impl BufRead) -> Result<Option<Vec<u8>>, HttpError> {
    let buf = r.fill_buf()?;
    if buf.is_empty() {
        return Ok(None);
    }
    let data = buf.to_vec();
    r.consume(data.len());
    Ok(Some(data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_take_the_provider_shape() {
        let a: Value =
            serde_json::from_slice(&error_body(Some(Api::Anthropic), 429, "x", "m")).unwrap();
        assert_eq!(a["type"], "error");
        assert_eq!(a["error"]["type"], "rate_limit_error");
        let o: Value =
            serde_json::from_slice(&error_body(Some(Api::Openai), 429, "budget_exceeded", "m"))
                .unwrap();
        assert_eq!(o["error"]["code"], "budget_exceeded");
        assert_eq!(o["error"]["message"], "m");
    }

    #[test]
    fn ports_stay_below_the_ephemeral_range() {
        for _ in 0..100 {
            let p = choose_port();
            assert!((10_000..30_000).contains(&p), "{p}");
        }
    }
}
