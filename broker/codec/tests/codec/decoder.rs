//! The connection-level [`Decoder`] and the balancer's [`sniff_connect`].

use std::num::NonZeroU16;

use bytes::BytesMut;
use skerry_codec::{
    encode, peek_connect_version, sniff_connect, Ack, ConnAck, Connect, DecodeError, Decoder, Packet, PacketType,
    ProtocolVersion, Publish, QoS, ReasonCode, SubAck, Subscribe, SubscriptionOptions, MAX_PACKET_SIZE,
};

fn bytes(packets: &[Packet], version: ProtocolVersion) -> BytesMut {
    let mut buf = BytesMut::new();
    for p in packets {
        encode(p, version, &mut buf).expect("encodes");
    }
    buf
}

fn connect(version: ProtocolVersion) -> Packet {
    Packet::Connect(Connect::new(version, "client-1"))
}

fn id(n: u16) -> NonZeroU16 {
    NonZeroU16::new(n).expect("non-zero")
}

#[test]
fn server_learns_the_version_from_connect() {
    for version in [ProtocolVersion::V31, ProtocolVersion::V311, ProtocolVersion::V5] {
        let mut publish = Publish::new("a/b", &b"hello"[..]);
        publish.qos = QoS::AtLeastOnce;
        publish.packet_id = Some(id(1));
        let packets = [connect(version), Packet::Publish(publish), Packet::PingReq];
        let mut buf = bytes(&packets, version);
        let mut decoder = Decoder::new(MAX_PACKET_SIZE);
        assert_eq!(decoder.version(), None);
        for p in packets {
            assert_eq!(decoder.decode(&mut buf), Ok(Some(p)));
            assert_eq!(decoder.version(), Some(version));
        }
        assert_eq!(decoder.decode(&mut buf), Ok(None));
    }
}

#[test]
fn byte_at_a_time() {
    let version = ProtocolVersion::V5;
    let packets = [
        connect(version),
        Packet::PingReq,
        Packet::Disconnect(Default::default()),
    ];
    let all = bytes(&packets, version);
    let mut decoder = Decoder::new(MAX_PACKET_SIZE);
    let mut buf = BytesMut::new();
    let mut decoded = Vec::new();
    for byte in all {
        buf.extend_from_slice(&[byte]);
        if let Some(p) = decoder.decode(&mut buf).expect("valid stream") {
            decoded.push(p);
        }
    }
    assert_eq!(decoded, packets);
}

#[test]
fn first_packet_must_be_connect_and_fails_on_its_first_byte() {
    let mut decoder = Decoder::new(MAX_PACKET_SIZE);
    let err = decoder.decode(&mut BytesMut::from(&[0x30][..])).unwrap_err();
    assert_eq!(err.reason_code(), ReasonCode::ProtocolError);
    assert_eq!(err.to_string(), "unexpected PUBLISH: the first packet must be CONNECT");
    let mut decoder = Decoder::new(MAX_PACKET_SIZE);
    let err = decoder.decode(&mut BytesMut::from(&[0xC0, 0x00][..])).unwrap_err();
    assert_eq!(err.reason_code(), ReasonCode::ProtocolError);
}

#[test]
fn server_refuses_a_second_connect_and_server_packets() {
    let version = ProtocolVersion::V311;
    let suback = Packet::SubAck(SubAck {
        packet_id: id(1),
        return_codes: vec![ReasonCode::Success],
        properties: Default::default(),
    });
    for second in [connect(version), suback, Packet::PingResp] {
        let mut decoder = Decoder::new(MAX_PACKET_SIZE);
        let mut buf = bytes(&[connect(version), second], version);
        assert!(decoder.decode(&mut buf).expect("CONNECT").is_some());
        let err = decoder.decode(&mut buf).unwrap_err();
        assert_eq!(err.reason_code(), ReasonCode::ProtocolError, "{err}");
    }
}

#[test]
fn version_is_known_after_a_connect_that_failed() {
    // 3.1.1, empty client identifier without clean session: identifier rejected.
    let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', 4, 0x00, 0, 60, 0, 0];
    let mut raw = vec![0x10, body.len() as u8];
    raw.append(&mut body);
    assert_eq!(peek_connect_version(&raw), Some(ProtocolVersion::V311));
    let mut decoder = Decoder::new(MAX_PACKET_SIZE);
    let err = decoder.decode(&mut BytesMut::from(&raw[..])).unwrap_err();
    assert_eq!(err.reason_code(), ReasonCode::ClientIdentifierNotValid);
    assert_eq!(err.reason_code().v3_connack_code(), 0x02);
    assert_eq!(decoder.version(), Some(ProtocolVersion::V311));
}

#[test]
fn client_side_decoder() {
    let version = ProtocolVersion::V5;
    let packets = [
        Packet::ConnAck(ConnAck::new(ReasonCode::Success)),
        Packet::SubAck(SubAck {
            packet_id: id(3),
            return_codes: vec![ReasonCode::GrantedQoS1],
            properties: Default::default(),
        }),
        Packet::PubAck(Ack::new(id(4))),
        Packet::PingResp,
    ];
    let mut buf = bytes(&packets, version);
    let mut decoder = Decoder::with_version(version, MAX_PACKET_SIZE);
    for p in packets {
        assert_eq!(decoder.decode(&mut buf), Ok(Some(p)));
    }
    let subscribe = Packet::Subscribe(Subscribe {
        packet_id: id(1),
        filters: vec![("a".into(), SubscriptionOptions::new(QoS::AtMostOnce))],
        properties: Default::default(),
    });
    let err = decoder.decode(&mut bytes(&[subscribe], version)).unwrap_err();
    assert_eq!(
        err,
        DecodeError::UnexpectedPacket {
            packet: PacketType::Subscribe,
            why: "only a client sends it"
        }
    );
}

#[test]
fn decoder_enforces_its_maximum() {
    let version = ProtocolVersion::V311;
    let big = Packet::Publish(Publish::new("t", vec![0u8; 2_000]));
    let mut buf = bytes(&[connect(version), big], version);
    let mut decoder = Decoder::new(1_024);
    assert!(decoder.decode(&mut buf).expect("CONNECT").is_some());
    // Only the fixed header is needed to refuse it.
    buf.truncate(3);
    let err = decoder.decode(&mut buf).unwrap_err();
    assert_eq!(err.reason_code(), ReasonCode::PacketTooLarge);
}

#[test]
fn auth_only_after_a_v5_connect() {
    let mut decoder = Decoder::new(MAX_PACKET_SIZE);
    let mut buf = bytes(&[connect(ProtocolVersion::V311)], ProtocolVersion::V311);
    buf.extend_from_slice(&[0xF0, 0x00]);
    assert!(decoder.decode(&mut buf).expect("CONNECT").is_some());
    assert_eq!(decoder.decode(&mut buf), Err(DecodeError::ReservedPacketType(15)));
}

#[test]
fn sniff_refuses_non_mqtt_on_the_first_byte() {
    for first in [b'G', 0x00, 0x30, 0x11, 0x20] {
        let err = sniff_connect(&[first], MAX_PACKET_SIZE).unwrap_err();
        assert!(err.reason_code().is_error(), "{first:#x}: {err}");
    }
    assert_eq!(sniff_connect(&[], MAX_PACKET_SIZE), Ok(None));
    assert_eq!(sniff_connect(&[0x10], MAX_PACKET_SIZE), Ok(None));
}

#[test]
fn sniff_refuses_a_wrong_protocol_before_the_packet_is_whole() {
    // 127 bytes announced, protocol "HTTP" level 4 already visible.
    let head = [0x10, 0x7F, 0x00, 0x04, b'H', b'T', b'T', b'P', 0x04];
    let err = sniff_connect(&head, MAX_PACKET_SIZE).unwrap_err();
    assert_eq!(err.reason_code(), ReasonCode::UnsupportedProtocolVersion);
    // A right prefix waits for the rest.
    let head = [0x10, 0x7F, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x05];
    assert_eq!(sniff_connect(&head, MAX_PACKET_SIZE), Ok(None));
    assert_eq!(peek_connect_version(&head), Some(ProtocolVersion::V5));
}

#[test]
fn sniff_checks_the_size_from_the_fixed_header() {
    let err = sniff_connect(&[0x10, 0xFF, 0xFF, 0x03], 4_096).unwrap_err();
    assert_eq!(err.reason_code(), ReasonCode::PacketTooLarge);
}
