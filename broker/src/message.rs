//! An application message as it travels through a node: received once,
//! shared by every subscriber it fans out to (`Arc<Message>`, payload as
//! `Bytes`), and turned into a PUBLISH per recipient at send time.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use skerry_codec::{ByteStr, PublishProperties, QoS};

use crate::router::SessionKey;

/// A message accepted from a publisher (or a will, or `$SYS`).
#[derive(Debug, Clone)]
pub(crate) struct Message {
    /// Topic name (aliases already resolved).
    pub(crate) topic: ByteStr,
    /// Message body.
    pub(crate) payload: Bytes,
    /// QoS it was published with; each subscriber gets at most its own.
    pub(crate) qos: QoS,
    /// RETAIN flag as published.
    pub(crate) retain: bool,
    /// v5 properties passed through to subscribers (topic alias and
    /// subscription identifiers removed; expiry recomputed at send time).
    pub(crate) properties: PublishProperties,
    /// When the message stops being delivered (v5 Message Expiry Interval).
    pub(crate) expires_at: Option<SystemTime>,
    /// The publishing session, for `no_local` subscriptions.
    pub(crate) publisher: Option<SessionKey>,
}

impl Message {
    /// Builds a message from what a client published, at `now`.
    pub(crate) fn new(
        topic: ByteStr,
        payload: Bytes,
        qos: QoS,
        retain: bool,
        mut properties: PublishProperties,
        publisher: Option<SessionKey>,
    ) -> Self {
        properties.topic_alias = None;
        properties.subscription_identifiers.clear();
        let expires_at = properties
            .message_expiry_interval
            .map(|secs| SystemTime::now() + Duration::from_secs(u64::from(secs)));
        Self {
            topic,
            payload,
            qos,
            retain,
            properties,
            expires_at,
            publisher,
        }
    }

    /// Whole seconds left before expiry (at least 1), `None` when the
    /// message never expires, `Err(Expired)` once it has.
    pub(crate) fn remaining_expiry(&self, now: SystemTime) -> Result<Option<u32>, Expired> {
        let Some(at) = self.expires_at else { return Ok(None) };
        match at.duration_since(now) {
            Ok(left) if !left.is_zero() => Ok(Some(u32::try_from(left.as_secs().max(1)).unwrap_or(u32::MAX))),
            _ => Err(Expired),
        }
    }
}

/// The message expired before it could be delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Expired;

/// One message on its way to one session.
#[derive(Debug, Clone)]
pub(crate) struct Delivery {
    /// The shared message.
    pub(crate) msg: Arc<Message>,
    /// QoS for this recipient: the lower of published and subscribed.
    pub(crate) qos: QoS,
    /// RETAIN flag to send (retained-on-subscribe, or retain-as-published).
    pub(crate) retain: bool,
    /// Subscription identifiers of the matching subscriptions (v5).
    pub(crate) subscription_ids: Vec<u32>,
    /// Where the delivery sits in the node's store, once it was queued for
    /// an offline persistent session (`None` for live deliveries).
    pub(crate) stored: Option<StoredRef>,
}

/// A delivery's place in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StoredRef {
    /// The stored message.
    pub(crate) msg: skerry_store::MsgId,
    /// Its entry in the session's stored queue; `None` once the message is
    /// in flight and the session record refers to it instead.
    pub(crate) seq: Option<skerry_store::Seq>,
}
