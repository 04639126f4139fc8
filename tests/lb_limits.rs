//! Limits: a rate class's connect rate and the per-IP connection cap
//! refuse with the CONNACK code for the client's version; the per-IP
//! connect rate closes before reading; a 64 KiB/s class throttles and a
//! fast class does not.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use skerry_codec::{ProtocolVersion, ReasonCode};
use skerry_lb::{Outcome, Refusal};
use skerry_tests::wait::eventually;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::lb_util::{lb_addr, members, mqtt_connect, start_lb, MiniBackend, V311, V5};

fn yaml(limits: &str, classes: &str, backend: SocketAddr) -> String {
    format!(
        "lb:\n{limits}  listeners:\n    - {{name: mqtt, bind: 127.0.0.1:0, pool: nodes}}\n  pools:\n    - name: nodes\n      members:\n{}{classes}",
        members(&[("node1", backend)])
    )
}

#[tokio::test]
async fn class_connect_rate_refuses_with_connection_rate_exceeded() {
    let backend = MiniBackend::start(false).await;
    let classes =
        "  rate_classes:\n    - name: devices\n      match: {client_id_prefix: dev-}\n      connect_rate: 2/m\n";
    let lb = start_lb(&yaml("", classes, backend.addr), Path::new("."));
    let addr = lb_addr(&lb);
    for id in ["dev-1", "dev-2"] {
        let (_c, ack) = mqtt_connect(addr, V5, id).await;
        assert_eq!(ack.map(|a| a.reason), Some(ReasonCode::Success));
    }
    let (_c, ack) = mqtt_connect(addr, V5, "dev-3").await;
    assert_eq!(
        ack.map(|a| a.reason),
        Some(ReasonCode::ConnectionRateExceeded),
        "v5: 0x9F"
    );
    for (version, id) in [(V311, "dev-4"), (ProtocolVersion::V31, "dev-5")] {
        let (_c, ack) = mqtt_connect(addr, version, id).await;
        let code = ack.map(|a| a.reason.v3_connack_code());
        assert_eq!(code, Some(0x03), "{version:?}: server unavailable");
    }
    let (_c, ack) = mqtt_connect(addr, V5, "other-1").await;
    assert_eq!(
        ack.map(|a| a.reason),
        Some(ReasonCode::Success),
        "outside the class: not limited"
    );
    let m = lb.metrics();
    assert_eq!(m.refused(Refusal::ClassConnectRate), 3);
    assert_eq!(m.ended(Outcome::Refused), 3);
    assert_eq!(backend.ids(), ["dev-1", "dev-2", "other-1"]);
    lb.shutdown().await;
}

#[tokio::test]
async fn per_ip_cap_refuses_with_quota_exceeded_until_a_slot_frees() {
    let backend = MiniBackend::start(false).await;
    let lb = start_lb(&yaml("  max_connections_per_ip: 2\n", "", backend.addr), Path::new("."));
    let addr = lb_addr(&lb);
    let (first, ack) = mqtt_connect(addr, V5, "c1").await;
    assert!(ack.is_some_and(|a| a.reason == ReasonCode::Success));
    let (_second, ack) = mqtt_connect(addr, V5, "c2").await;
    assert!(ack.is_some_and(|a| a.reason == ReasonCode::Success));
    let (_c, ack) = mqtt_connect(addr, V5, "c3").await;
    assert_eq!(ack.map(|a| a.reason), Some(ReasonCode::QuotaExceeded), "v5: 0x97");
    let (_c, ack) = mqtt_connect(addr, V311, "c4").await;
    assert_eq!(ack.map(|a| a.reason.v3_connack_code()), Some(0x03));
    assert_eq!(lb.metrics().refused(Refusal::MaxConnectionsPerIp), 2);
    drop(first);
    let mut admitted = false;
    for _ in 0..100 {
        let (_c, ack) = mqtt_connect(addr, V5, "c5").await;
        if ack.is_some_and(|a| a.reason == ReasonCode::Success) {
            admitted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(admitted, "a closed session frees its slot");
    lb.shutdown().await;
}

#[tokio::test]
async fn per_ip_connect_rate_closes_before_reading() {
    let backend = MiniBackend::start(false).await;
    let lb = start_lb(&yaml("  connect_rate_per_ip: 3/m\n", "", backend.addr), Path::new("."));
    let addr = lb_addr(&lb);
    for i in 0..3 {
        let (_c, ack) = mqtt_connect(addr, V5, &format!("r{i}")).await;
        assert!(ack.is_some_and(|a| a.reason == ReasonCode::Success));
    }
    let (_c, ack) = mqtt_connect(addr, V5, "r3").await;
    assert!(
        ack.is_none(),
        "closed without a CONNACK: the filter runs before any byte is read"
    );
    assert_eq!(lb.metrics().refused(Refusal::ConnectRatePerIp), 1);
    assert_eq!(backend.ids().len(), 3);
    lb.shutdown().await;
}

/// Sends `bytes` after the CONNECT and reads the echo back; the time it took.
async fn echo_time(addr: SocketAddr, id: &str, bytes: usize) -> Duration {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    let mut connect = bytes::BytesMut::new();
    let packet = skerry_codec::Packet::Connect(skerry_codec::Connect::new(V5, id));
    skerry_codec::encode(&packet, V5, &mut connect).expect("encode");
    tcp.write_all(&connect).await.expect("CONNECT");
    let mut ack = [0u8; 5];
    tcp.read_exact(&mut ack).await.expect("CONNACK");
    assert_eq!(ack[3], 0, "CONNACK success");
    let start = Instant::now();
    let (mut rx, mut tx) = tcp.into_split();
    let writer = tokio::spawn(async move {
        let chunk = vec![0x5A; 4096];
        for _ in 0..bytes / chunk.len() {
            tx.write_all(&chunk).await.expect("write");
        }
        tx
    });
    let mut got = 0;
    let mut buf = vec![0u8; 16 * 1024];
    while got < bytes {
        let n = rx.read(&mut buf).await.expect("read");
        assert!(n > 0, "closed after {got} bytes");
        got += n;
    }
    let _tx = writer.await.expect("writer");
    start.elapsed()
}

#[tokio::test]
async fn a_64_kib_per_second_class_throttles_and_a_fast_class_does_not() {
    let backend = MiniBackend::start(false).await;
    let classes = "  rate_classes:\n    - name: fast\n      match: {client_id_prefix: fast-}\n      bandwidth_in: 50MiB/s\n      bandwidth_out: 50MiB/s\n    - name: devices\n      bandwidth_in: 64KiB/s\n      bandwidth_out: 64KiB/s\n";
    let lb = start_lb(&yaml("", classes, backend.addr), Path::new("."));
    let addr = lb_addr(&lb);
    let size = 256 * 1024;
    let slow = echo_time(addr, "dev-slow", size).await;
    let fast = echo_time(addr, "fast-1", size).await;
    eprintln!("256 KiB echoed: 64 KiB/s class {slow:?}, 50 MiB/s class {fast:?}");
    assert!(slow >= Duration::from_secs(2), "64 KiB/s class took only {slow:?}");
    assert!(fast < slow / 2, "fast class {fast:?} vs slow {slow:?}");
    let relayed = || lb.metrics().bytes_to_clients >= 2 * size as u64;
    eventually("the relayed bytes to be counted", relayed).await;
    lb.shutdown().await;
}
