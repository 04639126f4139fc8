//! Feeds arbitrary bytes to the balancer's CONNECT sniffer. It must never
//! panic, and a CONNECT it accepts must be what a broker's decoder reads
//! from the same bytes.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use skerry_codec::{peek_connect_version, sniff_connect, Decoder, Packet, MAX_PACKET_SIZE};

fuzz_target!(|data: &[u8]| {
    if let Ok(Some((connect, len))) = sniff_connect(data, MAX_PACKET_SIZE) {
        let packet = data.get(..len).expect("consumed length within the input");
        assert_eq!(peek_connect_version(packet), Some(connect.protocol));
        let mut decoder = Decoder::new(MAX_PACKET_SIZE);
        let decoded = decoder.decode(&mut BytesMut::from(packet)).expect("the decoder agrees");
        assert_eq!(decoded, Some(Packet::Connect(connect)));
    }
});
