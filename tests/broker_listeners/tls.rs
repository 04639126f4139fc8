//! TLS listeners: any client without `client_ca`; with it, certificates
//! from the CA only, their CN as the username, revoked ones refused.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use rustls::pki_types::ServerName;
use skerry_certs::{Ca, CaOptions, Issued, RevocationReason, San, Selector};
use skerry_codec::{ConnAck, Connect, ReasonCode};
use skerry_tests::broker::TestBroker;
use skerry_tests::raw::WAIT;
use skerry_tests::stream::StreamClient;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::{tcp_client, yaml, DEVICE_ACL, TCP_LISTENER, V5};

/// A test CA in a temporary directory, with a server certificate for 127.0.0.1.
pub(super) struct Pki {
    dir: tempfile::TempDir,
    ca: Ca,
}

impl Pki {
    pub(super) fn new() -> Pki {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut ca = Ca::create_in(&dir.path().join("ca"), &CaOptions::new("Skerry Test CA")).expect("CA");
        let sans = [San::Ip([127, 0, 0, 1].into()), San::Dns("localhost".into())];
        ca.issue_server("localhost", &sans, &dir.path().join("server"))
            .expect("server cert");
        Pki { dir, ca }
    }

    pub(super) fn base(&self) -> &Path {
        self.dir.path()
    }

    pub(super) fn client(&mut self, cn: &str) -> Issued {
        self.ca
            .issue_client(cn, &self.dir.path().join(cn))
            .expect("client cert")
    }

    /// Revokes `cn` and writes the CRL to `crl.pem`.
    fn revoke(&mut self, cn: &str) -> PathBuf {
        self.ca
            .revoke(&Selector::Cn(cn.to_owned()), RevocationReason::KeyCompromise)
            .expect("revoke");
        let path = self.dir.path().join("crl.pem");
        self.ca.crl(time::Duration::days(1), Some(&path)).expect("CRL");
        path
    }

    /// A TLS client trusting this CA, presenting `cert` if given.
    pub(super) fn connector(&self, cert: Option<&Issued>) -> TlsConnector {
        skerry_tests::tls::connector(&self.ca, cert)
    }
}

/// A TLS listener's YAML with extra `tls:` lines (indented 12).
pub(super) fn tls_listener(name: &str, tls_extra: &str) -> String {
    format!(
        "        - name: {name}\n          bind: 127.0.0.1:0\n          transport: tls\n          tls:\n            cert: server.crt\n            key: server.key\n{tls_extra}"
    )
}
pub(super) type Tls = tokio_rustls::client::TlsStream<TcpStream>;

/// Opens TCP, writes `prefix` (a PROXY header) and runs the TLS handshake.
pub(super) async fn tls_stream(addr: SocketAddr, prefix: &[u8], tls: &TlsConnector) -> Result<Tls, String> {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(prefix).await.expect("write");
    let name = ServerName::try_from("127.0.0.1").expect("IP name");
    tls.connect(name, tcp).await.map_err(|e| format!("TLS handshake: {e}"))
}

/// TLS (after `prefix`), then `connect`: the client and its CONNACK, or
/// why the broker refused before any CONNACK.
pub(super) async fn tls_connect(
    addr: SocketAddr,
    prefix: &[u8],
    tls: &TlsConnector,
    connect: Connect,
) -> Result<(StreamClient<Tls>, ConnAck), String> {
    let mut client = StreamClient::new(tls_stream(addr, prefix, tls).await?, V5);
    match client.connect(connect).await {
        Some(ack) => Ok((client, ack)),
        None => Err("closed without CONNACK".to_owned()),
    }
}

#[tokio::test]
async fn tls_without_client_ca_admits_any_client() {
    let pki = Pki::new();
    let listeners = tls_listener("tls", "") + TCP_LISTENER;
    let broker = TestBroker::start_in(&yaml("  allow_anonymous: true", &listeners), pki.base()).await;
    let tls = pki.connector(None);
    let (mut sub, ack) = tls_connect(broker.addr("tls"), b"", &tls, Connect::new(V5, "tls-sub"))
        .await
        .expect("TLS client admitted");
    assert_eq!(ack.reason, ReasonCode::Success);
    assert_eq!(sub.subscribe("tls/#").await, ReasonCode::GrantedQoS1);
    let (mut tcp, _) = tcp_client(broker.addr("tcp"), b"", "tcp-pub").await;
    assert_eq!(tcp.publish("tls/from-tcp", "plain").await, ReasonCode::Success);
    assert_eq!(sub.received().await, ("tls/from-tcp".to_owned(), Bytes::from("plain")));

    if skerry_tests::have("mosquitto_pub") {
        let cafile = pki.ca.cert_path();
        let port = broker.addr("tls").port().to_string();
        let args = [
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "--cafile",
            cafile.to_str().expect("path"),
        ];
        let out = tokio::process::Command::new("mosquitto_pub")
            .args(args)
            .args(["-V", "mqttv311", "-t", "tls/mosquitto", "-m", "over tls", "-q", "1"])
            .output();
        let out = tokio::time::timeout(WAIT, out)
            .await
            .expect("mosquitto_pub exits")
            .expect("spawn");
        assert!(
            out.status.success(),
            "mosquitto_pub over TLS: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            sub.received().await,
            ("tls/mosquitto".to_owned(), Bytes::from("over tls"))
        );
    } else {
        eprintln!("SKIPPED the mosquitto_pub part: mosquitto-clients not installed");
    }
    broker.stop().await;
}

#[tokio::test]
async fn tls_client_certificate_is_required_and_its_cn_is_the_username() {
    let mut pki = Pki::new();
    let device = pki.client("dev-7");
    let tls_extra = "            client_ca: ca/ca.crt\n            require_certificate: true\n            use_identity_as_username: true\n";
    let broker = TestBroker::start_in(&yaml(DEVICE_ACL, &tls_listener("tls", tls_extra)), pki.base()).await;
    let addr = broker.addr("tls");
    let tls = pki.connector(Some(&device));

    let (mut sub, ack) = tls_connect(addr, b"", &tls, Connect::new(V5, "dev-7-sub"))
        .await
        .expect("certificate admitted");
    assert_eq!(
        ack.reason,
        ReasonCode::Success,
        "no password, no anonymity: the certificate let it in"
    );
    assert_eq!(sub.subscribe("devices/dev-7/#").await, ReasonCode::GrantedQoS1);
    assert_eq!(sub.subscribe("devices/other/#").await, ReasonCode::NotAuthorized);
    // A claimed username is ignored: the certificate decides who this is.
    let mut claim = Connect::new(V5, "dev-7-pub");
    claim.username = Some("dev-99".to_owned());
    let (mut publisher, _) = tls_connect(addr, b"", &tls, claim).await.expect("admitted");
    assert_eq!(publisher.publish("devices/dev-7/temp", "21").await, ReasonCode::Success);
    assert_eq!(
        publisher.publish("devices/other/temp", "99").await,
        ReasonCode::NotAuthorized
    );
    assert_eq!(
        sub.received().await,
        ("devices/dev-7/temp".to_owned(), Bytes::from("21"))
    );

    let refused = tls_connect(addr, b"", &pki.connector(None), Connect::new(V5, "no-cert")).await;
    assert!(
        refused.is_err(),
        "a client without a certificate must fail the handshake"
    );
    let mut stranger_ca = Pki::new();
    let stranger = stranger_ca.client("dev-7");
    let refused = tls_connect(
        addr,
        b"",
        &stranger_ca.connector(Some(&stranger)),
        Connect::new(V5, "other-ca"),
    )
    .await;
    assert!(
        refused.is_err(),
        "a certificate from another CA must fail the handshake"
    );
    broker.stop().await;
}

#[tokio::test]
async fn tls_revoked_certificate_is_refused() {
    let mut pki = Pki::new();
    let good = pki.client("dev-good");
    let revoked = pki.client("dev-revoked");
    pki.revoke("dev-revoked");
    let tls_extra = "            client_ca: ca/ca.crt\n            require_certificate: true\n            use_identity_as_username: true\n            crl: crl.pem\n";
    let broker = TestBroker::start_in(&yaml(DEVICE_ACL, &tls_listener("tls", tls_extra)), pki.base()).await;
    let addr = broker.addr("tls");
    let (_, ack) = tls_connect(addr, b"", &pki.connector(Some(&good)), Connect::new(V5, "good"))
        .await
        .expect("valid certificate admitted");
    assert_eq!(ack.reason, ReasonCode::Success);
    let refused = tls_connect(addr, b"", &pki.connector(Some(&revoked)), Connect::new(V5, "revoked")).await;
    assert!(
        refused.is_err(),
        "a revoked certificate must fail the handshake, got {:?}",
        refused.map(|r| r.1)
    );
    broker.stop().await;
}
