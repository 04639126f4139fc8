//! Framing for one connection: a read buffer the decoder consumes packets
//! from, a write buffer packets are encoded into and flushed once per turn
//! of the connection loop.

use bytes::BytesMut;
use skerry_codec::{encode, encoded_len, DecodeError, Decoder, EncodeError, Packet, ProtocolVersion};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::listener::BoxedStream;

/// Why a connection ended abnormally.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnError {
    /// The socket failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The client sent something the codec rejects.
    #[error("{0}")]
    Decode(#[from] DecodeError),
    /// A packet could not be encoded for this client.
    #[error("{0}")]
    Encode(#[from] EncodeError),
    /// The client closed in the middle of a packet.
    #[error("connection closed mid-packet")]
    Truncated,
    /// A published message could not be made durable; it is not acknowledged.
    #[error("{0}")]
    Store(#[from] skerry_store::StoreError),
}

/// A connection's byte stream with its framing state.
pub(crate) struct Framed {
    stream: BoxedStream,
    rbuf: BytesMut,
    wbuf: BytesMut,
    decoder: Decoder,
}

impl Framed {
    /// Wraps a stream; packets larger than `max_packet_size` are refused
    /// from their fixed header.
    pub(crate) fn new(stream: BoxedStream, max_packet_size: u32) -> Self {
        Self {
            stream,
            rbuf: BytesMut::with_capacity(1024),
            wbuf: BytesMut::with_capacity(1024),
            decoder: Decoder::new(max_packet_size),
        }
    }

    /// The next packet; `None` on a clean end of stream. Cancel-safe: a
    /// cancelled call loses no bytes.
    pub(crate) async fn read_packet(&mut self) -> Result<Option<(Packet, usize)>, ConnError> {
        loop {
            let before = self.rbuf.len();
            if let Some(packet) = self.decoder.decode(&mut self.rbuf)? {
                return Ok(Some((packet, before - self.rbuf.len())));
            }
            if self.stream.read_buf(&mut self.rbuf).await? == 0 {
                return if self.rbuf.is_empty() {
                    Ok(None)
                } else {
                    Err(ConnError::Truncated)
                };
            }
        }
    }

    /// The next packet if one is already buffered, without reading.
    pub(crate) fn try_decode(&mut self) -> Result<Option<(Packet, usize)>, ConnError> {
        let before = self.rbuf.len();
        Ok(self
            .decoder
            .decode(&mut self.rbuf)?
            .map(|p| (p, before - self.rbuf.len())))
    }

    /// Encodes `packet` into the write buffer; returns its size.
    pub(crate) fn queue(&mut self, packet: &Packet, version: ProtocolVersion) -> Result<usize, ConnError> {
        let before = self.wbuf.len();
        encode(packet, version, &mut self.wbuf)?;
        Ok(self.wbuf.len() - before)
    }

    /// Size `packet` would have on the wire.
    pub(crate) fn size_of(packet: &Packet, version: ProtocolVersion) -> usize {
        encoded_len(packet, version)
    }

    /// Writes out everything queued; returns the number of bytes written.
    pub(crate) async fn flush(&mut self) -> Result<usize, ConnError> {
        let n = self.wbuf.len();
        if n > 0 {
            self.stream.write_all(&self.wbuf).await?;
            self.wbuf.clear();
            self.stream.flush().await?;
        }
        Ok(n)
    }

    /// Flushes and shuts the write side down; errors are irrelevant by now.
    pub(crate) async fn close(&mut self) {
        let _ = self.flush().await;
        let _ = self.stream.shutdown().await;
    }
}
