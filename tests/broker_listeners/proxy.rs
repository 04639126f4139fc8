//! PROXY protocol listeners: v1 and v2 headers from trusted networks only,
//! the v2 SSL TLV's CN as the username, PROXY in front of TLS, and headers
//! that never end.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use skerry_codec::{Connect, ReasonCode};
use skerry_tests::broker::TestBroker;
use skerry_tests::raw::WAIT;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::tls::{tls_connect, tls_listener, Pki};
use super::{connect_bytes, tcp_client, yaml, DEVICE_ACL, V5};

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
        for (kind, sub) in [
            (Type::SSLVersion, &b"TLSv1.3"[..]),
            (Type::SSLCommonName, cn.as_bytes()),
        ] {
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
    assert_eq!(
        ack.map(|a| a.reason),
        Some(ReasonCode::Success),
        "admitted by the CN alone"
    );
    assert_eq!(sub.subscribe("devices/dev-42/#").await, ReasonCode::GrantedQoS1);
    let (mut c, _) = tcp_client(addr, &proxy_v2(addr, Some((0x07, 0, "dev-42"))), "dev-42").await;
    assert_eq!(c.publish("devices/dev-42/x", "mine").await, ReasonCode::Success);
    assert_eq!(c.publish("devices/other/x", "theirs").await, ReasonCode::NotAuthorized);
    assert_eq!(
        sub.received().await,
        ("devices/dev-42/x".to_owned(), Bytes::from("mine"))
    );

    // Without a CN, or with one the balancer failed to verify, nobody vouches for the client.
    for (what, header) in [
        ("no SSL TLV", proxy_v2(addr, None)),
        ("verify failed", proxy_v2(addr, Some((0x07, 1, "dev-42")))),
        ("no client certificate", proxy_v2(addr, Some((0x01, 0, "dev-42")))),
    ] {
        let (_, ack) = tcp_client(addr, &header, "anon").await;
        assert_eq!(ack.map(|a| a.reason), Some(ReasonCode::NotAuthorized), "{what}");
    }
    // A wildcard CN names a user, but never widens `devices/%u/#`.
    let (mut wild, ack) = tcp_client(addr, &proxy_v2(addr, Some((0x07, 0, "+"))), "wild").await;
    assert_eq!(ack.map(|a| a.reason), Some(ReasonCode::Success));
    assert_eq!(
        wild.publish("devices/dev-42/x", "sneaky").await,
        ReasonCode::NotAuthorized
    );
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

#[tokio::test]
async fn proxy_header_from_an_untrusted_peer_is_closed_without_connack() {
    let listener = proxy_listener("10.0.0.0/8", "            use_cn_as_username: true\n");
    let broker = TestBroker::start_in(&yaml("  allow_anonymous: true", &listener), Path::new(".")).await;
    let addr = broker.tcp();
    let mut bytes = proxy_v2(addr, Some((0x07, 0, "dev-42")));
    bytes.extend_from_slice(&connect_bytes("forger"));
    assert_eq!(answer_to(addr, &bytes).await, Some(Vec::new()), "closed, no CONNACK");
    assert_eq!(
        answer_to(addr, &connect_bytes("plain")).await,
        Some(Vec::new()),
        "no header helps either"
    );
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
    assert_eq!(
        ack.map(|a| a.reason),
        Some(ReasonCode::Success),
        "PROXY UNKNOWN keeps the socket's address"
    );
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
    let (mut c, ack) = tls_connect(
        addr,
        &header,
        &pki.connector(Some(&device)),
        Connect::new(V5, "behind-lb"),
    )
    .await
    .expect("PROXY, then TLS");
    assert_eq!(ack.reason, ReasonCode::Success);
    assert_eq!(c.publish("devices/dev-9/x", "tls identity").await, ReasonCode::Success);
    assert_eq!(
        c.publish("devices/dev-42/x", "header identity").await,
        ReasonCode::NotAuthorized
    );
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
        assert!(
            matches!(read, Ok(Ok(0))),
            "{what}: expected a close, got {read:?} {answer:?}"
        );
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
    tcp.write_all(ppp::v1::Addresses::Unknown.to_string().as_bytes())
        .await
        .expect("header");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let _ = tcp.write_all(&connect_bytes("slowpoke")).await;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(WAIT, tcp.read_to_end(&mut answer))
        .await
        .expect("closed");
    assert!(
        answer.is_empty(),
        "no CONNACK after the deadline, got {answer:?} ({read:?})"
    );
    broker.stop().await;
}
