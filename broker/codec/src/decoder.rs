//! [`Decoder`]: decoding with the state of one connection. It knows which
//! side it is on, so it refuses packets the peer may not send, and it
//! learns the protocol version from CONNECT.

use bytes::BytesMut;

use crate::decode::{check_first_byte, decode_body, frame};
use crate::{connect, DecodeError, Packet, PacketType, ProtocolVersion};

/// Which side of the connection the decoder reads for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    /// A broker reading a client's packets.
    Server,
    /// A client reading a broker's packets.
    Client,
}

/// Decodes the packets of one connection.
///
/// A server-side decoder ([`Decoder::new`]) accepts only a CONNECT first,
/// then the packets a client may send, in the version the CONNECT named. A
/// client-side decoder ([`Decoder::with_version`]) accepts the packets a
/// server may send. Either way, after an error the connection must be
/// closed.
#[derive(Debug, Clone)]
pub struct Decoder {
    side: Side,
    version: Option<ProtocolVersion>,
    connected: bool,
    max_packet_size: u32,
}

impl Decoder {
    /// A server-side decoder waiting for CONNECT. Packets larger than
    /// `max_packet_size` bytes (fixed header included) are refused with
    /// reason code 0x95 before they are buffered.
    pub fn new(max_packet_size: u32) -> Self {
        Self {
            side: Side::Server,
            version: None,
            connected: false,
            max_packet_size,
        }
    }

    /// A client-side decoder for a connection that speaks `version`.
    pub fn with_version(version: ProtocolVersion, max_packet_size: u32) -> Self {
        Self {
            side: Side::Client,
            version: Some(version),
            connected: true,
            max_packet_size,
        }
    }

    /// The protocol version, once known. On the server side it is known
    /// as soon as a CONNECT's protocol name and level were read, even if
    /// the rest of that CONNECT was invalid: the broker needs it to answer
    /// with a CONNACK the client understands.
    pub fn version(&self) -> Option<ProtocolVersion> {
        self.version
    }

    /// The largest packet accepted.
    pub fn max_packet_size(&self) -> u32 {
        self.max_packet_size
    }

    /// Changes the largest packet accepted (e.g. once the broker knows
    /// which listener limits apply).
    pub fn set_max_packet_size(&mut self, max_packet_size: u32) {
        self.max_packet_size = max_packet_size;
    }

    /// Decodes the next packet at the front of `buf`.
    ///
    /// Returns `Ok(None)` until a whole packet is buffered. A packet that
    /// may not come now or from this peer fails as soon as its first byte
    /// arrives.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Packet>, DecodeError> {
        let version = self.version.filter(|_| self.connected);
        if let Some(&first) = buf.first() {
            self.check_allowed(check_first_byte(first, version)?)?;
        }
        let Some((header, body)) = frame(buf, version, self.max_packet_size)? else {
            return Ok(None);
        };
        match version {
            Some(version) => {
                let packet = decode_body(&header, body, version)?;
                self.check_properties(&packet)?;
                Ok(Some(packet))
            }
            None => {
                self.version = connect::peek_version(&body);
                let connect = connect::decode(body)?;
                self.connected = true;
                Ok(Some(Packet::Connect(connect)))
            }
        }
    }

    /// Properties only the other side may send. MQTT-3.3.4-6: a PUBLISH
    /// from a client carries no Subscription Identifier (the server adds
    /// them, per subscriber); one that does is a protocol error.
    fn check_properties(&self, packet: &Packet) -> Result<(), DecodeError> {
        match (self.side, packet) {
            (Side::Server, Packet::Publish(p)) if !p.properties.subscription_identifiers.is_empty() => {
                Err(DecodeError::Protocol {
                    packet: PacketType::Publish,
                    why: "Subscription Identifier in a PUBLISH from a client",
                })
            }
            _ => Ok(()),
        }
    }

    fn check_allowed(&self, packet: PacketType) -> Result<(), DecodeError> {
        use PacketType as T;
        let why = match (self.side, self.connected, packet) {
            (Side::Server, false, T::Connect) => return Ok(()),
            (Side::Server, false, _) => "the first packet must be CONNECT",
            (Side::Server, true, T::Connect) => "a second CONNECT",
            (Side::Server, true, T::ConnAck | T::SubAck | T::UnsubAck | T::PingResp) => "only a server sends it",
            (Side::Client, _, T::Connect | T::Subscribe | T::Unsubscribe | T::PingReq) => "only a client sends it",
            _ => return Ok(()),
        };
        Err(DecodeError::UnexpectedPacket { packet, why })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{encode, Connect, Publish, ReasonCode};

    #[test]
    fn client_publish_with_a_subscription_identifier_is_a_protocol_error() {
        let v5 = ProtocolVersion::V5;
        let mut publish = Publish::new("a/b", &b"x"[..]);
        publish.properties.subscription_identifiers = vec![1];
        let mut buf = BytesMut::new();
        encode(&Packet::Connect(Connect::new(v5, "c")), v5, &mut buf).unwrap();
        encode(&Packet::Publish(publish.clone()), v5, &mut buf).unwrap();
        let mut client_side = buf.split_off(buf.len() - crate::encoded_len(&Packet::Publish(publish), v5));
        let mut server = Decoder::new(1024);
        assert!(matches!(server.decode(&mut buf), Ok(Some(Packet::Connect(_)))));
        let mut server_copy = client_side.clone();
        let err = server.decode(&mut server_copy).unwrap_err();
        assert_eq!(err.reason_code(), ReasonCode::ProtocolError);
        // From the server, where it belongs, it decodes.
        let mut client = Decoder::with_version(v5, 1024);
        assert!(matches!(client.decode(&mut client_side), Ok(Some(Packet::Publish(_)))));
    }
}
