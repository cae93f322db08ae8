//! A blocking HTTP/1.1 client for one backend connection, owned by one worker thread.
//!
//! Workers are plain threads, so blocking I/O with socket timeouts is the simple and
//! fast choice here: the event loops never wait on it. The connection is kept alive
//! between writes and re-opened after any error. `https://` locations speak TLS over
//! the same blocking socket (see [`crate::tls::ClientTls`]); everything above the byte
//! stream is the same for both.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::config::Location;
use crate::tls::{ClientStream, ClientTls};

/// Largest response head or body we accept from a backend; InfluxDB's answers to
/// writes are small JSON documents.
const MAX_RESPONSE: usize = 1 << 20;

/// A backend answer.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Why a write did not get an answer.
#[derive(Debug)]
pub enum SendError {
    Connect(io::Error),
    Io(io::Error),
    Timeout,
    BadResponse(&'static str),
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Connect(e) => write!(f, "cannot connect: {e}"),
            SendError::Io(e) => write!(f, "connection error: {e}"),
            SendError::Timeout => f.write_str("timed out"),
            SendError::BadResponse(what) => write!(f, "bad response: {what}"),
        }
    }
}

fn io_error(e: io::Error) -> SendError {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => SendError::Timeout,
        _ => SendError::Io(e),
    }
}

/// One backend connection, blocking, with the socket's timeouts.
enum Stream {
    Plain(TcpStream),
    Tls(Box<ClientStream>),
}

impl Stream {
    fn socket(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => s.get_ref(),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write_vectored(bufs),
            Stream::Tls(s) => s.write_vectored(bufs),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(_) => Ok(()),
            Stream::Tls(s) => s.flush(),
        }
    }
}

pub struct Client {
    location: Location,
    timeout: Duration,
    /// Set for `https://` locations.
    tls: Option<ClientTls>,
    conn: Option<Stream>,
    /// Request head, rebuilt per request into the same allocation.
    head: Vec<u8>,
    rbuf: Vec<u8>,
}

impl Client {
    /// `tls` comes from [`crate::tls::client_tls`]: `Some` exactly for `https://`.
    pub fn new(location: Location, timeout: Duration, tls: Option<ClientTls>) -> Client {
        Client {
            location,
            timeout,
            tls,
            conn: None,
            head: Vec::with_capacity(512),
            rbuf: Vec::with_capacity(4096),
        }
    }

    pub fn location(&self) -> &Location {
        &self.location
    }

    /// `POST <path>?<query>` with `body`; `gzip` says the body is already compressed.
    pub fn post(
        &mut self,
        path: &str,
        query: &str,
        auth: Option<&[u8]>,
        body: &[&[u8]],
        gzip: bool,
    ) -> Result<Response, SendError> {
        let len = body.iter().map(|part| part.len()).sum();
        self.build_head(path, query, auth, len, gzip);
        let reused = self.conn.is_some();
        match self.exchange(body) {
            // A keep-alive connection the backend closed while idle fails before any
            // byte of an answer; the write did not happen, so one fresh try is safe
            // (and every line carries a timestamp, so even a repeat would be harmless).
            Err(SendError::Io(_)) if reused => {
                self.conn = None;
                self.exchange(body)
            }
            other => other,
        }
        .inspect_err(|_| self.conn = None)
    }

    /// The head of a `<method> <path>` without a body, with an `Authorization` value
    /// when given.
    fn build_bodyless_head(&mut self, method: &str, path: &str, auth: Option<&[u8]>) {
        self.head.clear();
        let _ = write!(
            self.head,
            "{method} {path} HTTP/1.1\r\nHost: {}:{}\r\nUser-Agent: influx-relay\r\n",
            self.location.host, self.location.port
        );
        if let Some(auth) = auth {
            self.head.extend_from_slice(b"Authorization: ");
            self.head.extend_from_slice(auth);
            self.head.extend_from_slice(b"\r\n");
        }
        self.head.extend_from_slice(b"\r\n");
    }

    /// `GET <path>` for health probes (`/ping`).
    pub fn get(&mut self, path: &str) -> Result<Response, SendError> {
        self.get_with(path, None)
    }

    /// `GET <path>` with an `Authorization` value.
    pub fn get_with(&mut self, path: &str, auth: Option<&[u8]>) -> Result<Response, SendError> {
        self.bodyless("GET", path, auth)
    }

    /// `<method> <path>` without a body (`GET`, `DELETE`), with an `Authorization` value.
    pub fn bodyless(
        &mut self,
        method: &str,
        path: &str,
        auth: Option<&[u8]>,
    ) -> Result<Response, SendError> {
        self.build_bodyless_head(method, path, auth);
        self.exchange(&[]).inspect_err(|_| self.conn = None)
    }

    /// `GET <path>` (query string included) whose answer body is handed to `sink` piece
    /// by piece as it arrives, with the status, instead of being collected: a query
    /// answer can be far larger than [`MAX_RESPONSE`]. `timeout` bounds each wait for
    /// bytes rather than the whole answer, since a long answer that keeps coming is
    /// healthy. When `sink` returns `false` the connection is dropped (the rest of the
    /// answer is not wanted) and the status is returned as if the body had ended.
    pub fn get_streamed(
        &mut self,
        path: &str,
        auth: Option<&[u8]>,
        sink: &mut dyn FnMut(u16, &[u8]) -> bool,
    ) -> Result<u16, SendError> {
        self.build_bodyless_head("GET", path, auth);
        let reused = self.conn.is_some();
        let mut answered = false;
        match self.stream_exchange(sink, &mut answered) {
            // As in `post`: an idle keep-alive connection closed by the backend fails
            // before any answer; a GET is safe to send again, but only while nothing
            // has reached `sink`.
            Err(SendError::Io(_)) if reused && !answered => {
                self.conn = None;
                self.stream_exchange(sink, &mut answered)
            }
            other => other,
        }
        .inspect_err(|_| self.conn = None)
    }

    /// `answered` is set once the first byte of an answer has arrived.
    fn stream_exchange(
        &mut self,
        sink: &mut dyn FnMut(u16, &[u8]) -> bool,
        answered: &mut bool,
    ) -> Result<u16, SendError> {
        if self.conn.is_none() {
            self.conn = Some(self.connect()?);
        }
        let Some(conn) = self.conn.as_mut() else {
            return Err(SendError::BadResponse("no connection"));
        };
        let idle = self.timeout;
        write_all_vectored(conn, &self.head, &[]).map_err(io_error)?;
        conn.flush().map_err(io_error)?;
        self.rbuf.clear();
        let (status, head_len, framing, close) = read_head(
            conn,
            &mut self.rbuf,
            || Instant::now() + idle,
            Some(answered),
        )?;
        self.rbuf.drain(..head_len);
        let mut wanted = true;
        let mut feed = |bytes: &[u8]| {
            if wanted && !bytes.is_empty() {
                wanted = sink(status, bytes);
            }
            wanted
        };
        let complete = match framing {
            Framing::Length(mut left) => loop {
                let n = left.min(self.rbuf.len());
                if !feed(&self.rbuf[..n]) {
                    break false;
                }
                left -= n;
                self.rbuf.clear();
                if left == 0 {
                    break true;
                }
                read_more(conn, &mut self.rbuf, Instant::now() + idle)?;
            },
            Framing::Chunked => stream_chunked(conn, &mut self.rbuf, idle, &mut feed)?,
            Framing::UntilClose => loop {
                if !feed(&self.rbuf) {
                    break false;
                }
                self.rbuf.clear();
                match read_more(conn, &mut self.rbuf, Instant::now() + idle) {
                    Ok(()) => {}
                    Err(SendError::Io(e)) if e.kind() == io::ErrorKind::UnexpectedEof => {
                        break false
                    }
                    Err(e) => return Err(e),
                }
            },
        };
        if !complete || close {
            self.conn = None;
        }
        // An empty body still tells the caller the status.
        if wanted {
            sink(status, &[]);
        }
        Ok(status)
    }

    fn build_head(&mut self, path: &str, query: &str, auth: Option<&[u8]>, len: usize, gzip: bool) {
        let loc = &self.location;
        self.head.clear();
        let sep = if query.is_empty() { "" } else { "?" };
        let _ = write!(
            self.head,
            "POST {}{sep}{query} HTTP/1.1\r\nHost: {}:{}\r\nUser-Agent: influx-relay\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {len}\r\n",
            path, loc.host, loc.port
        );
        if gzip {
            self.head.extend_from_slice(b"Content-Encoding: gzip\r\n");
        }
        if let Some(auth) = auth {
            self.head.extend_from_slice(b"Authorization: ");
            self.head.extend_from_slice(auth);
            self.head.extend_from_slice(b"\r\n");
        }
        self.head.extend_from_slice(b"\r\n");
    }

    fn connect(&mut self) -> Result<Stream, SendError> {
        let socket = self.connect_tcp()?;
        let Some(tls) = &self.tls else {
            return Ok(Stream::Plain(socket));
        };
        match tls.connect(socket) {
            Ok(stream) => Ok(Stream::Tls(Box::new(stream))),
            Err(e) => Err(match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => SendError::Timeout,
                // A certificate the backend should not have, or no TLS at all there.
                _ => SendError::Connect(e),
            }),
        }
    }

    fn connect_tcp(&mut self) -> Result<TcpStream, SendError> {
        let addrs = self.location.addresses().map_err(SendError::Connect)?;
        let mut last = io::Error::new(io::ErrorKind::NotFound, "host resolved to no address");
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, self.timeout) {
                Ok(s) => {
                    s.set_nodelay(true).map_err(SendError::Connect)?;
                    s.set_read_timeout(Some(self.timeout))
                        .map_err(SendError::Connect)?;
                    s.set_write_timeout(Some(self.timeout))
                        .map_err(SendError::Connect)?;
                    return Ok(s);
                }
                Err(e) if e.kind() == io::ErrorKind::TimedOut => return Err(SendError::Timeout),
                Err(e) => last = e,
            }
        }
        Err(SendError::Connect(last))
    }

    /// Send the head and `body` (its parts back to back, so merged writes need no
    /// copy into one buffer) and read the answer.
    fn exchange(&mut self, body: &[&[u8]]) -> Result<Response, SendError> {
        let deadline = Instant::now() + self.timeout;
        if self.conn.is_none() {
            self.conn = Some(self.connect()?);
        }
        let Some(conn) = self.conn.as_mut() else {
            return Err(SendError::BadResponse("no connection"));
        };
        write_all_vectored(conn, &self.head, body).map_err(io_error)?;
        conn.flush().map_err(io_error)?;
        self.rbuf.clear();
        let (status, head_len, framing, close) =
            read_head(conn, &mut self.rbuf, || deadline, None)?;
        let body = match framing {
            Framing::Length(len) => {
                if len > MAX_RESPONSE {
                    return Err(SendError::BadResponse("response body too large"));
                }
                while self.rbuf.len() < head_len + len {
                    read_more(conn, &mut self.rbuf, deadline)?;
                }
                self.rbuf[head_len..head_len + len].to_vec()
            }
            Framing::Chunked => read_chunked(conn, &mut self.rbuf, head_len, deadline)?,
            Framing::UntilClose => {
                loop {
                    match read_more(conn, &mut self.rbuf, deadline) {
                        Ok(()) if self.rbuf.len() <= MAX_RESPONSE => {}
                        Ok(()) => return Err(SendError::BadResponse("response body too large")),
                        Err(SendError::Io(e)) if e.kind() == io::ErrorKind::UnexpectedEof => break,
                        Err(e) => return Err(e),
                    }
                }
                self.rbuf[head_len..].to_vec()
            }
        };
        if close || matches!(framing, Framing::UntilClose) {
            self.conn = None;
        }
        Ok(Response { status, body })
    }
}

/// Head and body parts with as few `writev` calls as the socket allows (one, when it
/// takes everything): a coalesced request is many bodies back to back.
fn write_all_vectored(conn: &mut impl Write, head: &[u8], body: &[&[u8]]) -> io::Result<()> {
    let mut slices: Vec<io::IoSlice<'_>> = std::iter::once(head)
        .chain(body.iter().copied())
        .filter(|part| !part.is_empty())
        .map(io::IoSlice::new)
        .collect();
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        match conn.write_vectored(rest) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => io::IoSlice::advance_slices(&mut rest, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

enum Framing {
    Length(usize),
    Chunked,
    UntilClose,
}

fn framing_of(
    version: Option<u8>,
    headers: &[httparse::Header<'_>],
    status: u16,
) -> Result<(Framing, bool), SendError> {
    let mut close = version == Some(0);
    let mut framing = if status == 204 || status == 304 || (100..200).contains(&status) {
        Framing::Length(0)
    } else {
        Framing::UntilClose
    };
    for h in headers {
        if h.name.eq_ignore_ascii_case("content-length") {
            let len = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .ok_or(SendError::BadResponse("bad content-length"))?;
            framing = Framing::Length(len);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            if h.value.eq_ignore_ascii_case(b"chunked") {
                framing = Framing::Chunked;
            }
        } else if h.name.eq_ignore_ascii_case("connection") {
            if h.value.eq_ignore_ascii_case(b"close") {
                close = true;
            } else if h.value.eq_ignore_ascii_case(b"keep-alive") {
                close = false;
            }
        }
    }
    Ok((framing, close))
}

/// Read until a whole response head is in `rbuf`, skipping 1xx answers: its status,
/// length, framing and whether the connection closes after it. Each read waits until
/// `deadline()`; `answered` is set once any byte of an answer has come.
fn read_head(
    conn: &mut Stream,
    rbuf: &mut Vec<u8>,
    deadline: impl Fn() -> Instant,
    mut answered: Option<&mut bool>,
) -> Result<(u16, usize, Framing, bool), SendError> {
    loop {
        read_more(conn, rbuf, deadline())?;
        if let Some(a) = answered.as_deref_mut() {
            *a = true;
        }
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut resp = httparse::Response::new(&mut headers);
        match resp.parse(rbuf) {
            Ok(httparse::Status::Complete(n)) => {
                let status = resp.code.unwrap_or(0);
                let (framing, close) = framing_of(resp.version, resp.headers, status)?;
                // 1xx answers precede the real one; skip them.
                if (100..200).contains(&status) {
                    rbuf.drain(..n);
                    continue;
                }
                return Ok((status, n, framing, close));
            }
            Ok(httparse::Status::Partial) if rbuf.len() < MAX_RESPONSE => {}
            Ok(httparse::Status::Partial) => {
                return Err(SendError::BadResponse("response head too large"))
            }
            Err(_) => return Err(SendError::BadResponse("malformed response head")),
        }
    }
}

/// Read at least one more byte into `buf`, respecting the overall `deadline`.
fn read_more(conn: &mut Stream, buf: &mut Vec<u8>, deadline: Instant) -> Result<(), SendError> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(SendError::Timeout);
    }
    conn.socket()
        .set_read_timeout(Some(left))
        .map_err(SendError::Io)?;
    let start = buf.len();
    buf.resize(start + 8192, 0);
    loop {
        match conn.read(&mut buf[start..]) {
            Ok(0) => {
                buf.truncate(start);
                return Err(SendError::Io(io::ErrorKind::UnexpectedEof.into()));
            }
            Ok(n) => {
                buf.truncate(start + n);
                return Ok(());
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                buf.truncate(start);
                return Err(io_error(e));
            }
        }
    }
}

fn read_chunked(
    conn: &mut Stream,
    buf: &mut Vec<u8>,
    mut pos: usize,
    deadline: Instant,
) -> Result<Vec<u8>, SendError> {
    let mut body = Vec::new();
    loop {
        // Chunk-size line.
        let line_end = loop {
            if let Some(i) = memchr::memmem::find(&buf[pos..], b"\r\n") {
                break pos + i;
            }
            if buf.len() - pos > 1024 {
                return Err(SendError::BadResponse("bad chunk size line"));
            }
            read_more(conn, buf, deadline)?;
        };
        let size_text = std::str::from_utf8(&buf[pos..line_end])
            .map_err(|_| SendError::BadResponse("bad chunk size"))?;
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| SendError::BadResponse("bad chunk size"))?;
        pos = line_end + 2;
        if body.len() + size > MAX_RESPONSE {
            return Err(SendError::BadResponse("response body too large"));
        }
        while buf.len() < pos + size + 2 {
            read_more(conn, buf, deadline)?;
        }
        if size == 0 {
            // Trailers are not used by InfluxDB; the last CRLF ends the body.
            return Ok(body);
        }
        body.extend_from_slice(&buf[pos..pos + size]);
        pos += size + 2;
    }
}

/// The chunked body that starts at `buf[0]`, handed to `feed` as it arrives; `Ok(true)`
/// when the last chunk was read, `Ok(false)` when `feed` wanted no more. Only the bytes
/// of one read are held at a time, whatever the chunk sizes.
fn stream_chunked(
    conn: &mut Stream,
    buf: &mut Vec<u8>,
    idle: Duration,
    feed: &mut dyn FnMut(&[u8]) -> bool,
) -> Result<bool, SendError> {
    loop {
        let line_end = loop {
            if let Some(i) = memchr::memmem::find(buf, b"\r\n") {
                break i;
            }
            if buf.len() > 1024 {
                return Err(SendError::BadResponse("bad chunk size line"));
            }
            read_more(conn, buf, Instant::now() + idle)?;
        };
        let size_text = std::str::from_utf8(&buf[..line_end])
            .map_err(|_| SendError::BadResponse("bad chunk size"))?;
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let mut left = usize::from_str_radix(size_text, 16)
            .map_err(|_| SendError::BadResponse("bad chunk size"))?;
        buf.drain(..line_end + 2);
        if left == 0 {
            // Trailers are not used by InfluxDB; whatever follows is not waited for.
            return Ok(true);
        }
        while left > 0 {
            if buf.is_empty() {
                read_more(conn, buf, Instant::now() + idle)?;
            }
            let n = left.min(buf.len());
            if !feed(&buf[..n]) {
                return Ok(false);
            }
            buf.drain(..n);
            left -= n;
        }
        while buf.len() < 2 {
            read_more(conn, buf, Instant::now() + idle)?;
        }
        if &buf[..2] != b"\r\n" {
            return Err(SendError::BadResponse("chunk not followed by CRLF"));
        }
        buf.drain(..2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Takes at most `max` bytes per call, like a socket with little room.
    struct Trickle {
        out: Vec<u8>,
        max: usize,
    }

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let n = buf.len().min(self.max);
            self.out.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn vectored_writes_survive_short_writes() {
        let body: [&[u8]; 4] = [b"m v=1 1\n", b"", b"m v=2 2\n", b"m v=3 3\n"];
        for max in [1, 3, 7, 64] {
            let mut w = Trickle {
                out: Vec::new(),
                max,
            };
            write_all_vectored(&mut w, b"HEAD\r\n\r\n", &body).unwrap();
            assert_eq!(
                w.out, b"HEAD\r\n\r\nm v=1 1\nm v=2 2\nm v=3 3\n",
                "max {max}"
            );
        }
    }
}
