//! MQTT 3.1.1 / 5.0 protocol behaviour of a broker node, end to end, with
//! raw codec clients where the exact packet matters: QoS 1 / 2 across
//! reconnects, retained messages and their options, topic aliases both
//! ways. Also the raw-client helpers the other `broker_*` modules share.

use skerry_codec::{
    Ack, ConnAck, Connect, Disconnect, Packet, ProtocolVersion, Publish, QoS, ReasonCode, RetainHandling, Subscribe,
    SubscribeProperties, SubscriptionOptions,
};
use skerry_tests::broker::TestBroker;
use skerry_tests::raw::RawClient;
use std::net::SocketAddr;
use std::num::NonZeroU16;

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
    let properties = SubscribeProperties {
        subscription_identifier: id,
        ..Default::default()
    };
    c.send(&Packet::Subscribe(Subscribe {
        packet_id: pid(1),
        filters: vec![(filter.into(), options)],
        properties,
    }))
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
                assert!(
                    matches!(c.recv().await, Some(Packet::PubComp(a)) if a.packet_id == id),
                    "PUBCOMP"
                );
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
            assert!(
                matches!(c.recv().await, Some(Packet::PubRel(a)) if a.packet_id == id),
                "PUBREL"
            );
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

pub(crate) fn topic(p: &Publish) -> &str {
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
    assert!(
        matches!(publisher.recv().await, Some(Packet::PubRec(a)) if a.packet_id == pid(7)),
        "PUBREC again"
    );
    publisher.send(&Packet::PubRel(Ack::new(pid(7)))).await;
    match publisher.recv().await {
        Some(Packet::PubComp(a)) => assert_eq!((a.packet_id, a.reason), (pid(7), ReasonCode::Success)),
        other => panic!("expected PUBCOMP, got {other:?}"),
    }

    let got = next_publish(&mut sub).await;
    assert_eq!((topic(&got), &got.payload[..]), ("q2/once", &b"payload"[..]));
    ack(&mut sub, &got).await;
    publish0(&mut publisher, "q2/end", "").await;
    assert_eq!(
        topic(&next_publish(&mut sub).await),
        "q2/end",
        "the resend was not routed again"
    );
    broker.stop().await;
}

/// A persistent subscriber that left a QoS 1 or 2 message unacknowledged
/// gets it again on resume, DUP set, same packet id.
async fn resent_after_reconnect(broker: &TestBroker, qos: QoS) -> (RawClient, RawClient, Publish) {
    let id = format!("sub-{qos:?}");
    let (mut sub, _) = connect(broker.tcp(), v5_persistent(&id, 60)).await;
    subscribe(&mut sub, "out/#", qos).await;
    let mut publisher = client(broker.tcp(), "pub").await;
    assert_eq!(
        publish(&mut publisher, message("out/a", "m", qos)).await,
        ReasonCode::Success
    );
    let first = next_publish(&mut sub).await;
    assert_eq!((first.qos, first.dup), (qos, false));
    drop(sub);

    let (mut sub, connack) = connect(broker.tcp(), v5_persistent(&id, 60)).await;
    assert!(connack.session_present);
    let again = next_publish(&mut sub).await;
    assert!(again.dup, "a resend has DUP set");
    assert_eq!(
        (again.packet_id, again.qos, topic(&again), again.payload.clone()),
        (first.packet_id, qos, "out/a", first.payload)
    );
    (sub, publisher, again)
}

#[tokio::test]
async fn qos2_outbound_resumes_with_dup_then_pubrel() {
    let broker = TestBroker::start("").await;
    let (mut sub, mut publisher, again) = resent_after_reconnect(&broker, QoS::ExactlyOnce).await;
    let id = again.packet_id.expect("QoS 2 has an id");
    sub.send(&Packet::PubRec(Ack::new(id))).await;
    assert!(
        matches!(sub.recv().await, Some(Packet::PubRel(a)) if a.packet_id == id),
        "PUBREL"
    );
    drop(sub);
    // PUBREL is resent too when the PUBCOMP never came.
    let (mut sub, _) = connect(broker.tcp(), v5_persistent("sub-ExactlyOnce", 60)).await;
    assert!(
        matches!(sub.recv().await, Some(Packet::PubRel(a)) if a.packet_id == id),
        "PUBREL resent"
    );
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
    SubscriptionOptions {
        retain_handling: handling,
        retain_as_published,
        ..SubscriptionOptions::new(QoS::AtLeastOnce)
    }
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
            assert_eq!(
                (topic(&p), &p.payload[..], p.retain),
                ("r/a", &b"v1"[..], true),
                "{filter} {handling:?}"
            );
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
    let code = subscribe_with(
        &mut kept,
        "rap/#",
        retain_opts(RetainHandling::SendAtSubscribe, true),
        None,
    )
    .await;
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
    assert_eq!(
        publish(&mut publisher, aliased("al/x", 3, "one")).await,
        ReasonCode::Success
    );
    assert_eq!(
        publish(&mut publisher, aliased("", 3, "two")).await,
        ReasonCode::Success
    );
    for payload in ["one", "two"] {
        let p = next_publish(&mut sub).await;
        assert_eq!(
            (topic(&p), &p.payload[..], p.properties.topic_alias),
            ("al/x", payload.as_bytes(), None)
        );
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
    assert_eq!(
        (topic(&second), second.properties.topic_alias, &second.payload[..]),
        ("", Some(alias), &b"2"[..])
    );
    broker.stop().await;
}

#[tokio::test]
async fn alias_is_not_used_before_the_client_saw_its_topic() {
    let broker = TestBroker::start("").await;
    let mut c = v5("small");
    c.properties.topic_alias_maximum = Some(4);
    c.properties.maximum_packet_size = std::num::NonZeroU32::new(200);
    let (mut sub, _) = connect(broker.tcp(), c).await;
    subscribe(&mut sub, "al/#", QoS::AtMostOnce).await;
    let mut publisher = client(broker.tcp(), "pub").await;
    // Too large for the client: dropped, so it never learns an alias from it.
    publish(&mut publisher, message("al/z", &"x".repeat(500), QoS::AtLeastOnce)).await;
    publish(&mut publisher, message("al/z", "small", QoS::AtLeastOnce)).await;
    let p = next_publish(&mut sub).await;
    assert_eq!(
        (topic(&p), &p.payload[..]),
        ("al/z", &b"small"[..]),
        "the first PUBLISH it gets names the topic"
    );
    assert_eq!(broker.stat("mqtt_publish_too_large_for_client"), 1);
    broker.stop().await;
}

#[tokio::test]
async fn client_receive_maximum_bounds_unacknowledged_messages() {
    let broker = TestBroker::start("").await;
    let mut c = v5("slow");
    c.properties.receive_maximum = Some(pid(2));
    let (mut sub, _) = connect(broker.tcp(), c).await;
    subscribe(&mut sub, "rm/#", QoS::AtLeastOnce).await;
    let mut publisher = client(broker.tcp(), "pub").await;
    for i in 0..4 {
        publish(&mut publisher, message("rm/x", &i.to_string(), QoS::AtLeastOnce)).await;
    }
    let first = next_publish(&mut sub).await;
    let second = next_publish(&mut sub).await;
    sub.expect_silence(std::time::Duration::from_millis(300)).await;
    for (p, next) in [(first, "2"), (second, "3")] {
        ack(&mut sub, &p).await;
        assert_eq!(
            &next_publish(&mut sub).await.payload[..],
            next.as_bytes(),
            "one more per PUBACK"
        );
    }
    broker.stop().await;
}
