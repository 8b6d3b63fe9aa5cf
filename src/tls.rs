//! Client TLS for `wss://` targets: the web PKI roots by default, plus any `--ca` file;
//! or, with `--insecure`, no verification at all.
//!
//! The configuration is built once per run and shared by every session: rustls keeps
//! resumption state in it, so reconnects can resume TLS sessions as phones do.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

/// A client TLS setting that could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The `--ca` file could not be read or holds no certificate.
    #[error("--ca {path}: {message}")]
    Ca {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// Builds the client configuration. `ca` adds trusted certificates (PEM); `insecure`
/// accepts any certificate.
pub fn client_config(
    ca: Option<&Path>,
    insecure: bool,
) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let config = if insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnything(provider)))
            .with_no_client_auth()
    } else {
        let mut roots = RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(path) = ca {
            let shown = path.display().to_string();
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .map_err(|e| TlsError::Ca {
                    path: shown.clone(),
                    message: e.to_string(),
                })?
                .collect::<Result<_, _>>()
                .map_err(|e| TlsError::Ca {
                    path: shown.clone(),
                    message: e.to_string(),
                })?;
            if certs.is_empty() {
                return Err(TlsError::Ca {
                    path: shown,
                    message: "no PEM certificate in the file".into(),
                });
            }
            for cert in certs {
                roots.add(cert).map_err(|e| TlsError::Ca {
                    path: shown.clone(),
                    message: e.to_string(),
                })?;
            }
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    Ok(Arc::new(config))
}

/// What to do about a failed TLS handshake, naming the real cause: a hint that says
/// "pass --ca" for a certificate that --ca cannot fix sends people in circles.
pub fn explain(e: &rustls::Error) -> String {
    use rustls::{CertificateError as C, Error as E};
    let insecure = "or --insecure to skip verification on a test rig";
    match e {
        E::InvalidCertificate(C::UnknownIssuer) => format!(
            "no trusted CA signed the server's certificate: pass --ca FILE with the CA that \
             did (for a self-signed certificate, the certificate itself), {insecure}"
        ),
        // rustls's message already lists the names the certificate has.
        E::InvalidCertificate(C::NotValidForName | C::NotValidForNameContext { .. }) => format!(
            "connect by a name or address the certificate lists in its subjectAltName, or \
             make one that lists this host, {insecure}"
        ),
        E::InvalidCertificate(
            C::Expired | C::ExpiredContext { .. } | C::NotValidYet | C::NotValidYetContext { .. },
        ) => "the certificate is outside its validity period: renew it, or check this \
              machine's clock"
            .to_string(),
        // webpki's error travels as text inside rustls's `Other`: rustls has no variant
        // for it, and webpki is not a dependency of ours to downcast to.
        E::InvalidCertificate(C::Other(other))
            if format!("{other:?}").contains("CaUsedAsEndEntity") =>
        {
            format!(
                "the server's certificate is a CA certificate (basicConstraints CA:TRUE, what \
                 `openssl req -x509` makes by default) used as the server's own; TLS clients \
                 refuse that even when --ca trusts it. Make a leaf certificate instead, e.g. \
                 `openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
                 -keyout key.pem -out cert.pem -days 30 -subj /CN=localhost -addext \
                 subjectAltName=DNS:localhost,IP:127.0.0.1 -addext \
                 basicConstraints=critical,CA:FALSE` and pass cert.pem to --ca, or sign a \
                 leaf with that CA, {insecure}"
            )
        }
        E::InvalidCertificate(_) => format!("the server's certificate was refused, {insecure}"),
        E::AlertReceived(alert) => format!(
            "the server ended the handshake with the alert {alert:?}: it may not support \
             TLS 1.2 or 1.3 with these ciphers, or may want a client certificate"
        ),
        E::InvalidMessage(_) | E::InappropriateMessage { .. } => {
            "the server did not answer in TLS: is it a plain ws:// server?".to_string()
        }
        _ => format!("check the server's TLS setup, {insecure}"),
    }
}

/// `--insecure`: accepts every certificate, still checks handshake signatures so that
/// the TLS work measured is the real work.
#[derive(Debug)]
struct AcceptAnything(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnything {
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
