//! The balancer's backends that are listeners of this process's own nodes:
//! a client bound for one is handed over to it instead of relayed over
//! loopback (`skerry_lb::LocalBackends`).

use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use skerry_broker::listener::{Inlet, InletPlace, Io};
use skerry_lb::{ClientStream, Handoff, LocalBackends, LocalPlace};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The `tcp` listeners of the nodes this process runs.
#[derive(Debug)]
pub(crate) struct LocalNodes {
    inlets: Vec<Inlet>,
}

impl LocalNodes {
    pub(crate) fn new(inlets: Vec<Inlet>) -> LocalNodes {
        LocalNodes { inlets }
    }

    fn find(&self, address: &str) -> Option<&Inlet> {
        let to: SocketAddr = address.parse().ok()?;
        self.inlets.iter().find(|inlet| reaches(to, inlet.local_addr()))
    }
}

/// Whether connecting to `to` reaches a listener bound to `bound`: the same
/// port, on the same address or, for a listener on every address, on a
/// loopback one. Only literal member addresses are matched: a name would
/// need a lookup per connection.
fn reaches(to: SocketAddr, bound: SocketAddr) -> bool {
    bound.port() == to.port() && (bound.ip() == to.ip() || (bound.ip().is_unspecified() && to.ip().is_loopback()))
}

impl LocalBackends for LocalNodes {
    fn reserve(&self, address: &str) -> Option<Box<dyn LocalPlace>> {
        let place = self.find(address)?.reserve()?;
        Some(Box::new(Place(place)))
    }
}

struct Place(InletPlace);

impl LocalPlace for Place {
    fn hand_over(self: Box<Self>, handoff: Handoff) {
        let stream = Box::new(FromBalancer(handoff.stream));
        self.0.hand_over(stream, handoff.first_bytes, handoff.peer);
    }
}

/// A client's stream as the node reads it.
struct FromBalancer(ClientStream);

impl Io for FromBalancer {
    fn poll_read_ready(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.0.poll_read_ready(cx)
    }

    /// The balancer's stream is not a bare socket this node could own.
    fn into_tcp(self: Box<Self>) -> Result<tokio::net::TcpStream, skerry_broker::listener::BoxedStream> {
        Err(self)
    }
}

impl AsyncRead for FromBalancer {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for FromBalancer {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_address_reaches_the_listener_on_its_port() {
        let at = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert!(reaches(at("127.0.0.1:1884"), at("127.0.0.1:1884")));
        assert!(reaches(at("127.0.0.1:1884"), at("0.0.0.0:1884")));
        assert!(reaches(at("[::1]:1884"), at("[::]:1884")));
        assert!(!reaches(at("127.0.0.1:1885"), at("127.0.0.1:1884")));
        assert!(!reaches(at("127.0.0.2:1884"), at("127.0.0.1:1884")));
        // Another host's address on that port is another broker.
        assert!(!reaches(at("10.0.0.5:1884"), at("0.0.0.0:1884")));
    }
}
