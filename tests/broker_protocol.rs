//! MQTT 3.1.1 / 5.0 protocol behaviour of a broker node, end to end:
//! QoS 2 exactly once across reconnects, retained messages and their
//! options, topic aliases both ways, overlapping and shared subscriptions.
//! Raw codec clients where the exact packet matters, rumqttc elsewhere.
//! Also the helpers the other `broker_*` modules share.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::num::NonZeroU16;
use std::time::Duration;

use rumqttc::v5::mqttbytes::v5::{Filter, Packet as Packet5, SubscribeProperties as SubProps5};
use rumqttc::v5::mqttbytes::QoS as QoS5;
use rumqttc::v5::{AsyncClient, Event, EventLoop, MqttOptions};
use skerry_codec::{
    Ack, ConnAck, Connect, Disconnect, Packet, ProtocolVersion, Publish, QoS, ReasonCode, RetainHandling, Subscribe,
    SubscribeProperties, SubscriptionOptions,
};
use skerry_tests::broker::TestBroker;
use skerry_tests::raw::{RawClient, WAIT};

pub(crate) fn pid(n: u16) -> NonZeroU16 {
    NonZeroU16::new(n).expect("packet ids are non-zero")
}

/// A clean v5 CONNECT.
pub(crate) fn v5(id: &str) -> Connect {
    Connect::new(ProtocolVersion::V5, id)
}

/// A v5 CONNECT resuming (or creating) a session kept `expiry` seconds after the connection ends.
pub(crate) fn v5_persistent(id: &str, expiry: u32) -> Connect {
    let mut c = v5(id);
    c.clean_start = false;
    c.properties.session_expiry_interval = Some(expiry);
    c
}

/// Connects and asserts the CONNACK is a success.
pub(crate) async fn connect(addr: SocketAddr, c: Connect) -> (RawClient, ConnAck) {
    let (client, connack) = RawClient::connect(addr, c).await;
    assert_eq!(connack.reason, ReasonCode::Success, "CONNACK {connack:?}");
    (client, connack)
}

/// A clean v5 client.
pub(crate) async fn client(addr: SocketAddr, id: &str) -> RawClient {
    connect(addr, v5(id)).await.0
}

/// Subscribes to one filter and returns the SUBACK code.
pub(crate) async fn subscribe_with(
    c: &mut RawClient,
    filter: &str,
    options: SubscriptionOptions,
    id: Option<u32>,
) -> ReasonCode {
    let properties = SubscribeProperties { subscription_identifier: id, ..Default::default() };
    c.send(&Packet::Subscribe(Subscribe { packet_id: pid(1), filters: vec![(filter.into(), options)], properties }))
        .await;
    match c.recv().await {
        Some(Packet::SubAck(a)) => a.return_codes[0],
        other => panic!("expected SUBACK, got {other:?}"),
    }
}

/// Subscribes at `qos` and asserts it was granted.
pub(crate) async fn subscribe(c: &mut RawClient, filter: &str, qos: QoS) {
    let code = subscribe_with(c, filter, SubscriptionOptions::new(qos), None).await;
    assert_eq!(code, ReasonCode::granted(qos), "SUBACK for {filter}");
}

/// A PUBLISH (packet id 1 unless QoS 0).
pub(crate) fn message(topic: &str, payload: &str, qos: QoS) -> Publish {
    let mut p = Publish::new(topic, payload.to_owned());
    p.qos = qos;
    p.packet_id = (qos != QoS::AtMostOnce).then(|| pid(1));
    p
}

/// Sends `p` and completes its QoS flow; returns the PUBACK / PUBREC reason.
pub(crate) async fn publish(c: &mut RawClient, p: Publish) -> ReasonCode {
    let (qos, id) = (p.qos, p.packet_id);
    c.send(&Packet::Publish(p)).await;
    match (qos, c.recv().await, id) {
        (QoS::AtMostOnce, ..) => unreachable!("QoS 0 has no acknowledgement"),
        (QoS::AtLeastOnce, Some(Packet::PubAck(a)), Some(id)) if a.packet_id == id => a.reason,
        (QoS::ExactlyOnce, Some(Packet::PubRec(a)), Some(id)) if a.packet_id == id => {
            if !a.reason.is_error() {
                c.send(&Packet::PubRel(Ack::new(id))).await;
                assert!(matches!(c.recv().await, Some(Packet::PubComp(a)) if a.packet_id == id), "PUBCOMP");
            }
            a.reason
        }
        (_, other, _) => panic!("expected the acknowledgement of a QoS {qos:?} PUBLISH, got {other:?}"),
    }
}

/// Publishes at QoS 0 (fire and forget).
pub(crate) async fn publish0(c: &mut RawClient, topic: &str, payload: &str) {
    c.send(&Packet::Publish(message(topic, payload, QoS::AtMostOnce))).await;
}

/// The next packet, which must be a PUBLISH.
pub(crate) async fn next_publish(c: &mut RawClient) -> Publish {
    match c.recv().await {
        Some(Packet::Publish(p)) => p,
        other => panic!("expected PUBLISH, got {other:?}"),
    }
}

/// Acknowledges a received PUBLISH: PUBACK, or PUBREC / PUBREL / PUBCOMP.
pub(crate) async fn ack(c: &mut RawClient, p: &Publish) {
    let id = p.packet_id.expect("QoS 1/2 message has a packet id");
    match p.qos {
        QoS::AtMostOnce => {}
        QoS::AtLeastOnce => c.send(&Packet::PubAck(Ack::new(id))).await,
        QoS::ExactlyOnce => {
            c.send(&Packet::PubRec(Ack::new(id))).await;
            assert!(matches!(c.recv().await, Some(Packet::PubRel(a)) if a.packet_id == id), "PUBREL");
            c.send(&Packet::PubComp(Ack::new(id))).await;
        }
    }
}

/// Everything a connection does in response to one packet is queued before
/// it reads the next: a PINGRESP proves nothing else was pending.
pub(crate) async fn ping_barrier(c: &mut RawClient) {
    c.send(&Packet::PingReq).await;
    match c.recv().await {
        Some(Packet::PingResp) => {}
        other => panic!("expected nothing before PINGRESP, got {other:?}"),
    }
}

/// Sends DISCONNECT with `reason` and waits for the close.
pub(crate) async fn disconnect(mut c: RawClient, reason: ReasonCode) {
    c.send(&Packet::Disconnect(Disconnect::new(reason))).await;
    assert!(c.until_closed().await.is_empty(), "nothing after DISCONNECT");
}

/// Asserts the next thing `c` receives is the DISCONNECT `reason`, then the close.
pub(crate) async fn expect_disconnect(c: &mut RawClient, reason: ReasonCode) {
    match c.recv().await {
        Some(Packet::Disconnect(d)) => assert_eq!(d.reason, reason),
        other => panic!("expected DISCONNECT {reason:?}, got {other:?}"),
    }
    assert!(c.until_closed().await.is_empty(), "closed after DISCONNECT");
}

fn topic(p: &Publish) -> &str {
    p.topic.as_str()
}

#[tokio::test]
async fn qos2_inbound_is_routed_once_across_a_reconnect_before_pubrel() {
    let broker = TestBroker::start("").await;
    let mut sub = client(broker.tcp(), "sub").await;
    subscribe(&mut sub, "q2/#", QoS::ExactlyOnce).await;

    let (mut publisher, _) = connect(broker.tcp(), v5_persistent("pub", 60)).await;
    let mut p = message("q2/once", "payload", QoS::ExactlyOnce);
    p.packet_id = Some(pid(7));
    publisher.send(&Packet::Publish(p.clone())).await;
    assert!(matches!(publisher.recv().await, Some(Packet::PubRec(a)) if a.packet_id == pid(7)));
    drop(publisher);

    let (mut publisher, connack) = connect(broker.tcp(), v5_persistent("pub", 60)).await;
    assert!(connack.session_present, "the publisher's session is resumed");
    p.dup = true;
    publisher.send(&Packet::Publish(p)).await;
    assert!(matches!(publisher.recv().await, Some(Packet::PubRec(a)) if a.packet_id == pid(7)), "PUBREC again");
    publisher.send(&Packet::PubRel(Ack::new(pid(7)))).await;
    match publisher.recv().await {
        Some(Packet::PubComp(a)) => assert_eq!((a.packet_id, a.reason), (pid(7), ReasonCode::Success)),
        other => panic!("expected PUBCOMP, got {other:?}"),
    }

    let got = next_publish(&mut sub).await;
    assert_eq!((topic(&got), &got.payload[..]), ("q2/once", &b"payload"[..]));
    ack(&mut sub, &got).await;
    publish0(&mut publisher, "q2/end", "").await;
    assert_eq!(topic(&next_publish(&mut sub).await), "q2/end", "the resend was not routed again");
    broker.stop().await;
}

/// A persistent subscriber that left a QoS 1 or 2 message unacknowledged
/// gets it again on resume, DUP set, same packet id.
async fn resent_after_reconnect(broker: &TestBroker, qos: QoS) -> (RawClient, RawClient, Publish) {
    let id = format!("sub-{qos:?}");
    let (mut sub, _) = connect(broker.tcp(), v5_persistent(&id, 60)).await;
    subscribe(&mut sub, "out/#", qos).await;
    let mut publisher = client(broker.tcp(), "pub").await;
    assert_eq!(publish(&mut publisher, message("out/a", "m", qos)).await, ReasonCode::Success);
    let first = next_publish(&mut sub).await;
    assert_eq!((first.qos, first.dup), (qos, false));
    drop(sub);

    let (mut sub, connack) = connect(broker.tcp(), v5_persistent(&id, 60)).await;
    assert!(connack.session_present);
    let again = next_publish(&mut sub).await;
    assert!(again.dup, "a resend has DUP set");
    assert_eq!((again.packet_id, again.qos, topic(&again), again.payload.clone()), (first.packet_id, qos, "out/a", first.payload));
    (sub, publisher, again)
}

#[tokio::test]
async fn qos2_outbound_resumes_with_dup_then_pubrel() {
    let broker = TestBroker::start("").await;
    let (mut sub, mut publisher, again) = resent_after_reconnect(&broker, QoS::ExactlyOnce).await;
    let id = again.packet_id.expect("QoS 2 has an id");
    sub.send(&Packet::PubRec(Ack::new(id))).await;
    assert!(matches!(sub.recv().await, Some(Packet::PubRel(a)) if a.packet_id == id), "PUBREL");
    drop(sub);
    // PUBREL is resent too when the PUBCOMP never came.
    let (mut sub, _) = connect(broker.tcp(), v5_persistent("sub-ExactlyOnce", 60)).await;
    assert!(matches!(sub.recv().await, Some(Packet::PubRel(a)) if a.packet_id == id), "PUBREL resent");
    sub.send(&Packet::PubComp(Ack::new(id))).await;
    publish0(&mut publisher, "out/end", "").await;
    assert_eq!(topic(&next_publish(&mut sub).await), "out/end", "nothing more of out/a");
    broker.stop().await;
}

#[tokio::test]
async fn qos1_outbound_is_resent_with_dup_until_acknowledged() {
    let broker = TestBroker::start("").await;
    let (mut sub, mut publisher, again) = resent_after_reconnect(&broker, QoS::AtLeastOnce).await;
    ack(&mut sub, &again).await;
    publish0(&mut publisher, "out/end", "").await;
    assert_eq!(topic(&next_publish(&mut sub).await), "out/end");
    drop(sub);
    let (mut sub, connack) = connect(broker.tcp(), v5_persistent("sub-AtLeastOnce", 60)).await;
    assert!(connack.session_present);
    ping_barrier(&mut sub).await;
    broker.stop().await;
}

fn retain_opts(handling: RetainHandling, retain_as_published: bool) -> SubscriptionOptions {
    SubscriptionOptions { retain_handling: handling, retain_as_published, ..SubscriptionOptions::new(QoS::AtLeastOnce) }
}

#[tokio::test]
async fn retain_handling_decides_when_retained_messages_are_sent() {
    let broker = TestBroker::start("").await;
    let mut publisher = client(broker.tcp(), "pub").await;
    let mut m = message("r/a", "v1", QoS::AtLeastOnce);
    m.retain = true;
    assert_eq!(publish(&mut publisher, m).await, ReasonCode::Success);

    let mut sub = client(broker.tcp(), "sub").await;
    for (filter, handling, sent) in [
        ("r/#", RetainHandling::SendAtSubscribe, true),
        ("r/#", RetainHandling::SendAtSubscribe, true),
        ("r/+", RetainHandling::SendIfNew, true),
        ("r/+", RetainHandling::SendIfNew, false),
        ("r/a", RetainHandling::DoNotSend, false),
    ] {
        let code = subscribe_with(&mut sub, filter, retain_opts(handling, false), None).await;
        assert_eq!(code, ReasonCode::GrantedQoS1);
        if sent {
            let p = next_publish(&mut sub).await;
            assert_eq!((topic(&p), &p.payload[..], p.retain), ("r/a", &b"v1"[..], true), "{filter} {handling:?}");
            ack(&mut sub, &p).await;
        }
        ping_barrier(&mut sub).await;
    }
    broker.stop().await;
}

#[tokio::test]
async fn retain_flag_on_live_messages_follows_retain_as_published() {
    let broker = TestBroker::start("").await;
    let mut kept = client(broker.tcp(), "kept").await;
    let code = subscribe_with(&mut kept, "rap/#", retain_opts(RetainHandling::SendAtSubscribe, true), None).await;
    assert_eq!(code, ReasonCode::GrantedQoS1);
    let mut cleared = client(broker.tcp(), "cleared").await;
    subscribe(&mut cleared, "rap/#", QoS::AtLeastOnce).await;
    let (mut v3, _) = connect(broker.tcp(), Connect::new(ProtocolVersion::V311, "v3")).await;
    subscribe(&mut v3, "rap/#", QoS::AtLeastOnce).await;

    let mut publisher = client(broker.tcp(), "pub").await;
    for (payload, retain) in [("r", true), ("n", false)] {
        let mut m = message("rap/x", payload, QoS::AtLeastOnce);
        m.retain = retain;
        publish(&mut publisher, m).await;
        for (c, expected) in [(&mut kept, retain), (&mut cleared, false), (&mut v3, false)] {
            let p = next_publish(c).await;
            assert_eq!((&p.payload[..], p.retain), (payload.as_bytes(), expected));
            ack(c, &p).await;
        }
    }

    // An empty retained payload clears the topic: a new subscriber gets nothing.
    let mut m = message("rap/x", "", QoS::AtLeastOnce);
    m.retain = true;
    publish(&mut publisher, m).await;
    let mut late = client(broker.tcp(), "late").await;
    subscribe(&mut late, "rap/#", QoS::AtLeastOnce).await;
    ping_barrier(&mut late).await;
    broker.stop().await;
}

fn aliased(topic: &str, alias: u16, payload: &str) -> Publish {
    let mut p = message(topic, payload, QoS::AtLeastOnce);
    p.properties.topic_alias = Some(pid(alias));
    p
}

#[tokio::test]
async fn client_topic_alias_is_set_then_used() {
    let broker = TestBroker::start("").await;
    let mut sub = client(broker.tcp(), "sub").await;
    subscribe(&mut sub, "al/#", QoS::AtMostOnce).await;
    let mut publisher = client(broker.tcp(), "pub").await;
    assert_eq!(publish(&mut publisher, aliased("al/x", 3, "one")).await, ReasonCode::Success);
    assert_eq!(publish(&mut publisher, aliased("", 3, "two")).await, ReasonCode::Success);
    for payload in ["one", "two"] {
        let p = next_publish(&mut sub).await;
        assert_eq!((topic(&p), &p.payload[..], p.properties.topic_alias), ("al/x", payload.as_bytes(), None));
    }
    broker.stop().await;
}

#[tokio::test]
async fn bad_client_topic_aliases_close_the_connection() {
    let broker = TestBroker::start("  topic_alias_maximum: 5").await;
    let mut c = client(broker.tcp(), "over").await;
    c.send(&Packet::Publish(aliased("al/x", 6, "x"))).await;
    expect_disconnect(&mut c, ReasonCode::TopicAliasInvalid).await;

    let mut c = client(broker.tcp(), "unknown").await;
    c.send(&Packet::Publish(aliased("", 2, "x"))).await;
    expect_disconnect(&mut c, ReasonCode::ProtocolError).await;
    broker.stop().await;
}

#[tokio::test]
async fn server_uses_topic_aliases_when_the_client_allows() {
    let broker = TestBroker::start("").await;
    let mut c = v5("sub");
    c.properties.topic_alias_maximum = Some(4);
    let (mut sub, _) = connect(broker.tcp(), c).await;
    subscribe(&mut sub, "al/#", QoS::AtMostOnce).await;
    let mut publisher = client(broker.tcp(), "pub").await;
    for payload in ["1", "2"] {
        publish(&mut publisher, message("al/y", payload, QoS::AtLeastOnce)).await;
    }
    let first = next_publish(&mut sub).await;
    let alias = first.properties.topic_alias.expect("first message sets an alias");
    assert!(alias.get() <= 4);
    assert_eq!(topic(&first), "al/y");
    let second = next_publish(&mut sub).await;
    assert_eq!((topic(&second), second.properties.topic_alias, &second.payload[..]), ("", Some(alias), &b"2"[..]));
    broker.stop().await;
}

pub(crate) fn options5(id: &str, broker: &TestBroker) -> MqttOptions {
    let addr = broker.tcp();
    let mut o = MqttOptions::new(id, addr.ip().to_string(), addr.port());
    o.set_keep_alive(Duration::from_secs(30));
    o
}

/// Polls until `pick` accepts an incoming packet.
pub(crate) async fn poll_until<T>(el: &mut EventLoop, mut pick: impl FnMut(&Packet5) -> Option<T>) -> T {
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
pub(crate) async fn subscribed5(broker: &TestBroker, id: &str, filters: &[(&str, QoS5, Option<usize>)]) -> (AsyncClient, EventLoop) {
    let (c, mut el) = AsyncClient::new(options5(id, broker), 64);
    for (filter, qos, sub_id) in filters {
        let props = SubProps5 { id: *sub_id, user_properties: Vec::new() };
        c.subscribe_with_properties(*filter, *qos, props).await.expect("subscribe");
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
    c.subscribe_many([Filter { nolocal: true, ..Filter::new("nl/#", QoS5::AtLeastOnce) }]).await.expect("subscribe");
    poll_until(&mut el, |p| matches!(p, Packet5::SubAck(_)).then_some(())).await;
    c.publish("nl/own", QoS5::AtLeastOnce, false, "mine").await.expect("publish");
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
        let (c, mut el) = subscribed5(broker, &format!("m{m}"), &[("$share/g/jobs/#", QoS5::AtLeastOnce, None)]).await;
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
        publish(&mut publisher, message(&format!("jobs/{i}"), &i.to_string(), QoS::AtLeastOnce)).await;
    }
    let mut seen = HashMap::new();
    let mut per_member = vec![0; 3];
    for _ in 0..30 {
        let (m, payload) = tokio::time::timeout(WAIT, rx.recv()).await.expect("30 messages").expect("open");
        per_member[m] += 1;
        assert!(seen.insert(payload.clone(), m).is_none(), "{payload:?} delivered twice");
    }
    assert!(tokio::time::timeout(Duration::from_millis(300), rx.recv()).await.is_err(), "more than 30 deliveries");
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
