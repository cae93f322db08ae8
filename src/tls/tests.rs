use super::*;
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/tls")
        .join(name)
}

fn fixture_text(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name)).expect("fixture")
}

/// A temp file holding `parts` one after the other.
fn pem_file(parts: &[&[u8]]) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().expect("temp file");
    for part in parts {
        f.write_all(part).expect("write temp file");
    }
    f
}

fn combined_error(path: &Path) -> TlsError {
    match load_combined_pem(path) {
        Ok(_) => panic!("{} loaded", path.display()),
        Err(e) => e,
    }
}

/// The combined fixture split into (leaf, CA, key) sections.
fn sections() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let text = String::from_utf8(fixture_text("localhost.pem")).expect("utf-8");
    let ends: Vec<usize> = text.match_indices("-----END ").map(|(i, _)| i).collect();
    let cut = |i: usize| text[i..].find('\n').map_or(text.len(), |n| i + n + 1);
    let (a, b) = (cut(ends[0]), cut(ends[1]));
    let bytes = text.as_bytes();
    (
        bytes[..a].to_vec(),
        bytes[a..b].to_vec(),
        bytes[b..].to_vec(),
    )
}

#[test]
fn combined_fixture_loads_with_its_chain() {
    let (certs, _key) = load_combined_pem(&fixture("localhost.pem")).unwrap();
    assert_eq!(certs.len(), 2, "leaf and CA");
    for version in [TlsVersion::V1_2, TlsVersion::V1_3] {
        server_config(&fixture("localhost.pem"), version).unwrap();
    }
}

#[test]
fn missing_file_is_named() {
    let e = combined_error(Path::new("/nonexistent/relay.pem"));
    assert_eq!(
        e.to_string(),
        "\"/nonexistent/relay.pem\": cannot read: No such file or directory (os error 2)"
    );
    let dir = tempfile::tempdir().unwrap();
    let e = combined_error(dir.path());
    assert!(e.message.starts_with("cannot read: "), "{e}");
    assert_eq!(e.file.as_deref(), Some(dir.path()));
}

#[test]
fn certificate_or_key_missing() {
    let (leaf, ca, key) = sections();
    for (parts, want) in [
        (vec![], "no certificate"),
        (vec![&b"just some text\n"[..]], "no certificate"),
        (vec![&key[..]], "no certificate"),
        (vec![&leaf[..], &ca[..]], "no private key"),
    ] {
        let f = pem_file(&parts);
        let e = combined_error(f.path());
        assert!(e.message.starts_with(want), "{e}");
        assert!(e.to_string().contains(&*f.path().to_string_lossy()), "{e}");
    }
}

#[test]
fn two_keys_are_refused() {
    let (leaf, _, key) = sections();
    let f = pem_file(&[&leaf, &key, &fixture_text("other-key.pem")]);
    assert!(combined_error(f.path())
        .message
        .starts_with("more than one private key"));
}

#[test]
fn encrypted_key_says_so() {
    let (leaf, _, _) = sections();
    let encrypted =
        b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n";
    let f = pem_file(&[&leaf, encrypted]);
    assert!(combined_error(f.path())
        .message
        .starts_with("the private key is encrypted"));
}

#[test]
fn malformed_section_is_refused() {
    let f =
        pem_file(&[b"-----BEGIN CERTIFICATE-----\n!!!not base64!!!\n-----END CERTIFICATE-----\n"]);
    assert!(combined_error(f.path())
        .message
        .starts_with("malformed PEM"));
}

#[test]
fn key_of_another_certificate_is_refused() {
    let (leaf, ca, _) = sections();
    let f = pem_file(&[&leaf, &ca, &fixture_text("other-key.pem")]);
    let e = server_config(f.path(), TlsVersion::V1_2).unwrap_err();
    assert!(
        e.message.starts_with("certificate and key cannot be used"),
        "{e}"
    );
    assert_eq!(e.file.as_deref(), Some(f.path()));
}

#[test]
fn oversized_file_is_not_read_whole() {
    let e = combined_error(Path::new("/dev/zero"));
    assert_eq!(
        e.message,
        format!("larger than {MAX_PEM_SIZE} bytes: not a PEM file")
    );
}

#[test]
fn ca_file() {
    assert_eq!(load_ca_file(&fixture("ca.pem")).unwrap().len(), 1);
    let e = load_ca_file(&fixture("other-key.pem")).unwrap_err();
    assert!(e.message.starts_with("no certificate"), "{e}");
    // Valid PEM, but the DER inside is no certificate.
    let f = pem_file(&[b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"]);
    let e = load_ca_file(f.path()).unwrap_err();
    assert!(e.message.starts_with("certificate 1 is unusable"), "{e}");
}

fn config(listener: &str, output: &str) -> Config {
    crate::config::parse(&format!(
        "[[http]]\nbind-addr = \"127.0.0.1:0\"\n{listener}\n\
         [[http.output]]\nlocation = \"https://127.0.0.1:8086/write\"\n{output}\n"
    ))
    .expect("config")
}

#[test]
fn check_names_the_key_and_the_file() {
    let good = fixture("localhost.pem");
    let ca = fixture("ca.pem");
    check(&config(
        &format!("ssl-combined-pem = {:?}", good.display().to_string()),
        &format!("ca-file = {:?}", ca.display().to_string()),
    ))
    .unwrap();

    let e = check(&config("ssl-combined-pem = \"/no/such.pem\"", "")).unwrap_err();
    assert_eq!(e.path, "http[0].ssl-combined-pem");
    assert!(
        e.message.starts_with("\"/no/such.pem\": cannot read"),
        "{e}"
    );

    let e = check(&config("", "ca-file = \"/no/ca.pem\"")).unwrap_err();
    assert_eq!(e.path, "http[0].output[0].ca-file");
    assert!(e.message.starts_with("\"/no/ca.pem\": cannot read"), "{e}");
}

#[test]
fn client_settings_per_output() {
    let plain = crate::config::parse(
        "[[http]]\nbind-addr = \"127.0.0.1:0\"\n\
         output = [ { location = \"http://127.0.0.1:8086/write\" } ]",
    )
    .unwrap();
    assert!(client_tls(&plain.http[0].outputs[0]).unwrap().is_none());

    let ca = format!("ca-file = {:?}", fixture("ca.pem").display().to_string());
    let tls = client_tls(&config("", &ca).http[0].outputs[0]).unwrap();
    let tls = tls.expect("https output");
    assert_eq!(
        tls.server_name,
        ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into())
    );
    let skip = config("", "skip-tls-verification = true");
    assert!(client_tls(&skip.http[0].outputs[0]).unwrap().is_some());
    let missing = config("", "ca-file = \"/no/ca.pem\"");
    assert!(client_tls(&missing.http[0].outputs[0]).is_err());
}

/// Retry `step` on every poll wake-up (and every 20 ms) until it yields a value;
/// `WouldBlock` just means "not yet".
fn pump<T>(poll: &mut Poll, mut step: impl FnMut() -> io::Result<Option<T>>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut events = Events::with_capacity(8);
    loop {
        match step() {
            Ok(Some(v)) => return v,
            Ok(None) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("transport error: {e}"),
        }
        assert!(Instant::now() < deadline, "no progress");
        poll.poll(&mut events, Some(Duration::from_millis(20)))
            .expect("poll");
    }
}

/// A TLS `Transport` on a non-blocking socket, accepted from a fresh listener, and
/// the client thread's result.
fn accept_tls<T: Send + 'static>(
    client: impl FnOnce(std::net::TcpStream) -> T + Send + 'static,
) -> (Poll, Transport, std::thread::JoinHandle<T>) {
    let mut poll = Poll::new().unwrap();
    let mut listener = mio::net::TcpListener::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    poll.registry()
        .register(&mut listener, Token(0), Interest::READABLE)
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let handle =
        std::thread::spawn(move || client(std::net::TcpStream::connect(addr).expect("connect")));
    let config = server_config(&fixture("localhost.pem"), TlsVersion::V1_2).unwrap();
    let (socket, peer) = pump(&mut poll, || listener.accept().map(Some));
    let mut transport = Transport::accept(socket, Some(&config), peer).unwrap();
    poll.registry()
        .register(
            &mut transport,
            Token(1),
            Interest::READABLE | Interest::WRITABLE,
        )
        .unwrap();
    (poll, transport, handle)
}

fn verifying_client() -> ClientConnection {
    let roots = load_ca_file(&fixture("ca.pem")).unwrap();
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from("localhost").unwrap();
    ClientConnection::new(Arc::new(config), name).unwrap()
}

/// An answer far larger than the socket buffers makes every layer hit `WouldBlock`:
/// the session's buffer fills, the socket refuses, and what is left must still arrive
/// once the client reads.
#[test]
fn large_answer_through_a_slow_reader_arrives_whole() {
    const ANSWER: usize = 8 << 20;
    let (mut poll, mut transport, client) = accept_tls(|socket| {
        let mut tls = StreamOwned::new(verifying_client(), socket);
        tls.write_all(b"hello").expect("client write");
        tls.flush().expect("client flush");
        std::thread::sleep(Duration::from_millis(300));
        let mut got = Vec::new();
        tls.read_to_end(&mut got).map(|_| got)
    });
    let mut request = Vec::new();
    pump(&mut poll, || {
        let mut buf = [0u8; 64];
        let n = transport.read(&mut buf)?;
        request.extend_from_slice(&buf[..n]);
        Ok((request.len() >= 5 || n == 0).then_some(()))
    });
    assert_eq!(request, b"hello");

    let answer: Vec<u8> = (0..ANSWER).map(|i| (i % 251) as u8).collect();
    let mut sent = 0;
    let mut blocked = false;
    pump(&mut poll, || {
        while sent < answer.len() {
            match transport.write(&answer[sent..]) {
                Ok(n) => sent += n,
                Err(e) => {
                    blocked |= e.kind() == io::ErrorKind::WouldBlock;
                    return Err(e);
                }
            }
        }
        transport.flush().map(Some)
    });
    assert!(blocked, "the test must exercise WouldBlock");
    assert_eq!(transport.pending_output(), 0);
    transport.close_notify();
    pump(&mut poll, || transport.flush().map(Some));
    drop(transport);
    let got = client.join().unwrap().expect("client read");
    assert!(got == answer, "got {} of {} bytes", got.len(), answer.len());
}

#[test]
fn plain_http_to_a_tls_transport_is_an_error_and_counted() {
    let before = handshake_failures();
    let (mut poll, mut transport, client) = accept_tls(|mut socket| {
        socket
            .write_all(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
            .expect("client write");
        socket
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut got = Vec::new();
        let _ = socket.read_to_end(&mut got);
        got
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let error = loop {
        let mut buf = [0u8; 64];
        match transport.read(&mut buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            other => break other,
        }
        assert!(Instant::now() < deadline, "no verdict");
        poll.poll(
            &mut Events::with_capacity(4),
            Some(Duration::from_millis(20)),
        )
        .unwrap();
    };
    assert_eq!(error.unwrap_err().kind(), io::ErrorKind::InvalidData);
    assert!(handshake_failures() > before);
    drop(transport);
    let got = client.join().unwrap();
    // A TLS alert record (content type 21), never an HTTP answer.
    assert_eq!(got.first(), Some(&21), "{got:?}");
}
