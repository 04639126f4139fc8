//! Connections handed over by the balancer in this process through a `tcp`
//! listener's inlet: the same PROXY handling and connection cap as a
//! socket, without a socket.

use std::num::NonZeroU32;

use bytes::BytesMut;
use skerry_config::{ProxyProtocol, Transport};
use tokio::io::DuplexStream;

use super::proxy_header::v2_header;
use super::{config, replays_then_reads_on, start};
use crate::listener::Io;

/// One end of an in-memory pipe stands in for the client's stream.
impl Io for DuplexStream {
    fn into_tcp(self: Box<Self>) -> Result<tokio::net::TcpStream, crate::listener::BoxedStream> {
        Err(self)
    }
}

#[tokio::test]
async fn a_handed_over_client_keeps_its_proxy_identity_and_its_bytes() {
    let mut cfg = config(Transport::Tcp);
    // Trusts no socket peer: the in-process balancer needs no trust entry.
    cfg.proxy_protocol = Some(ProxyProtocol {
        trusted: vec!["10.0.0.0/8".parse().unwrap()],
        use_cn_as_username: true,
    });
    let mut running = start(&cfg);
    let inlet = running.inlet.clone().expect("a tcp listener has an inlet");
    assert_eq!(inlet.local_addr(), running.addr);

    let (mut client, server_end) = tokio::io::duplex(1024);
    let mut first = BytesMut::from(&v2_header("198.51.100.9:50000", Some("dev-42"))[..]);
    first.extend_from_slice(b"CONNECT");
    let place = inlet.reserve().expect("room");
    place.hand_over(Box::new(server_end), first, "127.0.0.1:1".parse().unwrap());

    let mut accepted = running.next().await;
    assert_eq!(accepted.peer, "198.51.100.9:50000".parse().unwrap());
    assert_eq!(accepted.local, running.addr);
    assert_eq!(accepted.identity_username.as_deref(), Some("dev-42"));
    // The replayed bytes after the header, then the client's own.
    replays_then_reads_on(&mut client, &mut accepted).await;
}

#[tokio::test]
async fn an_inlet_has_no_room_beyond_max_connections() {
    let mut cfg = config(Transport::Tcp);
    // One place for the accept loop's next socket, one for a handed-over client.
    cfg.max_connections = NonZeroU32::new(2).unwrap();
    let mut running = start(&cfg);
    let inlet = running.inlet.clone().unwrap();
    let (_client, server_end) = tokio::io::duplex(64);
    let place = inlet.reserve().expect("room");
    place.hand_over(Box::new(server_end), BytesMut::new(), "127.0.0.1:1".parse().unwrap());
    let accepted = running.next().await;
    assert!(inlet.reserve().is_none(), "a place beyond max_connections");
    drop(accepted);
    assert!(inlet.reserve().is_some(), "its place is free once it closes");
}

#[tokio::test]
async fn only_tcp_listeners_have_an_inlet_and_a_stopped_one_has_no_room() {
    let mut ws = start(&config(Transport::Ws));
    assert!(ws.inlet.is_none());
    ws.stop.take().unwrap().send(()).unwrap();

    let mut running = start(&config(Transport::Tcp));
    let inlet = running.inlet.clone().unwrap();
    running.stop.take().unwrap().send(()).unwrap();
    (&mut running.task).await.unwrap();
    assert!(inlet.reserve().is_none(), "room at a stopped listener");
}
