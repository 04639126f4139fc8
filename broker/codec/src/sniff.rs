//! CONNECT sniffing for the load balancer: read the first packet of a
//! connection from a plain byte slice (the balancer keeps the bytes to
//! replay them to the chosen backend) and decide as early as possible.

use bytes::Bytes;

use crate::decode::{check_first_byte, parse_fixed_header};
use crate::wire::parse_varint;
use crate::{connect, Connect, DecodeError, PacketType, ProtocolVersion};

/// Reads the CONNECT at the start of a connection's bytes.
///
/// Returns `Ok(None)` while the CONNECT is incomplete, and the CONNECT with
/// the number of bytes it took once it is whole. Fails at once on a first
/// byte that is not a CONNECT's (0x10), on a size above `max_packet_size`
/// as soon as the fixed header is complete, and on an unsupported protocol
/// name or level as soon as those bytes are there: a non-MQTT client is
/// refused without waiting for more bytes.
pub fn sniff_connect(buf: &[u8], max_packet_size: u32) -> Result<Option<(Connect, usize)>, DecodeError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    let packet = check_first_byte(first, None)?;
    if packet != PacketType::Connect {
        return Err(DecodeError::UnexpectedPacket {
            packet,
            why: "the first packet must be CONNECT",
        });
    }
    let Some(header) = parse_fixed_header(buf, None, max_packet_size)? else {
        return Ok(None);
    };
    let available = buf.get(header.header_len..).unwrap_or_default();
    let body = available.get(..header.remaining);
    connect::check_protocol_prefix(body.unwrap_or(available))?;
    let Some(body) = body else {
        return Ok(None);
    };
    let connect = connect::decode(Bytes::copy_from_slice(body))?;
    Ok(Some((connect, header.total())))
}

/// The protocol version named by the CONNECT at the start of `buf`, if its
/// first bytes are there and name a supported version. Use it to answer a
/// CONNECT that failed to decode with a CONNACK the client understands.
pub fn peek_connect_version(buf: &[u8]) -> Option<ProtocolVersion> {
    let (&first, rest) = buf.split_first()?;
    if first != 0x10 {
        return None;
    }
    let (_, len) = parse_varint(rest, "remaining length").ok()??;
    connect::peek_version(rest.get(len..)?)
}
