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

mod client;
mod pem;
mod server;
#[cfg(test)]
mod tests;

pub use client::{client_tls, ClientStream, ClientTls};
pub use pem::{check, load_ca_file, load_combined_pem};
pub use server::{server_config, TlsStream, Transport};
