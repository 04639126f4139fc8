//! A broker node: its listeners, sessions, router and retained store, and
//! the settings they share. [`Node::start`] binds every listener before
//! accepting anything (a bad certificate or a taken port fails the start,
//! not the first client), then serves until [`Node::shutdown`].

mod admin;
mod alarms;
mod persist;
mod restore;
mod routing;
mod sessions;

use std::net::SocketAddr;
use std::num::NonZeroU16;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use governor::clock::DefaultClock;
use governor::state::{InMemoryState, NotKeyed};
use governor::Quota;
use parking_lot::{Mutex, RwLock};
use skerry_store::{Snapshot, Store, StoreError};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

pub use admin::{NodeHandle, RetainedInfo, SessionInfo};
pub(crate) use alarms::Alarms;
pub(crate) use persist::Batch;
pub(crate) use routing::CONGESTION_WAIT;
pub(crate) use sessions::{Attached, Ending, Leaving};

use crate::auth::{Acl, Authenticator, Users, UsersError};
use crate::connection::{Dormitory, Watching};
use crate::listener::{Inlet, ListenerError, MqttListener, ServerTls};
use crate::message::Message;
use crate::router::{RetainedStore, Router, SharedPolicy};
use crate::session::QueueLimits;
use crate::stats::NodeStats;

/// A per-client PUBLISH rate limiter.
pub(crate) type RateLimiter = governor::RateLimiter<NotKeyed, InMemoryState, DefaultClock>;

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// A listener could not be set up (port, certificate, ...).
    #[error("node {node}: {source}")]
    Listener {
        /// The node's name.
        node: String,
        /// What went wrong.
        source: ListenerError,
    },
    /// The store in the data directory could not be opened or loaded.
    #[error("node {node}: {source}")]
    Store {
        /// The node's name.
        node: String,
        /// What went wrong (it names the data directory).
        source: StoreError,
    },
    /// A listener's TLS files could not be re-read on reload.
    #[error("node {node}, listener {listener}: {source}")]
    Tls {
        /// The node's name.
        node: String,
        /// The listener's name.
        listener: String,
        /// What went wrong (it names the file).
        source: Box<crate::listener::TlsError>,
    },
    /// The epoll set idle connections hibernate in could not be made.
    #[error("node {node}: cannot make the hibernation epoll set: {source}")]
    Hibernation {
        /// The node's name.
        node: String,
        /// What went wrong.
        source: std::io::Error,
    },
    /// The users file could not be loaded.
    #[error("node {node}: {source}")]
    Users {
        /// The node's name.
        node: String,
        /// What went wrong.
        source: UsersError,
    },
}

/// Limits every connection of the node applies, from `broker.*`.
#[derive(Debug, Clone)]
pub(crate) struct Limits {
    pub(crate) max_keep_alive: u16,
    pub(crate) max_inflight: NonZeroU16,
    pub(crate) topic_alias_maximum: u16,
    pub(crate) max_message_size: usize,
    pub(crate) max_session_expiry: u32,
    pub(crate) persistent_client_expiration: Option<u32>,
    pub(crate) max_online: usize,
    pub(crate) queue: QueueLimits,
    pub(crate) max_message_rate: Option<Quota>,
    /// `broker.sessions.hibernate_after` in ticks of the node's clock.
    pub(crate) hibernate_after_ticks: Option<u32>,
}

impl Limits {
    fn new(b: &skerry_config::Broker) -> Self {
        let secs = |d: skerry_config::units::Duration| u32::try_from(d.get().as_secs()).unwrap_or(u32::MAX);
        let s = &b.sessions;
        Self {
            max_keep_alive: u16::try_from(b.max_keep_alive.get().as_secs()).unwrap_or(u16::MAX),
            max_inflight: s.max_inflight_messages,
            topic_alias_maximum: b.topic_alias_maximum,
            max_message_size: usize::try_from(b.max_message_size.bytes()).unwrap_or(usize::MAX),
            max_session_expiry: secs(s.max_session_expiry),
            persistent_client_expiration: s.persistent_client_expiration.map(secs),
            max_online: s.max_online_messages.max(1) as usize,
            queue: QueueLimits {
                max_offline: s.max_offline_messages as usize,
                queue_type: s.queue_type,
            },
            max_message_rate: b.max_message_rate.and_then(quota),
            hibernate_after_ticks: s.hibernate_after.map(|d| Alarms::ticks_in(d.get())),
        }
    }
}

/// A governor quota for `rate` (count per period), bursting up to count.
fn quota(rate: skerry_config::units::Rate) -> Option<Quota> {
    let per_cell = rate.per.checked_div(rate.count.get())?;
    Quota::with_period(per_cell.max(Duration::from_nanos(1))).map(|q| q.allow_burst(rate.count))
}

/// The users file named by the configuration, if any.
fn load_users(node: &str, broker: &skerry_config::Broker) -> Result<Option<Arc<Users>>, NodeError> {
    let Some(path) = &broker.users_file else {
        return Ok(None);
    };
    let users = Users::load(path).map_err(|source| NodeError::Users {
        node: node.to_owned(),
        source,
    })?;
    Ok(Some(Arc::new(users)))
}

/// Everything the connections of a node share.
pub(crate) struct NodeShared {
    pub(crate) name: String,
    limits: Limits,
    authenticator: RwLock<Arc<Authenticator>>,
    acl: RwLock<Arc<Acl>>,
    pub(crate) router: RwLock<Router>,
    pub(crate) retained: RwLock<RetainedStore<Arc<Message>>>,
    pub(crate) sessions: Mutex<sessions::Registry>,
    pub(crate) stats: NodeStats,
    pub(crate) shutdown: CancellationToken,
    /// Persistent sessions, offline queues, retained messages.
    pub(crate) store: Arc<dyn Store>,
    /// The connection tasks, so shutdown can wait for them to park their
    /// sessions (it wakes hibernating connections into tasks first).
    conns: TaskTracker,
    /// Where idle connections hibernate.
    pub(crate) dorm: Arc<Dormitory>,
    /// Keep-alive alarms of the connections.
    pub(crate) alarms: Alarms,
    /// The TLS configuration of each `tls`/`wss` listener, by listener name.
    listener_tls: Vec<(String, Arc<ServerTls>)>,
    next_client: AtomicU64,
}

impl NodeShared {
    pub(crate) fn limits(&self) -> &Limits {
        &self.limits
    }

    pub(crate) fn authenticator(&self) -> Arc<Authenticator> {
        Arc::clone(&self.authenticator.read())
    }

    pub(crate) fn acl(&self) -> Arc<Acl> {
        Arc::clone(&self.acl.read())
    }

    /// A fresh client id for a client that sent none (v5 Assigned Client Identifier).
    pub(crate) fn assign_client_id(&self) -> String {
        let n = self.next_client.fetch_add(1, Ordering::Relaxed);
        format!("skerry-{}-{n:x}-{:x}", self.name, rand::random::<u32>())
    }

    /// A limiter for one client's PUBLISH rate, when `max_message_rate` is set.
    pub(crate) fn message_rate_limiter(&self) -> Option<RateLimiter> {
        self.limits.max_message_rate.map(governor::RateLimiter::direct)
    }
}

/// How long shutdown waits for connections to park their sessions.
const CONNECTIONS_DRAIN: Duration = Duration::from_secs(10);

/// Opens the node's store and loads it, from `broker.store`.
fn open_store(
    node: &skerry_config::Node,
    broker: &skerry_config::Broker,
) -> Result<(Arc<dyn Store>, Snapshot), NodeError> {
    let s = &broker.store;
    let engine = match s.engine {
        skerry_config::StoreEngine::Memory => skerry_store::Engine::Memory,
        skerry_config::StoreEngine::Sled => skerry_store::Engine::Sled,
        skerry_config::StoreEngine::Redb => skerry_store::Engine::Redb,
    };
    let durability = match s.durability {
        skerry_config::StoreDurability::Sync => skerry_store::Durability::Sync,
        skerry_config::StoreDurability::Interval => skerry_store::Durability::Interval(s.fsync_interval.get()),
    };
    let err = |source| NodeError::Store {
        node: node.name.clone(),
        source,
    };
    let store = skerry_store::open(engine, &node.data_dir, durability).map_err(err)?;
    let snapshot = store.load().map_err(err)?;
    Ok((store, snapshot))
}

/// A running broker node.
pub struct Node {
    shared: Arc<NodeShared>,
    addrs: Vec<(String, SocketAddr)>,
    inlets: Vec<Inlet>,
    /// The node's long-running parts; each returns its name when it ends.
    tasks: JoinSet<String>,
    /// The watch over hibernating connections (stopped when dropped).
    watching: Watching,
}

impl Node {
    /// Binds every listener of `node`, then starts serving.
    pub async fn start(node: &skerry_config::Node, broker: &skerry_config::Broker) -> Result<Node, NodeError> {
        let users = load_users(&node.name, broker)?;
        let mut listeners = Vec::new();
        for cfg in &node.listeners {
            let l = MqttListener::bind(cfg).map_err(|source| NodeError::Listener {
                node: node.name.clone(),
                source,
            })?;
            listeners.push(l);
        }
        let (store, snapshot) = open_store(node, broker)?;
        let conns = TaskTracker::new();
        let (dorm, watching) = Dormitory::start(conns.clone()).map_err(|source| NodeError::Hibernation {
            node: node.name.clone(),
            source,
        })?;
        let policy = match broker.shared_subscription_policy {
            skerry_config::SharedPolicy::PreferLocal => SharedPolicy::PreferLocal,
            skerry_config::SharedPolicy::LocalOnly => SharedPolicy::LocalOnly,
            skerry_config::SharedPolicy::Random => SharedPolicy::Random,
            skerry_config::SharedPolicy::RoundRobin => SharedPolicy::RoundRobin,
        };
        let shared = Arc::new(NodeShared {
            name: node.name.clone(),
            limits: Limits::new(broker),
            authenticator: RwLock::new(Arc::new(Authenticator::new(broker.allow_anonymous, users))),
            acl: RwLock::new(Arc::new(Acl::new(&broker.acl))),
            router: RwLock::new(Router::new(policy)),
            retained: RwLock::new(RetainedStore::new()),
            sessions: Mutex::new(sessions::Registry::default()),
            stats: NodeStats::default(),
            shutdown: CancellationToken::new(),
            next_client: AtomicU64::new(1),
            store,
            conns,
            dorm,
            alarms: Alarms::new(),
            listener_tls: listeners
                .iter()
                .filter_map(|l| Some((l.name().to_owned(), l.tls()?)))
                .collect(),
        });
        shared.restore(snapshot);
        let mut tasks = JoinSet::new();
        let mut addrs = Vec::new();
        let mut inlets = Vec::new();
        for l in listeners {
            addrs.push((l.name().to_owned(), l.local_addr()));
            inlets.extend(l.inlet());
            let node = Arc::clone(&shared);
            let shutdown = shared.shutdown.clone();
            let conns = shared.conns.clone();
            let handler = move |accepted| conns.track_future(crate::connection::serve(Arc::clone(&node), accepted));
            let part = format!("listener {}", l.name());
            tasks.spawn(async move {
                l.run(handler, shutdown.cancelled_owned()).await;
                part
            });
        }
        let node_alarms = Arc::clone(&shared);
        tasks.spawn(async move {
            node_alarms.run_alarms().await;
            "keep-alive clock".to_owned()
        });
        let sys = crate::sys::run(Arc::clone(&shared), broker.sys_interval.get());
        tasks.spawn(async move {
            sys.await;
            "$SYS publisher".to_owned()
        });
        info!(node = %node.name, listeners = ?addrs, "broker node started");
        Ok(Node {
            shared,
            addrs,
            inlets,
            tasks,
            watching,
        })
    }

    /// The bound address of each listener, by listener name.
    pub fn local_addrs(&self) -> &[(String, SocketAddr)] {
        &self.addrs
    }

    /// The inlets of its `tcp` listeners: where a balancer in this process
    /// hands over the clients it would send them.
    pub fn inlets(&self) -> &[Inlet] {
        &self.inlets
    }

    /// The node's counters.
    pub fn stats(&self) -> &NodeStats {
        &self.shared.stats
    }

    /// A handle for the admin API, valid while the node runs.
    pub fn handle(&self) -> NodeHandle {
        NodeHandle(Arc::clone(&self.shared))
    }

    /// Resolves when a part of the node (a listener, the `$SYS` publisher)
    /// ends although the node was not shut down: the node is then no longer
    /// whole, and the caller should stop it. Says which part and why.
    pub async fn failed(&mut self) -> String {
        let part = tokio::select! {
            part = self.tasks.join_next() => part,
            e = self.watching.failed() => return format!("the watch over hibernating connections failed: {e}"),
        };
        match part {
            Some(Ok(part)) => format!("{part} stopped"),
            Some(Err(e)) => format!("a part panicked: {e}"),
            None => std::future::pending().await,
        }
    }

    /// Stops accepting, tells every client the server is shutting down
    /// (v5 DISCONNECT 0x8B), waits for the listeners to end and the
    /// connections to park their sessions, then closes the store (every
    /// write durable).
    pub async fn shutdown(mut self) {
        self.shared.shutdown.cancel();
        self.shared.wake_connections();
        while self.tasks.join_next().await.is_some() {}
        self.shared.conns.close();
        let drain = tokio::time::timeout(CONNECTIONS_DRAIN, self.shared.conns.wait());
        if drain.await.is_err() {
            warn!(node = %self.shared.name, "connections still open at shutdown; their sessions are stored as last parked");
        }
        if let Err(error) = self.shared.store.close().await {
            error!(node = %self.shared.name, %error, "closing the store failed");
        }
        info!(node = %self.shared.name, "broker node stopped");
    }
}
