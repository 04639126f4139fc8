//! The validated configuration: what the rest of Skerry reads. Every value
//! has its real type and every default lives in the `Default` impls here.

use std::net::SocketAddr;
use std::num::{NonZeroU16, NonZeroU32};

use ipnet::IpNet;
use std::path::PathBuf;

use serde::Deserialize;

use crate::units::{ByteSize, Duration, Rate};

/// The whole file.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Config {
    /// Log level and format.
    pub logging: Logging,
    /// Where the bundled CA keeps its files.
    pub ca: Ca,
    /// Broker nodes run by this process.
    pub broker: Broker,
    /// The load balancer, when this host runs one.
    pub lb: Option<crate::lb::Lb>,
    /// The admin endpoint (metrics, health, API), when enabled.
    pub admin: Option<Admin>,
}

/// `admin`: Prometheus metrics, health and the API `skerry ctl` talks to.
#[derive(Debug, Clone, PartialEq)]
pub struct Admin {
    /// Address of the HTTP endpoint; keep it on localhost or a management network.
    pub bind: SocketAddr,
    /// File holding a bearer token the API requires (`/metrics`, `/health`
    /// and `/ready` stay open for scrapers and probes). `None`: no token.
    pub token_file: Option<PathBuf>,
}

impl Admin {
    /// Default for [`Admin::bind`].
    pub const DEFAULT_BIND: &'static str = "127.0.0.1:8888";
}

/// `logging`: what the process writes to stderr.
#[derive(Debug, Clone, PartialEq)]
pub struct Logging {
    /// A `tracing` filter: a level (`info`) or directives
    /// (`info,skerry_broker=debug`). `RUST_LOG` overrides it when set.
    pub level: String,
    /// Human-readable lines or one JSON object per line (for log shippers).
    pub format: LogFormat,
}

impl Default for Logging {
    fn default() -> Self {
        Self {
            level: "info".to_owned(),
            format: LogFormat::Text,
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One human-readable line per event.
    Text,
    /// One JSON object per event.
    Json,
}

/// `ca`: the bundled certificate authority.
#[derive(Debug, Clone, PartialEq)]
pub struct Ca {
    /// Directory holding `ca.crt`, `ca.key` and the issue index;
    /// `skerry ca` uses it when `--dir` is not given.
    pub dir: PathBuf,
}

impl Default for Ca {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("skerry-data/ca"),
        }
    }
}

/// `broker`: settings shared by the broker nodes, and the nodes themselves.
#[derive(Debug, Clone, PartialEq)]
pub struct Broker {
    /// Most PUBLISH packets one client may send; beyond it the node stops
    /// reading from that client until the rate allows. `None`: unlimited.
    pub max_message_rate: Option<Rate>,
    /// Largest PUBLISH payload accepted; a larger one closes the connection
    /// (v5 reason 0x95). Bounds what one message can cost every queue.
    pub max_message_size: ByteSize,
    /// Longest keep alive a client may ask for; a client asking for more
    /// (or for none) is told this value (v5 Server Keep Alive) and held to it.
    pub max_keep_alive: Duration,
    /// Topic aliases a v5 client may use towards the node (0 disables them).
    pub topic_alias_maximum: u16,
    /// How a `$share/{group}/...` subscription group picks its one member.
    pub shared_subscription_policy: SharedPolicy,
    /// How often `$SYS/broker/...` statistics are published.
    pub sys_interval: Duration,
    /// Admit clients that present neither a password nor a certificate identity.
    pub allow_anonymous: bool,
    /// Users and argon2 password hashes, one `name:hash` per line
    /// (`skerry passwd FILE USER` adds one). `None`: no password logins.
    pub users_file: Option<PathBuf>,
    /// Publish/subscribe rules. Empty: every topic is allowed; otherwise a
    /// topic no rule allows is denied.
    pub acl: Vec<AclRule>,
    /// Session and queue limits.
    pub sessions: Sessions,
    /// Where and how durably each node keeps persistent sessions, offline
    /// queues and retained messages.
    pub store: Store,
    /// The nodes this process runs, each with its own listeners and data.
    pub nodes: Vec<Node>,
}

impl Default for Broker {
    fn default() -> Self {
        Self {
            max_message_rate: None,
            max_message_size: ByteSize::kib(256),
            max_keep_alive: Duration::secs(3600),
            topic_alias_maximum: 64,
            shared_subscription_policy: SharedPolicy::PreferLocal,
            sys_interval: Duration::secs(10),
            allow_anonymous: false,
            users_file: None,
            acl: Vec::new(),
            sessions: Sessions::default(),
            store: Store::default(),
            nodes: Vec::new(),
        }
    }
}

/// Which member of a shared-subscription group receives a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SharedPolicy {
    /// A member on the node the message was published on if there is one, else any.
    PreferLocal,
    /// Only members on the node the message was published on.
    LocalOnly,
    /// Any member, chosen at random.
    Random,
    /// Members in turn.
    RoundRobin,
}

/// What an ACL rule allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    /// PUBLISH to matching topics.
    Publish,
    /// SUBSCRIBE to filters within the pattern.
    Subscribe,
    /// Both.
    All,
}

/// One ACL rule: `access` to topics matching `topic`, for `users` (or everyone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclRule {
    /// What the rule allows.
    pub access: Access,
    /// A topic filter; `%u` stands for the username, `%c` for the client id.
    pub topic: String,
    /// Usernames the rule applies to; empty: every client.
    pub users: Vec<String>,
}

/// Which message a full offline queue gives up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueType {
    /// Keep the oldest messages: a new message is dropped when the queue is full.
    Fifo,
    /// Keep the newest messages: the oldest is dropped to make room.
    Lifo,
}

/// `broker.sessions`: limits that bound what one session can hold.
#[derive(Debug, Clone, PartialEq)]
pub struct Sessions {
    /// QoS 1/2 messages kept for a disconnected persistent session; beyond
    /// it messages are dropped (`queue_type` decides which) and counted.
    pub max_offline_messages: u32,
    /// Messages waiting for a connected but slow client (beyond its inflight
    /// window); beyond it QoS 0 messages are dropped and counted, and QoS 1/2
    /// publishers wait for room (up to 2 s, then the message is dropped and counted).
    pub max_online_messages: u32,
    /// QoS 1/2 messages sent and not yet acknowledged, per client (the v5
    /// client's Receive Maximum lowers it).
    pub max_inflight_messages: NonZeroU16,
    /// Which message a full queue gives up.
    pub queue_type: QueueType,
    /// Upper bound on a v5 client's Session Expiry Interval.
    pub max_session_expiry: Duration,
    /// How long a v3 persistent session (clean session = false) is kept
    /// after its client disconnects. `None`: forever.
    pub persistent_client_expiration: Option<Duration>,
    /// How long a connected client may go without traffic before its
    /// connection hibernates: it gives up its task and its place in the
    /// runtime's reactor, and a watcher wakes it when the client or a
    /// message comes. A client with nothing to do right after CONNACK
    /// hibernates at once. `None`: never.
    pub hibernate_after: Option<Duration>,
}

impl Default for Sessions {
    fn default() -> Self {
        Self {
            max_offline_messages: 1000,
            max_online_messages: 1000,
            max_inflight_messages: NonZeroU16::new(20).unwrap_or(NonZeroU16::MIN),
            queue_type: QueueType::Fifo,
            max_session_expiry: Duration::secs(7 * 86_400),
            persistent_client_expiration: None,
            hibernate_after: Some(Duration::secs(1)),
        }
    }
}

/// `broker.store`: the durable store each node keeps in its `data_dir`.
#[derive(Debug, Clone, PartialEq)]
pub struct Store {
    /// The database engine.
    pub engine: StoreEngine,
    /// When a QoS 1/2 PUBLISH queued for an offline persistent session is
    /// acknowledged: after an fsync, or at once with an fsync every
    /// `fsync_interval` (a crash may then lose that last interval).
    pub durability: StoreDurability,
    /// How often the store fsyncs with `durability: interval`.
    pub fsync_interval: Duration,
}

impl Default for Store {
    fn default() -> Self {
        Self {
            engine: StoreEngine::Redb,
            durability: StoreDurability::Sync,
            fsync_interval: Duration::millis(10),
        }
    }
}

/// The database engine of the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreEngine {
    /// Nothing on disk: persistent sessions last only as long as the process.
    Memory,
    /// sled 0.34 (beta; grows on delete-heavy queues).
    Sled,
    /// redb: checksummed copy-on-write B-tree, crash-safe, compacted at start.
    Redb,
}

/// When stored messages are durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreDurability {
    /// Acknowledge after fsync (group commit shares one fsync among publishers).
    Sync,
    /// Acknowledge at once; fsync every `fsync_interval`.
    Interval,
}

/// One broker node.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Stable identity of the node: names it in metrics, in the cluster and
    /// in the balancer's hash ring. Letters, digits, `-`, `_` and `.`.
    pub name: String,
    /// Where the node keeps its durable state. Default `skerry-data/<name>`.
    pub data_dir: PathBuf,
    /// The sockets MQTT clients connect to.
    pub listeners: Vec<Listener>,
}

/// The transport a listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// Plain MQTT over TCP.
    Tcp,
    /// MQTT over TLS (needs `tls`).
    Tls,
    /// MQTT over WebSocket (subprotocol `mqtt`).
    Ws,
    /// MQTT over WebSocket over TLS (needs `tls`).
    Wss,
}

impl Transport {
    /// Whether the transport runs over TLS.
    pub fn is_tls(self) -> bool {
        matches!(self, Transport::Tls | Transport::Wss)
    }

    /// The name used in YAML and in default listener names.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
            Transport::Ws => "ws",
            Transport::Wss => "wss",
        }
    }
}

/// One listening socket of a node.
#[derive(Debug, Clone, PartialEq)]
pub struct Listener {
    /// Name used in logs and metrics. Default: `<transport>-<port>`.
    pub name: String,
    /// Address and port to listen on.
    pub bind: SocketAddr,
    /// What the socket speaks.
    pub transport: Transport,
    /// Connections accepted at once; the listener stops accepting at the
    /// cap instead of letting a flood exhaust file descriptors.
    pub max_connections: NonZeroU32,
    /// Time a new connection has for its TLS handshake and CONNECT packet.
    pub handshake_timeout: Duration,
    /// Largest MQTT packet accepted; larger ones close the connection
    /// (v5: reason 0x95) before anything is allocated for them.
    pub max_packet_size: ByteSize,
    /// Kernel send buffer (SO_SNDBUF) for each connection; `None`: the OS default.
    pub send_buffer: Option<ByteSize>,
    /// Kernel receive buffer (SO_RCVBUF) for each connection; `None`: the OS default.
    pub receive_buffer: Option<ByteSize>,
    /// HTTP path of the WebSocket endpoint, for `ws` and `wss`.
    pub websocket_path: String,
    /// Certificate, key and client verification, for `tls` and `wss`.
    pub tls: Option<TlsFiles>,
    /// Expect a PROXY protocol v1/v2 header first (a load balancer in front).
    pub proxy_protocol: Option<ProxyProtocol>,
    /// A Unix socket where a `skerry lb` on this host, running as the same
    /// user, passes this listener its clients' sockets instead of relaying
    /// them (`tcp` listeners only).
    pub handover_socket: Option<PathBuf>,
}

/// `proxy_protocol` on a listener.
#[derive(Debug, Clone, PartialEq)]
pub struct ProxyProtocol {
    /// Networks allowed to send PROXY headers; a connection from elsewhere
    /// is closed before anything is read, so nobody can forge an address or CN.
    pub trusted: Vec<IpNet>,
    /// Take the client-certificate CN from the PROXY v2 SSL TLV as the username.
    pub use_cn_as_username: bool,
}

impl Listener {
    /// Default for [`Listener::max_connections`].
    pub const DEFAULT_MAX_CONNECTIONS: u32 = 100_000;
    /// Default for [`Listener::handshake_timeout`].
    pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::secs(5);
    /// Default for [`Listener::max_packet_size`].
    pub const DEFAULT_MAX_PACKET_SIZE: ByteSize = ByteSize::kib(256);
    /// Default for [`Listener::websocket_path`].
    pub const DEFAULT_WEBSOCKET_PATH: &'static str = "/mqtt";
}

/// TLS settings of a listener.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsFiles {
    /// Server certificate chain (PEM), leaf first.
    pub cert: PathBuf,
    /// Private key of the leaf certificate (PEM).
    pub key: PathBuf,
    /// CA bundle (PEM) client certificates are verified against; `None`: no client certificates.
    pub client_ca: Option<PathBuf>,
    /// Refuse clients without a valid certificate (needs `client_ca`).
    pub require_certificate: bool,
    /// Use the client certificate's CN as the username (needs `client_ca`).
    pub use_identity_as_username: bool,
    /// Certificate revocation list (PEM) checked for client certificates.
    pub crl: Option<PathBuf>,
    /// Set when the bundled CA issues `cert` and `key` at start-up
    /// (`tls: auto`); they are then files Skerry writes, not reads.
    pub auto: Option<AutoTls>,
}

/// A server certificate issued by the bundled CA at start-up and renewed
/// before it expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutoTls {
    /// The CA directory (`ca.dir`).
    pub ca_dir: PathBuf,
    /// DNS names and IP addresses the certificate is for; empty means
    /// `localhost`, `127.0.0.1` and the host name.
    pub names: Vec<String>,
}
