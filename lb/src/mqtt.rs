//! The little MQTT the balancer speaks: read a connection's first packet
//! (the CONNECT) without losing a byte of it, and refuse a client with a
//! CONNACK it understands.

use std::io;
use std::time::Duration;

use bytes::BytesMut;
use skerry_codec::{encode, sniff_connect, ConnAck, Connect, DecodeError, Packet, ProtocolVersion, ReasonCode};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::metrics::Refusal;

/// Room made for the first read, before the fixed header tells the size.
const FIRST_READ: usize = 512;
/// Time a refusing CONNACK may take to write.
const REFUSE_WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// Why no CONNECT was read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SniffError {
    /// The bytes are not an MQTT CONNECT (or it is malformed).
    #[error("not an MQTT CONNECT: {0}")]
    NotMqtt(DecodeError),
    /// The CONNECT is larger than allowed.
    #[error("CONNECT larger than max_connect_size")]
    TooLarge,
    /// The client closed first.
    #[error("closed before the CONNECT was complete")]
    Eof,
    /// Reading failed.
    #[error("reading the CONNECT: {0}")]
    Io(io::Error),
}

impl SniffError {
    pub(crate) fn refusal(&self) -> Refusal {
        match self {
            SniffError::NotMqtt(_) => Refusal::NotMqtt,
            SniffError::TooLarge => Refusal::ConnectTooLarge,
            SniffError::Eof | SniffError::Io(_) => Refusal::ClosedEarly,
        }
    }
}

/// Reads until `buf` holds a whole CONNECT (`buf` may already hold the
/// first bytes) and returns it. Every byte read stays in `buf`, the CONNECT
/// first: the backend gets them all. The size cap is checked from the
/// fixed header, before the body is buffered.
pub(crate) async fn read_connect<S>(io: &mut S, buf: &mut BytesMut, max: u32) -> Result<Connect, SniffError>
where
    S: AsyncRead + Unpin,
{
    loop {
        match sniff_connect(buf, max) {
            Ok(Some((connect, _len))) => return Ok(connect),
            Ok(None) => {}
            Err(DecodeError::PacketTooLarge { .. }) => return Err(SniffError::TooLarge),
            Err(e) => return Err(SniffError::NotMqtt(e)),
        }
        let room = (max as usize).saturating_sub(buf.len());
        if room == 0 {
            return Err(SniffError::TooLarge);
        }
        buf.reserve(wanted(buf).min(room));
        let n = (&mut *io)
            .take(room as u64)
            .read_buf(buf)
            .await
            .map_err(SniffError::Io)?;
        if n == 0 {
            return Err(SniffError::Eof);
        }
    }
}

/// Bytes still missing from the packet whose fixed header starts `buf`, or
/// a first-read size while that header is incomplete.
fn wanted(buf: &[u8]) -> usize {
    let mut len = 0usize;
    for (i, b) in buf.iter().skip(1).take(4).enumerate() {
        len |= usize::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            let total = 1 + (i + 1) + len;
            return total.saturating_sub(buf.len()).max(1);
        }
    }
    FIRST_READ
}

/// The reason code a refusal is answered with, for refusals that happen
/// after the CONNECT was read.
pub(crate) fn reason_for(refusal: Refusal) -> ReasonCode {
    match refusal {
        Refusal::ClassConnectRate => ReasonCode::ConnectionRateExceeded,
        Refusal::MaxConnections | Refusal::MaxConnectionsPerIp => ReasonCode::QuotaExceeded,
        _ => ReasonCode::ServerUnavailable,
    }
}

/// The CONNACK refusing a client of `version` for `refusal` (v5: the
/// reason code; 3.x: the closest return code, 0x03 for all of these).
pub(crate) fn refusal_connack(version: ProtocolVersion, refusal: Refusal) -> BytesMut {
    let mut out = BytesMut::with_capacity(8);
    let ack = Packet::ConnAck(ConnAck::new(reason_for(refusal)));
    // A CONNACK without properties always encodes.
    let _ = encode(&ack, version, &mut out);
    out
}

/// Writes the refusing CONNACK and closes our side; a client too slow to
/// take 5 bytes is not waited for.
pub(crate) async fn refuse<S>(io: &mut S, version: ProtocolVersion, refusal: Refusal)
where
    S: AsyncWrite + Unpin,
{
    let ack = refusal_connack(version, refusal);
    let _ = tokio::time::timeout(REFUSE_WRITE_TIMEOUT, async {
        io.write_all(&ack).await?;
        io.flush().await?;
        io.shutdown().await
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connect_bytes(version: ProtocolVersion, id: &str) -> BytesMut {
        let mut b = BytesMut::new();
        encode(&Packet::Connect(Connect::new(version, id)), version, &mut b).unwrap();
        b
    }

    #[tokio::test]
    async fn connect_split_across_reads_keeps_following_bytes() {
        let mut wire = connect_bytes(ProtocolVersion::V5, "dev-1").to_vec();
        let connect_len = wire.len();
        wire.extend_from_slice(&[0xC0, 0x00]); // a PINGREQ right behind it
        for split in 1..wire.len() {
            let (a, b) = wire.split_at(split);
            let mut io = io::Cursor::new(a.to_vec()).chain(io::Cursor::new(b.to_vec()));
            let mut buf = BytesMut::new();
            let c = read_connect(&mut io, &mut buf, 1024).await.unwrap();
            assert_eq!(c.client_id, "dev-1");
            assert!(buf.len() >= connect_len);
            assert_eq!(&buf[..], &wire[..buf.len()], "bytes kept in order");
        }
    }

    #[tokio::test]
    async fn non_mqtt_oversize_and_eof() {
        let mut buf = BytesMut::new();
        let r = read_connect(&mut &b"GET / HTTP/1.1\r\n"[..], &mut buf, 1024).await;
        assert!(matches!(r, Err(SniffError::NotMqtt(_))));
        let big = connect_bytes(ProtocolVersion::V311, &"x".repeat(2000));
        let mut buf = BytesMut::new();
        let r = read_connect(&mut &big[..], &mut buf, 1024).await;
        assert!(matches!(r, Err(SniffError::TooLarge)));
        assert!(buf.len() <= 1024, "the body was not buffered");
        let mut buf = BytesMut::new();
        let r = read_connect(&mut &big[..10], &mut buf, 4096).await;
        assert!(matches!(r, Err(SniffError::Eof)));
    }

    #[test]
    fn refusal_codes_per_version() {
        let v5 = refusal_connack(ProtocolVersion::V5, Refusal::ClassConnectRate);
        assert_eq!(&v5[..], &[0x20, 0x03, 0x00, 0x9F, 0x00]);
        let v5 = refusal_connack(ProtocolVersion::V5, Refusal::MaxConnectionsPerIp);
        assert_eq!(v5[3], 0x97);
        let v5 = refusal_connack(ProtocolVersion::V5, Refusal::NoBackend);
        assert_eq!(v5[3], 0x88);
        for version in [ProtocolVersion::V31, ProtocolVersion::V311] {
            let v3 = refusal_connack(version, Refusal::ClassConnectRate);
            assert_eq!(&v3[..], &[0x20, 0x02, 0x00, 0x03]);
        }
    }
}
