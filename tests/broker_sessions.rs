//! Session lifecycles of a broker node, end to end: wills and their delay,
//! message expiry in offline queues, takeover, keep alive, session expiry
//! and offline queue limits.

use std::time::Duration;

use skerry_codec::{Connect, LastWill, Packet, ProtocolVersion, QoS, ReasonCode, WillProperties};
use skerry_tests::broker::TestBroker;
use skerry_tests::raw::RawClient;

use crate::broker_protocol::{
    ack, client, connect, disconnect, expect_disconnect, message, next_publish, ping_barrier, publish, publish0,
    subscribe, v5, v5_persistent,
};

/// A v5 CONNECT with a QoS 1 will on `will/<id>`, delayed `delay` seconds.
fn with_will(mut c: Connect, delay: Option<u32>) -> Connect {
    c.will = Some(LastWill {
        topic: format!("will/{}", c.client_id).into(),
        payload: "gone".into(),
        qos: QoS::AtLeastOnce,
        retain: false,
        properties: WillProperties {
            will_delay_interval: delay,
            ..Default::default()
        },
    });
    c
}

/// A client watching `will/#`.
async fn watcher(broker: &TestBroker) -> RawClient {
    let mut w = client(broker.tcp(), "watcher").await;
    subscribe(&mut w, "will/#", QoS::AtLeastOnce).await;
    w
}

/// Asserts the next message the watcher gets is `topic`.
async fn expect_topic(w: &mut RawClient, topic: &str) {
    let p = next_publish(w).await;
    assert_eq!(p.topic.as_str(), topic);
    ack(w, &p).await;
}

/// Publishes a marker on `will/end`: whatever the watcher gets before it
/// was published before it.
async fn expect_no_will(broker: &TestBroker, w: &mut RawClient) {
    let mut marker = client(broker.tcp(), "marker").await;
    publish(&mut marker, message("will/end", "", QoS::AtLeastOnce)).await;
    expect_topic(w, "will/end").await;
}

#[tokio::test]
async fn will_follows_how_the_connection_ended() {
    let broker = TestBroker::start("").await;
    let mut w = watcher(&broker).await;

    let (c, _) = connect(broker.tcp(), with_will(v5("dropped"), None)).await;
    drop(c);
    expect_topic(&mut w, "will/dropped").await;

    let (c, _) = connect(broker.tcp(), with_will(v5("normal"), None)).await;
    disconnect(c, ReasonCode::Success).await;
    expect_no_will(&broker, &mut w).await;

    let (c, _) = connect(broker.tcp(), with_will(v5("asked"), None)).await;
    disconnect(c, ReasonCode::DisconnectWithWillMessage).await;
    expect_topic(&mut w, "will/asked").await;

    // Only 0x00 discards the will (MQTT-3.14.4-3); an error reason does not.
    let (c, _) = connect(broker.tcp(), with_will(v5("failed"), None)).await;
    disconnect(c, ReasonCode::UnspecifiedError).await;
    expect_topic(&mut w, "will/failed").await;

    let (c, _) = connect(broker.tcp(), with_will(Connect::new(ProtocolVersion::V311, "v3"), None)).await;
    drop(c);
    expect_topic(&mut w, "will/v3").await;
    broker.stop().await;
}

#[tokio::test]
async fn delayed_will_waits_for_its_delay() {
    let broker = TestBroker::start("").await;
    let mut w = watcher(&broker).await;
    let mut c = with_will(v5_persistent("late", 60), Some(2));
    // The will's own expiry runs from when it is published, not from the close.
    c.will.as_mut().expect("will").properties.message_expiry_interval = Some(1);
    let (c, _) = connect(broker.tcp(), c).await;
    drop(c);
    assert!(
        w.recv_within(Duration::from_secs(1)).await.is_err(),
        "will published before its delay"
    );
    let will = next_publish(&mut w).await;
    assert_eq!(
        (will.topic.as_str(), will.properties.message_expiry_interval),
        ("will/late", Some(1))
    );
    broker.stop().await;
}

#[tokio::test]
async fn reconnecting_within_the_will_delay_cancels_the_will() {
    let broker = TestBroker::start("").await;
    let mut w = watcher(&broker).await;
    let (c, _) = connect(broker.tcp(), with_will(v5_persistent("back", 60), Some(2))).await;
    drop(c);
    let (_c, connack) = connect(broker.tcp(), v5_persistent("back", 60)).await;
    assert!(connack.session_present);
    assert!(
        w.recv_within(Duration::from_secs(3)).await.is_err(),
        "will published after a reconnect"
    );
    expect_no_will(&broker, &mut w).await;
    assert_eq!(broker.stat("will_published"), 0);
    broker.stop().await;
}

#[tokio::test]
async fn will_delay_longer_than_the_session_is_cut_at_session_expiry() {
    let broker = TestBroker::start("").await;
    let mut w = watcher(&broker).await;
    let (c, _) = connect(broker.tcp(), with_will(v5_persistent("short", 1), Some(30))).await;
    drop(c);
    expect_topic(&mut w, "will/short").await;
    broker.stop().await;
}

#[tokio::test]
async fn offline_messages_expire_and_carry_the_remaining_interval() {
    let broker = TestBroker::start("").await;
    let (mut sub, _) = connect(broker.tcp(), v5_persistent("sub", 60)).await;
    subscribe(&mut sub, "exp/#", QoS::AtLeastOnce).await;
    disconnect(sub, ReasonCode::Success).await;

    let mut publisher = client(broker.tcp(), "pub").await;
    for (topic, expiry) in [("exp/short", Some(1)), ("exp/none", None), ("exp/long", Some(100))] {
        let mut m = message(topic, "", QoS::AtLeastOnce);
        m.properties.message_expiry_interval = expiry;
        publish(&mut publisher, m).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;

    let (mut sub, connack) = connect(broker.tcp(), v5_persistent("sub", 60)).await;
    assert!(connack.session_present);
    let none = next_publish(&mut sub).await;
    assert_eq!(
        (none.topic.as_str(), none.properties.message_expiry_interval),
        ("exp/none", None)
    );
    let long = next_publish(&mut sub).await;
    assert_eq!(long.topic.as_str(), "exp/long");
    let left = long.properties.message_expiry_interval.expect("remaining expiry");
    assert!((50..100).contains(&left), "remaining expiry {left} of 100 after 2 s");
    ping_barrier(&mut sub).await;
    assert_eq!(broker.stat("queue_message_expired"), 1);
    broker.stop().await;
}

#[tokio::test]
async fn second_connect_takes_the_session_over() {
    let broker = TestBroker::start("").await;
    let (mut first, _) = connect(broker.tcp(), v5_persistent("dup", 60)).await;
    subscribe(&mut first, "tk/#", QoS::AtLeastOnce).await;
    let (mut second, connack) = connect(broker.tcp(), v5_persistent("dup", 60)).await;
    assert!(connack.session_present, "the persistent session is resumed");
    expect_disconnect(&mut first, ReasonCode::SessionTakenOver).await;

    let mut publisher = client(broker.tcp(), "pub").await;
    publish(&mut publisher, message("tk/a", "x", QoS::AtLeastOnce)).await;
    assert_eq!(
        next_publish(&mut second).await.topic.as_str(),
        "tk/a",
        "subscriptions survive"
    );

    // A clean start ends the old session instead.
    let (mut third, connack) = connect(broker.tcp(), v5("dup")).await;
    assert!(!connack.session_present);
    expect_disconnect(&mut second, ReasonCode::SessionTakenOver).await;
    subscribe(&mut third, "end", QoS::AtLeastOnce).await;
    publish0(&mut publisher, "tk/b", "").await;
    publish0(&mut publisher, "end", "").await;
    assert_eq!(
        next_publish(&mut third).await.topic.as_str(),
        "end",
        "the old subscriptions are gone"
    );
    broker.stop().await;
}

#[tokio::test]
async fn silent_client_is_disconnected_after_one_and_a_half_keep_alives() {
    let broker = TestBroker::start("").await;
    let mut c = v5("silent");
    c.keep_alive = 1;
    let (mut silent, _) = connect(broker.tcp(), c).await;
    assert!(
        silent.recv_within(Duration::from_millis(800)).await.is_err(),
        "closed before the keep alive"
    );
    expect_disconnect(&mut silent, ReasonCode::KeepAliveTimeout).await;

    let mut c = v5("pinging");
    c.keep_alive = 1;
    let (mut pinging, _) = connect(broker.tcp(), c).await;
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        ping_barrier(&mut pinging).await;
    }
    broker.stop().await;
}

#[tokio::test]
async fn shutdown_tells_every_idle_client_and_closes_it() {
    let broker = TestBroker::start("").await;
    let mut v5_clients = Vec::new();
    for (id, keep_alive) in [("ka-short", 2), ("ka-long", 600)] {
        let mut c = v5(id);
        c.keep_alive = keep_alive;
        v5_clients.push(connect(broker.tcp(), c).await.0);
    }
    // 3.1.1 with keep alive 0: no deadline, nothing that would wake it but
    // the shutdown itself; 3.1.1 has no server DISCONNECT, it is closed.
    let mut v311 = Connect::new(ProtocolVersion::V311, "ka-none");
    v311.keep_alive = 0;
    let (mut old, _) = connect(broker.tcp(), v311).await;
    for c in &mut v5_clients {
        ping_barrier(c).await;
    }
    let stopped = tokio::spawn(broker.stop());
    for c in &mut v5_clients {
        expect_disconnect(c, ReasonCode::ServerShuttingDown).await;
    }
    assert!(old.until_closed().await.is_empty(), "closed without a packet");
    tokio::time::timeout(Duration::from_secs(5), stopped)
        .await
        .expect("the node stops once its clients are gone")
        .expect("stop");
}

#[tokio::test]
async fn session_expiry_ends_the_session() {
    let broker = TestBroker::start("").await;
    let (mut c, _) = connect(broker.tcp(), v5_persistent("brief", 1)).await;
    subscribe(&mut c, "se/#", QoS::AtLeastOnce).await;
    disconnect(c, ReasonCode::Success).await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    let (mut c, connack) = connect(broker.tcp(), v5_persistent("brief", 60)).await;
    assert!(!connack.session_present, "the session expired");
    subscribe(&mut c, "other/#", QoS::AtLeastOnce).await;
    let mut publisher = client(broker.tcp(), "pub").await;
    publish(&mut publisher, message("se/x", "", QoS::AtLeastOnce)).await;
    publish(&mut publisher, message("other/x", "", QoS::AtLeastOnce)).await;
    assert_eq!(
        next_publish(&mut c).await.topic.as_str(),
        "other/x",
        "the old subscription is gone"
    );
    assert_eq!(broker.stat("session_expired"), 1);

    // DISCONNECT may shorten the expiry to 0: the session ends with the connection.
    let mut bye = skerry_codec::Disconnect::new(ReasonCode::Success);
    bye.properties.session_expiry_interval = Some(0);
    c.send(&Packet::Disconnect(bye)).await;
    assert!(c.until_closed().await.is_empty());
    let (_c, connack) = connect(broker.tcp(), v5_persistent("brief", 60)).await;
    assert!(!connack.session_present, "expiry 0 on DISCONNECT ends the session");
    broker.stop().await;
}

#[tokio::test]
async fn expiry_of_a_replaced_session_leaves_its_successor_alone() {
    let broker = TestBroker::start("").await;
    let (c, _) = connect(broker.tcp(), v5_persistent("twice", 1)).await;
    disconnect(c, ReasonCode::Success).await;
    // A clean start replaces the parked session before it expires.
    let mut fresh = v5_persistent("twice", 60);
    fresh.clean_start = true;
    let (mut c, _) = connect(broker.tcp(), fresh).await;
    subscribe(&mut c, "tw/#", QoS::AtLeastOnce).await;
    disconnect(c, ReasonCode::Success).await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    let (mut c, connack) = connect(broker.tcp(), v5_persistent("twice", 60)).await;
    assert!(connack.session_present, "the new session outlives the old one's expiry");
    let mut publisher = client(broker.tcp(), "pub").await;
    publish(&mut publisher, message("tw/x", "", QoS::AtLeastOnce)).await;
    assert_eq!(next_publish(&mut c).await.topic.as_str(), "tw/x");
    broker.stop().await;
}

#[tokio::test]
async fn v311_clean_session_leaves_nothing_behind() {
    let broker = TestBroker::start("").await;
    let v3 = |clean| Connect {
        clean_start: clean,
        ..Connect::new(ProtocolVersion::V311, "clean")
    };
    let (mut c, _) = connect(broker.tcp(), v3(true)).await;
    subscribe(&mut c, "cs/#", QoS::AtLeastOnce).await;
    disconnect(c, ReasonCode::Success).await;

    let (mut c, connack) = connect(broker.tcp(), v3(false)).await;
    assert!(!connack.session_present);
    let mut publisher = client(broker.tcp(), "pub").await;
    subscribe(&mut c, "end", QoS::AtLeastOnce).await;
    publish(&mut publisher, message("cs/x", "", QoS::AtLeastOnce)).await;
    publish(&mut publisher, message("end", "", QoS::AtLeastOnce)).await;
    assert_eq!(next_publish(&mut c).await.topic.as_str(), "end");
    broker.stop().await;
}

/// Five QoS 1 messages for an offline session that keeps three; returns
/// the payloads delivered on reconnect.
async fn queue_of_three(queue_type: &str) -> Vec<String> {
    let broker = TestBroker::start(&format!(
        "  sessions:\n    max_offline_messages: 3\n    queue_type: {queue_type}"
    ))
    .await;
    let (mut sub, _) = connect(broker.tcp(), v5_persistent("sub", 60)).await;
    subscribe(&mut sub, "q/#", QoS::AtLeastOnce).await;
    disconnect(sub, ReasonCode::Success).await;
    let mut publisher = client(broker.tcp(), "pub").await;
    for i in 0..5 {
        publish(&mut publisher, message("q/x", &i.to_string(), QoS::AtLeastOnce)).await;
    }
    let (mut sub, _) = connect(broker.tcp(), v5_persistent("sub", 60)).await;
    let mut got = Vec::new();
    for _ in 0..3 {
        let p = next_publish(&mut sub).await;
        got.push(String::from_utf8(p.payload.to_vec()).expect("utf-8"));
    }
    ping_barrier(&mut sub).await;
    assert_eq!(broker.stat("queue_message_drop"), 2);
    broker.stop().await;
    got
}

#[tokio::test]
async fn full_offline_queue_drops_by_queue_type() {
    assert_eq!(queue_of_three("fifo").await, ["0", "1", "2"], "fifo keeps the oldest");
    assert_eq!(queue_of_three("lifo").await, ["2", "3", "4"], "lifo keeps the newest");
}

#[tokio::test]
async fn oversized_payload_closes_the_connection() {
    let broker = TestBroker::start("  max_message_size: 1KiB").await;
    let mut c = client(broker.tcp(), "big").await;
    let fits = "x".repeat(1000);
    assert_eq!(
        publish(&mut c, message("big", &fits, QoS::AtLeastOnce)).await,
        ReasonCode::Success
    );
    c.send(&Packet::Publish(message("big", &"x".repeat(2000), QoS::AtLeastOnce)))
        .await;
    expect_disconnect(&mut c, ReasonCode::PacketTooLarge).await;
    broker.stop().await;
}
