//! TLS on both sides: HTTPS listeners (`ssl-combined-pem`, `ssl-min-version`) answering
//! a rustls client, and `https://` outputs (`ca-file`, `skip-tls-verification`) against
//! a small TLS backend run by the test. Certificates are the fixtures in
//! `tests/data/tls` (a test CA and a leaf for `localhost` / 127.0.0.1).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, StreamOwned};

use crate::util::*;

fn fixture(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/tls")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A client that trusts the test CA, speaking the given TLS versions.
fn client_config(versions: &[&'static rustls::SupportedProtocolVersion]) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    let pem = std::fs::read(fixture("ca.pem")).expect("ca fixture");
    for cert in rustls_pemfile::certs(&mut &pem[..]) {
        roots.add(cert.expect("ca pem")).expect("ca cert");
    }
    let config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

fn tls_connect(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
) -> io::Result<StreamOwned<ClientConnection, TcpStream>> {
    let socket = TcpStream::connect_timeout(&addr, HTTP_TIMEOUT)?;
    socket.set_read_timeout(Some(HTTP_TIMEOUT))?;
    socket.set_write_timeout(Some(HTTP_TIMEOUT))?;
    let name = ServerName::try_from("localhost").expect("name");
    let session = ClientConnection::new(config, name).map_err(io::Error::other)?;
    let mut stream = StreamOwned::new(session, socket);
    while stream.conn.is_handshaking() {
        stream.conn.complete_io(&mut stream.sock)?;
    }
    Ok(stream)
}

/// Send `requests` (already framed) on one TLS connection; read until the server closes.
fn https_exchange(addr: SocketAddr, requests: &[u8]) -> io::Result<Vec<Response>> {
    let mut stream = tls_connect(addr, client_config(rustls::DEFAULT_VERSIONS))?;
    stream.write_all(requests)?;
    stream.flush()?;
    let mut bytes = Vec::new();
    match stream.read_to_end(&mut bytes) {
        Ok(_) => {}
        // A close without close_notify still ends a response framed by length.
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {}
        Err(e) => return Err(e),
    }
    Ok(parse_responses(&bytes))
}

fn request(method: &str, target: &str, body: &[u8], close: bool) -> Vec<u8> {
    let connection = if close { "close" } else { "keep-alive" };
    let mut out = format!(
        "{method} {target} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\nConnection: {connection}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// A relay with a plain listener (first, so the harness can see it is ready) and an
/// HTTPS one, both to the shared backends with `ack = "all"`.
fn relay_with_https(extra: &[(&str, &str)]) -> (Relay, SocketAddr, SocketAddr) {
    let mut cfg = RelayConfig::new()
        .global("log-level", "debug")
        .http_listener("plain", "all")
        .outputs_to(shared_backends(), "5s")
        .http_listener("secure", "all")
        .listener_opt("ssl-combined-pem", fixture("localhost.pem"));
    for (key, value) in extra {
        cfg = cfg.listener_opt(key, *value);
    }
    let cfg = cfg.outputs_to(shared_backends(), "5s");
    let relay = Relay::start(&cfg.to_toml());
    (
        relay,
        cfg.listener_addr("plain"),
        cfg.listener_addr("secure"),
    )
}

#[test]
fn https_listener_answers_ping_and_write_to_both_backends() {
    let db = shared_db("tls_in");
    let (relay, _, secure) = relay_with_https(&[]);

    let ping = https_exchange(secure, &request("GET", "/ping", b"", true)).expect("ping");
    assert_eq!(ping.len(), 1);
    assert_eq!(ping[0].status, 204);
    assert_identity(&ping[0]);

    // Keep-alive and pipelining over TLS, with a body far larger than one TLS record.
    let big: String = (0..20_000)
        .map(|i| format!("tls_big,host=h{} value={i} {}\n", i % 7, 1_000_000_000 + i))
        .collect();
    let mut requests = request(
        "POST",
        &format!("/write?db={db}"),
        b"tls_small,host=a value=1 1000000000\ntls_small,host=b value=2 2000000000\n",
        false,
    );
    requests.extend(request(
        "POST",
        &format!("/write?db={db}"),
        big.as_bytes(),
        false,
    ));
    requests.extend(request("GET", "/ping", b"", true));
    let answers = https_exchange(secure, &requests).expect("writes");
    let statuses: Vec<u16> = answers.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [204, 204, 204], "{answers:?}");

    for influxd in shared_backends() {
        assert_eq!(count(influxd.http_addr(), &db, "tls_small"), 2);
        assert_eq!(count(influxd.http_addr(), &db, "tls_big"), 20_000);
    }
    assert!(relay.is_running());
}

#[test]
fn plain_http_to_the_tls_port_is_closed_and_everyone_else_is_served() {
    let (relay, plain, secure) = relay_with_https(&[]);

    let got = raw_exchange(
        secure,
        b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n",
        Duration::from_secs(5),
    );
    // At most a TLS alert record (content type 21), never an HTTP answer.
    assert!(
        got.is_empty() || got[0] == 21,
        "plain client got {:?}",
        String::from_utf8_lossy(&got)
    );
    // Garbage that looks like the start of a handshake, then a close.
    let _ = raw_exchange(
        secure,
        &[22, 3, 1, 0, 200, 1, 0],
        Duration::from_millis(200),
    );

    let ping = https_exchange(secure, &request("GET", "/ping", b"", true)).expect("https ping");
    assert_eq!(ping[0].status, 204);
    let ping = http_request(plain, "GET", "/ping", &[], b"");
    assert_eq!(ping.status, 204);
    assert!(relay.is_running());
    assert!(
        relay.wait_for_log("TLS handshake failed", Duration::from_secs(5)),
        "{}",
        relay.stderr_text()
    );
}

#[test]
fn ssl_min_version_1_3_refuses_a_tls_1_2_client() {
    let (relay, _, secure) = relay_with_https(&[("ssl-min-version", "1.3")]);
    let old = tls_connect(secure, client_config(&[&rustls::version::TLS12]));
    assert!(old.is_err(), "a TLS 1.2 client got through");
    let mut new = tls_connect(secure, client_config(&[&rustls::version::TLS13])).expect("1.3");
    assert_eq!(
        new.conn.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    new.write_all(&request("GET", "/ping", b"", true)).unwrap();
    let mut bytes = Vec::new();
    let _ = new.read_to_end(&mut bytes);
    assert_eq!(parse_responses(&bytes)[0].status, 204);
    assert!(relay.is_running());
}

#[test]
fn https_listener_with_a_missing_pem_does_not_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("relay.toml");
    let text = RelayConfig::new()
        .http_listener("secure", "any")
        .listener_opt("ssl-combined-pem", "/nonexistent/relay.pem")
        .output("b0", "http://127.0.0.1:9/write", "1s")
        .to_toml();
    std::fs::write(&config, text).unwrap();
    for check in [true, false] {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_influx-relay"));
        cmd.arg("--config").arg(&config).current_dir(dir.path());
        if check {
            cmd.arg("--check-config");
        }
        let out = cmd.output().expect("run the relay");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "check={check}: {stderr}");
        assert!(
            stderr.contains("\"/nonexistent/relay.pem\": cannot read"),
            "check={check}: {stderr}"
        );
        assert!(
            stderr.contains("http[0].ssl-combined-pem"),
            "check={check}: {stderr}"
        );
    }
}

/// What the TLS backend saw of one request.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    target: String,
    body: Vec<u8>,
    /// The SNI the client sent (none for an IP address).
    sni: Option<String>,
}

/// A tiny HTTPS backend: serves the test certificate, records every request and
/// answers 204, one thread per connection. Threads end with their connection; the
/// accepting thread lives as long as the test binary.
struct TlsBackend {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl TlsBackend {
    fn start() -> TlsBackend {
        let pem = std::fs::read(fixture("localhost.pem")).expect("fixture");
        let certs: Vec<_> = rustls_pemfile::certs(&mut &pem[..])
            .collect::<Result<_, _>>()
            .expect("certs");
        let key = rustls_pemfile::private_key(&mut &pem[..])
            .expect("key")
            .expect("a key");
        let config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .expect("server config");
        let config = Arc::new(config);
        let port = free_port();
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind the TLS backend");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::clone(&seen);
        thread::spawn(move || {
            for socket in listener.incoming() {
                let Ok(socket) = socket else { continue };
                let (config, record) = (Arc::clone(&config), Arc::clone(&record));
                // Errors (a client that refuses the certificate) just end the connection.
                thread::spawn(move || serve(socket, config, record));
            }
        });
        TlsBackend { port, seen }
    }

    fn writes(&self) -> Vec<Seen> {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.iter()
            .filter(|s| s.method == "POST")
            .cloned()
            .collect()
    }
}

fn serve(
    socket: TcpStream,
    config: Arc<ServerConfig>,
    seen: Arc<Mutex<Vec<Seen>>>,
) -> io::Result<()> {
    socket.set_read_timeout(Some(HTTP_TIMEOUT))?;
    let session = rustls::ServerConnection::new(config).map_err(io::Error::other)?;
    let mut tls = StreamOwned::new(session, socket);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let (head_len, method, target, length) = loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut req = httparse::Request::new(&mut headers);
            if let httparse::Status::Complete(n) = req.parse(&buf).map_err(io::Error::other)? {
                let length = req
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse().ok())
                    .unwrap_or(0usize);
                let method = req.method.unwrap_or_default().to_string();
                let target = req.path.unwrap_or_default().to_string();
                break (n, method, target, length);
            }
            let n = tls.read(&mut chunk)?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        while buf.len() < head_len + length {
            let n = tls.read(&mut chunk)?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let body = buf[head_len..head_len + length].to_vec();
        buf.drain(..head_len + length);
        let sni = tls.conn.server_name().map(str::to_string);
        seen.lock().unwrap_or_else(|e| e.into_inner()).push(Seen {
            method,
            target,
            body,
            sni,
        });
        tls.write_all(b"HTTP/1.1 204 No Content\r\nX-Influxdb-Version: tls-test\r\n\r\n")?;
        tls.flush()?;
    }
}

/// A relay with one plain listener whose only output is `location`, plus `options`.
fn relay_to(location: &str, options: &[(&str, toml::Value)]) -> Relay {
    let mut cfg =
        RelayConfig::new()
            .http_listener("in", "any")
            .output("tls-backend", location, "3s");
    for (key, value) in options {
        cfg = cfg.output_opt(key, value.clone());
    }
    Relay::start(&cfg.to_toml())
}

const LINE: &str = "tls_out,host=a value=1 1000000000\n";

#[test]
fn https_output_verified_with_ca_file() {
    let backend = TlsBackend::start();
    // A host name, so the certificate is checked by DNS name and SNI is sent.
    let location = format!("https://localhost:{}/write", backend.port);
    let relay = relay_to(&location, &[("ca-file", fixture("ca.pem").into())]);
    let resp = relay.write("tls_db", LINE);
    assert_eq!(resp.status, 204, "{}", resp.body_str());
    let writes = backend.writes();
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert_eq!(writes[0].target, "/write?db=tls_db");
    assert_eq!(writes[0].body, LINE.as_bytes());
    assert_eq!(writes[0].sni.as_deref(), Some("localhost"));
}

#[test]
fn https_output_with_an_unknown_issuer_fails() {
    let backend = TlsBackend::start();
    let location = format!("https://127.0.0.1:{}/write", backend.port);
    // No ca-file: the system roots do not know the test CA.
    let relay = relay_to(&location, &[]);
    let resp = relay.write("tls_db", LINE);
    assert_eq!(resp.status, 503, "{}", resp.body_str());
    assert!(backend.writes().is_empty());
    assert!(
        relay.wait_for_log("UnknownIssuer", Duration::from_secs(5)),
        "{}",
        relay.stderr_text()
    );
    assert!(relay.is_running());
}

#[test]
fn https_output_with_skip_tls_verification_accepts_any_certificate() {
    let backend = TlsBackend::start();
    let location = format!("https://127.0.0.1:{}/write", backend.port);
    let relay = relay_to(&location, &[("skip-tls-verification", true.into())]);
    assert!(
        relay.wait_for_log(
            "TLS certificate verification is off",
            Duration::from_secs(5)
        ),
        "{}",
        relay.stderr_text()
    );
    for i in 0..3 {
        let resp = relay.write("tls_db", &format!("tls_out value={i} {i}\n"));
        assert_eq!(resp.status, 204, "{}", resp.body_str());
    }
    let writes = backend.writes();
    assert_eq!(writes.len(), 3, "{writes:?}");
    // An IP address is checked against IP SANs and never sent as SNI.
    assert_eq!(writes[0].sni, None);
}

/// A refused client over TLS reads its answer and a `close_notify`, not a reset: the
/// lingering close shuts the write side of TLS connections too.
#[test]
fn a_refusal_over_tls_ends_cleanly_while_the_client_still_sends() {
    let (_relay, _, secure) = relay_with_https(&[]);
    let mut stream = tls_connect(secure, client_config(rustls::DEFAULT_VERSIONS)).expect("tls");
    // A 200 KB head, and 2 MiB after it that the client is still sending when the
    // relay has answered 431.
    let mut request = format!(
        "POST /write?db=x HTTP/1.1\r\nHost: localhost\r\nX-Big: {}\r\n\r\n",
        "a".repeat(200_000)
    )
    .into_bytes();
    request.resize(request.len() + (2 << 20), b'#');
    stream.write_all(&request).expect("send it all");
    stream.flush().expect("flush");
    let mut bytes = Vec::new();
    stream
        .read_to_end(&mut bytes)
        .expect("the answer, then close_notify");
    let answers = parse_responses(&bytes);
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].status, 431);
}
