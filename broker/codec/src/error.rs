//! Decoding and encoding errors. Each decoding error names what was wrong
//! and maps to the MQTT 5.0 reason code a broker should answer with.

use crate::{PacketType, PropertyId, ProtocolVersion, ReasonCode};

/// Why a packet could not be decoded. Every variant maps to a reason code
/// through [`DecodeError::reason_code`]; MQTT 3.x brokers just close the
/// connection (or answer CONNECT with the matching CONNACK return code).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// A variable byte integer has a continuation bit on its 4th byte.
    #[error("{what} exceeds 4 bytes")]
    VarIntTooLong {
        /// Which integer: "remaining length", "property length", ...
        what: &'static str,
    },
    /// The fixed header announces more bytes than the maximum packet size.
    #[error("packet of {size} bytes exceeds maximum {max}")]
    PacketTooLarge {
        /// Size of the whole packet, fixed header included.
        size: usize,
        /// The maximum the decoder was given.
        max: u32,
    },
    /// Packet type 0, or 15 (AUTH) before MQTT 5.0.
    #[error("reserved packet type {0}")]
    ReservedPacketType(u8),
    /// The low nibble of the first byte is not what the packet type needs.
    #[error("invalid fixed header flags {flags:#06b} for {packet}")]
    InvalidFlags {
        /// The packet type.
        packet: PacketType,
        /// The flags received.
        flags: u8,
    },
    /// A packet that may not come now or from this side of the connection.
    #[error("unexpected {packet}: {why}")]
    UnexpectedPacket {
        /// The packet type received.
        packet: PacketType,
        /// Why it is not allowed.
        why: &'static str,
    },
    /// The remaining length ends in the middle of a field.
    #[error("{packet} ends inside {what}")]
    Truncated {
        /// The packet type.
        packet: PacketType,
        /// The field being read.
        what: &'static str,
    },
    /// Bytes are left after the last field of the packet.
    #[error("{packet} has {count} bytes after its last field")]
    TrailingBytes {
        /// The packet type.
        packet: PacketType,
        /// How many bytes are left.
        count: usize,
    },
    /// A string is not valid UTF-8.
    #[error("{what} in {packet} is not valid UTF-8")]
    InvalidUtf8 {
        /// The packet type.
        packet: PacketType,
        /// The field.
        what: &'static str,
    },
    /// A string contains U+0000, which MQTT forbids.
    #[error("{what} in {packet} contains U+0000")]
    NullCharacter {
        /// The packet type.
        packet: PacketType,
        /// The field.
        what: &'static str,
    },
    /// A field breaks the packet's encoding rules (reason code 0x81).
    #[error("malformed {packet}: {why}")]
    Malformed {
        /// The packet type.
        packet: PacketType,
        /// What is wrong.
        why: &'static str,
    },
    /// A well-formed field breaks a protocol rule (reason code 0x82).
    #[error("protocol error in {packet}: {why}")]
    Protocol {
        /// The packet type.
        packet: PacketType,
        /// What is wrong.
        why: &'static str,
    },
    /// A reason code byte that is not defined for this packet type.
    #[error("reason code {code:#04x} is not valid in {packet}")]
    InvalidReasonCode {
        /// The packet type.
        packet: PacketType,
        /// The byte received.
        code: u8,
    },
    /// A property identifier that MQTT 5.0 does not define.
    #[error("unknown property identifier {id:#04x} in {packet}")]
    UnknownProperty {
        /// The packet type.
        packet: PacketType,
        /// The identifier received.
        id: u32,
    },
    /// A property that this packet type may not carry.
    #[error("property {property} is not allowed in {packet}")]
    PropertyNotAllowed {
        /// The packet type.
        packet: PacketType,
        /// The property.
        property: PropertyId,
    },
    /// A single-valued property that appears twice.
    #[error("property {property} appears more than once in {packet}")]
    DuplicateProperty {
        /// The packet type.
        packet: PacketType,
        /// The property.
        property: PropertyId,
    },
    /// A property whose value is out of its range (a 0 where 0 is not
    /// allowed, a flag that is not 0 or 1, ...).
    #[error("property {property} in {packet} has invalid value {value}")]
    InvalidPropertyValue {
        /// The packet type.
        packet: PacketType,
        /// The property.
        property: PropertyId,
        /// The value received.
        value: u32,
    },
    /// CONNECT names a protocol or level this codec does not speak.
    #[error("unsupported protocol {name:?} level {level}")]
    UnsupportedProtocol {
        /// The protocol name, lossily decoded.
        name: String,
        /// The protocol level.
        level: u8,
    },
    /// CONNECT carries a client identifier the protocol version forbids.
    #[error("client identifier not valid: {why}")]
    ClientIdInvalid {
        /// What is wrong.
        why: &'static str,
    },
    /// A topic name is empty, has wildcards or a U+0000.
    #[error("invalid topic name {topic:?} in {packet}")]
    TopicNameInvalid {
        /// The packet type.
        packet: PacketType,
        /// The topic received.
        topic: String,
    },
    /// A topic filter breaks the wildcard or shared-subscription rules.
    #[error("invalid topic filter {filter:?} in {packet}")]
    TopicFilterInvalid {
        /// The packet type.
        packet: PacketType,
        /// The filter received.
        filter: String,
    },
}

impl DecodeError {
    /// The MQTT 5.0 reason code for this error.
    pub fn reason_code(&self) -> ReasonCode {
        match self {
            Self::PacketTooLarge { .. } => ReasonCode::PacketTooLarge,
            Self::UnexpectedPacket { .. }
            | Self::Protocol { .. }
            | Self::PropertyNotAllowed { .. }
            | Self::DuplicateProperty { .. } => ReasonCode::ProtocolError,
            Self::InvalidPropertyValue {
                property: PropertyId::TopicAlias,
                ..
            } => ReasonCode::TopicAliasInvalid,
            Self::InvalidPropertyValue { .. } => ReasonCode::ProtocolError,
            Self::UnsupportedProtocol { .. } => ReasonCode::UnsupportedProtocolVersion,
            Self::ClientIdInvalid { .. } => ReasonCode::ClientIdentifierNotValid,
            Self::TopicNameInvalid { .. } => ReasonCode::TopicNameInvalid,
            Self::TopicFilterInvalid { .. } => ReasonCode::TopicFilterInvalid,
            Self::VarIntTooLong { .. }
            | Self::ReservedPacketType(_)
            | Self::InvalidFlags { .. }
            | Self::Truncated { .. }
            | Self::TrailingBytes { .. }
            | Self::InvalidUtf8 { .. }
            | Self::NullCharacter { .. }
            | Self::Malformed { .. }
            | Self::InvalidReasonCode { .. }
            | Self::UnknownProperty { .. } => ReasonCode::MalformedPacket,
        }
    }
}

/// Why a packet could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The body is longer than a fixed header can announce.
    #[error("{packet} of {size} bytes exceeds the MQTT maximum remaining length")]
    PacketTooLarge {
        /// The packet type.
        packet: PacketType,
        /// The body size.
        size: usize,
    },
    /// The packet type does not exist in this protocol version.
    #[error("{packet} does not exist in {version}")]
    Unsupported {
        /// The packet type.
        packet: PacketType,
        /// The version asked for.
        version: ProtocolVersion,
    },
    /// A string or binary field is longer than its 16-bit length prefix.
    #[error("{what} of {len} bytes exceeds 65535")]
    FieldTooLong {
        /// The field.
        what: &'static str,
        /// Its length.
        len: usize,
    },
    /// A variable byte integer above 268,435,455.
    #[error("{what} {value} exceeds 268435455")]
    VarIntTooLarge {
        /// The field.
        what: &'static str,
        /// Its value.
        value: usize,
    },
    /// Fields that contradict each other or the packet type.
    #[error("cannot encode {packet}: {why}")]
    Invalid {
        /// The packet type.
        packet: PacketType,
        /// What is wrong.
        why: &'static str,
    },
}
