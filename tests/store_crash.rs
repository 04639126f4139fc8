//! `kill -9` of a real `skerry run` while a publisher streams QoS 1 and
//! QoS 2 messages to persistent subscribers that are offline: after a
//! restart on the same data directory every message the node acknowledged
//! (PUBACK / PUBREC) is delivered, and each QoS 2 message exactly once. On
//! sled and on redb, with `durability: sync`.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use bytes::BytesMut;
use skerry_codec::{decode_packet, encode, Ack, Connect, Packet, ProtocolVersion, Publish, QoS, ReasonCode};
use skerry_tests::process::{free_port, SkerryProcess};
use skerry_tests::raw::RawClient;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::broker_protocol::{connect, disconnect, pid, subscribe, v5, v5_persistent};

/// Messages per QoS.
const N: u32 = 500;
/// The node is killed once this many publishes were acknowledged.
const KILL_AFTER: usize = 300;
/// Publishes the publisher keeps unacknowledged.
const WINDOW: usize = 32;

/// A one-node configuration on `port` keeping its store in `dir/data`.
pub(crate) fn node_config(dir: &Path, port: u16, store: &str) -> std::path::PathBuf {
    let yaml = format!(
        "logging:\n  level: warn\nbroker:\n  allow_anonymous: true\n  sessions:\n    max_offline_messages: 100000\n  store:\n{store}\n  nodes:\n    - name: n1\n      data_dir: {}\n      listeners:\n        - name: tcp\n          bind: 127.0.0.1:{port}\n",
        dir.join("data").display()
    );
    let path = dir.join("skerry.yaml");
    std::fs::write(&path, yaml).expect("write config");
    path
}

/// The v3.1.1 persistent (clean session = false) subscriber.
fn v311_persistent(id: &str) -> Connect {
    let mut c = Connect::new(ProtocolVersion::V311, id);
    c.clean_start = false;
    c
}

/// Payload indexes the node acknowledged, by QoS.
#[derive(Default)]
struct Acked {
    q1: HashSet<u32>,
    q2: HashSet<u32>,
}

/// A publisher on a split socket: it keeps writing while acknowledgements
/// come back.
struct Publisher {
    rd: tokio::net::tcp::OwnedReadHalf,
    wr: tokio::net::tcp::OwnedWriteHalf,
    buf: BytesMut,
    /// Packet id -> payload index.
    sent: HashMap<u16, u32>,
    next: u32,
    outstanding: usize,
}

impl Publisher {
    async fn connect(addr: SocketAddr) -> Publisher {
        let (rd, wr) = TcpStream::connect(addr).await.expect("connect").into_split();
        let mut p = Publisher {
            rd,
            wr,
            buf: BytesMut::new(),
            sent: HashMap::new(),
            next: 0,
            outstanding: 0,
        };
        p.write(&Packet::Connect(v5("crash-pub"))).await.expect("CONNECT");
        assert!(matches!(p.read().await, Some(Packet::ConnAck(_))), "CONNACK");
        p
    }

    async fn write(&mut self, p: &Packet) -> std::io::Result<()> {
        let mut out = BytesMut::new();
        encode(p, ProtocolVersion::V5, &mut out).expect("encode");
        self.wr.write_all(&out).await
    }

    /// The next packet; `None` once the node is gone.
    async fn read(&mut self) -> Option<Packet> {
        loop {
            if let Some(p) = decode_packet(&mut self.buf, ProtocolVersion::V5, u32::MAX).expect("valid packet") {
                return Some(p);
            }
            match tokio::time::timeout(Duration::from_secs(30), self.rd.read_buf(&mut self.buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return None,
                Ok(Ok(_)) => {}
                Err(_) => panic!("no acknowledgement within 30s"),
            }
        }
    }

    /// Publishes until `WINDOW` are unacknowledged: even indexes QoS 1 on
    /// `crash/q1`, odd ones QoS 2 on `crash/q2`, the payload the index.
    async fn fill_window(&mut self) {
        while self.outstanding < WINDOW && self.next < 2 * N {
            let (qos, topic) = if self.next.is_multiple_of(2) {
                (QoS::AtLeastOnce, "crash/q1")
            } else {
                (QoS::ExactlyOnce, "crash/q2")
            };
            let id = u16::try_from(self.next + 1).expect("ids fit");
            let mut p = Publish::new(topic, (self.next / 2).to_string());
            p.qos = qos;
            p.packet_id = Some(pid(id));
            self.sent.insert(id, self.next / 2);
            self.write(&Packet::Publish(p)).await.expect("PUBLISH");
            self.next += 1;
            self.outstanding += 1;
        }
    }
}

/// Publishes N QoS 1 and N QoS 2 messages, `WINDOW` at a time; kills the
/// node after `KILL_AFTER` acknowledgements and returns every
/// acknowledgement read (including those already on their way).
async fn publish_until_killed(addr: SocketAddr, node: &mut SkerryProcess) -> Acked {
    let mut p = Publisher::connect(addr).await;
    let (mut acked, mut killed) = (Acked::default(), false);
    loop {
        if !killed {
            p.fill_window().await;
        }
        let Some(packet) = p.read().await else { break };
        match packet {
            Packet::PubComp(_) => {}
            Packet::PubAck(a) => {
                acked.q1.insert(p.sent[&a.packet_id.get()]);
                p.outstanding -= 1;
            }
            Packet::PubRec(a) => {
                acked.q2.insert(p.sent[&a.packet_id.get()]);
                p.outstanding -= 1;
                if !killed {
                    p.write(&Packet::PubRel(Ack::new(a.packet_id))).await.expect("PUBREL");
                }
            }
            other => panic!("publisher got {other:?}"),
        }
        if !killed && acked.q1.len() + acked.q2.len() >= KILL_AFTER {
            node.kill9();
            killed = true;
        }
        assert!(
            killed || p.next < 2 * N || p.outstanding > 0,
            "every message acknowledged before the kill"
        );
    }
    acked
}

/// Payload indexes a resumed subscriber receives until the node goes quiet.
async fn drain(addr: SocketAddr, connect_packet: Connect) -> Vec<u32> {
    let (mut c, connack) = connect(addr, connect_packet).await;
    assert!(connack.session_present, "the session survived the crash");
    let mut got = Vec::new();
    // Several messages are in flight at once: PUBRELs come between PUBLISHes.
    while let Ok(Some(packet)) = c.recv_within(Duration::from_secs(3)).await {
        match packet {
            Packet::Publish(p) => {
                got.push(std::str::from_utf8(&p.payload).expect("utf8").parse().expect("index"));
                let id = p.packet_id.expect("QoS 1/2");
                let reply = if p.qos == QoS::ExactlyOnce {
                    Packet::PubRec(Ack::new(id))
                } else {
                    Packet::PubAck(Ack::new(id))
                };
                c.send(&reply).await;
            }
            Packet::PubRel(a) => c.send(&Packet::PubComp(Ack::new(a.packet_id))).await,
            other => panic!("expected PUBLISH or PUBREL, got {other:?}"),
        }
    }
    disconnect(c, ReasonCode::Success).await;
    got
}

async fn crash_and_recover(engine: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let config = node_config(dir.path(), port, &format!("    engine: {engine}\n    durability: sync"));
    let mut node = SkerryProcess::start(&config, addr).await;
    for (client, topic, qos) in [
        (v5_persistent("crash-q1", 3600), "crash/q1", QoS::AtLeastOnce),
        (v311_persistent("crash-q2"), "crash/q2", QoS::ExactlyOnce),
    ] {
        let (mut c, _) = connect(addr, client).await;
        subscribe(&mut c, topic, qos).await;
        disconnect(c, ReasonCode::Success).await;
    }
    let acked = publish_until_killed(addr, &mut node).await;
    let total = acked.q1.len() + acked.q2.len();
    assert!(
        total >= KILL_AFTER && total < 2 * N as usize,
        "{engine}: killed in the middle ({total} acked)"
    );
    let node = SkerryProcess::start(&config, addr).await;
    let q1 = drain(addr, v5_persistent("crash-q1", 3600)).await;
    let q2 = drain(addr, v311_persistent("crash-q2")).await;
    let (got1, got2): (HashSet<u32>, HashSet<u32>) = (q1.iter().copied().collect(), q2.iter().copied().collect());
    let lost1: Vec<_> = acked.q1.difference(&got1).collect();
    let lost2: Vec<_> = acked.q2.difference(&got2).collect();
    assert!(
        lost1.is_empty(),
        "{engine}: acknowledged QoS 1 messages lost: {lost1:?}"
    );
    assert!(
        lost2.is_empty(),
        "{engine}: acknowledged QoS 2 messages lost: {lost2:?}"
    );
    assert_eq!(got2.len(), q2.len(), "{engine}: a QoS 2 message was delivered twice");
    eprintln!(
        "{engine}: acknowledged {} QoS 1 and {} QoS 2 before the kill; delivered after restart {} and {}",
        acked.q1.len(),
        acked.q2.len(),
        q1.len(),
        q2.len()
    );
    node.terminate().await;
    // Delivered and acknowledged: gone for good.
    let node = SkerryProcess::start(&config, addr).await;
    let mut c = RawClient::connect(addr, v5_persistent("crash-q1", 3600)).await.0;
    assert!(
        c.recv_within(Duration::from_millis(500)).await.is_err(),
        "{engine}: acknowledged messages came back"
    );
    drop(node);
}

#[tokio::test]
async fn kill_9_loses_no_acknowledged_message_on_redb() {
    crash_and_recover("redb").await;
}

#[tokio::test]
async fn kill_9_loses_no_acknowledged_message_on_sled() {
    crash_and_recover("sled").await;
}
