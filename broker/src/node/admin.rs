//! What an operator can see and do on a running node: sessions, retained
//! messages, counters, and disconnecting a client. Read-only views copy out
//! of the node's locks so the admin API never holds them across I/O.

use std::sync::Arc;
use std::time::SystemTime;

use skerry_codec::ReasonCode;

use super::NodeShared;
use crate::router::Destination;
use crate::session::Control;
use crate::stats::NodeStats;

/// A session as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// The client identifier.
    pub client_id: String,
    /// The node holding the session.
    pub node: String,
    /// Whether a connection is attached.
    pub online: bool,
    /// Username of the last connection.
    pub username: Option<String>,
    /// Topic filters subscribed to.
    pub subscriptions: Vec<String>,
    /// Messages waiting: in the offline queue, or for a connected client
    /// in its mailbox (beyond its inflight window).
    pub queued: usize,
    /// Session expiry interval in seconds (`u32::MAX`: never).
    pub expiry_secs: u32,
    /// Seconds since the client disconnected (`None` while online).
    pub offline_secs: Option<u64>,
}

/// A retained message as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetainedInfo {
    /// Its topic.
    pub topic: String,
    /// QoS it was published with.
    pub qos: u8,
    /// Payload size in bytes.
    pub payload_bytes: usize,
}

/// A cheap, cloneable handle on a running node for the admin API.
#[derive(Clone)]
pub struct NodeHandle(pub(super) Arc<NodeShared>);

impl NodeHandle {
    /// The node's name.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// The node's counters.
    pub fn stats(&self) -> &NodeStats {
        &self.0.stats
    }

    /// Sessions whose client id contains `search` (all when empty), by client id.
    pub fn sessions(&self, search: &str) -> Vec<SessionInfo> {
        let sessions = self.0.sessions.lock().all();
        let mut out: Vec<SessionInfo> = sessions
            .iter()
            .filter(|s| s.client_id.contains(search))
            .map(|s| self.info(s))
            .collect();
        out.sort_by(|a, b| a.client_id.cmp(&b.client_id));
        out
    }

    /// How many sessions the node holds.
    pub fn session_count(&self) -> usize {
        self.0.sessions.lock().len()
    }

    /// How many retained messages the node holds.
    pub fn retained_count(&self) -> usize {
        self.0.retained.read().len()
    }

    /// One session by exact client id.
    pub fn session(&self, client_id: &str) -> Option<SessionInfo> {
        let session = self.0.sessions.lock().get(client_id)?;
        Some(self.info(&session))
    }

    fn info(&self, s: &crate::session::Session) -> SessionInfo {
        let mut subscriptions: Vec<String> = self
            .0
            .router
            .read()
            .filters_of(&Destination::Local(s.key))
            .map(|f| f.to_string())
            .collect();
        subscriptions.sort();
        let inner = s.inner.lock();
        let offline_secs = inner
            .disconnected_at
            .map(|t| SystemTime::now().duration_since(t).map_or(0, |d| d.as_secs()));
        SessionInfo {
            client_id: s.client_id.to_string(),
            node: self.0.name.clone(),
            online: inner.link.is_some(),
            username: inner.username.as_deref().map(str::to_owned),
            subscriptions,
            queued: inner.queue.len() + inner.link.as_ref().map_or(0, |mailbox| mailbox.len()),
            expiry_secs: inner.expiry,
            offline_secs,
        }
    }

    /// Closes the client's connection (v5: DISCONNECT 0x98 administrative
    /// action); the session stays. `false` when the client is not connected.
    pub fn disconnect(&self, client_id: &str) -> bool {
        let Some(session) = self.0.sessions.lock().get(client_id) else {
            return false;
        };
        let inner = session.inner.lock();
        inner
            .link
            .as_ref()
            .is_some_and(|mailbox| mailbox.command(Control::Disconnect(ReasonCode::AdministrativeAction)))
    }

    /// Every retained message, by topic.
    pub fn retained(&self) -> Vec<RetainedInfo> {
        let retained = self.0.retained.read();
        let mut out: Vec<RetainedInfo> = retained
            .matches("#")
            .into_iter()
            .chain(retained.matches("$SYS/#"))
            .map(|m| RetainedInfo {
                topic: m.topic.to_string(),
                qos: m.qos as u8,
                payload_bytes: m.payload.len(),
            })
            .collect();
        out.sort_by(|a, b| a.topic.cmp(&b.topic));
        out
    }

    /// Applies what can change without dropping connections: the users
    /// file, `allow_anonymous` and the ACL rules (new logins and every later
    /// publish/subscribe check use them), and the TLS files of every
    /// `tls`/`wss` listener (certificate, key, client CA, CRL; handshakes
    /// from now on use them). Returns what could not be applied; for each,
    /// the running setting stays.
    pub fn reload(&self, broker: &skerry_config::Broker) -> Vec<super::NodeError> {
        let mut failed = Vec::new();
        *self.0.acl.write() = Arc::new(crate::auth::Acl::new(&broker.acl));
        match super::load_users(&self.0.name, broker) {
            Ok(users) => {
                *self.0.authenticator.write() =
                    Arc::new(crate::auth::Authenticator::new(broker.allow_anonymous, users));
            }
            Err(e) => failed.push(e),
        }
        for (listener, tls) in &self.0.listener_tls {
            if let Err(source) = tls.reload() {
                failed.push(super::NodeError::Tls {
                    node: self.0.name.clone(),
                    listener: listener.clone(),
                    source: Box::new(source),
                });
            }
        }
        failed
    }

    /// Whether the node is serving (not shutting down).
    pub fn is_ready(&self) -> bool {
        !self.0.shutdown.is_cancelled()
    }
}
