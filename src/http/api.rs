//! The three write APIs a client may use (README: InfluxDB 2.x and 3.x), and the error
//! shape each one's clients expect.
//!
//! Whatever the API, a write becomes the same batch (the 1.x query string with `db`,
//! `rp` and `precision`; see `v2` and `v3` for the conversion), so backends, queue and
//! spool know nothing of where it came from. Only the answer differs: a 1.x client reads
//! `{"error":"…"}`, a 2.x client `{"code":"…","message":"…"}`, a 3.x client
//! `{"error":"…"}` with the rejected lines under `data`. Backends answer in their own
//! API's shape, which need not be the client's: [`reshape`] rewrites their bodies.

use std::io::Write as _;

use crate::http::response;

/// `POST` path of the InfluxDB 2.x write API (also served by InfluxDB 1.8+).
pub const V2_WRITE: &str = "/api/v2/write";
/// `POST` path of the InfluxDB 3.x write API.
pub const V3_WRITE: &str = "/api/v3/write_lp";

/// Content type of the 2.x and 3.x error answers, as their servers send it.
pub const JSON: &str = "application/json; charset=utf-8";

/// Which write API a request came in on, and so how its errors must look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Api {
    /// `/write` and everything that is not one of the others (`/query`, `/ping`, …).
    #[default]
    V1,
    /// `/api/v2/write`.
    V2,
    /// `/api/v3/write_lp`.
    V3,
}

impl Api {
    pub fn of_path(path: &str) -> Api {
        match path {
            V2_WRITE => Api::V2,
            V3_WRITE => Api::V3,
            _ => Api::V1,
        }
    }
}

/// The `code` of a 2.x error body for an HTTP status, as InfluxDB 2 pairs them.
pub fn v2_code(status: u16) -> &'static str {
    match status {
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not found",
        405 => "method not allowed",
        413 => "request too large",
        415 => "unsupported media type",
        422 => "unprocessable entity",
        429 => "too many requests",
        503 | 504 => "unavailable",
        400..=499 => "invalid",
        _ => "internal error",
    }
}

/// An error answer in the shape of `api`. `extra` holds complete header lines.
pub fn error(out: &mut Vec<u8>, api: Api, status: u16, message: &str, extra: &str, close: bool) {
    if api == Api::V1 {
        response::error(out, status, message, extra, close);
        return;
    }
    let body = error_body(api, status, message);
    response::full(out, status, JSON, extra, &body, close, false);
}

/// `{"code":"…","message":"…"}` (2.x) or `{"error":"…"}` (1.x and 3.x).
pub fn error_body(api: Api, status: u16, message: &str) -> Vec<u8> {
    let mut body = Vec::with_capacity(message.len() + 40);
    match api {
        Api::V2 => {
            body.extend_from_slice(b"{\"code\":\"");
            body.extend_from_slice(v2_code(status).as_bytes());
            body.extend_from_slice(b"\",\"message\":\"");
        }
        Api::V1 | Api::V3 => body.extend_from_slice(b"{\"error\":\""),
    }
    response::json_escape(&mut body, message);
    body.extend_from_slice(b"\"}");
    body
}

/// One line a 3.x client's write lost, as InfluxDB 3 lists them under `data`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedLine {
    /// Physical line (1-based) on which the line starts in the client's body.
    pub line_number: usize,
    pub original_line: String,
    pub error_message: String,
}

/// Longest `original_line` echoed back: a client's own line needs no more to be
/// recognised, and a huge one must not make a huge error answer.
const ORIGINAL_LINE_MAX: usize = 256;

/// The 3.x body for lines refused: `{"error":"…","data":[{"original_line":…,
/// "line_number":…,"error_message":…},…]}`.
pub fn v3_rejected_body(error: &str, lines: &[RejectedLine]) -> Vec<u8> {
    let mut body = Vec::with_capacity(64 + lines.len() * 96);
    body.extend_from_slice(b"{\"error\":\"");
    response::json_escape(&mut body, error);
    body.extend_from_slice(b"\",\"data\":[");
    for (i, l) in lines.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        let mut cut = l.original_line.len().min(ORIGINAL_LINE_MAX);
        while !l.original_line.is_char_boundary(cut) {
            cut -= 1;
        }
        body.extend_from_slice(b"{\"original_line\":\"");
        response::json_escape(&mut body, &l.original_line[..cut]);
        let _ = write!(
            body,
            "\",\"line_number\":{},\"error_message\":\"",
            l.line_number
        );
        response::json_escape(&mut body, &l.error_message);
        body.extend_from_slice(b"\"}");
    }
    body.extend_from_slice(b"]}");
    body
}

/// A backend's error body in the shape `api`'s clients read, or `None` when it already
/// is in that shape (passed through untouched, details and all). The message is the
/// backend's `message` or `error` string, or its body as text when it is not JSON.
pub fn reshape(api: Api, status: u16, body: &[u8]) -> Option<Vec<u8>> {
    let has = |key| top_level_string(body, key).is_some();
    let fits = match api {
        Api::V1 | Api::V3 => has("error"),
        Api::V2 => has("code") && has("message"),
    };
    if fits {
        return None;
    }
    let message = top_level_string(body, "message")
        .or_else(|| top_level_string(body, "error"))
        .unwrap_or_else(|| plain_text(body));
    let message = if message.is_empty() {
        format!("backend answered {status}")
    } else {
        message
    };
    Some(error_body(api, status, &message))
}

/// A non-JSON body as one short line of text.
fn plain_text(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(ORIGINAL_LINE_MAX * 4)]);
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The string value of `key` at the top level of a JSON object; `None` when the body
/// is not an object, lacks the key or holds something else there. A tiny reader for
/// the error bodies of InfluxDB-like servers: no nesting is decoded, only skipped.
pub fn top_level_string(body: &[u8], key: &str) -> Option<String> {
    let mut r = Reader { b: body, i: 0 };
    r.ws();
    r.eat(b'{')?;
    loop {
        r.ws();
        if r.eat(b'}').is_some() {
            return None;
        }
        let k = r.string()?;
        r.ws();
        r.eat(b':')?;
        r.ws();
        if k == key && r.peek() == Some(b'"') {
            return r.string();
        }
        r.skip_value()?;
        r.ws();
        r.eat(b',')?;
    }
}

struct Reader<'a> {
    b: &'a [u8],
    i: usize,
}

impl Reader<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.peek() == Some(c)).then(|| self.i += 1)
    }

    fn string(&mut self) -> Option<String> {
        self.eat(b'"')?;
        let mut out = Vec::new();
        loop {
            let c = self.peek()?;
            self.i += 1;
            match c {
                b'"' => return Some(String::from_utf8_lossy(&out).into_owned()),
                b'\\' => {
                    let e = self.peek()?;
                    self.i += 1;
                    match e {
                        b'n' => out.push(b'\n'),
                        b't' => out.push(b'\t'),
                        b'r' => out.push(b'\r'),
                        b'b' | b'f' => out.push(b' '),
                        b'u' => {
                            let hex = self.b.get(self.i..self.i + 4)?;
                            self.i += 4;
                            let code =
                                u32::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
                            let c = char::from_u32(code).unwrap_or('\u{fffd}');
                            let mut buf = [0u8; 4];
                            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                        }
                        other => out.push(other),
                    }
                }
                other => out.push(other),
            }
        }
    }

    /// Skip one value of any kind, nested ones included.
    fn skip_value(&mut self) -> Option<()> {
        let mut depth = 0usize;
        loop {
            match self.peek()? {
                b'"' => {
                    self.string()?;
                }
                b'{' | b'[' => {
                    depth += 1;
                    self.i += 1;
                }
                b'}' | b']' => {
                    depth = depth.checked_sub(1)?;
                    self.i += 1;
                }
                b',' if depth == 0 => return Some(()),
                _ => self.i += 1,
            }
            if depth == 0 && matches!(self.peek(), Some(b',' | b'}') | None) {
                return Some(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apis_by_path() {
        assert_eq!(Api::of_path("/api/v2/write"), Api::V2);
        assert_eq!(Api::of_path("/api/v3/write_lp"), Api::V3);
        assert_eq!(Api::of_path("/write"), Api::V1);
        assert_eq!(Api::of_path("/api/v2/query"), Api::V1);
    }

    #[test]
    fn error_shapes() {
        assert_eq!(
            error_body(Api::V2, 400, "line 2: \"x\""),
            br#"{"code":"invalid","message":"line 2: \"x\""}"#
        );
        assert_eq!(
            error_body(Api::V2, 413, "too big"),
            br#"{"code":"request too large","message":"too big"}"#
        );
        assert_eq!(error_body(Api::V3, 404, "nope"), br#"{"error":"nope"}"#);
        let mut out = Vec::new();
        error(&mut out, Api::V2, 503, "later", "Retry-After: 1\r\n", false);
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
            "{text}"
        );
        assert!(text.contains("Retry-After: 1\r\n"));
        assert!(text.ends_with(r#"{"code":"unavailable","message":"later"}"#));
    }

    #[test]
    fn backend_bodies_are_reshaped_for_the_client() {
        let v1 = br#"{"error":"database not found: \"db\""}"#;
        assert_eq!(reshape(Api::V1, 404, v1), None);
        assert_eq!(reshape(Api::V3, 404, v1), None);
        assert_eq!(
            reshape(Api::V2, 404, v1).unwrap(),
            br#"{"code":"not found","message":"database not found: \"db\""}"#
        );
        let v2 = br#"{"code":"not found","message":"bucket \"x\" not found"}"#;
        assert_eq!(reshape(Api::V2, 404, v2), None);
        assert_eq!(
            reshape(Api::V1, 404, v2).unwrap(),
            br#"{"error":"bucket \"x\" not found"}"#
        );
        assert_eq!(
            reshape(Api::V2, 500, b"  plain\ntext ").unwrap(),
            br#"{"code":"internal error","message":"plain text"}"#
        );
        assert_eq!(
            reshape(Api::V3, 502, b"").unwrap(),
            br#"{"error":"backend answered 502"}"#
        );
    }

    #[test]
    fn top_level_strings_skip_nested_values() {
        let body = br#" { "data" : [{"error":"inner"}, 1, "s"], "n": -1.5e3, "ok": true,
            "error" : "outer \u00e9\n" } "#;
        assert_eq!(top_level_string(body, "error").unwrap(), "outer é\n");
        assert_eq!(top_level_string(body, "n"), None);
        assert_eq!(top_level_string(body, "missing"), None);
        for broken in [
            &b""[..],
            b"[",
            b"{\"error\"",
            b"{\"a\":{",
            b"{\"error\":\"x",
        ] {
            assert_eq!(top_level_string(broken, "error"), None);
        }
    }

    #[test]
    fn v3_rejected_lines_are_listed() {
        let body = v3_rejected_body(
            "partial write of line protocol occurred",
            &[RejectedLine {
                line_number: 2,
                original_line: "m v=".to_string(),
                error_message: "missing field value".to_string(),
            }],
        );
        assert_eq!(
            body,
            br#"{"error":"partial write of line protocol occurred","data":[{"original_line":"m v=","line_number":2,"error_message":"missing field value"}]}"#
        );
    }
}
