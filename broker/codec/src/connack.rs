//! CONNACK: the server's answer to CONNECT. MQTT 3.x carries one of six
//! return codes, mapped to and from [`ReasonCode`]; MQTT 5.0 carries a
//! reason code and properties.

use bytes::{BufMut, Bytes, BytesMut};

use crate::properties::ConnAckProperties;
use crate::wire::Reader;
use crate::{property, DecodeError, EncodeError, PacketType, ProtocolVersion, ReasonCode};

/// A CONNACK packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnAck {
    /// Whether the server resumed a stored session (always false on 3.1,
    /// which has no such flag).
    pub session_present: bool,
    /// Outcome. On 3.x it is written as
    /// [`ReasonCode::v3_connack_code`] and read back through
    /// [`ReasonCode::from_v3_connack`].
    pub reason: ReasonCode,
    /// MQTT 5.0 properties; empty on 3.x.
    pub properties: ConnAckProperties,
}

impl ConnAck {
    /// A CONNACK with `reason`, no session and no properties.
    pub fn new(reason: ReasonCode) -> Self {
        Self {
            session_present: false,
            reason,
            properties: ConnAckProperties::default(),
        }
    }
}

const SESSION_PRESENT: u8 = 0x01;

/// Decodes a CONNACK body.
pub(crate) fn decode(body: Bytes, version: ProtocolVersion) -> Result<ConnAck, DecodeError> {
    let packet = PacketType::ConnAck;
    let mut r = Reader::new(body, packet);
    let flags = r.u8("acknowledge flags")?;
    // MQTT 3.1 leaves the whole byte unused; later versions reserve bits 1-7.
    let session_present = version != ProtocolVersion::V31 && flags & SESSION_PRESENT != 0;
    if version != ProtocolVersion::V31 && flags & !SESSION_PRESENT != 0 {
        return Err(DecodeError::Malformed {
            packet,
            why: "reserved acknowledge flags are set",
        });
    }
    let code = r.u8("reason code")?;
    let reason = if version.is_v5() {
        ReasonCode::from_u8(code).filter(|c| c.is_valid_for(packet))
    } else {
        ReasonCode::from_v3_connack(code)
    }
    .ok_or(DecodeError::InvalidReasonCode { packet, code })?;
    let properties: ConnAckProperties = if version.is_v5() {
        property::decode(&mut r)?
    } else {
        ConnAckProperties::default()
    };
    if properties.authentication_data.is_some() && properties.authentication_method.is_none() {
        return Err(DecodeError::Protocol {
            packet,
            why: "Authentication Data without Authentication Method",
        });
    }
    r.finish()?;
    Ok(ConnAck {
        session_present,
        reason,
        properties,
    })
}

/// Bytes of a CONNACK body.
pub(crate) fn body_len(c: &ConnAck, version: ProtocolVersion) -> usize {
    if version.is_v5() {
        2 + property::encoded_len(&c.properties)
    } else {
        2
    }
}

/// Writes a CONNACK body.
pub(crate) fn encode(c: &ConnAck, version: ProtocolVersion, buf: &mut BytesMut) -> Result<(), EncodeError> {
    let flags = match version {
        ProtocolVersion::V31 => 0,
        _ => u8::from(c.session_present),
    };
    buf.put_u8(flags);
    if version.is_v5() {
        crate::encode::check_reason(c.reason, PacketType::ConnAck)?;
        buf.put_u8(c.reason.as_u8());
        property::encode(&c.properties, buf)
    } else {
        buf.put_u8(c.reason.v3_connack_code());
        Ok(())
    }
}
