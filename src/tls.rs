//! TLS on both sides of the relay, with rustls and its `ring` provider.
//!
//! - **HTTPS listeners** (`ssl-combined-pem`): an event-loop connection reads and writes
//!   through a [`Transport`]. Its plain variant is the bare socket; its TLS variant
//!   drives a `rustls::ServerConnection` without ever blocking: "no decrypted input
//!   yet" is `WouldBlock`, exactly like an empty socket, and records the session could
//!   not hand to the kernel stay visible through [`Transport::pending_output`], so the
//!   loop flushes them when the socket turns writable.
//! - **HTTPS backends** (`https://` locations): workers are threads with blocking
//!   sockets, so [`ClientTls::connect`] completes the handshake up front and returns a
//!   `rustls::StreamOwned`. The chain is checked against the system roots, or the
//!   output's `ca-file`; `skip-tls-verification` accepts any certificate.
//! - **Files** are read and checked at start-up ([`check`] for `--check-config`,
//!   [`server_config`] and [`client_tls`] when the relay starts): a missing, unreadable
//!   or unusable PEM file stops the relay with the file's name, never a failed handshake
//!   later.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use mio::net::TcpStream;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore, ServerConfig,
    ServerConnection, SignatureScheme, StreamOwned,
};

use crate::config::{Config, ConfigError, HttpOutput, TlsVersion};

/// PEM files above this size are refused: certificates and keys are a few KiB, so a
/// bigger file is a wrong path (and `/dev/zero` must not exhaust memory).
pub const MAX_PEM_SIZE: u64 = 1 << 20;

/// Minimum interval between two log lines about failed client handshakes.
const FAILURE_LOG_INTERVAL_MS: u64 = 5_000;

/// Handshakes with HTTPS clients that failed (wrong protocol, no shared cipher suite, a
/// version below `ssl-min-version`...), process-wide.
static HANDSHAKE_FAILURES: AtomicU64 = AtomicU64::new(0);

/// How many client handshakes failed since start, over all listeners and loops.
pub fn handshake_failures() -> u64 {
    HANDSHAKE_FAILURES.load(Ordering::Relaxed)
}

/// A TLS file or setting that cannot be used, naming the file when there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsError {
    pub file: Option<PathBuf>,
    pub message: String,
}

impl TlsError {
    fn in_file(file: &Path, message: impl Into<String>) -> TlsError {
        TlsError {
            file: Some(file.to_path_buf()),
            message: message.into(),
        }
    }
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.file {
            Some(file) => write!(f, "\"{}\": {}", file.display(), self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for TlsError {}

impl From<TlsError> for io::Error {
    fn from(e: TlsError) -> io::Error {
        io::Error::other(e.to_string())
    }
}

/// The `ring` provider, named explicitly everywhere so that nothing depends on which
/// provider some other crate might install as the process default.
fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

// ---------------------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------------------

fn read_pem(path: &Path) -> Result<Vec<u8>, TlsError> {
    let file = std::fs::File::open(path)
        .map_err(|e| TlsError::in_file(path, format!("cannot read: {e}")))?;
    let mut text = Vec::new();
    file.take(MAX_PEM_SIZE + 1)
        .read_to_end(&mut text)
        .map_err(|e| TlsError::in_file(path, format!("cannot read: {e}")))?;
    if text.len() as u64 > MAX_PEM_SIZE {
        return Err(TlsError::in_file(
            path,
            format!("larger than {MAX_PEM_SIZE} bytes: not a PEM file"),
        ));
    }
    Ok(text)
}

/// The certificates and private keys of one PEM file; other sections are ignored.
struct Pem {
    certs: Vec<CertificateDer<'static>>,
    keys: Vec<PrivateKeyDer<'static>>,
    /// An `ENCRYPTED PRIVATE KEY` section was seen (rustls cannot use it).
    encrypted_key: bool,
}

fn parse_pem(path: &Path, text: &[u8]) -> Result<Pem, TlsError> {
    let mut pem = Pem {
        certs: Vec::new(),
        keys: Vec::new(),
        encrypted_key: memchr::memmem::find(text, b"-----BEGIN ENCRYPTED PRIVATE KEY").is_some(),
    };
    for item in rustls_pemfile::read_all(&mut &text[..]) {
        let item = item.map_err(|e| TlsError::in_file(path, format!("malformed PEM: {e:?}")))?;
        match item {
            rustls_pemfile::Item::X509Certificate(cert) => pem.certs.push(cert),
            rustls_pemfile::Item::Pkcs1Key(key) => pem.keys.push(key.into()),
            rustls_pemfile::Item::Pkcs8Key(key) => pem.keys.push(key.into()),
            rustls_pemfile::Item::Sec1Key(key) => pem.keys.push(key.into()),
            // CRLs, CSRs, public keys: nothing a listener or a client uses.
            _ => {}
        }
    }
    Ok(pem)
}

/// `ssl-combined-pem`: the certificate chain (leaf first) and its private key, in one
/// file, as influxdb-relay read it.
pub fn load_combined_pem(
    path: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let pem = parse_pem(path, &read_pem(path)?)?;
    if pem.certs.is_empty() {
        return Err(TlsError::in_file(
            path,
            "no certificate (expected a \"BEGIN CERTIFICATE\" section, the server's own first)",
        ));
    }
    let mut keys = pem.keys.into_iter();
    let key = match (keys.next(), keys.next()) {
        (Some(key), None) => key,
        (Some(_), Some(_)) => {
            return Err(TlsError::in_file(
                path,
                "more than one private key; keep only the certificate's own",
            ))
        }
        (None, _) if pem.encrypted_key => {
            return Err(TlsError::in_file(
                path,
                "the private key is encrypted; store it unencrypted (openssl pkey -in KEY)",
            ))
        }
        (None, _) => {
            return Err(TlsError::in_file(
                path,
                "no private key (expected a \"BEGIN PRIVATE KEY\", \"BEGIN RSA PRIVATE KEY\" \
                 or \"BEGIN EC PRIVATE KEY\" section)",
            ))
        }
    };
    Ok((pem.certs, key))
}

/// `ca-file`: the certificates an output's chain must lead to.
pub fn load_ca_file(path: &Path) -> Result<RootCertStore, TlsError> {
    let pem = parse_pem(path, &read_pem(path)?)?;
    if pem.certs.is_empty() {
        return Err(TlsError::in_file(
            path,
            "no certificate (expected \"BEGIN CERTIFICATE\" sections)",
        ));
    }
    let mut roots = RootCertStore::empty();
    for (i, cert) in pem.certs.into_iter().enumerate() {
        roots.add(cert).map_err(|e| {
            TlsError::in_file(path, format!("certificate {} is unusable: {e}", i + 1))
        })?;
    }
    Ok(roots)
}

/// Load, then throw away, everything a start would load from disk, so `--check-config`
/// reports a bad file the way it reports a bad key.
pub fn check(config: &Config) -> Result<(), ConfigError> {
    for (i, listener) in config.http.iter().enumerate() {
        if let Some(pem) = &listener.ssl_combined_pem {
            server_config(pem, listener.ssl_min_version).map_err(|e| ConfigError {
                path: format!("http[{i}].ssl-combined-pem"),
                message: e.to_string(),
            })?;
        }
        for (j, output) in listener.outputs.iter().enumerate() {
            if let (true, Some(ca)) = (output.location.https, &output.ca_file) {
                load_ca_file(ca).map_err(|e| ConfigError {
                    path: format!("http[{i}].output[{j}].ca-file"),
                    message: e.to_string(),
                })?;
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Listeners
// ---------------------------------------------------------------------------------------

/// The server side of an HTTPS listener, shared by every loop (and so is its session
/// cache: a client resumes whichever loop its next connection lands on).
pub fn server_config(pem: &Path, min_version: TlsVersion) -> Result<Arc<ServerConfig>, TlsError> {
    let (certs, key) = load_combined_pem(pem)?;
    let versions: &[&rustls::SupportedProtocolVersion] = match min_version {
        TlsVersion::V1_2 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsVersion::V1_3 => &[&rustls::version::TLS13],
    };
    let config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .map_err(|e| TlsError::in_file(pem, format!("unusable TLS settings: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::in_file(pem, format!("certificate and key cannot be used: {e}")))?;
    Ok(Arc::new(config))
}

/// A client connection's byte stream: the socket itself, or TLS over it.
///
/// `Read`/`Write` behave as on a non-blocking socket: `WouldBlock` when nothing can be
/// done now, `Ok(0)` from `read` when the peer has closed.
pub enum Transport {
    Plain(TcpStream),
    Tls(Box<TlsStream>),
}

impl Transport {
    /// Wrap an accepted socket; `tls` is its listener's server config, if HTTPS.
    pub fn accept(
        socket: TcpStream,
        tls: Option<&Arc<ServerConfig>>,
        peer: SocketAddr,
    ) -> Result<Transport, rustls::Error> {
        Ok(match tls {
            None => Transport::Plain(socket),
            Some(config) => Transport::Tls(Box::new(TlsStream {
                session: ServerConnection::new(config.clone())?,
                socket,
                peer,
            })),
        })
    }

    /// Bytes already written to this transport that the kernel has not taken yet
    /// (beyond the caller's own buffer). For TLS only "some or none" is known, so it is
    /// 1 while the session holds records; a plain socket holds nothing.
    #[inline]
    pub fn pending_output(&self) -> usize {
        match self {
            Transport::Plain(_) => 0,
            Transport::Tls(tls) => usize::from(tls.session.wants_write()),
        }
    }

    fn socket_mut(&mut self) -> &mut TcpStream {
        match self {
            Transport::Plain(socket) => socket,
            Transport::Tls(tls) => &mut tls.socket,
        }
    }

    /// Before closing: tell a TLS peer the end is deliberate, if the socket takes it now.
    pub fn close_notify(&mut self) {
        if let Transport::Tls(tls) = self {
            tls.session.send_close_notify();
            let _ = tls.write_queued();
        }
    }

    /// Half-close for a lingering close: `close_notify` for a TLS peer, then FIN. Call
    /// with the output flushed: what the socket has taken still arrives, and reading
    /// goes on. A `close_notify` the socket cannot take at once is dropped; the answer
    /// before it is complete, and its HTTP framing tells the client so.
    pub fn shutdown_write(&mut self) -> io::Result<()> {
        self.close_notify();
        self.socket_mut().shutdown(std::net::Shutdown::Write)
    }

    /// Read from the socket itself, past any TLS session: for input that is only
    /// dropped (a lingering close), there is nothing to decrypt it for.
    pub fn read_raw(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.socket_mut().read(buf)
    }
}

impl Read for Transport {
    #[inline]
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(socket) => socket.read(buf),
            Transport::Tls(tls) => tls.read(buf),
        }
    }
}

impl Write for Transport {
    #[inline]
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(socket) => socket.write(buf),
            Transport::Tls(tls) => tls.write(buf),
        }
    }

    /// Push out what the transport holds; a no-op on a plain socket.
    #[inline]
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Transport::Plain(_) => Ok(()),
            Transport::Tls(tls) => tls.write_queued(),
        }
    }
}

impl mio::event::Source for Transport {
    fn register(
        &mut self,
        registry: &mio::Registry,
        token: mio::Token,
        interests: mio::Interest,
    ) -> io::Result<()> {
        self.socket_mut().register(registry, token, interests)
    }

    fn reregister(
        &mut self,
        registry: &mio::Registry,
        token: mio::Token,
        interests: mio::Interest,
    ) -> io::Result<()> {
        self.socket_mut().reregister(registry, token, interests)
    }

    fn deregister(&mut self, registry: &mio::Registry) -> io::Result<()> {
        self.socket_mut().deregister(registry)
    }
}

/// A server-side TLS session over a non-blocking socket.
pub struct TlsStream {
    socket: TcpStream,
    session: ServerConnection,
    peer: SocketAddr,
}

impl TlsStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.session.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // A TCP close without close_notify. HTTP framing already tells a whole
                // request from a cut one, so this is an ordinary close, as on plain HTTP.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) => return Err(e),
            }
            // Decrypted input is used up: fetch records. `Ok(0)` (EOF) is reported by
            // the reader on the next turn; `WouldBlock` means the socket is drained.
            match self.session.read_tls(&mut self.socket) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            if let Err(e) = self.session.process_new_packets() {
                self.failed(&e);
                // process_new_packets queued an alert telling the peer why.
                let _ = self.write_queued();
                return Err(io::Error::new(io::ErrorKind::InvalidData, e));
            }
            // Handshake flights and key updates go out as soon as they exist: the loop
            // only flushes when it has output of its own or sees `pending_output`.
            match self.write_queued() {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Encrypt `buf` into the session; records go to the socket on `write_queued`, or
    /// here once the session's buffer is full.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let n = self.session.writer().write(buf)?;
            if n > 0 {
                return Ok(n);
            }
            // Full. Before the handshake ends nothing can drain it; the caller waits
            // for writability (and the idle timeout if the client never finishes).
            if !self.session.wants_write() {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            self.write_queued()?;
        }
    }

    /// Hand every record the session holds to the socket, or stop at `WouldBlock`.
    fn write_queued(&mut self) -> io::Result<()> {
        while self.session.wants_write() {
            match self.session.write_tls(&mut self.socket) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn failed(&self, error: &rustls::Error) {
        let handshake = self.session.is_handshaking();
        if handshake {
            HANDSHAKE_FAILURES.fetch_add(1, Ordering::Relaxed);
        }
        if !crate::log::enabled(crate::config::LogLevel::Debug) {
            return;
        }
        // One scanner hitting the port must not flood the log.
        static LIMIT: crate::log::RateLimit = crate::log::RateLimit::new(FAILURE_LOG_INTERVAL_MS);
        if let Some(suppressed) = LIMIT.check() {
            crate::debug!(
                if handshake {
                    "TLS handshake failed"
                } else {
                    "TLS session failed"
                },
                peer = self.peer,
                error = error,
                suppressed = suppressed,
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// Backends
// ---------------------------------------------------------------------------------------

/// How one `https://` output connects: its client config and the name its certificate
/// must carry (the location's host; an IP literal is checked against the IP SANs and
/// sends no SNI).
#[derive(Clone)]
pub struct ClientTls {
    config: Arc<ClientConfig>,
    server_name: ServerName<'static>,
}

/// A blocking TLS connection to a backend.
pub type ClientStream = StreamOwned<ClientConnection, std::net::TcpStream>;

impl ClientTls {
    /// Run the handshake on a connected socket (its timeouts bound each step), so a
    /// certificate problem is a connection error, not a failure halfway through a write.
    pub fn connect(&self, mut socket: std::net::TcpStream) -> io::Result<ClientStream> {
        let mut session = ClientConnection::new(self.config.clone(), self.server_name.clone())
            .map_err(io::Error::other)?;
        while session.is_handshaking() {
            session.complete_io(&mut socket)?;
        }
        Ok(StreamOwned::new(session, socket))
    }
}

impl fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTls")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

/// The TLS settings of one HTTP output; `None` for an `http://` location. Logs a
/// warning when the output's certificate is not verified.
pub fn client_tls(output: &HttpOutput) -> Result<Option<ClientTls>, TlsError> {
    if !output.location.https {
        return Ok(None);
    }
    let server_name = ServerName::try_from(output.location.host.clone()).map_err(|e| TlsError {
        file: None,
        message: format!(
            "output {:?}: host \"{}\" cannot be checked against a certificate: {e}",
            output.name, output.location.host
        ),
    })?;
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError {
            file: None,
            message: format!("unusable TLS settings: {e}"),
        })?;
    let config = if output.skip_tls_verification {
        crate::warn!(
            "TLS certificate verification is off: skip-tls-verification = true",
            output = output.name,
            location = output.location.url,
        );
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider())))
            .with_no_client_auth()
    } else {
        let roots = match &output.ca_file {
            Some(path) => Arc::new(load_ca_file(path)?),
            None => system_roots()?,
        };
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    Ok(Some(ClientTls {
        config: Arc::new(config),
        server_name,
    }))
}

/// The operating system's trust store, read once for all outputs.
fn system_roots() -> Result<Arc<RootCertStore>, TlsError> {
    static ROOTS: OnceLock<Result<Arc<RootCertStore>, TlsError>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let found = rustls_native_certs::load_native_certs();
            let mut roots = RootCertStore::empty();
            let (added, _ignored) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                let why = found
                    .errors
                    .first()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default();
                return Err(TlsError {
                    file: None,
                    message: format!(
                        "no system root certificates found{why}: install the CA bundle \
                         (ca-certificates) or set ca-file on the https:// outputs"
                    ),
                });
            }
            Ok(Arc::new(roots))
        })
        .clone()
}

/// `skip-tls-verification = true`: any certificate is accepted, as the original's
/// `InsecureSkipVerify` did. Handshake signatures are still checked against the
/// certificate presented, which costs nothing and keeps the session itself sound.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
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
        let f = pem_file(&[
            b"-----BEGIN CERTIFICATE-----\n!!!not base64!!!\n-----END CERTIFICATE-----\n",
        ]);
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
        let handle = std::thread::spawn(move || {
            client(std::net::TcpStream::connect(addr).expect("connect"))
        });
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
}
