//! Sans-I/O pieces of the generator's HTTP client: request heads and response framing.
//!
//! The generator sends one request per connection at a time (no pipelining), so a
//! response is complete once its head and its framed body are in the buffer.

use std::fmt;

/// Headers parsed per response; InfluxDB and the relay send far fewer.
const MAX_HEADERS: usize = 32;

/// Where the response in a buffer stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// More bytes are needed.
    Partial,
    /// A 1xx interim answer of `len` bytes to skip; the real one follows.
    Interim { len: usize },
    /// A whole response of `len` bytes.
    Done {
        status: u16,
        len: usize,
        close: bool,
    },
    /// Body delimited by the end of the connection; complete at EOF.
    UntilEof { status: u16 },
}

/// A response the client cannot frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtoError(pub String);

impl fmt::Display for ProtoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad response: {}", self.0)
    }
}

/// Frames the response at the start of `buf`.
pub fn frame_response(buf: &[u8]) -> Result<Framing, ProtoError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let head_len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(Framing::Partial),
        Err(e) => return Err(ProtoError(e.to_string())),
    };
    let status = resp.code.unwrap_or(0);
    if (100..200).contains(&status) && status != 101 {
        return Ok(Framing::Interim { len: head_len });
    }
    let mut close = resp.version == Some(0);
    let mut content_length = None;
    let mut chunked = false;
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let v = std::str::from_utf8(h.value)
                .ok()
                .and_then(|s| s.trim().parse::<usize>().ok())
                .ok_or_else(|| ProtoError("unreadable Content-Length".into()))?;
            content_length = Some(v);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = contains_token(h.value, b"chunked");
        } else if h.name.eq_ignore_ascii_case("connection") {
            if contains_token(h.value, b"close") {
                close = true;
            } else if contains_token(h.value, b"keep-alive") {
                close = false;
            }
        }
    }
    if status == 204 || status == 304 {
        return Ok(Framing::Done {
            status,
            len: head_len,
            close,
        });
    }
    if chunked {
        return Ok(match chunked_len(&buf[head_len..])? {
            Some(body) => Framing::Done {
                status,
                len: head_len + body,
                close,
            },
            None => Framing::Partial,
        });
    }
    match content_length {
        Some(n) if buf.len() >= head_len + n => Ok(Framing::Done {
            status,
            len: head_len + n,
            close,
        }),
        Some(_) => Ok(Framing::Partial),
        None => Ok(Framing::UntilEof { status }),
    }
}

fn contains_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

/// Length of a complete chunked body at the start of `buf`, or `None` if incomplete.
pub fn chunked_len(buf: &[u8]) -> Result<Option<usize>, ProtoError> {
    let mut pos = 0;
    loop {
        let Some(eol) = find_crlf(&buf[pos..]) else {
            return Ok(None);
        };
        let line = &buf[pos..pos + eol];
        let size_part = line.split(|&b| b == b';').next().unwrap_or(line);
        let size =
            parse_hex(size_part.trim_ascii()).ok_or_else(|| ProtoError("bad chunk size".into()))?;
        pos += eol + 2;
        if size == 0 {
            // Trailers, if any, end with an empty line.
            loop {
                let Some(eol) = find_crlf(&buf[pos..]) else {
                    return Ok(None);
                };
                pos += eol + 2;
                if eol == 0 {
                    return Ok(Some(pos));
                }
            }
        }
        let end = pos
            .checked_add(size)
            .and_then(|e| e.checked_add(2))
            .ok_or_else(|| ProtoError("chunk size overflows".into()))?;
        if buf.len() < end {
            return Ok(None);
        }
        if &buf[end - 2..end] != b"\r\n" {
            return Err(ProtoError("chunk not followed by CRLF".into()));
        }
        pos = end;
    }
}

fn find_crlf(buf: &[u8]) -> Option<usize> {
    memchr::memmem::find(buf, b"\r\n")
}

/// Parses a hex chunk size (at most 15 digits, so it fits any usize we care about).
pub fn parse_hex(s: &[u8]) -> Option<usize> {
    if s.is_empty() || s.len() > 15 {
        return None;
    }
    let mut n = 0usize;
    for &c in s {
        let d = (c as char).to_digit(16)?;
        n = n * 16 + d as usize;
    }
    Some(n)
}

/// Everything in a write request's head except `Content-Length`.
#[derive(Debug, Clone)]
pub struct RequestTemplate {
    /// `POST /write?… HTTP/1.1\r\nHost: …\r\n…Content-Length: ` — the length follows.
    prefix: Vec<u8>,
}

impl RequestTemplate {
    pub fn new(path_and_query: &str, host: &str, gzip: bool) -> RequestTemplate {
        let mut prefix = format!(
            "POST {path_and_query} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: loadtest\r\n\
             Content-Type: text/plain; charset=utf-8\r\n"
        );
        if gzip {
            prefix.push_str("Content-Encoding: gzip\r\n");
        }
        prefix.push_str("Content-Length: ");
        RequestTemplate {
            prefix: prefix.into_bytes(),
        }
    }

    /// Writes the head for a body of `body_len` bytes into `out`.
    pub fn write_head(&self, out: &mut Vec<u8>, body_len: usize) {
        out.extend_from_slice(&self.prefix);
        crate::gen::push_u64(out, body_len as u64);
        out.extend_from_slice(b"\r\n\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_content_is_complete_after_the_head() {
        let r = b"HTTP/1.1 204 No Content\r\nX-Influxdb-Version: 1.6\r\n\r\nHTTP/1.1";
        assert_eq!(
            frame_response(r),
            Ok(Framing::Done {
                status: 204,
                len: r.len() - 8,
                close: false
            })
        );
    }

    #[test]
    fn content_length_body_must_be_whole() {
        let r = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 5\r\nConnection: close\r\n\r\nabc";
        assert_eq!(frame_response(r), Ok(Framing::Partial));
        let mut full = r.to_vec();
        full.extend_from_slice(b"de");
        assert_eq!(
            frame_response(&full),
            Ok(Framing::Done {
                status: 503,
                len: full.len(),
                close: true
            })
        );
    }

    #[test]
    fn chunked_bodies_and_interim_answers() {
        let r =
            b"HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
        assert_eq!(
            frame_response(r),
            Ok(Framing::Done {
                status: 400,
                len: r.len(),
                close: false
            })
        );
        assert_eq!(frame_response(&r[..r.len() - 2]), Ok(Framing::Partial));
        assert_eq!(
            frame_response(b"HTTP/1.1 100 Continue\r\n\r\n"),
            Ok(Framing::Interim { len: 25 })
        );
        assert_eq!(
            frame_response(b"HTTP/1.0 200 OK\r\n\r\nxyz"),
            Ok(Framing::UntilEof { status: 200 })
        );
        assert!(frame_response(b"garbage\r\n\r\n").is_err());
        assert!(chunked_len(b"zz\r\n").is_err());
    }

    #[test]
    fn request_head_carries_length_and_encoding() {
        let t = RequestTemplate::new("/write?db=x", "h:1", true);
        let mut out = Vec::new();
        t.write_head(&mut out, 42);
        let s = String::from_utf8(out).unwrap();
        assert!(s.starts_with("POST /write?db=x HTTP/1.1\r\nHost: h:1\r\n"));
        assert!(s.contains("Content-Encoding: gzip\r\n"));
        assert!(s.ends_with("Content-Length: 42\r\n\r\n"));
    }
}
