//! Property tests: every packet of every version survives encode -> decode,
//! `encoded_len` is exact, and decoding is incremental.

use bytes::BytesMut;
use proptest::prelude::*;
use skerry_codec::{
    decode_packet, encode, encoded_len, sniff_connect, Decoder, Packet, ProtocolVersion, MAX_PACKET_SIZE,
};

use crate::strategies::{packet, version, versioned_packet};

fn encoded(packet: &Packet, version: ProtocolVersion) -> BytesMut {
    let mut buf = BytesMut::new();
    encode(packet, version, &mut buf).expect("generated packets encode");
    buf
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn encode_then_decode_gives_the_packet_back((version, packet) in versioned_packet()) {
        let mut buf = encoded(&packet, version);
        prop_assert_eq!(buf.len(), encoded_len(&packet, version));
        let decoded = decode_packet(&mut buf, version, MAX_PACKET_SIZE);
        prop_assert_eq!(decoded, Ok(Some(packet)));
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn every_prefix_is_incomplete((version, packet) in versioned_packet()) {
        let whole = encoded(&packet, version);
        for cut in 0..whole.len() {
            let mut prefix = BytesMut::from(&whole[..cut]);
            prop_assert_eq!(decode_packet(&mut prefix, version, MAX_PACKET_SIZE), Ok(None));
            prop_assert_eq!(prefix.len(), cut, "an incomplete packet must stay buffered");
        }
    }

    #[test]
    fn packets_back_to_back_decode_in_order(
        (version, packets) in version().prop_flat_map(|v| {
            (Just(v), proptest::collection::vec(packet(v), 1..6))
        })
    ) {
        let mut buf = BytesMut::new();
        for p in &packets {
            encode(p, version, &mut buf).expect("generated packets encode");
        }
        for p in packets {
            prop_assert_eq!(decode_packet(&mut buf, version, MAX_PACKET_SIZE), Ok(Some(p)));
        }
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn a_connect_sniffs_and_starts_a_connection((version, packet) in versioned_packet()) {
        let Packet::Connect(connect) = packet else {
            return Ok(());
        };
        let mut buf = encoded(&Packet::Connect(connect.clone()), version);
        let len = buf.len();
        buf.extend_from_slice(&[0xC0, 0x00]);
        prop_assert_eq!(sniff_connect(&buf, MAX_PACKET_SIZE), Ok(Some((connect.clone(), len))));
        prop_assert_eq!(sniff_connect(&buf[..len - 1], MAX_PACKET_SIZE), Ok(None));

        let mut decoder = Decoder::new(MAX_PACKET_SIZE);
        prop_assert_eq!(decoder.decode(&mut buf), Ok(Some(Packet::Connect(connect))));
        prop_assert_eq!(decoder.version(), Some(version));
        prop_assert_eq!(decoder.decode(&mut buf), Ok(Some(Packet::PingReq)));
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..256),
        version in version(),
    ) {
        let mut buf = BytesMut::from(&bytes[..]);
        while let Ok(Some(packet)) = decode_packet(&mut buf, version, MAX_PACKET_SIZE) {
            let mut again = encoded(&packet, version);
            let round = decode_packet(&mut again, version, MAX_PACKET_SIZE);
            prop_assert_eq!(round, Ok(Some(packet)));
        }
        let _ = sniff_connect(&bytes, MAX_PACKET_SIZE);
        let _ = Decoder::new(1024).decode(&mut BytesMut::from(&bytes[..]));
    }
}

/// Strategies are only useful if they reach every packet type in every
/// version they may; this checks that they do.
#[test]
fn strategies_cover_every_packet_type() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    use std::collections::HashSet;

    for version in [ProtocolVersion::V31, ProtocolVersion::V311, ProtocolVersion::V5] {
        let mut runner = TestRunner::deterministic();
        let strategy = packet(version);
        let mut seen = HashSet::new();
        for _ in 0..2_000 {
            let tree = strategy.new_tree(&mut runner).expect("strategy");
            seen.insert(tree.current().packet_type());
        }
        let expected = if version.is_v5() { 15 } else { 14 };
        assert_eq!(seen.len(), expected, "{version}: {seen:?}");
    }
}
