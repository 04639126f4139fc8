//! Integration tests of the codec through its public API: property-based
//! round trips for every packet type and version, every malformed case
//! the decoder must refuse, and the connection-level decoder and sniffer.

mod decoder;
mod encode;
mod malformed;
mod roundtrip;
mod strategies;
