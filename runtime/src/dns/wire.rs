//! DNS messages (RFC 1035), as much as Purple's resolver needs: the header,
//! the question, and the answer records with name compression. Everything
//! comes from an untrusted container or network, so every read is bounds
//! checked and every failure is an error value, never a panic.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub const TYPE_A: u16 = 1;
pub const TYPE_AAAA: u16 = 28;
pub const CLASS_IN: u16 = 1;

pub const RCODE_FORMERR: u8 = 1;
pub const RCODE_SERVFAIL: u8 = 2;
pub const RCODE_NXDOMAIN: u8 = 3;
pub const RCODE_NOTIMP: u8 = 4;
pub const RCODE_REFUSED: u8 = 5;

const HEADER_LEN: usize = 12;
/// RFC 1035 2.3.4: a name is at most 255 bytes on the wire, a label 63.
const MAX_NAME: usize = 255;
const MAX_LABEL: usize = 63;
/// Compression pointers one name may follow; more means a loop.
const MAX_POINTERS: usize = 32;
const FLAG_QR: u16 = 0x8000;
const FLAG_TC: u16 = 0x0200;
const FLAG_RD: u16 = 0x0100;
const FLAG_RA: u16 = 0x0080;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("DNS message truncated")]
    Short,
    #[error("DNS name compression loop or pointer forward")]
    BadPointer,
    #[error("DNS name too long")]
    NameTooLong,
    #[error("DNS label type {0:#x} not supported")]
    LabelType(u8),
    #[error("DNS label with a byte that is not a hostname character")]
    LabelByte,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub id: u16,
    pub flags: u16,
    pub qdcount: u16,
    pub ancount: u16,
    pub nscount: u16,
    pub arcount: u16,
}

impl Header {
    pub fn is_response(&self) -> bool {
        self.flags & FLAG_QR != 0
    }

    pub fn truncated(&self) -> bool {
        self.flags & FLAG_TC != 0
    }

    /// 0 is a standard query.
    pub fn opcode(&self) -> u8 {
        ((self.flags >> 11) & 0xf) as u8
    }

    pub fn rcode(&self) -> u8 {
        (self.flags & 0xf) as u8
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    /// Labels joined with dots, case as sent, no trailing dot ("" is the root).
    pub name: String,
    pub qtype: u16,
    pub qclass: u16,
}

/// An answer record; only A and AAAA data are decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub name: String,
    pub rtype: u16,
    pub ttl: u32,
    pub addr: Option<IpAddr>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub header: Header,
    pub questions: Vec<Question>,
    pub answers: Vec<Answer>,
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let end = self.pos.checked_add(n).ok_or(WireError::Short)?;
        let s = self.buf.get(self.pos..end).ok_or(WireError::Short)?;
        self.pos = end;
        Ok(s)
    }

    fn u16(&mut self) -> Result<u16, WireError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, WireError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A possibly compressed name; pointers may only go backwards.
    fn name(&mut self) -> Result<String, WireError> {
        let mut out = String::new();
        let mut wire_len = 1;
        let mut pos = self.pos;
        let mut resume = None;
        let mut pointers = 0;
        loop {
            let len = *self.buf.get(pos).ok_or(WireError::Short)?;
            match len & 0xc0 {
                0x00 if len == 0 => {
                    self.pos = resume.unwrap_or(pos + 1);
                    return Ok(out);
                }
                0x00 => {
                    let len = usize::from(len);
                    let label = self
                        .buf
                        .get(pos + 1..pos + 1 + len)
                        .ok_or(WireError::Short)?;
                    wire_len += len + 1;
                    if wire_len > MAX_NAME {
                        return Err(WireError::NameTooLong);
                    }
                    if !label.iter().all(|&b| b.is_ascii_graphic() && b != b'.') {
                        return Err(WireError::LabelByte);
                    }
                    if !out.is_empty() {
                        out.push('.');
                    }
                    // Checked above: ASCII only.
                    out.extend(label.iter().map(|&b| char::from(b)));
                    pos += 1 + len;
                }
                0xc0 => {
                    let lo = *self.buf.get(pos + 1).ok_or(WireError::Short)?;
                    let target = usize::from(len & 0x3f) << 8 | usize::from(lo);
                    pointers += 1;
                    if target >= pos || pointers > MAX_POINTERS {
                        return Err(WireError::BadPointer);
                    }
                    resume.get_or_insert(pos + 2);
                    pos = target;
                }
                _ => return Err(WireError::LabelType(len)),
            }
        }
    }
}

/// Parses the header, the questions and the answer section (authority and
/// additional records are left alone: Purple does not need them).
pub fn parse(buf: &[u8]) -> Result<Message, WireError> {
    let mut r = Reader { buf, pos: 0 };
    let header = Header {
        id: r.u16()?,
        flags: r.u16()?,
        qdcount: r.u16()?,
        ancount: r.u16()?,
        nscount: r.u16()?,
        arcount: r.u16()?,
    };
    let mut questions = Vec::new();
    for _ in 0..header.qdcount {
        questions.push(Question {
            name: r.name()?,
            qtype: r.u16()?,
            qclass: r.u16()?,
        });
    }
    let mut answers = Vec::new();
    for _ in 0..header.ancount {
        let name = r.name()?;
        let rtype = r.u16()?;
        let class = r.u16()?;
        let ttl = r.u32()?;
        let len = usize::from(r.u16()?);
        let data = r.take(len)?;
        let addr = match (rtype, class, data.len()) {
            (TYPE_A, CLASS_IN, 4) => Some(IpAddr::V4(Ipv4Addr::new(
                data[0], data[1], data[2], data[3],
            ))),
            (TYPE_AAAA, CLASS_IN, 16) => {
                let mut a = [0u8; 16];
                a.copy_from_slice(data);
                Some(IpAddr::V6(Ipv6Addr::from(a)))
            }
            _ => None,
        };
        answers.push(Answer {
            name,
            rtype,
            ttl,
            addr,
        });
    }
    Ok(Message {
        header,
        questions,
        answers,
    })
}

fn push_name(out: &mut Vec<u8>, name: &str) {
    for label in name.split('.').filter(|l| !l.is_empty()) {
        let label = &label.as_bytes()[..label.len().min(MAX_LABEL)];
        out.push(label.len() as u8);
        out.extend_from_slice(label);
    }
    out.push(0);
}

fn push_header(out: &mut Vec<u8>, h: &Header) {
    for v in [h.id, h.flags, h.qdcount, h.ancount, h.nscount, h.arcount] {
        out.extend_from_slice(&v.to_be_bytes());
    }
}

/// A recursive query for `name` (`qtype` in class IN).
pub fn query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + name.len() + 6);
    push_header(
        &mut out,
        &Header {
            id,
            flags: FLAG_RD,
            qdcount: 1,
            ancount: 0,
            nscount: 0,
            arcount: 0,
        },
    );
    push_name(&mut out, name);
    out.extend_from_slice(&qtype.to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    out
}

/// An answer without records to `query` (its id, opcode, RD bit and
/// question echoed), with `rcode`.
pub fn error_reply(query: &Message, rcode: u8) -> Vec<u8> {
    let q = &query.header;
    let question = query.questions.first();
    let mut out = Vec::with_capacity(HEADER_LEN + 64);
    push_header(
        &mut out,
        &Header {
            id: q.id,
            flags: FLAG_QR
                | (q.flags & (0xf << 11))
                | (q.flags & FLAG_RD)
                | FLAG_RA
                | u16::from(rcode & 0xf),
            qdcount: u16::from(question.is_some()),
            ancount: 0,
            nscount: 0,
            arcount: 0,
        },
    );
    if let Some(question) = question {
        push_name(&mut out, &question.name);
        out.extend_from_slice(&question.qtype.to_be_bytes());
        out.extend_from_slice(&question.qclass.to_be_bytes());
    }
    out
}

/// Replaces a message's id in place (a forwarded query gets a fresh one, its
/// answer the client's again). Messages shorter than a header are left alone.
pub fn set_id(msg: &mut [u8], id: u16) {
    if let Some(b) = msg.get_mut(..2) {
        b.copy_from_slice(&id.to_be_bytes());
    }
}

/// `qtype` as people write it.
pub fn type_name(qtype: u16) -> String {
    match qtype {
        TYPE_A => "A".into(),
        2 => "NS".into(),
        5 => "CNAME".into(),
        6 => "SOA".into(),
        12 => "PTR".into(),
        15 => "MX".into(),
        16 => "TXT".into(),
        TYPE_AAAA => "AAAA".into(),
        33 => "SRV".into(),
        65 => "HTTPS".into(),
        255 => "ANY".into(),
        n => format!("TYPE{n}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// An answer to `query(7, "api.example.com", A)` with a CNAME and two A
    /// records, names compressed against the question.
    fn sample_answer() -> Vec<u8> {
        let mut m = query(7, "api.example.com", TYPE_A);
        m[2] |= 0x81; // QR, RD
        m[3] = 0x80; // RA
        m[7] = 3; // ancount
                  // api.example.com CNAME cdn.example.com (pointer to offset 12)
        m.extend_from_slice(&[0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 60, 0, 6]);
        m.extend_from_slice(&[3, b'c', b'd', b'n', 0xc0, 16]); // cdn + "example.com" at 16
        let cdn = 12 + 17 + 4 + 12; // offset of the CNAME's data
        for (last, ttl) in [(1u8, 30u8), (2, 20)] {
            m.extend_from_slice(&[0xc0, cdn as u8, 0, 1, 0, 1, 0, 0, 0, ttl, 0, 4]);
            m.extend_from_slice(&[10, 99, 0, last]);
        }
        m
    }

    #[test]
    fn parses_an_answer_with_compression() {
        let m = parse(&sample_answer()).unwrap();
        assert!(m.header.is_response());
        assert_eq!(m.header.id, 7);
        assert_eq!(m.questions[0].name, "api.example.com");
        assert_eq!(m.answers.len(), 3);
        assert_eq!(m.answers[0].rtype, 5);
        assert_eq!(m.answers[1].name, "cdn.example.com");
        let addrs: Vec<_> = m.answers.iter().filter_map(|a| a.addr).collect();
        assert_eq!(
            addrs,
            [
                "10.99.0.1".parse::<IpAddr>().unwrap(),
                "10.99.0.2".parse().unwrap()
            ]
        );
        assert_eq!(m.answers[2].ttl, 20);
    }

    #[test]
    fn query_round_trips() {
        let q = parse(&query(0xbeef, "Allowed.Test.", TYPE_AAAA)).unwrap();
        assert_eq!(q.header.id, 0xbeef);
        assert!(!q.header.is_response());
        assert_eq!(q.header.opcode(), 0);
        assert_eq!(
            q.questions,
            [Question {
                name: "Allowed.Test".into(),
                qtype: TYPE_AAAA,
                qclass: CLASS_IN
            }]
        );
    }

    #[test]
    fn error_reply_echoes_the_question() {
        let q = parse(&query(42, "evil.test", TYPE_A)).unwrap();
        let r = parse(&error_reply(&q, RCODE_NXDOMAIN)).unwrap();
        assert!(r.header.is_response());
        assert_eq!((r.header.id, r.header.rcode()), (42, RCODE_NXDOMAIN));
        assert_eq!(r.questions, q.questions);
        assert!(r.answers.is_empty());
    }

    #[test]
    fn hostile_names_are_refused() {
        let mut m = query(1, "a.b", TYPE_A);
        // A pointer to itself.
        m.truncate(HEADER_LEN);
        m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
        assert_eq!(parse(&m), Err(WireError::BadPointer));
        // A pointer forward.
        let mut m = query(1, "a.b", TYPE_A);
        m.truncate(HEADER_LEN);
        m.extend_from_slice(&[0xc0, 40, 0, 1, 0, 1]);
        assert_eq!(parse(&m), Err(WireError::BadPointer));
        // A label with a dot in it would read as another name.
        let mut m = query(1, "x", TYPE_A);
        m.truncate(HEADER_LEN);
        m.extend_from_slice(&[3, b'a', b'.', b'b', 0, 0, 1, 0, 1]);
        assert_eq!(parse(&m), Err(WireError::LabelByte));
        // Extended label types.
        let mut m = query(1, "x", TYPE_A);
        m[HEADER_LEN] = 0x41;
        assert_eq!(parse(&m), Err(WireError::LabelType(0x41)));
        // Over 255 bytes through a chain of labels.
        let long = vec!["abcdefghij"; 30].join(".");
        assert_eq!(parse(&query(1, &long, TYPE_A)), Err(WireError::NameTooLong));
        // Counts that promise more than is there.
        let mut m = query(1, "a", TYPE_A);
        m[7] = 1;
        assert_eq!(parse(&m), Err(WireError::Short));
        assert_eq!(parse(&[0; 5]), Err(WireError::Short));
    }

    #[test]
    fn set_id_leaves_short_buffers_alone() {
        let mut short = [1u8];
        set_id(&mut short, 9);
        assert_eq!(short, [1]);
        let mut m = query(1, "a", TYPE_A);
        set_id(&mut m, 0x1234);
        assert_eq!(parse(&m).unwrap().header.id, 0x1234);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = parse(&bytes);
        }

        #[test]
        fn mutated_answers_never_panic(
            edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
            cut in any::<usize>(),
        ) {
            let mut m = sample_answer();
            for (at, b) in edits {
                let i = at % m.len();
                m[i] = b;
            }
            m.truncate(cut % (m.len() + 1));
            if let Ok(msg) = parse(&m) {
                // Whatever parsed can be answered.
                let _ = parse(&error_reply(&msg, RCODE_REFUSED)).unwrap();
            }
        }

        #[test]
        fn hostnames_round_trip(labels in proptest::collection::vec("[a-zA-Z0-9-]{1,20}", 1..6), qtype in any::<u16>()) {
            let name = labels.join(".");
            let q = parse(&query(3, &name, qtype)).unwrap();
            prop_assert_eq!(&q.questions[0].name, &name);
            prop_assert_eq!(q.questions[0].qtype, qtype);
        }
    }
}
