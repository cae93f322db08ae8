//! One sink connection: HTTP/1.1 requests read with blocking I/O and answered in order
//! (so pipelined requests work), keep-alive unless the client asks otherwise.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::Ordering;
use std::thread;
use std::time::Duration;

use flate2::read::MultiGzDecoder;

use super::apis::{self, Api};
use super::{lock, Behaviour, Shared};
use crate::client::parse_hex;
use crate::seq::{collect, Obs};

/// Largest request head accepted (InfluxDB's clients send a few hundred bytes).
const MAX_HEAD: usize = 64 * 1024;
/// Read buffer per connection: a whole head fits, bodies mostly go straight to `body`.
const READ_BUF: usize = MAX_HEAD + 16 * 1024;
/// Largest body accepted, on the wire and after gzip decoding: 256 MiB, ten times
/// InfluxDB's own limit, so the sink never is the one that rejects a test's load.
const MAX_BODY: usize = 256 << 20;
/// Longest chunk-size line, extensions included.
const MAX_CHUNK_LINE: usize = 1024;
const MAX_HEADERS: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    Get,
    Head,
    Post,
    Other,
}

/// The parts of a request head the sink acts on, copied out of the read buffer.
#[derive(Debug)]
struct Head {
    method: Method,
    path: String,
    query: String,
    keep_alive: bool,
    content_length: Option<usize>,
    chunked: bool,
    gzip: bool,
    expect_continue: bool,
    authorization: Option<String>,
}

impl Head {
    fn has_body(&self) -> bool {
        self.chunked || self.content_length.is_some_and(|n| n > 0)
    }
}

/// Why a connection ends early: a socket failure, or a request answered with an error
/// status and then closed.
#[derive(Debug)]
enum Reject {
    /// The socket failed or closed: nobody is left to answer, so the cause is dropped.
    Io,
    Status(u16, &'static str),
}

impl From<io::Error> for Reject {
    fn from(_: io::Error) -> Reject {
        Reject::Io
    }
}

/// Runs the connection until the client closes it, an error occurs or the sink goes down.
pub(super) fn serve(shared: &Shared, sock: TcpStream) {
    let mut c = Conn {
        sock,
        buf: vec![0; READ_BUF],
        start: 0,
        end: 0,
        body: Vec::new(),
        decoded: Vec::new(),
        obs: Vec::new(),
        out: Vec::with_capacity(512),
    };
    loop {
        match c.handle_one(shared) {
            Ok(true) => {}
            Ok(false) => return,
            Err(Reject::Io) => return,
            Err(Reject::Status(status, msg)) => {
                shared.counters.bad_requests.fetch_add(1, Ordering::Relaxed);
                let _ = c.respond_error(status, msg, false);
                return;
            }
        }
    }
}

struct Conn {
    sock: TcpStream,
    /// Bytes read but not consumed are `buf[start..end]`.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// The current request's body as received; reused across requests.
    body: Vec<u8>,
    /// The gunzipped body when the request was gzip; reused across requests.
    decoded: Vec<u8>,
    obs: Vec<Obs>,
    out: Vec<u8>,
}

impl Conn {
    /// Reads more bytes into `buf`; `Ok(0)` is EOF.
    fn fill(&mut self) -> io::Result<usize> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.buf.len() {
            if self.start == 0 {
                // Callers cap what they let accumulate below the buffer size.
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "read buffer full",
                ));
            }
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        loop {
            match self.sock.read(&mut self.buf[self.end..]) {
                Ok(n) => {
                    self.end += n;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn pending(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Handles one request; `Ok(false)` ends the connection quietly.
    fn handle_one(&mut self, shared: &Shared) -> Result<bool, Reject> {
        let Some(head) = self.read_head()? else {
            return Ok(false);
        };
        shared.counters.requests.fetch_add(1, Ordering::Relaxed);
        if shared.down.load(Ordering::Relaxed) {
            return Ok(false);
        }
        if head.expect_continue && head.has_body() {
            self.sock.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        }
        self.read_body(&head)?;
        let keep = head.keep_alive;
        if let Some(api) = Api::of_path(&head.path) {
            return self.write(shared, &head, api);
        }
        match (head.method, head.path.as_str()) {
            (Method::Get | Method::Head, "/ping") => {
                shared.counters.pings.fetch_add(1, Ordering::Relaxed);
                self.respond(204, "", b"", keep)?;
            }
            (Method::Get, "/stats") => {
                let json = shared.stats().to_json();
                self.respond(
                    200,
                    "Content-Type: application/json\r\n",
                    json.as_bytes(),
                    keep,
                )?;
            }
            (Method::Post, "/control") => match parse_control(&head.query) {
                Ok(Control::Set(b)) => {
                    *lock(&shared.behaviour) = b;
                    self.respond(204, "", b"", keep)?;
                }
                Ok(Control::Down(d)) => {
                    // Answer first: the accept loop cuts this connection with the rest.
                    self.respond(204, "", b"", keep)?;
                    shared.down.store(true, Ordering::Relaxed);
                    *lock(&shared.down_request) = Some(d);
                }
                Err(msg) => self.respond_error(400, &msg, keep)?,
            },
            (Method::Post, "/reset") => {
                shared.reset();
                self.respond(204, "", b"", keep)?;
            }
            (Method::Get | Method::Post, "/query") => {
                // Clients create their database before writing; pretend it worked.
                let json = br#"{"results":[{"statement_id":0}]}"#;
                self.respond(200, "Content-Type: application/json\r\n", json, keep)?;
            }
            _ => self.respond_error(404, "invalid endpoint", keep)?,
        }
        Ok(keep)
    }

    fn write(&mut self, shared: &Shared, head: &Head, api: Api) -> Result<bool, Reject> {
        let keep = head.keep_alive;
        let c = &shared.counters;
        if head.method != Method::Post {
            self.respond_error_with(405, "invalid write method", "Allow: POST\r\n", keep)?;
            return Ok(keep);
        }
        let target = match apis::check_write(
            api,
            &head.query,
            head.authorization.as_deref(),
            shared.token.as_deref(),
        ) {
            Ok(target) => target,
            Err((status, message)) => {
                if status == 401 {
                    c.unauthorized.fetch_add(1, Ordering::Relaxed);
                }
                let body = api.error_body(status, &message);
                self.respond(
                    status,
                    "Content-Type: application/json\r\n",
                    body.as_bytes(),
                    keep,
                )?;
                return Ok(keep);
            }
        };
        if head.gzip {
            self.decoded.clear();
            let limit = MAX_BODY as u64 + 1;
            let decoded = MultiGzDecoder::new(&self.body[..])
                .take(limit)
                .read_to_end(&mut self.decoded);
            if decoded.is_err() {
                self.respond_error(400, "unable to decode gzip body", keep)?;
                return Ok(keep);
            }
            if self.decoded.len() > MAX_BODY {
                self.respond_error(413, "request entity too large", keep)?;
                return Ok(keep);
            }
        }
        let behaviour: Behaviour = shared.behaviour();
        if !behaviour.delay.is_zero() {
            thread::sleep(behaviour.delay);
        }
        if shared.down.load(Ordering::Relaxed) {
            return Ok(false);
        }
        c.wire_bytes
            .fetch_add(self.body.len() as u64, Ordering::Relaxed);
        let payload: &[u8] = if head.gzip { &self.decoded } else { &self.body };
        let (lines, untagged) = collect(payload, &mut self.obs);
        if let Some(status) = behaviour.fail {
            c.rejected_writes.fetch_add(1, Ordering::Relaxed);
            c.rejected_lines.fetch_add(lines, Ordering::Relaxed);
            self.respond_error(status, "sink is failing on purpose", keep)?;
            return Ok(keep);
        }
        // Counted before the answer goes out, so whoever saw the 204 also sees the lines.
        lock(&shared.tracker).apply(payload, &self.obs);
        c.lines.fetch_add(lines, Ordering::Relaxed);
        *lock(&shared.targets).entry(target).or_default() += lines;
        c.untagged_lines.fetch_add(untagged, Ordering::Relaxed);
        c.bytes.fetch_add(payload.len() as u64, Ordering::Relaxed);
        c.writes.fetch_add(1, Ordering::Relaxed);
        self.respond(204, "", b"", keep)?;
        Ok(keep)
    }

    /// Reads and parses the next request head; `None` on a clean EOF between requests.
    fn read_head(&mut self) -> Result<Option<Head>, Reject> {
        loop {
            if self.start < self.end {
                let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
                let mut req = httparse::Request::new(&mut headers);
                match req.parse(self.pending()) {
                    Ok(httparse::Status::Complete(n)) => {
                        let head = parse_head(&req)?;
                        self.start += n;
                        return Ok(Some(head));
                    }
                    Ok(httparse::Status::Partial) => {
                        if self.end - self.start > MAX_HEAD {
                            return Err(Reject::Status(431, "request header too large"));
                        }
                    }
                    Err(httparse::Error::TooManyHeaders) => {
                        return Err(Reject::Status(431, "too many headers"));
                    }
                    Err(_) => return Err(Reject::Status(400, "malformed request")),
                }
            }
            if self.fill()? == 0 {
                return Ok(None);
            }
        }
    }

    /// Reads the body framed by `head` into `self.body`.
    fn read_body(&mut self, head: &Head) -> Result<(), Reject> {
        self.body.clear();
        if head.chunked {
            return self.read_chunked();
        }
        let n = head.content_length.unwrap_or(0);
        if n > MAX_BODY {
            return Err(Reject::Status(413, "request entity too large"));
        }
        self.read_exact_into_body(n)
    }

    fn read_exact_into_body(&mut self, n: usize) -> Result<(), Reject> {
        let from_buf = n.min(self.end - self.start);
        self.body
            .extend_from_slice(&self.buf[self.start..self.start + from_buf]);
        self.start += from_buf;
        let rest = n - from_buf;
        if rest > 0 {
            let old = self.body.len();
            self.body.resize(old + rest, 0);
            self.sock.read_exact(&mut self.body[old..])?;
        }
        Ok(())
    }

    fn read_chunked(&mut self) -> Result<(), Reject> {
        loop {
            let line = self.read_crlf_line()?;
            let size_part = line.split(|&b| b == b';').next().unwrap_or(&line);
            let size =
                parse_hex(size_part.trim_ascii()).ok_or(Reject::Status(400, "bad chunk size"))?;
            if size == 0 {
                // Trailer fields end with an empty line.
                while !self.read_crlf_line()?.is_empty() {}
                return Ok(());
            }
            if self.body.len() + size > MAX_BODY {
                return Err(Reject::Status(413, "request entity too large"));
            }
            self.read_exact_into_body(size)?;
            if !self.read_crlf_line()?.is_empty() {
                return Err(Reject::Status(400, "chunk data not followed by CRLF"));
            }
        }
    }

    /// The next CRLF-terminated line, without its CRLF.
    fn read_crlf_line(&mut self) -> Result<Vec<u8>, Reject> {
        loop {
            if let Some(i) = memchr::memmem::find(self.pending(), b"\r\n") {
                let line = self.buf[self.start..self.start + i].to_vec();
                self.start += i + 2;
                return Ok(line);
            }
            if self.end - self.start > MAX_CHUNK_LINE {
                return Err(Reject::Status(400, "chunk line too long"));
            }
            if self.fill()? == 0 {
                return Err(Reject::Io);
            }
        }
    }

    fn respond(&mut self, status: u16, headers: &str, body: &[u8], keep: bool) -> io::Result<()> {
        self.out.clear();
        self.out.extend_from_slice(b"HTTP/1.1 ");
        crate::gen::push_u64(&mut self.out, u64::from(status));
        self.out.push(b' ');
        self.out.extend_from_slice(reason(status).as_bytes());
        self.out
            .extend_from_slice(b"\r\nX-Influxdb-Version: sink\r\n");
        self.out.extend_from_slice(headers.as_bytes());
        if !keep {
            self.out.extend_from_slice(b"Connection: close\r\n");
        }
        if status != 204 {
            self.out.extend_from_slice(b"Content-Length: ");
            crate::gen::push_u64(&mut self.out, body.len() as u64);
            self.out.extend_from_slice(b"\r\n");
        }
        self.out.extend_from_slice(b"\r\n");
        self.out.extend_from_slice(body);
        self.sock.write_all(&self.out)
    }

    fn respond_error(&mut self, status: u16, msg: &str, keep: bool) -> io::Result<()> {
        self.respond_error_with(status, msg, "", keep)
    }

    /// InfluxDB's error shape: JSON body plus the message in `X-Influxdb-Error`.
    fn respond_error_with(
        &mut self,
        status: u16,
        msg: &str,
        extra: &str,
        keep: bool,
    ) -> io::Result<()> {
        let mut body = String::from("{\"error\":");
        crate::json::push_str(&mut body, msg);
        body.push('}');
        // The message may echo a client's query text: keep it to one header line.
        let clean: String = msg.chars().filter(|c| !c.is_control()).collect();
        let headers =
            format!("Content-Type: application/json\r\nX-Influxdb-Error: {clean}\r\n{extra}");
        self.respond(status, &headers, body.as_bytes(), keep)
    }
}

fn parse_head(req: &httparse::Request<'_, '_>) -> Result<Head, Reject> {
    let method = match req.method {
        Some("GET") => Method::Get,
        Some("HEAD") => Method::Head,
        Some("POST") => Method::Post,
        _ => Method::Other,
    };
    let target = req.path.unwrap_or("/");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut head = Head {
        method,
        path: path.to_string(),
        query: query.to_string(),
        keep_alive: req.version == Some(1),
        content_length: None,
        chunked: false,
        gzip: false,
        expect_continue: false,
        authorization: None,
    };
    for h in req.headers.iter() {
        let v = h.value;
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.trim().parse::<usize>().ok())
                .ok_or(Reject::Status(400, "bad Content-Length"))?;
            head.content_length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            head.chunked = has_token(v, b"chunked");
        } else if h.name.eq_ignore_ascii_case("authorization") {
            head.authorization = Some(String::from_utf8_lossy(v).into_owned());
        } else if h.name.eq_ignore_ascii_case("content-encoding") {
            head.gzip = has_token(v, b"gzip");
        } else if h.name.eq_ignore_ascii_case("connection") {
            if has_token(v, b"close") {
                head.keep_alive = false;
            } else if has_token(v, b"keep-alive") {
                head.keep_alive = true;
            }
        } else if h.name.eq_ignore_ascii_case("expect") {
            head.expect_continue = has_token(v, b"100-continue");
        }
    }
    Ok(head)
}

fn has_token(v: &[u8], token: &[u8]) -> bool {
    v.split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Request Entity Too Large",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

/// The value of `key` in a query string (no percent-decoding: the sink's own
/// parameters never need it).
pub(super) fn query_param<'a>(query: &'a str, key: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

/// What a `POST /control` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Control {
    Set(Behaviour),
    Down(Duration),
}

/// Default status of `mode=fail` without `status=`.
const DEFAULT_FAIL_STATUS: u16 = 503;
/// Default outage of `mode=down` without `secs=`.
const DEFAULT_DOWN: Duration = Duration::from_secs(5);

pub(super) fn parse_control(query: &str) -> Result<Control, String> {
    let num = |key: &str| -> Result<Option<u64>, String> {
        match query_param(query, key) {
            None => Ok(None),
            Some(v) => v
                .parse::<u64>()
                .map(Some)
                .map_err(|_| format!("{key}: `{v}` is not a whole number")),
        }
    };
    match query_param(query, "mode") {
        Some("ok") => Ok(Control::Set(Behaviour::default())),
        Some("fail") => {
            let status = num("status")?.unwrap_or(u64::from(DEFAULT_FAIL_STATUS));
            if !(200..=599).contains(&status) {
                return Err(format!("status: {status} is not an HTTP status"));
            }
            Ok(Control::Set(Behaviour {
                fail: Some(status as u16),
                delay: Duration::ZERO,
            }))
        }
        Some("delay") => {
            let ms = num("ms")?.ok_or("mode=delay needs ms=N")?;
            Ok(Control::Set(Behaviour {
                fail: None,
                delay: Duration::from_millis(ms),
            }))
        }
        Some("down") => {
            let d = match (num("secs")?, num("ms")?) {
                (Some(s), _) => Duration::from_secs(s),
                (None, Some(ms)) => Duration::from_millis(ms),
                (None, None) => DEFAULT_DOWN,
            };
            Ok(Control::Down(d))
        }
        Some(other) => Err(format!("mode `{other}` is not ok, fail, delay or down")),
        None => Err("missing mode=ok|fail|delay|down".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_modes() {
        assert_eq!(
            parse_control("mode=ok"),
            Ok(Control::Set(Behaviour::default()))
        );
        assert_eq!(
            parse_control("mode=fail&status=500"),
            Ok(Control::Set(Behaviour {
                fail: Some(500),
                delay: Duration::ZERO
            }))
        );
        assert_eq!(
            parse_control("mode=fail"),
            Ok(Control::Set(Behaviour {
                fail: Some(503),
                delay: Duration::ZERO
            }))
        );
        assert_eq!(
            parse_control("mode=delay&ms=50"),
            Ok(Control::Set(Behaviour {
                fail: None,
                delay: Duration::from_millis(50)
            }))
        );
        assert_eq!(
            parse_control("mode=down&secs=5"),
            Ok(Control::Down(Duration::from_secs(5)))
        );
        assert_eq!(
            parse_control("mode=down&ms=300"),
            Ok(Control::Down(Duration::from_millis(300)))
        );
        assert!(parse_control("mode=delay").is_err());
        assert!(parse_control("mode=fail&status=42").is_err());
        assert!(parse_control("mode=sideways").is_err());
        assert!(parse_control("").is_err());
    }

    #[test]
    fn query_params() {
        assert_eq!(query_param("db=x&precision=s", "precision"), Some("s"));
        assert_eq!(query_param("db=&rp=a", "db"), Some(""));
        assert_eq!(query_param("flag&db=x", "flag"), Some(""));
        assert_eq!(query_param("db=x", "rp"), None);
    }
}
