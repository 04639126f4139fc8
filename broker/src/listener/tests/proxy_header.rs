//! PROXY protocol v1 and v2 in front of a plain TCP listener.

use std::net::SocketAddr;
use std::time::Duration;

use ppp::v2::{AddressFamily, Builder, Command, Protocol, Version};
use skerry_config::units::Duration as ConfDuration;
use skerry_config::{Listener, ProxyProtocol, Transport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{assert_closed, config, start};

fn proxied(trusted: &str, use_cn_as_username: bool) -> Listener {
    let mut cfg = config(Transport::Tcp);
    cfg.proxy_protocol = Some(ProxyProtocol {
        trusted: vec![trusted.parse().unwrap()],
        use_cn_as_username,
    });
    cfg
}

pub(super) fn v2_header(source: &str, cn: Option<&str>) -> Vec<u8> {
    let source: SocketAddr = source.parse().unwrap();
    let destination: SocketAddr = match source {
        SocketAddr::V4(_) => "192.0.2.1:1883".parse().unwrap(),
        SocketAddr::V6(_) => "[2001:db8::1]:1883".parse().unwrap(),
    };
    let builder = Builder::with_addresses(Version::Two | Command::Proxy, Protocol::Stream, (source, destination));
    let builder = match cn {
        Some(cn) => builder.write_tlv(0x20, &ssl_tlv(0x07, 0, cn)).unwrap(),
        None => builder,
    };
    builder.build().unwrap()
}

/// A PP2_TYPE_SSL value: client flags, verify result, version and CN sub-TLVs.
fn ssl_tlv(client: u8, verify: u32, cn: &str) -> Vec<u8> {
    let mut value = vec![client];
    value.extend_from_slice(&verify.to_be_bytes());
    for (kind, sub) in [(0x21u8, "TLSv1.3"), (0x22, cn)] {
        value.push(kind);
        value.extend_from_slice(&u16::try_from(sub.len()).unwrap().to_be_bytes());
        value.extend_from_slice(sub.as_bytes());
    }
    value
}

#[tokio::test]
async fn proxy_v1_from_trusted_peer_gives_header_source() {
    let mut running = start(&proxied("127.0.0.0/8", false));
    let mut client = TcpStream::connect(running.addr).await.unwrap();
    client
        .write_all(b"PROXY TCP4 192.0.2.7 192.0.2.1 40001 1883\r\n")
        .await
        .unwrap();
    let accepted = running.next().await;
    assert_eq!(accepted.peer, "192.0.2.7:40001".parse().unwrap());
    assert_eq!(accepted.local, running.addr);
    assert_eq!(accepted.cert_cn, None);
}

#[tokio::test]
async fn proxy_v2_from_trusted_peer_gives_header_source() {
    let mut running = start(&proxied("127.0.0.1/32", false));
    let mut client = TcpStream::connect(running.addr).await.unwrap();
    client.write_all(&v2_header("[2001:db8::5]:50000", None)).await.unwrap();
    let accepted = running.next().await;
    assert_eq!(accepted.peer, "[2001:db8::5]:50000".parse().unwrap());
}

#[tokio::test]
async fn proxy_v2_ssl_tlv_cn_becomes_username_when_configured() {
    let mut running = start(&proxied("127.0.0.0/8", true));
    let mut client = TcpStream::connect(running.addr).await.unwrap();
    client
        .write_all(&v2_header("198.51.100.9:50000", Some("dev-42")))
        .await
        .unwrap();
    let accepted = running.next().await;
    assert_eq!(accepted.peer, "198.51.100.9:50000".parse().unwrap());
    assert_eq!(accepted.cert_cn.as_deref(), Some("dev-42"));
    assert_eq!(accepted.identity_username.as_deref(), Some("dev-42"));
}

#[tokio::test]
async fn proxy_v2_ssl_tlv_cn_is_not_username_unless_configured() {
    let mut running = start(&proxied("127.0.0.0/8", false));
    let mut client = TcpStream::connect(running.addr).await.unwrap();
    client
        .write_all(&v2_header("198.51.100.9:50000", Some("dev-42")))
        .await
        .unwrap();
    let accepted = running.next().await;
    assert_eq!(accepted.cert_cn.as_deref(), Some("dev-42"));
    assert_eq!(accepted.identity_username, None);
}

#[tokio::test]
async fn proxy_v2_ssl_tlv_with_failed_verification_gives_no_cn() {
    let mut running = start(&proxied("127.0.0.0/8", true));
    let mut client = TcpStream::connect(running.addr).await.unwrap();
    let source: SocketAddr = "198.51.100.9:50000".parse().unwrap();
    let header = Builder::with_addresses(Version::Two | Command::Proxy, Protocol::Stream, (source, source))
        .write_tlv(0x20, &ssl_tlv(0x07, 1, "dev-42"))
        .unwrap()
        .build()
        .unwrap();
    client.write_all(&header).await.unwrap();
    let accepted = running.next().await;
    assert_eq!((accepted.cert_cn, accepted.identity_username), (None, None));
}

#[tokio::test]
async fn proxy_header_from_untrusted_peer_is_closed_unread() {
    let mut cfg = proxied("10.0.0.0/8", true);
    // Far longer than the test waits: closing must not wait for a header.
    cfg.handshake_timeout = ConfDuration::secs(60);
    let mut running = start(&cfg);
    let mut client = TcpStream::connect(running.addr).await.unwrap();
    assert_closed(&mut client).await;
    running
        .stats_eventually("one PROXY refusal", |s| s.proxy_refused() == 1)
        .await;

    let mut forger = TcpStream::connect(running.addr).await.unwrap();
    let _ = forger.write_all(&v2_header("198.51.100.9:50000", Some("admin"))).await;
    assert_closed(&mut forger).await;
    running.assert_no_connection(Duration::from_millis(100)).await;
    running
        .stats_eventually("two PROXY refusals", |s| s.proxy_refused() == 2)
        .await;
    assert_eq!(running.stats.handshake_failed(), 0);
}

#[tokio::test]
async fn proxy_header_that_never_ends_is_closed_at_the_timeout() {
    let mut running = start(&proxied("127.0.0.0/8", false));
    let mut client = TcpStream::connect(running.addr).await.unwrap();
    client.write_all(b"PROXY TCP4 192.0.2.7 192.0.2.1 400").await.unwrap();
    assert_closed(&mut client).await;
    running.assert_no_connection(Duration::from_millis(50)).await;
    running
        .stats_eventually("one failed handshake", |s| s.handshake_failed() == 1)
        .await;
}

#[tokio::test]
async fn missing_proxy_header_is_a_failed_handshake() {
    let mut running = start(&proxied("127.0.0.0/8", false));
    let mut client = TcpStream::connect(running.addr).await.unwrap();
    client
        .write_all(b"\x10\x10\x00\x04MQTT\x04\x02\x00\x3c\x00\x04dev1")
        .await
        .unwrap();
    assert_closed(&mut client).await;
    running.assert_no_connection(Duration::from_millis(50)).await;
    running
        .stats_eventually("one failed handshake", |s| s.handshake_failed() == 1)
        .await;
}

#[tokio::test]
async fn bytes_after_the_proxy_header_reach_the_handler_intact() {
    let mut running = start(&proxied("127.0.0.0/8", false));
    let mut client = TcpStream::connect(running.addr).await.unwrap();
    let connect = b"\x10\x10\x00\x04MQTT\x04\x02\x00\x3c\x00\x04dev1";
    for (header, name) in [
        (b"PROXY TCP4 192.0.2.7 192.0.2.1 40001 1883\r\n".to_vec(), "v1"),
        (v2_header("192.0.2.7:40001", Some("dev-42")), "v2"),
    ] {
        let mut first = header;
        first.extend_from_slice(connect);
        client.write_all(&first).await.unwrap();
        let mut accepted = running.next().await;
        client.write_all(b"\xc0\x00").await.unwrap();
        let mut got = vec![0u8; connect.len() + 2];
        accepted.stream.read_exact(&mut got).await.unwrap();
        assert_eq!(&got[..connect.len()], connect, "{name}");
        assert_eq!(&got[connect.len()..], b"\xc0\x00", "{name}");
        client = TcpStream::connect(running.addr).await.unwrap();
    }
}

#[tokio::test]
async fn proxy_v2_local_command_keeps_socket_addresses() {
    let mut running = start(&proxied("127.0.0.0/8", true));
    let mut client = TcpStream::connect(running.addr).await.unwrap();
    let local = Builder::new(
        Version::Two | Command::Local,
        AddressFamily::Unspecified | Protocol::Unspecified,
    )
    .build()
    .unwrap();
    client.write_all(&local).await.unwrap();
    let accepted = running.next().await;
    assert_eq!(accepted.peer, client.local_addr().unwrap());
    assert_eq!(accepted.identity_username, None);
}
