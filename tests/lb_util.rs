//! Helpers for the balancer's end-to-end tests: a balancer started from a
//! YAML snippet, tiny MQTT backends that answer CONNACK, record what they
//! were sent (PROXY header included) and echo the rest, a test CA with TLS
//! clients, and a codec client over plain TCP.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use bytes::BytesMut;
use ppp::PartialResult;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use skerry_certs::{Ca, CaOptions, Issued, San};
use skerry_codec::{encode, sniff_connect, ConnAck, Connect, Packet, ProtocolVersion, ReasonCode};
use skerry_lb::{Balancer, BalancerHandle};
use skerry_tests::stream::StreamClient;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

pub(crate) const V5: ProtocolVersion = ProtocolVersion::V5;
pub(crate) const V311: ProtocolVersion = ProtocolVersion::V311;

/// Starts a balancer from a whole Skerry YAML file with an `lb:` section.
/// Unless the file says otherwise, sessions still open at shutdown close
/// within 200 ms rather than the default 10 s drain window.
pub(crate) fn start_lb(yaml: &str, base: &Path) -> BalancerHandle {
    let yaml = if yaml.contains("drain_window:") {
        yaml.to_owned()
    } else {
        yaml.replacen("lb:\n", "lb:\n  drain_window: 200ms\n", 1)
    };
    let config = skerry_config::parse(&yaml, base).unwrap_or_else(|e| panic!("test config: {e}\n{yaml}"));
    let lb = config.lb.expect("an lb section");
    Balancer::start(&lb).unwrap_or_else(|e| panic!("balancer: {e}"))
}

/// The address of the balancer's first listener.
pub(crate) fn lb_addr(lb: &BalancerHandle) -> SocketAddr {
    lb.local_addrs()[0].1
}

/// `members:` entries (indented for a pool) for `(name, addr)` pairs.
pub(crate) fn members(list: &[(&str, SocketAddr)]) -> String {
    list.iter()
        .map(|(n, a)| format!("        - {{name: {n}, address: \"{a}\"}}\n"))
        .collect()
}

/// What a backend saw on one client connection.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub(crate) client_id: String,
    /// The PROXY v2 header, as sent.
    pub(crate) proxy: Option<Vec<u8>>,
    /// The CONNECT, as sent.
    pub(crate) connect: Vec<u8>,
}

/// A tiny MQTT backend: optional PROXY v2 header, CONNECT, CONNACK
/// success, then it echoes every byte. Health probes (client ids starting
/// with `lbhc-`, or none at all) are not recorded.
pub(crate) struct MiniBackend {
    pub(crate) addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    accept: JoinHandle<()>,
    conns: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl MiniBackend {
    pub(crate) async fn start(expect_proxy: bool) -> MiniBackend {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let conns = Arc::new(Mutex::new(Vec::new()));
        let (s, c) = (Arc::clone(&seen), Arc::clone(&conns));
        let accept = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let task = tokio::spawn(serve(stream, expect_proxy, Arc::clone(&s)));
                c.lock().expect("lock").push(task);
            }
        });
        MiniBackend {
            addr,
            seen,
            accept,
            conns,
        }
    }

    /// Client connections seen so far.
    pub(crate) fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }

    pub(crate) fn ids(&self) -> Vec<String> {
        self.seen().into_iter().map(|s| s.client_id).collect()
    }

    pub(crate) fn clear(&self) {
        self.seen.lock().expect("lock").clear();
    }

    /// Stops accepting; established connections stay.
    pub(crate) fn stop_accepting(&self) {
        self.accept.abort();
    }

    /// Stops accepting and closes every connection, like a crash.
    pub(crate) fn kill(&self) {
        self.accept.abort();
        for c in self.conns.lock().expect("lock").drain(..) {
            c.abort();
        }
    }
}

impl Drop for MiniBackend {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn serve(mut s: TcpStream, expect_proxy: bool, seen: Arc<Mutex<Vec<Seen>>>) {
    let mut buf = BytesMut::new();
    let proxy = if expect_proxy {
        match read_proxy(&mut s, &mut buf).await {
            Some(p) => Some(p),
            None => return,
        }
    } else {
        None
    };
    let (connect, len) = loop {
        match sniff_connect(&buf, 1 << 20) {
            Ok(Some(found)) => break found,
            Ok(None) => {}
            Err(e) => panic!("backend got a bad CONNECT: {e}"),
        }
        if !matches!(s.read_buf(&mut buf).await, Ok(n) if n > 0) {
            return;
        }
    };
    let raw = buf.split_to(len).to_vec();
    if !connect.client_id.starts_with("lbhc-") {
        seen.lock().expect("lock").push(Seen {
            client_id: connect.client_id.clone(),
            proxy,
            connect: raw,
        });
    }
    let mut ack = BytesMut::new();
    encode(
        &Packet::ConnAck(ConnAck::new(ReasonCode::Success)),
        connect.protocol,
        &mut ack,
    )
    .expect("CONNACK");
    ack.extend_from_slice(&buf);
    if s.write_all(&ack).await.is_err() {
        return;
    }
    let (mut rx, mut tx) = s.split();
    let _ = tokio::io::copy(&mut rx, &mut tx).await;
}

/// Reads a PROXY v2 header; `None` when the connection ends first.
async fn read_proxy(s: &mut TcpStream, buf: &mut BytesMut) -> Option<Vec<u8>> {
    loop {
        match ppp::v2::Header::try_from(&buf[..]) {
            Ok(h) => {
                let len = h.len();
                return Some(buf.split_to(len).to_vec());
            }
            Err(e) if e.is_incomplete() => {}
            Err(e) => panic!("backend got a bad PROXY header: {e}"),
        }
        if !matches!(s.read_buf(buf).await, Ok(n) if n > 0) {
            return None;
        }
    }
}

/// A plain-TCP MQTT client through `addr`: the CONNACK, or `None` when the
/// connection was closed without one.
pub(crate) async fn mqtt_connect(
    addr: SocketAddr,
    version: ProtocolVersion,
    id: &str,
) -> (StreamClient<TcpStream>, Option<ConnAck>) {
    let tcp = TcpStream::connect(addr).await.expect("connect to the balancer");
    tcp.set_nodelay(true).expect("nodelay");
    let mut c = StreamClient::new(tcp, version);
    let ack = c.connect(Connect::new(version, id)).await;
    (c, ack)
}

/// A test CA in a temporary directory, with a server certificate for
/// `localhost` / 127.0.0.1.
pub(crate) struct Pki {
    dir: tempfile::TempDir,
    ca: Ca,
}

impl Pki {
    pub(crate) fn new() -> Pki {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut ca = Ca::create_in(&dir.path().join("ca"), &CaOptions::new("Skerry LB Test CA")).expect("CA");
        let sans = [San::Ip([127, 0, 0, 1].into()), San::Dns("localhost".into())];
        ca.issue_server("localhost", &sans, &dir.path().join("server"))
            .expect("server cert");
        Pki { dir, ca }
    }

    pub(crate) fn base(&self) -> &Path {
        self.dir.path()
    }

    /// A listener's `tls:` block (indented for a listener) requiring a
    /// client certificate from this CA.
    pub(crate) fn tls_yaml(&self) -> String {
        "      tls:\n        cert: server.crt\n        key: server.key\n        client_ca: ca/ca.crt\n        require_certificate: true\n".to_owned()
    }

    /// Revokes `cn` and writes the CRL to `crl.pem` (relative to [`Pki::base`]).
    pub(crate) fn revoke(&mut self, cn: &str) {
        let reason = skerry_certs::RevocationReason::KeyCompromise;
        self.ca
            .revoke(&skerry_certs::Selector::Cn(cn.to_owned()), reason)
            .expect("revoke");
        self.write_crl();
    }

    /// Writes the CA's current CRL to `crl.pem` (relative to [`Pki::base`]).
    pub(crate) fn write_crl(&mut self) {
        let path = self.dir.path().join("crl.pem");
        self.ca.crl(time::Duration::days(1), Some(&path)).expect("CRL");
    }

    pub(crate) fn client(&mut self, cn: &str) -> Issued {
        self.ca
            .issue_client(cn, &self.dir.path().join(cn))
            .expect("client cert")
    }

    /// A TLS client trusting this CA, presenting `cert` if given.
    pub(crate) fn connector(&self, cert: Option<&Issued>) -> TlsConnector {
        skerry_tests::tls::connector(&self.ca, cert)
    }
}

/// Opens TLS to `addr` as `localhost`; `None` when the handshake fails.
pub(crate) async fn tls_connect(connector: &TlsConnector, addr: SocketAddr) -> Option<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let name = ServerName::try_from("localhost").expect("name");
    connector.connect(name, tcp).await.ok()
}

/// The DER of an issued certificate.
pub(crate) fn cert_der(issued: &Issued) -> Vec<u8> {
    CertificateDer::from_pem_slice(issued.cert_pem.as_bytes())
        .expect("PEM")
        .to_vec()
}
