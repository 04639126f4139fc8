//! TLS termination: the rustls server configuration built once at start
//! from a listener's files (so a bad path is an error that names it, never
//! a panic inside pingora), and what a finished handshake tells about the
//! client for the PROXY header and the rate classes.
//!
//! The handshake itself runs in the connection task with tokio-rustls
//! rather than through pingora's `TlsSettings`: that bounds it by our own
//! deadline (pingora's is a fixed 60 s), lets failures be counted, and
//! keeps the ring provider explicit.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::server::WebPkiClientVerifier;
use rustls::{CipherSuite, ProtocolVersion, RootCertStore, ServerConfig, ServerConnection};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use skerry_config::TlsFiles;

use crate::error::TlsError;

/// What a TLS client's handshake established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TlsInfo {
    /// `TLSv1.2` / `TLSv1.3`, as OpenSSL (and so HAProxy) names them.
    pub(crate) version: &'static str,
    /// The cipher suite's OpenSSL name where it has one.
    pub(crate) cipher: &'static str,
    /// The client certificate's subject CN.
    pub(crate) cn: Option<String>,
    /// The client's DER leaf certificate, if it presented one.
    pub(crate) cert_der: Option<Vec<u8>>,
    /// The server name the client asked for (SNI).
    pub(crate) sni: Option<String>,
    /// The negotiated ALPN protocol.
    pub(crate) alpn: Option<Vec<u8>>,
}

impl TlsInfo {
    /// Reads what the PROXY header and the rate classes need.
    pub(crate) fn of(conn: &ServerConnection) -> TlsInfo {
        let leaf = conn.peer_certificates().and_then(|c| c.first());
        TlsInfo {
            version: version_name(conn.protocol_version()),
            cipher: conn.negotiated_cipher_suite().map_or("", |s| cipher_name(s.suite())),
            cn: leaf.and_then(|c| common_name(c)),
            cert_der: leaf.map(|c| c.to_vec()),
            sni: conn.server_name().map(str::to_owned),
            alpn: conn.alpn_protocol().map(<[u8]>::to_vec),
        }
    }

    /// Whether the client presented a (verified) certificate.
    pub(crate) fn has_cert(&self) -> bool {
        self.cert_der.is_some()
    }
}

fn version_name(v: Option<ProtocolVersion>) -> &'static str {
    match v {
        Some(ProtocolVersion::TLSv1_3) => "TLSv1.3",
        Some(ProtocolVersion::TLSv1_2) => "TLSv1.2",
        _ => "",
    }
}

/// OpenSSL's names for the suites rustls offers with ring; brokers that
/// log or compare the cipher expect them.
fn cipher_name(suite: CipherSuite) -> &'static str {
    match suite {
        CipherSuite::TLS13_AES_128_GCM_SHA256 => "TLS_AES_128_GCM_SHA256",
        CipherSuite::TLS13_AES_256_GCM_SHA384 => "TLS_AES_256_GCM_SHA384",
        CipherSuite::TLS13_CHACHA20_POLY1305_SHA256 => "TLS_CHACHA20_POLY1305_SHA256",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 => "ECDHE-ECDSA-AES128-GCM-SHA256",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 => "ECDHE-ECDSA-AES256-GCM-SHA384",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 => "ECDHE-ECDSA-CHACHA20-POLY1305",
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => "ECDHE-RSA-AES128-GCM-SHA256",
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 => "ECDHE-RSA-AES256-GCM-SHA384",
        CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 => "ECDHE-RSA-CHACHA20-POLY1305",
        other => other.as_str().unwrap_or(""),
    }
}

/// The first CN of a DER certificate's subject.
pub(crate) fn common_name(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let cn = cert.subject().iter_common_name().next()?.as_str().ok()?;
    (!cn.is_empty()).then(|| cn.to_owned())
}

/// Builds the server configuration: client certificates are required with
/// `client_ca` + `require_certificate`, optional with `client_ca` alone,
/// not asked for without `client_ca`; the CRL (if any) is checked for the
/// client's own certificate.
pub(crate) fn server_config(files: &TlsFiles) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = read_certs("certificate chain", &files.cert)?;
    let key = PrivateKeyDer::from_pem_slice(&read("private key", &files.key)?).map_err(|source| TlsError::Pem {
        what: "private key",
        path: files.key.clone(),
        source,
    })?;
    let config_error = |source| TlsError::Config {
        cert: files.cert.clone(),
        key: files.key.clone(),
        source,
    };
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(config_error)?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => builder.with_client_cert_verifier(client_verifier(files, ca, provider)?),
    };
    let config = builder.with_single_cert(chain, key).map_err(config_error)?;
    Ok(Arc::new(config))
}

fn client_verifier(
    files: &TlsFiles,
    ca: &Path,
    provider: Arc<rustls::crypto::CryptoProvider>,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in read_certs("client CA", ca)? {
        roots.add(cert).map_err(|source| TlsError::ClientCa {
            path: ca.to_owned(),
            source,
        })?;
    }
    let mut builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
    if let Some(crl) = &files.crl {
        builder = builder.with_crls(read_crls(crl)?).only_check_end_entity_revocation();
    }
    if !files.require_certificate {
        builder = builder.allow_unauthenticated();
    }
    builder.build().map_err(|source| TlsError::Verifier {
        path: ca.to_owned(),
        source,
    })
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_owned(),
        source,
    })
}

fn pem_error(what: &'static str, path: &Path) -> impl Fn(rustls_pki_types::pem::Error) -> TlsError {
    let path: PathBuf = path.to_owned();
    move |source| TlsError::Pem {
        what,
        path: path.clone(),
        source,
    }
}

/// Every item of type `T` in a PEM file; a file without any is an error.
fn read_all<T: PemObject>(what: &'static str, path: &Path) -> Result<Vec<T>, TlsError> {
    let pem = read(what, path)?;
    let items = T::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem_error(what, path))?;
    if items.is_empty() {
        return Err(pem_error(what, path)(rustls_pki_types::pem::Error::NoItemsFound));
    }
    Ok(items)
}

fn read_certs(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    read_all(what, path)
}

fn read_crls(path: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsError> {
    read_all("CRL", path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(dir: &Path) -> TlsFiles {
        TlsFiles {
            cert: dir.join("server.crt"),
            key: dir.join("server.key"),
            client_ca: None,
            require_certificate: false,
            use_identity_as_username: false,
            crl: None,
            auto: None,
        }
    }

    #[test]
    fn missing_files_name_the_file() {
        let dir = std::env::temp_dir().join("skerry-lb-no-such-dir");
        let err = server_config(&files(&dir)).unwrap_err();
        assert!(
            matches!(
                err,
                TlsError::Read {
                    what: "certificate chain",
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("server.crt"), "{err}");
    }

    #[test]
    fn names_follow_openssl() {
        assert_eq!(version_name(Some(ProtocolVersion::TLSv1_3)), "TLSv1.3");
        assert_eq!(
            cipher_name(CipherSuite::TLS13_AES_256_GCM_SHA384),
            "TLS_AES_256_GCM_SHA384"
        );
        assert_eq!(
            cipher_name(CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256),
            "ECDHE-RSA-AES128-GCM-SHA256"
        );
    }
}
