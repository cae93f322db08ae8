//! Request framing, sans-I/O: find and parse a request head, then decode its body
//! (Content-Length or chunked). The event loop feeds bytes and acts on the results,
//! which is what lets these parts be fuzzed and tested without sockets.

use memchr::memmem;

/// A header block larger than this is answered 431 (README: HTTP API).
pub const MAX_HEAD: usize = 64 * 1024;
/// Headers httparse will index; a request with more is malformed for our purposes.
const MAX_HEADERS: usize = 64;
/// A chunk-size line (with extensions) longer than this is malformed.
const MAX_CHUNK_LINE: usize = 1024;
/// The longest method accepted. The longest registered HTTP method
/// (`UPDATEREDIRECTREF`) has 17 bytes and the relay serves four of at most 7; with room
/// to spare, a longer first word is no method, and is refused before its line ends.
pub const MAX_METHOD: usize = 32;
/// How much of a request line still in progress [`HeadScanner::check_line`] looks at.
/// The first bytes say whether it can be a request line at all; past this it is checked
/// once, when its end arrives, so a client trickling a long URL costs linear time.
const EARLY_CHECK: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Options,
    Delete,
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    None,
    Length(usize),
    Chunked,
}

/// The parts of a request head the relay acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub method: Method,
    pub path: String,
    /// Raw query string without `?` (still percent-encoded: it is forwarded as is).
    pub query: String,
    pub keep_alive: bool,
    pub body: BodyKind,
    pub expect_continue: bool,
    pub gzip: bool,
    pub authorization: Option<Box<[u8]>>,
}

/// A request that cannot be served; the connection is closed after the answer,
/// because the framing of anything after it is unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reject {
    pub status: u16,
    pub message: &'static str,
}

const fn reject(status: u16, message: &'static str) -> Reject {
    Reject { status, message }
}

/// A body over `max-body-size`.
pub const TOO_LARGE: Reject = reject(413, "request entity too large");

/// Looks for the end of a request head without re-scanning bytes it has seen
/// (a client trickling a header byte by byte costs linear time, not quadratic).
#[derive(Debug, Default)]
pub struct HeadScanner {
    scanned: usize,
    /// Bytes of the current head [`HeadScanner::check_line`] has seen.
    line_seen: usize,
    /// The request line was complete when last checked: nothing more to check early.
    line_done: bool,
}

impl HeadScanner {
    /// `Ok(Some(n))`: the head is `buf[..n]`, `n <= MAX_HEAD`. `Ok(None)`: need more
    /// bytes. The limit counts the blank line that ends the head, so the answer does not
    /// depend on how the bytes were split between reads.
    pub fn find_end(&mut self, buf: &[u8]) -> Result<Option<usize>, Reject> {
        let from = self.scanned.saturating_sub(3);
        let window = &buf[from..buf.len().min(MAX_HEAD)];
        // Bare-LF line endings are tolerated by httparse, so end-of-head may be `\n\n`;
        // it only counts if it comes before the first `\r\n\r\n`, so look for it only
        // there rather than through a body that may follow in the same buffer.
        let crlf = memmem::find(window, b"\r\n\r\n");
        let bare_window = &window[..crlf.map_or(window.len(), |a| a + 3)];
        let end = match (crlf, memmem::find(bare_window, b"\n\n")) {
            (_, Some(b)) => Some(from + b + 2),
            (Some(a), None) => Some(from + a + 4),
            (None, None) => None,
        };
        match end {
            Some(n) => {
                *self = HeadScanner::default();
                Ok(Some(n))
            }
            // Any end still to come would finish past the limit.
            None if buf.len() >= MAX_HEAD => Err(reject(431, "request header fields too large")),
            None => {
                self.scanned = buf.len();
                Ok(None)
            }
        }
    }
}

impl HeadScanner {
    /// For a head still incomplete (`find_end` said `Ok(None)` for this `buf`): refuse
    /// a request line that no further bytes can make valid, as soon as its first bytes
    /// show it (a byte no method may hold, a first word longer than [`MAX_METHOD`], a
    /// bad version), instead of letting the client wait for `read-timeout`. Only refuses
    /// what [`parse_head`] would refuse once the head is complete.
    pub fn check_line(&mut self, buf: &[u8]) -> Result<(), Reject> {
        if self.line_done {
            return Ok(());
        }
        let from = self.line_seen.min(buf.len());
        self.line_seen = buf.len();
        let line = match memchr::memchr(b'\n', &buf[from..]) {
            Some(i) => {
                self.line_done = true;
                &buf[..=from + i]
            }
            None if from < EARLY_CHECK => &buf[..buf.len().min(EARLY_CHECK)],
            None => return Ok(()),
        };
        check_request_line(line)
    }
}

/// `Err` when `line`, the start of a head up to its first line end or less, cannot
/// begin a valid request. httparse stops at the first byte that cannot fit and answers
/// `Partial` for a valid prefix, so a partial line is judged exactly as a whole one.
fn check_request_line(line: &[u8]) -> Result<(), Reject> {
    let malformed = reject(400, "malformed request");
    // httparse skips empty lines before the request line; so does the method check.
    let start = line
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(line.len());
    let first_word = &line[start..line.len().min(start + MAX_METHOD + 1)];
    if first_word.len() > MAX_METHOD && !first_word.contains(&b' ') {
        return Err(malformed);
    }
    // No room for headers: a complete request line then reads as `TooManyHeaders` or
    // `Partial`, and the headers are judged when the head is complete.
    let mut headers = [httparse::EMPTY_HEADER; 0];
    match httparse::Request::new(&mut headers).parse(line) {
        Ok(_) | Err(httparse::Error::TooManyHeaders) => Ok(()),
        Err(_) => Err(malformed),
    }
}

/// Parse a complete head (as delimited by [`HeadScanner`]).
pub fn parse_head(buf: &[u8], max_body: usize) -> Result<Head, Reject> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(reject(400, "malformed request")),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(reject(431, "too many request headers"))
        }
        Err(_) => return Err(reject(400, "malformed request")),
    }
    let method = req.method.unwrap_or("");
    if method.len() > MAX_METHOD {
        return Err(reject(400, "malformed request"));
    }
    let method = match method {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "POST" => Method::Post,
        "OPTIONS" => Method::Options,
        "DELETE" => Method::Delete,
        _ => Method::Other,
    };
    let target = req.path.unwrap_or("/");
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, q),
        None => (target, ""),
    };
    let http10 = req.version == Some(0);
    let mut keep_alive = !http10;
    let mut content_length: Option<usize> = None;
    let mut chunked = false;
    let mut expect_continue = false;
    let mut gzip = false;
    let mut authorization = None;
    for h in req.headers.iter() {
        let name = h.name;
        let value = h.value;
        if name.eq_ignore_ascii_case("content-length") {
            let n = parse_decimal(value).ok_or(reject(400, "invalid content-length"))?;
            if content_length.is_some_and(|old| old != n) {
                return Err(reject(400, "conflicting content-length headers"));
            }
            content_length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            // Only `chunked` is meaningful for a request; anything else (or chunked
            // not last) cannot be framed safely.
            let last = value.rsplit(|&b| b == b',').next().map(trim).unwrap_or(b"");
            if !last.eq_ignore_ascii_case(b"chunked") {
                return Err(reject(501, "unsupported transfer-encoding"));
            }
            chunked = true;
        } else if name.eq_ignore_ascii_case("connection") {
            for token in value.split(|&b| b == b',').map(trim) {
                if token.eq_ignore_ascii_case(b"close") {
                    keep_alive = false;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case("expect") {
            if trim(value).eq_ignore_ascii_case(b"100-continue") {
                expect_continue = !http10;
            } else {
                return Err(reject(417, "unsupported expectation"));
            }
        } else if name.eq_ignore_ascii_case("content-encoding") {
            let v = trim(value);
            if v.eq_ignore_ascii_case(b"gzip") || v.eq_ignore_ascii_case(b"x-gzip") {
                gzip = true;
            } else if !v.is_empty() && !v.eq_ignore_ascii_case(b"identity") {
                return Err(reject(
                    415,
                    "unsupported content-encoding (use gzip or none)",
                ));
            }
        } else if name.eq_ignore_ascii_case("authorization") {
            authorization = Some(Box::from(value));
        }
    }
    let body = match (chunked, content_length) {
        // Both framings at once is how requests get smuggled past proxies: refuse.
        (true, Some(_)) => return Err(reject(400, "both content-length and transfer-encoding")),
        (true, None) => BodyKind::Chunked,
        (false, Some(n)) if n > max_body => return Err(TOO_LARGE),
        (false, Some(0)) | (false, None) => BodyKind::None,
        (false, Some(n)) => BodyKind::Length(n),
    };
    Ok(Head {
        method,
        path: path.to_string(),
        query: query.to_string(),
        keep_alive,
        body,
        expect_continue,
        gzip,
        authorization,
    })
}

fn trim(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    &v[start..end]
}

fn parse_decimal(v: &[u8]) -> Option<usize> {
    let v = trim(v);
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

/// Incremental `Transfer-Encoding: chunked` decoder.
#[derive(Debug, Default)]
pub struct ChunkedDecoder {
    state: ChunkState,
    /// Bytes of the current size line or trailer line seen so far.
    line_len: usize,
    size: u64,
    saw_digit: bool,
    in_extension: bool,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    #[default]
    Size,
    SizeLf,
    Data(u64),
    DataCr,
    DataLf,
    /// After the last chunk: trailer lines until an empty one.
    Trailer,
    TrailerLf,
    Done,
}

impl ChunkedDecoder {
    pub fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Decode from `input`, appending data to `out`. Returns bytes consumed; stops at
    /// the end of the body. `out` may not grow past `max`.
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>, max: usize) -> Result<usize, Reject> {
        let bad = reject(400, "invalid chunked body");
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            match self.state {
                ChunkState::Size => {
                    self.line_len += 1;
                    if self.line_len > MAX_CHUNK_LINE {
                        return Err(bad);
                    }
                    match b {
                        b'\r' => self.state = ChunkState::SizeLf,
                        b'\n' => self.end_size_line(max, out.len())?,
                        _ if self.in_extension => {}
                        b';' => self.in_extension = true,
                        b' ' | b'\t' => self.in_extension = self.saw_digit,
                        _ => {
                            let d = (b as char).to_digit(16).ok_or(bad)? as u64;
                            self.size = self
                                .size
                                .checked_mul(16)
                                .and_then(|s| s.checked_add(d))
                                .ok_or(bad)?;
                            if self.size > max as u64 {
                                return Err(TOO_LARGE);
                            }
                            self.saw_digit = true;
                        }
                    }
                    i += 1;
                }
                ChunkState::SizeLf => {
                    if b != b'\n' {
                        return Err(bad);
                    }
                    self.end_size_line(max, out.len())?;
                    i += 1;
                }
                ChunkState::Data(left) => {
                    let n = (input.len() - i).min(left as usize);
                    out.extend_from_slice(&input[i..i + n]);
                    i += n;
                    self.state = if left == n as u64 {
                        ChunkState::DataCr
                    } else {
                        ChunkState::Data(left - n as u64)
                    };
                }
                ChunkState::DataCr => {
                    self.state = match b {
                        b'\r' => ChunkState::DataLf,
                        b'\n' => ChunkState::Size,
                        _ => return Err(bad),
                    };
                    i += 1;
                }
                ChunkState::DataLf => {
                    if b != b'\n' {
                        return Err(bad);
                    }
                    self.state = ChunkState::Size;
                    i += 1;
                }
                ChunkState::Trailer => {
                    match b {
                        b'\r' => self.state = ChunkState::TrailerLf,
                        b'\n' => self.end_trailer_line(),
                        _ => {
                            self.line_len += 1;
                            if self.line_len > MAX_CHUNK_LINE * 8 {
                                return Err(bad);
                            }
                        }
                    }
                    i += 1;
                }
                ChunkState::TrailerLf => {
                    if b != b'\n' {
                        return Err(bad);
                    }
                    self.end_trailer_line();
                    i += 1;
                }
                ChunkState::Done => break,
            }
            if self.state == ChunkState::Done {
                break;
            }
        }
        Ok(i)
    }

    fn end_size_line(&mut self, max: usize, have: usize) -> Result<(), Reject> {
        if !self.saw_digit {
            return Err(reject(400, "invalid chunked body"));
        }
        if have as u64 + self.size > max as u64 {
            return Err(TOO_LARGE);
        }
        self.state = if self.size == 0 {
            ChunkState::Trailer
        } else {
            ChunkState::Data(self.size)
        };
        self.size = 0;
        self.saw_digit = false;
        self.in_extension = false;
        self.line_len = 0;
        Ok(())
    }

    fn end_trailer_line(&mut self) {
        self.state = if self.line_len == 0 {
            ChunkState::Done
        } else {
            ChunkState::Trailer
        };
        self.line_len = 0;
    }
}

/// Inflate a gzip body into at most `max` bytes (a bomb costs `max`, not RAM).
pub fn gunzip(data: &[u8], max: usize) -> Result<Vec<u8>, Reject> {
    use std::io::Read;
    let mut out = Vec::with_capacity((data.len() * 4).min(max));
    let mut dec = flate2::read::MultiGzDecoder::new(data).take(max as u64 + 1);
    dec.read_to_end(&mut out)
        .map_err(|_| reject(400, "unable to decode gzip body"))?;
    if out.len() > max {
        return Err(TOO_LARGE);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn head(text: &str) -> Result<Head, Reject> {
        parse_head(text.as_bytes(), 1000)
    }

    #[test]
    fn head_end_is_found_across_reads_without_rescanning() {
        let mut s = HeadScanner::default();
        let full = b"POST /write?db=x HTTP/1.1\r\nHost: a\r\n\r\nbody";
        for cut in 1..full.len() - 4 {
            let mut s2 = HeadScanner::default();
            let first = s2.find_end(&full[..cut]).unwrap();
            if first.is_none() {
                assert_eq!(
                    s2.find_end(full).unwrap(),
                    Some(full.len() - 4),
                    "cut {cut}"
                );
            }
        }
        assert_eq!(s.find_end(b"GET / HTTP/1.1\n\n").unwrap(), Some(16));
    }

    #[test]
    fn oversized_head_is_431() {
        let mut s = HeadScanner::default();
        let big = vec![b'a'; MAX_HEAD + 1];
        assert_eq!(s.find_end(&big).unwrap_err().status, 431);
    }

    /// Regression: a head ending within 4 bytes past the limit was accepted when it
    /// arrived in one read and refused with 431 when split just past the limit.
    #[test]
    fn head_limit_does_not_depend_on_the_split() {
        for len in [
            MAX_HEAD - 1,
            MAX_HEAD,
            MAX_HEAD + 1,
            MAX_HEAD + 3,
            MAX_HEAD + 4,
        ] {
            let mut data = b"GET / HTTP/1.1\r\nX: ".to_vec();
            data.resize(len - 4, b'a');
            data.extend_from_slice(b"\r\n\r\n");
            let whole = HeadScanner::default().find_end(&data);
            for cut in [1, MAX_HEAD - 1, MAX_HEAD, MAX_HEAD + 1, len - 1] {
                let mut s = HeadScanner::default();
                let split = match s.find_end(&data[..cut.min(len)]) {
                    Ok(None) => s.find_end(&data),
                    other => other,
                };
                assert_eq!(split, whole, "len {len} cut {cut}");
            }
            let want = if len <= MAX_HEAD {
                Ok(Some(len))
            } else {
                Err(431)
            };
            assert_eq!(whole.map_err(|r| r.status), want, "len {len}");
        }
    }

    /// Feed `data` as the event loop does, `step` bytes per read: the first refusal of
    /// `find_end` or `check_line`, else where the head ends (`None`: never).
    fn scan_in_steps(data: &[u8], step: usize) -> Result<Option<usize>, u16> {
        let mut s = HeadScanner::default();
        let mut have = 0;
        while have < data.len() {
            have = (have + step).min(data.len());
            match s.find_end(&data[..have]).map_err(|r| r.status)? {
                Some(end) => return Ok(Some(end)),
                None => s.check_line(&data[..have]).map_err(|r| r.status)?,
            }
        }
        Ok(None)
    }

    #[test]
    fn a_line_that_cannot_become_a_request_is_refused_before_it_ends() {
        let hopeless: [&[u8]; 8] = [
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
            b"PO\x01ST /write HTTP/1.1",
            b"GET /ping\x7f",
            b"GET /ping HTTP/2",
            b"GET /ping XTTP/1.1",
            b"GET /ping HTTP/1.1 trailing",
            b"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            b"\r\rGET / HTTP/1.1",
        ];
        for data in hopeless {
            for step in [1, 3, data.len()] {
                assert_eq!(scan_in_steps(data, step), Err(400), "{data:?} by {step}");
            }
        }
        // Every prefix of a good head (and its first line alone) is left to come.
        let good = b"\r\nPOST /write?db=x&q=%20 HTTP/1.1\r\nHost: a\r\nX: \x01\r\n";
        for cut in 0..=good.len() {
            assert_eq!(scan_in_steps(&good[..cut], 1), Ok(None), "cut {cut}");
        }
        let method = "M".repeat(MAX_METHOD);
        assert_eq!(scan_in_steps(method.as_bytes(), 1), Ok(None));
        let too_long = format!("{method}M /ping HTTP/1.1\r\n\r\n");
        assert_eq!(head(&too_long).unwrap_err().status, 400);
        assert_eq!(scan_in_steps(too_long.as_bytes(), 1), Err(400));
        // A long URL is judged once its line is complete, not on every read.
        let url = format!("GET /ping?{} HTTP/1.1\r\n", "x".repeat(3 * EARLY_CHECK));
        assert_eq!(scan_in_steps(url.as_bytes(), 7), Ok(None));
        let bad_url = format!("GET /ping?{}\x01 HTTP/1.1\r\n", "x".repeat(3 * EARLY_CHECK));
        assert_eq!(scan_in_steps(bad_url.as_bytes(), 7), Err(400));
    }

    #[test]
    fn head_fields() {
        let h = head("POST /write?db=a&rp=b HTTP/1.1\r\nContent-Length: 5\r\nAuthorization: Basic eA==\r\nContent-Encoding: gzip\r\nExpect: 100-continue\r\n\r\n").unwrap();
        assert_eq!(h.method, Method::Post);
        assert_eq!(h.path, "/write");
        assert_eq!(h.query, "db=a&rp=b");
        assert_eq!(h.body, BodyKind::Length(5));
        assert!(h.keep_alive && h.gzip && h.expect_continue);
        assert_eq!(h.authorization.as_deref(), Some(&b"Basic eA=="[..]));
    }

    #[test]
    fn http10_closes_unless_asked_not_to() {
        assert!(!head("GET /ping HTTP/1.0\r\n\r\n").unwrap().keep_alive);
        assert!(
            head("GET /ping HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
                .unwrap()
                .keep_alive
        );
        assert!(
            !head("GET /ping HTTP/1.1\r\nConnection: close\r\n\r\n")
                .unwrap()
                .keep_alive
        );
    }

    #[test]
    fn framing_rejections() {
        let cases = [
            ("POST / HTTP/1.1\r\nContent-Length: 1001\r\n\r\n", 413),
            ("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
            (
                "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
                400,
            ),
            (
                "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                400,
            ),
            (
                "POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
                400,
            ),
            ("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
            ("POST / HTTP/1.1\r\nContent-Encoding: br\r\n\r\n", 415),
            ("POST / HTTP/1.1\r\nExpect: something\r\n\r\n", 417),
            ("GARBAGE\r\n\r\n", 400),
        ];
        for (text, status) in cases {
            assert_eq!(head(text).unwrap_err().status, status, "{text:?}");
        }
        assert_eq!(
            head("POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n")
                .unwrap()
                .body,
            BodyKind::Length(1)
        );
    }

    fn decode_all(input: &[u8], max: usize) -> Result<(Vec<u8>, usize, bool), Reject> {
        let mut d = ChunkedDecoder::default();
        let mut out = Vec::new();
        let n = d.decode(input, &mut out, max)?;
        Ok((out, n, d.is_done()))
    }

    #[test]
    fn chunked_bodies() {
        let (out, n, done) = decode_all(
            b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\nNEXT",
            100,
        )
        .unwrap();
        assert_eq!(out, b"hello world");
        assert!(done);
        assert_eq!(n, 46);
        // Split at every byte: same result.
        let input = b"3\r\nabc\r\na\r\n0123456789\r\n0\r\n\r\n";
        for cut in 0..input.len() {
            let mut d = ChunkedDecoder::default();
            let mut out = Vec::new();
            let n1 = d.decode(&input[..cut], &mut out, 100).unwrap();
            assert_eq!(n1, cut);
            d.decode(&input[cut..], &mut out, 100).unwrap();
            assert!(d.is_done());
            assert_eq!(out, b"abc0123456789");
        }
    }

    #[test]
    fn chunked_rejections() {
        assert_eq!(decode_all(b"zz\r\n", 100).unwrap_err().status, 400);
        assert_eq!(decode_all(b"\r\n", 100).unwrap_err().status, 400);
        assert_eq!(decode_all(b"5\r\nhelloXX", 100).unwrap_err().status, 400);
        assert_eq!(decode_all(b"65\r\n", 100).unwrap_err().status, 413);
        assert_eq!(
            decode_all(b"ffffffffffffffffffff\r\n", usize::MAX)
                .unwrap_err()
                .status,
            400
        );
        assert_eq!(
            decode_all(&[b'1'; 2000], usize::MAX).unwrap_err().status,
            400
        );
    }

    #[test]
    fn gzip_limits() {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(&vec![b'a'; 100_000]).unwrap();
        let gz = enc.finish().unwrap();
        assert_eq!(gunzip(&gz, 100_000).unwrap().len(), 100_000);
        assert_eq!(gunzip(&gz, 99_999).unwrap_err().status, 413);
        assert_eq!(
            gunzip(&gz[..gz.len() / 2], 100_000).unwrap_err().status,
            400
        );
        assert_eq!(gunzip(b"not gzip", 100).unwrap_err().status, 400);
    }

    /// Header lines mostly valid, sometimes hostile.
    fn head_line() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("Host: a\r\n".to_string()),
            (0usize..300).prop_map(|n| format!("Content-Length: {n}\r\n")),
            Just("Content-Length: -1\r\n".to_string()),
            Just("Transfer-Encoding: chunked\r\n".to_string()),
            Just("Content-Encoding: gzip\r\n".to_string()),
            Just("Connection: close\r\n".to_string()),
            Just("Expect: 100-continue\r\n".to_string()),
            Just("Authorization: Basic eDp5\r\n".to_string()),
            "[ -~]{0,20}\r?\n",
        ]
    }

    /// Bytes that are often chunked framing, so the decoder gets past the first line.
    fn chunked_like() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            (0usize..40).prop_map(|n| format!("{n:x}\r\n").into_bytes()),
            Just(b"\r\n".to_vec()),
            Just(b"0\r\n\r\n".to_vec()),
            Just(b";ext=1".to_vec()),
            proptest::collection::vec(any::<u8>(), 0..30),
        ];
        proptest::collection::vec(piece, 0..8).prop_map(|p| p.concat())
    }

    proptest! {
        #[test]
        fn parsers_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut s = HeadScanner::default();
            if let Ok(Some(n)) = s.find_end(&data) {
                let _ = parse_head(&data[..n], 1 << 20);
            }
            let _ = decode_all(&data, 1 << 20);
        }

        /// The scanner's answer does not depend on how the bytes were split between
        /// reads, and an accepted head has consistent fields.
        #[test]
        fn head_scanner_split_invariance_and_consistent_heads(
            lines in proptest::collection::vec(head_line(), 0..8),
            end in prop::sample::select(vec!["\r\n\r\n", "\n\n", "\r\n", ""]),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut data = b"POST /write?db=x&u=a HTTP/1.1\r\n".to_vec();
            for l in &lines {
                data.extend_from_slice(l.as_bytes());
            }
            data.extend_from_slice(end.as_bytes());
            data.extend_from_slice(b"body");
            let whole = HeadScanner::default().find_end(&data);
            let cut = cut.index(data.len() + 1);
            let mut s = HeadScanner::default();
            let split = match s.find_end(&data[..cut]) {
                Ok(None) => s.find_end(&data),
                other => other,
            };
            prop_assert_eq!(split, whole);
            if let Ok(Some(n)) = whole {
                if let Ok(h) = parse_head(&data[..n], 100) {
                    prop_assert_eq!(h.path.as_str(), "/write");
                    prop_assert_eq!(h.query.as_str(), "db=x&u=a");
                    prop_assert!(!matches!(h.body, BodyKind::Length(0)));
                    prop_assert!(!matches!(h.body, BodyKind::Length(n) if n > 100));
                    prop_assert_eq!(parse_head(&data[..n], 100), Ok(h));
                }
            }
        }

        /// The early check refuses only heads that `parse_head` refuses once complete,
        /// whatever the reads.
        #[test]
        fn an_early_refusal_is_never_wrong(
            line in prop_oneof![
                "[A-Z]{1,40} /[ -~]{0,30} HTTP/1\\.[01]\r?\n",
                "[ -~\t\r\n\x00-\x1f\x7f]{0,60}",
            ],
            lines in proptest::collection::vec(head_line(), 0..4),
            step in 1usize..20,
        ) {
            let mut data = line.into_bytes();
            for l in &lines {
                data.extend_from_slice(l.as_bytes());
            }
            data.extend_from_slice(b"\r\n\r\n");
            let whole = HeadScanner::default().find_end(&data);
            if scan_in_steps(&data, step) == Err(400) {
                if let Ok(Some(end)) = whole {
                    prop_assert!(parse_head(&data[..end], 100).is_err());
                }
            }
        }

        /// Decoding in two reads gives what decoding in one does, on any bytes.
        #[test]
        fn chunked_split_point_invariance(
            data in chunked_like(),
            cut in any::<prop::sample::Index>(),
            max in 0usize..200,
        ) {
            let cut = cut.index(data.len() + 1);
            let one = decode_all(&data, max);
            let mut d = ChunkedDecoder::default();
            let mut out = Vec::new();
            let two = match d.decode(&data[..cut], &mut out, max) {
                Ok(n) if d.is_done() => Ok(n),
                Ok(n) => {
                    prop_assert_eq!(n, cut);
                    d.decode(&data[cut..], &mut out, max).map(|m| n + m)
                }
                Err(r) => Err(r),
            };
            prop_assert!(out.len() <= max);
            match one {
                Ok((out1, n1, done1)) => {
                    prop_assert_eq!(two, Ok(n1));
                    prop_assert_eq!(out, out1);
                    prop_assert_eq!(d.is_done(), done1);
                }
                Err(r) => prop_assert_eq!(two.map_err(|r| r.status), Err(r.status)),
            }
        }

        #[test]
        fn chunked_roundtrip(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..50), 0..10)) {
            let mut wire = Vec::new();
            let mut want = Vec::new();
            for c in &chunks {
                wire.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
                wire.extend_from_slice(c);
                wire.extend_from_slice(b"\r\n");
                want.extend_from_slice(c);
            }
            wire.extend_from_slice(b"0\r\n\r\n");
            let (out, n, done) = decode_all(&wire, 1 << 20).unwrap();
            prop_assert!(done);
            prop_assert_eq!(n, wire.len());
            prop_assert_eq!(out, want);
        }
    }
}
