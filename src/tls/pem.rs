//! Certificate and key files: read with a size cap, parsed, checked at start-up.

use super::*;

pub(super) fn read_pem(path: &Path) -> Result<Vec<u8>, TlsError> {
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
pub(super) struct Pem {
    pub(super) certs: Vec<CertificateDer<'static>>,
    pub(super) keys: Vec<PrivateKeyDer<'static>>,
    /// An `ENCRYPTED PRIVATE KEY` section was seen (rustls cannot use it).
    pub(super) encrypted_key: bool,
}

pub(super) fn parse_pem(path: &Path, text: &[u8]) -> Result<Pem, TlsError> {
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
