//! Attaching connections to sessions and detaching them: takeover of a
//! session held by another connection, clean start, session expiry and
//! delayed wills.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use skerry_codec::{Connect, LastWill, ProtocolVersion};
use tokio::sync::Notify;
use tracing::debug;

use super::NodeShared;
use crate::mailbox::Mailbox;
use crate::message::{Delivery, Message};
use crate::router::{Destination, SessionKey};
use crate::session::{enqueue, Control, PendingWill, Session, SessionState, NEVER_EXPIRES};
use crate::stats::NodeStats;

/// How long a new connection waits for the old one to let go of a session.
const TAKEOVER_TIMEOUT: Duration = Duration::from_secs(5);

/// Sessions by client id and by router key.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    by_client: HashMap<Arc<str>, Arc<Session>>,
    by_key: HashMap<SessionKey, Arc<Session>>,
    next_key: u64,
}

impl Registry {
    /// The session of `client_id`, created (offline, empty) if missing.
    pub(super) fn get_or_create(&mut self, client_id: &str) -> (Arc<Session>, bool) {
        if let Some(s) = self.by_client.get(client_id) {
            return (Arc::clone(s), true);
        }
        self.next_key += 1;
        let key = SessionKey(self.next_key);
        let session = Arc::new(Session::new(key, Arc::from(client_id)));
        self.by_client
            .insert(Arc::clone(&session.client_id), Arc::clone(&session));
        self.by_key.insert(key, Arc::clone(&session));
        (session, false)
    }

    /// The session routed as `key`.
    pub(crate) fn by_key(&self, key: SessionKey) -> Option<&Arc<Session>> {
        self.by_key.get(&key)
    }

    /// Removes `session`; its client id may already belong to a successor
    /// (a clean start replaced it), which stays.
    fn remove(&mut self, session: &Session) {
        if self
            .by_client
            .get(&session.client_id)
            .is_some_and(|s| s.key == session.key)
        {
            self.by_client.remove(&session.client_id);
        }
        self.by_key.remove(&session.key);
    }

    /// The session of `client_id`, if any.
    pub(crate) fn get(&self, client_id: &str) -> Option<Arc<Session>> {
        self.by_client.get(client_id).cloned()
    }

    /// Every session (a snapshot for the admin API).
    pub(crate) fn all(&self) -> Vec<Arc<Session>> {
        self.by_client.values().cloned().collect()
    }

    /// Every session, for `$SYS` and admin.
    pub(crate) fn len(&self) -> usize {
        self.by_client.len()
    }
}

/// How a connection ended, which decides its will.
#[derive(Debug)]
pub(crate) enum Ending {
    /// DISCONNECT with reason 0x00: the will is discarded.
    Normal,
    /// Anything else: the will is published (after its delay).
    Abnormal,
    /// Another connection took the session; notify it once detached.
    TakenOver(Arc<Notify>),
}

/// What a connection hands back when it ends.
pub(crate) struct Leaving<'a> {
    pub(crate) state: SessionState,
    pub(crate) mailbox: &'a Mailbox,
    /// Deliveries it had taken but not sent.
    pub(crate) pending: VecDeque<Delivery>,
    pub(crate) ending: &'a Ending,
    pub(crate) will: Option<Box<LastWill>>,
}

/// What a connection gets when it attaches.
pub(crate) struct Attached {
    pub(crate) session: Arc<Session>,
    pub(crate) state: SessionState,
    pub(crate) queue: VecDeque<Delivery>,
    pub(crate) mailbox: Arc<Mailbox>,
    pub(crate) session_present: bool,
    /// Session expiry granted, in seconds.
    pub(crate) expiry: u32,
}

impl NodeShared {
    /// Attaches a new connection of `client_id`, taking the session over
    /// from an attached connection and starting fresh on clean start.
    pub(crate) async fn attach(&self, client_id: &str, c: &Connect, username: Option<String>) -> Attached {
        let (session, existed) = self.sessions.lock().get_or_create(client_id);
        let lock_holder = Arc::clone(&session);
        let _guard = lock_holder.attach_lock.lock().await;
        self.take_over(&session).await;
        let registered = self.sessions.lock().by_key(session.key).is_some();
        let (session, present) = if registered && !(c.clean_start && existed) {
            (session, existed)
        } else {
            // Clean start, or the old connection's session ended as it let go.
            if registered {
                self.end_session(&session);
            }
            (self.sessions.lock().get_or_create(client_id).0, false)
        };
        let expiry = self.granted_expiry(c);
        let mailbox = Arc::new(Mailbox::new(self.limits.max_online));
        let mut inner = session.inner.lock();
        inner.generation = inner.generation.wrapping_add(1);
        inner.pending_will = None;
        inner.link = Some(Arc::clone(&mailbox));
        inner.expiry = expiry;
        inner.username = username.map(String::into_boxed_str);
        inner.disconnected_at = None;
        let state = inner.state.take().map(|s| *s).unwrap_or_default();
        let queue = std::mem::take(&mut inner.queue);
        drop(inner);
        self.router.write().set_online(&Destination::Local(session.key), true);
        Attached {
            session: Arc::clone(&session),
            state,
            queue,
            mailbox,
            session_present: present,
            expiry,
        }
    }

    /// The session expiry this connection gets, in seconds.
    fn granted_expiry(&self, c: &Connect) -> u32 {
        match c.protocol {
            ProtocolVersion::V5 => c
                .properties
                .session_expiry_interval
                .unwrap_or(0)
                .min(self.limits.max_session_expiry),
            _ if c.clean_start => 0,
            _ => self.limits.persistent_client_expiration.unwrap_or(NEVER_EXPIRES),
        }
    }

    /// Wakes every attached connection: each looks at the shutdown token
    /// before it waits again (one that attaches later sees it at its first
    /// wait).
    pub(super) fn wake_connections(&self) {
        let sessions = self.sessions.lock().all();
        for session in sessions {
            session.wake_connection();
        }
    }

    /// Asks an attached connection to let go and waits until it has.
    async fn take_over(&self, session: &Session) {
        let done = Arc::new(Notify::new());
        let sent = {
            let inner = session.inner.lock();
            inner
                .link
                .as_ref()
                .is_some_and(|mailbox| mailbox.command(Control::TakeOver(Arc::clone(&done))))
        };
        if sent && tokio::time::timeout(TAKEOVER_TIMEOUT, done.notified()).await.is_err() {
            debug!(client_id = %session.client_id, "old connection did not let go in time");
        }
        // Whatever happened, the old link is gone now.
        session.inner.lock().link = None;
    }

    /// Parks the state of a connection that ended, and handles expiry and will.
    pub(crate) fn detach(self: &Arc<Self>, session: &Arc<Session>, leaving: Leaving<'_>) {
        let Leaving {
            state,
            mailbox,
            pending,
            ending,
            will,
        } = leaving;
        let mut inner = session.inner.lock();
        inner.link = None;
        let mut queue: VecDeque<Delivery> = pending;
        queue.extend(mailbox.close());
        let persistent = inner.expiry != 0;
        if persistent {
            for d in queue.into_iter().filter(|d| d.qos != skerry_codec::QoS::AtMostOnce) {
                // Dropped deliveries leave the store with the write below.
                let _ = enqueue(&mut inner.queue, d, self.limits.queue, &self.stats, |_| {});
            }
        }
        inner.state = Some(Box::new(state));
        inner.disconnected_at = Some(SystemTime::now());
        if persistent {
            self.persist_offline(session, &mut inner);
        }
        let generation = inner.generation;
        let expiry = inner.expiry;
        let will = match ending {
            Ending::Normal => None,
            Ending::Abnormal | Ending::TakenOver(_) => will.map(|w| will_message(*w, session.key)),
        };
        drop(inner);
        self.router.write().set_online(&Destination::Local(session.key), false);
        let delay = will.as_ref().map_or(0, |(_, d)| *d).min(expiry);
        match will {
            Some((msg, _)) if delay == 0 => self.publish_will(msg),
            Some((msg, _)) => session.inner.lock().pending_will = Some(Box::new(PendingWill { msg })),
            None => {}
        }
        if expiry == 0 {
            self.end_session(session);
            return;
        }
        if expiry != NEVER_EXPIRES || delay > 0 {
            let node = Arc::clone(self);
            let session = Arc::clone(session);
            tokio::spawn(async move { node.expire_later(session, generation, delay, expiry).await });
        }
        debug!(client_id = %session.client_id, expiry, "session parked");
    }

    /// Publishes the pending will after `delay` and ends the session after
    /// `expiry`, unless a connection attached in between.
    pub(super) async fn expire_later(self: Arc<Self>, session: Arc<Session>, generation: u32, delay: u32, expiry: u32) {
        let shutdown = self.shutdown.clone();
        if delay > 0 {
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(u64::from(delay))) => {}
                () = shutdown.cancelled() => return,
            }
            let will = {
                let mut inner = session.inner.lock();
                (inner.generation == generation && inner.link.is_none())
                    .then(|| inner.pending_will.take())
                    .flatten()
            };
            if let Some(w) = will {
                self.publish_will(w.msg);
            }
        }
        if expiry == NEVER_EXPIRES {
            return;
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(u64::from(expiry - delay))) => {}
            () = shutdown.cancelled() => return,
        }
        let _guard = session.attach_lock.lock().await;
        // A session a clean start already ended is not expired again.
        let registered = self.sessions.lock().by_key(session.key).is_some();
        let still_parked = registered && {
            let inner = session.inner.lock();
            inner.generation == generation && inner.link.is_none()
        };
        if still_parked {
            debug!(client_id = %session.client_id, "session expired");
            NodeStats::inc(&self.stats.session_expired);
            self.end_session(&session);
        }
    }

    /// Removes a session: its subscriptions, queue and pending will (published now).
    pub(crate) fn end_session(&self, session: &Session) {
        self.router.write().remove_all(&Destination::Local(session.key));
        self.sessions.lock().remove(session);
        self.forget_session(session);
        let will = {
            let mut inner = session.inner.lock();
            inner.queue.clear();
            inner.state = Some(Box::default());
            inner.pending_will.take()
        };
        if let Some(w) = will {
            self.publish_will(w.msg);
        }
    }

    fn publish_will(&self, mut msg: Message) {
        // A will's expiry runs from its publication, not from the close
        // that may have been a will delay ago (MQTT 5 3.1.3.2.4).
        let interval = msg.properties.message_expiry_interval;
        msg.expires_at = interval.map(|secs| SystemTime::now() + Duration::from_secs(u64::from(secs)));
        NodeStats::inc(&self.stats.will_published);
        self.publish(msg);
    }
}

/// The will as a message, with its delay in seconds.
fn will_message(w: LastWill, publisher: SessionKey) -> (Message, u32) {
    let delay = w.properties.will_delay_interval.unwrap_or(0);
    let p = w.properties;
    let properties = skerry_codec::PublishProperties {
        payload_format_indicator: p.payload_format_indicator,
        message_expiry_interval: p.message_expiry_interval,
        content_type: p.content_type,
        response_topic: p.response_topic,
        correlation_data: p.correlation_data,
        user_properties: p.user_properties,
        ..Default::default()
    };
    (
        Message::new(w.topic, w.payload, w.qos, w.retain, properties, Some(publisher)),
        delay,
    )
}
