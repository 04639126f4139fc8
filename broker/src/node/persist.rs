//! What the node writes to its store, and when: a QoS 1/2 message queued
//! for an offline persistent session (stored once per publish however many
//! sessions it is queued for), the removal of a queued message its client
//! acknowledged, a session's whole state when its connection ends, the
//! session's removal when it ends, retained messages set and cleared.
//!
//! Ordering matters, because the writer applies batches in submit order: a
//! publish submits while it still holds the session registry (so a later
//! attach, and the acks that follow it, come after), and a detach submits
//! under the session's lock (so a later offline enqueue comes after it).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use skerry_codec::{PayloadFormat, PublishProperties, QoS, RetainHandling, SubscriptionOptions};
use skerry_store::{
    Commit, Durability, MsgId, Op, QueueEntry, SessionRecord, Store, StoredInflight, StoredMessage, StoredProperties,
    StoredSubscription,
};

use super::NodeShared;
use crate::message::{Delivery, Message, StoredRef};
use crate::session::{Inflight, Inner, Session, SessionState};

/// The store ops one publish causes, collected while it fans out.
pub(crate) struct Batch<'a> {
    store: &'a dyn Store,
    msg: &'a Arc<Message>,
    id: Option<MsgId>,
    ops: Vec<Op>,
}

impl<'a> Batch<'a> {
    pub(crate) fn new(store: &'a dyn Store, msg: &'a Arc<Message>) -> Self {
        Self {
            store,
            msg,
            id: None,
            ops: Vec::new(),
        }
    }

    /// Records that `d` goes into the offline queue of `client`.
    pub(crate) fn enqueue(&mut self, client: &Arc<str>, d: &mut Delivery) {
        let id = *self.id.get_or_insert_with(|| self.store.next_message_id());
        self.ops.push(enqueue(self.store, client, d, id));
    }

    /// Records that a full queue gave up `d`.
    pub(crate) fn dropped(&mut self, client: &Arc<str>, d: &Delivery) {
        if let Some(StoredRef { seq: Some(seq), .. }) = d.stored {
            self.ops.push(Op::Dequeue {
                client: Arc::clone(client),
                seq,
            });
        }
    }

    /// Records the retained message this publish sets or clears.
    pub(crate) fn retained(&mut self) {
        if self.msg.topic.starts_with("$SYS/") {
            // Regenerated every sys_interval; not worth a write each time.
            return;
        }
        self.ops.push(if self.msg.payload.is_empty() {
            Op::ClearRetained {
                topic: self.msg.topic.to_string(),
            }
        } else {
            Op::SetRetained {
                message: stored_message(self.msg),
            }
        });
    }

    /// Submits the ops; returns the commit when the publisher's
    /// acknowledgement must wait for it (`sync` durability).
    pub(crate) fn submit(mut self) -> Option<Commit> {
        if self.ops.is_empty() {
            return None;
        }
        if let Some(id) = self.id {
            self.ops.insert(
                0,
                Op::PutMessage {
                    id,
                    message: stored_message(self.msg),
                },
            );
        }
        let commit = self.store.submit(self.ops);
        (self.store.durability() == Durability::Sync).then_some(commit)
    }
}

impl NodeShared {
    /// The client acknowledged (PUBACK, PUBREC) a message that came from its
    /// offline queue: it leaves the store now, not at the next detach.
    pub(crate) fn delivered(&self, session: &Session, d: &Delivery) {
        if let Some(StoredRef { seq: Some(seq), .. }) = d.stored {
            let op = Op::Dequeue {
                client: Arc::clone(&session.client_id),
                seq,
            };
            drop(self.store.submit(vec![op]));
        }
    }

    /// Writes the state of a session that just went offline: what is still
    /// queued, what is in flight, subscriptions. Call under the session lock.
    pub(crate) fn persist_offline(&self, session: &Session, inner: &mut Inner) {
        let Some(state) = inner.state.as_mut() else { return };
        let client = &session.client_id;
        let mut puts = Puts {
            store: &*self.store,
            ops: Vec::new(),
            ids: HashMap::new(),
        };
        let keep = inner
            .queue
            .iter()
            .filter_map(|d| d.stored.and_then(|s| s.seq))
            .collect();
        puts.ops.push(Op::RetainQueue {
            client: Arc::clone(client),
            keep,
        });
        for d in inner
            .queue
            .iter_mut()
            .filter(|d| d.stored.is_none_or(|s| s.seq.is_none()))
        {
            let id = puts.id_of(d);
            puts.ops.push(enqueue(&*self.store, client, d, id));
        }
        let inflight = state
            .inflight
            .iter_mut()
            .map(|(packet_id, i)| match i {
                Inflight::Publish(d) => {
                    let id = puts.id_of(d);
                    // From here on the session record refers to the message.
                    d.stored = Some(StoredRef { msg: id, seq: None });
                    StoredInflight::Publish {
                        packet_id: packet_id.get(),
                        delivery: entry(d, id),
                    }
                }
                Inflight::Release => StoredInflight::Release {
                    packet_id: packet_id.get(),
                },
            })
            .collect();
        let record = session_record(
            inner.expiry,
            inner.disconnected_at,
            inner.username.as_deref().map(str::to_owned),
            state,
            inflight,
        );
        puts.ops.push(Op::PutSession {
            client: Arc::clone(client),
            session: record,
        });
        drop(self.store.submit(puts.ops));
    }

    /// Removes an ended session from the store.
    pub(crate) fn forget_session(&self, session: &Session) {
        drop(self.store.submit(vec![Op::RemoveSession {
            client: Arc::clone(&session.client_id),
        }]));
    }
}

/// Messages a detach stores, each once.
struct Puts<'a> {
    store: &'a dyn Store,
    ops: Vec<Op>,
    ids: HashMap<*const Message, MsgId>,
}

impl Puts<'_> {
    /// The stored id of `d`'s message, storing it if it is not yet.
    fn id_of(&mut self, d: &Delivery) -> MsgId {
        if let Some(s) = d.stored {
            return s.msg;
        }
        let store = self.store;
        let ops = &mut self.ops;
        *self.ids.entry(Arc::as_ptr(&d.msg)).or_insert_with(|| {
            let id = store.next_message_id();
            ops.push(Op::PutMessage {
                id,
                message: stored_message(&d.msg),
            });
            id
        })
    }
}

/// The op that puts `d` (message `id`) at the end of `client`'s stored
/// queue; `d` remembers where it is stored.
fn enqueue(store: &dyn Store, client: &Arc<str>, d: &mut Delivery, id: MsgId) -> Op {
    let seq = store.next_seq();
    d.stored = Some(StoredRef {
        msg: id,
        seq: Some(seq),
    });
    Op::Enqueue {
        client: Arc::clone(client),
        seq,
        entry: entry(d, id),
    }
}

fn entry(d: &Delivery, msg: MsgId) -> QueueEntry {
    QueueEntry {
        msg,
        qos: d.qos as u8,
        retain: d.retain,
        subscription_ids: d.subscription_ids.clone(),
    }
}

fn session_record(
    expiry: u32,
    disconnected_at: Option<SystemTime>,
    username: Option<String>,
    state: &SessionState,
    inflight: Vec<StoredInflight>,
) -> SessionRecord {
    // Both collections iterate in order: the record is the same for the same state.
    let subscriptions: Vec<StoredSubscription> = state
        .subscriptions
        .iter()
        .map(|(filter, s)| StoredSubscription {
            filter: filter.clone(),
            qos: s.options.qos as u8,
            no_local: s.options.no_local,
            retain_as_published: s.options.retain_as_published,
            retain_handling: s.options.retain_handling as u8,
            id: s.id,
        })
        .collect();
    let awaiting_rel: Vec<u16> = state.awaiting_rel.iter().map(|id| id.get()).collect();
    SessionRecord {
        expiry,
        disconnected_at: disconnected_at.unwrap_or_else(SystemTime::now),
        username,
        subscriptions,
        inflight,
        awaiting_rel,
        last_packet_id: state.last_packet_id,
    }
}

/// A message as the store keeps it.
pub(crate) fn stored_message(m: &Message) -> StoredMessage {
    let p = &m.properties;
    StoredMessage {
        topic: m.topic.to_string(),
        payload: m.payload.clone(),
        qos: m.qos as u8,
        retain: m.retain,
        expires_at: m.expires_at,
        properties: StoredProperties {
            payload_format_indicator: p.payload_format_indicator.map(|f| f as u8),
            message_expiry_interval: p.message_expiry_interval,
            content_type: p.content_type.clone(),
            response_topic: p.response_topic.clone(),
            correlation_data: p.correlation_data.clone(),
            user_properties: p.user_properties.clone(),
        },
    }
}

pub(crate) fn qos(q: u8) -> QoS {
    QoS::try_from(q).unwrap_or(QoS::AtLeastOnce)
}

/// A stored message back as a message (publisher unknown after a restart).
pub(crate) fn message(s: &StoredMessage) -> Message {
    let p = &s.properties;
    let properties = PublishProperties {
        payload_format_indicator: p.payload_format_indicator.map(|f| match f {
            1 => PayloadFormat::Utf8,
            _ => PayloadFormat::Unspecified,
        }),
        message_expiry_interval: p.message_expiry_interval,
        content_type: p.content_type.clone(),
        response_topic: p.response_topic.clone(),
        correlation_data: p.correlation_data.clone(),
        user_properties: p.user_properties.clone(),
        ..Default::default()
    };
    Message {
        topic: s.topic.as_str().into(),
        payload: s.payload.clone(),
        qos: qos(s.qos),
        retain: s.retain,
        properties,
        expires_at: s.expires_at,
        publisher: None,
    }
}

/// Subscription options back from the store.
pub(crate) fn options(s: &StoredSubscription) -> SubscriptionOptions {
    SubscriptionOptions {
        qos: qos(s.qos),
        no_local: s.no_local,
        retain_as_published: s.retain_as_published,
        retain_handling: match s.retain_handling {
            1 => RetainHandling::SendIfNew,
            2 => RetainHandling::DoNotSend,
            _ => RetainHandling::SendAtSubscribe,
        },
    }
}
