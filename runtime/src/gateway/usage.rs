//! Tokens from the provider's own numbers: the `usage` object of a JSON
//! answer, or of the stream's events (OpenAI's last chunk, which the gateway
//! asks for with `stream_options.include_usage`; Anthropic's
//! `message_start` and `message_delta`), and their cost from the plan's prices.

use purple_policy::llm::{Api, Price};
use serde_json::Value;

/// Tokens of one request as the provider counted them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// All input tokens, cached ones included.
    pub input: u64,
    pub output: u64,
    /// Input tokens read from the prompt cache.
    pub cached: u64,
    /// Input tokens written to the prompt cache (Anthropic).
    pub cache_write: u64,
}

impl Usage {
    pub fn total(&self) -> u64 {
        self.input + self.output
    }

    /// Picodollars.
    pub fn cost(&self, p: &Price) -> u128 {
        let plain = self.input.saturating_sub(self.cached + self.cache_write);
        plain as u128 * p.input as u128
            + self.cached as u128 * p.cached_input as u128
            + self.cache_write as u128 * p.cache_write as u128
            + self.output as u128 * p.output as u128
    }
}

fn n(v: &Value, pointer: &str) -> u64 {
    v.pointer(pointer).and_then(Value::as_u64).unwrap_or(0)
}

/// The usage of an Anthropic `usage` object (input there excludes the cache).
fn anthropic_usage(u: &Value) -> Usage {
    let cached = n(u, "/cache_read_input_tokens");
    let cache_write = n(u, "/cache_creation_input_tokens");
    Usage {
        input: n(u, "/input_tokens") + cached + cache_write,
        output: n(u, "/output_tokens"),
        cached,
        cache_write,
    }
}

fn openai_usage(u: &Value) -> Usage {
    Usage {
        input: n(u, "/prompt_tokens"),
        output: n(u, "/completion_tokens"),
        cached: n(u, "/prompt_tokens_details/cached_tokens"),
        cache_write: 0,
    }
}

/// The usage and model of a whole JSON answer; `None` when it carries none.
pub fn of_body(api: Api, body: &Value) -> Option<(Usage, Option<String>)> {
    let u = body.get("usage").filter(|u| u.is_object())?;
    let usage = match api {
        Api::Openai => openai_usage(u),
        Api::Anthropic => anthropic_usage(u),
    };
    let model = body.get("model").and_then(Value::as_str).map(str::to_owned);
    Some((usage, model))
}

/// Reads a server-sent event stream as it passes, line by line, keeping
/// the usage its events report. Lines are capped: a stream that never ends
/// a line is read for nothing past the cap.
pub struct StreamMeter {
    api: Api,
    line: Vec<u8>,
    pub usage: Option<Usage>,
    pub model: Option<String>,
    /// Text of the answer, kept only when responses are logged.
    pub text: Option<String>,
    /// The stream said it was finished (`[DONE]`, `message_stop`).
    pub done: bool,
    /// Data lines that were not JSON.
    pub malformed: u64,
}

const MAX_LINE: usize = 1 << 20;
/// The most answer text a record keeps.
pub const MAX_LOGGED: usize = 64 << 10;

impl StreamMeter {
    pub fn new(api: Api, keep_text: bool) -> Self {
        Self {
            api,
            line: Vec::new(),
            usage: None,
            model: None,
            text: keep_text.then(String::new),
            done: false,
            malformed: 0,
        }
    }

    pub fn feed(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if b == b'\n' {
                let line = std::mem::take(&mut self.line);
                self.line_done(&line);
            } else if self.line.len() < MAX_LINE {
                self.line.push(b);
            }
        }
    }

    fn line_done(&mut self, line: &[u8]) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(data) = line.strip_prefix(b"data:") else {
            return;
        };
        let data = data.strip_prefix(b" ").unwrap_or(data);
        if data == b"[DONE]" {
            self.done = true;
            return;
        }
        let Ok(v) = serde_json::from_slice::<Value>(data) else {
            self.malformed += 1;
            return;
        };
        match self.api {
            Api::Openai => {
                if let Some(u) = v.get("usage").filter(|u| u.is_object()) {
                    self.usage = Some(openai_usage(u));
                }
                if let Some(m) = v.get("model").and_then(Value::as_str) {
                    self.model = Some(m.to_owned());
                }
                let delta = v
                    .pointer("/choices/0/delta/content")
                    .and_then(Value::as_str);
                self.keep(delta);
            }
            Api::Anthropic => match v.get("type").and_then(Value::as_str) {
                Some("message_start") => {
                    if let Some(u) = v.pointer("/message/usage") {
                        self.usage = Some(anthropic_usage(u));
                    }
                    if let Some(m) = v.pointer("/message/model").and_then(Value::as_str) {
                        self.model = Some(m.to_owned());
                    }
                }
                Some("message_delta") => {
                    // Cumulative: the last one holds the final count.
                    if let Some(out) = v.pointer("/usage/output_tokens").and_then(Value::as_u64) {
                        self.usage.get_or_insert_with(Usage::default).output = out;
                    }
                }
                Some("content_block_delta") => {
                    let t = v.pointer("/delta/text").and_then(Value::as_str);
                    self.keep(t);
                }
                Some("message_stop") => self.done = true,
                _ => {}
            },
        }
    }

    fn keep(&mut self, piece: Option<&str>) {
        if let (Some(text), Some(p)) = (self.text.as_mut(), piece) {
            if text.len() + p.len() <= MAX_LOGGED {
                text.push_str(p);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn openai_usage_counts_cached_input_at_its_price() {
        let body = json!({"model": "gpt-4o-mini-2024-07-18", "usage": {
            "prompt_tokens": 1000, "completion_tokens": 100,
            "prompt_tokens_details": {"cached_tokens": 400}}});
        let (u, model) = of_body(Api::Openai, &body).unwrap();
        assert_eq!(
            u,
            Usage {
                input: 1000,
                output: 100,
                cached: 400,
                cache_write: 0
            }
        );
        assert_eq!(model.as_deref(), Some("gpt-4o-mini-2024-07-18"));
        let p = Price {
            input: 150_000,
            output: 600_000,
            cached_input: 75_000,
            cache_write: 150_000,
        };
        assert_eq!(u.cost(&p), 600 * 150_000 + 400 * 75_000 + 100 * 600_000);
    }

    #[test]
    fn anthropic_streams_take_input_from_start_and_output_from_the_last_delta() {
        let mut m = StreamMeter::new(Api::Anthropic, true);
        let events = concat!(
            "event: message_start\n",
            "data: {\"type\":\"message_start\",\"message\":{\"model\":\"claude-3-5-haiku-20241022\",",
            "\"usage\":{\"input_tokens\":12,\"cache_read_input_tokens\":3,\"output_tokens\":1}}}\n\n",
            "event: content_block_delta\n",
            "data: {\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n",
            "data: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":7}}\r\n\r\n",
            "data: not json\n",
            "data: {\"type\":\"message_stop\"}\n\n",
        );
        // Split anywhere: the meter joins lines across reads.
        for piece in events.as_bytes().chunks(7) {
            m.feed(piece);
        }
        assert_eq!(
            m.usage,
            Some(Usage {
                input: 15,
                output: 7,
                cached: 3,
                cache_write: 0
            })
        );
        assert_eq!(m.model.as_deref(), Some("claude-3-5-haiku-20241022"));
        assert_eq!(m.text.as_deref(), Some("Hi"));
        assert!(m.done);
        assert_eq!(m.malformed, 1);
    }

    #[test]
    fn openai_streams_end_with_the_usage_chunk() {
        let mut m = StreamMeter::new(Api::Openai, false);
        m.feed(b"data: {\"model\":\"gpt-4o\",\"choices\":[{\"delta\":{\"content\":\"x\"}}]}\n\n");
        assert_eq!(m.usage, None);
        m.feed(b"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2}}\n\ndata: [DONE]\n\n");
        assert_eq!(m.usage.map(|u| u.total()), Some(7));
        assert!(m.done && m.text.is_none());
    }
}
