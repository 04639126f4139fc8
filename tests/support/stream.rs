//! A codec-based MQTT client over any byte stream: TLS, a socket after a
//! PROXY header, anything [`RawClient`](crate::raw::RawClient) cannot open
//! itself. Unlike `RawClient`, writes report failure instead of panicking,
//! because refusing the stream is what some tests expect of the broker.

use std::io;
use std::time::Duration;

use std::num::NonZeroU16;

use bytes::{Bytes, BytesMut};
use skerry_codec::{
    decode_packet, encode, Ack, ConnAck, Connect, Packet, ProtocolVersion, Publish, QoS, ReasonCode, Subscribe,
    SubscriptionOptions,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::raw::WAIT;

/// One MQTT connection over `S`.
pub struct StreamClient<S> {
    stream: S,
    buf: BytesMut,
    version: ProtocolVersion,
}

impl<S: AsyncRead + AsyncWrite + Unpin> StreamClient<S> {
    /// Wraps an established stream that speaks `version`.
    pub fn new(stream: S, version: ProtocolVersion) -> Self {
        Self {
            stream,
            buf: BytesMut::new(),
            version,
        }
    }

    /// Sends one packet.
    pub async fn send(&mut self, packet: &Packet) -> io::Result<()> {
        let mut out = BytesMut::new();
        encode(packet, self.version, &mut out).expect("encode");
        self.stream.write_all(&out).await?;
        self.stream.flush().await
    }

    /// Sends raw bytes, as they are.
    pub async fn send_bytes(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes).await?;
        self.stream.flush().await
    }

    /// Sends `connect` and returns the CONNACK; `None` when the broker
    /// closed the stream (or broke it) instead of answering.
    pub async fn connect(&mut self, connect: Connect) -> Option<ConnAck> {
        self.send(&Packet::Connect(connect)).await.ok()?;
        match self.recv().await {
            Some(Packet::ConnAck(ack)) => Some(ack),
            None => None,
            Some(other) => panic!("expected CONNACK, got {other:?}"),
        }
    }

    /// The next packet within [`WAIT`]; `None` when the stream closed or failed.
    pub async fn recv(&mut self) -> Option<Packet> {
        self.recv_within(WAIT)
            .await
            .expect("a packet or a close within the wait")
    }

    /// The next packet within `wait`: `Err(())` on timeout, `Ok(None)` on
    /// close or a stream error (a TLS alert, a reset).
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

    /// SUBSCRIBE to one filter at QoS 1; the SUBACK's reason code.
    pub async fn subscribe(&mut self, filter: &str) -> ReasonCode {
        let filters = vec![(filter.to_owned(), SubscriptionOptions::new(QoS::AtLeastOnce))];
        let sub = Subscribe {
            packet_id: NonZeroU16::MIN,
            filters,
            properties: Default::default(),
        };
        self.send(&Packet::Subscribe(sub)).await.expect("send SUBSCRIBE");
        match self.recv().await {
            Some(Packet::SubAck(a)) => a.return_codes[0],
            other => panic!("expected SUBACK, got {other:?}"),
        }
    }

    /// PUBLISH at QoS 1; the PUBACK's reason code.
    pub async fn publish(&mut self, topic: &str, payload: &str) -> ReasonCode {
        self.send(&Packet::Publish(qos1(topic, payload)))
            .await
            .expect("send PUBLISH");
        match self.recv().await {
            Some(Packet::PubAck(a)) => a.reason,
            other => panic!("expected PUBACK, got {other:?}"),
        }
    }

    /// The next message's topic and payload, acknowledged if QoS 1.
    pub async fn received(&mut self) -> (String, Bytes) {
        match self.recv().await {
            Some(Packet::Publish(p)) => {
                if let Some(id) = p.packet_id {
                    self.send(&Packet::PubAck(Ack::new(id))).await.expect("send PUBACK");
                }
                (p.topic.to_string(), p.payload)
            }
            other => panic!("expected PUBLISH, got {other:?}"),
        }
    }
}

/// A QoS 1 PUBLISH with packet id 3.
pub fn qos1(topic: &str, payload: &str) -> Publish {
    let mut p = Publish::new(topic, payload.to_owned());
    p.qos = QoS::AtLeastOnce;
    p.packet_id = NonZeroU16::new(3);
    p
}
