//! CONNECT: the first packet of every connection, which also fixes the
//! protocol version for the rest of it.

use bytes::{BufMut, Bytes, BytesMut};

use crate::properties::{ConnectProperties, WillProperties};
use crate::wire::{prefixed_len, put_binary, put_str, Reader};
use crate::{property, topic, ByteStr, DecodeError, EncodeError, PacketType, ProtocolVersion, QoS};

/// A CONNECT packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    /// Protocol version, from the protocol name and level.
    pub protocol: ProtocolVersion,
    /// Clean Session (3.x) / Clean Start (5.0).
    pub clean_start: bool,
    /// Keep-alive in seconds; 0 turns it off.
    pub keep_alive: u16,
    /// Client identifier; may be empty (the server then assigns one) on
    /// 3.1.1 with a clean session and on 5.0.
    pub client_id: String,
    /// Message the server publishes when the connection ends abnormally.
    pub will: Option<LastWill>,
    /// User name.
    pub username: Option<String>,
    /// Password: binary data.
    pub password: Option<Bytes>,
    /// MQTT 5.0 properties; empty on 3.x.
    pub properties: ConnectProperties,
}

impl Connect {
    /// A clean CONNECT with a 60 s keep-alive and nothing else.
    pub fn new(protocol: ProtocolVersion, client_id: impl Into<String>) -> Self {
        Self {
            protocol,
            clean_start: true,
            keep_alive: 60,
            client_id: client_id.into(),
            will: None,
            username: None,
            password: None,
            properties: ConnectProperties::default(),
        }
    }
}

/// The will message of a CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastWill {
    /// Topic the will is published to (a valid topic name).
    pub topic: ByteStr,
    /// Message body.
    pub payload: Bytes,
    /// QoS of the will publish.
    pub qos: QoS,
    /// Whether the will is retained.
    pub retain: bool,
    /// MQTT 5.0 will properties; empty on 3.x.
    pub properties: WillProperties,
}

const RESERVED: u8 = 0x01;
const CLEAN_START: u8 = 0x02;
const WILL: u8 = 0x04;
const WILL_QOS_SHIFT: u8 = 3;
const WILL_RETAIN: u8 = 0x20;
const PASSWORD: u8 = 0x40;
const USERNAME: u8 = 0x80;

fn malformed(why: &'static str) -> DecodeError {
    DecodeError::Malformed {
        packet: PacketType::Connect,
        why,
    }
}

/// Reads the protocol name and level at the start of a CONNECT body.
pub(crate) fn read_protocol(r: &mut Reader) -> Result<ProtocolVersion, DecodeError> {
    let name = r.binary("protocol name")?;
    let level = r.u8("protocol level")?;
    ProtocolVersion::from_name_and_level(&name, level).ok_or_else(|| DecodeError::UnsupportedProtocol {
        name: String::from_utf8_lossy(&name).into_owned(),
        level,
    })
}

/// The connect flags byte, checked against the version's rules.
struct Flags(u8);

impl Flags {
    fn parse(byte: u8, protocol: ProtocolVersion) -> Result<Self, DecodeError> {
        let flags = Self(byte);
        if byte & RESERVED != 0 {
            return Err(malformed("reserved connect flag is set"));
        }
        if flags.will_qos() == 3 {
            return Err(malformed("will QoS 3"));
        }
        if !flags.has(WILL) && (flags.will_qos() != 0 || flags.has(WILL_RETAIN)) {
            return Err(malformed("will QoS or retain set without the will flag"));
        }
        if !protocol.is_v5() && flags.has(PASSWORD) && !flags.has(USERNAME) {
            return Err(malformed("password flag set without the user name flag"));
        }
        Ok(flags)
    }

    fn has(&self, bit: u8) -> bool {
        self.0 & bit != 0
    }

    fn will_qos(&self) -> u8 {
        (self.0 >> WILL_QOS_SHIFT) & 0x03
    }
}

/// Decodes a CONNECT body.
pub(crate) fn decode(body: Bytes) -> Result<Connect, DecodeError> {
    let mut r = Reader::new(body, PacketType::Connect);
    let protocol = read_protocol(&mut r)?;
    let flags = Flags::parse(r.u8("connect flags")?, protocol)?;
    let keep_alive = r.u16("keep alive")?;
    let properties: ConnectProperties = if protocol.is_v5() {
        property::decode(&mut r)?
    } else {
        ConnectProperties::default()
    };
    if properties.authentication_data.is_some() && properties.authentication_method.is_none() {
        return Err(DecodeError::Protocol {
            packet: PacketType::Connect,
            why: "Authentication Data without Authentication Method",
        });
    }
    let client_id = r.string("client identifier")?;
    check_client_id(&client_id, protocol, flags.has(CLEAN_START))?;
    let will = if flags.has(WILL) {
        Some(decode_will(&mut r, protocol, &flags)?)
    } else {
        None
    };
    let username = flags.has(USERNAME).then(|| r.string("user name")).transpose()?;
    let password = flags.has(PASSWORD).then(|| r.binary("password")).transpose()?;
    r.finish()?;
    Ok(Connect {
        protocol,
        clean_start: flags.has(CLEAN_START),
        keep_alive,
        client_id,
        will,
        username,
        password,
        properties,
    })
}

fn check_client_id(id: &str, protocol: ProtocolVersion, clean: bool) -> Result<(), DecodeError> {
    match protocol {
        ProtocolVersion::V31 if id.is_empty() => Err(DecodeError::ClientIdInvalid {
            why: "MQTT 3.1 requires a client identifier",
        }),
        ProtocolVersion::V311 if id.is_empty() && !clean => Err(DecodeError::ClientIdInvalid {
            why: "an empty client identifier needs a clean session",
        }),
        _ => Ok(()),
    }
}

fn decode_will(r: &mut Reader, protocol: ProtocolVersion, flags: &Flags) -> Result<LastWill, DecodeError> {
    let properties = if protocol.is_v5() {
        property::decode(r)?
    } else {
        WillProperties::default()
    };
    let topic = r.byte_str("will topic")?;
    if !topic::is_valid_name(topic.as_bytes()) {
        return Err(DecodeError::TopicNameInvalid {
            packet: PacketType::Connect,
            topic: topic.to_string(),
        });
    }
    let payload = r.binary("will payload")?;
    let qos = QoS::try_from(flags.will_qos()).map_err(|_| malformed("will QoS 3"))?;
    Ok(LastWill {
        topic,
        payload,
        qos,
        retain: flags.has(WILL_RETAIN),
        properties,
    })
}

fn encode_flags(c: &Connect) -> u8 {
    let mut flags = 0;
    if c.clean_start {
        flags |= CLEAN_START;
    }
    if let Some(will) = &c.will {
        flags |= WILL | ((will.qos as u8) << WILL_QOS_SHIFT);
        if will.retain {
            flags |= WILL_RETAIN;
        }
    }
    if c.username.is_some() {
        flags |= USERNAME;
    }
    if c.password.is_some() {
        flags |= PASSWORD;
    }
    flags
}

/// Bytes of a CONNECT body.
pub(crate) fn body_len(c: &Connect) -> usize {
    let v5 = c.protocol.is_v5();
    let mut len = prefixed_len(c.protocol.protocol_name().len()) + 1 + 1 + 2;
    if v5 {
        len += property::encoded_len(&c.properties);
    }
    len += prefixed_len(c.client_id.len());
    if let Some(will) = &c.will {
        if v5 {
            len += property::encoded_len(&will.properties);
        }
        len += prefixed_len(will.topic.len()) + prefixed_len(will.payload.len());
    }
    len += c.username.as_ref().map_or(0, |u| prefixed_len(u.len()));
    len + c.password.as_ref().map_or(0, |p| prefixed_len(p.len()))
}

/// Writes a CONNECT body in the version it names.
pub(crate) fn encode(c: &Connect, buf: &mut BytesMut) -> Result<(), EncodeError> {
    let v5 = c.protocol.is_v5();
    if !v5 && c.password.is_some() && c.username.is_none() {
        return Err(EncodeError::Invalid {
            packet: PacketType::Connect,
            why: "MQTT 3.x has no password without a user name",
        });
    }
    put_str(buf, c.protocol.protocol_name(), "protocol name")?;
    buf.put_u8(c.protocol.level());
    buf.put_u8(encode_flags(c));
    buf.put_u16(c.keep_alive);
    if v5 {
        property::encode(&c.properties, buf)?;
    }
    put_str(buf, &c.client_id, "client identifier")?;
    if let Some(will) = &c.will {
        if v5 {
            property::encode(&will.properties, buf)?;
        }
        put_binary(buf, will.topic.as_bytes(), "will topic")?;
        put_binary(buf, &will.payload, "will payload")?;
    }
    if let Some(username) = &c.username {
        put_str(buf, username, "user name")?;
    }
    if let Some(password) = &c.password {
        put_binary(buf, password, "password")?;
    }
    Ok(())
}

/// The protocol version a CONNECT body names, from its first bytes only;
/// `None` when they are incomplete or name no supported version.
pub(crate) fn peek_version(body: &[u8]) -> Option<ProtocolVersion> {
    let (len, rest) = body.split_first_chunk::<2>()?;
    let len = usize::from(u16::from_be_bytes(*len));
    let name = rest.get(..len)?;
    let level = *rest.get(len)?;
    ProtocolVersion::from_name_and_level(name, level)
}

/// Fails as soon as the first bytes of a CONNECT body (possibly
/// incomplete) show an unsupported protocol name or level.
pub(crate) fn check_protocol_prefix(body: &[u8]) -> Result<(), DecodeError> {
    let Some((len, rest)) = body.split_first_chunk::<2>() else {
        return Ok(());
    };
    let len = usize::from(u16::from_be_bytes(*len));
    let (Some(name), Some(&level)) = (rest.get(..len), rest.get(len)) else {
        return Ok(());
    };
    match ProtocolVersion::from_name_and_level(name, level) {
        Some(_) => Ok(()),
        None => Err(DecodeError::UnsupportedProtocol {
            name: String::from_utf8_lossy(name).into_owned(),
            level,
        }),
    }
}
