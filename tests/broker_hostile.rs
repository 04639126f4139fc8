//! Hostile and broken input on raw sockets: every malformed or forbidden
//! packet gets the reason code the codec maps it to (v5 DISCONNECT, v3 a
//! plain close), and a subscriber connected alongside keeps receiving as if
//! nothing happened.

use std::num::NonZeroU16;
use std::time::Duration;

use bytes::BytesMut;
use skerry_codec::{
    encode, Connect, Packet, ProtocolVersion, Publish, QoS, ReasonCode, Subscribe, SubscriptionOptions,
};
use skerry_tests::broker::TestBroker;
use skerry_tests::hostile::{assert_closed_silently, assert_disconnected, packet, string, varint, Witness};
use skerry_tests::raw::{RawClient, WAIT};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

const V5: ProtocolVersion = ProtocolVersion::V5;
const V311: ProtocolVersion = ProtocolVersion::V311;

/// One node whose TCP listener is strict about size and slowness.
async fn broker() -> TestBroker {
    let yaml = "broker:
  allow_anonymous: true
  nodes:
    - name: n1
      listeners:
        - name: tcp
          bind: 127.0.0.1:0
          max_packet_size: 1KiB
          handshake_timeout: 500ms
";
    TestBroker::start_in(yaml, std::path::Path::new(".")).await
}

/// A connected attacker of `version`.
async fn attacker(broker: &TestBroker, version: ProtocolVersion, name: &str) -> RawClient {
    RawClient::connected(broker.tcp(), version, name).await
}

/// Sends `bytes` on a fresh v5 connection and expects DISCONNECT `reason`.
async fn v5_attack(broker: &TestBroker, bytes: &[u8], reason: ReasonCode, what: &str) {
    let mut c = attacker(broker, V5, what).await;
    c.send_bytes(bytes).await;
    assert_disconnected(&mut c, reason, what).await;
}

#[tokio::test]
async fn remaining_length_with_a_fifth_byte_is_malformed() {
    let broker = broker().await;
    let mut witness = Witness::new(&broker).await;
    // Four continuation bytes: the codec must not wait for a fifth.
    v5_attack(
        &broker,
        &[0x30, 0xFF, 0xFF, 0xFF, 0xFF],
        ReasonCode::MalformedPacket,
        "5-byte length",
    )
    .await;
    let mut c = attacker(&broker, V311, "v3-varint").await;
    c.send_bytes(&[0x30, 0x80, 0x80, 0x80, 0x80, 0x01]).await;
    assert_closed_silently(&mut c, "v3 5-byte length").await;
    witness.still_served(&broker).await;
    assert!(broker.stat("mqtt_invalid_packet") >= 2);
    broker.stop().await;
}

#[tokio::test]
async fn reserved_flag_bits_are_malformed() {
    let broker = broker().await;
    let mut witness = Witness::new(&broker).await;
    let mut subscribe = vec![0x00, 0x01, 0x00];
    subscribe.extend(string(b"a/b"));
    subscribe.push(0x01);
    v5_attack(
        &broker,
        &packet(0x80, &subscribe),
        ReasonCode::MalformedPacket,
        "SUBSCRIBE flags 0",
    )
    .await;
    v5_attack(
        &broker,
        &packet(0x60, &[0x00, 0x01]),
        ReasonCode::MalformedPacket,
        "PUBREL flags 0",
    )
    .await;
    v5_attack(
        &broker,
        &packet(0xC1, &[]),
        ReasonCode::MalformedPacket,
        "PINGREQ flags 1",
    )
    .await;
    witness.still_served(&broker).await;
    broker.stop().await;
}

#[tokio::test]
async fn v311_packets_with_v5_properties_are_closed() {
    let broker = broker().await;
    let mut witness = Witness::new(&broker).await;
    // A topic length that runs past the packet's end.
    let mut publish = vec![0xFF, 0xF0];
    publish.extend_from_slice(b"topic");
    // PUBACK with a reason code and an empty property block: 3.1.1 allows only the id.
    let puback = packet(0x40, &[0x00, 0x01, 0x00, 0x00]);
    // SUBSCRIBE with a property length byte: 3.1.1 reads it as a filter length.
    let mut subscribe = vec![0x00, 0x01, 0x00];
    subscribe.extend(string(b"a/b"));
    subscribe.push(0x01);
    for (what, bytes) in [
        ("PUBLISH", packet(0x30, &publish)),
        ("PUBACK", puback),
        ("SUBSCRIBE", packet(0x82, &subscribe)),
    ] {
        let mut c = attacker(&broker, V311, &format!("v3-{what}")).await;
        c.send_bytes(&bytes).await;
        assert_closed_silently(&mut c, what).await;
    }
    witness.still_served(&broker).await;
    broker.stop().await;
}

#[tokio::test]
async fn wildcards_in_a_publish_topic_are_refused() {
    let broker = broker().await;
    let mut witness = Witness::new(&broker).await;
    for topic in ["witness/+", "witness/#", "+"] {
        let mut c = attacker(&broker, V5, "wild").await;
        c.send(&Packet::Publish(Publish::new(topic, "x"))).await;
        assert_disconnected(&mut c, ReasonCode::TopicNameInvalid, topic).await;
    }
    let mut c = attacker(&broker, V311, "wild-v3").await;
    c.send(&Packet::Publish(Publish::new("witness/#", "x"))).await;
    assert_closed_silently(&mut c, "v3 wildcard topic").await;
    // Nothing reached the witness: the next message it gets is the proof's.
    witness.still_served(&broker).await;
    broker.stop().await;
}

#[tokio::test]
async fn oversized_packet_is_refused_from_its_fixed_header() {
    let broker = broker().await;
    let mut witness = Witness::new(&broker).await;
    // 100 MB announced, not one byte of it sent: the close must come anyway.
    let mut header = vec![0x30];
    header.extend(varint(100 * 1024 * 1024));
    v5_attack(&broker, &header, ReasonCode::PacketTooLarge, "100 MB PUBLISH").await;
    // Just over the listener's 1 KiB, body and all.
    let mut p = Publish::new("witness/big", vec![0u8; 1100]);
    p.qos = QoS::AtMostOnce;
    let mut c = attacker(&broker, V5, "big").await;
    c.send(&Packet::Publish(p)).await;
    assert_disconnected(&mut c, ReasonCode::PacketTooLarge, "1100-byte PUBLISH").await;
    // Before CONNECT there is no one to tell: a plain close.
    let mut c = RawClient::open(broker.tcp(), V5).await;
    let mut header = vec![0x10];
    header.extend(varint(100 * 1024 * 1024));
    c.send_bytes(&header).await;
    assert_closed_silently(&mut c, "100 MB CONNECT").await;
    witness.still_served(&broker).await;
    broker.stop().await;
}

#[tokio::test]
async fn unfinished_connect_is_closed_after_the_handshake_timeout() {
    let broker = broker().await;
    let mut witness = Witness::new(&broker).await;
    let mut c = RawClient::open(broker.tcp(), V5).await;
    c.send_bytes(&[0x10, 0x10, 0x00, 0x04, b'M']).await;
    // The timeout is 500ms; the default (5s) would outlast this wait.
    let closed = c.recv_within(Duration::from_secs(4)).await;
    assert!(
        matches!(closed, Ok(None)),
        "expected a close after handshake_timeout, got {closed:?}"
    );
    let mut silent = RawClient::open(broker.tcp(), V5).await;
    let closed = silent.recv_within(Duration::from_secs(4)).await;
    assert!(
        matches!(closed, Ok(None)),
        "a silent socket is closed too, got {closed:?}"
    );
    witness.still_served(&broker).await;
    broker.stop().await;
}

#[tokio::test]
async fn garbage_first_byte_closes_the_connection() {
    let broker = broker().await;
    let mut witness = Witness::new(&broker).await;
    for first in [0x00u8, 0xF0, b'G'] {
        let mut c = RawClient::open(broker.tcp(), V5).await;
        let mut bytes = vec![first];
        bytes.extend_from_slice(b"ET / HTTP/1.1\r\n\r\n");
        c.send_bytes(&bytes).await;
        assert_closed_silently(&mut c, &format!("first byte {first:#04x}")).await;
    }
    // Packet type 0 once connected is malformed too.
    v5_attack(
        &broker,
        &[0x00, 0x00],
        ReasonCode::MalformedPacket,
        "type 0 after CONNECT",
    )
    .await;
    witness.still_served(&broker).await;
    broker.stop().await;
}

#[tokio::test]
async fn second_connect_is_a_protocol_error() {
    let broker = broker().await;
    let mut witness = Witness::new(&broker).await;
    let mut c = attacker(&broker, V5, "twice").await;
    c.send(&Packet::Connect(Connect::new(V5, "twice"))).await;
    assert_disconnected(&mut c, ReasonCode::ProtocolError, "second CONNECT").await;
    let mut c = attacker(&broker, V311, "twice-v3").await;
    c.send(&Packet::Connect(Connect::new(V311, "twice-v3"))).await;
    assert_closed_silently(&mut c, "second v3 CONNECT").await;
    witness.still_served(&broker).await;
    broker.stop().await;
}

#[tokio::test]
async fn packets_only_a_server_sends_are_protocol_errors() {
    let broker = broker().await;
    let mut witness = Witness::new(&broker).await;
    let cases = [
        ("CONNACK", packet(0x20, &[0x00, 0x00, 0x00])),
        ("SUBACK", packet(0x90, &[0x00, 0x01, 0x00, 0x01])),
        ("UNSUBACK", packet(0xB0, &[0x00, 0x01, 0x00, 0x00])),
        ("PINGRESP", packet(0xD0, &[])),
    ];
    for (what, bytes) in cases {
        v5_attack(&broker, &bytes, ReasonCode::ProtocolError, what).await;
    }
    witness.still_served(&broker).await;
    broker.stop().await;
}

#[tokio::test]
async fn publish_before_connect_gets_no_connack() {
    let broker = broker().await;
    let mut witness = Witness::new(&broker).await;
    let before = broker.stat("mqtt_publish_received");
    let mut c = RawClient::open(broker.tcp(), V311).await;
    c.send(&Packet::Publish(Publish::new("witness/sneaky", "x"))).await;
    assert_closed_silently(&mut c, "PUBLISH before CONNECT").await;
    assert_eq!(broker.stat("mqtt_publish_received"), before, "nothing was routed");
    witness.still_served(&broker).await;
    broker.stop().await;
}

#[tokio::test]
async fn invalid_utf8_in_a_topic_is_malformed() {
    let broker = broker().await;
    let mut witness = Witness::new(&broker).await;
    for topic in [
        &b"witness/\xC3\x28"[..],
        b"witness/\xFF",
        b"witness/\xED\xA0\x80",
        b"witness/\x00",
    ] {
        let mut body = string(topic);
        body.push(0x00); // no properties
        body.extend_from_slice(b"payload");
        v5_attack(
            &broker,
            &packet(0x30, &body),
            ReasonCode::MalformedPacket,
            &format!("topic {topic:?}"),
        )
        .await;
    }
    witness.still_served(&broker).await;
    broker.stop().await;
}

#[tokio::test]
async fn zero_packet_id_on_qos1_is_a_protocol_error() {
    let broker = broker().await;
    let mut witness = Witness::new(&broker).await;
    let mut body = string(b"witness/zero");
    body.extend_from_slice(&[0x00, 0x00, 0x00]);
    body.extend_from_slice(b"payload");
    v5_attack(
        &broker,
        &packet(0x32, &body),
        ReasonCode::ProtocolError,
        "QoS 1 with id 0",
    )
    .await;
    v5_attack(
        &broker,
        &packet(0x34, &body),
        ReasonCode::ProtocolError,
        "QoS 2 with id 0",
    )
    .await;
    witness.still_served(&broker).await;
    broker.stop().await;
}

#[tokio::test]
async fn subscribe_without_filters_is_a_protocol_error() {
    let broker = broker().await;
    let mut witness = Witness::new(&broker).await;
    v5_attack(
        &broker,
        &packet(0x82, &[0x00, 0x05, 0x00]),
        ReasonCode::ProtocolError,
        "SUBSCRIBE",
    )
    .await;
    v5_attack(
        &broker,
        &packet(0xA2, &[0x00, 0x05, 0x00]),
        ReasonCode::ProtocolError,
        "UNSUBSCRIBE",
    )
    .await;
    let mut c = attacker(&broker, V311, "empty-v3").await;
    c.send_bytes(&packet(0x82, &[0x00, 0x05])).await;
    assert_closed_silently(&mut c, "v3 SUBSCRIBE without filters").await;
    witness.still_served(&broker).await;
    broker.stop().await;
}

#[tokio::test]
async fn unsupported_protocol_level_gets_a_v3_connack_0x01() {
    let broker = broker().await;
    let mut witness = Witness::new(&broker).await;
    let mut body = string(b"MQTT");
    body.extend_from_slice(&[7, 0x02, 0x00, 0x3C]);
    body.extend(string(b"from-the-future"));
    let mut tcp = TcpStream::connect(broker.tcp()).await.expect("connect");
    tokio::io::AsyncWriteExt::write_all(&mut tcp, &packet(0x10, &body))
        .await
        .expect("write");
    let mut answer = Vec::new();
    tokio::time::timeout(WAIT, tcp.read_to_end(&mut answer))
        .await
        .expect("close within the wait")
        .expect("read");
    // 3.1.1 form: type, length 2, no session present, return code 1.
    assert_eq!(answer, [0x20, 0x02, 0x00, 0x01]);
    witness.still_served(&broker).await;
    broker.stop().await;
}

/// A v5 PUBLISH (QoS 0) body with raw `props`.
fn v5_publish(topic: &[u8], props: &[u8]) -> Vec<u8> {
    let mut body = string(topic);
    body.extend(varint(props.len()));
    body.extend_from_slice(props);
    body.extend_from_slice(b"payload");
    packet(0x30, &body)
}

#[tokio::test]
async fn bad_v5_properties_close_with_their_reason_code() {
    let broker = broker().await;
    let mut witness = Witness::new(&broker).await;
    let mut bad_user = vec![0x26];
    bad_user.extend(string(b"k"));
    bad_user.extend(string(b"\xFF"));
    let cases: [(&str, &[u8], ReasonCode); 5] = [
        // MQTT-3.3.4-6: a client must not send a Subscription Identifier.
        (
            "subscription identifier from a client",
            &[0x0B, 0x01],
            ReasonCode::ProtocolError,
        ),
        (
            "message expiry twice",
            &[0x02, 0, 0, 0, 9, 0x02, 0, 0, 0, 9],
            ReasonCode::ProtocolError,
        ),
        ("unknown property 0x7F", &[0x7F, 0x00], ReasonCode::MalformedPacket),
        ("property cut short", &[0x02, 0, 0], ReasonCode::MalformedPacket),
        ("user property value not UTF-8", &bad_user, ReasonCode::MalformedPacket),
    ];
    for (what, props, reason) in cases {
        v5_attack(&broker, &v5_publish(b"witness/props", props), reason, what).await;
    }
    witness.still_served(&broker).await;
    broker.stop().await;
}

#[tokio::test]
async fn bad_subscription_options_close_with_their_reason_code() {
    let broker = broker().await;
    let mut witness = Witness::new(&broker).await;
    let subscribe = |props: &[u8], options: u8| {
        let mut body = vec![0x00, 0x01];
        body.extend(varint(props.len()));
        body.extend_from_slice(props);
        body.extend(string(b"witness/#"));
        body.push(options);
        packet(0x82, &body)
    };
    let cases = [
        (
            "reserved option bits",
            subscribe(&[], 0x41),
            ReasonCode::MalformedPacket,
        ),
        ("maximum QoS 3", subscribe(&[], 0x03), ReasonCode::ProtocolError),
        ("retain handling 3", subscribe(&[], 0x31), ReasonCode::ProtocolError),
        (
            "subscription identifier 0",
            subscribe(&[0x0B, 0x00], 0x01),
            ReasonCode::ProtocolError,
        ),
    ];
    for (what, bytes, reason) in cases {
        v5_attack(&broker, &bytes, reason, what).await;
    }
    witness.still_served(&broker).await;
    broker.stop().await;
}

#[tokio::test]
async fn broken_connect_is_refused_without_a_session() {
    let broker = broker().await;
    let mut witness = Witness::new(&broker).await;
    let connect = |level: u8, flags: u8, props: &[u8], rest: &[u8]| {
        let mut body = string(b"MQTT");
        body.extend_from_slice(&[level, flags, 0x00, 0x3C]);
        if level == 5 {
            body.extend(varint(props.len()));
            body.extend_from_slice(props);
        }
        body.extend(string(b"broken"));
        body.extend_from_slice(rest);
        packet(0x10, &body)
    };
    let mut will = vec![0x00];
    will.extend(string(b"witness/#"));
    will.extend(string(b"bye"));
    let cases = [
        ("v5 receive maximum 0", connect(5, 0x02, &[0x21, 0x00, 0x00], b"")),
        ("v5 will QoS 3", connect(5, 0x1E, &[], &will)),
        ("v5 will topic with a wildcard", connect(5, 0x06, &[], &will)),
        ("reserved connect flag", connect(4, 0x03, &[], b"")),
        (
            "v3.1.1 password without user name",
            connect(4, 0x42, &[], &string(b"secret")),
        ),
    ];
    for (what, bytes) in cases {
        let mut c = RawClient::open(broker.tcp(), V311).await;
        c.send_bytes(&bytes).await;
        let seen = c.until_closed().await;
        assert!(
            seen.iter()
                .all(|p| matches!(p, Packet::ConnAck(a) if a.reason.is_error())),
            "{what}: expected a close (or a refusing CONNACK), got {seen:?}"
        );
    }
    witness.still_served(&broker).await;
    broker.stop().await;
}

#[tokio::test]
async fn subscriber_that_never_reads_holds_up_nobody() {
    let broker = broker().await;
    let mut witness = Witness::new(&broker).await;
    let mut stuck = attacker(&broker, V5, "stuck").await;
    let filters = vec![("flood/#".to_owned(), SubscriptionOptions::new(QoS::AtMostOnce))];
    let packet_id = NonZeroU16::MIN;
    stuck
        .send(&Packet::Subscribe(Subscribe {
            packet_id,
            filters,
            properties: Default::default(),
        }))
        .await;
    assert!(matches!(stuck.recv().await, Some(Packet::SubAck(_))));
    // From here on `stuck` reads nothing: its socket buffers fill up.
    let mut publisher = attacker(&broker, V5, "flooder").await;
    let flood = Packet::Publish(Publish::new("flood/x", vec![b'x'; 900]));
    for _ in 0..20 {
        let mut batch = BytesMut::new();
        for _ in 0..250 {
            encode(&flood, V5, &mut batch).expect("encode");
        }
        publisher.send_bytes(&batch).await;
    }
    // PINGRESP comes after all 5000 messages were read and routed.
    publisher.send(&Packet::PingReq).await;
    assert_eq!(publisher.recv().await, Some(Packet::PingResp));
    witness.still_served(&broker).await;
    broker.stop().await;
}
