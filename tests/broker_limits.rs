//! Limits a node enforces per client, and `skerry passwd` feeding a real
//! node's users file.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use skerry_codec::{Packet, ProtocolVersion, Publish, QoS};
use skerry_tests::broker::TestBroker;
use skerry_tests::raw::RawClient;
use skerry_tests::{have, skerry_bin};

/// 20 QoS 1 publishes against `max_message_rate: 5/s` (burst 5) cannot all
/// be acknowledged in under three seconds: the node stops reading from the
/// client until the rate allows more. The bound is loose on purpose.
#[tokio::test]
async fn max_message_rate_slows_a_chatty_client() {
    let broker = TestBroker::start("  max_message_rate: 5/s").await;
    let mut c = RawClient::connected(broker.tcp(), ProtocolVersion::V311, "chatty").await;
    let started = Instant::now();
    for i in 1..=20u16 {
        let mut p = Publish::new("chatty/x", vec![1u8]);
        p.qos = QoS::AtLeastOnce;
        p.packet_id = std::num::NonZeroU16::new(i);
        c.send(&Packet::Publish(p)).await;
    }
    let mut acked = 0;
    while acked < 20 {
        match c.recv_within(Duration::from_secs(10)).await {
            Ok(Some(Packet::PubAck(_))) => acked += 1,
            other => panic!("expected PUBACK, got {other:?}"),
        }
    }
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "20 messages at 5/s went through in {:?}",
        started.elapsed()
    );
    // A second client has its own budget and is not slowed by the first.
    let mut other = RawClient::connected(broker.tcp(), ProtocolVersion::V311, "quiet").await;
    let mut p = Publish::new("quiet/x", vec![1u8]);
    p.qos = QoS::AtLeastOnce;
    p.packet_id = std::num::NonZeroU16::new(1);
    other.send(&Packet::Publish(p)).await;
    assert!(matches!(other.recv().await, Some(Packet::PubAck(_))));
    broker.stop().await;
}

fn passwd(file: &std::path::Path, user: &str, password: &str) -> std::process::ExitStatus {
    let mut child = Command::new(skerry_bin())
        .args(["passwd", file.to_str().unwrap(), user, "--password-stdin"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    child.wait().unwrap()
}

/// `skerry passwd` writes the users file a node then checks logins against,
/// seen from `mosquitto_pub`.
#[tokio::test]
async fn passwd_users_log_in_with_their_password_only() {
    if !have("mosquitto_pub") {
        eprintln!("skipped: mosquitto_pub is not installed (bash tests/run installs it)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let users = dir.path().join("users");
    assert!(passwd(&users, "dev-1", "s3cret").success());
    assert!(passwd(&users, "dev-2", "other").success());
    let yaml = format!(
        "broker:\n  allow_anonymous: false\n  users_file: {}\n  nodes:\n    - name: n1\n      listeners:\n        - name: tcp\n          bind: 127.0.0.1:0\n",
        users.display()
    );
    let broker = TestBroker::start_in(&yaml, dir.path()).await;
    let port = broker.tcp().port().to_string();
    let publish = move |user: &str, password: &str| {
        Command::new("mosquitto_pub")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-u",
                user,
                "-P",
                password,
                "-t",
                "t",
                "-m",
                "x",
                "-q",
                "1",
            ])
            .output()
            .unwrap()
            .status
            .success()
    };
    let (good, wrong, unknown) = tokio::task::spawn_blocking(move || {
        (
            publish("dev-1", "s3cret"),
            publish("dev-1", "other"),
            publish("nobody", "s3cret"),
        )
    })
    .await
    .unwrap();
    assert!(good, "right password refused");
    assert!(!wrong, "wrong password accepted");
    assert!(!unknown, "unknown user accepted");
    broker.stop().await;
}

/// A subscriber that stops reading fills its socket buffers, then its
/// mailbox (`max_online_messages: 4`): from then on its publisher is not
/// read from (TCP holds it back) instead of the QoS 0 messages being
/// dropped. Once the subscriber reads again every message arrives, in
/// order, and nothing was dropped.
#[tokio::test]
async fn a_full_mailbox_holds_the_publisher_back_instead_of_dropping_qos0() {
    const MESSAGES: u32 = 800;
    const SIZE: usize = 64 * 1024;
    let broker = TestBroker::start("  sessions:\n    max_online_messages: 4").await;
    let addr = broker.tcp();
    let mut sub = RawClient::connected(addr, ProtocolVersion::V311, "slow").await;
    assert!(!sub.subscribe("bp/#").await.is_error());
    let publisher = tokio::spawn(async move {
        let mut p = RawClient::connected(addr, ProtocolVersion::V311, "fast").await;
        for i in 0..MESSAGES {
            let mut payload = vec![0u8; SIZE];
            payload[..4].copy_from_slice(&i.to_be_bytes());
            p.send(&Packet::Publish(Publish::new("bp/x", payload))).await;
        }
        p
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !publisher.is_finished(),
        "52 MB cannot all be taken while the subscriber reads nothing"
    );
    let depth = broker.session("slow").expect("session").queued;
    assert_eq!(depth, 4, "the admin API shows the full mailbox");
    for i in 0..MESSAGES {
        match sub.recv().await {
            Some(Packet::Publish(p)) => assert_eq!(p.payload[..4], i.to_be_bytes(), "message {i} in order"),
            other => panic!("expected message {i}, got {other:?}"),
        }
    }
    let _publisher = publisher.await.expect("publisher task");
    assert_eq!(broker.stat("queue_message_drop"), 0);
    broker.stop().await;
}
