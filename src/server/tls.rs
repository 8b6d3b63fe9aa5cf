//! A self-signed certificate for `wsoak serve --tls`, generated at start.

use std::sync::Arc;

use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A freshly generated certificate for `localhost`, `127.0.0.1` and `::1`.
#[derive(Clone)]
pub struct SelfSigned {
    /// The certificate, DER.
    pub der: CertificateDer<'static>,
    /// The certificate, PEM: what clients pass to `--ca`.
    pub pem: String,
    key: Vec<u8>,
}

impl SelfSigned {
    /// Generates a new key pair and certificate.
    pub fn generate() -> std::io::Result<SelfSigned> {
        let names = vec![
            "localhost".to_string(),
            "127.0.0.1".to_string(),
            "::1".to_string(),
        ];
        let certified = rcgen::generate_simple_self_signed(names).map_err(std::io::Error::other)?;
        Ok(SelfSigned {
            der: certified.cert.der().clone(),
            pem: certified.cert.pem(),
            key: certified.signing_key.serialize_der(),
        })
    }

    /// A TLS acceptor serving this certificate.
    pub fn acceptor(&self) -> std::io::Result<tokio_rustls::TlsAcceptor> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(std::io::Error::other)?
            .with_no_client_auth()
            .with_single_cert(
                vec![self.der.clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.clone())),
            )
            .map_err(std::io::Error::other)?;
        Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
    }
}
