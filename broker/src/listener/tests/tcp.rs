//! Plain TCP: what the handler gets, the connection cap, shutdown.

use std::num::NonZeroU32;
use std::time::Duration;

use skerry_config::Transport;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{config, start, PATIENCE};
use crate::listener::{Accepted, ListenerError, MqttListener};

#[tokio::test]
async fn tcp_connection_reaches_handler_with_addresses() {
    let mut running = start(&config(Transport::Tcp));
    assert_ne!(running.addr.port(), 0);
    let mut client = TcpStream::connect(running.addr).await.unwrap();
    let mut accepted = running.next().await;
    assert_eq!(accepted.peer, client.local_addr().unwrap());
    assert_eq!(accepted.local, running.addr);
    assert_eq!(&*accepted.listener, "test-tcp");
    assert_eq!(accepted.transport, Transport::Tcp);
    assert_eq!(accepted.max_packet_size, 256 * 1024);
    assert_eq!(
        (accepted.cert_cn.as_deref(), accepted.identity_username.as_deref()),
        (None, None)
    );

    client.write_all(b"\x10\x00").await.unwrap();
    let mut buf = [0u8; 2];
    accepted.stream.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"\x10\x00");
    accepted.stream.write_all(b"\x20\x02\x00\x00").await.unwrap();
    let mut buf = [0u8; 4];
    client.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"\x20\x02\x00\x00");
    assert_eq!(running.stats.accepted(), 1);
}

#[tokio::test]
async fn active_counts_connections_until_their_handler_returns() {
    let listener = MqttListener::bind(&config(Transport::Tcp)).unwrap();
    let (addr, stats) = (listener.local_addr(), listener.stats());
    let handler = |mut accepted: Accepted| async move {
        let mut sink = Vec::new();
        let _ = accepted.stream.read_to_end(&mut sink).await;
    };
    tokio::spawn(listener.run(handler, std::future::pending()));
    let client = TcpStream::connect(addr).await.unwrap();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while stats.active() != 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "connection never counted: {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(client);
    while stats.active() != 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "closed connection still counted: {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!((stats.accepted(), stats.handshake_failed()), (1, 0));
}

#[tokio::test]
async fn second_client_waits_for_a_permit_instead_of_being_refused() {
    let mut cfg = config(Transport::Tcp);
    cfg.max_connections = NonZeroU32::new(1).unwrap();
    let mut running = start(&cfg);
    let _first_client = TcpStream::connect(running.addr).await.unwrap();
    let first = running.next().await;

    let mut second_client = TcpStream::connect(running.addr).await.unwrap();
    second_client.write_all(b"waiting").await.unwrap();
    running.assert_no_connection(Duration::from_millis(300)).await;
    let mut byte = [0u8; 1];
    let still_open = tokio::time::timeout(Duration::from_millis(100), second_client.read(&mut byte)).await;
    assert!(
        still_open.is_err(),
        "the waiting client was answered or closed: {still_open:?}"
    );

    drop(first);
    let mut second = running.next().await;
    let mut buf = [0u8; 7];
    second.stream.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"waiting");
}

#[tokio::test]
async fn shutdown_stops_accepting_and_leaves_connections_alone() {
    let mut running = start(&config(Transport::Tcp));
    let mut client = TcpStream::connect(running.addr).await.unwrap();
    let mut accepted = running.next().await;

    running.stop.take().unwrap().send(()).unwrap();
    tokio::time::timeout(PATIENCE, &mut running.task)
        .await
        .unwrap()
        .unwrap();
    assert!(
        TcpStream::connect(running.addr).await.is_err(),
        "still accepting after shutdown"
    );

    client.write_all(b"x").await.unwrap();
    let mut byte = [0u8; 1];
    accepted.stream.read_exact(&mut byte).await.unwrap();
    assert_eq!(&byte, b"x");
}

#[tokio::test]
async fn socket_buffer_sizes_are_applied_without_error() {
    let mut cfg = config(Transport::Tcp);
    cfg.send_buffer = Some(skerry_config::units::ByteSize::kib(64));
    cfg.receive_buffer = Some(skerry_config::units::ByteSize::kib(64));
    let mut running = start(&cfg);
    let _client = TcpStream::connect(running.addr).await.unwrap();
    running.next().await;
}

#[tokio::test]
async fn address_in_use_is_a_bind_error_naming_the_listener() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut cfg = config(Transport::Tcp);
    cfg.bind = taken.local_addr().unwrap();
    let error = MqttListener::bind(&cfg).unwrap_err();
    assert!(matches!(error, ListenerError::Bind { .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains("test-tcp") && message.contains(&cfg.bind.to_string()),
        "{message}"
    );
}
