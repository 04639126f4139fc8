//! Decoding and encoding one PUBLISH (QoS 1, 64-byte topic, 256-byte
//! payload) on MQTT 3.1.1 and 5.0: the codec's share of the broker's hot
//! path. Throughput is reported in packets per second.

use std::hint::black_box;
use std::num::NonZeroU16;

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use skerry_codec::{decode_packet, encode, Packet, ProtocolVersion, Publish, QoS, MAX_PACKET_SIZE};

fn sample() -> Packet {
    let topic = "devices/eu-west/building-17/floor-04/room-412/sensor-0042/reading";
    let topic = &topic[..64];
    let mut publish = Publish::new(topic, vec![0xA5u8; 256]);
    publish.qos = QoS::AtLeastOnce;
    publish.packet_id = NonZeroU16::new(42);
    Packet::Publish(publish)
}

fn publish(c: &mut Criterion) {
    let packet = sample();
    let mut group = c.benchmark_group("publish");
    group.throughput(Throughput::Elements(1));
    for (name, version) in [("v311", ProtocolVersion::V311), ("v5", ProtocolVersion::V5)] {
        let mut encoded = BytesMut::new();
        encode(&packet, version, &mut encoded).expect("encodes");

        // A connection's read buffer: the socket appends the packet, the
        // decoder splits it off; the decoded packet is dropped each time.
        let mut stream = BytesMut::with_capacity(64 * 1024);
        group.bench_function(format!("decode/{name}"), |b| {
            b.iter(|| {
                stream.extend_from_slice(&encoded);
                decode_packet(&mut stream, version, MAX_PACKET_SIZE).expect("decodes")
            })
        });

        // The same packet from a fresh buffer each time (allocation and
        // copy outside the measurement).
        group.bench_function(format!("decode_fresh/{name}"), |b| {
            b.iter_batched(
                || encoded.clone(),
                |mut buf| decode_packet(&mut buf, version, MAX_PACKET_SIZE).expect("decodes"),
                BatchSize::SmallInput,
            )
        });

        let mut buf = BytesMut::with_capacity(1024);
        group.bench_function(format!("encode/{name}"), |b| {
            b.iter(|| {
                buf.clear();
                encode(black_box(&packet), version, &mut buf).expect("encodes");
            })
        });
    }
    group.finish();
}

criterion_group!(benches, publish);
criterion_main!(benches);
