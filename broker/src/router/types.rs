//! Value types the router stores with each subscription: who receives
//! (`Destination`) and with which per-subscription options.

use std::fmt;
use std::sync::Arc;

/// Opaque key of a session on this node.
///
/// The session layer allocates keys; the router only compares and hashes
/// them. A key must not be reused while the router still holds
/// subscriptions for it (call [`Router::remove_all`](super::Router::remove_all)
/// first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionKey(pub u64);

impl fmt::Display for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "session#{}", self.0)
    }
}

/// Name of a cluster node, as membership knows it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeName(Arc<str>);

impl NodeName {
    /// Wraps a node name.
    pub fn new(name: impl Into<Arc<str>>) -> Self {
        Self(name.into())
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a matched message goes.
///
/// Local sessions and remote nodes live in the same trie: a remote node is
/// subscribed to a filter when one of its sessions is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Destination {
    /// A session on this node.
    Local(SessionKey),
    /// Another cluster node; it matches the message again against its own
    /// local subscribers.
    Remote(NodeName),
}

impl Destination {
    /// Whether this destination is a session on this node.
    pub fn is_local(&self) -> bool {
        matches!(self, Self::Local(_))
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Local(key) => write!(f, "{key}"),
            Self::Remote(node) => write!(f, "node {node}"),
        }
    }
}

/// Maximum QoS granted to a subscription.
///
/// Kept here rather than taken from the codec so the router stays free of
/// wire concerns; ordered so that merging overlapping subscriptions is `max`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum QoS {
    /// At most once.
    #[default]
    AtMostOnce = 0,
    /// At least once.
    AtLeastOnce = 1,
    /// Exactly once.
    ExactlyOnce = 2,
}

impl QoS {
    /// The QoS for a wire value, `None` when it is not 0, 1 or 2.
    pub fn from_u8(value: u8) -> Option<Self> {
        match value {
            0 => Some(Self::AtMostOnce),
            1 => Some(Self::AtLeastOnce),
            2 => Some(Self::ExactlyOnce),
            _ => None,
        }
    }
}

/// Options a SUBSCRIBE attaches to one filter.
///
/// The router interprets only `no_local`; the rest is carried to the
/// delivery so the session can apply it. `retain_handling` is not stored: it
/// only matters at subscribe time, where the caller uses
/// [`SubscribeOutcome::replaced`](super::SubscribeOutcome::replaced).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct SubscriptionOptions {
    /// Maximum QoS the subscriber accepts.
    pub qos: QoS,
    /// MQTT 5: do not deliver messages published by the same session.
    /// Ignored on shared subscriptions, where the spec makes it a protocol
    /// error the session layer rejects.
    pub no_local: bool,
    /// MQTT 5: keep the RETAIN flag of the published message on delivery.
    pub retain_as_published: bool,
    /// MQTT 5 subscription identifier, echoed in matching PUBLISH packets.
    pub subscription_id: Option<u32>,
}
