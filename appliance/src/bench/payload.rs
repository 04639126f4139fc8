//! What a bench message carries and how it is written fast.
//!
//! Every payload starts with a [`Stamp`]: the send time in nanoseconds
//! since a process-local epoch and a sequence number whose high bits name
//! the publisher. The receiver, in the same process, derives latency from
//! the first and finds losses and duplicates with the second.
//!
//! A publisher sends the same PUBLISH over and over with only the packet
//! identifier and the stamp changed, so [`PublishTemplate`] has the codec
//! encode it once and then copies those bytes into the write buffer,
//! patching the two fields in place: no allocation and no re-encoding per
//! message.

use std::num::NonZeroU16;
use std::sync::OnceLock;
use std::time::Instant;

use bytes::{BufMut, Bytes, BytesMut};
use skerry_codec::{encode, ProtocolVersion, Publish, QoS};

/// Bits of the sequence number that count messages; the bits above them
/// hold the publisher's index.
const SEQ_BITS: u32 = 40;
const SEQ_MASK: u64 = (1 << SEQ_BITS) - 1;

/// Bytes of a stamp at the front of the payload.
pub(crate) const STAMP_LEN: usize = 16;

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// Nanoseconds since the process-local epoch (set on first use).
pub(crate) fn now_ns() -> u64 {
    u64::try_from(EPOCH.get_or_init(Instant::now).elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// The send time and identity of one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    /// When it was sent, in [`now_ns`] time.
    pub(crate) sent_ns: u64,
    /// Publisher index (high bits) and that publisher's message count.
    pub(crate) seq: u64,
}

impl Stamp {
    /// The stamp of message `n` of publisher `publisher`.
    pub(crate) fn new(sent_ns: u64, publisher: u32, n: u64) -> Self {
        Self {
            sent_ns,
            seq: (u64::from(publisher) << SEQ_BITS) | (n & SEQ_MASK),
        }
    }

    /// Reads the stamp at the front of a payload; `None` if it is too short.
    pub(crate) fn parse(payload: &[u8]) -> Option<Self> {
        let (time, rest) = payload.split_first_chunk::<8>()?;
        let (seq, _) = rest.split_first_chunk::<8>()?;
        Some(Self {
            sent_ns: u64::from_be_bytes(*time),
            seq: u64::from_be_bytes(*seq),
        })
    }

    /// Index of the publisher that sent the message.
    pub(crate) fn publisher(self) -> u32 {
        u32::try_from(self.seq >> SEQ_BITS).unwrap_or(u32::MAX)
    }

    /// Position of the message in its publisher's stream.
    pub(crate) fn count(self) -> u64 {
        self.seq & SEQ_MASK
    }

    fn write(self, out: &mut [u8]) {
        out[..8].copy_from_slice(&self.sent_ns.to_be_bytes());
        out[8..STAMP_LEN].copy_from_slice(&self.seq.to_be_bytes());
    }
}

/// One PUBLISH encoded by the codec, reused for every message of a
/// publisher.
#[derive(Debug, Clone)]
pub(crate) struct PublishTemplate {
    bytes: Bytes,
    /// Offset of the packet identifier; `None` at QoS 0.
    packet_id_at: Option<usize>,
    /// Offset of the payload, where the stamp goes.
    stamp_at: usize,
}

impl PublishTemplate {
    /// Encodes a PUBLISH of `payload_size` bytes to `topic`.
    pub(crate) fn new(topic: &str, qos: QoS, payload_size: usize, version: ProtocolVersion) -> anyhow::Result<Self> {
        anyhow::ensure!(
            payload_size >= STAMP_LEN,
            "payload of {payload_size} bytes has no room for the stamp"
        );
        let mut publish = Publish::new(topic, vec![0u8; payload_size]);
        publish.qos = qos;
        publish.packet_id = (qos != QoS::AtMostOnce).then_some(NonZeroU16::MAX);
        let mut buf = BytesMut::new();
        encode(&publish.into(), version, &mut buf)?;
        let stamp_at = buf.len() - payload_size;
        // The codec writes the packet identifier just before the (empty, one
        // byte) v5 property block and the payload; check rather than trust.
        let packet_id_at = (qos != QoS::AtMostOnce).then(|| stamp_at - usize::from(version.is_v5()) - 2);
        if let Some(at) = packet_id_at {
            anyhow::ensure!(
                buf[at..at + 2] == [0xFF, 0xFF],
                "unexpected PUBLISH layout from the codec"
            );
        }
        Ok(Self {
            bytes: buf.freeze(),
            packet_id_at,
            stamp_at,
        })
    }

    /// Bytes of one encoded message.
    pub(crate) fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Appends one message with `packet_id` (ignored at QoS 0) and `stamp`.
    pub(crate) fn append(&self, buf: &mut BytesMut, packet_id: Option<NonZeroU16>, stamp: Stamp) {
        let start = buf.len();
        buf.put_slice(&self.bytes);
        let out = &mut buf[start..];
        if let (Some(at), Some(id)) = (self.packet_id_at, packet_id) {
            out[at..at + 2].copy_from_slice(&id.get().to_be_bytes());
        }
        stamp.write(&mut out[self.stamp_at..]);
    }
}

#[cfg(test)]
mod tests {
    use skerry_codec::{decode_packet, Packet, MAX_PACKET_SIZE};

    use super::*;

    fn roundtrip(version: ProtocolVersion, qos: QoS) {
        let template = PublishTemplate::new("bench/x/7", qos, 64, version).unwrap();
        let mut buf = BytesMut::new();
        let id = NonZeroU16::new(0x1234);
        let stamp = Stamp::new(987_654_321, 7, 42);
        template.append(&mut buf, id, stamp);
        template.append(&mut buf, id, Stamp::new(1, 7, 43));
        let Some(Packet::Publish(p)) = decode_packet(&mut buf, version, MAX_PACKET_SIZE).unwrap() else {
            panic!("not a publish");
        };
        assert_eq!((p.topic.as_str(), p.qos, p.payload.len()), ("bench/x/7", qos, 64));
        assert_eq!(p.packet_id, (qos != QoS::AtMostOnce).then_some(id).flatten());
        let got = Stamp::parse(&p.payload).unwrap();
        assert_eq!((got, got.publisher(), got.count()), (stamp, 7, 42));
        assert!(decode_packet(&mut buf, version, MAX_PACKET_SIZE).unwrap().is_some());
        assert!(buf.is_empty());
    }

    #[test]
    fn patched_template_decodes_in_every_version_and_qos() {
        for version in [ProtocolVersion::V311, ProtocolVersion::V5] {
            for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
                roundtrip(version, qos);
            }
        }
    }

    #[test]
    fn short_payloads_have_no_stamp() {
        assert_eq!(Stamp::parse(&[0; 15]), None);
    }
}
