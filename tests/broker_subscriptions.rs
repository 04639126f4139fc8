//! Subscriptions of a broker node, end to end with rumqttc's v5 client
//! where it can say it: overlapping filters, No Local, and shared
//! subscription groups with their policies and offline members.

use std::collections::HashMap;
use std::time::Duration;

use rumqttc::v5::mqttbytes::v5::{Filter, Packet as Packet5, SubscribeProperties as SubProps5};
use rumqttc::v5::mqttbytes::QoS as QoS5;
use rumqttc::v5::{AsyncClient, Event, EventLoop, MqttOptions};
use skerry_codec::{QoS, ReasonCode};
use skerry_tests::broker::TestBroker;
use skerry_tests::raw::WAIT;

use crate::broker_protocol::{
    ack, client, connect, disconnect, message, next_publish, ping_barrier, publish, subscribe, topic, v5_persistent,
};

fn options5(id: &str, broker: &TestBroker) -> MqttOptions {
    let addr = broker.tcp();
    let mut o = MqttOptions::new(id, addr.ip().to_string(), addr.port());
    o.set_keep_alive(Duration::from_secs(30));
    o
}

/// Polls until `pick` accepts an incoming packet.
async fn poll_until<T>(el: &mut EventLoop, mut pick: impl FnMut(&Packet5) -> Option<T>) -> T {
    tokio::time::timeout(WAIT, async {
        loop {
            if let Event::Incoming(p) = el.poll().await.expect("event loop") {
                if let Some(t) = pick(&p) {
                    return t;
                }
            }
        }
    })
    .await
    .expect("the expected packet within the wait")
}

/// A rumqttc v5 client subscribed to `filters` (each with its subscription id).
async fn subscribed5(
    broker: &TestBroker,
    id: &str,
    filters: &[(&str, QoS5, Option<usize>)],
) -> (AsyncClient, EventLoop) {
    let (c, mut el) = AsyncClient::new(options5(id, broker), 64);
    for (filter, qos, sub_id) in filters {
        let props = SubProps5 {
            id: *sub_id,
            user_properties: Vec::new(),
        };
        c.subscribe_with_properties(*filter, *qos, props)
            .await
            .expect("subscribe");
        poll_until(&mut el, |p| matches!(p, Packet5::SubAck(_)).then_some(())).await;
    }
    (c, el)
}

fn incoming_publish(p: &Packet5) -> Option<rumqttc::v5::mqttbytes::v5::Publish> {
    match p {
        Packet5::Publish(p) => Some(p.clone()),
        _ => None,
    }
}

#[tokio::test]
async fn overlapping_subscriptions_deliver_once_with_every_identifier() {
    let broker = TestBroker::start("").await;
    let filters = [("a/+", QoS5::AtLeastOnce, Some(1)), ("a/#", QoS5::AtMostOnce, Some(2))];
    let (_sub, mut el) = subscribed5(&broker, "sub", &filters).await;
    let mut publisher = client(broker.tcp(), "pub").await;
    publish(&mut publisher, message("a/b", "x", QoS::AtLeastOnce)).await;
    publish(&mut publisher, message("a/end", "", QoS::AtLeastOnce)).await;
    let got = poll_until(&mut el, incoming_publish).await;
    assert_eq!((&got.topic[..], got.qos), (&b"a/b"[..], QoS5::AtLeastOnce));
    let mut ids = got.properties.expect("properties").subscription_identifiers;
    ids.sort_unstable();
    assert_eq!(ids, [1, 2]);
    let next = poll_until(&mut el, incoming_publish).await;
    assert_eq!(&next.topic[..], b"a/end", "one copy of a/b only");
    broker.stop().await;
}

#[tokio::test]
async fn no_local_hides_a_clients_own_messages() {
    let broker = TestBroker::start("").await;
    let (c, mut el) = AsyncClient::new(options5("self", &broker), 64);
    c.subscribe_many([Filter {
        nolocal: true,
        ..Filter::new("nl/#", QoS5::AtLeastOnce)
    }])
    .await
    .expect("subscribe");
    poll_until(&mut el, |p| matches!(p, Packet5::SubAck(_)).then_some(())).await;
    c.publish("nl/own", QoS5::AtLeastOnce, false, "mine")
        .await
        .expect("publish");
    poll_until(&mut el, |p| match p {
        Packet5::Publish(p) => panic!("own message delivered: {p:?}"),
        Packet5::PubAck(_) => Some(()),
        _ => None,
    })
    .await;
    let mut other = client(broker.tcp(), "other").await;
    publish(&mut other, message("nl/theirs", "", QoS::AtLeastOnce)).await;
    let got = poll_until(&mut el, incoming_publish).await;
    assert_eq!(&got.topic[..], b"nl/theirs");
    broker.stop().await;
}

/// Three shared members, 30 messages; returns how many each member got.
async fn share_thirty(broker: &TestBroker) -> Vec<usize> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut members = Vec::new();
    for m in 0..3 {
        let (c, mut el) = subscribed5(
            broker,
            &format!("m{m}"),
            &[("$share/g/jobs/#", QoS5::AtLeastOnce, None)],
        )
        .await;
        let tx = tx.clone();
        members.push(c);
        tokio::spawn(async move {
            while let Ok(ev) = el.poll().await {
                if let Event::Incoming(Packet5::Publish(p)) = ev {
                    let _ = tx.send((m, p.payload));
                }
            }
        });
    }
    let mut publisher = client(broker.tcp(), "pub").await;
    for i in 0..30 {
        publish(
            &mut publisher,
            message(&format!("jobs/{i}"), &i.to_string(), QoS::AtLeastOnce),
        )
        .await;
    }
    let mut seen = HashMap::new();
    let mut per_member = vec![0; 3];
    for _ in 0..30 {
        let (m, payload) = tokio::time::timeout(WAIT, rx.recv())
            .await
            .expect("30 messages")
            .expect("open");
        per_member[m] += 1;
        assert!(seen.insert(payload.clone(), m).is_none(), "{payload:?} delivered twice");
    }
    assert!(
        tokio::time::timeout(Duration::from_millis(300), rx.recv())
            .await
            .is_err(),
        "more than 30 deliveries"
    );
    per_member
}

#[tokio::test]
async fn shared_group_delivers_each_message_once() {
    let broker = TestBroker::start("").await;
    assert_eq!(share_thirty(&broker).await.iter().sum::<usize>(), 30);
    broker.stop().await;
}

#[tokio::test]
async fn shared_group_round_robin_spreads_evenly() {
    let broker = TestBroker::start("  shared_subscription_policy: round_robin").await;
    assert_eq!(share_thirty(&broker).await, [10, 10, 10]);
    broker.stop().await;
}

#[tokio::test]
async fn shared_member_and_plain_subscriber_both_receive() {
    let broker = TestBroker::start("").await;
    let mut member = client(broker.tcp(), "member").await;
    subscribe(&mut member, "$share/g/t/#", QoS::AtLeastOnce).await;
    let mut plain = client(broker.tcp(), "plain").await;
    subscribe(&mut plain, "t/#", QoS::AtLeastOnce).await;
    let mut publisher = client(broker.tcp(), "pub").await;
    publish(&mut publisher, message("t/1", "x", QoS::AtLeastOnce)).await;
    for c in [&mut member, &mut plain] {
        assert_eq!(topic(&next_publish(c).await), "t/1");
    }
    broker.stop().await;
}

#[tokio::test]
async fn shared_group_skips_offline_persistent_members() {
    let broker = TestBroker::start("").await;
    let (mut away, _) = connect(broker.tcp(), v5_persistent("away", 60)).await;
    subscribe(&mut away, "$share/g/w/#", QoS::AtLeastOnce).await;
    disconnect(away, ReasonCode::Success).await;
    let mut online = client(broker.tcp(), "online").await;
    subscribe(&mut online, "$share/g/w/#", QoS::AtLeastOnce).await;

    let mut publisher = client(broker.tcp(), "pub").await;
    for i in 0..10 {
        publish(&mut publisher, message(&format!("w/{i}"), "", QoS::AtLeastOnce)).await;
    }
    for i in 0..10 {
        let p = next_publish(&mut online).await;
        assert_eq!(topic(&p), format!("w/{i}"));
        ack(&mut online, &p).await;
    }
    let (mut away, connack) = connect(broker.tcp(), v5_persistent("away", 60)).await;
    assert!(connack.session_present);
    ping_barrier(&mut away).await;
    broker.stop().await;
}
