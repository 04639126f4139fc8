//! Backend pools at run time: each member's health, drain flag and
//! connection count, and the choice of a backend for a new client
//! (consistent hash of the client id or source IP, round robin, least
//! connections), bounded by `balance_factor`.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use skerry_config::{Balance, Compat, HealthCheck, Member, OnMarkedDown, Pool, ProxyMode};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::pass::NodeLink;
use crate::ring::Ring;

/// One member of a pool.
#[derive(Debug)]
pub(crate) struct Backend {
    pub(crate) pool: Arc<str>,
    pub(crate) name: Arc<str>,
    /// `host:port`, resolved at each connect.
    pub(crate) address: String,
    /// The node's handover socket, when it runs on this host.
    pub(crate) handover: Option<NodeLink>,
    healthy: AtomicBool,
    draining: AtomicBool,
    active: AtomicU64,
    total: AtomicU64,
    connect_failures: AtomicU64,
    /// Removed from its pool by a reload: its health check ends.
    retired: AtomicBool,
    /// Bumped to close every session relayed to this backend.
    evict: watch::Sender<u64>,
}

/// What the admin API shows about one backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendStatus {
    /// The pool's name.
    pub pool: String,
    /// The member's name.
    pub member: String,
    /// Its configured `host:port`.
    pub address: String,
    /// What the health check last decided.
    pub healthy: bool,
    /// Manually drained: no new clients.
    pub draining: bool,
    /// Client connections relayed to it now.
    pub active_connections: u64,
    /// Client connections relayed to it since start.
    pub total_connections: u64,
    /// Connection attempts to it that failed.
    pub connect_failures: u64,
}

impl Backend {
    fn new(pool: Arc<str>, member: &Member) -> Backend {
        Backend {
            pool,
            name: member.name.as_str().into(),
            address: member.address.clone(),
            handover: member.handover_socket.clone().map(NodeLink::new),
            // Like HAProxy and pingora: up until the checks say otherwise,
            // so a starting balancer serves at once. The first probe runs
            // immediately.
            healthy: AtomicBool::new(true),
            draining: AtomicBool::new(false),
            active: AtomicU64::new(0),
            total: AtomicU64::new(0),
            connect_failures: AtomicU64::new(0),
            retired: AtomicBool::new(false),
            evict: watch::channel(0).0,
        }
    }

    /// Whether this is the backend `member` configures.
    fn is(&self, member: &Member) -> bool {
        *self.name == *member.name
            && self.address == member.address
            && self.handover.as_ref().map(NodeLink::path) == member.handover_socket.as_deref()
    }

    pub(crate) fn is_healthy(&self) -> bool {
        self.healthy.load(Relaxed)
    }

    pub(crate) fn set_healthy(&self, up: bool) {
        self.healthy.store(up, Relaxed);
    }

    pub(crate) fn is_retired(&self) -> bool {
        self.retired.load(Relaxed)
    }

    pub(crate) fn set_draining(&self, on: bool) {
        self.draining.store(on, Relaxed);
    }

    fn accepts_new(&self) -> bool {
        self.is_healthy() && !self.draining.load(Relaxed)
    }

    pub(crate) fn active(&self) -> u64 {
        self.active.load(Relaxed)
    }

    /// Closes every session relayed to this backend (`shutdown_sessions`).
    pub(crate) fn evict_sessions(&self) {
        self.evict.send_modify(|n| *n += 1);
    }

    /// Resolves the address and connects to the first address that answers.
    pub(crate) async fn connect(&self) -> io::Result<TcpStream> {
        let mut last = None;
        for addr in tokio::net::lookup_host(self.address.as_str()).await? {
            match TcpStream::connect(addr).await {
                Ok(stream) => {
                    stream.set_nodelay(true)?;
                    return Ok(stream);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::new(io::ErrorKind::NotFound, "the name resolved to no address")))
    }

    /// Connects within `limit`, counting failures.
    pub(crate) async fn connect_within(&self, limit: Duration) -> io::Result<TcpStream> {
        let result = match tokio::time::timeout(limit, self.connect()).await {
            Ok(r) => r,
            Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "connect timed out")),
        };
        if result.is_err() {
            self.connect_failures.fetch_add(1, Relaxed);
        }
        result
    }

    /// Counts a relayed session until the lease is dropped.
    pub(crate) fn lease(self: &Arc<Self>) -> Lease {
        self.active.fetch_add(1, Relaxed);
        self.total.fetch_add(1, Relaxed);
        Lease {
            backend: Arc::clone(self),
            evicted: self.evict.subscribe(),
        }
    }

    pub(crate) fn status(&self) -> BackendStatus {
        BackendStatus {
            pool: self.pool.to_string(),
            member: self.name.to_string(),
            address: self.address.clone(),
            healthy: self.is_healthy(),
            draining: self.draining.load(Relaxed),
            active_connections: self.active(),
            total_connections: self.total.load(Relaxed),
            connect_failures: self.connect_failures.load(Relaxed),
        }
    }
}

/// A session's claim on a backend: counted in its connections, told when
/// the backend's sessions must close.
#[derive(Debug)]
pub(crate) struct Lease {
    pub(crate) backend: Arc<Backend>,
    pub(crate) evicted: watch::Receiver<u64>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.backend.active.fetch_sub(1, Relaxed);
    }
}

/// A pool's members and their hash ring, replaced as a whole on reload.
#[derive(Debug)]
pub(crate) struct Members {
    pub(crate) list: Vec<Arc<Backend>>,
    ring: Ring,
}

impl Members {
    fn new(list: Vec<Arc<Backend>>) -> Members {
        Members {
            ring: Ring::new(list.iter().map(|b| &*b.name)),
            list,
        }
    }
}

/// A pool at run time.
#[derive(Debug)]
pub(crate) struct PoolState {
    pub(crate) name: Arc<str>,
    pub(crate) balance: Balance,
    balance_factor: Option<u32>,
    pub(crate) proxy: ProxyMode,
    pub(crate) compat: Compat,
    pub(crate) send_client_cert: bool,
    pub(crate) connect_timeout: Duration,
    pub(crate) on_marked_down: OnMarkedDown,
    pub(crate) health: HealthCheck,
    members: RwLock<Arc<Members>>,
    next: AtomicUsize,
}

impl PoolState {
    pub(crate) fn new(pool: &Pool) -> PoolState {
        let name: Arc<str> = pool.name.as_str().into();
        let members = pool
            .members
            .iter()
            .map(|m| Arc::new(Backend::new(Arc::clone(&name), m)))
            .collect();
        PoolState {
            balance: pool.balance,
            balance_factor: pool.balance_factor,
            proxy: pool.proxy_protocol,
            compat: pool.compat,
            send_client_cert: pool.send_client_cert,
            connect_timeout: pool.connect_timeout.get(),
            on_marked_down: pool.on_marked_down,
            health: pool.health_check.clone(),
            members: RwLock::new(Arc::new(Members::new(members))),
            name,
            next: AtomicUsize::new(0),
        }
    }

    /// The members now.
    pub(crate) fn members(&self) -> Arc<Members> {
        Arc::clone(&self.members.read())
    }

    /// The member called `name`.
    pub(crate) fn member(&self, name: &str) -> Option<Arc<Backend>> {
        self.members().list.iter().find(|b| &*b.name == name).cloned()
    }

    /// Takes a reloaded member list. A member whose name, address and
    /// handover socket stay keeps its health, drain flag and counts; a new
    /// one starts up (like at start); a removed one takes no new client,
    /// its sessions go on until they end, and its health check stops.
    /// Returns the members that are new, to be health-checked.
    pub(crate) fn set_members(&self, configured: &[Member]) -> Vec<Arc<Backend>> {
        let old = self.members();
        let mut added = Vec::new();
        let list: Vec<Arc<Backend>> = configured
            .iter()
            .map(|m| {
                let kept = old.list.iter().find(|b| b.is(m));
                kept.cloned().unwrap_or_else(|| {
                    let b = Arc::new(Backend::new(Arc::clone(&self.name), m));
                    added.push(Arc::clone(&b));
                    b
                })
            })
            .collect();
        for gone in old.list.iter().filter(|b| !list.iter().any(|k| Arc::ptr_eq(k, b))) {
            gone.retired.store(true, Relaxed);
        }
        *self.members.write() = Arc::new(Members::new(list));
        added
    }

    /// Backends to try for a new client, best first; `key` is the hash key
    /// for the hashing modes. Only healthy, undrained members appear;
    /// members at or above the bounded-load cap come after the others.
    pub(crate) fn candidates(&self, key: &[u8]) -> Vec<Arc<Backend>> {
        let members = self.members();
        let list = &members.list;
        let mut order: Vec<&Arc<Backend>> = match self.balance {
            Balance::ClientId | Balance::SourceIp => members.ring.walk(key).map(|i| &list[i]).collect(),
            Balance::RoundRobin => {
                let start = self.next.fetch_add(1, Relaxed);
                let n = list.len();
                (0..n).map(|k| &list[(start + k) % n]).collect()
            }
            Balance::LeastConnections => {
                let mut all: Vec<_> = list.iter().collect();
                all.sort_by_key(|b| b.active());
                all
            }
        };
        order.retain(|b| b.accepts_new());
        if let Some(cap) = self.load_cap(&order) {
            // Stable: keeps the hash (or round-robin) order within each half.
            order.sort_by_key(|b| b.active() >= cap);
        }
        order.into_iter().cloned().collect()
    }

    /// The bounded-load cap: a member takes a new client only while it has
    /// fewer than `factor` percent of the average, the new client counted
    /// (HAProxy's hash-balance-factor; "consistent hashing with bounded
    /// loads", Mirrokni et al.).
    fn load_cap(&self, eligible: &[&Arc<Backend>]) -> Option<u64> {
        let factor = u64::from(self.balance_factor?);
        let n = eligible.len() as u64;
        if n == 0 {
            return None;
        }
        let total: u64 = eligible.iter().map(|b| b.active()).sum();
        Some(((total + 1) * factor).div_ceil(100 * n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(balance: Balance, factor: Option<u32>) -> PoolState {
        let members = ["a", "b", "c"]
            .iter()
            .map(|n| Member {
                name: (*n).to_owned(),
                address: format!("{n}.invalid:1883"),
                handover_socket: None,
            })
            .collect();
        PoolState::new(&Pool {
            name: "p".into(),
            balance,
            balance_factor: factor,
            proxy_protocol: ProxyMode::None,
            compat: Compat::None,
            send_client_cert: false,
            connect_timeout: skerry_config::units::Duration::secs(1),
            on_marked_down: OnMarkedDown::Keep,
            health_check: HealthCheck::default(),
            members,
        })
    }

    fn names(c: &[Arc<Backend>]) -> Vec<&str> {
        c.iter().map(|b| &*b.name).collect()
    }

    #[test]
    fn hashing_skips_down_and_drained_members() {
        let p = pool(Balance::ClientId, None);
        let first = names(&p.candidates(b"dev-1"))[0].to_owned();
        p.member(&first).unwrap().set_healthy(false);
        let after = p.candidates(b"dev-1");
        let second = names(&after);
        assert_eq!(second.len(), 2);
        assert!(!second.contains(&first.as_str()));
        p.member(second[0]).unwrap().set_draining(true);
        assert_eq!(p.candidates(b"dev-1").len(), 1);
    }

    #[test]
    fn round_robin_rotates() {
        let p = pool(Balance::RoundRobin, None);
        let firsts: Vec<String> = (0..3).map(|_| names(&p.candidates(b""))[0].to_owned()).collect();
        assert_eq!(firsts, ["a", "b", "c"]);
    }

    #[test]
    fn least_connections_prefers_the_idle() {
        let p = pool(Balance::LeastConnections, None);
        let members = p.members();
        let _l1 = members.list[0].lease();
        let _l2 = members.list[1].lease();
        assert_eq!(names(&p.candidates(b""))[0], "c");
    }

    #[test]
    fn bounded_load_moves_a_full_owner_last() {
        let p = pool(Balance::ClientId, Some(150));
        let owner = p.candidates(b"dev-1")[0].clone();
        // 4 sessions on the owner, none elsewhere: cap = ceil(5 * 1.5 / 3) = 3.
        let _leases: Vec<_> = (0..4).map(|_| owner.lease()).collect();
        let order = p.candidates(b"dev-1");
        assert_eq!(order.len(), 3);
        assert!(!Arc::ptr_eq(&order[0], &owner));
        assert!(Arc::ptr_eq(&order[2], &owner));
    }

    #[test]
    fn leases_count_and_release() {
        let p = pool(Balance::ClientId, None);
        let members = p.members();
        let b = &members.list[0];
        let lease = b.lease();
        assert_eq!(b.status().active_connections, 1);
        drop(lease);
        let s = b.status();
        assert_eq!((s.active_connections, s.total_connections), (0, 1));
    }
}
