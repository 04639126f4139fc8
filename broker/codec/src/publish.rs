//! PUBLISH: an application message. The topic and payload are slices of
//! the received buffer, so fanning a message out copies neither.

use std::num::NonZeroU16;

use bytes::{BufMut, Bytes, BytesMut};

use crate::properties::PublishProperties;
use crate::wire::{prefixed_len, put_binary, Reader};
use crate::{property, topic, ByteStr, DecodeError, EncodeError, PacketType, ProtocolVersion, QoS};

/// A PUBLISH packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    /// Redelivery of an earlier attempt (QoS 1 and 2 only).
    pub dup: bool,
    /// Delivery guarantee.
    pub qos: QoS,
    /// Whether the server keeps the message for future subscribers.
    pub retain: bool,
    /// Topic name. Empty only on MQTT 5.0 with a Topic Alias property,
    /// which the receiver resolves.
    pub topic: ByteStr,
    /// Packet identifier: `Some` exactly when QoS is 1 or 2.
    pub packet_id: Option<NonZeroU16>,
    /// Message body.
    pub payload: Bytes,
    /// MQTT 5.0 properties; empty on 3.x.
    pub properties: PublishProperties,
}

impl Publish {
    /// A QoS 0 message without properties.
    pub fn new(topic: impl Into<ByteStr>, payload: impl Into<Bytes>) -> Self {
        Self {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: false,
            topic: topic.into(),
            packet_id: None,
            payload: payload.into(),
            properties: PublishProperties::default(),
        }
    }
}

const DUP: u8 = 0x08;
const RETAIN: u8 = 0x01;
const QOS_SHIFT: u8 = 1;

/// Checks the PUBLISH flags of a fixed header: QoS 3 and DUP on QoS 0 are
/// malformed.
pub(crate) fn check_flags(flags: u8) -> Result<QoS, DecodeError> {
    let malformed = |why| DecodeError::Malformed {
        packet: PacketType::Publish,
        why,
    };
    let qos = QoS::try_from((flags >> QOS_SHIFT) & 0x03).map_err(|_| malformed("QoS 3"))?;
    if qos == QoS::AtMostOnce && flags & DUP != 0 {
        return Err(malformed("DUP set on a QoS 0 message"));
    }
    Ok(qos)
}

/// Decodes a PUBLISH body; `flags` is the low nibble of the first byte.
pub(crate) fn decode(flags: u8, body: Bytes, version: ProtocolVersion) -> Result<Publish, DecodeError> {
    let packet = PacketType::Publish;
    let qos = check_flags(flags)?;
    let mut r = Reader::new(body, packet);
    let topic = r.byte_str("topic name")?;
    let packet_id = if qos == QoS::AtMostOnce {
        None
    } else {
        Some(r.packet_id()?)
    };
    let properties: PublishProperties = if version.is_v5() {
        property::decode(&mut r)?
    } else {
        PublishProperties::default()
    };
    let aliased = topic.is_empty() && properties.topic_alias.is_some();
    if !aliased && !topic::is_valid_name(topic.as_bytes()) {
        return Err(DecodeError::TopicNameInvalid {
            packet,
            topic: topic.to_string(),
        });
    }
    Ok(Publish {
        dup: flags & DUP != 0,
        qos,
        retain: flags & RETAIN != 0,
        topic,
        packet_id,
        payload: r.rest(),
        properties,
    })
}

/// The low nibble of the first byte.
pub(crate) fn flags(p: &Publish) -> u8 {
    let mut flags = (p.qos as u8) << QOS_SHIFT;
    if p.dup {
        flags |= DUP;
    }
    if p.retain {
        flags |= RETAIN;
    }
    flags
}

/// Bytes of a PUBLISH body.
pub(crate) fn body_len(p: &Publish, version: ProtocolVersion) -> usize {
    let mut len = prefixed_len(p.topic.len()) + p.payload.len();
    if p.packet_id.is_some() {
        len += 2;
    }
    if version.is_v5() {
        len += property::encoded_len(&p.properties);
    }
    len
}

/// Writes a PUBLISH body.
pub(crate) fn encode(p: &Publish, version: ProtocolVersion, buf: &mut BytesMut) -> Result<(), EncodeError> {
    let invalid = |why| EncodeError::Invalid {
        packet: PacketType::Publish,
        why,
    };
    if (p.qos == QoS::AtMostOnce) != p.packet_id.is_none() {
        return Err(invalid("packet identifier must be present exactly when QoS > 0"));
    }
    if p.dup && p.qos == QoS::AtMostOnce {
        return Err(invalid("DUP set on a QoS 0 message"));
    }
    put_binary(buf, p.topic.as_bytes(), "topic name")?;
    if let Some(id) = p.packet_id {
        buf.put_u16(id.get());
    }
    if version.is_v5() {
        property::encode(&p.properties, buf)?;
    }
    buf.put_slice(&p.payload);
    Ok(())
}
