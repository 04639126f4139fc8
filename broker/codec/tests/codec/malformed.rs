//! Every malformed input the decoder must refuse, with the reason code it
//! maps to. Packets are written out byte by byte, as a peer would send them.

use bytes::BytesMut;
use skerry_codec::{decode_packet, DecodeError, Packet, ProtocolVersion, ReasonCode, MAX_PACKET_SIZE};

use ProtocolVersion::{V31, V311, V5};
use ReasonCode as R;

/// A packet: first byte, remaining length, body.
fn packet(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    let mut len = body.len();
    loop {
        let byte = (len % 128) as u8;
        len /= 128;
        out.push(if len > 0 { byte | 0x80 } else { byte });
        if len == 0 {
            break;
        }
    }
    out.extend_from_slice(body);
    out
}

/// A length-prefixed string.
fn s(text: &str) -> Vec<u8> {
    let mut out = (text.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(text.as_bytes());
    out
}

fn decode(bytes: &[u8], version: ProtocolVersion) -> Result<Option<Packet>, DecodeError> {
    decode_packet(&mut BytesMut::from(bytes), version, MAX_PACKET_SIZE)
}

fn error(bytes: &[u8], version: ProtocolVersion) -> DecodeError {
    match decode(bytes, version) {
        Err(e) => e,
        Ok(p) => panic!("{bytes:02x?} decoded on {version} as {p:?}"),
    }
}

fn reason(bytes: &[u8], version: ProtocolVersion) -> ReasonCode {
    error(bytes, version).reason_code()
}

fn ok(bytes: &[u8], version: ProtocolVersion) -> Packet {
    match decode(bytes, version) {
        Ok(Some(p)) => p,
        other => panic!("{bytes:02x?} on {version}: {other:?}"),
    }
}

/// A CONNECT with the given header fields, keep-alive 60, then `rest`.
fn connect(name: &str, level: u8, flags: u8, rest: &[u8]) -> Vec<u8> {
    let mut body = s(name);
    body.extend_from_slice(&[level, flags, 0, 60]);
    body.extend_from_slice(rest);
    packet(0x10, &body)
}

/// A v5 PUBLISH QoS 0 to "t" with the given property bytes.
fn publish_v5(props: &[u8]) -> Vec<u8> {
    let mut body = s("t");
    body.push(props.len() as u8);
    body.extend_from_slice(props);
    body.extend_from_slice(b"payload");
    packet(0x30, &body)
}

#[test]
fn remaining_length_with_a_fifth_byte() {
    let err = error(&[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01], V311);
    assert_eq!(err.to_string(), "remaining length exceeds 4 bytes");
    assert_eq!(err.reason_code(), R::MalformedPacket);
    // Known bad from the 4th byte: no need to wait for a 5th.
    assert_eq!(reason(&[0x30, 0x80, 0x80, 0x80, 0x80], V5), R::MalformedPacket);
}

#[test]
fn oversize_packet_is_refused_from_its_fixed_header() {
    // Only the fixed header has arrived: 300,000 bytes announced.
    let header = [0x30, 0xE0, 0xA7, 0x12];
    let err = decode_packet(&mut BytesMut::from(&header[..]), V5, 65_536).unwrap_err();
    assert_eq!(err.reason_code(), R::PacketTooLarge);
    assert_eq!(err.to_string(), "packet of 300004 bytes exceeds maximum 65536");
    // The limit counts the whole packet: a 10-byte PINGREQ-sized limit.
    let small = packet(0x30, &[0, 1, b't', 1, 2, 3, 4, 5, 6]);
    assert_eq!(small.len(), 11);
    let mut buf = BytesMut::from(&small[..]);
    assert!(decode_packet(&mut buf, V311, 10).is_err());
    let mut buf = BytesMut::from(&small[..]);
    assert!(decode_packet(&mut buf, V311, 11).is_ok());
}

#[test]
fn reserved_packet_types() {
    assert_eq!(reason(&[0x00, 0x00], V311), R::MalformedPacket);
    // AUTH does not exist before 5.0.
    assert_eq!(error(&[0xF0, 0x00], V311), DecodeError::ReservedPacketType(15));
    assert_eq!(
        ok(&[0xF0, 0x00], V5),
        Packet::Auth(skerry_codec::Auth {
            reason: R::Success,
            properties: Default::default(),
        })
    );
}

#[test]
fn wrong_fixed_header_flags() {
    let sub = |first| packet(first, &[&[0, 1][..], &s("a/b"), &[0]].concat());
    assert!(matches!(ok(&sub(0x82), V311), Packet::Subscribe(_)));
    for first in [0x80, 0x83, 0x8A, 0x86] {
        assert_eq!(reason(&sub(first), V311), R::MalformedPacket, "{first:#x}");
    }
    // MQTT 3.1 lets a client set DUP on a resent SUBSCRIBE.
    assert!(matches!(ok(&sub(0x8A), V31), Packet::Subscribe(_)));

    assert_eq!(reason(&packet(0x60, &[0, 1]), V311), R::MalformedPacket); // PUBREL
    assert!(matches!(ok(&packet(0x62, &[0, 1]), V311), Packet::PubRel(_)));
    assert_eq!(reason(&packet(0x41, &[0, 1]), V5), R::MalformedPacket); // PUBACK
    assert_eq!(reason(&packet(0xA0, &[0, 1, 0, 1, b'a']), V311), R::MalformedPacket);
    assert_eq!(reason(&packet(0xC1, &[]), V311), R::MalformedPacket); // PINGREQ
}

#[test]
fn publish_qos_3_and_dup_on_qos_0() {
    let body = [&s("t")[..], &[0, 1]].concat();
    let err = error(&packet(0x36, &body), V311);
    assert_eq!(err.to_string(), "malformed PUBLISH: QoS 3");
    assert_eq!(err.reason_code(), R::MalformedPacket);
    assert_eq!(reason(&packet(0x38, &s("t")), V311), R::MalformedPacket);
}

#[test]
fn v3_packets_have_no_properties() {
    // On 3.1.1 the bytes after the topic are payload, even if they would be
    // an invalid property block on 5.0.
    let bytes = packet(0x30, &[&s("t")[..], &[0xFF, 0xFF]].concat());
    let Packet::Publish(p) = ok(&bytes, V311) else {
        panic!("not a PUBLISH");
    };
    assert_eq!(&p.payload[..], &[0xFF, 0xFF]);
    assert_eq!(reason(&bytes, V5), R::MalformedPacket);

    // A 3.x PUBACK is exactly a packet identifier.
    assert_eq!(reason(&packet(0x40, &[0, 1, 0, 0]), V311), R::MalformedPacket);
    // So is a 3.x DISCONNECT: nothing at all.
    assert_eq!(reason(&packet(0xE0, &[0]), V311), R::MalformedPacket);
    // A 3.x UNSUBACK has no reason codes.
    assert_eq!(reason(&packet(0xB0, &[0, 1, 0]), V311), R::MalformedPacket);
}

#[test]
fn duplicate_properties_are_protocol_errors() {
    let twice = [0x02, 0, 0, 0, 1, 0x02, 0, 0, 0, 2];
    let err = error(&publish_v5(&twice), V5);
    assert_eq!(err.reason_code(), R::ProtocolError);
    assert_eq!(
        err.to_string(),
        "property Message Expiry Interval appears more than once in PUBLISH"
    );
    // Subscription Identifier may repeat in PUBLISH...
    let Packet::Publish(p) = ok(&publish_v5(&[0x0B, 1, 0x0B, 2]), V5) else {
        panic!("not a PUBLISH");
    };
    assert_eq!(p.properties.subscription_identifiers, vec![1, 2]);
    // ...and so may User Property.
    let user = [&[0x26][..], &s("k"), &s("v"), &[0x26], &s("k"), &s("w")].concat();
    assert!(matches!(ok(&publish_v5(&user), V5), Packet::Publish(_)));
    // ...but not in SUBSCRIBE.
    let body = [&[0, 1, 4, 0x0B, 1, 0x0B, 2][..], &s("a"), &[0]].concat();
    assert_eq!(reason(&packet(0x82, &body), V5), R::ProtocolError);
}

#[test]
fn properties_not_allowed_or_unknown() {
    // Session Expiry Interval is a CONNECT/CONNACK/DISCONNECT property.
    let err = error(&publish_v5(&[0x11, 0, 0, 0, 1]), V5);
    assert_eq!(err.reason_code(), R::ProtocolError);
    assert_eq!(
        err.to_string(),
        "property Session Expiry Interval is not allowed in PUBLISH"
    );
    let unknown = error(&publish_v5(&[0x7F, 0]), V5);
    assert_eq!(unknown.reason_code(), R::MalformedPacket);
    // A property block longer than the packet.
    let mut bytes = s("t");
    bytes.push(20);
    assert_eq!(reason(&packet(0x30, &bytes), V5), R::MalformedPacket);
    // A property truncated inside its value.
    assert_eq!(reason(&publish_v5(&[0x02, 0, 0]), V5), R::MalformedPacket);
}

#[test]
fn property_values_out_of_range() {
    assert_eq!(reason(&publish_v5(&[0x01, 2]), V5), R::ProtocolError); // payload format
    assert_eq!(reason(&publish_v5(&[0x23, 0, 0]), V5), R::TopicAliasInvalid);
    assert_eq!(reason(&publish_v5(&[0x0B, 0]), V5), R::ProtocolError); // subscription id 0
    let rt = [&[0x08][..], &s("a/+")].concat();
    assert_eq!(reason(&publish_v5(&rt), V5), R::ProtocolError); // response topic
                                                                // Receive Maximum 0 in CONNECT.
    let bytes = connect("MQTT", 5, 0x02, &[&[3, 0x21, 0, 0][..], &s("c")].concat());
    assert_eq!(reason(&bytes, V5), R::ProtocolError);
    // Maximum QoS 2 in CONNACK.
    assert_eq!(reason(&packet(0x20, &[0, 0, 2, 0x24, 2]), V5), R::ProtocolError);
}

#[test]
fn publish_topic_rules() {
    for topic in ["a/+", "#", "a/#"] {
        let bytes = packet(0x30, &s(topic));
        let err = error(&bytes, V311);
        assert_eq!(err.reason_code(), R::TopicNameInvalid, "{topic}");
    }
    // Empty topic: invalid, unless a 5.0 Topic Alias stands for it.
    assert_eq!(reason(&packet(0x30, &s("")), V311), R::TopicNameInvalid);
    assert_eq!(reason(&packet(0x30, &[0, 0, 0]), V5), R::TopicNameInvalid);
    let aliased = packet(0x30, &[0, 0, 3, 0x23, 0, 7, b'x']);
    let Packet::Publish(p) = ok(&aliased, V5) else {
        panic!("not a PUBLISH");
    };
    assert_eq!(p.topic, "");
    assert_eq!(p.properties.topic_alias.map(|a| a.get()), Some(7));
}

#[test]
fn invalid_utf8_and_nul_in_strings() {
    let bad_utf8 = packet(0x30, &[0, 2, 0xC3, 0x28]);
    let err = error(&bad_utf8, V311);
    assert_eq!(err.reason_code(), R::MalformedPacket);
    assert_eq!(err.to_string(), "topic name in PUBLISH is not valid UTF-8");
    let nul = packet(0x30, &[0, 3, b'a', 0, b'b']);
    assert_eq!(reason(&nul, V311), R::MalformedPacket);
    let client_id = connect("MQTT", 4, 0x02, &[0, 2, 0xFF, 0xFE]);
    assert_eq!(reason(&client_id, V311), R::MalformedPacket);
    let user_prop = publish_v5(&[&[0x26][..], &s("k"), &[0, 1, 0]].concat());
    assert_eq!(reason(&user_prop, V5), R::MalformedPacket);
}

#[test]
fn zero_packet_identifiers() {
    let publish = packet(0x32, &[&s("t")[..], &[0, 0]].concat());
    assert_eq!(reason(&publish, V311), R::ProtocolError);
    for first in [0x40, 0x50, 0x62, 0x70, 0x90, 0xB0] {
        assert_eq!(reason(&packet(first, &[0, 0]), V311), R::ProtocolError, "{first:#x}");
    }
    let subscribe = packet(0x82, &[&[0, 0][..], &s("a"), &[0]].concat());
    assert_eq!(reason(&subscribe, V311), R::ProtocolError);
    let unsubscribe = packet(0xA2, &[&[0, 0][..], &s("a")].concat());
    assert_eq!(reason(&unsubscribe, V311), R::ProtocolError);
}

#[test]
fn subscribe_rules() {
    assert_eq!(reason(&packet(0x82, &[0, 1]), V311), R::ProtocolError);
    assert_eq!(reason(&packet(0x82, &[0, 1, 0]), V5), R::ProtocolError);
    assert_eq!(reason(&packet(0xA2, &[0, 1]), V311), R::ProtocolError);
    let sub = |version: ProtocolVersion, filter: &str, options: u8| {
        let props: &[u8] = if version.is_v5() { &[0] } else { &[] };
        let body = [&[0, 1][..], props, &s(filter), &[options]].concat();
        decode(&packet(0x82, &body), version)
    };
    let code = |r: Result<Option<Packet>, DecodeError>| r.unwrap_err().reason_code();
    assert_eq!(code(sub(V311, "a/#/b", 0)), R::TopicFilterInvalid);
    assert_eq!(code(sub(V5, "a+", 0)), R::TopicFilterInvalid);
    assert_eq!(code(sub(V5, "$share//a", 0)), R::TopicFilterInvalid);
    assert_eq!(code(sub(V311, "a", 0x04)), R::MalformedPacket); // 3.x reserved bits
    assert_eq!(code(sub(V5, "a", 0x40)), R::MalformedPacket); // 5.0 reserved bits
    assert_eq!(code(sub(V5, "a", 0x30)), R::ProtocolError); // retain handling 3
    assert_eq!(code(sub(V5, "a", 0x03)), R::ProtocolError); // QoS 3
    assert_eq!(code(sub(V5, "$share/g/a", 0x04)), R::ProtocolError); // No Local, shared
    assert!(sub(V5, "a", 0x2E).is_ok());
    assert!(sub(V5, "$share/g/a/#", 0x01).is_ok());
    let unsub = packet(0xA2, &[&[0, 1][..], &s("a/#/b")].concat());
    assert_eq!(reason(&unsub, V311), R::TopicFilterInvalid);
}

#[test]
fn connect_protocol_name_and_level() {
    let cases = [("MQTT", 3), ("MQTT", 6), ("MQIsdp", 4), ("MQTX", 4), ("", 4)];
    for (name, level) in cases {
        let bytes = connect(name, level, 0x02, &s("c"));
        let err = error(&bytes, V311);
        assert_eq!(err.reason_code(), R::UnsupportedProtocolVersion, "{name} {level}");
    }
    let Packet::Connect(c) = ok(&connect("MQIsdp", 3, 0x02, &s("c")), V311) else {
        panic!("not a CONNECT");
    };
    assert_eq!(c.protocol, V31);
}

#[test]
fn connect_flags() {
    let id = s("c");
    let err = error(&connect("MQTT", 4, 0x03, &id), V311);
    assert_eq!(err.to_string(), "malformed CONNECT: reserved connect flag is set");
    assert_eq!(err.reason_code(), R::MalformedPacket);
    // Will QoS or will retain without the will flag.
    assert_eq!(reason(&connect("MQTT", 4, 0x0A, &id), V311), R::MalformedPacket);
    assert_eq!(reason(&connect("MQTT", 4, 0x22, &id), V311), R::MalformedPacket);
    // Will QoS 3.
    let will = [&id[..], &s("w"), &s("x")].concat();
    assert_eq!(reason(&connect("MQTT", 4, 0x1E, &will), V311), R::MalformedPacket);
    assert!(matches!(ok(&connect("MQTT", 4, 0x16, &will), V311), Packet::Connect(_)));
    // Password without user name: malformed before 5.0, allowed on 5.0.
    let pass = [&id[..], &s("secret")].concat();
    assert_eq!(reason(&connect("MQTT", 4, 0x42, &pass), V311), R::MalformedPacket);
    assert_eq!(reason(&connect("MQIsdp", 3, 0x42, &pass), V311), R::MalformedPacket);
    let v5 = [&[0][..], &id, &s("secret")].concat();
    let Packet::Connect(c) = ok(&connect("MQTT", 5, 0x42, &v5), V5) else {
        panic!("not a CONNECT");
    };
    assert_eq!(c.password.as_deref(), Some(&b"secret"[..]));
}

#[test]
fn connect_will_topic_and_trailing_bytes() {
    let will = [&s("c")[..], &s("a/#"), &s("x")].concat();
    assert_eq!(reason(&connect("MQTT", 4, 0x06, &will), V311), R::TopicNameInvalid);
    let trailing = [&s("c")[..], &[0xAA]].concat();
    assert_eq!(reason(&connect("MQTT", 4, 0x02, &trailing), V311), R::MalformedPacket);
    // The remaining length ends inside the user name.
    let short = [&s("c")[..], &[0, 5, b'a']].concat();
    let err = error(&connect("MQTT", 4, 0x82, &short), V311);
    assert_eq!(err.to_string(), "CONNECT ends inside user name");
}

#[test]
fn client_identifier_rules() {
    let empty = s("");
    assert_eq!(
        reason(&connect("MQIsdp", 3, 0x02, &empty), V31),
        R::ClientIdentifierNotValid
    );
    assert_eq!(
        reason(&connect("MQTT", 4, 0x00, &empty), V311),
        R::ClientIdentifierNotValid
    );
    assert!(matches!(
        ok(&connect("MQTT", 4, 0x02, &empty), V311),
        Packet::Connect(_)
    ));
    let v5 = [&[0][..], &empty].concat();
    assert!(matches!(ok(&connect("MQTT", 5, 0x00, &v5), V5), Packet::Connect(_)));
}

#[test]
fn authentication_data_needs_a_method() {
    let props = [0x16, 0, 1, 0xAB];
    let bytes = connect("MQTT", 5, 0x02, &[&[4][..], &props, &s("c")].concat());
    assert_eq!(reason(&bytes, V5), R::ProtocolError);
    assert_eq!(
        reason(&packet(0xF0, &[0x18, 4, 0x16, 0, 1, 0xAB]), V5),
        R::ProtocolError
    );
}

#[test]
fn connack_rules() {
    assert_eq!(reason(&packet(0x20, &[0, 6]), V311), R::MalformedPacket); // return code 6
    assert_eq!(reason(&packet(0x20, &[2, 0]), V311), R::MalformedPacket); // reserved flag
    assert_eq!(reason(&packet(0x20, &[0, 0x10, 0]), V5), R::MalformedPacket); // not a CONNACK code
    let Packet::ConnAck(c) = ok(&packet(0x20, &[0, 5]), V311) else {
        panic!("not a CONNACK");
    };
    assert_eq!(c.reason, R::NotAuthorized);
    // 3.1 has no flags: the byte is ignored.
    assert!(matches!(ok(&packet(0x20, &[0xFF, 0]), V31), Packet::ConnAck(_)));
}

#[test]
fn reason_codes_must_fit_the_packet() {
    assert_eq!(reason(&packet(0x40, &[0, 1, 0x92]), V5), R::MalformedPacket);
    assert_eq!(reason(&packet(0x62, &[0, 1, 0x10]), V5), R::MalformedPacket);
    assert_eq!(reason(&packet(0xE0, &[0x01]), V5), R::MalformedPacket);
    assert_eq!(reason(&packet(0xF0, &[0x80]), V5), R::MalformedPacket);
    assert_eq!(reason(&packet(0x90, &[0, 1, 0, 0x11]), V5), R::MalformedPacket);
    assert_eq!(reason(&packet(0x90, &[0, 1, 0x03]), V311), R::MalformedPacket);
}

#[test]
fn v5_acknowledgement_short_forms() {
    let Packet::PubAck(a) = ok(&packet(0x40, &[0, 7]), V5) else {
        panic!("not a PUBACK");
    };
    assert_eq!((a.packet_id.get(), a.reason), (7, R::Success));
    let Packet::PubRec(a) = ok(&packet(0x50, &[0, 7, 0x10]), V5) else {
        panic!("not a PUBREC");
    };
    assert_eq!(a.reason, R::NoMatchingSubscribers);
    let Packet::PubComp(a) = ok(&packet(0x70, &[0, 7, 0x92, 0]), V5) else {
        panic!("not a PUBCOMP");
    };
    assert_eq!(a.reason, R::PacketIdentifierNotFound);
    let Packet::Disconnect(d) = ok(&packet(0xE0, &[]), V5) else {
        panic!("not a DISCONNECT");
    };
    assert_eq!(d.reason, R::NORMAL_DISCONNECTION);
    let Packet::Disconnect(d) = ok(&packet(0xE0, &[0x8E]), V5) else {
        panic!("not a DISCONNECT");
    };
    assert_eq!(d.reason, R::SessionTakenOver);
}

#[test]
fn ping_with_a_body() {
    assert_eq!(reason(&packet(0xC0, &[0]), V311), R::MalformedPacket);
    assert_eq!(reason(&packet(0xD0, &[0]), V5), R::MalformedPacket);
}
