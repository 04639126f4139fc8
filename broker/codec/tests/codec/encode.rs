//! What the encoder writes for each version: v3 omissions, v5 short forms,
//! and the errors it refuses with (leaving the buffer as it was).

use std::num::NonZeroU16;

use bytes::BytesMut;
use skerry_codec::{
    encode, encoded_len, Ack, AckProperties, Auth, AuthProperties, ConnAck, Connect, Disconnect, EncodeError, Packet,
    PacketType, ProtocolVersion, Publish, QoS, ReasonCode, SubAck, Subscribe, SubscriptionOptions,
};

use ProtocolVersion::{V31, V311, V5};

fn bytes(packet: &Packet, version: ProtocolVersion) -> Vec<u8> {
    let mut buf = BytesMut::new();
    encode(packet, version, &mut buf).expect("encodes");
    assert_eq!(buf.len(), encoded_len(packet, version));
    buf.to_vec()
}

fn id(n: u16) -> NonZeroU16 {
    NonZeroU16::new(n).expect("non-zero")
}

#[test]
fn acknowledgements_use_the_shortest_form() {
    let mut ack = Ack::new(id(5));
    assert_eq!(bytes(&Packet::PubAck(ack.clone()), V5), [0x40, 2, 0, 5]);
    ack.reason = ReasonCode::NoMatchingSubscribers;
    assert_eq!(bytes(&Packet::PubAck(ack.clone()), V5), [0x40, 3, 0, 5, 0x10]);
    // 3.x has no reason code: it is left out.
    assert_eq!(bytes(&Packet::PubAck(ack.clone()), V311), [0x40, 2, 0, 5]);
    ack.properties = AckProperties {
        reason_string: Some("r".into()),
        user_properties: Vec::new(),
    };
    assert_eq!(
        bytes(&Packet::PubAck(ack), V5),
        [0x40, 8, 0, 5, 0x10, 4, 0x1F, 0, 1, b'r']
    );
    assert_eq!(bytes(&Packet::PubRel(Ack::new(id(1))), V311), [0x62, 2, 0, 1]);
}

#[test]
fn disconnect_and_auth_short_forms() {
    let normal = Packet::Disconnect(Disconnect::default());
    assert_eq!(bytes(&normal, V5), [0xE0, 0]);
    let taken = Packet::Disconnect(Disconnect::new(ReasonCode::SessionTakenOver));
    assert_eq!(bytes(&taken, V5), [0xE0, 1, 0x8E]);
    assert_eq!(bytes(&taken, V311), [0xE0, 0]);
    let auth = Packet::Auth(Auth {
        reason: ReasonCode::Success,
        properties: AuthProperties::default(),
    });
    assert_eq!(bytes(&auth, V5), [0xF0, 0]);
}

#[test]
fn v3_connack_and_suback_codes() {
    let connack = |reason| Packet::ConnAck(ConnAck::new(reason));
    assert_eq!(bytes(&connack(ReasonCode::ServerBusy), V311), [0x20, 2, 0, 3]);
    assert_eq!(bytes(&connack(ReasonCode::BadUserNameOrPassword), V31), [0x20, 2, 0, 4]);
    assert_eq!(bytes(&connack(ReasonCode::ServerBusy), V5), [0x20, 3, 0, 0x89, 0]);
    let suback = Packet::SubAck(SubAck {
        packet_id: id(1),
        return_codes: vec![ReasonCode::GrantedQoS2, ReasonCode::NotAuthorized],
        properties: AckProperties::default(),
    });
    assert_eq!(bytes(&suback, V311), [0x90, 4, 0, 1, 2, 0x80]);
    assert_eq!(bytes(&suback, V5), [0x90, 5, 0, 1, 0, 2, 0x87]);
}

#[test]
fn v3_subscribe_options_are_qos_only() {
    let options = SubscriptionOptions {
        qos: QoS::AtLeastOnce,
        no_local: true,
        retain_as_published: true,
        retain_handling: skerry_codec::RetainHandling::DoNotSend,
    };
    let subscribe = Packet::Subscribe(Subscribe {
        packet_id: id(1),
        filters: vec![("a".into(), options)],
        properties: Default::default(),
    });
    assert_eq!(bytes(&subscribe, V311), [0x82, 6, 0, 1, 0, 1, b'a', 0x01]);
    assert_eq!(bytes(&subscribe, V5), [0x82, 7, 0, 1, 0, 0, 1, b'a', 0x2D]);
}

#[test]
fn connect_is_encoded_in_its_own_version() {
    let connect = Packet::Connect(Connect::new(V31, "c"));
    let expected = [
        0x10, 15, 0, 6, b'M', b'Q', b'I', b's', b'd', b'p', 3, 0x02, 0, 60, 0, 1, b'c',
    ];
    assert_eq!(bytes(&connect, V5), expected);
}

#[test]
fn refusals_leave_the_buffer_as_it_was() {
    let mut buf = BytesMut::from(&b"kept"[..]);
    let auth = Packet::Auth(Auth {
        reason: ReasonCode::ContinueAuthentication,
        properties: AuthProperties::default(),
    });
    let err = encode(&auth, V311, &mut buf).unwrap_err();
    assert_eq!(
        err,
        EncodeError::Unsupported {
            packet: PacketType::Auth,
            version: V311
        }
    );

    let long = Packet::Publish(Publish::new("t".repeat(70_000), &b""[..]));
    let err = encode(&long, V311, &mut buf).unwrap_err();
    assert_eq!(err.to_string(), "topic name of 70000 bytes exceeds 65535");

    let mut no_id = Publish::new("t", &b""[..]);
    no_id.qos = QoS::AtLeastOnce;
    assert!(encode(&Packet::Publish(no_id), V5, &mut buf).is_err());

    let mut bad_reason = Ack::new(id(1));
    bad_reason.reason = ReasonCode::NotAuthorized;
    assert!(encode(&Packet::PubRel(bad_reason), V5, &mut buf).is_err());

    let mut no_user = Connect::new(V311, "c");
    no_user.password = Some(bytes::Bytes::from_static(b"p"));
    assert!(encode(&Packet::Connect(no_user), V311, &mut buf).is_err());
    assert_eq!(&buf[..], b"kept");
}

#[test]
fn encoded_len_counts_the_fixed_header() {
    let big = Packet::Publish(Publish::new("t", vec![0u8; 200]));
    // 3 bytes of topic + 200 of payload: a 2-byte remaining length.
    assert_eq!(encoded_len(&big, V311), 1 + 2 + 203);
    assert_eq!(encoded_len(&Packet::PingReq, V5), 2);
}
