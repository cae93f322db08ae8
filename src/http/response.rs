//! Answers, written straight into a connection's output buffer. The common ones
//! (204, 100-continue) are constant bytes; errors are JSON as InfluxDB sends them.

use std::io::Write;

/// Sent to a client that asked `Expect: 100-continue`.
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

const NO_CONTENT: &[u8] = b"HTTP/1.1 204 No Content\r\nX-Influxdb-Version: relay\r\n\r\n";
const NO_CONTENT_CLOSE: &[u8] =
    b"HTTP/1.1 204 No Content\r\nX-Influxdb-Version: relay\r\nConnection: close\r\n\r\n";

pub fn reason(status: u16) -> &'static str {
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
        415 => "Unsupported Media Type",
        417 => "Expectation Failed",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}

/// `204 No Content`, the answer to almost every request.
pub fn no_content(out: &mut Vec<u8>, close: bool) {
    out.extend_from_slice(if close { NO_CONTENT_CLOSE } else { NO_CONTENT });
}

/// Any answer with a body. `extra` holds complete header lines (`Allow: POST\r\n`).
/// With `head_only` the body is announced but not sent (a `HEAD` request).
pub fn full(
    out: &mut Vec<u8>,
    status: u16,
    content_type: &str,
    extra: &str,
    body: &[u8],
    close: bool,
    head_only: bool,
) {
    let _ = write!(
        out,
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nX-Influxdb-Version: relay\r\n{extra}Content-Length: {}\r\n{}\r\n",
        reason(status),
        body.len(),
        if close { "Connection: close\r\n" } else { "" },
    );
    if !head_only {
        out.extend_from_slice(body);
    }
}

/// An InfluxDB-shaped error: `{"error":"<message>"}`, message also in
/// `X-Influxdb-Error` like InfluxDB does, so clients that read either see it.
pub fn error(out: &mut Vec<u8>, status: u16, message: &str, extra: &str, close: bool) {
    let mut body = Vec::with_capacity(message.len() + 12);
    body.extend_from_slice(b"{\"error\":\"");
    json_escape(&mut body, message);
    body.extend_from_slice(b"\"}");
    let mut header = String::with_capacity(extra.len() + message.len() + 20);
    header.push_str(extra);
    header.push_str("X-Influxdb-Error: ");
    header.extend(
        message
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c }),
    );
    header.push_str("\r\n");
    full(
        out,
        status,
        "application/json",
        &header,
        &body,
        close,
        false,
    );
}

/// Escape `s` for the inside of a JSON string.
pub fn json_escape(out: &mut Vec<u8>, s: &str) {
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_are_json() {
        let mut out = Vec::new();
        error(
            &mut out,
            400,
            "unable to parse points: line 1: bad \"x\"",
            "",
            false,
        );
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 400 Bad Request\r\n"));
        assert!(text.contains("Content-Type: application/json\r\n"));
        assert!(
            text.ends_with("\r\n\r\n{\"error\":\"unable to parse points: line 1: bad \\\"x\\\"\"}")
        );
        let len = "{\"error\":\"unable to parse points: line 1: bad \\\"x\\\"\"}".len();
        assert!(text.contains(&format!("Content-Length: {len}\r\n")));
    }
}
