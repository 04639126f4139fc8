//! The MQTT 5.0 property machinery: identifiers, reading a property block
//! into one of the typed sets of [`crate::properties`], writing it back.
//!
//! Each typed set says, in its `apply`, which properties its packet allows
//! and how each is read; in its `visit`, what it writes. Everything else
//! (the length prefix, unknown identifiers, duplicates) lives here once.

use std::fmt;
use std::num::{NonZeroU16, NonZeroU32};

use bytes::{BufMut, BytesMut};

use crate::wire::{prefixed_len, put_binary, put_str, put_varint, varint_len, Reader};
use crate::{topic, DecodeError, EncodeError, PayloadFormat, QoS};

/// Declares [`PropertyId`] from one table of variant, identifier and name.
macro_rules! property_ids {
    ($($name:ident = $id:literal, $text:literal;)+) => {
        /// An MQTT 5.0 property identifier.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum PropertyId {
            $(#[doc = $text] $name = $id,)+
        }

        impl PropertyId {
            /// The property with this identifier, if MQTT 5.0 defines one.
            pub const fn from_u32(id: u32) -> Option<Self> {
                match id {
                    $($id => Some(Self::$name),)+
                    _ => None,
                }
            }

            /// The specification's name for the property.
            pub const fn name(self) -> &'static str {
                match self {
                    $(Self::$name => $text,)+
                }
            }
        }
    };
}

property_ids! {
    PayloadFormatIndicator = 0x01, "Payload Format Indicator";
    MessageExpiryInterval = 0x02, "Message Expiry Interval";
    ContentType = 0x03, "Content Type";
    ResponseTopic = 0x08, "Response Topic";
    CorrelationData = 0x09, "Correlation Data";
    SubscriptionIdentifier = 0x0B, "Subscription Identifier";
    SessionExpiryInterval = 0x11, "Session Expiry Interval";
    AssignedClientIdentifier = 0x12, "Assigned Client Identifier";
    ServerKeepAlive = 0x13, "Server Keep Alive";
    AuthenticationMethod = 0x15, "Authentication Method";
    AuthenticationData = 0x16, "Authentication Data";
    RequestProblemInformation = 0x17, "Request Problem Information";
    WillDelayInterval = 0x18, "Will Delay Interval";
    RequestResponseInformation = 0x19, "Request Response Information";
    ResponseInformation = 0x1A, "Response Information";
    ServerReference = 0x1C, "Server Reference";
    ReasonString = 0x1F, "Reason String";
    ReceiveMaximum = 0x21, "Receive Maximum";
    TopicAliasMaximum = 0x22, "Topic Alias Maximum";
    TopicAlias = 0x23, "Topic Alias";
    MaximumQoS = 0x24, "Maximum QoS";
    RetainAvailable = 0x25, "Retain Available";
    UserProperty = 0x26, "User Property";
    MaximumPacketSize = 0x27, "Maximum Packet Size";
    WildcardSubscriptionAvailable = 0x28, "Wildcard Subscription Available";
    SubscriptionIdentifierAvailable = 0x29, "Subscription Identifier Available";
    SharedSubscriptionAvailable = 0x2A, "Shared Subscription Available";
}

impl fmt::Display for PropertyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One property to write, borrowed from a typed set.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Prop<'a> {
    Byte(PropertyId, u8),
    U16(PropertyId, u16),
    U32(PropertyId, u32),
    VarInt(PropertyId, u32),
    Str(PropertyId, &'a str),
    Bin(PropertyId, &'a [u8]),
    Pair(&'a str, &'a str),
}

impl Prop<'_> {
    /// Bytes on the wire, identifier included.
    fn len(&self) -> usize {
        1 + match self {
            Self::Byte(..) => 1,
            Self::U16(..) => 2,
            Self::U32(..) => 4,
            Self::VarInt(_, v) => varint_len(*v as usize),
            Self::Str(_, s) => prefixed_len(s.len()),
            Self::Bin(_, b) => prefixed_len(b.len()),
            Self::Pair(k, v) => prefixed_len(k.len()) + prefixed_len(v.len()),
        }
    }

    fn put(&self, buf: &mut BytesMut) -> Result<(), EncodeError> {
        let id = match self {
            Self::Pair(..) => PropertyId::UserProperty,
            Self::Byte(id, _)
            | Self::U16(id, _)
            | Self::U32(id, _)
            | Self::VarInt(id, _)
            | Self::Str(id, _)
            | Self::Bin(id, _) => *id,
        };
        buf.put_u8(id as u8);
        match self {
            Self::Byte(_, v) => buf.put_u8(*v),
            Self::U16(_, v) => buf.put_u16(*v),
            Self::U32(_, v) => buf.put_u32(*v),
            Self::VarInt(id, v) => put_varint(buf, *v as usize, id.name())?,
            Self::Str(id, s) => put_str(buf, s, id.name())?,
            Self::Bin(id, b) => put_binary(buf, b, id.name())?,
            Self::Pair(k, v) => {
                put_str(buf, k, "user property name")?;
                put_str(buf, v, "user property value")?;
            }
        }
        Ok(())
    }
}

/// A typed set of the properties one packet type may carry.
pub(crate) trait PropertySet: Default {
    /// Reads the value of property `id` from `r` into the set, refusing a
    /// property this packet type does not allow.
    fn apply(&mut self, id: PropertyId, r: &mut Reader) -> Result<(), DecodeError>;

    /// Calls `f` with every property present, in wire order.
    fn visit(&self, f: &mut dyn FnMut(Prop<'_>));
}

/// Reads a property block (length prefix and properties) into a set.
pub(crate) fn decode<P: PropertySet>(r: &mut Reader) -> Result<P, DecodeError> {
    let len = r.varint("property length")?;
    let mut block = r.sub(len as usize, "properties")?;
    let mut props = P::default();
    while !block.is_empty() {
        let raw = block.varint("property identifier")?;
        let id = PropertyId::from_u32(raw).ok_or(DecodeError::UnknownProperty {
            packet: block.packet(),
            id: raw,
        })?;
        props.apply(id, &mut block)?;
    }
    Ok(props)
}

/// Bytes of the properties of a set, without the length prefix.
fn content_len<P: PropertySet>(props: &P) -> usize {
    let mut len = 0usize;
    props.visit(&mut |p| len = len.saturating_add(p.len()));
    len
}

/// Bytes of a property block, length prefix included.
pub(crate) fn encoded_len<P: PropertySet>(props: &P) -> usize {
    let len = content_len(props);
    varint_len(len).saturating_add(len)
}

/// Writes a property block, length prefix included.
pub(crate) fn encode<P: PropertySet>(props: &P, buf: &mut BytesMut) -> Result<(), EncodeError> {
    put_varint(buf, content_len(props), "property length")?;
    let mut result = Ok(());
    props.visit(&mut |p| {
        if result.is_ok() {
            result = p.put(buf);
        }
    });
    result
}

/// The error for a property the packet type does not allow.
pub(crate) fn not_allowed(id: PropertyId, r: &Reader) -> DecodeError {
    DecodeError::PropertyNotAllowed {
        packet: r.packet(),
        property: id,
    }
}

/// Stores a single-valued property read by `read`; a second occurrence is
/// a protocol error.
pub(crate) fn once<T>(
    slot: &mut Option<T>,
    id: PropertyId,
    r: &mut Reader,
    read: fn(&mut Reader, PropertyId) -> Result<T, DecodeError>,
) -> Result<(), DecodeError> {
    if slot.is_some() {
        return Err(DecodeError::DuplicateProperty {
            packet: r.packet(),
            property: id,
        });
    }
    *slot = Some(read(r, id)?);
    Ok(())
}

/// Appends one User Property (a name/value string pair; may repeat).
pub(crate) fn user_property(list: &mut Vec<(String, String)>, r: &mut Reader) -> Result<(), DecodeError> {
    let name = r.string("user property name")?;
    let value = r.string("user property value")?;
    list.push((name, value));
    Ok(())
}

/// Visits every User Property of a list.
pub(crate) fn visit_user_properties(list: &[(String, String)], f: &mut dyn FnMut(Prop<'_>)) {
    for (name, value) in list {
        f(Prop::Pair(name, value));
    }
}

fn invalid(r: &Reader, id: PropertyId, value: u32) -> DecodeError {
    DecodeError::InvalidPropertyValue {
        packet: r.packet(),
        property: id,
        value,
    }
}

/// A Four Byte Integer property.
pub(crate) fn u32_value(r: &mut Reader, id: PropertyId) -> Result<u32, DecodeError> {
    r.u32(id.name())
}

/// A Two Byte Integer property.
pub(crate) fn u16_value(r: &mut Reader, id: PropertyId) -> Result<u16, DecodeError> {
    r.u16(id.name())
}

/// A UTF-8 string property.
pub(crate) fn string_value(r: &mut Reader, id: PropertyId) -> Result<String, DecodeError> {
    r.string(id.name())
}

/// A Binary Data property.
pub(crate) fn binary_value(r: &mut Reader, id: PropertyId) -> Result<bytes::Bytes, DecodeError> {
    r.binary(id.name())
}

/// A Byte property that must be 0 or 1.
pub(crate) fn flag_value(r: &mut Reader, id: PropertyId) -> Result<bool, DecodeError> {
    match r.u8(id.name())? {
        0 => Ok(false),
        1 => Ok(true),
        other => Err(invalid(r, id, other.into())),
    }
}

/// A Two Byte Integer property where 0 is a protocol error (or, for Topic
/// Alias, "topic alias invalid").
pub(crate) fn nonzero_u16_value(r: &mut Reader, id: PropertyId) -> Result<NonZeroU16, DecodeError> {
    NonZeroU16::new(r.u16(id.name())?).ok_or_else(|| invalid(r, id, 0))
}

/// A Four Byte Integer property where 0 is a protocol error.
pub(crate) fn nonzero_u32_value(r: &mut Reader, id: PropertyId) -> Result<NonZeroU32, DecodeError> {
    NonZeroU32::new(r.u32(id.name())?).ok_or_else(|| invalid(r, id, 0))
}

/// The Payload Format Indicator.
pub(crate) fn payload_format_value(r: &mut Reader, id: PropertyId) -> Result<PayloadFormat, DecodeError> {
    match r.u8(id.name())? {
        0 => Ok(PayloadFormat::Unspecified),
        1 => Ok(PayloadFormat::Utf8),
        other => Err(invalid(r, id, other.into())),
    }
}

/// Maximum QoS, which is 0 or 1 (a server supporting QoS 2 omits it).
pub(crate) fn maximum_qos_value(r: &mut Reader, id: PropertyId) -> Result<QoS, DecodeError> {
    match r.u8(id.name())? {
        0 => Ok(QoS::AtMostOnce),
        1 => Ok(QoS::AtLeastOnce),
        other => Err(invalid(r, id, other.into())),
    }
}

/// A Subscription Identifier: a variable byte integer, 1 to 268,435,455.
pub(crate) fn subscription_id_value(r: &mut Reader, id: PropertyId) -> Result<u32, DecodeError> {
    match r.varint(id.name())? {
        0 => Err(invalid(r, id, 0)),
        value => Ok(value),
    }
}

/// A Response Topic, which must be a valid topic name.
pub(crate) fn response_topic_value(r: &mut Reader, id: PropertyId) -> Result<String, DecodeError> {
    let topic = r.string(id.name())?;
    match topic::validate_topic_name(&topic) {
        Ok(()) => Ok(topic),
        Err(_) => Err(DecodeError::Protocol {
            packet: r.packet(),
            why: "Response Topic is not a valid topic name",
        }),
    }
}
