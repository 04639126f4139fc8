//! Start-up from the store: persistent sessions come back offline with
//! their subscriptions in the router, their offline queues, their QoS 2
//! state and their expiry timers; retained messages come back. Runs before
//! any listener accepts.

use std::collections::{HashMap, VecDeque};
use std::num::NonZeroU16;
use std::sync::Arc;
use std::time::SystemTime;

use skerry_store::{LoadedSession, MsgId, QueueEntry, Snapshot, StoredInflight, StoredMessage, NEVER_EXPIRES};
use tracing::info;

use super::persist;
use super::NodeShared;
use crate::message::{Delivery, Message, StoredRef};
use crate::router::Destination;
use crate::session::{Inflight, SessionState};
use crate::stats::NodeStats;

/// Messages of the snapshot, each made once however many queues hold it.
struct Messages<'a> {
    stored: &'a HashMap<MsgId, Arc<StoredMessage>>,
    made: HashMap<MsgId, Arc<Message>>,
}

impl Messages<'_> {
    fn delivery(&mut self, e: &QueueEntry, seq: Option<skerry_store::Seq>) -> Option<Delivery> {
        let msg = match self.made.get(&e.msg) {
            Some(m) => Arc::clone(m),
            None => {
                let m = Arc::new(persist::message(self.stored.get(&e.msg)?));
                self.made.insert(e.msg, Arc::clone(&m));
                m
            }
        };
        Some(Delivery {
            msg,
            qos: persist::qos(e.qos),
            retain: e.retain,
            subscription_ids: e.subscription_ids.clone(),
            stored: Some(StoredRef { msg: e.msg, seq }),
        })
    }
}

impl NodeShared {
    /// Rebuilds sessions and retained messages from a snapshot.
    pub(crate) fn restore(self: &Arc<Self>, snapshot: Snapshot) {
        let Snapshot {
            sessions,
            messages,
            retained,
            report,
        } = snapshot;
        let mut made = Messages {
            stored: &messages,
            made: HashMap::new(),
        };
        for s in sessions {
            self.restore_session(s, &mut made);
        }
        {
            let mut store = self.retained.write();
            for r in &retained {
                let _ = store.set(&r.topic, Arc::new(persist::message(r)));
            }
        }
        NodeStats::add(&self.stats.queue_message_expired, report.expired_messages as u64);
        NodeStats::add(&self.stats.session_expired, report.expired_sessions as u64);
        info!(
            node = %self.name,
            sessions = report.sessions,
            queued = report.queued,
            messages = report.messages,
            retained = report.retained,
            expired_sessions = report.expired_sessions,
            expired_messages = report.expired_messages,
            orphans = report.orphans,
            "store loaded"
        );
    }

    fn restore_session(self: &Arc<Self>, s: LoadedSession, made: &mut Messages<'_>) {
        let session = self.sessions.lock().get_or_create(&s.client_id).0;
        let record = s.session;
        let mut state = SessionState {
            awaiting_rel: record
                .awaiting_rel
                .iter()
                .filter_map(|id| NonZeroU16::new(*id))
                .collect(),
            last_packet_id: record.last_packet_id,
            ..SessionState::default()
        };
        for sub in &record.subscriptions {
            self.subscribe(&session, &mut state, &sub.filter, persist::options(sub), sub.id);
        }
        self.router.write().set_online(&Destination::Local(session.key), false);
        for i in &record.inflight {
            let (id, entry) = match i {
                StoredInflight::Publish { packet_id, delivery } => match made.delivery(delivery, None) {
                    Some(d) => (*packet_id, Inflight::Publish(d)),
                    None => continue,
                },
                StoredInflight::Release { packet_id } => (*packet_id, Inflight::Release),
            };
            if let Some(id) = NonZeroU16::new(id) {
                state.inflight.push_back((id, entry));
            }
        }
        let queue: VecDeque<Delivery> = s
            .queue
            .iter()
            .filter_map(|q| made.delivery(&q.entry, Some(q.seq)))
            .collect();
        let generation = {
            let mut inner = session.inner.lock();
            inner.state = Some(Box::new(state));
            inner.queue = queue;
            inner.expiry = record.expiry;
            inner.username = record.username.map(String::into_boxed_str);
            inner.disconnected_at = Some(record.disconnected_at);
            inner.generation
        };
        if record.expiry != NEVER_EXPIRES {
            let gone = SystemTime::now()
                .duration_since(record.disconnected_at)
                .unwrap_or_default()
                .as_secs();
            let left = u64::from(record.expiry).saturating_sub(gone).max(1);
            let left = u32::try_from(left).unwrap_or(record.expiry);
            let node = Arc::clone(self);
            tokio::spawn(async move { node.expire_later(session, generation, 0, left).await });
        }
    }
}
