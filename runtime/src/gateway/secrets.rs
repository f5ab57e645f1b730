//! `sensitive_data_scanning`: request bodies that carry the host's own keys
//! or a well-known secret format are refused. The finding names the kind of
//! secret, never the secret.

/// The kind of the first secret found in `body`, if any. `keys` are the
/// host's provider keys (the exact values).
pub fn find(body: &[u8], keys: &[String]) -> Option<&'static str> {
    if keys
        .iter()
        .any(|k| k.len() >= 8 && contains(body, k.as_bytes()))
    {
        return Some("provider key");
    }
    if contains(body, b"-----BEGIN ") && contains(body, b"PRIVATE KEY-----") {
        return Some("private key");
    }
    for (prefix, kind, len, alphabet) in PATTERNS {
        let mut from = 0;
        while let Some(i) = find_from(body, prefix.as_bytes(), from) {
            let rest = &body[i + prefix.len()..];
            let run = rest.iter().take_while(|b| alphabet(**b)).count();
            let starts_word = i == 0 || !body[i - 1].is_ascii_alphanumeric();
            if starts_word && run >= *len {
                return Some(kind);
            }
            from = i + 1;
        }
    }
    None
}

type Alphabet = fn(u8) -> bool;

fn upper_digit(b: u8) -> bool {
    b.is_ascii_uppercase() || b.is_ascii_digit()
}

fn alnum(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}

fn token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// Prefix, kind, the least length of what follows, its alphabet.
const PATTERNS: &[(&str, &str, usize, Alphabet)] = &[
    ("AKIA", "aws access key", 16, upper_digit),
    ("ASIA", "aws access key", 16, upper_digit),
    ("ghp_", "github token", 36, alnum),
    ("gho_", "github token", 36, alnum),
    ("ghu_", "github token", 36, alnum),
    ("ghs_", "github token", 36, alnum),
    ("ghr_", "github token", 36, alnum),
    ("github_pat_", "github token", 22, token),
    ("xoxb-", "slack token", 10, token),
    ("xoxp-", "slack token", 10, token),
    ("sk-ant-", "anthropic key", 32, token),
    ("sk-proj-", "openai key", 32, token),
];

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    find_from(hay, needle, 0).is_some()
}

fn find_from(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() || from > hay.len() - needle.len() {
        return None;
    }
    hay[from..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|i| i + from)
}

/// `text` with every occurrence of the host's keys replaced: upstream error
/// messages may quote the key they were sent.
pub fn scrub(text: &[u8], keys: &[String]) -> Vec<u8> {
    let mut out = text.to_vec();
    for k in keys.iter().filter(|k| !k.is_empty()) {
        let mut next = Vec::with_capacity(out.len());
        let mut i = 0;
        while let Some(j) = find_from(&out, k.as_bytes(), i) {
            next.extend_from_slice(&out[i..j]);
            next.extend_from_slice(b"[key removed by purple]");
            i = j + k.len();
        }
        next.extend_from_slice(&out[i..]);
        out = next;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_formats_are_named_and_lookalikes_pass() {
        let keys = vec!["sk-host-0123456789".to_owned()];
        let kind = |s: &str| find(s.as_bytes(), &keys);
        assert_eq!(
            kind(r#"{"c":"use sk-host-0123456789"}"#),
            Some("provider key")
        );
        assert_eq!(
            kind("-----BEGIN OPENSSH PRIVATE KEY-----\\nb3Bl"),
            Some("private key")
        );
        assert_eq!(kind("id AKIAIOSFODNN7EXAMPLE ok"), Some("aws access key"));
        assert_eq!(
            kind(&format!("t=ghp_{}", "a1".repeat(18))),
            Some("github token")
        );
        assert_eq!(kind("AKIA is a prefix, AKIAshort"), None);
        assert_eq!(kind("xAKIAIOSFODNN7EXAMPLE"), None);
        assert_eq!(kind("the public key -----BEGIN PUBLIC KEY-----"), None);
    }

    #[test]
    fn keys_are_scrubbed_everywhere() {
        let keys = vec!["sk-secret".to_owned()];
        assert_eq!(
            scrub(b"bad key sk-secret, sk-secret!", &keys),
            b"bad key [key removed by purple], [key removed by purple]!".to_vec()
        );
    }
}
