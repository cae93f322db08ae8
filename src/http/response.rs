//! Answers, written straight into a connection's output buffer. The common ones
//! (204, 100-continue) are constant bytes; errors are JSON as InfluxDB sends them.
//! Every answer but the interim 100 carries `X-Influxdb-Build` and
//! `X-Influxdb-Version`, as InfluxDB's own do.

use std::io::Write;

/// Sent to a client that asked `Expect: 100-continue`.
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// What the relay says it is in `X-Influxdb-Version`. Clients mostly just show it, but
/// some read the leading number to pick between the 1.x and 2.x APIs, and a few compare
/// it with a minimum; `relay` alone (the original's value) parses as neither. So it is
/// an InfluxDB 1.x version, semver-shaped, with the relay's own version as build
/// metadata (ignored when versions are compared). 1.7, because every 1.x client
/// accepts it and it is below 1.8, from which clients may try InfluxDB 1.8's
/// `/api/v2/query` (Flux), which the relay does not serve. The 2.x and 3.x write
/// endpoints are served whatever this says (`http::api`).
macro_rules! influxdb_version {
    () => {
        concat!("1.7.0+influx-relay.", env!("CARGO_PKG_VERSION"))
    };
}

/// The header lines InfluxDB 1.x puts on every answer, and so does the relay.
/// `X-Influxdb-Build` is `OSS` as InfluxDB OSS sends it: some client libraries read it
/// without checking that it is there, and fail when it is missing.
macro_rules! identity {
    () => {
        concat!(
            "X-Influxdb-Build: OSS\r\nX-Influxdb-Version: ",
            influxdb_version!(),
            "\r\n"
        )
    };
}

/// `X-Influxdb-Version` of every answer (see `influxdb_version!`).
pub const INFLUXDB_VERSION: &str = influxdb_version!();

const IDENTITY: &str = identity!();

const NO_CONTENT: &[u8] = concat!("HTTP/1.1 204 No Content\r\n", identity!(), "\r\n").as_bytes();
const NO_CONTENT_CLOSE: &[u8] = concat!(
    "HTTP/1.1 204 No Content\r\n",
    identity!(),
    "Connection: close\r\n\r\n"
)
.as_bytes();

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
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\n{IDENTITY}{extra}Content-Length: {}\r\n{}\r\n",
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
