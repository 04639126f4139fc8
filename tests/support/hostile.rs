//! Helpers for hostile-input tests: packet bytes built by hand (the codec
//! refuses to encode what these tests send), a witness subscriber that
//! proves the node still serves everyone else, and close assertions.

use std::num::NonZeroU16;

use skerry_codec::{Ack, Packet, ProtocolVersion, Publish, QoS, ReasonCode, Subscribe, SubscriptionOptions};

use crate::broker::TestBroker;
use crate::raw::RawClient;

/// `first` byte, the remaining length as a variable byte integer, `body`.
pub fn packet(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    out.extend(varint(body.len()));
    out.extend_from_slice(body);
    out
}

/// `n` as an MQTT variable byte integer (any size: tests announce lengths
/// they never send).
pub fn varint(mut n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (n % 128) as u8;
        n /= 128;
        out.push(if n > 0 { byte | 0x80 } else { byte });
        if n == 0 {
            return out;
        }
    }
}

/// A length-prefixed MQTT string of raw (possibly invalid) bytes.
pub fn string(bytes: &[u8]) -> Vec<u8> {
    let mut out = u16::try_from(bytes.len()).expect("short").to_be_bytes().to_vec();
    out.extend_from_slice(bytes);
    out
}

/// A v5 subscriber to `witness/#` connected before an attack, and the
/// proof after it that the node still serves it.
pub struct Witness {
    sub: RawClient,
    rounds: u16,
}

impl Witness {
    /// Connects and subscribes at QoS 1.
    pub async fn new(broker: &TestBroker) -> Witness {
        let mut sub = RawClient::connected(broker.tcp(), ProtocolVersion::V5, "witness").await;
        let filters = vec![("witness/#".to_owned(), SubscriptionOptions::new(QoS::AtLeastOnce))];
        let subscribe = Subscribe {
            packet_id: NonZeroU16::MIN,
            filters,
            properties: Default::default(),
        };
        sub.send(&Packet::Subscribe(subscribe)).await;
        assert!(
            matches!(sub.recv().await, Some(Packet::SubAck(_))),
            "witness subscribed"
        );
        Witness { sub, rounds: 0 }
    }

    /// A fresh publisher's QoS 1 message reaches the witness, and it is the
    /// next thing the witness gets (nothing from the attack slipped through).
    pub async fn still_served(&mut self, broker: &TestBroker) {
        self.rounds += 1;
        let payload = format!("after attack {}", self.rounds);
        let id = format!("witness-pub-{}", self.rounds);
        let mut publisher = RawClient::connected(broker.tcp(), ProtocolVersion::V5, &id).await;
        let mut p = Publish::new("witness/after", payload.clone());
        p.qos = QoS::AtLeastOnce;
        p.packet_id = NonZeroU16::new(7);
        publisher.send(&Packet::Publish(p)).await;
        match publisher.recv().await {
            Some(Packet::PubAck(a)) => assert_eq!(a.reason, ReasonCode::Success),
            other => panic!("publisher expected PUBACK, got {other:?}"),
        }
        match self.sub.recv().await {
            Some(Packet::Publish(p)) => {
                let got = (p.topic.as_str(), &p.payload[..], p.qos);
                assert_eq!(got, ("witness/after", payload.as_bytes(), QoS::AtLeastOnce));
                self.sub
                    .send(&Packet::PubAck(Ack::new(p.packet_id.expect("QoS 1 has an id"))))
                    .await;
            }
            other => panic!("witness expected the message, got {other:?}"),
        }
    }
}

/// The connection ends with exactly one v5 DISCONNECT carrying `reason`.
pub async fn assert_disconnected(c: &mut RawClient, reason: ReasonCode, what: &str) {
    let seen = c.until_closed().await;
    match seen.as_slice() {
        [Packet::Disconnect(d)] => assert_eq!(d.reason, reason, "{what}: {d:?}"),
        other => panic!("{what}: expected DISCONNECT {reason} then close, got {other:?}"),
    }
}

/// The connection ends without the broker sending anything.
pub async fn assert_closed_silently(c: &mut RawClient, what: &str) {
    let seen = c.until_closed().await;
    assert!(seen.is_empty(), "{what}: expected a plain close, got {seen:?}");
}
