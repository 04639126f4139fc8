//! Framing for one connection: a read buffer the decoder consumes packets
//! from, a write buffer packets are encoded into and flushed once per turn
//! of the connection loop. Both exist only while there are bytes in them:
//! an idle TCP connection waits for readability without a read buffer and
//! holds no write buffer, so ten thousand idle devices cost no buffers.

use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, BytesMut};
use skerry_codec::{encode, encoded_len, DecodeError, Decoder, EncodeError, Packet, ProtocolVersion};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use crate::listener::{BoxedStream, Io, Permit};

/// Why a connection ended abnormally.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnError {
    /// The socket failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The client sent something the codec rejects.
    #[error("{0}")]
    Decode(Box<DecodeError>),
    /// A packet could not be encoded for this client.
    #[error("{0}")]
    Encode(Box<EncodeError>),
    /// The client closed in the middle of a packet.
    #[error("connection closed mid-packet")]
    Truncated,
    /// A published message could not be made durable; it is not acknowledged.
    #[error("{0}")]
    Store(Box<skerry_store::StoreError>),
}

// The causes are boxed: a connection's future keeps room for a `ConnError`
// (every byte of it is paid per idle connection), and errors are rare.
impl From<DecodeError> for ConnError {
    fn from(e: DecodeError) -> Self {
        Self::Decode(Box::new(e))
    }
}

impl From<EncodeError> for ConnError {
    fn from(e: EncodeError) -> Self {
        Self::Encode(Box::new(e))
    }
}

impl From<skerry_store::StoreError> for ConnError {
    fn from(e: skerry_store::StoreError) -> Self {
        Self::Store(Box::new(e))
    }
}

/// Room made in the read buffer before a read: one read takes many small
/// packets from a busy client.
const READ_CHUNK: usize = 4096;

/// A connection's byte stream with its framing state.
pub(crate) struct Framed {
    stream: BoxedStream,
    /// Made on first use, given back when the connection hibernates.
    bufs: Option<Box<Buffers>>,
    decoder: Decoder,
    /// The buffered bytes were found to be an incomplete packet.
    partial: bool,
    /// Bytes written by a flush not yet complete.
    written: usize,
    /// The connection's place under its listener's `max_connections`,
    /// held as long as the socket.
    _permit: Permit,
}

/// A connection's read and write buffers.
#[derive(Default)]
struct Buffers {
    read: BytesMut,
    write: BytesMut,
}

impl Framed {
    /// Wraps a stream; packets larger than `max_packet_size` are refused
    /// from their fixed header.
    pub(crate) fn new(stream: BoxedStream, max_packet_size: u32, permit: Permit) -> Self {
        Self {
            stream,
            bufs: None,
            decoder: Decoder::new(max_packet_size),
            partial: false,
            written: 0,
            _permit: permit,
        }
    }

    /// The next packet; `None` on a clean end of stream. Cancel-safe: a
    /// cancelled call loses no bytes.
    pub(crate) async fn read_packet(&mut self) -> Result<Option<(Packet, usize)>, ConnError> {
        loop {
            if let Some(packet) = self.try_decode()? {
                return Ok(Some(packet));
            }
            if !std::future::poll_fn(|cx| self.poll_fill(cx)).await? {
                return Ok(None);
            }
        }
    }

    /// Ready once the read buffer holds bytes not yet found to be an
    /// incomplete packet; `false` on a clean end of stream. The connection
    /// loop polls this rather than waiting on [`Framed::read_packet`], so
    /// that its idle state holds no future and no decoded packet.
    pub(crate) fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<Result<bool, ConnError>> {
        loop {
            if self.read_len() > 0 && !self.partial {
                return Poll::Ready(Ok(true));
            }
            if ready!(self.poll_read_some(cx))? == 0 {
                return Poll::Ready(if self.read_len() == 0 {
                    Ok(false)
                } else {
                    Err(ConnError::Truncated)
                });
            }
            self.partial = false;
        }
    }

    /// One read into the read buffer; the number of bytes read. With
    /// nothing pending, the buffer is given back (decoded payloads keep
    /// their own share of it) and exists only while a read is tried: an
    /// idle connection, whose read would block, holds none. A stream that
    /// can tell waits for readiness first, without a buffer at all.
    fn poll_read_some(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<usize>> {
        let idle = self.read_len() == 0;
        if idle {
            if let Some(bufs) = &mut self.bufs {
                bufs.read = BytesMut::new();
            }
            ready!(self.stream.poll_read_ready(cx))?;
        }
        let Self { stream, bufs, .. } = self;
        let rbuf = &mut bufs.get_or_insert_with(Box::default).read;
        if rbuf.len() == rbuf.capacity() {
            rbuf.reserve(READ_CHUNK);
        }
        let read = tokio_util::io::poll_read_buf(Pin::new(stream), cx, rbuf);
        if read.is_pending() && idle {
            *rbuf = BytesMut::new();
        }
        read
    }

    /// Bytes in the read buffer.
    fn read_len(&self) -> usize {
        self.bufs.as_ref().map_or(0, |bufs| bufs.read.len())
    }

    /// The next packet if one is already buffered, without reading.
    pub(crate) fn try_decode(&mut self) -> Result<Option<(Packet, usize)>, ConnError> {
        let Some(bufs) = &mut self.bufs else {
            self.partial = true;
            return Ok(None);
        };
        let before = bufs.read.len();
        let packet = self.decoder.decode(&mut bufs.read)?;
        self.partial = packet.is_none();
        Ok(packet.map(|p| (p, before - bufs.read.len())))
    }

    /// Encodes `packet` into the write buffer; returns its size.
    pub(crate) fn queue(&mut self, packet: &Packet, version: ProtocolVersion) -> Result<usize, ConnError> {
        let wbuf = &mut self.bufs.get_or_insert_with(Box::default).write;
        let before = wbuf.len();
        encode(packet, version, wbuf)?;
        Ok(wbuf.len() - before)
    }

    /// Size `packet` would have on the wire.
    pub(crate) fn size_of(packet: &Packet, version: ProtocolVersion) -> usize {
        encoded_len(packet, version)
    }

    /// Writes out everything queued; ready with the number of bytes
    /// written since it was last ready. The write buffer is given back
    /// once it is out.
    pub(crate) fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<usize, ConnError>> {
        let Self {
            stream, bufs, written, ..
        } = self;
        if let Some(bufs) = bufs {
            while !bufs.write.is_empty() {
                let n = ready!(Pin::new(&mut *stream).poll_write(cx, &bufs.write))?;
                if n == 0 {
                    return Poll::Ready(Err(std::io::Error::from(std::io::ErrorKind::WriteZero).into()));
                }
                bufs.write.advance(n);
                *written += n;
            }
            if *written > 0 {
                ready!(Pin::new(stream).poll_flush(cx))?;
                bufs.write = BytesMut::new();
            }
        }
        Poll::Ready(Ok(std::mem::take(written)))
    }

    /// [`Framed::poll_flush`] as a future.
    pub(crate) async fn flush(&mut self) -> Result<usize, ConnError> {
        std::future::poll_fn(|cx| self.poll_flush(cx)).await
    }

    /// Flushes and shuts the write side down; errors are irrelevant by now.
    pub(crate) async fn close(&mut self) {
        let _ = self.flush().await;
        let _ = self.stream.shutdown().await;
    }

    /// Nothing buffered either way.
    pub(crate) fn is_idle(&self) -> bool {
        self.bufs
            .as_ref()
            .is_none_or(|bufs| bufs.read.is_empty() && bufs.write.is_empty())
    }

    /// Takes the bare TCP socket out to hibernate on, leaving the framing
    /// state (empty buffers are given back); `None` when the stream is more
    /// than a socket (it stays).
    pub(crate) fn take_tcp(&mut self) -> Option<TcpStream> {
        match std::mem::replace(&mut self.stream, Box::new(Detached)).into_tcp() {
            Ok(tcp) => {
                if self.is_idle() {
                    self.bufs = None;
                }
                Some(tcp)
            }
            Err(stream) => {
                self.stream = stream;
                None
            }
        }
    }

    /// Puts a socket back after [`Framed::take_tcp`]; `Err`: it could not be
    /// registered with the runtime again, and the connection has no stream.
    pub(crate) fn restore_tcp(&mut self, socket: std::net::TcpStream) -> std::io::Result<()> {
        self.stream = Box::new(TcpStream::from_std(socket)?);
        Ok(())
    }
}

/// Where the stream was while it is out (hibernating) or lost: every
/// operation fails.
struct Detached;

fn detached() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::NotConnected,
        "the socket was lost while hibernating",
    )
}

impl AsyncRead for Detached {
    fn poll_read(self: Pin<&mut Self>, _: &mut Context<'_>, _: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Err(detached()))
    }
}

impl AsyncWrite for Detached {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, _: &[u8]) -> Poll<std::io::Result<usize>> {
        Poll::Ready(Err(detached()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Err(detached()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl Io for Detached {
    fn into_tcp(self: Box<Self>) -> Result<TcpStream, BoxedStream> {
        Err(self)
    }
}
