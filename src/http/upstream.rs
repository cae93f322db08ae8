//! Read queries proxied to one backend, sans-I/O parts: the request we send and the
//! response head we pass back. The event loop streams the body through as it comes.

use std::fmt::Write as _;

/// Where reads for one backend go.
#[derive(Debug, Clone)]
pub struct QueryTarget {
    pub name: String,
    /// `None` when the host did not resolve at start-up or the backend is HTTPS
    /// (reads are proxied in plain HTTP only).
    pub addr: Option<std::net::SocketAddr>,
    pub host_header: String,
    pub path: String,
    /// `Authorization` from the output's `http-user`/`http-pass`: sent in place of the
    /// client's, as with writes.
    pub authorization: Option<String>,
}

/// The request for a read: a `GET` with every parameter in the URL, and
/// `Connection: close` so the end of the backend's answer is its EOF. `authorization`
/// is the client's (when its listener forwards it); the output's own credentials
/// replace it.
pub fn read_request(target: &QueryTarget, params: &str, authorization: Option<&[u8]>) -> Vec<u8> {
    let authorization = target
        .authorization
        .as_deref()
        .map(str::as_bytes)
        .or(authorization);
    let mut out = Vec::with_capacity(256 + params.len());
    out.extend_from_slice(b"GET ");
    out.extend_from_slice(target.path.as_bytes());
    out.push(b'?');
    out.extend_from_slice(params.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    out.extend_from_slice(target.host_header.as_bytes());
    out.extend_from_slice(
        b"\r\nUser-Agent: influx-relay\r\nAccept-Encoding: identity\r\nConnection: close\r\n",
    );
    if let Some(auth) = authorization {
        out.extend_from_slice(b"Authorization: ");
        out.extend_from_slice(auth);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// A backend's response head, rewritten for the client.
#[derive(Debug)]
pub struct ForwardHead {
    pub bytes: Vec<u8>,
    pub status: u16,
    /// The body runs to EOF (no length, not chunked): the client connection must
    /// close after it.
    pub close_delimited: bool,
}

/// Parse a complete response head (`buf[..end]`) and rewrite it: hop-by-hop
/// headers dropped, ours added. `None` if it is not a valid response head.
pub fn forward_head(
    buf: &[u8],
    backend: &str,
    behind: bool,
    client_close: bool,
) -> Option<ForwardHead> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    match resp.parse(buf) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return None,
    }
    let status = resp.code?;
    let mut framed = status == 204 || status == 304;
    let mut out = String::with_capacity(buf.len() + 96);
    let _ = write!(out, "HTTP/1.1 {status} {}\r\n", resp.reason.unwrap_or(""));
    let mut raw = Vec::new();
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("connection") || h.name.eq_ignore_ascii_case("keep-alive") {
            continue;
        }
        if h.name.eq_ignore_ascii_case("content-length")
            || h.name.eq_ignore_ascii_case("transfer-encoding")
        {
            framed = true;
        }
        raw.extend_from_slice(h.name.as_bytes());
        raw.extend_from_slice(b": ");
        raw.extend_from_slice(h.value);
        raw.extend_from_slice(b"\r\n");
    }
    let _ = write!(out, "X-Relay-Backend: {backend}\r\n");
    if behind {
        // No backend had every write: this one answered as the least behind.
        out.push_str("X-Relay-Behind: true\r\n");
    }
    if !framed || client_close {
        out.push_str("Connection: close\r\n");
    }
    let mut bytes = out.into_bytes();
    let head_start = bytes.len();
    bytes.extend_from_slice(&raw);
    bytes.extend_from_slice(b"\r\n");
    debug_assert!(bytes.len() >= head_start);
    Some(ForwardHead {
        bytes,
        status,
        close_delimited: !framed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_carries_params_auth_and_close() {
        let t = QueryTarget {
            name: "a".into(),
            addr: None,
            host_header: "127.0.0.1:8086".into(),
            path: "/query".into(),
            authorization: None,
        };
        let r = read_request(&t, "db=x&q=SHOW%20DATABASES", Some(b"Basic eDp5"));
        let text = String::from_utf8(r).unwrap();
        assert!(text.starts_with(
            "GET /query?db=x&q=SHOW%20DATABASES HTTP/1.1\r\nHost: 127.0.0.1:8086\r\n"
        ));
        assert!(text.contains("Connection: close\r\n"));
        assert!(text.ends_with("Authorization: Basic eDp5\r\n\r\n"));

        // An output with http-user/http-pass sends its own, with or without the client's.
        let own = QueryTarget {
            authorization: Some("Basic cmVsYXk6cHc=".into()),
            ..t
        };
        for client in [Some(&b"Basic eDp5"[..]), None] {
            let text = String::from_utf8(read_request(&own, "q=x", client)).unwrap();
            assert!(text.ends_with("\r\nAuthorization: Basic cmVsYXk6cHc=\r\n\r\n"));
            assert!(!text.contains("eDp5"));
        }
    }

    #[test]
    fn head_is_rewritten() {
        let head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n";
        let f = forward_head(head, "b0", true, false).unwrap();
        let text = String::from_utf8(f.bytes).unwrap();
        assert_eq!(f.status, 200);
        assert!(!f.close_delimited);
        assert!(!text.contains("Connection"), "{text}");
        assert!(
            text.contains("X-Relay-Backend: b0\r\n") && text.contains("X-Relay-Behind: true\r\n")
        );
        assert!(text.ends_with("Transfer-Encoding: chunked\r\n\r\n"));

        let f = forward_head(b"HTTP/1.1 200 OK\r\n\r\n", "b0", false, false).unwrap();
        assert!(f.close_delimited);
        assert!(String::from_utf8(f.bytes)
            .unwrap()
            .contains("Connection: close\r\n"));
        assert!(forward_head(b"garbage\r\n\r\n", "b0", false, false).is_none());
    }
}
