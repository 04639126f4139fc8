//! A pool member's `handover_socket`: the balancer passes a plain TCP
//! client's socket to a node in another process on this host, and the node
//! serves it directly. The balancer keeps the session's place under its
//! caps until the node reports it closed, closes it when it stops, and
//! relays instead when the node's socket is not there.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use skerry_codec::ReasonCode;
use skerry_lb::BalancerHandle;
use skerry_tests::broker::TestBroker;
use skerry_tests::process::{free_port, SkerryProcess};
use skerry_tests::stream::StreamClient;
use skerry_tests::wait::eventually;
use tokio::net::TcpStream;

use crate::lb_util::{lb_addr, mqtt_connect, start_lb, V311, V5};

/// A node whose `tcp` listener takes PROXY v2 from loopback and passed
/// clients on `socket`; idle connections hibernate after 200 ms.
async fn node(socket: Option<&Path>) -> TestBroker {
    let handover = socket.map_or(String::new(), |s| {
        format!("          handover_socket: {}\n", s.display())
    });
    let yaml = format!(
        "broker:\n  allow_anonymous: true\n  sessions:\n    hibernate_after: 200ms\n  nodes:\n    - name: n1\n      listeners:\n        - name: tcp\n          bind: 127.0.0.1:0\n          proxy_protocol:\n            trusted: [127.0.0.1/32]\n{handover}"
    );
    TestBroker::start_in(&yaml, Path::new(".")).await
}

/// A balancer on `port` (0: any) whose one member is `node`, reached over
/// PROXY v2 and passed clients on `socket`; `top` goes under `lb:`.
fn lb_yaml(port: u16, top: &str, node: SocketAddr, socket: &Path) -> String {
    format!(
        "lb:\n{top}  listeners:\n    - {{name: mqtt, bind: 127.0.0.1:{port}, pool: nodes}}\n  pools:\n    - name: nodes\n      proxy_protocol: v2\n      members:\n        - {{name: n1, address: \"{node}\", handover_socket: \"{}\"}}\n",
        socket.display()
    )
}

/// A node taking passed clients and an in-process balancer in front of it
/// (`top` under `lb:`); the socket's directory lives as long as this.
struct Passing {
    node: TestBroker,
    lb: BalancerHandle,
    _dir: tempfile::TempDir,
}

impl Passing {
    async fn start(top: &str) -> Passing {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("n1.sock");
        let node = node(Some(&socket)).await;
        let lb = start_lb(&lb_yaml(0, top, node.tcp(), &socket), Path::new("."));
        Passing { node, lb, _dir: dir }
    }
}

/// A subscriber and a publisher connected through `addr`, `tag` in their ids.
async fn pair(addr: SocketAddr, tag: &str) -> (StreamClient<TcpStream>, StreamClient<TcpStream>) {
    let (mut sub, ack) = mqtt_connect(addr, V5, &format!("sub-{tag}")).await;
    assert_eq!(ack.map(|a| a.reason), Some(ReasonCode::Success));
    assert_eq!(sub.subscribe("t/pass").await, ReasonCode::GrantedQoS1);
    let (publisher, ack) = mqtt_connect(addr, V311, &format!("pub-{tag}")).await;
    assert_eq!(ack.map(|a| a.reason), Some(ReasonCode::Success));
    (sub, publisher)
}

/// One QoS 1 message from `publisher` arrives at `sub`.
async fn round_trip(sub: &mut StreamClient<TcpStream>, publisher: &mut StreamClient<TcpStream>, payload: &str) {
    assert_eq!(publisher.publish("t/pass", payload).await, ReasonCode::Success);
    assert_eq!(
        sub.received().await,
        ("t/pass".to_owned(), payload.as_bytes().to_vec().into())
    );
}

#[tokio::test]
async fn passed_clients_are_served_by_the_node_and_outlive_a_killed_balancer() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("n1.sock");
    let node = node(Some(&socket)).await;
    let port = free_port();
    let file = dir.path().join("lb.yaml");
    std::fs::write(&file, lb_yaml(port, "", node.tcp(), &socket)).unwrap();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut lb = SkerryProcess::start(&file, addr).await;
    let (mut sub, mut publisher) = pair(addr, "k").await;
    round_trip(&mut sub, &mut publisher, "before").await;
    assert_eq!(node.clients_connected(), 2);
    // The node holds the clients' own sockets: they hibernate there as
    // sockets accepted by the node itself do (a relayed stream could not).
    eventually("both passed connections hibernate", || node.hibernating() == 2).await;
    lb.kill9();
    assert!(TcpStream::connect(addr).await.is_err(), "the balancer is gone");
    round_trip(&mut sub, &mut publisher, "after the balancer died").await;
    round_trip(&mut sub, &mut publisher, "and again").await;
    assert_eq!(node.clients_connected(), 2);
    node.stop().await;
}

#[tokio::test]
async fn a_passed_session_keeps_its_per_ip_place_until_the_node_reports_it_closed() {
    let Passing { node, lb, _dir } = Passing::start("  max_connections_per_ip: 2\n").await;
    let addr = lb_addr(&lb);
    let (mut sub, mut publisher) = pair(addr, "cap").await;
    round_trip(&mut sub, &mut publisher, "m").await;
    let (_third, ack) = mqtt_connect(addr, V5, "third").await;
    assert_eq!(ack.map(|a| a.reason), Some(ReasonCode::QuotaExceeded), "v5: 0x97");
    let m = lb.metrics();
    assert_eq!(m.passed, 2, "{m:?}");
    assert_eq!(m.bytes_to_backends, 0, "nothing relayed: {m:?}");
    assert_eq!(lb.backends()[0].active_connections, 2);
    drop(publisher);
    eventually("the node reports the publisher closed", || {
        lb.backends()[0].active_connections == 1
    })
    .await;
    let (mut again, ack) = mqtt_connect(addr, V311, "pub-again").await;
    assert_eq!(
        ack.map(|a| a.reason),
        Some(ReasonCode::Success),
        "its place is free again"
    );
    round_trip(&mut sub, &mut again, "from the next publisher").await;
    lb.shutdown().await;
    node.stop().await;
}

#[tokio::test]
async fn a_stopping_balancer_closes_its_passed_sessions_and_the_node_sees_them_go() {
    let Passing { node, lb, _dir } = Passing::start("  drain_window: 300ms\n").await;
    let (mut sub, mut publisher) = pair(lb_addr(&lb), "drain").await;
    round_trip(&mut sub, &mut publisher, "m").await;
    assert_eq!(lb.metrics().passed, 2);
    let stopping = tokio::spawn(lb.shutdown());
    let closed = tokio::time::timeout(Duration::from_secs(5), sub.recv()).await;
    assert!(
        matches!(closed, Ok(None)),
        "the subscriber's connection closes: {closed:?}"
    );
    eventually("the node sees both clients go", || node.clients_connected() == 0).await;
    stopping.await.unwrap();
    node.stop().await;
}

#[tokio::test]
async fn without_the_nodes_handover_socket_the_client_is_relayed() {
    let dir = tempfile::tempdir().unwrap();
    let node = node(None).await;
    let lb = start_lb(
        &lb_yaml(0, "", node.tcp(), &dir.path().join("absent.sock")),
        Path::new("."),
    );
    let (mut sub, mut publisher) = pair(lb_addr(&lb), "relay").await;
    round_trip(&mut sub, &mut publisher, "relayed").await;
    let m = lb.metrics();
    assert_eq!(m.passed, 0, "{m:?}");
    assert!(m.bytes_to_backends > 0, "{m:?}");
    assert_eq!(node.clients_connected(), 2);
    lb.shutdown().await;
    node.stop().await;
}

#[tokio::test]
async fn a_node_that_stops_leaves_no_session_counted_at_the_balancer() {
    let Passing { node, lb, _dir } = Passing::start("").await;
    let (mut sub, mut publisher) = pair(lb_addr(&lb), "stop").await;
    round_trip(&mut sub, &mut publisher, "m").await;
    assert_eq!(lb.backends()[0].active_connections, 2);
    node.stop().await;
    eventually("the balancer lets go of the stopped node's sessions", || {
        lb.backends()[0].active_connections == 0
    })
    .await;
    // The client sees its connection end (after a DISCONNECT, for v5).
    let ended = tokio::time::timeout(Duration::from_secs(5), async { while sub.recv().await.is_some() {} }).await;
    assert!(ended.is_ok(), "the subscriber's connection closes");
    lb.shutdown().await;
}
