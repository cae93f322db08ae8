//! HTTPS listeners: the server config every loop shares, and the connection type a loop
//! reads and writes, plain or TLS.

use super::*;

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

    pub(super) fn socket_mut(&mut self) -> &mut TcpStream {
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
    pub(super) socket: TcpStream,
    pub(super) session: ServerConnection,
    pub(super) peer: SocketAddr,
}

impl TlsStream {
    pub(super) fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
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
    pub(super) fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
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
    pub(super) fn write_queued(&mut self) -> io::Result<()> {
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

    pub(super) fn failed(&self, error: &rustls::Error) {
        let handshake = self.session.is_handshaking();
        if handshake {
            HANDSHAKE_FAILURES.fetch_add(1, Ordering::Relaxed);
        }
        if !crate::log::enabled(crate::config::LogLevel::Debug) {
            return;
        }
        // One scanner hitting the port must not flood the log.
        static LIMIT: crate::log::RateLimit = crate::log::RateLimit::every_interval();
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
