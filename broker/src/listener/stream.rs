//! The byte stream a listener hands to the MQTT layer, whatever the transport
//! underneath, and [`Prefixed`], which replays bytes read past a PROXY header
//! before reading on from the socket.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Anything the MQTT layer can read packets from and write packets to.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin {
    /// Ready when a read would not block, found without a read buffer: an
    /// idle connection then holds none. Streams that cannot tell (TLS,
    /// WebSocket: their own buffers decide) are always ready, and the
    /// reader keeps a buffer for them.
    fn poll_read_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// The plain TCP socket underneath, when that is all there is (no TLS,
    /// no WebSocket, no bytes left to replay): an idle connection can then
    /// hibernate on the bare socket. Any other stream comes back as it was.
    fn into_tcp(self: Box<Self>) -> Result<TcpStream, BoxedStream>;
}

impl Io for TcpStream {
    fn poll_read_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        TcpStream::poll_read_ready(self, cx)
    }

    fn into_tcp(self: Box<Self>) -> Result<TcpStream, BoxedStream> {
        Ok(*self)
    }
}

impl<S: Io + 'static> Io for Prefixed<S> {
    fn poll_read_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.prefix.has_remaining() {
            return Poll::Ready(Ok(()));
        }
        self.inner.poll_read_ready(cx)
    }

    fn into_tcp(self: Box<Self>) -> Result<TcpStream, BoxedStream> {
        if self.prefix.has_remaining() {
            return Err(self);
        }
        Box::new(self.inner).into_tcp()
    }
}

impl<S: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for tokio_rustls::server::TlsStream<S> {
    fn into_tcp(self: Box<Self>) -> Result<TcpStream, BoxedStream> {
        Err(self)
    }
}

impl Io for BoxedStream {
    fn poll_read_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        (**self).poll_read_ready(cx)
    }

    fn into_tcp(self: Box<Self>) -> Result<TcpStream, BoxedStream> {
        (*self).into_tcp()
    }
}

/// A connection after its transport handshake: TCP, TLS, WebSocket or a
/// stack of them, as one byte stream.
pub type BoxedStream = Box<dyn Io>;

/// A stream that first yields `prefix`, then reads from `inner`. Writes go
/// straight to `inner`.
#[derive(Debug)]
pub(super) struct Prefixed<S> {
    prefix: BytesMut,
    inner: S,
}

impl<S> Prefixed<S> {
    pub(super) fn new(prefix: BytesMut, inner: S) -> Self {
        Self { prefix, inner }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if self.prefix.has_remaining() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            if !self.prefix.has_remaining() {
                // Give the header's buffer back instead of holding it for the
                // connection's lifetime.
                self.prefix = BytesMut::new();
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn prefix_is_read_before_the_inner_stream() {
        let (client, mut server) = tokio::io::duplex(64);
        let mut stream = Prefixed::new(BytesMut::from(&b"abc"[..]), client);
        server.write_all(b"def").await.unwrap();
        drop(server);
        let mut out = Vec::new();
        stream.read_to_end(&mut out).await.unwrap();
        assert_eq!(out, b"abcdef");
    }

    #[tokio::test]
    async fn small_reads_drain_the_prefix_in_pieces() {
        let (client, _server) = tokio::io::duplex(64);
        let mut stream = Prefixed::new(BytesMut::from(&b"hello"[..]), client);
        let mut two = [0u8; 2];
        stream.read_exact(&mut two).await.unwrap();
        assert_eq!(&two, b"he");
        let mut three = [0u8; 3];
        stream.read_exact(&mut three).await.unwrap();
        assert_eq!(&three, b"llo");
    }
}
