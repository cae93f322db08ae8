//! A tiny blocking HTTP/1.1 client and response parser.

use super::*;

/// One HTTP response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// In the order received, names as sent.
    pub headers: Vec<(String, String)>,
    /// Decoded (chunked framing removed), not decompressed.
    pub body: Vec<u8>,
}

impl Response {
    /// First header with this name, case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn body_str(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Panics unless `resp` carries the headers InfluxDB 1.x puts on every answer, with the
/// relay's values: `X-Influxdb-Build: OSS` and an `X-Influxdb-Version` that reads as a
/// 1.x version (`1.` first) and names the relay.
pub fn assert_identity(resp: &Response) {
    assert_eq!(
        resp.header("X-Influxdb-Build"),
        Some("OSS"),
        "{} {:?}",
        resp.status,
        resp.headers
    );
    let version = resp.header("X-Influxdb-Version").unwrap_or_default();
    assert!(
        version.starts_with("1.") && version.contains(RELAY_VERSION_MARK),
        "{} {:?}",
        resp.status,
        resp.headers
    );
}

/// Percent-encode everything but RFC 3986 unreserved characters, for query values.
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `POST /write?db=<db>` with `body` to the relay at `addr`, which must answer 204;
/// usable from threads that hold only the address.
pub fn write_ok(addr: SocketAddr, db: &str, body: &[u8]) {
    let r = http_request(addr, "POST", &format!("/write?db={db}"), &[], body);
    assert_eq!(r.status, 204, "{}", r.body_str());
}

/// One request on a fresh connection; panics on connection or protocol errors (use
/// [`try_http_request`] to observe them).
///
/// Adds `Host`, `Content-Length` (unless `headers` has `Content-Length` or
/// `Transfer-Encoding`: then `body` goes as given) and `Connection: close` unless given.
pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path_and_query: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    try_http_request(addr, method, path_and_query, headers, body, HTTP_TIMEOUT)
        .unwrap_or_else(|e| panic!("{method} http://{addr}{path_and_query}: {e}"))
}

/// [`http_request`] with an explicit timeout (connect, and each read and write), returning
/// errors. Interim 1xx answers are skipped.
pub fn try_http_request(
    addr: SocketAddr,
    method: &str,
    path_and_query: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> io::Result<Response> {
    let has = |name: &str| headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
    let mut request = format!("{method} {path_and_query} HTTP/1.1\r\n").into_bytes();
    if !has("host") {
        request.extend_from_slice(format!("Host: {addr}\r\n").as_bytes());
    }
    for (name, value) in headers {
        request.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    let framed = has("content-length") || has("transfer-encoding");
    if !framed && (!body.is_empty() || matches!(method, "POST" | "PUT" | "PATCH")) {
        request.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
    }
    if !has("connection") {
        request.extend_from_slice(b"Connection: close\r\n");
    }
    request.extend_from_slice(b"\r\n");
    request.extend_from_slice(body);

    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.set_nodelay(true)?;
    // A server may answer (413, 400) and close before reading the whole body; what it
    // said is still worth reading, so a write error only counts if no answer follows.
    let write_result = stream.write_all(&request);
    let head_only = method.eq_ignore_ascii_case("HEAD");
    match read_response(&mut stream, head_only) {
        Ok(resp) => Ok(resp),
        Err(read_err) => Err(write_result.err().unwrap_or(read_err)),
    }
}

pub(crate) fn read_response(stream: &mut TcpStream, head_only: bool) -> io::Result<Response> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let n = match stream.read(&mut chunk) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        buf.extend_from_slice(&chunk[..n]);
        let eof = n == 0;
        loop {
            match parse_response(&buf, eof, head_only) {
                Ok(Some((resp, used))) if (100..200).contains(&resp.status) => {
                    buf.drain(..used);
                }
                Ok(Some((resp, _))) => return Ok(resp),
                Ok(None) if eof => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "connection closed before a complete response",
                    ))
                }
                Ok(None) => break,
                Err(msg) => return Err(io::Error::new(io::ErrorKind::InvalidData, msg)),
            }
        }
    }
}

/// Parse one response at the start of `buf`: `Ok(None)` if more bytes are needed,
/// else the response and how many bytes it used. `eof` says no more bytes will come
/// (ends a body framed by connection close); `head_only` that it answers a HEAD.
pub fn parse_response(
    buf: &[u8],
    eof: bool,
    head_only: bool,
) -> Result<Option<(Response, usize)>, String> {
    let mut header_buf = [httparse::EMPTY_HEADER; 128];
    let mut head = httparse::Response::new(&mut header_buf);
    let head_len = match head.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if eof && !buf.is_empty() => {
            return Err("connection closed inside a response head".into())
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(format!("bad response head: {e}")),
    };
    let status = head.code.ok_or("response head without a status")?;
    let headers: Vec<(String, String)> = head
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_string(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect();
    let mut resp = Response {
        status,
        headers,
        body: Vec::new(),
    };
    let rest = &buf[head_len..];

    if head_only || (100..200).contains(&status) || status == 204 || status == 304 {
        return Ok(Some((resp, head_len)));
    }
    let chunked = resp
        .header("Transfer-Encoding")
        .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"));
    if chunked {
        return match decode_chunked(rest)? {
            Some((body, used)) => {
                resp.body = body;
                Ok(Some((resp, head_len + used)))
            }
            None if eof => Err("connection closed inside a chunked body".into()),
            None => Ok(None),
        };
    }
    if let Some(len) = resp.header("Content-Length") {
        let len: usize = len
            .trim()
            .parse()
            .map_err(|_| format!("bad Content-Length {len:?}"))?;
        if rest.len() < len {
            return if eof {
                Err("connection closed inside the body".into())
            } else {
                Ok(None)
            };
        }
        resp.body = rest[..len].to_vec();
        return Ok(Some((resp, head_len + len)));
    }
    // No framing: the body runs to the end of the connection.
    if !eof {
        return Ok(None);
    }
    resp.body = rest.to_vec();
    Ok(Some((resp, buf.len())))
}

/// Decode a chunked body at the start of `buf`: the body and the bytes used, through the
/// trailer section, or `None` if incomplete.
pub(crate) fn decode_chunked(buf: &[u8]) -> Result<Option<(Vec<u8>, usize)>, String> {
    let mut body = Vec::new();
    let mut pos = 0;
    loop {
        let (size_len, size) = match httparse::parse_chunk_size(&buf[pos..]) {
            Ok(httparse::Status::Complete(found)) => found,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(_) => return Err(format!("bad chunk size at byte {pos}")),
        };
        pos += size_len;
        if size == 0 {
            // Trailer fields, then an empty line.
            loop {
                let Some(end) = find_crlf(&buf[pos..]) else {
                    return Ok(None);
                };
                pos += end + 2;
                if end == 0 {
                    return Ok(Some((body, pos)));
                }
            }
        }
        let size = usize::try_from(size).map_err(|_| "chunk size overflows usize")?;
        let Some(end) = pos.checked_add(size).filter(|e| e.checked_add(2).is_some()) else {
            return Err("chunk size overflows usize".into());
        };
        if buf.len() < end + 2 {
            return Ok(None);
        }
        if &buf[end..end + 2] != b"\r\n" {
            return Err(format!("chunk data not followed by CRLF at byte {end}"));
        }
        body.extend_from_slice(&buf[pos..end]);
        pos = end + 2;
    }
}

pub(crate) fn find_crlf(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\r\n")
}

/// Every response in a byte stream read from one connection (pipelining tests). Panics
/// if anything is left that is not a complete response. A response framed by connection
/// close must be last; answers to HEAD are not told apart (use `head_only` answers with
/// [`parse_response`] directly).
pub fn parse_responses(mut bytes: &[u8]) -> Vec<Response> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        match parse_response(bytes, true, false) {
            Ok(Some((resp, used))) => {
                out.push(resp);
                bytes = &bytes[used..];
            }
            Ok(None) => unreachable!("parse_response with eof is never incomplete"),
            Err(e) => panic!(
                "after {} responses: {e}; rest: {:?}",
                out.len(),
                String::from_utf8_lossy(bytes)
            ),
        }
    }
    out
}

/// Send `bytes` as they are on a fresh connection, then read until the server closes or
/// `read_until` has passed since the write. Write errors are ignored: the server may
/// answer and close before reading everything, and its answer is what the test checks.
pub fn raw_exchange(addr: SocketAddr, bytes: &[u8], read_until: Duration) -> Vec<u8> {
    let mut stream = TcpStream::connect_timeout(&addr, HTTP_TIMEOUT)
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(HTTP_TIMEOUT));
    let _ = stream.write_all(bytes);
    let deadline = Instant::now() + read_until;
    let mut out = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            break;
        }
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // Timeout or reset: the test judges what arrived.
            Err(_) => break,
        }
    }
    out
}
