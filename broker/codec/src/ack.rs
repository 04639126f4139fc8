//! PUBACK, PUBREC, PUBREL and PUBCOMP: the acknowledgements of the QoS 1
//! and QoS 2 flows, which share one shape. On MQTT 5.0 the reason code
//! and properties are optional on the wire (remaining length 2 or 3).

use std::num::NonZeroU16;

use bytes::{BufMut, Bytes, BytesMut};

use crate::properties::AckProperties;
use crate::wire::Reader;
use crate::{property, DecodeError, EncodeError, PacketType, ProtocolVersion, ReasonCode};

/// An acknowledgement of the QoS 1/2 flows; the [`Packet`](crate::Packet)
/// variant says which one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    /// Packet identifier of the PUBLISH (or PUBREC / PUBREL) acknowledged.
    pub packet_id: NonZeroU16,
    /// Outcome; always [`ReasonCode::Success`] on 3.x.
    pub reason: ReasonCode,
    /// MQTT 5.0 properties; empty on 3.x.
    pub properties: AckProperties,
}

impl Ack {
    /// A successful acknowledgement without properties.
    pub fn new(packet_id: NonZeroU16) -> Self {
        Self {
            packet_id,
            reason: ReasonCode::Success,
            properties: AckProperties::default(),
        }
    }
}

/// PUBACK: acknowledges a QoS 1 PUBLISH.
pub type PubAck = Ack;
/// PUBREC: first answer to a QoS 2 PUBLISH.
pub type PubRec = Ack;
/// PUBREL: releases a QoS 2 PUBLISH after PUBREC.
pub type PubRel = Ack;
/// PUBCOMP: completes a QoS 2 flow.
pub type PubComp = Ack;

/// Decodes the body of one of the four acknowledgements.
pub(crate) fn decode(packet: PacketType, body: Bytes, version: ProtocolVersion) -> Result<Ack, DecodeError> {
    let mut r = Reader::new(body, packet);
    let mut ack = Ack::new(r.packet_id()?);
    if version.is_v5() && !r.is_empty() {
        ack.reason = r.reason_code()?;
        if !r.is_empty() {
            ack.properties = property::decode(&mut r)?;
        }
    }
    r.finish()?;
    Ok(ack)
}

/// Bytes of an acknowledgement body, in its shortest form.
pub(crate) fn body_len(ack: &Ack, version: ProtocolVersion) -> usize {
    if !version.is_v5() {
        2
    } else if !ack.properties.is_empty() {
        3 + property::encoded_len(&ack.properties)
    } else if ack.reason != ReasonCode::Success {
        3
    } else {
        2
    }
}

/// Writes an acknowledgement body, in its shortest form.
pub(crate) fn encode(
    packet: PacketType,
    ack: &Ack,
    version: ProtocolVersion,
    buf: &mut BytesMut,
) -> Result<(), EncodeError> {
    buf.put_u16(ack.packet_id.get());
    if !version.is_v5() {
        return Ok(());
    }
    crate::encode::check_reason(ack.reason, packet)?;
    if !ack.properties.is_empty() {
        buf.put_u8(ack.reason.as_u8());
        property::encode(&ack.properties, buf)?;
    } else if ack.reason != ReasonCode::Success {
        buf.put_u8(ack.reason.as_u8());
    }
    Ok(())
}
