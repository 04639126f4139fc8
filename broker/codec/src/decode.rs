//! Stateless decoding: the fixed header, framing one packet out of a
//! buffer, and dispatching its body to the decoder of its type.
//!
//! Order matters for safety: the first byte is checked as soon as it
//! arrives, and the packet size is checked against the maximum as soon as
//! the remaining length is known, before any byte of the body is buffered
//! into a packet or allocated for.

use bytes::{Buf, Bytes, BytesMut};

use crate::wire::{parse_varint, Reader};
use crate::{ack, connack, connect, control, publish, subscribe, DecodeError, Packet, PacketType, ProtocolVersion};

/// A parsed fixed header.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FixedHeader {
    pub(crate) packet: PacketType,
    /// Low nibble of the first byte.
    pub(crate) flags: u8,
    /// Bytes of the fixed header itself (2 to 5).
    pub(crate) header_len: usize,
    /// Bytes of the body.
    pub(crate) remaining: usize,
}

impl FixedHeader {
    /// Bytes of the whole packet.
    pub(crate) fn total(&self) -> usize {
        self.header_len + self.remaining
    }
}

/// Checks the first byte of a fixed header: a packet type that exists in
/// `version` (unknown before CONNECT) and the flags that type requires.
pub(crate) fn check_first_byte(byte: u8, version: Option<ProtocolVersion>) -> Result<PacketType, DecodeError> {
    let packet = PacketType::from_first_byte(byte).ok_or(DecodeError::ReservedPacketType(0))?;
    if packet == PacketType::Auth && version.is_some_and(|v| !v.is_v5()) {
        return Err(DecodeError::ReservedPacketType(15));
    }
    let flags = byte & 0x0F;
    let ok = match packet {
        PacketType::Publish => {
            publish::check_flags(flags)?;
            true
        }
        // MQTT 3.1 lets a client set DUP when it resends these.
        PacketType::PubRel | PacketType::Subscribe | PacketType::Unsubscribe => {
            flags == 0b0010 || (version == Some(ProtocolVersion::V31) && flags == 0b1010)
        }
        _ => flags == 0,
    };
    if !ok {
        return Err(DecodeError::InvalidFlags { packet, flags });
    }
    Ok(packet)
}

/// Parses the fixed header at the front of `buf`, `None` while it is
/// incomplete, and refuses a packet larger than `max_packet_size` (the
/// whole packet, fixed header included).
pub(crate) fn parse_fixed_header(
    buf: &[u8],
    version: Option<ProtocolVersion>,
    max_packet_size: u32,
) -> Result<Option<FixedHeader>, DecodeError> {
    let Some((&first, rest)) = buf.split_first() else {
        return Ok(None);
    };
    let packet = check_first_byte(first, version)?;
    let Some((remaining, len)) = parse_varint(rest, "remaining length")? else {
        return Ok(None);
    };
    let header = FixedHeader {
        packet,
        flags: first & 0x0F,
        header_len: 1 + len,
        remaining: remaining as usize,
    };
    if header.total() as u64 > u64::from(max_packet_size) {
        return Err(DecodeError::PacketTooLarge {
            size: header.total(),
            max: max_packet_size,
        });
    }
    Ok(Some(header))
}

/// Splits one whole packet off the front of `buf`: its fixed header and
/// its body, which shares `buf`'s memory. `None` while incomplete.
pub(crate) fn frame(
    buf: &mut BytesMut,
    version: Option<ProtocolVersion>,
    max_packet_size: u32,
) -> Result<Option<(FixedHeader, Bytes)>, DecodeError> {
    let Some(header) = parse_fixed_header(buf, version, max_packet_size)? else {
        return Ok(None);
    };
    if buf.len() < header.total() {
        return Ok(None);
    }
    buf.advance(header.header_len);
    let body = buf.split_to(header.remaining).freeze();
    Ok(Some((header, body)))
}

/// Decodes the body of a framed packet.
pub(crate) fn decode_body(header: &FixedHeader, body: Bytes, version: ProtocolVersion) -> Result<Packet, DecodeError> {
    use PacketType as T;
    let packet = header.packet;
    Ok(match packet {
        T::Connect => Packet::Connect(connect::decode(body)?),
        T::ConnAck => Packet::ConnAck(connack::decode(body, version)?),
        T::Publish => Packet::Publish(publish::decode(header.flags, body, version)?),
        T::PubAck => Packet::PubAck(ack::decode(packet, body, version)?),
        T::PubRec => Packet::PubRec(ack::decode(packet, body, version)?),
        T::PubRel => Packet::PubRel(ack::decode(packet, body, version)?),
        T::PubComp => Packet::PubComp(ack::decode(packet, body, version)?),
        T::Subscribe => Packet::Subscribe(subscribe::decode_subscribe(body, version)?),
        T::SubAck => Packet::SubAck(subscribe::decode_suback(body, version)?),
        T::Unsubscribe => Packet::Unsubscribe(subscribe::decode_unsubscribe(body, version)?),
        T::UnsubAck => Packet::UnsubAck(subscribe::decode_unsuback(body, version)?),
        T::PingReq => {
            Reader::new(body, packet).finish()?;
            Packet::PingReq
        }
        T::PingResp => {
            Reader::new(body, packet).finish()?;
            Packet::PingResp
        }
        T::Disconnect => Packet::Disconnect(control::decode_disconnect(body, version)?),
        T::Auth if version.is_v5() => Packet::Auth(control::decode_auth(body)?),
        T::Auth => return Err(DecodeError::ReservedPacketType(15)),
    })
}

/// Decodes one packet from the front of `buf`, without any connection
/// state: any packet type of `version` is accepted, in either direction.
///
/// Returns `Ok(None)` until a whole packet is buffered, leaving `buf`
/// untouched; on success the packet's bytes are removed from `buf`. A
/// PUBLISH payload shares `buf`'s memory instead of being copied. After
/// an error the connection must be closed: `buf` is left in an
/// unspecified state.
///
/// A CONNECT is decoded in the version it names, whatever `version` is.
pub fn decode_packet(
    buf: &mut BytesMut,
    version: ProtocolVersion,
    max_packet_size: u32,
) -> Result<Option<Packet>, DecodeError> {
    match frame(buf, Some(version), max_packet_size)? {
        Some((header, body)) => decode_body(&header, body, version).map(Some),
        None => Ok(None),
    }
}
