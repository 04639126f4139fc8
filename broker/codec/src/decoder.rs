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
            Some(version) => decode_body(&header, body, version).map(Some),
            None => {
                self.version = connect::peek_version(&body);
                let connect = connect::decode(body)?;
                self.connected = true;
                Ok(Some(Packet::Connect(connect)))
            }
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
