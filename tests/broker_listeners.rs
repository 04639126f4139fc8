//! The listener layer end to end, through a whole node: TLS with and
//! without client certificates (identity as username, CRL), PROXY protocol
//! v1/v2 (trusted networks, the SSL TLV's CN as username), MQTT over
//! WebSocket and the `max_connections` cap. Certificates come from a CA
//! made at test time with `skerry-certs`.

use std::net::SocketAddr;
use std::num::NonZeroU16;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use skerry_certs::{Ca, CaOptions, Issued, RevocationReason, San, Selector};
use skerry_codec::{
    decode_packet, encode, Ack, ConnAck, Connect, Packet, ProtocolVersion, Publish, QoS, ReasonCode, Subscribe,
    SubscriptionOptions,
};
use skerry_tests::broker::TestBroker;
use skerry_tests::raw::WAIT;
use skerry_tests::stream::{qos1, StreamClient};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

const V5: ProtocolVersion = ProtocolVersion::V5;

/// A node config: `broker` lines (indented 2) and `listeners` (indented 8).
fn yaml(broker: &str, listeners: &str) -> String {
    format!("broker:\n{broker}\n  nodes:\n    - name: n1\n      listeners:\n{listeners}")
}

const DEVICE_ACL: &str = "  allow_anonymous: false\n  acl:\n    - access: all\n      topic: devices/%u/#";

/// A test CA in a temporary directory, with a server certificate for 127.0.0.1.
struct Pki {
    dir: tempfile::TempDir,
    ca: Ca,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut ca = Ca::create_in(&dir.path().join("ca"), &CaOptions::new("Skerry Test CA")).expect("CA");
        let sans = [San::Ip([127, 0, 0, 1].into()), San::Dns("localhost".into())];
        ca.issue_server("localhost", &sans, &dir.path().join("server")).expect("server cert");
        Pki { dir, ca }
    }

    fn base(&self) -> &Path {
        self.dir.path()
    }

    fn client(&mut self, cn: &str) -> Issued {
        self.ca.issue_client(cn, &self.dir.path().join(cn)).expect("client cert")
    }

    /// Revokes `cn` and writes the CRL to `crl.pem`.
    fn revoke(&mut self, cn: &str) -> PathBuf {
        self.ca.revoke(&Selector::Cn(cn.to_owned()), RevocationReason::KeyCompromise).expect("revoke");
        let path = self.dir.path().join("crl.pem");
        self.ca.crl(time::Duration::days(1), Some(&path)).expect("CRL");
        path
    }

    /// A TLS client trusting this CA, presenting `cert` if given.
    fn connector(&self, cert: Option<&Issued>) -> TlsConnector {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        for der in CertificateDer::pem_slice_iter(self.ca.cert_pem().as_bytes()) {
            roots.add(der.expect("CA PEM")).expect("CA root");
        }
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_root_certificates(roots);
        let config = match cert {
            None => builder.with_no_client_auth(),
            Some(issued) => {
                let chain = CertificateDer::pem_slice_iter(issued.cert_pem.as_bytes()).map(|c| c.expect("PEM")).collect();
                let key = PrivateKeyDer::from_pem_slice(issued.key_pem.as_deref().expect("key").as_bytes()).expect("key");
                builder.with_client_auth_cert(chain, key).expect("client auth")
            }
        };
        TlsConnector::from(Arc::new(config))
    }
}

/// A TLS listener's YAML with extra `tls:` lines (indented 12).
fn tls_listener(name: &str, tls_extra: &str) -> String {
    format!(
        "        - name: {name}\n          bind: 127.0.0.1:0\n          transport: tls\n          tls:\n            cert: server.crt\n            key: server.key\n{tls_extra}"
    )
}

const TCP_LISTENER: &str = "        - name: tcp\n          bind: 127.0.0.1:0\n";

type Tls = tokio_rustls::client::TlsStream<TcpStream>;

/// Opens TCP, writes `prefix` (a PROXY header) and runs the TLS handshake.
async fn tls_stream(addr: SocketAddr, prefix: &[u8], tls: &TlsConnector) -> Result<Tls, String> {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(prefix).await.expect("write");
    let name = ServerName::try_from("127.0.0.1").expect("IP name");
    tls.connect(name, tcp).await.map_err(|e| format!("TLS handshake: {e}"))
}

/// TLS (after `prefix`), then `connect`: the client and its CONNACK, or
/// why the broker refused before any CONNACK.
async fn tls_connect(
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

/// Sends `prefix` (a PROXY header) and CONNECT in one write, as a balancer
/// forwarding a client's first segment would; the client and its CONNACK.
async fn tcp_client(addr: SocketAddr, prefix: &[u8], id: &str) -> (StreamClient<TcpStream>, Option<ConnAck>) {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(&[prefix, &connect_bytes(id)[..]].concat()).await.expect("write");
    let mut c = StreamClient::new(tcp, V5);
    match c.recv().await {
        Some(Packet::ConnAck(ack)) => (c, Some(ack)),
        None => (c, None),
        Some(other) => panic!("expected CONNACK, got {other:?}"),
    }
}

#[tokio::test]
async fn tls_without_client_ca_admits_any_client() {
    let pki = Pki::new();
    let listeners = tls_listener("tls", "") + TCP_LISTENER;
    let broker = TestBroker::start_in(&yaml("  allow_anonymous: true", &listeners), pki.base()).await;
    let tls = pki.connector(None);
    let (mut sub, ack) = tls_connect(broker.addr("tls"), b"", &tls, Connect::new(V5, "tls-sub")).await.expect("TLS client admitted");
    assert_eq!(ack.reason, ReasonCode::Success);
    assert_eq!(sub.subscribe("tls/#").await, ReasonCode::GrantedQoS1);
    let (mut tcp, _) = tcp_client(broker.addr("tcp"), b"", "tcp-pub").await;
    assert_eq!(tcp.publish("tls/from-tcp", "plain").await, ReasonCode::Success);
    assert_eq!(sub.received().await, ("tls/from-tcp".to_owned(), Bytes::from("plain")));

    if skerry_tests::have("mosquitto_pub") {
        let cafile = pki.ca.cert_path();
        let port = broker.addr("tls").port().to_string();
        let args = ["-h", "127.0.0.1", "-p", &port, "--cafile", cafile.to_str().expect("path")];
        let out = tokio::process::Command::new("mosquitto_pub")
            .args(args)
            .args(["-V", "mqttv311", "-t", "tls/mosquitto", "-m", "over tls", "-q", "1"])
            .output();
        let out = tokio::time::timeout(WAIT, out).await.expect("mosquitto_pub exits").expect("spawn");
        assert!(out.status.success(), "mosquitto_pub over TLS: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(sub.received().await, ("tls/mosquitto".to_owned(), Bytes::from("over tls")));
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

    let (mut sub, ack) = tls_connect(addr, b"", &tls, Connect::new(V5, "dev-7-sub")).await.expect("certificate admitted");
    assert_eq!(ack.reason, ReasonCode::Success, "no password, no anonymity: the certificate let it in");
    assert_eq!(sub.subscribe("devices/dev-7/#").await, ReasonCode::GrantedQoS1);
    assert_eq!(sub.subscribe("devices/other/#").await, ReasonCode::NotAuthorized);
    // A claimed username is ignored: the certificate decides who this is.
    let mut claim = Connect::new(V5, "dev-7-pub");
    claim.username = Some("dev-99".to_owned());
    let (mut publisher, _) = tls_connect(addr, b"", &tls, claim).await.expect("admitted");
    assert_eq!(publisher.publish("devices/dev-7/temp", "21").await, ReasonCode::Success);
    assert_eq!(publisher.publish("devices/other/temp", "99").await, ReasonCode::NotAuthorized);
    assert_eq!(sub.received().await, ("devices/dev-7/temp".to_owned(), Bytes::from("21")));

    let refused = tls_connect(addr, b"", &pki.connector(None), Connect::new(V5, "no-cert")).await;
    assert!(refused.is_err(), "a client without a certificate must fail the handshake");
    let mut stranger_ca = Pki::new();
    let stranger = stranger_ca.client("dev-7");
    let refused = tls_connect(addr, b"", &stranger_ca.connector(Some(&stranger)), Connect::new(V5, "other-ca")).await;
    assert!(refused.is_err(), "a certificate from another CA must fail the handshake");
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
    let (_, ack) = tls_connect(addr, b"", &pki.connector(Some(&good)), Connect::new(V5, "good")).await.expect("valid certificate admitted");
    assert_eq!(ack.reason, ReasonCode::Success);
    let refused = tls_connect(addr, b"", &pki.connector(Some(&revoked)), Connect::new(V5, "revoked")).await;
    assert!(refused.is_err(), "a revoked certificate must fail the handshake, got {:?}", refused.map(|r| r.1));
    broker.stop().await;
}

/// A PROXY listener's YAML.
fn proxy_listener(trusted: &str, extra: &str) -> String {
    format!("        - name: tcp\n          bind: 127.0.0.1:0\n          handshake_timeout: 500ms\n          proxy_protocol:\n            trusted: [{trusted}]\n{extra}")
}

/// A PROXY v2 header from 203.0.113.9 with an SSL TLV when `ssl` is given:
/// client flags, verify result, then the TLS version and the CN sub-TLVs.
fn proxy_v2(to: SocketAddr, ssl: Option<(u8, u32, &str)>) -> Vec<u8> {
    use ppp::v2::{Builder, Command, Protocol, Type, Version};
    let from: SocketAddr = "203.0.113.9:40000".parse().expect("addr");
    let mut builder = Builder::with_addresses(Version::Two | Command::Proxy, Protocol::Stream, (from, to));
    if let Some((client, verify, cn)) = ssl {
        let mut value = vec![client];
        value.extend_from_slice(&verify.to_be_bytes());
        for (kind, sub) in [(Type::SSLVersion, &b"TLSv1.3"[..]), (Type::SSLCommonName, cn.as_bytes())] {
            value.push(kind as u8);
            value.extend_from_slice(&u16::try_from(sub.len()).expect("short").to_be_bytes());
            value.extend_from_slice(sub);
        }
        builder = builder.write_tlv(Type::SSL, &value).expect("TLV");
    }
    builder.build().expect("PROXY v2 header")
}

#[tokio::test]
async fn proxy_v2_ssl_tlv_cn_becomes_the_username() {
    let listener = proxy_listener("127.0.0.1/32", "            use_cn_as_username: true\n");
    let broker = TestBroker::start_in(&yaml(DEVICE_ACL, &listener), Path::new(".")).await;
    let addr = broker.tcp();
    // SSL | CERT_CONN | CERT_SESS, verified.
    let (mut sub, ack) = tcp_client(addr, &proxy_v2(addr, Some((0x07, 0, "dev-42"))), "dev-42-sub").await;
    assert_eq!(ack.map(|a| a.reason), Some(ReasonCode::Success), "admitted by the CN alone");
    assert_eq!(sub.subscribe("devices/dev-42/#").await, ReasonCode::GrantedQoS1);
    let (mut c, _) = tcp_client(addr, &proxy_v2(addr, Some((0x07, 0, "dev-42"))), "dev-42").await;
    assert_eq!(c.publish("devices/dev-42/x", "mine").await, ReasonCode::Success);
    assert_eq!(c.publish("devices/other/x", "theirs").await, ReasonCode::NotAuthorized);
    assert_eq!(sub.received().await, ("devices/dev-42/x".to_owned(), Bytes::from("mine")));

    // Without a CN, or with one the balancer failed to verify, nobody vouches for the client.
    for (what, header) in [
        ("no SSL TLV", proxy_v2(addr, None)),
        ("verify failed", proxy_v2(addr, Some((0x07, 1, "dev-42")))),
        ("no client certificate", proxy_v2(addr, Some((0x01, 0, "dev-42")))),
    ] {
        let (_, ack) = tcp_client(addr, &header, "anon").await;
        assert_eq!(ack.map(|a| a.reason), Some(ReasonCode::NotAuthorized), "{what}");
    }
    broker.stop().await;
}

/// Bytes the broker sends before closing, after `bytes`; `None` if it
/// keeps the connection open past the wait.
async fn answer_to(addr: SocketAddr, bytes: &[u8]) -> Option<Vec<u8>> {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    // The broker may close first; what it sent is what counts.
    let _ = tcp.write_all(bytes).await;
    let mut answer = Vec::new();
    match tokio::time::timeout(WAIT, tcp.read_to_end(&mut answer)).await {
        Ok(_) => Some(answer),
        Err(_) => None,
    }
}

fn connect_bytes(id: &str) -> BytesMut {
    let mut out = BytesMut::new();
    encode(&Packet::Connect(Connect::new(V5, id)), V5, &mut out).expect("encode");
    out
}

#[tokio::test]
async fn proxy_header_from_an_untrusted_peer_is_closed_without_connack() {
    let listener = proxy_listener("10.0.0.0/8", "            use_cn_as_username: true\n");
    let broker = TestBroker::start_in(&yaml("  allow_anonymous: true", &listener), Path::new(".")).await;
    let addr = broker.tcp();
    let mut bytes = proxy_v2(addr, Some((0x07, 0, "dev-42")));
    bytes.extend_from_slice(&connect_bytes("forger"));
    assert_eq!(answer_to(addr, &bytes).await, Some(Vec::new()), "closed, no CONNACK");
    assert_eq!(answer_to(addr, &connect_bytes("plain")).await, Some(Vec::new()), "no header helps either");
    assert_eq!(broker.stat("mqtt_connect_received"), 0);
    broker.stop().await;
}

#[tokio::test]
async fn proxy_v1_header_is_understood() {
    let listener = proxy_listener("127.0.0.1/32", "");
    let broker = TestBroker::start_in(&yaml("  allow_anonymous: true", &listener), Path::new(".")).await;
    let addr = broker.tcp();
    let header = ppp::v1::Addresses::new_tcp4([192, 0, 2, 1], [127, 0, 0, 1], 40000, addr.port()).to_string();
    let (mut sub, ack) = tcp_client(addr, header.as_bytes(), "v1-sub").await;
    assert_eq!(ack.map(|a| a.reason), Some(ReasonCode::Success));
    assert_eq!(sub.subscribe("v1/#").await, ReasonCode::GrantedQoS1);
    let unknown = ppp::v1::Addresses::Unknown.to_string();
    let (mut publisher, ack) = tcp_client(addr, unknown.as_bytes(), "v1-pub").await;
    assert_eq!(ack.map(|a| a.reason), Some(ReasonCode::Success), "PROXY UNKNOWN keeps the socket's address");
    assert_eq!(publisher.publish("v1/x", "via v1").await, ReasonCode::Success);
    assert_eq!(sub.received().await, ("v1/x".to_owned(), Bytes::from("via v1")));
    broker.stop().await;
}

#[tokio::test]
async fn proxy_header_in_front_of_tls_keeps_the_tls_identity() {
    let mut pki = Pki::new();
    let device = pki.client("dev-9");
    let tls_extra = "            client_ca: ca/ca.crt\n            require_certificate: true\n            use_identity_as_username: true\n          proxy_protocol:\n            trusted: [127.0.0.1/32]\n";
    let broker = TestBroker::start_in(&yaml(DEVICE_ACL, &tls_listener("tls", tls_extra)), pki.base()).await;
    let addr = broker.addr("tls");
    // The header names another CN, but this listener takes identities from its own TLS only.
    let header = proxy_v2(addr, Some((0x07, 0, "dev-42")));
    let (mut c, ack) = tls_connect(addr, &header, &pki.connector(Some(&device)), Connect::new(V5, "behind-lb"))
        .await
        .expect("PROXY, then TLS");
    assert_eq!(ack.reason, ReasonCode::Success);
    assert_eq!(c.publish("devices/dev-9/x", "tls identity").await, ReasonCode::Success);
    assert_eq!(c.publish("devices/dev-42/x", "header identity").await, ReasonCode::NotAuthorized);
    broker.stop().await;
}

#[tokio::test]
async fn proxy_header_that_never_ends_is_closed_after_the_handshake_timeout() {
    let listener = proxy_listener("127.0.0.1/32", "");
    let broker = TestBroker::start_in(&yaml("  allow_anonymous: true", &listener), Path::new(".")).await;
    let addr = broker.tcp();
    let mut v2 = proxy_v2(addr, None);
    v2.truncate(20);
    for (what, bytes) in [("v1", &b"PROXY TCP4 192.0.2.1 "[..]), ("v2", &v2[..])] {
        let mut tcp = TcpStream::connect(addr).await.expect("connect");
        tcp.write_all(bytes).await.expect("write");
        let mut answer = Vec::new();
        // 500ms configured; well within this wait.
        let read = tokio::time::timeout(Duration::from_secs(4), tcp.read_to_end(&mut answer)).await;
        assert!(matches!(read, Ok(Ok(0))), "{what}: expected a close, got {read:?} {answer:?}");
    }
    broker.stop().await;
}

#[tokio::test]
async fn slow_proxy_header_does_not_extend_the_handshake_deadline() {
    let listener = proxy_listener("127.0.0.1/32", "").replace("500ms", "2s");
    let broker = TestBroker::start_in(&yaml("  allow_anonymous: true", &listener), Path::new(".")).await;
    let addr = broker.tcp();
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    // Header and CONNECT each come within 2s of the step before, but the
    // CONNECT comes 2.5s after the connection opened.
    tokio::time::sleep(Duration::from_secs(1)).await;
    tcp.write_all(ppp::v1::Addresses::Unknown.to_string().as_bytes()).await.expect("header");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let _ = tcp.write_all(&connect_bytes("slowpoke")).await;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(WAIT, tcp.read_to_end(&mut answer)).await.expect("closed");
    assert!(answer.is_empty(), "no CONNACK after the deadline, got {answer:?} ({read:?})");
    broker.stop().await;
}

/// Packets encoded back to back.
fn encoded(packets: &[Packet]) -> BytesMut {
    let mut out = BytesMut::new();
    for p in packets {
        encode(p, V5, &mut out).expect("encode");
    }
    out
}

/// MQTT over a WebSocket client: binary frames out, packets decoded from
/// whatever frames come in.
struct WsClient<S> {
    ws: tokio_tungstenite::WebSocketStream<S>,
    buf: BytesMut,
}

impl<S: AsyncRead + AsyncWrite + Unpin> WsClient<S> {
    /// The upgrade to `/mqtt` on `stream`, offering `protocol`.
    async fn open(stream: S, scheme: &str, protocol: Option<&str>) -> Result<WsClient<S>, String> {
        let mut request = format!("{scheme}://127.0.0.1/mqtt").into_client_request().expect("request");
        if let Some(p) = protocol {
            request.headers_mut().insert("Sec-WebSocket-Protocol", p.parse().expect("header"));
        }
        let (ws, response) = tokio_tungstenite::client_async(request, stream).await.map_err(|e| e.to_string())?;
        assert_eq!(response.headers()["Sec-WebSocket-Protocol"], "mqtt");
        Ok(WsClient { ws, buf: BytesMut::new() })
    }

    async fn send_frame(&mut self, bytes: &[u8]) {
        self.ws.send(Message::Binary(Bytes::copy_from_slice(bytes))).await.expect("send frame");
    }

    async fn recv(&mut self) -> Option<Packet> {
        loop {
            if let Some(p) = decode_packet(&mut self.buf, V5, u32::MAX).expect("valid packet") {
                return Some(p);
            }
            match tokio::time::timeout(WAIT, self.ws.next()).await.expect("a frame within the wait") {
                Some(Ok(Message::Binary(data))) => self.buf.extend_from_slice(&data),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                other => {
                    assert!(!matches!(other, Some(Ok(Message::Text(_)))), "text frame from the broker");
                    return None;
                }
            }
        }
    }
}

#[tokio::test]
async fn websocket_listener_round_trips_a_publish() {
    let listeners =
        format!("        - name: ws\n          bind: 127.0.0.1:0\n          transport: ws\n          websocket_path: /mqtt\n{TCP_LISTENER}");
    let broker = TestBroker::start_in(&yaml("  allow_anonymous: true", &listeners), Path::new(".")).await;
    let tcp = || async { TcpStream::connect(broker.addr("ws")).await.expect("connect") };
    let refused = WsClient::open(tcp().await, "ws", None).await;
    assert!(refused.is_err(), "the `mqtt` subprotocol is required");

    let mut ws = WsClient::open(tcp().await, "ws", Some("mqtt")).await.expect("upgrade");
    // CONNECT split over two frames, then SUBSCRIBE and PINGREQ in one.
    let connect = encoded(&[Packet::Connect(Connect::new(V5, "ws-client"))]);
    ws.send_frame(&connect[..3]).await;
    ws.send_frame(&connect[3..]).await;
    assert!(matches!(ws.recv().await, Some(Packet::ConnAck(a)) if a.reason == ReasonCode::Success));
    let filters = vec![("ws/#".to_owned(), SubscriptionOptions::new(QoS::AtLeastOnce))];
    let sub = Packet::Subscribe(Subscribe { packet_id: NonZeroU16::MIN, filters, properties: Default::default() });
    ws.send_frame(&encoded(&[sub, Packet::PingReq])).await;
    assert!(matches!(ws.recv().await, Some(Packet::SubAck(a)) if a.return_codes == [ReasonCode::GrantedQoS1]));
    assert_eq!(ws.recv().await, Some(Packet::PingResp));

    let (mut tcp, _) = tcp_client(broker.addr("tcp"), b"", "tcp-pub").await;
    assert_eq!(tcp.subscribe("tcp/#").await, ReasonCode::GrantedQoS1);
    assert_eq!(tcp.publish("ws/in", "to ws").await, ReasonCode::Success);
    match ws.recv().await {
        Some(Packet::Publish(p)) => {
            assert_eq!((p.topic.as_str(), &p.payload[..]), ("ws/in", &b"to ws"[..]));
            ws.send_frame(&encoded(&[Packet::PubAck(Ack::new(p.packet_id.expect("QoS 1")))])).await;
        }
        other => panic!("expected PUBLISH over WebSocket, got {other:?}"),
    }
    ws.send_frame(&encoded(&[Packet::Publish(qos1("tcp/out", "from ws"))])).await;
    assert!(matches!(ws.recv().await, Some(Packet::PubAck(a)) if a.reason == ReasonCode::Success));
    assert_eq!(tcp.received().await, ("tcp/out".to_owned(), Bytes::from("from ws")));
    broker.stop().await;
}

#[tokio::test]
async fn wss_with_an_optional_client_certificate() {
    let mut pki = Pki::new();
    let device = pki.client("dev-5");
    let listener = tls_listener("wss", "            client_ca: ca/ca.crt\n            use_identity_as_username: true\n")
        .replace("transport: tls", "transport: wss");
    let broker = TestBroker::start_in(&yaml(DEVICE_ACL, &listener), pki.base()).await;
    let addr = broker.addr("wss");
    let tls = tls_stream(addr, b"", &pki.connector(Some(&device))).await.expect("TLS");
    let mut ws = WsClient::open(tls, "wss", Some("mqtt")).await.expect("upgrade");
    ws.send_frame(&encoded(&[Packet::Connect(Connect::new(V5, "wss-dev"))])).await;
    assert!(matches!(ws.recv().await, Some(Packet::ConnAck(a)) if a.reason == ReasonCode::Success));
    ws.send_frame(&encoded(&[Packet::Publish(qos1("devices/dev-5/up", "hi"))])).await;
    assert!(matches!(ws.recv().await, Some(Packet::PubAck(a)) if a.reason == ReasonCode::Success), "CN is the username");

    // No certificate is allowed here, but then nothing vouches for the client.
    let tls = tls_stream(addr, b"", &pki.connector(None)).await.expect("TLS without a certificate");
    let mut ws = WsClient::open(tls, "wss", Some("mqtt")).await.expect("upgrade");
    ws.send_frame(&encoded(&[Packet::Connect(Connect::new(V5, "wss-anon"))])).await;
    assert!(matches!(ws.recv().await, Some(Packet::ConnAck(a)) if a.reason == ReasonCode::NotAuthorized));
    broker.stop().await;
}

#[tokio::test]
async fn max_connections_makes_the_next_client_wait() {
    let listeners = "        - name: tcp\n          bind: 127.0.0.1:0\n          max_connections: 2\n";
    let broker = TestBroker::start_in(&yaml("  allow_anonymous: true", listeners), Path::new(".")).await;
    let addr = broker.tcp();
    let (mut first, ack) = tcp_client(addr, b"", "first").await;
    assert!(ack.is_some(), "first admitted");
    let (_second, ack) = tcp_client(addr, b"", "second").await;
    assert!(ack.is_some(), "second admitted");

    // The third waits in the backlog: connected at TCP level, no CONNACK.
    let mut third = StreamClient::new(TcpStream::connect(addr).await.expect("backlog"), V5);
    third.send(&Packet::Connect(Connect::new(V5, "third"))).await.expect("send");
    let early = third.recv_within(Duration::from_secs(1)).await;
    assert!(early.is_err(), "no answer while two clients hold the listener, got {early:?}");

    first.send(&Packet::Disconnect(skerry_codec::Disconnect::new(ReasonCode::Success))).await.expect("send");
    assert_eq!(first.recv().await, None, "first closed");
    match third.recv().await {
        Some(Packet::ConnAck(a)) => assert_eq!(a.reason, ReasonCode::Success),
        other => panic!("third should be admitted once the first left, got {other:?}"),
    }
    broker.stop().await;
}
