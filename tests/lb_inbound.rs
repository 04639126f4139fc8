//! A balancer behind another one (a cloud L4 balancer): the PROXY header
//! it receives from a trusted network gives the client's address, which
//! goes on to the backend; from anywhere else the connection is closed.

use std::net::SocketAddr;
use std::path::Path;

use ppp::v2::{self, Addresses, Builder, Command, Protocol, Version};
use skerry_codec::{Connect, ReasonCode};
use skerry_lb::Refusal;
use skerry_tests::stream::StreamClient;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::lb_util::{lb_addr, members, start_lb, MiniBackend, V5};

fn yaml(trusted: &str, backend: SocketAddr) -> String {
    format!(
        "lb:\n  listeners:\n    - name: behind-nlb\n      bind: 127.0.0.1:0\n      pool: nodes\n      proxy_protocol:\n        trusted: [{trusted}]\n  pools:\n    - name: nodes\n      proxy_protocol: v2\n      members:\n{}",
        members(&[("node1", backend)])
    )
}

async fn via_nlb(lb: SocketAddr, client: SocketAddr) -> Option<ReasonCode> {
    let mut tcp = TcpStream::connect(lb).await.expect("connect");
    let header = Builder::with_addresses(Version::Two | Command::Proxy, Protocol::Stream, (client, lb))
        .build()
        .expect("header");
    tcp.write_all(&header).await.expect("header");
    let mut c = StreamClient::new(tcp, V5);
    c.connect(Connect::new(V5, "behind")).await.map(|a| a.reason)
}

#[tokio::test]
async fn trusted_proxy_header_gives_the_client_address_to_the_backend() {
    let backend = MiniBackend::start(true).await;
    let lb = start_lb(&yaml("127.0.0.0/8", backend.addr), Path::new("."));
    let client: SocketAddr = "198.51.100.7:40404".parse().expect("addr");
    assert_eq!(via_nlb(lb_addr(&lb), client).await, Some(ReasonCode::Success));
    let seen = backend.seen().pop().expect("seen");
    let header = seen.proxy.expect("header");
    match v2::Header::try_from(&header[..]).expect("parse").addresses {
        Addresses::IPv4(a) => {
            assert_eq!(SocketAddr::from((a.source_address, a.source_port)), client);
            assert_eq!(
                SocketAddr::from((a.destination_address, a.destination_port)),
                lb_addr(&lb)
            );
        }
        other => panic!("{other:?}"),
    }
    lb.shutdown().await;
}

#[tokio::test]
async fn proxy_header_from_an_untrusted_network_is_refused() {
    let backend = MiniBackend::start(true).await;
    let lb = start_lb(&yaml("10.0.0.0/8", backend.addr), Path::new("."));
    let client: SocketAddr = "198.51.100.7:40404".parse().expect("addr");
    assert_eq!(via_nlb(lb_addr(&lb), client).await, None, "closed without an answer");
    assert_eq!(lb.metrics().refused(Refusal::UntrustedProxy), 1);
    assert!(backend.seen().is_empty());
    lb.shutdown().await;
}
