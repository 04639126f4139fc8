//! The listener layer end to end, through a whole node: TLS with and
//! without client certificates (identity as username, CRL), PROXY protocol
//! v1/v2 (trusted networks, the SSL TLV's CN as username), MQTT over
//! WebSocket and the `max_connections` cap. Certificates come from a CA
//! made at test time with `skerry-certs`.

mod proxy;
mod tls;
mod websocket;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use bytes::BytesMut;
use skerry_codec::{encode, ConnAck, Connect, Disconnect, Packet, ProtocolVersion, ReasonCode};
use skerry_tests::broker::TestBroker;
use skerry_tests::stream::StreamClient;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const V5: ProtocolVersion = ProtocolVersion::V5;

/// A node config: `broker` lines (indented 2) and `listeners` (indented 8).
fn yaml(broker: &str, listeners: &str) -> String {
    format!("broker:\n{broker}\n  nodes:\n    - name: n1\n      listeners:\n{listeners}")
}

/// No anonymous clients; each may use only `devices/<its username>/#`.
const DEVICE_ACL: &str = "  allow_anonymous: false\n  acl:\n    - access: all\n      topic: devices/%u/#";

const TCP_LISTENER: &str = "        - name: tcp\n          bind: 127.0.0.1:0\n";

/// Sends `prefix` (a PROXY header) and CONNECT in one write, as a balancer
/// forwarding a client's first segment would; the client and its CONNACK.
async fn tcp_client(addr: SocketAddr, prefix: &[u8], id: &str) -> (StreamClient<TcpStream>, Option<ConnAck>) {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(&[prefix, &connect_bytes(id)[..]].concat())
        .await
        .expect("write");
    let mut c = StreamClient::new(tcp, V5);
    match c.recv().await {
        Some(Packet::ConnAck(ack)) => (c, Some(ack)),
        None => (c, None),
        Some(other) => panic!("expected CONNACK, got {other:?}"),
    }
}

fn connect_bytes(id: &str) -> BytesMut {
    let mut out = BytesMut::new();
    encode(&Packet::Connect(Connect::new(V5, id)), V5, &mut out).expect("encode");
    out
}

/// Packets encoded back to back.
fn encoded(packets: &[Packet]) -> BytesMut {
    let mut out = BytesMut::new();
    for p in packets {
        encode(p, V5, &mut out).expect("encode");
    }
    out
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
    third
        .send(&Packet::Connect(Connect::new(V5, "third")))
        .await
        .expect("send");
    let early = third.recv_within(Duration::from_secs(1)).await;
    assert!(
        early.is_err(),
        "no answer while two clients hold the listener, got {early:?}"
    );

    first
        .send(&Packet::Disconnect(Disconnect::new(ReasonCode::Success)))
        .await
        .expect("send");
    assert_eq!(first.recv().await, None, "first closed");
    match third.recv().await {
        Some(Packet::ConnAck(a)) => assert_eq!(a.reason, ReasonCode::Success),
        other => panic!("third should be admitted once the first left, got {other:?}"),
    }
    broker.stop().await;
}
