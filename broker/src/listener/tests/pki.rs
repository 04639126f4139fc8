//! A throwaway CA for TLS tests: server and client certificates and a CRL,
//! generated with rcgen and written to a temporary directory.

use std::path::PathBuf;
use std::sync::Arc;

use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, RevocationReason, RevokedCertParams,
    SerialNumber,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use skerry_config::TlsFiles;
use tempfile::TempDir;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// A client certificate and its key, as a TLS client presents them.
pub(super) struct ClientCert {
    pub(super) chain: Vec<CertificateDer<'static>>,
    pub(super) key: PrivateKeyDer<'static>,
}

pub(super) struct Pki {
    dir: TempDir,
    issuer: Issuer<'static, KeyPair>,
    ca: CertificateDer<'static>,
}

impl Pki {
    /// A new CA, with a server certificate for `localhost` on disk.
    pub(super) fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, "Skerry Test CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().unwrap();
        let ca = params.self_signed(&key).unwrap();
        let pki = Self {
            dir: TempDir::new().unwrap(),
            issuer: Issuer::new(params, key),
            ca: ca.der().clone(),
        };
        std::fs::write(pki.path("ca.pem"), ca.pem()).unwrap();

        let mut server = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let server_key = KeyPair::generate().unwrap();
        let cert = server.signed_by(&server_key, &pki.issuer).unwrap();
        std::fs::write(pki.path("server.pem"), cert.pem()).unwrap();
        std::fs::write(pki.path("server.key"), server_key.serialize_pem()).unwrap();
        pki
    }

    pub(super) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Server files only: no client certificates asked for.
    pub(super) fn server_only(&self) -> TlsFiles {
        TlsFiles {
            cert: self.path("server.pem"),
            key: self.path("server.key"),
            client_ca: None,
            require_certificate: false,
            use_identity_as_username: false,
            crl: None,
            auto: None,
        }
    }

    /// Client certificates from this CA verified, and required if `require`.
    pub(super) fn client_auth(&self, require: bool) -> TlsFiles {
        TlsFiles {
            client_ca: Some(self.path("ca.pem")),
            require_certificate: require,
            use_identity_as_username: true,
            ..self.server_only()
        }
    }

    /// A client certificate with common name `cn` and serial `serial`.
    pub(super) fn client(&self, cn: &str, serial: u64) -> ClientCert {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.serial_number = Some(SerialNumber::from(serial));
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        ClientCert {
            chain: vec![cert.der().clone()],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        }
    }

    /// Writes a CRL revoking `serials` and returns its path.
    pub(super) fn crl(&self, serials: &[u64]) -> PathBuf {
        let revoked_certs = serials
            .iter()
            .map(|&serial| RevokedCertParams {
                serial_number: SerialNumber::from(serial),
                revocation_time: date_time_ymd(2024, 1, 1),
                reason_code: Some(RevocationReason::KeyCompromise),
                invalidity_date: None,
            })
            .collect();
        let crl = CertificateRevocationListParams {
            this_update: date_time_ymd(2024, 1, 1),
            next_update: date_time_ymd(2099, 1, 1),
            crl_number: SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: KeyIdMethod::Sha256,
        }
        .signed_by(&self.issuer)
        .unwrap();
        let path = self.path("crl.pem");
        std::fs::write(&path, crl.pem().unwrap()).unwrap();
        path
    }

    /// Connects to `addr` over TLS as `localhost`, presenting `client` if given.
    pub(super) async fn connect(
        &self,
        addr: std::net::SocketAddr,
        client: Option<ClientCert>,
    ) -> std::io::Result<TlsStream<TcpStream>> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.clone()).unwrap();
        let builder = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let config = match client {
            Some(c) => builder.with_client_auth_cert(c.chain, c.key).unwrap(),
            None => builder.with_no_client_auth(),
        };
        let tcp = TcpStream::connect(addr).await?;
        let name = ServerName::try_from("localhost").unwrap();
        TlsConnector::from(Arc::new(config)).connect(name, tcp).await
    }
}
