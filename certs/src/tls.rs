//! TLS for every listener that terminates it (broker `tls`/`wss` listeners
//! and the balancer's): the rustls server configuration built at bind time
//! from the PEM files named in the configuration and rebuilt from the same
//! files on reload ([`ServerTls`]), and the client certificate's common
//! name read after each handshake.
//!
//! The ring provider is passed explicitly, so no process-wide default
//! provider has to be installed first.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, ServerConnection};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use skerry_config::TlsFiles;

/// Builds the server configuration; every problem names its file.
pub fn server_config(files: &TlsFiles) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = read_certs("certificate chain", &files.cert)?;
    let key = PrivateKeyDer::from_pem_slice(&read("private key", &files.key)?).map_err(|source| TlsError::Pem {
        what: "private key",
        path: files.key.clone(),
        source,
    })?;
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|source| config_error(files, source))?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => builder.with_client_cert_verifier(client_verifier(files, ca, provider)?),
    };
    let config = builder
        .with_single_cert(chain, key)
        .map_err(|source| config_error(files, source))?;
    Ok(Arc::new(config))
}

/// A listener's TLS configuration that can be re-read from its files
/// (SIGHUP: a new CRL, a renewed certificate or CA bundle). Handshakes
/// started after [`ServerTls::reload`] use the new files; connections up
/// already keep theirs.
#[derive(Debug)]
pub struct ServerTls {
    files: TlsFiles,
    current: RwLock<Arc<ServerConfig>>,
}

impl ServerTls {
    /// Loads `files`; every problem names its file.
    pub fn load(files: &TlsFiles) -> Result<ServerTls, TlsError> {
        Ok(ServerTls {
            files: files.clone(),
            current: RwLock::new(server_config(files)?),
        })
    }

    /// The configuration for the next handshake.
    pub fn config(&self) -> Arc<ServerConfig> {
        Arc::clone(&self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// Re-reads the files. On error the running configuration stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let fresh = server_config(&self.files)?;
        *self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner) = fresh;
        Ok(())
    }

    /// The files this configuration comes from.
    pub fn files(&self) -> &TlsFiles {
        &self.files
    }
}

/// Verifies client certificates against `ca`, with the CRL if one is set.
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
        // Like mosquitto's `crlfile`: the CRL speaks for the client's own
        // certificate; intermediates are not required to have one.
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

fn config_error(files: &TlsFiles, source: rustls::Error) -> TlsError {
    TlsError::Config {
        cert: files.cert.clone(),
        key: files.key.clone(),
        source,
    }
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

/// All certificates of a PEM file; a file without any is an error.
fn read_certs(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(what, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem_error(what, path))?;
    if certs.is_empty() {
        return Err(pem_error(what, path)(rustls_pki_types::pem::Error::NoItemsFound));
    }
    Ok(certs)
}

fn read_crls(path: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsError> {
    const WHAT: &str = "CRL";
    let pem = read(WHAT, path)?;
    let crls = CertificateRevocationListDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem_error(WHAT, path))?;
    if crls.is_empty() {
        return Err(pem_error(WHAT, path)(rustls_pki_types::pem::Error::NoItemsFound));
    }
    Ok(crls)
}

/// The common name of the certificate the client presented, if any. The
/// verifier has already checked it: rustls fails the handshake otherwise.
pub fn client_common_name(conn: &ServerConnection) -> Option<String> {
    conn.peer_certificates()?.first().and_then(|leaf| common_name(leaf))
}

/// The first CN of a DER certificate's subject.
pub fn common_name(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let cn = cert.subject().iter_common_name().next()?.as_str().ok()?;
    (!cn.is_empty()).then(|| cn.to_owned())
}

/// A problem with one of the TLS files of a listener.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file could not be read.
    #[error("cannot read {what} {}: {source}", path.display())]
    Read {
        /// Which file this is: certificate chain, private key, client CA, CRL.
        what: &'static str,
        /// The file named in the configuration.
        path: PathBuf,
        /// The underlying I/O error.
        source: io::Error,
    },
    /// The file is not valid PEM, or holds nothing of the expected kind.
    #[error("{what} {} is not usable PEM: {source}", path.display())]
    Pem {
        /// Which file this is.
        what: &'static str,
        /// The file named in the configuration.
        path: PathBuf,
        /// What the PEM parser found wrong.
        source: rustls_pki_types::pem::Error,
    },
    /// A certificate of the client CA bundle was rejected as a trust anchor.
    #[error("client CA {}: {source}", path.display())]
    ClientCa {
        /// The CA bundle.
        path: PathBuf,
        /// Why the certificate was rejected.
        source: rustls::Error,
    },
    /// The client verifier could not be built (for example a CRL that does
    /// not parse).
    #[error("client verification with CA {}: {source}", path.display())]
    Verifier {
        /// The CA bundle the verifier was built from.
        path: PathBuf,
        /// Why it failed.
        source: rustls::server::VerifierBuilderError,
    },
    /// The certificate chain and key do not make a server configuration (for
    /// example a key that does not match the certificate).
    #[error("certificate {} with key {}: {source}", cert.display(), key.display())]
    Config {
        /// The certificate chain.
        cert: PathBuf,
        /// The private key.
        key: PathBuf,
        /// Why rustls refused them.
        source: rustls::Error,
    },
}
