//! A raw MQTT client on plain TCP: sends exactly the packets a test asks
//! for, including malformed ones, and reads what the broker answers. It is
//! a [`StreamClient`] over a `TcpStream` whose writes panic on failure
//! (a test that wants to see a refused write uses `StreamClient` itself).

use std::net::SocketAddr;
use std::ops::{Deref, DerefMut};
use std::time::Duration;

use bytes::BytesMut;
use skerry_codec::{encode, ConnAck, Connect, Packet, ProtocolVersion};
use tokio::net::TcpStream;

use crate::stream::StreamClient;

/// How long a test waits for a packet it expects.
pub const WAIT: Duration = Duration::from_secs(5);

/// One raw connection.
pub struct RawClient {
    inner: StreamClient<TcpStream>,
    version: ProtocolVersion,
}

impl Deref for RawClient {
    type Target = StreamClient<TcpStream>;

    fn deref(&self) -> &Self::Target {
        &self.inner
    }
}

impl DerefMut for RawClient {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.inner
    }
}

impl RawClient {
    /// Opens a TCP connection without sending anything.
    pub async fn open(addr: SocketAddr, version: ProtocolVersion) -> RawClient {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        RawClient {
            inner: StreamClient::new(stream, version),
            version,
        }
    }

    /// Connects with `connect` and returns the CONNACK.
    pub async fn connect(addr: SocketAddr, connect: Connect) -> (RawClient, ConnAck) {
        let mut c = Self::open(addr, connect.protocol).await;
        c.send(&Packet::Connect(connect)).await;
        match c.recv().await {
            Some(Packet::ConnAck(ack)) => (c, ack),
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    /// A clean connection as `client_id`, expecting success.
    pub async fn connected(addr: SocketAddr, version: ProtocolVersion, client_id: &str) -> RawClient {
        let (c, ack) = Self::connect(addr, Connect::new(version, client_id)).await;
        assert!(!ack.reason.is_error(), "CONNACK {:?}", ack.reason);
        c
    }

    /// Sends one packet.
    pub async fn send(&mut self, packet: &Packet) {
        let mut out = BytesMut::new();
        encode(packet, self.version, &mut out).expect("encode");
        self.send_bytes(&out).await;
    }

    /// Sends raw bytes.
    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        self.inner.send_bytes(bytes).await.expect("write");
    }

    /// Asserts nothing arrives within `wait`.
    pub async fn expect_silence(&mut self, wait: Duration) {
        if let Ok(p) = self.recv_within(wait).await {
            panic!("expected silence, got {p:?}");
        }
    }

    /// Reads until the broker closes the connection, returning what came before.
    pub async fn until_closed(&mut self) -> Vec<Packet> {
        let mut seen = Vec::new();
        while let Some(p) = self.recv().await {
            seen.push(p);
        }
        seen
    }
}
