//! TLS for the HTTP listener (`[http] tls-cert`, `tls-key`): rustls with the ring provider,
//! TLS 1.2 and 1.3, HTTP/1.1 only (ALPN `http/1.1`).

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::TlsFiles;

/// What is wrong with the TLS files, by file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsError {
    /// The certificate chain.
    Cert(String),
    /// The private key (or the key does not match the certificate).
    Key(String),
}

impl std::fmt::Display for TlsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TlsError::Cert(m) | TlsError::Key(m) => f.write_str(m),
        }
    }
}

/// The rustls server configuration from the PEM files.
pub fn server_config(files: &TlsFiles) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError::Cert(format!("{}: {e}", files.cert.display())))?;
    if certs.is_empty() {
        return Err(TlsError::Cert(format!(
            "{}: no PEM certificate in the file",
            files.cert.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| TlsError::Key(format!("{}: {e}", files.key.display())))?;
    // ring, not aws-lc-rs (which needs cmake and a long C build); rustls marks ring's provider
    // deprecated only for its lack of post-quantum key exchange.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Cert(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            TlsError::Key(format!(
                "{}: does not fit {}: {e}",
                files.key.display(),
                files.cert.display()
            ))
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
