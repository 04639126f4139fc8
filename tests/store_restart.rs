//! A clean restart (SIGTERM) of a real `skerry run` with 100k messages
//! queued across 1k offline persistent sessions: every message comes back,
//! in order per session, after the node starts again on the same data
//! directory (default engine, `durability: interval`).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use skerry_codec::{encode, Packet, ProtocolVersion, Publish, QoS, ReasonCode};
use skerry_tests::process::{free_port, SkerryProcess};

use crate::broker_protocol::{ack, client, connect, disconnect, next_publish, pid, subscribe, v5_persistent};
use crate::store_crash::node_config;

const SESSIONS: usize = 1000;
const PER_SESSION: usize = 100;
/// Concurrent clients while subscribing and draining.
const PARALLEL: usize = 8;
/// Publishes written before reading their PUBACKs.
const CHUNK: usize = 1000;

fn id(s: usize) -> String {
    format!("r-{s:04}")
}

/// Runs `f` for every session, `PARALLEL` sessions at a time.
async fn for_each_session<F, Fut>(f: F)
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let tasks: Vec<_> = (0..PARALLEL)
        .map(|t| {
            let f = f.clone();
            tokio::spawn(async move {
                for s in (t..SESSIONS).step_by(PARALLEL) {
                    f(s).await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("session task");
    }
}

/// Message k goes to session k % SESSIONS with payload k / SESSIONS, so
/// each session's queue is 0, 1, 2, ... in publish order.
async fn fill(addr: SocketAddr) {
    let mut c = client(addr, "restart-pub").await;
    let total = SESSIONS * PER_SESSION;
    for start in (0..total).step_by(CHUNK) {
        let mut out = BytesMut::new();
        for k in start..(start + CHUNK).min(total) {
            let mut p = Publish::new(format!("restart/{}", k % SESSIONS), (k / SESSIONS).to_string());
            p.qos = QoS::AtLeastOnce;
            p.packet_id = Some(pid(u16::try_from(k - start + 1).expect("chunk ids fit")));
            encode(&Packet::Publish(p), ProtocolVersion::V5, &mut out).expect("encode");
        }
        c.send_bytes(&out).await;
        for _ in start..(start + CHUNK).min(total) {
            match c.recv().await {
                Some(Packet::PubAck(a)) => assert_eq!(a.reason, ReasonCode::Success),
                other => panic!("expected PUBACK, got {other:?}"),
            }
        }
    }
    disconnect(c, ReasonCode::Success).await;
}

#[tokio::test]
async fn queued_messages_survive_a_clean_restart_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let config = node_config(dir.path(), port, "    durability: interval\n    fsync_interval: 10ms");
    let node = SkerryProcess::start(&config, addr).await;
    let started = Instant::now();
    for_each_session(move |s| async move {
        let (mut c, _) = connect(addr, v5_persistent(&id(s), 3600)).await;
        subscribe(&mut c, &format!("restart/{s}"), QoS::AtLeastOnce).await;
        disconnect(c, ReasonCode::Success).await;
    })
    .await;
    fill(addr).await;
    let filled = started.elapsed();
    assert!(node.terminate().await.success(), "clean exit on SIGTERM");
    let restart = Instant::now();
    let _node = SkerryProcess::start(&config, addr).await;
    // The port listens before the store is loaded; the first CONNACK comes after.
    disconnect(client(addr, "restart-probe").await, ReasonCode::Success).await;
    let restarted = restart.elapsed();
    for_each_session(move |s| async move {
        let (mut c, connack) = connect(addr, v5_persistent(&id(s), 3600)).await;
        assert!(connack.session_present, "session {} survived", id(s));
        for n in 0..PER_SESSION {
            let p = next_publish(&mut c).await;
            assert_eq!(
                p.payload.as_ref(),
                n.to_string().as_bytes(),
                "session {} message {n}",
                id(s)
            );
            ack(&mut c, &p).await;
        }
        assert!(
            c.recv_within(Duration::from_millis(20)).await.is_err(),
            "session {}: nothing more",
            id(s)
        );
        disconnect(c, ReasonCode::Success).await;
    })
    .await;
    eprintln!(
        "{} queued across {SESSIONS} sessions: filled in {filled:?}, restarted in {restarted:?}, drained in {:?}",
        SESSIONS * PER_SESSION,
        restart.elapsed() - restarted
    );
}
