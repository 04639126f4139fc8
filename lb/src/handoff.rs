//! Handing a client to a broker node in this process instead of relaying
//! it. Where `skerry run` puts the balancer and its backend nodes in one
//! process, a backend listener there can take the client's own stream:
//! the node reads and writes it directly, with the bytes the balancer
//! would have sent first (the PROXY header, then the CONNECT) replayed in
//! memory. No loopback hop, no second socket pair, no relay buffers.
//!
//! Sessions under a bandwidth class are relayed still: the limits live in
//! the relay. A handed-over session keeps its place under the balancer's
//! connection caps, in its backend's connection count and among the
//! balancer's open connections until it closes, and it ends as a relayed
//! one does: when its backend is marked down under `shutdown_sessions`, or
//! at its share of the drain window when the balancer stops. The node
//! then reads the end of the stream, as if the client had closed.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::limits::CapGuard;
use crate::metrics::OpenGuard;
use crate::pool::Lease;
use crate::splice::End;

/// The broker listeners in this process that take handed-over clients.
pub trait LocalBackends: Send + Sync + fmt::Debug {
    /// A place for one client at the listener a pool member's `address`
    /// names, when that listener is in this process and has room.
    fn reserve(&self, address: &str) -> Option<Box<dyn LocalPlace>>;
}

/// Room for one client at a local listener, reserved.
pub trait LocalPlace: Send {
    /// Hands the client over; the listener goes on from its first bytes.
    fn hand_over(self: Box<Self>, handoff: Handoff);
}

/// A client handed over.
#[derive(Debug)]
pub struct Handoff {
    /// The client's stream (TLS already terminated by the balancer).
    pub stream: ClientStream,
    /// What the listener reads first: the PROXY header the pool sends, if
    /// any, then the client's CONNECT.
    pub first_bytes: BytesMut,
    /// The client's address.
    pub peer: SocketAddr,
}

/// A byte stream to the client.
trait ClientIo: AsyncRead + AsyncWrite + Send + Unpin {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin> ClientIo for T {}

/// The client's stream, holding the session's place under the balancer's
/// caps and in its backend's count until it is dropped.
pub struct ClientStream {
    io: Box<dyn ClientIo>,
    /// A plain socket: an empty read waits for readability.
    plain: bool,
    /// Completes when the balancer ends the session; reads then find the
    /// end of the stream.
    ending: Pin<Box<dyn Future<Output = End> + Send>>,
    ended: bool,
    _lease: Lease,
    _cap: CapGuard,
    _open: OpenGuard,
}

/// What a handed-over session holds of the balancer.
pub(crate) struct Held {
    pub(crate) lease: Lease,
    pub(crate) cap: CapGuard,
    pub(crate) open: OpenGuard,
}

impl ClientStream {
    /// `plain`: `io` is the client's TCP socket itself (no TLS above it).
    /// `ending`: completes when the balancer ends the session.
    pub(crate) fn new<S, E>(io: S, plain: bool, ending: E, held: Held) -> ClientStream
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
        E: Future<Output = End> + Send + 'static,
    {
        ClientStream {
            io: Box::new(io),
            plain,
            ending: Box::pin(ending),
            ended: false,
            _lease: held.lease,
            _cap: held.cap,
            _open: held.open,
        }
    }

    /// Whether the balancer has ended the session (the reader then sees
    /// the end of the stream); registers for that otherwise.
    fn poll_ended(&mut self, cx: &mut Context<'_>) -> bool {
        if !self.ended {
            if let Poll::Ready(end) = self.ending.as_mut().poll(cx) {
                tracing::info!(end = end.as_str(), "handed-over session ended by the balancer");
                self.ended = true;
            }
        }
        self.ended
    }

    /// Ready when a read would find bytes (or the end), found without a
    /// read buffer, so an idle client holds none. For a plain socket an
    /// empty read is exactly that: tokio's socket read waits for
    /// readiness before reading, and reading nothing leaves it set. Over
    /// TLS, whose records decide, always ready: the reader keeps a buffer.
    pub fn poll_read_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.plain || self.poll_ended(cx) {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_read(cx, &mut ReadBuf::new(&mut []))
    }
}

impl fmt::Debug for ClientStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientStream").finish_non_exhaustive()
    }
}

impl AsyncRead for ClientStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if self.poll_ended(cx) {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for ClientStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
