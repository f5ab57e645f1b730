//! The LLM gateway's plan (`io.purple.llm`): which providers the sandbox may
//! reach through the supervisor's gateway, where their keys come from on the
//! host (by name: never the key itself), the prices, budgets and what is
//! logged. Translated from the policy's `ai_policy` section.

use std::collections::HashMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::annotations::LLM_ANNOTATION;
use crate::supervision::SupervisionError;

/// The day the shipped prices were taken from the providers' price pages.
pub const PRICES_DATE: &str = "2025-06-01";

/// The API a provider speaks: it decides the paths proxied, how the key is
/// sent, where usage is read and the shape of the gateway's own errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Api {
    /// OpenAI chat completions (`POST {base}/chat/completions`).
    Openai,
    /// Anthropic messages (`POST {base}/v1/messages`).
    Anthropic,
}

impl Api {
    pub fn name(self) -> &'static str {
        match self {
            Api::Openai => "openai",
            Api::Anthropic => "anthropic",
        }
    }

    /// The endpoint used when the policy names none.
    pub fn default_endpoint(self) -> &'static str {
        match self {
            Api::Openai => "https://api.openai.com/v1",
            Api::Anthropic => "https://api.anthropic.com",
        }
    }

    /// The host variable holding the key when the policy names none.
    pub fn default_key_env(self) -> &'static str {
        match self {
            Api::Openai => "OPENAI_API_KEY",
            Api::Anthropic => "ANTHROPIC_API_KEY",
        }
    }

    /// The sandbox variables its SDKs read: base URL, key.
    pub fn sandbox_env(self) -> (&'static str, &'static str) {
        match self {
            Api::Openai => ("OPENAI_BASE_URL", "OPENAI_API_KEY"),
            Api::Anthropic => ("ANTHROPIC_BASE_URL", "ANTHROPIC_API_KEY"),
        }
    }
}

/// An `https://host[:port][/path]` URL, checked once where the policy is read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    /// Path prefix without a trailing slash ("" or "/v1").
    pub base_path: String,
}

impl Endpoint {
    pub fn parse(url: &str) -> Result<Self, String> {
        let rest = url
            .strip_prefix("https://")
            .ok_or_else(|| format!("{url:?} is not an https:// URL"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (
                h,
                p.parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| format!("{url:?}: {p:?} is not a port"))?,
            ),
            _ => (authority, 443),
        };
        let host_ok = host.parse::<std::net::Ipv4Addr>().is_ok()
            || (host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
                && host.parse::<crate::domain::Domain>().is_ok());
        if !host_ok {
            return Err(format!(
                "{url:?}: {host:?} is not a host name or IPv4 address"
            ));
        }
        let base_path = path.trim_end_matches('/');
        if base_path.contains(['?', '#', '%', ' ', '\\']) || base_path.split('/').any(|c| c == "..")
        {
            return Err(format!("{url:?}: the path may hold only plain segments"));
        }
        Ok(Self {
            host: host.to_ascii_lowercase(),
            port,
            base_path: base_path.to_owned(),
        })
    }
}

/// Where the gateway finds a provider's key on the host, read by the
/// supervisor (never written into the sandbox, the plan or a record).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum KeySource {
    /// A variable of the runtime's environment (the caller's for `purple run`).
    Env(String),
    /// A file on the host holding the key (surrounding whitespace ignored).
    File(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provider {
    /// Also the path prefix of its base URL in the sandbox (`/openai`).
    pub name: String,
    pub api: Api,
    pub endpoint: Endpoint,
    /// Models it may be asked for; empty: any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<String>,
    pub key: KeySource,
}

/// Prices of one model, in picodollars per token (= dollars per million
/// tokens × 10⁶): integers, so that costs add up exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    pub input: u64,
    pub output: u64,
    /// Input read from the provider's prompt cache.
    pub cached_input: u64,
    /// Input written to the prompt cache (Anthropic bills it apart).
    pub cache_write: u64,
}

/// Shipped prices ([`PRICES_DATE`]): `$/Mtok` × 10⁶, which is picodollars
/// per token.
const SHIPPED: &[(Api, &str, [u64; 4])] = &[
    (
        Api::Openai,
        "gpt-4o",
        [2_500_000, 10_000_000, 1_250_000, 2_500_000],
    ),
    (
        Api::Openai,
        "gpt-4o-mini",
        [150_000, 600_000, 75_000, 150_000],
    ),
    (
        Api::Openai,
        "gpt-4.1",
        [2_000_000, 8_000_000, 500_000, 2_000_000],
    ),
    (
        Api::Openai,
        "gpt-4.1-mini",
        [400_000, 1_600_000, 100_000, 400_000],
    ),
    (
        Api::Openai,
        "gpt-4.1-nano",
        [100_000, 400_000, 25_000, 100_000],
    ),
    (
        Api::Openai,
        "o3",
        [2_000_000, 8_000_000, 500_000, 2_000_000],
    ),
    (
        Api::Openai,
        "o4-mini",
        [1_100_000, 4_400_000, 275_000, 1_100_000],
    ),
    (
        Api::Anthropic,
        "claude-opus-4-20250514",
        [15_000_000, 75_000_000, 1_500_000, 18_750_000],
    ),
    (
        Api::Anthropic,
        "claude-sonnet-4-20250514",
        [3_000_000, 15_000_000, 300_000, 3_750_000],
    ),
    (
        Api::Anthropic,
        "claude-3-7-sonnet-20250219",
        [3_000_000, 15_000_000, 300_000, 3_750_000],
    ),
    (
        Api::Anthropic,
        "claude-3-5-sonnet-20241022",
        [3_000_000, 15_000_000, 300_000, 3_750_000],
    ),
    (
        Api::Anthropic,
        "claude-3-5-haiku-20241022",
        [800_000, 4_000_000, 80_000, 1_000_000],
    ),
];

/// The shipped price table of `api`.
pub fn shipped_prices(api: Api) -> HashMap<String, Price> {
    SHIPPED
        .iter()
        .filter(|(a, _, _)| *a == api)
        .map(|(_, m, [i, o, c, w])| {
            (
                (*m).to_owned(),
                Price {
                    input: *i,
                    output: *o,
                    cached_input: *c,
                    cache_write: *w,
                },
            )
        })
        .collect()
}

/// Parses `"2.50"` or `"$2.50"` (dollars) into millionths of a dollar.
pub fn parse_dollars(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let t = t.strip_prefix('$').unwrap_or(t);
    let (whole, frac) = t.split_once('.').unwrap_or((t, ""));
    let digits = |x: &str| !x.is_empty() && x.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || (!frac.is_empty() && !digits(frac)) || frac.len() > 6 {
        return Err(format!(
            "{s:?} is not an amount of dollars (at most 6 decimals)"
        ));
    }
    let whole: u64 = whole
        .parse()
        .ok()
        .filter(|w| *w <= 1_000_000_000)
        .ok_or_else(|| format!("{s:?} is too large"))?;
    let frac: u64 = format!("{frac:0<6}").parse().expect("six digits");
    Ok(whole * 1_000_000 + frac)
}

/// Session budgets: past one, requests are answered 429 (`llm.budget`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    /// Millionths of a dollar.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_cost_micros: Option<u64>,
    /// Once a budget is spent, end the session (SIGTERM to every process,
    /// SIGKILL after the session's grace) instead of only refusing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stop_session: bool,
}

/// Per-minute limits over a sliding minute: past one, requests are
/// answered 429 (`llm.budget`) until the minute has room again.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_minute: Option<u64>,
    /// Input + output tokens of the answers of the last minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_minute: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmPlan {
    pub providers: Vec<Provider>,
    /// Refuse models without a price (and, always, providers not listed).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub block_unknown: bool,
    #[serde(default)]
    pub budget: Budget,
    #[serde(default)]
    pub rate_limits: RateLimits,
    /// Refuse request bodies carrying the host's keys or secret formats.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub scan_secrets: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub log_prompts: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub log_responses: bool,
    /// Per provider name, per model: the shipped table with the policy's
    /// overrides applied.
    pub prices: HashMap<String, HashMap<String, Price>>,
}

impl LlmPlan {
    pub fn from_annotations(
        a: Option<&HashMap<String, String>>,
    ) -> Result<Option<Self>, SupervisionError> {
        let Some(json) = a.and_then(|a| a.get(LLM_ANNOTATION)) else {
            return Ok(None);
        };
        let err = |reason: String| SupervisionError {
            annotation: LLM_ANNOTATION,
            reason,
        };
        let plan: Self = serde_json::from_str(json).map_err(|e| err(e.to_string()))?;
        // The names become path prefixes and are matched as such.
        for (i, p) in plan.providers.iter().enumerate() {
            if !crate::llm::provider_name_ok(&p.name) {
                return Err(err(format!("provider {:?} is not a provider name", p.name)));
            }
            if plan.providers[..i].iter().any(|q| q.name == p.name) {
                return Err(err(format!("provider {:?} is listed twice", p.name)));
            }
            Endpoint::parse(&format!(
                "https://{}:{}{}",
                p.endpoint.host, p.endpoint.port, p.endpoint.base_path
            ))
            .map_err(err)?;
        }
        Ok(Some(plan))
    }

    /// The price of `model` at `provider`: its own entry, or that of the
    /// longest listed name it extends with a dated suffix (`gpt-4o-2024-08-06`).
    pub fn price(&self, provider: &str, model: &str) -> Option<Price> {
        let table = self.prices.get(provider)?;
        if let Some(p) = table.get(model) {
            return Some(*p);
        }
        table
            .iter()
            .filter(|(name, _)| {
                model
                    .strip_prefix(name.as_str())
                    .and_then(|rest| rest.strip_prefix('-'))
                    .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
            })
            .max_by_key(|(name, _)| name.len())
            .map(|(_, p)| *p)
    }
}

/// Lowercase letters, digits and dashes: the name is a path segment.
pub fn provider_name_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 32
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_or_say_why() {
        assert_eq!(
            Endpoint::parse("https://api.openai.com/v1/").unwrap(),
            Endpoint {
                host: "api.openai.com".into(),
                port: 443,
                base_path: "/v1".into()
            }
        );
        let e = Endpoint::parse("https://127.0.0.1:8443").unwrap();
        assert_eq!((e.port, e.base_path.as_str()), (8443, ""));
        for bad in [
            "http://api.openai.com",
            "https://",
            "https://a b/",
            "https://h:0",
            "https://h/../x",
            "https://h/x?y",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn dollars_are_exact_millionths() {
        assert_eq!(parse_dollars("$10.00"), Ok(10_000_000));
        assert_eq!(parse_dollars("0.000001"), Ok(1));
        assert_eq!(parse_dollars("2.5"), Ok(2_500_000));
        for bad in ["", "$", "1.2.3", "-1", "1e3", "0.0000001", "ten"] {
            assert!(parse_dollars(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn dated_model_names_take_their_family_price() {
        let plan = LlmPlan {
            providers: Vec::new(),
            block_unknown: false,
            budget: Budget::default(),
            rate_limits: RateLimits::default(),
            scan_secrets: false,
            log_prompts: false,
            log_responses: false,
            prices: HashMap::from([("openai".to_owned(), shipped_prices(Api::Openai))]),
        };
        let mini = plan.price("openai", "gpt-4o-mini-2024-07-18").unwrap();
        assert_eq!(mini.input, 150_000);
        assert_eq!(plan.price("openai", "gpt-4o").unwrap().input, 2_500_000);
        assert_eq!(plan.price("openai", "gpt-4o-evil"), None);
        assert_eq!(plan.price("anthropic", "gpt-4o"), None);
    }
}
