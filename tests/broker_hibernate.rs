//! Hibernation end to end: an idle connection leaves its task and the
//! reactor, and every kind of wake-up finds it whole: bytes from its
//! client, a delivery, a command (takeover), its keep-alive alarm, the
//! node shutting down. The `mqtt_clients_hibernating` gauge shows which
//! state a connection is in.

use std::time::Duration;

use skerry_codec::{QoS, ReasonCode};
use skerry_tests::broker::TestBroker;
use skerry_tests::wait::eventually;

use crate::broker_protocol::{
    ack, client, connect, expect_disconnect, message, next_publish, ping_barrier, publish, subscribe, v5, v5_persistent,
};

const SOON: &str = "  sessions:\n    hibernate_after: 200ms";

#[tokio::test]
async fn idle_clients_hibernate_and_wake_whole_for_bytes_deliveries_and_takeover() {
    let broker = TestBroker::start(SOON).await;
    let (mut sub, _) = connect(broker.tcp(), v5_persistent("sub", 60)).await;
    subscribe(&mut sub, "t/#", QoS::AtLeastOnce).await;
    let mut publ = client(broker.tcp(), "pub").await;
    eventually("both clients hibernate", || broker.hibernating() == 2).await;

    // The PUBLISH wakes the publisher, the delivery the subscriber; QoS 1
    // both ways, so the packet ids and the inflight window survived too.
    for n in 0..3 {
        let payload = format!("m{n}");
        assert_eq!(
            publish(&mut publ, message("t/a", &payload, QoS::AtLeastOnce)).await,
            ReasonCode::Success
        );
        let p = next_publish(&mut sub).await;
        assert_eq!(&p.payload[..], payload.as_bytes());
        ack(&mut sub, &p).await;
        eventually("both hibernate again", || broker.hibernating() == 2).await;
    }
    assert_eq!(broker.clients_connected(), 2);
    ping_barrier(&mut sub).await;

    // Another connection takes the hibernating session over.
    eventually("the subscriber hibernates", || broker.hibernating() == 2).await;
    let (mut again, connack) = connect(broker.tcp(), v5_persistent("sub", 60)).await;
    assert!(connack.session_present);
    expect_disconnect(&mut sub, ReasonCode::SessionTakenOver).await;
    publish(&mut publ, message("t/b", "after", QoS::AtLeastOnce)).await;
    let p = next_publish(&mut again).await;
    assert_eq!(&p.payload[..], b"after");
    ack(&mut again, &p).await;

    // Shutdown wakes whoever hibernates: each is told, then closed.
    eventually("both hibernate before shutdown", || broker.hibernating() == 2).await;
    let stopping = tokio::spawn(broker.stop());
    expect_disconnect(&mut publ, ReasonCode::ServerShuttingDown).await;
    expect_disconnect(&mut again, ReasonCode::ServerShuttingDown).await;
    stopping.await.expect("shutdown");
}

#[tokio::test]
async fn a_silent_hibernating_client_is_dropped_at_its_keep_alive_and_its_will_sent() {
    let broker = TestBroker::start(SOON).await;
    let mut watcher = client(broker.tcp(), "watcher").await;
    subscribe(&mut watcher, "will/#", QoS::AtLeastOnce).await;
    let mut c = v5("silent");
    c.keep_alive = 1;
    c.will = Some(skerry_codec::LastWill {
        topic: "will/silent".into(),
        payload: "gone".into(),
        qos: QoS::AtLeastOnce,
        retain: false,
        properties: Default::default(),
    });
    let (mut silent, _) = connect(broker.tcp(), c).await;
    eventually("both clients hibernate", || broker.hibernating() == 2).await;
    expect_disconnect(&mut silent, ReasonCode::KeepAliveTimeout).await;
    let will = next_publish(&mut watcher).await;
    assert_eq!(will.topic.as_str(), "will/silent");
    broker.stop().await;
}

#[tokio::test]
async fn hibernate_after_never_keeps_every_connection_in_its_task() {
    let broker = TestBroker::start("  sessions:\n    hibernate_after: never").await;
    let mut quiet = client(broker.tcp(), "quiet").await;
    // Long enough for a hibernation alarm to ring (ticks of 250 ms).
    assert!(quiet.recv_within(Duration::from_millis(600)).await.is_err());
    assert_eq!(broker.hibernating(), 0);
    assert_eq!(broker.clients_connected(), 1);
    ping_barrier(&mut quiet).await;
    assert!(matches!(quiet.recv_within(Duration::from_millis(50)).await, Err(())));
    drop(quiet);
    broker.stop().await;
}
