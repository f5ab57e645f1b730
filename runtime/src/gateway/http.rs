//! The little of HTTP/1.1 the gateway speaks: message heads (parsed by
//! httparse, with limits), bodies by `Content-Length` or chunked, and chunked
//! writing. Everything the sandbox sends is hostile: sizes are capped and a
//! malformed message ends the connection.

use std::io::{self, BufRead, Read, Write};

/// The largest message head accepted.
pub const MAX_HEAD: usize = 64 << 10;
/// The largest request body accepted (a prompt). The gateway's memory is
/// the supervisor's, outside the container's cgroup: at most
/// `MAX_CONNECTIONS` of these and of the answers below are held at once.
pub const MAX_REQUEST_BODY: usize = 8 << 20;
/// The largest buffered (non-streamed) response body.
pub const MAX_RESPONSE_BODY: usize = 16 << 20;
const MAX_HEADERS: usize = 128;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("malformed HTTP message: {0}")]
    Malformed(String),
    #[error("message larger than {0} bytes")]
    TooLarge(usize),
    #[error("the connection closed before an answer")]
    Closed,
}

/// A parsed message head: a request's method and target, or a response's
/// status, and the headers in order.
#[derive(Debug, Default)]
pub struct Head {
    pub method: String,
    pub target: String,
    pub status: u16,
    pub headers: Vec<(String, String)>,
}

impl Head {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether a header holds `token` in its comma-separated list.
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    pub fn body_kind(&self) -> Result<BodyKind, HttpError> {
        if self.has_token("transfer-encoding", "chunked") {
            return Ok(BodyKind::Chunked);
        }
        if self.header("transfer-encoding").is_some() {
            return Err(HttpError::Malformed("unsupported transfer-encoding".into()));
        }
        let lengths: Vec<_> = self
            .headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .collect();
        match lengths.as_slice() {
            [] => Ok(BodyKind::None),
            [(_, v)] => v
                .trim()
                .parse()
                .map(BodyKind::Length)
                .map_err(|_| HttpError::Malformed(format!("content-length {v:?}"))),
            _ => Err(HttpError::Malformed(
                "several content-length headers".into(),
            )),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    None,
    Length(u64),
    Chunked,
}

/// Reads a head up to its blank line; `Ok(None)` on a clean end of stream
/// before the first byte (a keep-alive connection closed).
fn read_head_bytes(r: &mut impl BufRead) -> Result<Option<Vec<u8>>, HttpError> {
    let mut buf = Vec::new();
    loop {
        let before = buf.len();
        let n = r
            .by_ref()
            .take((MAX_HEAD + 1 - buf.len()) as u64)
            .read_until(b'\n', &mut buf)?;
        if n == 0 {
            return match before {
                0 => Ok(None),
                _ => Err(HttpError::Malformed("stream ended inside the head".into())),
            };
        }
        if buf.len() > MAX_HEAD {
            return Err(HttpError::TooLarge(MAX_HEAD));
        }
        if buf.ends_with(b"\r\n\r\n") || buf.ends_with(b"\n\n") || buf == b"\r\n" {
            if buf == b"\r\n" {
                // A stray CRLF between requests (RFC 9112 §2.2).
                buf.clear();
                continue;
            }
            return Ok(Some(buf));
        }
    }
}

fn headers_of(raw: &[httparse::Header]) -> Result<Vec<(String, String)>, HttpError> {
    raw.iter()
        .map(|h| {
            let v = std::str::from_utf8(h.value)
                .map_err(|_| HttpError::Malformed(format!("header {} is not text", h.name)))?;
            Ok((h.name.to_owned(), v.to_owned()))
        })
        .collect()
}

pub fn read_request(r: &mut impl BufRead) -> Result<Option<Head>, HttpError> {
    let Some(bytes) = read_head_bytes(r)? else {
        return Ok(None);
    };
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(&bytes) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(HttpError::Malformed("partial head".into())),
        Err(e) => return Err(HttpError::Malformed(e.to_string())),
    }
    if req.version != Some(1) {
        return Err(HttpError::Malformed("only HTTP/1.1 is served".into()));
    }
    Ok(Some(Head {
        method: req.method.unwrap_or_default().to_owned(),
        target: req.path.unwrap_or_default().to_owned(),
        status: 0,
        headers: headers_of(req.headers)?,
    }))
}

pub fn read_response(r: &mut impl BufRead) -> Result<Head, HttpError> {
    let bytes = read_head_bytes(r)?.ok_or(HttpError::Closed)?;
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    match resp.parse(&bytes) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(HttpError::Malformed("partial head".into())),
        Err(e) => return Err(HttpError::Malformed(e.to_string())),
    }
    Ok(Head {
        status: resp.code.unwrap_or_default(),
        headers: headers_of(resp.headers)?,
        ..Head::default()
    })
}

/// Reads a whole body of at most `max` bytes. `BodyKind::None` means no body
/// for requests; for responses the caller passes `until_eof`.
pub fn read_body(
    r: &mut impl BufRead,
    kind: BodyKind,
    max: usize,
    until_eof: bool,
) -> Result<Vec<u8>, HttpError> {
    let mut out = Vec::new();
    match kind {
        BodyKind::Length(n) => {
            if n > max as u64 {
                return Err(HttpError::TooLarge(max));
            }
            out.resize(n as usize, 0);
            r.read_exact(&mut out)?;
        }
        BodyKind::Chunked => {
            while let Some(chunk) = read_chunk(r, max - out.len())? {
                out.extend_from_slice(&chunk);
            }
        }
        BodyKind::None if until_eof => {
            r.by_ref().take(max as u64 + 1).read_to_end(&mut out)?;
            if out.len() > max {
                return Err(HttpError::TooLarge(max));
            }
        }
        BodyKind::None => {}
    }
    Ok(out)
}

/// One chunk of a chunked body (`None` after the last, trailers read).
pub fn read_chunk(r: &mut impl BufRead, max: usize) -> Result<Option<Vec<u8>>, HttpError> {
    let mut line = Vec::new();
    r.by_ref().take(1024).read_until(b'\n', &mut line)?;
    if !line.ends_with(b"\n") {
        return Err(HttpError::Malformed(
            "stream ended inside a chunk size".into(),
        ));
    }
    let text = std::str::from_utf8(&line).map_err(|_| HttpError::Malformed("chunk size".into()))?;
    let size_text = text.split(';').next().unwrap_or("").trim();
    let size = usize::from_str_radix(size_text, 16)
        .map_err(|_| HttpError::Malformed(format!("chunk size {size_text:?}")))?;
    if size == 0 {
        // Trailers, up to the blank line.
        loop {
            let mut t = Vec::new();
            r.by_ref().take(MAX_HEAD as u64).read_until(b'\n', &mut t)?;
            if t.is_empty() || t == b"\r\n" || t == b"\n" {
                return Ok(None);
            }
        }
    }
    if size > max {
        return Err(HttpError::TooLarge(max));
    }
    let mut chunk = vec![0; size];
    r.read_exact(&mut chunk)?;
    let mut crlf = [0; 2];
    r.read_exact(&mut crlf)?;
    if &crlf != b"\r\n" {
        return Err(HttpError::Malformed("chunk not followed by CRLF".into()));
    }
    Ok(Some(chunk))
}

pub fn write_chunk(w: &mut impl Write, data: &[u8]) -> io::Result<()> {
    if data.is_empty() {
        return Ok(());
    }
    write!(w, "{:x}\r\n", data.len())?;
    w.write_all(data)?;
    w.write_all(b"\r\n")?;
    w.flush()
}

pub fn end_chunks(w: &mut impl Write) -> io::Result<()> {
    w.write_all(b"0\r\n\r\n")?;
    w.flush()
}

/// Headers that belong to one hop and are never forwarded.
pub fn hop_by_hop(name: &str) -> bool {
    [
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authorization",
        "proxy-authenticate",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "expect",
        "content-length",
        "host",
    ]
    .iter()
    .any(|h| name.eq_ignore_ascii_case(h))
}

pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        413 => "Payload Too Large",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_read_back_and_limits_hold() {
        let mut r = io::Cursor::new(b"4\r\nWiki\r\n5;x=y\r\npedia\r\n0\r\nT: v\r\n\r\n".to_vec());
        assert_eq!(
            read_body(&mut r, BodyKind::Chunked, 100, false).unwrap(),
            b"Wikipedia"
        );
        let mut r = io::Cursor::new(b"ff\r\n".to_vec());
        assert!(matches!(
            read_body(&mut r, BodyKind::Chunked, 100, false),
            Err(HttpError::TooLarge(100))
        ));
        let mut r = io::Cursor::new(b"4\r\nWi".to_vec());
        assert!(read_body(&mut r, BodyKind::Chunked, 100, false).is_err());
    }

    #[test]
    fn request_heads_parse_and_smuggling_shapes_are_refused() {
        let mut r = io::Cursor::new(
            b"POST /openai/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"
                .to_vec(),
        );
        let h = read_request(&mut r).unwrap().unwrap();
        assert_eq!(
            (h.method.as_str(), h.target.as_str()),
            ("POST", "/openai/chat/completions")
        );
        assert_eq!(h.body_kind().unwrap(), BodyKind::Length(2));
        let two = Head {
            headers: vec![
                ("Content-Length".into(), "2".into()),
                ("content-length".into(), "3".into()),
            ],
            ..Head::default()
        };
        assert!(two.body_kind().is_err());
        let gzip = Head {
            headers: vec![("Transfer-Encoding".into(), "gzip".into())],
            ..Head::default()
        };
        assert!(gzip.body_kind().is_err());
        assert!(read_request(&mut io::Cursor::new(Vec::new()))
            .unwrap()
            .is_none());
        let mut big = b"GET / HTTP/1.1\r\nX: ".to_vec();
        big.extend(std::iter::repeat_n(b'a', MAX_HEAD));
        assert!(read_request(&mut io::Cursor::new(big)).is_err());
    }
}
