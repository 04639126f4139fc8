//! Encoding packets for a protocol version, and their encoded size (so a
//! broker can respect a client's MQTT 5.0 Maximum Packet Size before it
//! writes anything).

use bytes::{BufMut, BytesMut};

use crate::protocol::MAX_REMAINING_LENGTH;
use crate::wire::{put_varint, varint_len};
use crate::{
    ack, connack, connect, control, publish, subscribe, EncodeError, Packet, PacketType, ProtocolVersion, ReasonCode,
};

/// Refuses a reason code that `packet` may not carry on MQTT 5.0.
pub(crate) fn check_reason(code: ReasonCode, packet: PacketType) -> Result<(), EncodeError> {
    if code.is_valid_for(packet) {
        Ok(())
    } else {
        Err(EncodeError::Invalid {
            packet,
            why: "reason code not allowed in this packet type",
        })
    }
}

/// A CONNECT is written in the version it names; everything else in the
/// connection's version.
fn effective_version(packet: &Packet, version: ProtocolVersion) -> ProtocolVersion {
    match packet {
        Packet::Connect(c) => c.protocol,
        _ => version,
    }
}

fn first_byte(packet: &Packet) -> u8 {
    let flags = match packet {
        Packet::Publish(p) => publish::flags(p),
        Packet::PubRel(_) | Packet::Subscribe(_) | Packet::Unsubscribe(_) => 0b0010,
        _ => 0,
    };
    ((packet.packet_type() as u8) << 4) | flags
}

fn body_len(packet: &Packet, version: ProtocolVersion) -> usize {
    match packet {
        Packet::Connect(c) => connect::body_len(c),
        Packet::ConnAck(c) => connack::body_len(c, version),
        Packet::Publish(p) => publish::body_len(p, version),
        Packet::PubAck(a) | Packet::PubRec(a) | Packet::PubRel(a) | Packet::PubComp(a) => ack::body_len(a, version),
        Packet::Subscribe(s) => subscribe::subscribe_len(s, version),
        Packet::SubAck(s) => subscribe::suback_len(s, version),
        Packet::Unsubscribe(u) => subscribe::unsubscribe_len(u, version),
        Packet::UnsubAck(u) => subscribe::unsuback_len(u, version),
        Packet::PingReq | Packet::PingResp => 0,
        Packet::Disconnect(d) => control::disconnect_len(d, version),
        Packet::Auth(a) => control::auth_len(a),
    }
}

fn encode_body(packet: &Packet, version: ProtocolVersion, buf: &mut BytesMut) -> Result<(), EncodeError> {
    let ty = packet.packet_type();
    match packet {
        Packet::Connect(c) => connect::encode(c, buf),
        Packet::ConnAck(c) => connack::encode(c, version, buf),
        Packet::Publish(p) => publish::encode(p, version, buf),
        Packet::PubAck(a) | Packet::PubRec(a) | Packet::PubRel(a) | Packet::PubComp(a) => {
            ack::encode(ty, a, version, buf)
        }
        Packet::Subscribe(s) => subscribe::encode_subscribe(s, version, buf),
        Packet::SubAck(s) => subscribe::encode_suback(s, version, buf),
        Packet::Unsubscribe(u) => subscribe::encode_unsubscribe(u, version, buf),
        Packet::UnsubAck(u) => subscribe::encode_unsuback(u, version, buf),
        Packet::PingReq | Packet::PingResp => Ok(()),
        Packet::Disconnect(d) => control::encode_disconnect(d, version, buf),
        Packet::Auth(a) => control::encode_auth(a, buf),
    }
}

/// Appends `packet`, encoded for `version`, to `buf`.
///
/// On MQTT 3.x the parts that only 5.0 has (properties, reason codes of
/// acknowledgements, SUBSCRIBE options beyond QoS) are left out; an AUTH,
/// which has no 3.x meaning, is an error. A CONNECT is always encoded in
/// the version its `protocol` names. On error `buf` is left as it was.
pub fn encode(packet: &Packet, version: ProtocolVersion, buf: &mut BytesMut) -> Result<(), EncodeError> {
    let version = effective_version(packet, version);
    let ty = packet.packet_type();
    if ty == PacketType::Auth && !version.is_v5() {
        return Err(EncodeError::Unsupported { packet: ty, version });
    }
    let len = body_len(packet, version);
    if len > MAX_REMAINING_LENGTH as usize {
        return Err(EncodeError::PacketTooLarge { packet: ty, size: len });
    }
    let start = buf.len();
    buf.reserve(1 + varint_len(len) + len);
    buf.put_u8(first_byte(packet));
    let result = put_varint(buf, len, "remaining length").and_then(|()| encode_body(packet, version, buf));
    match result {
        Ok(()) => {
            debug_assert_eq!(buf.len() - start, 1 + varint_len(len) + len, "{ty} length");
            Ok(())
        }
        Err(e) => {
            buf.truncate(start);
            Err(e)
        }
    }
}

/// Size of `packet` encoded for `version`, fixed header included: what
/// [`encode`] appends when it succeeds.
pub fn encoded_len(packet: &Packet, version: ProtocolVersion) -> usize {
    let len = body_len(packet, effective_version(packet, version));
    1 + varint_len(len) + len
}
