//! Failures: a backend that dies is marked down within its health-check
//! budget and avoided; `shutdown_sessions` closes a down backend's
//! sessions; hostile clients (slowloris, garbage, TLS garbage, oversize
//! CONNECTs) are closed without disturbing anyone else; a stopping
//! balancer drains its sessions.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use skerry_codec::{encode, Connect, Packet, ReasonCode};
use skerry_lb::{BalancerHandle, Refusal};
use skerry_tests::wait::eventually;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::lb_util::{lb_addr, members, mqtt_connect, start_lb, MiniBackend, Pki, V311, V5};

/// Probes every 100 ms, 200 ms each, down after 2 failures: marked down
/// within about half a second of dying.
const FAST_HEALTH: &str = "      health_check: {kind: tcp, interval: 100ms, timeout: 200ms, rise: 1, fall: 2}\n";

fn yaml(top: &str, pool: &str, list: &[(&str, SocketAddr)]) -> String {
    format!(
        "lb:\n{top}  listeners:\n    - {{name: mqtt, bind: 127.0.0.1:0, pool: nodes}}\n  pools:\n    - name: nodes\n{pool}{FAST_HEALTH}      members:\n{}",
        members(list)
    )
}

fn healthy(lb: &BalancerHandle, member: &str) -> bool {
    lb.backends().iter().any(|b| b.member == member && b.healthy)
}

/// Client ids (from `candidates`) that `lb` sends to `backend`.
async fn ids_on(lb: &BalancerHandle, backend: &MiniBackend, n: usize) -> Vec<String> {
    backend.clear();
    for i in 0..n * 6 {
        let (_c, ack) = mqtt_connect(lb_addr(lb), V5, &format!("probe-{i}")).await;
        assert!(ack.is_some_and(|a| a.reason == ReasonCode::Success));
    }
    let ids: Vec<String> = backend.ids().into_iter().take(n).collect();
    assert_eq!(ids.len(), n, "enough clients hash to the backend");
    ids
}

#[tokio::test]
async fn a_killed_backend_is_marked_down_in_time_and_avoided() {
    let (b1, b2, b3) = (
        MiniBackend::start(false).await,
        MiniBackend::start(false).await,
        MiniBackend::start(false).await,
    );
    let lb = start_lb(
        &yaml("", "", &[("b1", b1.addr), ("b2", b2.addr), ("b3", b3.addr)]),
        Path::new("."),
    );
    let victims = ids_on(&lb, &b2, 5).await;
    b2.kill();
    let killed = Instant::now();
    eventually("b2 marked down", || !healthy(&lb, "b2")).await;
    let took = killed.elapsed();
    eprintln!("killed backend marked down after {took:?} (budget: 2 x 100 ms + 200 ms timeout)");
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert!(healthy(&lb, "b1") && healthy(&lb, "b3"));
    b1.clear();
    b3.clear();
    for id in &victims {
        let (_c, ack) = mqtt_connect(lb_addr(&lb), V5, id).await;
        assert_eq!(
            ack.map(|a| a.reason),
            Some(ReasonCode::Success),
            "{id} served elsewhere"
        );
    }
    let elsewhere = b1.ids().len() + b3.ids().len();
    assert_eq!(elsewhere, victims.len());
    lb.shutdown().await;
}

#[tokio::test]
async fn shutdown_sessions_closes_a_down_backends_clients() {
    let (b1, b2) = (MiniBackend::start(false).await, MiniBackend::start(false).await);
    let pool = "      on_marked_down: shutdown_sessions\n";
    let lb = start_lb(&yaml("", pool, &[("b1", b1.addr), ("b2", b2.addr)]), Path::new("."));
    let id = ids_on(&lb, &b1, 1).await.remove(0);
    let (mut c, ack) = mqtt_connect(lb_addr(&lb), V5, &id).await;
    assert!(ack.is_some_and(|a| a.reason == ReasonCode::Success));
    // b1 keeps its established connections but stops answering probes.
    b1.stop_accepting();
    eventually("b1 marked down", || !healthy(&lb, "b1")).await;
    assert_eq!(
        c.recv_within(Duration::from_secs(5)).await,
        Ok(None),
        "the session was closed"
    );
    let (_c, ack) = mqtt_connect(lb_addr(&lb), V5, &id).await;
    assert_eq!(
        ack.map(|a| a.reason),
        Some(ReasonCode::Success),
        "its reconnect lands on b2"
    );
    assert_eq!(b2.ids().last(), Some(&id));
    lb.shutdown().await;
}

#[tokio::test]
async fn no_backend_left_refuses_with_server_unavailable() {
    let b1 = MiniBackend::start(false).await;
    let lb = start_lb(&yaml("", "", &[("b1", b1.addr)]), Path::new("."));
    b1.kill();
    let (_c, ack) = mqtt_connect(lb_addr(&lb), V5, "x").await;
    assert_eq!(ack.map(|a| a.reason), Some(ReasonCode::ServerUnavailable), "v5: 0x88");
    eventually("b1 marked down", || !healthy(&lb, "b1")).await;
    let (_c, ack) = mqtt_connect(lb_addr(&lb), V311, "y").await;
    assert_eq!(ack.map(|a| a.reason.v3_connack_code()), Some(0x03));
    let m = lb.metrics();
    assert_eq!(
        m.refused(Refusal::BackendUnreachable) + m.refused(Refusal::NoBackend),
        2
    );
    assert!(m.refused(Refusal::NoBackend) >= 1);
    lb.shutdown().await;
}

fn connect_bytes(id: &str) -> Vec<u8> {
    let mut b = bytes::BytesMut::new();
    encode(&Packet::Connect(Connect::new(V5, id)), V5, &mut b).expect("encode");
    b.to_vec()
}

/// Whether the balancer closes `tcp` (EOF or reset) within `within`.
async fn closed_within(tcp: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(within, tcp.read(&mut buf)).await,
        Ok(Ok(0) | Err(_))
    )
}

/// A working session: what it sends comes back (the backend echoes).
async fn still_echoes(c: &mut TcpStream) {
    c.write_all(&[0xC0, 0x00]).await.expect("PINGREQ-sized bytes");
    let mut back = [0u8; 2];
    tokio::time::timeout(Duration::from_secs(5), c.read_exact(&mut back))
        .await
        .expect("echo in time")
        .expect("echo");
    assert_eq!(back, [0xC0, 0x00]);
}

/// Slowloris, HTTP, TLS garbage, an oversize CONNECT and a silent client:
/// each closed within the sniff timeout (500 ms) plus slack.
async fn attack(plain: SocketAddr, tls_addr: SocketAddr) {
    let started = Instant::now();
    let slowloris = tokio::spawn(async move {
        let mut t = TcpStream::connect(plain).await.expect("connect");
        for b in connect_bytes("slow") {
            if t.write_all(&[b]).await.is_err() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        closed_within(&mut t, Duration::from_secs(3)).await
    });
    let mut garbage = TcpStream::connect(plain).await.expect("connect");
    garbage
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    assert!(
        closed_within(&mut garbage, Duration::from_secs(3)).await,
        "garbage closed"
    );
    let mut tls_garbage = TcpStream::connect(tls_addr).await.expect("connect");
    tls_garbage
        .write_all(&[0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5, 6, 7, 8])
        .await
        .expect("write");
    assert!(
        closed_within(&mut tls_garbage, Duration::from_secs(3)).await,
        "TLS garbage closed"
    );
    let mut oversize = TcpStream::connect(plain).await.expect("connect");
    let _ = oversize.write_all(&connect_bytes(&"x".repeat(2000))).await;
    assert!(
        closed_within(&mut oversize, Duration::from_secs(3)).await,
        "oversize CONNECT closed"
    );
    let mut silent = TcpStream::connect(plain).await.expect("connect");
    assert!(
        closed_within(&mut silent, Duration::from_secs(3)).await,
        "silent client closed"
    );
    assert!(slowloris.await.expect("slowloris task"), "slowloris closed");
    assert!(started.elapsed() < Duration::from_secs(6));
}

#[tokio::test]
async fn hostile_clients_are_closed_without_disturbing_others() {
    let pki = Pki::new();
    let backend = MiniBackend::start(false).await;
    let top = "  sniff_timeout: 500ms\n  max_connect_size: 1KiB\n";
    let tls = format!(
        "    - name: mqtts\n      bind: 127.0.0.1:0\n      pool: nodes\n{}",
        pki.tls_yaml()
    );
    let text = yaml(top, "", &[("b1", backend.addr)]).replace("  pools:\n", &format!("{tls}  pools:\n"));
    let lb = start_lb(&text, pki.base());
    let (plain, tls_addr) = (lb_addr(&lb), lb.local_addr("mqtts").expect("TLS listener"));

    let mut good = TcpStream::connect(plain).await.expect("connect");
    good.write_all(&connect_bytes("good")).await.expect("CONNECT");
    let mut ack = [0u8; 5];
    good.read_exact(&mut ack).await.expect("CONNACK");

    attack(plain, tls_addr).await;

    still_echoes(&mut good).await;
    let (_c, ack) = mqtt_connect(plain, V5, "newcomer").await;
    assert_eq!(ack.map(|a| a.reason), Some(ReasonCode::Success));
    let m = lb.metrics();
    assert_eq!(m.refused(Refusal::NotMqtt), 1);
    assert_eq!(m.refused(Refusal::TlsHandshake), 1);
    assert_eq!(m.refused(Refusal::ConnectTooLarge), 1);
    assert_eq!(
        m.refused(Refusal::SniffTimeout),
        2,
        "the silent client and the slowloris"
    );
    assert_eq!(backend.ids(), ["good", "newcomer"]);
    lb.shutdown().await;
}

#[tokio::test]
async fn a_stopping_balancer_drains_its_sessions_and_stops_listening() {
    let backend = MiniBackend::start(false).await;
    let top = "  drain_window: 300ms\n  grace_period: 10s\n";
    let lb = start_lb(&yaml(top, "", &[("b1", backend.addr)]), Path::new("."));
    let addr = lb_addr(&lb);
    let mut sessions = Vec::new();
    for i in 0..5 {
        let (c, ack) = mqtt_connect(addr, V5, &format!("d{i}")).await;
        assert!(ack.is_some_and(|a| a.reason == ReasonCode::Success));
        sessions.push(c);
    }
    let started = Instant::now();
    lb.shutdown().await;
    let took = started.elapsed();
    eprintln!("5 sessions drained in {took:?} (drain window 300 ms)");
    assert!(
        took < Duration::from_secs(5),
        "returned once drained, not after the grace period: {took:?}"
    );
    for mut c in sessions {
        assert_eq!(c.recv_within(Duration::from_secs(2)).await, Ok(None), "session closed");
    }
    assert!(TcpStream::connect(addr).await.is_err(), "no longer listening");
}

#[tokio::test]
async fn a_drained_backend_gets_no_new_clients_and_keeps_its_sessions() {
    let (b1, b2) = (MiniBackend::start(false).await, MiniBackend::start(false).await);
    let lb = start_lb(&yaml("", "", &[("b1", b1.addr), ("b2", b2.addr)]), Path::new("."));
    let id = ids_on(&lb, &b1, 1).await.remove(0);
    let (mut kept, _) = mqtt_connect(lb_addr(&lb), V5, "kept").await;
    let kept_on_b1 = b1.ids().contains(&"kept".to_owned());
    lb.drain("nodes", "b1", true).expect("drain");
    assert!(lb.drain("nodes", "nope", true).is_err());
    b2.clear();
    let (_c, ack) = mqtt_connect(lb_addr(&lb), V5, &id).await;
    assert!(ack.is_some_and(|a| a.reason == ReasonCode::Success));
    assert_eq!(b2.ids(), std::slice::from_ref(&id), "b1's client went to b2");
    assert!(lb.backends().iter().any(|b| b.member == "b1" && b.draining));
    if kept_on_b1 {
        assert_eq!(
            kept.recv_within(Duration::from_millis(300)).await,
            Err(()),
            "the drained backend's session stays"
        );
    }
    lb.drain("nodes", "b1", false).expect("undrain");
    b1.clear();
    let (_c, _) = mqtt_connect(lb_addr(&lb), V5, &id).await;
    assert_eq!(b1.ids(), [id], "back on b1 once undrained");
    lb.shutdown().await;
}

#[tokio::test]
async fn start_errors_name_the_listener_and_the_file_instead_of_panicking() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("server.crt"), "not a certificate").expect("write");
    std::fs::write(dir.path().join("server.key"), "not a key").expect("write");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let cases = [
        (
            format!("    - {{name: busy, bind: \"127.0.0.1:{port}\", pool: nodes}}\n"),
            "listener busy: cannot bind",
        ),
        (
            "    - {name: secure, bind: 127.0.0.1:0, pool: nodes, tls: {cert: server.crt, key: server.key}}\n"
                .to_owned(),
            "server.crt",
        ),
    ];
    for (listener, want) in cases {
        let yaml = format!(
            "lb:\n  listeners:\n{listener}  pools:\n    - name: nodes\n      members: [{{name: n1, address: \"127.0.0.1:1\"}}]\n"
        );
        let lb = skerry_config::parse(&yaml, dir.path())
            .expect("valid config")
            .lb
            .expect("lb");
        let err = skerry_lb::Balancer::start(&lb).expect_err("start fails");
        assert!(err.to_string().contains(want), "{err}");
    }
}
