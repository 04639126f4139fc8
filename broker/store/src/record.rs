//! What the store keeps, as plain data: messages, queue entries, session
//! state and retained messages, plus the write operations ([`Op`]) and the
//! start-up [`Snapshot`]. The broker maps its own types onto these, so the
//! store does not depend on the broker (or on the MQTT codec).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;

/// Identifies a stored message; queue entries and inflight entries refer
/// to it. Allocated by [`crate::Store::next_message_id`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MsgId(pub u64);

/// Position in a client's offline queue; increasing in the order messages
/// were queued. Allocated by [`crate::Store::next_seq`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Seq(pub u64);

/// An application message as stored: once, however many queues hold it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// Topic name.
    pub topic: String,
    /// Body.
    pub payload: Bytes,
    /// QoS as published (0, 1 or 2).
    pub qos: u8,
    /// RETAIN as published.
    pub retain: bool,
    /// When the message expires (absolute, so time spent stored or while
    /// the node was down counts). `None`: never.
    pub expires_at: Option<SystemTime>,
    /// MQTT 5 properties passed through to subscribers.
    pub properties: StoredProperties,
}

impl StoredMessage {
    /// Whether the message has expired at `now`.
    pub fn expired(&self, now: SystemTime) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }
}

/// The MQTT 5 PUBLISH properties a message carries to its subscribers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredProperties {
    /// Payload Format Indicator (0 bytes, 1 UTF-8).
    pub payload_format_indicator: Option<u8>,
    /// Message Expiry Interval as published, in seconds.
    pub message_expiry_interval: Option<u32>,
    /// Content Type.
    pub content_type: Option<String>,
    /// Response Topic.
    pub response_topic: Option<String>,
    /// Correlation Data.
    pub correlation_data: Option<Bytes>,
    /// User properties, in order.
    pub user_properties: Vec<(String, String)>,
}

/// One message on its way to one client: a reference to the stored
/// message plus what differs per recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueEntry {
    /// The stored message.
    pub msg: MsgId,
    /// QoS for this recipient.
    pub qos: u8,
    /// RETAIN flag to send.
    pub retain: bool,
    /// Subscription identifiers of the matching subscriptions (MQTT 5).
    pub subscription_ids: Vec<u32>,
}

/// A subscription of a persistent session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSubscription {
    /// The filter as subscribed (including `$share/{group}/`).
    pub filter: String,
    /// Maximum QoS.
    pub qos: u8,
    /// MQTT 5 No Local.
    pub no_local: bool,
    /// MQTT 5 Retain As Published.
    pub retain_as_published: bool,
    /// MQTT 5 Retain Handling (0, 1 or 2).
    pub retain_handling: u8,
    /// MQTT 5 subscription identifier.
    pub id: Option<u32>,
}

/// An outgoing QoS 1/2 message sent and not yet fully acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredInflight {
    /// PUBLISH sent, waiting for PUBACK or PUBREC; holds a message reference.
    Publish {
        /// Packet identifier used.
        packet_id: u16,
        /// The message and how it goes to this client.
        delivery: QueueEntry,
    },
    /// PUBREL sent, waiting for PUBCOMP; the message itself is no longer needed.
    Release {
        /// Packet identifier used.
        packet_id: u16,
    },
}

/// The state of a persistent session, written when its connection ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// Session expiry interval in seconds (`u32::MAX`: never).
    pub expiry: u32,
    /// When the last connection ended; expiry runs from here.
    pub disconnected_at: SystemTime,
    /// Username of the last connection.
    pub username: Option<String>,
    /// Subscriptions.
    pub subscriptions: Vec<StoredSubscription>,
    /// Outgoing messages awaiting acknowledgement, in send order.
    pub inflight: Vec<StoredInflight>,
    /// Incoming QoS 2 packet ids received and not yet released.
    pub awaiting_rel: Vec<u16>,
    /// Last packet id handed out.
    pub last_packet_id: u16,
}

/// Session expiry meaning "never" (MQTT 5: 0xFFFFFFFF).
pub const NEVER_EXPIRES: u32 = u32::MAX;

impl SessionRecord {
    /// Whether the session has expired at `now`.
    pub fn expired(&self, now: SystemTime) -> bool {
        if self.expiry == NEVER_EXPIRES {
            return false;
        }
        let end = self.disconnected_at + std::time::Duration::from_secs(u64::from(self.expiry));
        end <= now
    }

    /// Message references held by the inflight entries.
    pub(crate) fn message_refs(&self) -> impl Iterator<Item = MsgId> + '_ {
        self.inflight.iter().filter_map(|i| match i {
            StoredInflight::Publish { delivery, .. } => Some(delivery.msg),
            StoredInflight::Release { .. } => None,
        })
    }
}

/// One write. Ops are submitted in batches; every batch waiting when the
/// writer wakes goes into one transaction (group commit).
///
/// A message is kept while something refers to it (a queue entry or an
/// inflight entry of a session) and deleted in the transaction that drops
/// its last reference. So a [`Op::PutMessage`] must be submitted in the same
/// batch as its first reference, or it is gone at the end of the transaction.
#[derive(Debug, Clone)]
pub enum Op {
    /// Stores a message under a fresh id.
    PutMessage {
        /// From [`crate::Store::next_message_id`].
        id: MsgId,
        /// The message.
        message: StoredMessage,
    },
    /// Appends to a client's offline queue.
    Enqueue {
        /// The client.
        client: Arc<str>,
        /// From [`crate::Store::next_seq`], after every earlier entry of this client.
        seq: Seq,
        /// What is queued.
        entry: QueueEntry,
    },
    /// Removes one queue entry (acknowledged, or dropped from a full queue).
    /// Removing an entry that is not there does nothing.
    Dequeue {
        /// The client.
        client: Arc<str>,
        /// The entry.
        seq: Seq,
    },
    /// Removes every queue entry of the client except `keep`: the queue as
    /// the broker holds it when the session goes offline again.
    RetainQueue {
        /// The client.
        client: Arc<str>,
        /// Entries still queued.
        keep: Vec<Seq>,
    },
    /// Writes a session's state (replacing the previous one).
    PutSession {
        /// The client.
        client: Arc<str>,
        /// The state.
        session: SessionRecord,
    },
    /// Removes a session with its queue (session ended or expired).
    RemoveSession {
        /// The client.
        client: Arc<str>,
    },
    /// Sets the retained message of `message.topic`.
    SetRetained {
        /// The message (its topic is the key).
        message: StoredMessage,
    },
    /// Clears the retained message of a topic.
    ClearRetained {
        /// The topic.
        topic: String,
    },
}

/// One queued message as loaded.
#[derive(Debug, Clone)]
pub struct Queued {
    /// Its position.
    pub seq: Seq,
    /// What is queued.
    pub entry: QueueEntry,
}

/// A persistent session as loaded.
#[derive(Debug, Clone)]
pub struct LoadedSession {
    /// The client id.
    pub client_id: String,
    /// Its state.
    pub session: SessionRecord,
    /// Its offline queue, oldest first.
    pub queue: Vec<Queued>,
}

/// Everything the store holds, after expired records were removed.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Persistent sessions.
    pub sessions: Vec<LoadedSession>,
    /// Messages referred to by queues and inflight entries.
    pub messages: HashMap<MsgId, Arc<StoredMessage>>,
    /// Retained messages.
    pub retained: Vec<StoredMessage>,
    /// What the load found and removed.
    pub report: LoadReport,
}

/// Counts from a load.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Sessions loaded.
    pub sessions: usize,
    /// Queue entries loaded.
    pub queued: usize,
    /// Distinct messages loaded.
    pub messages: usize,
    /// Retained messages loaded.
    pub retained: usize,
    /// Sessions removed because they expired while stored.
    pub expired_sessions: usize,
    /// Queue and inflight entries removed because their message expired.
    pub expired_messages: usize,
    /// Retained messages removed because they expired.
    pub expired_retained: usize,
    /// Records removed because nothing referred to them, or they referred
    /// to something missing (left by a crash of an older version, or damage).
    pub orphans: usize,
}
