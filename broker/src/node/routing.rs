//! The publish path and subscription changes: retained store, one trie walk
//! per message, one member per shared group, one delivery per session.

use std::sync::Arc;

use skerry_codec::{QoS, SubscriptionOptions};
use skerry_store::Commit;

use super::persist::Batch;
use super::NodeShared;
use crate::mailbox::Mailbox;
use crate::message::{Delivery, Message};
use crate::router::{self, Destination};
use crate::session::{Session, SessionState, Subscription};
use crate::stats::NodeStats;

/// How long a publisher waits, per PUBLISH and for all its slow recipients
/// together, for room in their mailboxes before the message is dropped for
/// them (counted). Bounded so that two clients publishing to each other
/// cannot wait on each other for ever, and one stuck subscriber costs a
/// publisher at most this per message.
pub(crate) const CONGESTION_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// What routing one message did.
pub(crate) struct Published {
    /// Sessions the message was handed to.
    pub(crate) delivered: usize,
    /// With `sync` durability, the commit the publisher's acknowledgement waits for.
    pub(crate) commit: Option<Commit>,
    /// Deliveries whose connected recipient had no room yet.
    pub(crate) congested: Vec<Congested>,
}

/// A delivery waiting for room in a connected recipient's channel.
pub(crate) struct Congested {
    session: Arc<Session>,
    mailbox: Arc<Mailbox>,
    delivery: Delivery,
}

/// What a SUBSCRIBE changed, for retained-message handling.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Subscribed {
    /// The session already had this filter (options replaced).
    pub(crate) replaced: bool,
}

impl Subscribed {
    /// Whether retained messages go out for this subscription (v5 Retain Handling).
    pub(crate) fn send_retained(self, options: SubscriptionOptions) -> bool {
        match options.retain_handling {
            skerry_codec::RetainHandling::SendAtSubscribe => true,
            skerry_codec::RetainHandling::SendIfNew => !self.replaced,
            skerry_codec::RetainHandling::DoNotSend => false,
        }
    }
}

fn to_router_qos(q: QoS) -> router::QoS {
    match q {
        QoS::AtMostOnce => router::QoS::AtMostOnce,
        QoS::AtLeastOnce => router::QoS::AtLeastOnce,
        QoS::ExactlyOnce => router::QoS::ExactlyOnce,
    }
}

fn from_router_qos(q: router::QoS) -> QoS {
    match q {
        router::QoS::AtMostOnce => QoS::AtMostOnce,
        router::QoS::AtLeastOnce => QoS::AtLeastOnce,
        router::QoS::ExactlyOnce => QoS::ExactlyOnce,
    }
}

impl NodeShared {
    /// Routes a message to every matching session; returns how many got it.
    pub(crate) fn publish(&self, msg: Message) -> usize {
        let published = self.publish_durable(msg);
        // Nobody waits for a will or `$SYS`: what finds no room is dropped.
        NodeStats::add(&self.stats.queue_message_drop, published.congested.len() as u64);
        published.delivered
    }

    /// Routes a message; also returns, with `sync` durability, the commit
    /// that makes it durable for the offline persistent sessions it was
    /// queued for (and as retained): the publisher's acknowledgement waits for it.
    pub(crate) fn publish_durable(&self, msg: Message) -> Published {
        let msg = Arc::new(msg);
        let mut batch = Batch::new(&*self.store, &msg);
        if msg.retain {
            let mut retained = self.retained.write();
            if msg.payload.is_empty() {
                retained.remove(&msg.topic);
            } else {
                // The topic was validated by the codec; a too-deep topic is simply not retained.
                let _ = retained.set(&msg.topic, Arc::clone(&msg));
            }
            batch.retained();
        }
        let matches = self.router.read().match_topic(&msg.topic, msg.publisher);
        let shared = matches.shared.iter().map(|s| {
            let m = s.member();
            (
                m.destination.clone(),
                m.options.qos,
                m.options.retain_as_published,
                m.options.subscription_id.into_iter().collect(),
            )
        });
        let targets: Vec<_> = matches
            .deliveries
            .into_iter()
            .map(|d| (d.destination, d.qos, d.retain_as_published, d.subscription_ids))
            .chain(shared)
            .collect();
        let sessions = self.sessions.lock();
        let mut delivered = 0;
        let mut congested = Vec::new();
        for (destination, qos, retain_as_published, subscription_ids) in targets {
            let Destination::Local(key) = destination else { continue };
            let Some(session) = sessions.by_key(key) else { continue };
            let delivery = Delivery {
                msg: Arc::clone(&msg),
                qos: msg.qos.min(from_router_qos(qos)),
                retain: retain_as_published && msg.retain,
                subscription_ids,
                stored: None,
            };
            if let Some((mailbox, delivery)) = session.deliver(delivery, self.limits.queue, &self.stats, &mut batch) {
                congested.push(Congested {
                    session: Arc::clone(session),
                    mailbox,
                    delivery,
                });
            }
            delivered += 1;
        }
        // Submitted before the registry is released: a connection attaching
        // to one of these sessions next (and acknowledging) comes after it.
        let commit = batch.submit();
        drop(sessions);
        NodeStats::add(&self.stats.router_matches_local, delivered as u64);
        Published {
            delivered,
            commit,
            congested,
        }
    }

    /// Waits (until `deadline`) for room in a connected recipient's
    /// mailbox; a recipient that went offline meanwhile gets the message in
    /// its offline queue. Only a wait that runs out drops it.
    pub(crate) async fn wait_for_room(&self, c: Congested, deadline: tokio::time::Instant) {
        match tokio::time::timeout_at(deadline, c.mailbox.post(c.delivery)).await {
            Ok(Ok(())) => {}
            Ok(Err(delivery)) => {
                let msg = Arc::clone(&delivery.msg);
                let mut batch = Batch::new(&*self.store, &msg);
                // Offline now: this queues it (or drops it, counted, if the queue is full).
                let _ = c.session.deliver(delivery, self.limits.queue, &self.stats, &mut batch);
                if let Some(commit) = batch.submit() {
                    let _ = commit.await;
                }
            }
            Err(_) => NodeStats::inc(&self.stats.queue_message_drop),
        }
    }

    /// Adds (or replaces) a subscription of `session`.
    pub(crate) fn subscribe(
        &self,
        session: &Session,
        state: &mut SessionState,
        filter: &str,
        options: SubscriptionOptions,
        id: Option<u32>,
    ) -> Subscribed {
        let router_options = router::SubscriptionOptions {
            qos: to_router_qos(options.qos),
            no_local: options.no_local,
            retain_as_published: options.retain_as_published,
            subscription_id: id,
        };
        let outcome = self
            .router
            .write()
            .subscribe(filter, Destination::Local(session.key), router_options)
            .unwrap_or_default();
        state
            .subscriptions
            .insert(filter.to_owned(), Subscription { options, id });
        Subscribed {
            replaced: outcome.replaced,
        }
    }

    /// Removes a subscription; `false` if there was none.
    pub(crate) fn unsubscribe(&self, session: &Session, state: &mut SessionState, filter: &str) -> bool {
        state.subscriptions.remove(filter);
        self.router
            .write()
            .unsubscribe(filter, &Destination::Local(session.key))
            .is_ok_and(|o| o.removed)
    }

    /// Retained messages matching a new subscription, as deliveries.
    pub(crate) fn retained_for(&self, filter: &str, options: SubscriptionOptions, id: Option<u32>) -> Vec<Delivery> {
        let retained = self.retained.read();
        retained
            .matches(filter)
            .into_iter()
            .map(|msg| Delivery {
                msg: Arc::clone(msg),
                qos: msg.qos.min(options.qos),
                retain: true,
                subscription_ids: id.into_iter().collect(),
                stored: None,
            })
            .collect()
    }
}
