//! A broker node with rumqttc clients (the v3.1.1 and v5 APIs): publish and
//! subscribe at every QoS, retained messages, persistent sessions.

use std::time::Duration;

use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS};
use skerry_tests::broker::TestBroker;

fn options(id: &str, broker: &TestBroker) -> MqttOptions {
    let addr = broker.tcp();
    let mut o = MqttOptions::new(id, addr.ip().to_string(), addr.port());
    o.set_keep_alive(Duration::from_secs(30));
    o
}

/// Polls until `pred` picks something out of an incoming packet.
async fn next_matching<T>(el: &mut EventLoop, mut pred: impl FnMut(&Packet) -> Option<T>) -> T {
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Event::Incoming(p) = el.poll().await.expect("event loop") {
                if let Some(t) = pred(&p) {
                    return t;
                }
            }
        }
    })
    .await
    .expect("expected packet within 5s")
}

async fn subscribed(id: &str, broker: &TestBroker, filter: &str, qos: QoS) -> (AsyncClient, EventLoop) {
    let (client, mut el) = AsyncClient::new(options(id, broker), 64);
    client.subscribe(filter, qos).await.unwrap();
    next_matching(&mut el, |p| matches!(p, Packet::SubAck(_)).then_some(())).await;
    (client, el)
}

#[tokio::test]
async fn v311_publish_reaches_subscriber_at_each_qos() {
    let broker = TestBroker::start("").await;
    let (_sub, mut sub_el) = subscribed("sub", &broker, "sensors/+/temp", QoS::ExactlyOnce).await;
    let (publisher, mut pub_el) = AsyncClient::new(options("pub", &broker), 64);
    tokio::spawn(async move { while pub_el.poll().await.is_ok() {} });
    for (i, qos) in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce]
        .into_iter()
        .enumerate()
    {
        publisher
            .publish(format!("sensors/{i}/temp"), qos, false, format!("t{i}"))
            .await
            .unwrap();
        let got = next_matching(&mut sub_el, |p| match p {
            Packet::Publish(p) => Some((p.topic.clone(), p.qos, p.payload.clone())),
            _ => None,
        })
        .await;
        assert_eq!(got, (format!("sensors/{i}/temp"), qos, format!("t{i}").into()));
    }
    broker.stop().await;
}

#[tokio::test]
async fn retained_message_reaches_a_later_subscriber() {
    let broker = TestBroker::start("").await;
    let (publisher, mut pub_el) = AsyncClient::new(options("pub", &broker), 64);
    publisher
        .publish("state/door", QoS::AtLeastOnce, true, "open")
        .await
        .unwrap();
    next_matching(&mut pub_el, |p| matches!(p, Packet::PubAck(_)).then_some(())).await;
    let (_sub, mut el) = subscribed("late", &broker, "state/#", QoS::AtLeastOnce).await;
    let got = next_matching(&mut el, |p| match p {
        Packet::Publish(p) => Some((p.topic.clone(), p.retain, p.payload.clone())),
        _ => None,
    })
    .await;
    assert_eq!(got, ("state/door".to_owned(), true, "open".into()));
    broker.stop().await;
}

#[tokio::test]
async fn persistent_session_gets_messages_sent_while_offline() {
    let broker = TestBroker::start("").await;
    let mut o = options("durable", &broker);
    o.set_clean_session(false);
    let (sub, mut el) = AsyncClient::new(o.clone(), 64);
    sub.subscribe("jobs/#", QoS::AtLeastOnce).await.unwrap();
    next_matching(&mut el, |p| matches!(p, Packet::SubAck(_)).then_some(())).await;
    sub.disconnect().await.unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(2), async { while el.poll().await.is_ok() {} }).await;
    drop(el);

    let (publisher, mut pub_el) = AsyncClient::new(options("pub", &broker), 64);
    for i in 0..5 {
        publisher
            .publish(format!("jobs/{i}"), QoS::AtLeastOnce, false, vec![i])
            .await
            .unwrap();
    }
    let mut acks = 0;
    while acks < 5 {
        next_matching(&mut pub_el, |p| matches!(p, Packet::PubAck(_)).then_some(())).await;
        acks += 1;
    }

    let (_sub, mut el) = AsyncClient::new(o, 64);
    let present = next_matching(&mut el, |p| match p {
        Packet::ConnAck(c) => Some(c.session_present),
        _ => None,
    })
    .await;
    assert!(present, "session should be resumed");
    let mut got = Vec::new();
    while got.len() < 5 {
        got.push(
            next_matching(&mut el, |p| match p {
                Packet::Publish(p) => Some(p.payload[0]),
                _ => None,
            })
            .await,
        );
    }
    assert_eq!(got, [0, 1, 2, 3, 4], "queued in order");
    broker.stop().await;
}
