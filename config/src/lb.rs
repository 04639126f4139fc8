//! The validated `lb` section: the MQTT-aware load balancer's listeners,
//! backend pools and limits.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;

use serde::Deserialize;

use crate::model::{ProxyProtocol, TlsFiles};
use crate::units::{Bandwidth, ByteSize, Duration, Rate};

/// `lb`: the balancer in front of the broker nodes (ours or anyone's).
#[derive(Debug, Clone, PartialEq)]
pub struct Lb {
    /// Sockets clients connect to, each feeding one pool.
    pub listeners: Vec<LbListener>,
    /// Groups of backends a listener balances over.
    pub pools: Vec<Pool>,
    /// Time a client has to send its CONNECT once connected (after TLS).
    pub sniff_timeout: Duration,
    /// Largest CONNECT accepted; bigger ones are refused and counted.
    pub max_connect_size: ByteSize,
    /// How long a stopping balancer lets connections drain before exiting.
    pub grace_period: Duration,
    /// Window over which connections are closed at shutdown, so clients
    /// do not all reconnect at the same instant.
    pub drain_window: Duration,
    /// Connections held at once, all clients together; `None`: no cap.
    pub max_connections: Option<NonZeroU32>,
    /// Connections held at once from one source IP; `None`: no cap.
    pub max_connections_per_ip: Option<NonZeroU32>,
    /// New connections per period, all clients together.
    pub connect_rate: Option<Rate>,
    /// New connections per period from one source IP.
    pub connect_rate_per_ip: Option<Rate>,
    /// Per-client classes (bandwidth, connect rate), first match wins.
    pub rate_classes: Vec<RateClass>,
    /// CPU scheduling policy of the balancer's threads where it has threads
    /// of its own (`skerry lb`, `skerry run` without broker nodes).
    pub scheduling: Scheduling,
}

impl Lb {
    /// Default for [`Lb::sniff_timeout`].
    pub const DEFAULT_SNIFF_TIMEOUT: Duration = Duration::secs(5);
    /// Default for [`Lb::max_connect_size`].
    pub const DEFAULT_MAX_CONNECT_SIZE: ByteSize = ByteSize::kib(64);
    /// Default for [`Lb::grace_period`].
    pub const DEFAULT_GRACE_PERIOD: Duration = Duration::secs(30);
    /// Default for [`Lb::drain_window`].
    pub const DEFAULT_DRAIN_WINDOW: Duration = Duration::secs(10);
}

/// `lb.scheduling`: how the kernel schedules the balancer's threads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scheduling {
    /// `SCHED_OTHER`: a thread woken by data may preempt whatever runs on
    /// its core, so every relayed write goes out at once.
    #[default]
    Normal,
    /// `SCHED_BATCH`: a woken balancer thread waits for the running task
    /// (a broker on the same core) to yield its core, then relays all that
    /// came meanwhile in one go. For a balancer sharing cores with a
    /// broker that writes each packet on its own (Mosquitto).
    Batch,
}

/// One balancer listener.
#[derive(Debug, Clone, PartialEq)]
pub struct LbListener {
    /// Name used in logs and metrics.
    pub name: String,
    /// Address and port to listen on.
    pub bind: SocketAddr,
    /// The pool (by name) this listener balances over.
    pub pool: String,
    /// TLS termination; `client_ca` turns on client certificates.
    pub tls: Option<TlsFiles>,
    /// Accept a PROXY header from a balancer in front (trusted networks only).
    pub proxy_protocol: Option<ProxyProtocol>,
}

/// How a pool picks a backend for a new client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Balance {
    /// Consistent hash of the MQTT client id (source IP when it is empty):
    /// a client lands where its session lives, from any balancer instance.
    ClientId,
    /// Consistent hash of the source IP.
    SourceIp,
    /// Backends in turn.
    RoundRobin,
    /// The backend with the fewest connections from this balancer.
    LeastConnections,
}

/// What the balancer writes before the client's bytes on a backend connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProxyMode {
    /// Nothing: the backend sees the balancer's address.
    None,
    /// PROXY protocol v1 (text; addresses only).
    V1,
    /// PROXY protocol v2 (binary; addresses).
    V2,
    /// v2 with the SSL TLV (TLS version, cipher) for TLS clients.
    V2Ssl,
    /// v2 with the SSL TLV including the client certificate CN.
    V2SslCn,
}

/// Backend quirks the PROXY header must respect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compat {
    /// No constraints.
    None,
    /// Mosquitto 2.1 refuses PROXY v2 headers over 500 bytes.
    Mosquitto,
}

/// What happens to a backend's clients when its health check fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnMarkedDown {
    /// Keep existing connections; only new ones go elsewhere.
    Keep,
    /// Close its connections so clients reconnect to a healthy backend.
    ShutdownSessions,
}

/// How backends are probed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthKind {
    /// TCP connect (after a PROXY v2 LOCAL header when the pool speaks v2).
    Tcp,
    /// MQTT CONNECT answered by a CONNACK.
    Mqtt,
}

/// A pool's health check.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthCheck {
    /// TCP or MQTT probe.
    pub kind: HealthKind,
    /// Time between probes.
    pub interval: Duration,
    /// Time one probe may take.
    pub timeout: Duration,
    /// Consecutive successes that mark a down backend up.
    pub rise: NonZeroU32,
    /// Consecutive failures that mark an up backend down.
    pub fall: NonZeroU32,
}

impl Default for HealthCheck {
    fn default() -> Self {
        let n = |v| NonZeroU32::new(v).unwrap_or(NonZeroU32::MIN);
        Self {
            kind: HealthKind::Tcp,
            interval: Duration::secs(2),
            timeout: Duration::secs(1),
            rise: n(2),
            fall: n(3),
        }
    }
}

/// A group of backends.
#[derive(Debug, Clone, PartialEq)]
pub struct Pool {
    /// Name listeners refer to.
    pub name: String,
    /// How a backend is chosen.
    pub balance: Balance,
    /// Bounded load, in percent of the average: no backend takes a new
    /// client above it (HAProxy's hash-balance-factor). `None`: unbounded.
    pub balance_factor: Option<u32>,
    /// PROXY header towards the backends.
    pub proxy_protocol: ProxyMode,
    /// Backend quirks to respect.
    pub compat: Compat,
    /// Also send the client's DER certificate (PP2 TLV 0x28).
    pub send_client_cert: bool,
    /// Time to establish a backend connection.
    pub connect_timeout: Duration,
    /// What a failed health check does to existing connections.
    pub on_marked_down: OnMarkedDown,
    /// How backends are probed.
    pub health_check: HealthCheck,
    /// The backends.
    pub members: Vec<Member>,
}

/// One backend of a pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Stable identity: the hash ring is keyed by it, so an address change
    /// does not move clients. For Skerry nodes, the node name.
    pub name: String,
    /// `host:port` (an IP or a DNS name, resolved at connect time).
    pub address: String,
    /// The `handover_socket` of the node listener at `address`, when that
    /// node runs on this host in another process: plain TCP clients
    /// without a bandwidth class are passed to it, socket and all, instead
    /// of relayed. Health checks still go to `address`.
    pub handover_socket: Option<PathBuf>,
}

/// Per-client limits for the clients a class matches.
#[derive(Debug, Clone, PartialEq)]
pub struct RateClass {
    /// Name used in logs and metrics.
    pub name: String,
    /// Certificate CN pattern (`*` matches any run of characters).
    pub match_cn: Option<String>,
    /// Username, exactly.
    pub match_username: Option<String>,
    /// Client id prefix.
    pub match_client_id_prefix: Option<String>,
    /// Client-to-broker bandwidth per connection.
    pub bandwidth_in: Option<Bandwidth>,
    /// Broker-to-client bandwidth per connection.
    pub bandwidth_out: Option<Bandwidth>,
    /// New connections per period for the whole class; beyond it the
    /// client gets a CONNACK "connection rate exceeded" (v5 0x9F).
    pub connect_rate: Option<Rate>,
}
