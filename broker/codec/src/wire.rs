//! The primitive encodings of MQTT: big-endian integers, variable byte
//! integers, length-prefixed strings and binary data.
//!
//! [`Reader`] reads them from one packet's body and reports a truncated or
//! invalid field as a [`DecodeError`] naming the field; nothing here can
//! panic on input. The `put_*` functions write them and refuse values that
//! do not fit their length prefix.

use std::num::NonZeroU16;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::protocol::MAX_REMAINING_LENGTH;
use crate::{ByteStr, DecodeError, EncodeError, PacketType, ReasonCode};

/// Parses a variable byte integer at the front of `buf`.
///
/// Returns the value and its length, or `None` while the integer is
/// incomplete. A 4th byte with the continuation bit set is an error at
/// once: no 5th byte needs to arrive.
pub(crate) fn parse_varint(buf: &[u8], what: &'static str) -> Result<Option<(u32, usize)>, DecodeError> {
    let mut value = 0u32;
    for (i, &byte) in buf.iter().take(4).enumerate() {
        value |= u32::from(byte & 0x7F) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(Some((value, i + 1)));
        }
    }
    if buf.len() >= 4 {
        Err(DecodeError::VarIntTooLong { what })
    } else {
        Ok(None)
    }
}

/// Bytes a variable byte integer of `value` takes.
pub(crate) const fn varint_len(value: usize) -> usize {
    match value {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

/// Writes `value` as a variable byte integer.
pub(crate) fn put_varint(buf: &mut BytesMut, value: usize, what: &'static str) -> Result<(), EncodeError> {
    let mut rest = match u32::try_from(value) {
        Ok(v) if v <= MAX_REMAINING_LENGTH => v,
        _ => return Err(EncodeError::VarIntTooLarge { what, value }),
    };
    loop {
        // Truncation is the point: the low 7 bits go out first.
        let mut byte = (rest & 0x7F) as u8;
        rest >>= 7;
        if rest > 0 {
            byte |= 0x80;
        }
        buf.put_u8(byte);
        if rest == 0 {
            return Ok(());
        }
    }
}

/// Writes a 16-bit length prefix and `data`.
pub(crate) fn put_binary(buf: &mut BytesMut, data: &[u8], what: &'static str) -> Result<(), EncodeError> {
    let len = u16::try_from(data.len()).map_err(|_| EncodeError::FieldTooLong { what, len: data.len() })?;
    buf.put_u16(len);
    buf.put_slice(data);
    Ok(())
}

/// Writes a UTF-8 string with its 16-bit length prefix.
pub(crate) fn put_str(buf: &mut BytesMut, s: &str, what: &'static str) -> Result<(), EncodeError> {
    put_binary(buf, s.as_bytes(), what)
}

/// Bytes a string or binary field of `len` bytes takes with its prefix.
pub(crate) const fn prefixed_len(len: usize) -> usize {
    2 + len
}

/// Reads the fields of one packet's body, front to back.
#[derive(Debug)]
pub(crate) struct Reader {
    buf: Bytes,
    packet: PacketType,
}

impl Reader {
    /// A reader over `body`, the bytes after the fixed header.
    pub(crate) fn new(body: Bytes, packet: PacketType) -> Self {
        Self { buf: body, packet }
    }

    /// The packet type, for error messages.
    pub(crate) fn packet(&self) -> PacketType {
        self.packet
    }

    /// Bytes not read yet.
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len()
    }

    /// Whether every byte was read.
    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    fn truncated(&self, what: &'static str) -> DecodeError {
        DecodeError::Truncated {
            packet: self.packet,
            what,
        }
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DecodeError> {
        let bytes = *self.buf.first_chunk::<N>().ok_or_else(|| self.truncated(what))?;
        self.buf.advance(N);
        Ok(bytes)
    }

    /// Reads one byte.
    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        self.array::<1>(what).map(|[b]| b)
    }

    /// Reads a big-endian 16-bit integer.
    pub(crate) fn u16(&mut self, what: &'static str) -> Result<u16, DecodeError> {
        self.array(what).map(u16::from_be_bytes)
    }

    /// Reads a big-endian 32-bit integer.
    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        self.array(what).map(u32::from_be_bytes)
    }

    /// Reads a variable byte integer.
    pub(crate) fn varint(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        let (value, len) = parse_varint(&self.buf, what)?.ok_or_else(|| self.truncated(what))?;
        self.buf.advance(len);
        Ok(value)
    }

    /// Takes the next `len` bytes without copying them.
    pub(crate) fn take(&mut self, len: usize, what: &'static str) -> Result<Bytes, DecodeError> {
        if len > self.buf.len() {
            return Err(self.truncated(what));
        }
        Ok(self.buf.split_to(len))
    }

    /// Takes the next `len` bytes as a reader of their own (a property
    /// block).
    pub(crate) fn sub(&mut self, len: usize, what: &'static str) -> Result<Self, DecodeError> {
        Ok(Self::new(self.take(len, what)?, self.packet))
    }

    /// Reads binary data with its 16-bit length prefix.
    pub(crate) fn binary(&mut self, what: &'static str) -> Result<Bytes, DecodeError> {
        let len = self.u16(what)?;
        self.take(usize::from(len), what)
    }

    /// Reads a UTF-8 string without copying it. MQTT forbids U+0000.
    pub(crate) fn byte_str(&mut self, what: &'static str) -> Result<ByteStr, DecodeError> {
        let bytes = self.binary(what)?;
        if bytes.contains(&0) {
            return Err(DecodeError::NullCharacter {
                packet: self.packet,
                what,
            });
        }
        ByteStr::from_utf8(bytes).map_err(|_| DecodeError::InvalidUtf8 {
            packet: self.packet,
            what,
        })
    }

    /// Reads a UTF-8 string into an owned `String`.
    pub(crate) fn string(&mut self, what: &'static str) -> Result<String, DecodeError> {
        self.byte_str(what).map(|s| s.as_str().to_owned())
    }

    /// Reads a packet identifier, which must not be 0.
    pub(crate) fn packet_id(&mut self) -> Result<NonZeroU16, DecodeError> {
        let id = self.u16("packet identifier")?;
        NonZeroU16::new(id).ok_or(DecodeError::Protocol {
            packet: self.packet,
            why: "packet identifier 0",
        })
    }

    /// Reads an MQTT 5.0 reason code valid for this packet type.
    pub(crate) fn reason_code(&mut self) -> Result<ReasonCode, DecodeError> {
        let code = self.u8("reason code")?;
        ReasonCode::from_u8(code)
            .filter(|c| c.is_valid_for(self.packet))
            .ok_or(DecodeError::InvalidReasonCode {
                packet: self.packet,
                code,
            })
    }

    /// Takes every byte left (a PUBLISH payload).
    pub(crate) fn rest(&mut self) -> Bytes {
        std::mem::take(&mut self.buf)
    }

    /// Checks that every byte was read.
    pub(crate) fn finish(self) -> Result<(), DecodeError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes {
                packet: self.packet,
                count: self.buf.len(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_round_trip_at_boundaries() {
        for value in [0, 127, 128, 16_383, 16_384, 2_097_151, 2_097_152, 268_435_455] {
            let mut buf = BytesMut::new();
            put_varint(&mut buf, value, "test").expect("in range");
            assert_eq!(buf.len(), varint_len(value));
            let parsed = parse_varint(&buf, "test").expect("valid");
            assert_eq!(parsed, Some((value as u32, buf.len())));
        }
    }

    #[test]
    fn varint_too_long_fails_without_fifth_byte() {
        let err = parse_varint(&[0xFF, 0xFF, 0xFF, 0xFF], "remaining length").unwrap_err();
        assert_eq!(err.to_string(), "remaining length exceeds 4 bytes");
        assert_eq!(parse_varint(&[0xFF, 0xFF], "x"), Ok(None));
    }

    #[test]
    fn varint_too_large_to_encode() {
        let mut buf = BytesMut::new();
        assert!(put_varint(&mut buf, 268_435_456, "x").is_err());
    }

    #[test]
    fn reader_reports_truncation() {
        let mut r = Reader::new(Bytes::from_static(&[0, 5, b'a']), PacketType::Publish);
        let err = r.string("topic name").unwrap_err();
        assert_eq!(err.to_string(), "PUBLISH ends inside topic name");
    }

    #[test]
    fn reader_rejects_nul_and_bad_utf8() {
        let mut r = Reader::new(Bytes::from_static(&[0, 1, 0]), PacketType::Connect);
        assert!(matches!(
            r.string("client identifier"),
            Err(DecodeError::NullCharacter { .. })
        ));
        let mut r = Reader::new(Bytes::from_static(&[0, 2, 0xC3, 0x28]), PacketType::Connect);
        assert!(matches!(
            r.string("client identifier"),
            Err(DecodeError::InvalidUtf8 { .. })
        ));
    }
}
