//! A fake OpenAI- and Anthropic-compatible provider for the LLM gateway's
//! tests: HTTPS on a test host address (10.99.0.1) of a [`TestNet`], with a
//! certificate from a CA the test makes. What it answers depends on the
//! model asked for; every request it got is kept, headers included, so that
//! a test can see which key reached it.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::{json, Value};

use crate::netns::TestNet;

/// The address the fake provider listens on, in the test host's namespace.
pub const PROVIDER_ADDR: &str = "10.99.0.1";

/// Tokens the fake provider reports for every answer.
pub const PROMPT_TOKENS: u64 = 1200;
pub const CACHED_TOKENS: u64 = 200;
pub const OUTPUT_TOKENS: u64 = 300;

/// One request as the provider received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

pub struct FakeProvider {
    pub port: u16,
    /// PEM of the CA that signed its certificate.
    pub ca_file: PathBuf,
    pub received: Arc<Mutex<Vec<Received>>>,
    /// TLS connections accepted.
    pub connections: Arc<AtomicUsize>,
    _dir: tempfile::TempDir,
}

impl FakeProvider {
    pub fn start(net: &TestNet) -> Self {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "purple test CA");
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::from_params(&ca, &ca_key);
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec![PROVIDER_ADDR.to_owned()])
            .unwrap()
            .signed_by(&leaf_key, &issuer)
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, ca_cert.pem()).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(leaf.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
        )
        .unwrap();
        let config = Arc::new(config);
        // Bound in the test host's namespace; accepted from here.
        let host_ns = File::open(format!("/var/run/netns/{}", net.host)).unwrap();
        let listener = std::thread::spawn(move || {
            nix::sched::setns(host_ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            TcpListener::bind((PROVIDER_ADDR, 0)).unwrap()
        })
        .join()
        .unwrap();
        let port = listener.local_addr().unwrap().port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let (log, count) = (Arc::clone(&received), Arc::clone(&connections));
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (config, log, count) =
                    (Arc::clone(&config), Arc::clone(&log), Arc::clone(&count));
                std::thread::spawn(move || serve(conn, config, log, count));
            }
        });
        Self {
            port,
            ca_file,
            received,
            connections,
            _dir: dir,
        }
    }

    /// `https://10.99.0.1:<port>` and `path`.
    pub fn url(&self, path: &str) -> String {
        format!("https://{PROVIDER_ADDR}:{}{path}", self.port)
    }

    pub fn requests(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

type Tls = BufReader<rustls::StreamOwned<rustls::ServerConnection, TcpStream>>;

/// Serves one TLS connection, keep-alive, until the client closes it or an
/// answer ends it.
fn serve(
    sock: TcpStream,
    config: Arc<rustls::ServerConfig>,
    log: Arc<Mutex<Vec<Received>>>,
    connections: Arc<AtomicUsize>,
) {
    connections.fetch_add(1, Ordering::SeqCst);
    let conn = rustls::ServerConnection::new(config).unwrap();
    let mut tls = BufReader::new(rustls::StreamOwned::new(conn, sock));
    while answer(&mut tls, &log) {}
}

/// Reads one request and answers it; false when the connection ends.
fn answer(tls: &mut Tls, log: &Mutex<Vec<Received>>) -> bool {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if tls.read_line(&mut line).unwrap_or(0) == 0 {
            return false;
        }
        if line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    let mut lines = head.lines();
    let path = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .unwrap_or("")
        .to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    if tls.read_exact(&mut body).is_err() {
        return false;
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let received = Received {
        path: path.clone(),
        headers,
        body: body.clone(),
    };
    let n = {
        let mut l = log.lock().unwrap();
        l.push(received.clone());
        l.len()
    };
    let w = tls.get_mut();
    let model = body["model"].as_str().unwrap_or("").to_owned();
    let streamed = body["stream"] == json!(true);
    let anthropic = path.ends_with("/v1/messages");
    let id_header = if anthropic {
        "request-id"
    } else {
        "x-request-id"
    };
    let request_id = format!("req-fake-{n}");
    if model == "broken-json" {
        let body = b"{\"id\": \"cut";
        let _ = write!(
            w,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{id_header}: {request_id}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let _ = w.write_all(body);
        return w.flush().is_ok();
    }
    if !streamed {
        let answer = if anthropic {
            json!({"id": "msg_1", "type": "message", "role": "assistant", "model": model,
                "content": [{"type": "text", "text": "hello from the fake provider"}],
                "stop_reason": "end_turn", "stop_sequence": null,
                "usage": {"input_tokens": PROMPT_TOKENS - CACHED_TOKENS,
                          "cache_read_input_tokens": CACHED_TOKENS,
                          "cache_creation_input_tokens": 0,
                          "output_tokens": OUTPUT_TOKENS}})
        } else {
            json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": model,
                "choices": [{"index": 0, "finish_reason": "stop",
                    "message": {"role": "assistant", "content": "hello from the fake provider"}}],
                "usage": {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": OUTPUT_TOKENS,
                          "total_tokens": PROMPT_TOKENS + OUTPUT_TOKENS,
                          "prompt_tokens_details": {"cached_tokens": CACHED_TOKENS}}})
        };
        let body = answer.to_string();
        let _ = write!(
            w,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{id_header}: {request_id}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        return w.flush().is_ok();
    }
    let _ = write!(
        w,
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n{id_header}: {request_id}\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    let mut events: Vec<String> = if anthropic {
        vec![
            format!(
                "event: message_start\ndata: {}\n\n",
                json!({"type": "message_start", "message": {
                "id": "msg_1", "type": "message", "role": "assistant", "model": model, "content": [],
                "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": PROMPT_TOKENS - CACHED_TOKENS, "cache_read_input_tokens": CACHED_TOKENS,
                          "cache_creation_input_tokens": 0, "output_tokens": 1}}})
            ),
            format!(
                "event: content_block_start\ndata: {}\n\n",
                json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})
            ),
            format!(
                "event: content_block_delta\ndata: {}\n\n",
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "hello "}})
            ),
            format!(
                "event: content_block_delta\ndata: {}\n\n",
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "streamed"}})
            ),
            format!(
                "event: content_block_stop\ndata: {}\n\n",
                json!({"type": "content_block_stop", "index": 0})
            ),
            format!(
                "event: message_delta\ndata: {}\n\n",
                json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": OUTPUT_TOKENS}})
            ),
            format!(
                "event: message_stop\ndata: {}\n\n",
                json!({"type": "message_stop"})
            ),
        ]
    } else {
        let chunk = |delta: Value, finish: Value| {
            json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        };
        let mut e = vec![
            format!(
                "data: {}\n\n",
                chunk(
                    json!({"role": "assistant", "content": "hello "}),
                    Value::Null
                )
            ),
            format!(
                "data: {}\n\n",
                chunk(json!({"content": "streamed"}), Value::Null)
            ),
            format!("data: {}\n\n", chunk(json!({}), json!("stop"))),
        ];
        // As OpenAI does: usage only when asked for.
        if body["stream_options"]["include_usage"] == json!(true) {
            e.push(format!(
                "data: {}\n\n",
                json!({"id": "chatcmpl-1", "object": "chat.completion.chunk",
                "created": 1, "model": model, "choices": [],
                "usage": {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": OUTPUT_TOKENS,
                          "total_tokens": PROMPT_TOKENS + OUTPUT_TOKENS,
                          "prompt_tokens_details": {"cached_tokens": CACHED_TOKENS}}})
            ));
        }
        e.push("data: [DONE]\n\n".to_owned());
        e
    };
    if model.starts_with("cut-stream") {
        // Half the events, then the connection drops mid-chunk.
        events.truncate(2);
        for e in &events {
            let _ = write!(w, "{:x}\r\n{e}\r\n", e.len());
        }
        let _ = write!(w, "40\r\ndata: {{\"trunc");
        let _ = w.flush();
        return false;
    }
    for e in &events {
        let _ = write!(w, "{:x}\r\n{e}\r\n", e.len());
        let _ = w.flush();
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = write!(w, "0\r\n\r\n");
    w.flush().is_ok()
}
