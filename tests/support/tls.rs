//! TLS clients for tests: trust a test CA, optionally present one of its
//! client certificates.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};
use skerry_certs::{Ca, Issued};
use tokio_rustls::TlsConnector;

/// A TLS client trusting `ca`, presenting `cert` if given.
pub fn connector(ca: &Ca, cert: Option<&Issued>) -> TlsConnector {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for der in CertificateDer::pem_slice_iter(ca.cert_pem().as_bytes()) {
        roots.add(der.expect("CA PEM")).expect("CA root");
    }
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots);
    let config = match cert {
        None => builder.with_no_client_auth(),
        Some(issued) => {
            let chain = CertificateDer::pem_slice_iter(issued.cert_pem.as_bytes())
                .map(|c| c.expect("PEM"))
                .collect();
            let key = PrivateKeyDer::from_pem_slice(issued.key_pem.as_deref().expect("key").as_bytes()).expect("key");
            builder.with_client_auth_cert(chain, key).expect("client auth")
        }
    };
    TlsConnector::from(Arc::new(config))
}
