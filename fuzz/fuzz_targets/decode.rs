//! Feeds arbitrary bytes to the MQTT decoder in every protocol version,
//! both stateless and through a connection's `Decoder`. Decoding must
//! never panic, and whatever decodes must encode to exactly
//! `encoded_len` bytes that decode back to the same packet.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use skerry_codec::{decode_packet, encode, encoded_len, Decoder, Packet, ProtocolVersion, MAX_PACKET_SIZE};

const VERSIONS: [ProtocolVersion; 3] = [ProtocolVersion::V31, ProtocolVersion::V311, ProtocolVersion::V5];

fn assert_round_trip(packet: &Packet, version: ProtocolVersion) {
    let mut buf = BytesMut::new();
    encode(packet, version, &mut buf).expect("a decoded packet encodes");
    assert_eq!(buf.len(), encoded_len(packet, version), "encoded_len of {packet:?}");
    let again = decode_packet(&mut buf, version, MAX_PACKET_SIZE).expect("a re-encoded packet decodes");
    assert_eq!(again.as_ref(), Some(packet), "round trip on {version}");
    assert!(buf.is_empty(), "bytes left after the re-encoded packet");
}

fuzz_target!(|data: &[u8]| {
    for version in VERSIONS {
        let mut buf = BytesMut::from(data);
        while let Ok(Some(packet)) = decode_packet(&mut buf, version, MAX_PACKET_SIZE) {
            assert_round_trip(&packet, version);
        }

        let mut client = Decoder::with_version(version, MAX_PACKET_SIZE);
        let mut buf = BytesMut::from(data);
        while let Ok(Some(packet)) = client.decode(&mut buf) {
            assert_round_trip(&packet, version);
        }
    }

    let mut server = Decoder::new(MAX_PACKET_SIZE);
    let mut buf = BytesMut::from(data);
    while let Ok(Some(packet)) = server.decode(&mut buf) {
        let version = server.version().expect("known after CONNECT");
        assert_round_trip(&packet, version);
    }
});
