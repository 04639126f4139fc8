//! A raw MQTT client on the codec: sends exactly the packets a test asks
//! for, including malformed ones, and reads what the broker answers.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use skerry_codec::{decode_packet, encode, ConnAck, Connect, Packet, ProtocolVersion};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a test waits for a packet it expects.
pub const WAIT: Duration = Duration::from_secs(5);

/// One raw connection.
pub struct RawClient {
    stream: TcpStream,
    buf: BytesMut,
    version: ProtocolVersion,
}

impl RawClient {
    /// Opens a TCP connection without sending anything.
    pub async fn open(addr: SocketAddr, version: ProtocolVersion) -> RawClient {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        RawClient { stream, buf: BytesMut::new(), version }
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

    /// A clean v5 (or other version) connection as `client_id`, expecting success.
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
        self.stream.write_all(bytes).await.expect("write");
    }

    /// The next packet within [`WAIT`]; `None` when the broker closed the connection.
    pub async fn recv(&mut self) -> Option<Packet> {
        self.recv_within(WAIT).await.expect("a packet or a close within the wait")
    }

    /// The next packet within `wait`: `Err(())` on timeout, `Ok(None)` on close.
    #[allow(clippy::result_unit_err)]
    pub async fn recv_within(&mut self, wait: Duration) -> Result<Option<Packet>, ()> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(p) = decode_packet(&mut self.buf, self.version, u32::MAX).expect("broker sent a valid packet") {
                return Ok(Some(p));
            }
            match tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.buf)).await {
                Err(_) => return Err(()),
                Ok(Ok(0)) | Ok(Err(_)) => return Ok(None),
                Ok(Ok(_)) => {}
            }
        }
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
