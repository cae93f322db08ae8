//! `https://` outputs: the client config, system or file roots, and the verifier that
//! `skip-tls-verification` asks for.

use super::*;

/// How one `https://` output connects: its client config and the name its certificate
/// must carry (the location's host; an IP literal is checked against the IP SANs and
/// sends no SNI).
#[derive(Clone)]
pub struct ClientTls {
    pub(super) config: Arc<ClientConfig>,
    pub(super) server_name: ServerName<'static>,
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
pub(super) fn system_roots() -> Result<Arc<RootCertStore>, TlsError> {
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
pub(super) struct AcceptAnyCertificate(Arc<CryptoProvider>);

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
