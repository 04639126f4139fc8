//! DISCONNECT and AUTH. On MQTT 5.0 both may be empty on the wire (reason
//! Success, no properties); on 3.x DISCONNECT is always empty and AUTH does
//! not exist.

use bytes::{BufMut, Bytes, BytesMut};

use crate::properties::{AuthProperties, DisconnectProperties};
use crate::wire::Reader;
use crate::{property, DecodeError, EncodeError, PacketType, ProtocolVersion, ReasonCode};

/// A DISCONNECT packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disconnect {
    /// Why the connection ends; always Normal disconnection on 3.x.
    pub reason: ReasonCode,
    /// MQTT 5.0 properties; empty on 3.x.
    pub properties: DisconnectProperties,
}

impl Disconnect {
    /// A DISCONNECT with `reason` and no properties.
    pub fn new(reason: ReasonCode) -> Self {
        Self {
            reason,
            properties: DisconnectProperties::default(),
        }
    }
}

impl Default for Disconnect {
    fn default() -> Self {
        Self::new(ReasonCode::NORMAL_DISCONNECTION)
    }
}

/// An AUTH packet (MQTT 5.0 only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Auth {
    /// Success, Continue authentication or Re-authenticate.
    pub reason: ReasonCode,
    /// Authentication method and data.
    pub properties: AuthProperties,
}

/// Decodes a DISCONNECT body.
pub(crate) fn decode_disconnect(body: Bytes, version: ProtocolVersion) -> Result<Disconnect, DecodeError> {
    let mut r = Reader::new(body, PacketType::Disconnect);
    let mut disconnect = Disconnect::default();
    if version.is_v5() && !r.is_empty() {
        disconnect.reason = r.reason_code()?;
        if !r.is_empty() {
            disconnect.properties = property::decode(&mut r)?;
        }
    }
    r.finish()?;
    Ok(disconnect)
}

/// Decodes an AUTH body.
pub(crate) fn decode_auth(body: Bytes) -> Result<Auth, DecodeError> {
    let packet = PacketType::Auth;
    let mut r = Reader::new(body, packet);
    let mut auth = Auth {
        reason: ReasonCode::Success,
        properties: AuthProperties::default(),
    };
    if !r.is_empty() {
        auth.reason = r.reason_code()?;
        if !r.is_empty() {
            auth.properties = property::decode(&mut r)?;
        }
    }
    r.finish()?;
    let props = &auth.properties;
    if props.authentication_data.is_some() && props.authentication_method.is_none() {
        return Err(DecodeError::Protocol {
            packet,
            why: "Authentication Data without Authentication Method",
        });
    }
    Ok(auth)
}

/// Bytes of the body shared by DISCONNECT and AUTH on MQTT 5.0: nothing
/// for Success without properties, else the reason code and properties.
fn reason_body_len<P: property::PropertySet>(reason: ReasonCode, props: &P, empty: bool) -> usize {
    match (reason, empty) {
        (ReasonCode::Success, true) => 0,
        (_, true) => 1,
        (_, false) => 1 + property::encoded_len(props),
    }
}

fn encode_reason_body<P: property::PropertySet>(
    reason: ReasonCode,
    props: &P,
    empty: bool,
    buf: &mut BytesMut,
) -> Result<(), EncodeError> {
    match (reason, empty) {
        (ReasonCode::Success, true) => Ok(()),
        (_, true) => {
            buf.put_u8(reason.as_u8());
            Ok(())
        }
        (_, false) => {
            buf.put_u8(reason.as_u8());
            property::encode(props, buf)
        }
    }
}

/// Bytes of a DISCONNECT body.
pub(crate) fn disconnect_len(d: &Disconnect, version: ProtocolVersion) -> usize {
    if version.is_v5() {
        reason_body_len(d.reason, &d.properties, d.properties.is_empty())
    } else {
        0
    }
}

/// Writes a DISCONNECT body.
pub(crate) fn encode_disconnect(
    d: &Disconnect,
    version: ProtocolVersion,
    buf: &mut BytesMut,
) -> Result<(), EncodeError> {
    if !version.is_v5() {
        return Ok(());
    }
    crate::encode::check_reason(d.reason, PacketType::Disconnect)?;
    encode_reason_body(d.reason, &d.properties, d.properties.is_empty(), buf)
}

/// Bytes of an AUTH body.
pub(crate) fn auth_len(a: &Auth) -> usize {
    reason_body_len(a.reason, &a.properties, a.properties.is_empty())
}

/// Writes an AUTH body.
pub(crate) fn encode_auth(a: &Auth, buf: &mut BytesMut) -> Result<(), EncodeError> {
    crate::encode::check_reason(a.reason, PacketType::Auth)?;
    encode_reason_body(a.reason, &a.properties, a.properties.is_empty(), buf)
}
