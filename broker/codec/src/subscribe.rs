//! SUBSCRIBE, SUBACK, UNSUBSCRIBE and UNSUBACK: managing subscriptions.
//!
//! The decoder checks every topic filter (wildcards, shared-subscription
//! syntax), so the broker only sees filters it can put in its trie.

use std::num::NonZeroU16;

use bytes::{BufMut, Bytes, BytesMut};

use crate::properties::{AckProperties, SubscribeProperties, UnsubscribeProperties};
use crate::wire::{prefixed_len, put_str, Reader};
use crate::{property, topic, DecodeError, EncodeError, PacketType, ProtocolVersion, QoS, ReasonCode};

/// A SUBSCRIBE packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    /// Packet identifier, echoed by the SUBACK.
    pub packet_id: NonZeroU16,
    /// Topic filters with their options, at least one.
    pub filters: Vec<(String, SubscriptionOptions)>,
    /// MQTT 5.0 properties; empty on 3.x.
    pub properties: SubscribeProperties,
}

/// The options byte of one SUBSCRIBE filter. On 3.x only `qos` exists;
/// the other fields keep their defaults.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct SubscriptionOptions {
    /// Highest QoS the subscriber accepts.
    pub qos: QoS,
    /// Do not deliver the subscriber's own publishes back to it.
    pub no_local: bool,
    /// Keep the RETAIN flag of forwarded messages as published.
    pub retain_as_published: bool,
    /// When to send retained messages.
    pub retain_handling: RetainHandling,
}

impl SubscriptionOptions {
    /// Options with `qos` and every MQTT 5.0 option at its default.
    pub fn new(qos: QoS) -> Self {
        Self { qos, ..Self::default() }
    }
}

/// When a subscription receives retained messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum RetainHandling {
    /// At every subscribe.
    #[default]
    SendAtSubscribe = 0,
    /// Only if the subscription did not exist yet.
    SendIfNew = 1,
    /// Never.
    DoNotSend = 2,
}

/// A SUBACK packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubAck {
    /// Packet identifier of the SUBSCRIBE.
    pub packet_id: NonZeroU16,
    /// One code per filter: the granted QoS or a failure. 3.x knows only
    /// failure 0x80, which decodes as [`ReasonCode::UnspecifiedError`].
    pub return_codes: Vec<ReasonCode>,
    /// MQTT 5.0 properties; empty on 3.x.
    pub properties: AckProperties,
}

/// An UNSUBSCRIBE packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsubscribe {
    /// Packet identifier, echoed by the UNSUBACK.
    pub packet_id: NonZeroU16,
    /// Topic filters, at least one.
    pub filters: Vec<String>,
    /// MQTT 5.0 properties; empty on 3.x.
    pub properties: UnsubscribeProperties,
}

/// An UNSUBACK packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsubAck {
    /// Packet identifier of the UNSUBSCRIBE.
    pub packet_id: NonZeroU16,
    /// One code per filter on MQTT 5.0; always empty on 3.x.
    pub reason_codes: Vec<ReasonCode>,
    /// MQTT 5.0 properties; empty on 3.x.
    pub properties: AckProperties,
}

const NO_LOCAL: u8 = 0x04;
const RETAIN_AS_PUBLISHED: u8 = 0x08;
const RETAIN_HANDLING_SHIFT: u8 = 4;

fn decode_options(byte: u8, version: ProtocolVersion) -> Result<SubscriptionOptions, DecodeError> {
    let packet = PacketType::Subscribe;
    let reserved = if version.is_v5() { 0xC0 } else { 0xFC };
    if byte & reserved != 0 {
        return Err(DecodeError::Malformed {
            packet,
            why: "reserved subscription option bits are set",
        });
    }
    let qos = QoS::try_from(byte & 0x03).map_err(|_| DecodeError::Protocol {
        packet,
        why: "subscription QoS 3",
    })?;
    let retain_handling = match (byte >> RETAIN_HANDLING_SHIFT) & 0x03 {
        0 => RetainHandling::SendAtSubscribe,
        1 => RetainHandling::SendIfNew,
        2 => RetainHandling::DoNotSend,
        _ => {
            return Err(DecodeError::Protocol {
                packet,
                why: "retain handling 3",
            })
        }
    };
    Ok(SubscriptionOptions {
        qos,
        no_local: byte & NO_LOCAL != 0,
        retain_as_published: byte & RETAIN_AS_PUBLISHED != 0,
        retain_handling,
    })
}

fn encode_options(o: &SubscriptionOptions, version: ProtocolVersion) -> u8 {
    let mut byte = o.qos as u8;
    if version.is_v5() {
        byte |= (o.retain_handling as u8) << RETAIN_HANDLING_SHIFT;
        if o.no_local {
            byte |= NO_LOCAL;
        }
        if o.retain_as_published {
            byte |= RETAIN_AS_PUBLISHED;
        }
    }
    byte
}

fn read_filter(r: &mut Reader) -> Result<String, DecodeError> {
    let filter = r.string("topic filter")?;
    match topic::validate_topic_filter(&filter) {
        Ok(()) => Ok(filter),
        Err(_) => Err(DecodeError::TopicFilterInvalid {
            packet: r.packet(),
            filter,
        }),
    }
}

fn no_filters(packet: PacketType) -> DecodeError {
    DecodeError::Protocol {
        packet,
        why: "no topic filter",
    }
}

/// Decodes a SUBSCRIBE body.
pub(crate) fn decode_subscribe(body: Bytes, version: ProtocolVersion) -> Result<Subscribe, DecodeError> {
    let packet = PacketType::Subscribe;
    let mut r = Reader::new(body, packet);
    let packet_id = r.packet_id()?;
    let properties = if version.is_v5() {
        property::decode(&mut r)?
    } else {
        SubscribeProperties::default()
    };
    let mut filters = Vec::new();
    while !r.is_empty() {
        let filter = read_filter(&mut r)?;
        let options = decode_options(r.u8("subscription options")?, version)?;
        if options.no_local && topic::parse_shared(&filter).is_some() {
            return Err(DecodeError::Protocol {
                packet,
                why: "No Local set on a shared subscription",
            });
        }
        filters.push((filter, options));
    }
    if filters.is_empty() {
        return Err(no_filters(packet));
    }
    Ok(Subscribe {
        packet_id,
        filters,
        properties,
    })
}

/// Decodes a SUBACK body.
pub(crate) fn decode_suback(body: Bytes, version: ProtocolVersion) -> Result<SubAck, DecodeError> {
    let packet = PacketType::SubAck;
    let mut r = Reader::new(body, packet);
    let packet_id = r.packet_id()?;
    let properties = if version.is_v5() {
        property::decode(&mut r)?
    } else {
        AckProperties::default()
    };
    let mut return_codes = Vec::with_capacity(r.remaining());
    while !r.is_empty() {
        let code = if version.is_v5() {
            r.reason_code()?
        } else {
            let byte = r.u8("return code")?;
            ReasonCode::from_v3_suback(byte).ok_or(DecodeError::InvalidReasonCode { packet, code: byte })?
        };
        return_codes.push(code);
    }
    Ok(SubAck {
        packet_id,
        return_codes,
        properties,
    })
}

/// Decodes an UNSUBSCRIBE body.
pub(crate) fn decode_unsubscribe(body: Bytes, version: ProtocolVersion) -> Result<Unsubscribe, DecodeError> {
    let packet = PacketType::Unsubscribe;
    let mut r = Reader::new(body, packet);
    let packet_id = r.packet_id()?;
    let properties = if version.is_v5() {
        property::decode(&mut r)?
    } else {
        UnsubscribeProperties::default()
    };
    let mut filters = Vec::new();
    while !r.is_empty() {
        filters.push(read_filter(&mut r)?);
    }
    if filters.is_empty() {
        return Err(no_filters(packet));
    }
    Ok(Unsubscribe {
        packet_id,
        filters,
        properties,
    })
}

/// Decodes an UNSUBACK body.
pub(crate) fn decode_unsuback(body: Bytes, version: ProtocolVersion) -> Result<UnsubAck, DecodeError> {
    let mut r = Reader::new(body, PacketType::UnsubAck);
    let packet_id = r.packet_id()?;
    let mut ack = UnsubAck {
        packet_id,
        reason_codes: Vec::new(),
        properties: AckProperties::default(),
    };
    if version.is_v5() {
        ack.properties = property::decode(&mut r)?;
        ack.reason_codes.reserve(r.remaining());
        while !r.is_empty() {
            ack.reason_codes.push(r.reason_code()?);
        }
    }
    r.finish()?;
    Ok(ack)
}

fn props_len<P: property::PropertySet>(props: &P, version: ProtocolVersion) -> usize {
    if version.is_v5() {
        property::encoded_len(props)
    } else {
        0
    }
}

fn put_props<P: property::PropertySet>(
    props: &P,
    version: ProtocolVersion,
    buf: &mut BytesMut,
) -> Result<(), EncodeError> {
    if version.is_v5() {
        property::encode(props, buf)
    } else {
        Ok(())
    }
}

/// Bytes of a SUBSCRIBE body.
pub(crate) fn subscribe_len(s: &Subscribe, version: ProtocolVersion) -> usize {
    let filters: usize = s.filters.iter().map(|(f, _)| prefixed_len(f.len()) + 1).sum();
    2 + props_len(&s.properties, version) + filters
}

/// Writes a SUBSCRIBE body.
pub(crate) fn encode_subscribe(s: &Subscribe, version: ProtocolVersion, buf: &mut BytesMut) -> Result<(), EncodeError> {
    if s.filters.is_empty() {
        return Err(EncodeError::Invalid {
            packet: PacketType::Subscribe,
            why: "no topic filter",
        });
    }
    buf.put_u16(s.packet_id.get());
    put_props(&s.properties, version, buf)?;
    for (filter, options) in &s.filters {
        put_str(buf, filter, "topic filter")?;
        buf.put_u8(encode_options(options, version));
    }
    Ok(())
}

/// Bytes of a SUBACK body.
pub(crate) fn suback_len(s: &SubAck, version: ProtocolVersion) -> usize {
    2 + props_len(&s.properties, version) + s.return_codes.len()
}

/// Writes a SUBACK body.
pub(crate) fn encode_suback(s: &SubAck, version: ProtocolVersion, buf: &mut BytesMut) -> Result<(), EncodeError> {
    buf.put_u16(s.packet_id.get());
    put_props(&s.properties, version, buf)?;
    for code in &s.return_codes {
        if version.is_v5() {
            crate::encode::check_reason(*code, PacketType::SubAck)?;
            buf.put_u8(code.as_u8());
        } else {
            buf.put_u8(code.v3_suback_code());
        }
    }
    Ok(())
}

/// Bytes of an UNSUBSCRIBE body.
pub(crate) fn unsubscribe_len(u: &Unsubscribe, version: ProtocolVersion) -> usize {
    let filters: usize = u.filters.iter().map(|f| prefixed_len(f.len())).sum();
    2 + props_len(&u.properties, version) + filters
}

/// Writes an UNSUBSCRIBE body.
pub(crate) fn encode_unsubscribe(
    u: &Unsubscribe,
    version: ProtocolVersion,
    buf: &mut BytesMut,
) -> Result<(), EncodeError> {
    if u.filters.is_empty() {
        return Err(EncodeError::Invalid {
            packet: PacketType::Unsubscribe,
            why: "no topic filter",
        });
    }
    buf.put_u16(u.packet_id.get());
    put_props(&u.properties, version, buf)?;
    for filter in &u.filters {
        put_str(buf, filter, "topic filter")?;
    }
    Ok(())
}

/// Bytes of an UNSUBACK body.
pub(crate) fn unsuback_len(u: &UnsubAck, version: ProtocolVersion) -> usize {
    if version.is_v5() {
        2 + property::encoded_len(&u.properties) + u.reason_codes.len()
    } else {
        2
    }
}

/// Writes an UNSUBACK body; 3.x has neither properties nor reason codes.
pub(crate) fn encode_unsuback(u: &UnsubAck, version: ProtocolVersion, buf: &mut BytesMut) -> Result<(), EncodeError> {
    buf.put_u16(u.packet_id.get());
    if version.is_v5() {
        property::encode(&u.properties, buf)?;
        for code in &u.reason_codes {
            crate::encode::check_reason(*code, PacketType::UnsubAck)?;
            buf.put_u8(code.as_u8());
        }
    }
    Ok(())
}
