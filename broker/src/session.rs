//! Sessions: what a node keeps for a client id across connections.
//!
//! A session is `Online` while a connection is attached (the connection task
//! then owns the session's protocol state and receives deliveries through
//! its bounded [`Mailbox`]) and `Offline` otherwise (the state is parked here and
//! QoS 1/2 deliveries go to the offline queue). Attaching and detaching
//! happen under the session's lock, so a delivery racing a disconnect ends
//! up either in the channel or in the queue, never lost.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::num::NonZeroU16;
use std::sync::Arc;
use std::time::SystemTime;

use parking_lot::Mutex;
use skerry_codec::{QoS, ReasonCode, SubscriptionOptions};
use skerry_config::QueueType;
use tokio::sync::Notify;

use crate::mailbox::{Mailbox, PostError};
use crate::message::{Delivery, Message};
use crate::node::Batch;
use crate::router::SessionKey;
use crate::stats::NodeStats;

/// Session expiry meaning "never" (MQTT 5: 0xFFFFFFFF).
pub(crate) const NEVER_EXPIRES: u32 = u32::MAX;

/// A subscription as the session remembers it (the router holds the
/// matching structure; this is for resubscription, admin and persistence).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Subscription {
    /// Options from the SUBSCRIBE.
    pub(crate) options: SubscriptionOptions,
    /// v5 subscription identifier.
    pub(crate) id: Option<u32>,
}

/// An outgoing QoS 1/2 message not yet fully acknowledged.
#[derive(Debug, Clone)]
pub(crate) enum Inflight {
    /// PUBLISH sent; waiting for PUBACK (QoS 1) or PUBREC (QoS 2).
    Publish(Delivery),
    /// PUBREL sent; waiting for PUBCOMP.
    Release,
}

/// Protocol state that survives reconnection. Ordered collections: they
/// carry no hasher state, and this lives in every connection.
#[derive(Debug, Default)]
pub(crate) struct SessionState {
    /// Filter (as subscribed, including `$share/...`) -> subscription.
    pub(crate) subscriptions: BTreeMap<String, Subscription>,
    /// Outgoing messages awaiting acknowledgement, in send order.
    pub(crate) inflight: VecDeque<(NonZeroU16, Inflight)>,
    /// Incoming QoS 2 packet ids received but not yet released (PUBREL).
    pub(crate) awaiting_rel: BTreeSet<NonZeroU16>,
    /// Last packet id handed out for an outgoing message.
    pub(crate) last_packet_id: u16,
}

impl SessionState {
    /// A free packet id for an outgoing message, or `None` when all 65535
    /// are in flight.
    pub(crate) fn next_packet_id(&mut self) -> Option<NonZeroU16> {
        for _ in 0..u16::MAX {
            self.last_packet_id = self.last_packet_id.wrapping_add(1);
            let Some(id) = NonZeroU16::new(self.last_packet_id) else {
                continue;
            };
            if !self.inflight.iter().any(|(p, _)| *p == id) {
                return Some(id);
            }
        }
        None
    }
}

/// A message a disconnected client left behind, published after its delay.
#[derive(Debug, Clone)]
pub(crate) struct PendingWill {
    /// The will as a message.
    pub(crate) msg: Message,
}

/// What a node tells an attached connection from outside its task.
#[derive(Debug)]
pub(crate) enum Control {
    /// Another connection takes the session: send DISCONNECT 0x8E (v5),
    /// detach, then notify.
    TakeOver(Arc<Notify>),
    /// An operator closes the connection (v5 DISCONNECT with this reason).
    Disconnect(ReasonCode),
}

/// The mutable part of a session.
#[derive(Debug)]
pub(crate) struct Inner {
    /// The attached connection's mailbox, when online.
    pub(crate) link: Option<Arc<Mailbox>>,
    /// The protocol state while offline (`None` while a connection owns it).
    pub(crate) state: Option<Box<SessionState>>,
    /// QoS 1/2 messages kept while offline.
    pub(crate) queue: VecDeque<Delivery>,
    /// Session expiry interval in seconds ([`NEVER_EXPIRES`] = never).
    pub(crate) expiry: u32,
    /// Bumped at every attach (wrapping); timers started for an older
    /// generation are void.
    pub(crate) generation: u32,
    /// A will waiting for its delay.
    pub(crate) pending_will: Option<Box<PendingWill>>,
    /// Username of the last connection, for admin and ACLs.
    pub(crate) username: Option<Box<str>>,
    /// When the last connection ended (`None` while online).
    pub(crate) disconnected_at: Option<SystemTime>,
}

/// A session.
#[derive(Debug)]
pub(crate) struct Session {
    /// Key of the session in the router.
    pub(crate) key: SessionKey,
    /// The client identifier.
    pub(crate) client_id: Arc<str>,
    /// Serialises connects for this client id (takeover runs under it).
    pub(crate) attach_lock: tokio::sync::Mutex<()>,
    /// State shared with the delivery path.
    pub(crate) inner: Mutex<Inner>,
}

/// Queue limits applied on delivery.
#[derive(Debug, Clone, Copy)]
pub(crate) struct QueueLimits {
    /// Most messages in an offline queue.
    pub(crate) max_offline: usize,
    /// Which message a full queue gives up.
    pub(crate) queue_type: QueueType,
}

impl Session {
    /// Wakes the attached connection, if any (it then looks at the node's
    /// shutdown flag and its keep-alive deadline).
    pub(crate) fn wake_connection(&self) {
        if let Some(mailbox) = &self.inner.lock().link {
            mailbox.wake();
        }
    }

    /// A new, offline, empty session.
    pub(crate) fn new(key: SessionKey, client_id: Arc<str>) -> Self {
        Self {
            key,
            client_id,
            attach_lock: tokio::sync::Mutex::new(()),
            inner: Mutex::new(Inner {
                link: None,
                state: Some(Box::default()),
                queue: VecDeque::new(),
                expiry: 0,
                generation: 0,
                pending_will: None,
                username: None,
                disconnected_at: None,
            }),
        }
    }

    /// Hands a message to the session: to the connection when online, to
    /// the offline queue when offline and persistent (QoS 1/2 only).
    /// Queued messages are recorded in `batch` for the store.
    ///
    /// A message for a connected client whose mailbox is full is handed
    /// back with the mailbox, so the publisher can wait for room
    /// (backpressure) instead of the message being dropped.
    pub(crate) fn deliver(
        &self,
        delivery: Delivery,
        limits: QueueLimits,
        stats: &NodeStats,
        batch: &mut Batch<'_>,
    ) -> Option<(Arc<Mailbox>, Delivery)> {
        let mut inner = self.inner.lock();
        let delivery = match &inner.link {
            Some(mailbox) => match mailbox.try_post(delivery) {
                Ok(()) => return None,
                Err(PostError::Full(d)) => return Some((Arc::clone(mailbox), d)),
                // The connection is ending; it will park its state next.
                Err(PostError::Closed(d)) => d,
            },
            None => delivery,
        };
        if delivery.qos == QoS::AtMostOnce || inner.expiry == 0 {
            return None;
        }
        let dropped = enqueue(&mut inner.queue, delivery, limits, stats, |d| {
            batch.enqueue(&self.client_id, d)
        });
        if let Some(d) = dropped {
            batch.dropped(&self.client_id, &d);
        }
        None
    }
}

/// Appends to an offline queue, dropping by `queue_type` when full; `store`
/// sees the delivery just before it is queued. Returns the delivery a full
/// `lifo` queue gave up.
pub(crate) fn enqueue(
    queue: &mut VecDeque<Delivery>,
    mut d: Delivery,
    limits: QueueLimits,
    stats: &NodeStats,
    store: impl FnOnce(&mut Delivery),
) -> Option<Delivery> {
    let mut dropped = None;
    if queue.len() >= limits.max_offline {
        NodeStats::inc(&stats.queue_message_drop);
        match limits.queue_type {
            QueueType::Fifo => return None,
            QueueType::Lifo => dropped = queue.pop_front(),
        }
        if limits.max_offline == 0 {
            return dropped;
        }
    }
    NodeStats::inc(&stats.queue_message_in);
    store(&mut d);
    queue.push_back(d);
    dropped
}
