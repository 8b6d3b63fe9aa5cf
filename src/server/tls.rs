//! A self-signed certificate for `wsoak serve --tls`, generated at start.

use std::sync::Arc;

use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde::{Deserialize, Serialize};

/// A freshly generated certificate for `localhost`, `127.0.0.1` and `::1`.
///
/// It serialises with its private key, so that `wsoak serve --workers` can hand every
/// worker process the one certificate its clients trust (over a pipe, never argv).
#[derive(Clone, Serialize, Deserialize)]
#[serde(into = "Parts", from = "Parts")]
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
        let params = rcgen::CertificateParams::new(names).map_err(std::io::Error::other)?;
        SelfSigned::from_params(params)
    }

    /// Generates a new key pair and a certificate with these parameters, e.g. one with
    /// `is_ca` set, to see what a client makes of a badly made certificate.
    pub fn from_params(params: rcgen::CertificateParams) -> std::io::Result<SelfSigned> {
        let key = rcgen::KeyPair::generate().map_err(std::io::Error::other)?;
        let cert = params.self_signed(&key).map_err(std::io::Error::other)?;
        Ok(SelfSigned {
            der: cert.der().clone(),
            pem: cert.pem(),
            key: key.serialize_der(),
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

/// [`SelfSigned`] as plain data.
#[derive(Serialize, Deserialize)]
struct Parts {
    der: Vec<u8>,
    pem: String,
    key: Vec<u8>,
}

impl From<SelfSigned> for Parts {
    fn from(c: SelfSigned) -> Parts {
        Parts {
            der: c.der.to_vec(),
            pem: c.pem,
            key: c.key,
        }
    }
}

impl From<Parts> for SelfSigned {
    fn from(p: Parts) -> SelfSigned {
        SelfSigned {
            der: CertificateDer::from(p.der),
            pem: p.pem,
            key: p.key,
        }
    }
}
