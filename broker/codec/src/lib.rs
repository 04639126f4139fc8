//! The MQTT codec of Skerry: every packet of MQTT 3.1, 3.1.1 and 5.0,
//! without I/O. The broker, the load balancer and the load generator all
//! use it.
//!
//! - Decoding: [`Decoder`] for a connection (it learns the version from
//!   CONNECT and refuses packets the peer may not send), [`decode_packet`]
//!   for one packet of a known version, [`sniff_connect`] for the
//!   balancer, which only needs the first packet.
//! - Encoding: [`encode`] and [`encoded_len`].
//! - Topic rules: the [`topic`] module.
//! - The balancer's socket handover to a node in another process: the
//!   [`handover`] module.
//!
//! Decoding returns `Ok(None)` until a whole packet is buffered, checks
//! the packet size from the fixed header before anything is buffered or
//! allocated for the body, never panics on any input, and maps every
//! malformed input to an MQTT 5.0 [`ReasonCode`] through
//! [`DecodeError::reason_code`]. Payloads are [`bytes::Bytes`] slices of
//! the receive buffer, and PUBLISH topics are [`ByteStr`], so one message
//! fans out to any number of subscribers without a copy.
//!
//! ```
//! use bytes::BytesMut;
//! use skerry_codec::{encode, Connect, Decoder, Packet, ProtocolVersion};
//!
//! let mut buf = BytesMut::new();
//! let connect = Connect::new(ProtocolVersion::V5, "sensor-1");
//! encode(&Packet::Connect(connect.clone()), ProtocolVersion::V5, &mut buf)?;
//!
//! let mut decoder = Decoder::new(65_536);
//! assert_eq!(decoder.decode(&mut buf)?, Some(Packet::Connect(connect)));
//! assert_eq!(decoder.version(), Some(ProtocolVersion::V5));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs)]

mod ack;
mod bytestr;
mod connack;
mod connect;
mod control;
mod decode;
mod decoder;
mod encode;
mod error;
pub mod handover;
mod packet;
mod properties;
mod property;
mod protocol;
mod publish;
mod reason;
mod sniff;
mod subscribe;
pub mod topic;
mod wire;

pub use ack::{Ack, PubAck, PubComp, PubRec, PubRel};
pub use bytestr::ByteStr;
pub use connack::ConnAck;
pub use connect::{Connect, LastWill};
pub use control::{Auth, Disconnect};
pub use decode::decode_packet;
pub use decoder::Decoder;
pub use encode::{encode, encoded_len};
pub use error::{DecodeError, EncodeError};
pub use packet::Packet;
pub use properties::{
    AckProperties, AuthProperties, ConnAckProperties, ConnectProperties, DisconnectProperties, PayloadFormat,
    PublishProperties, SubscribeProperties, UnsubscribeProperties, WillProperties,
};
pub use property::PropertyId;
pub use protocol::{InvalidQoS, PacketType, ProtocolVersion, QoS, MAX_PACKET_SIZE, MAX_REMAINING_LENGTH};
pub use publish::Publish;
pub use reason::ReasonCode;
pub use sniff::{peek_connect_version, sniff_connect};
pub use subscribe::{RetainHandling, SubAck, Subscribe, SubscriptionOptions, UnsubAck, Unsubscribe};
