//! The validated configuration: what the rest of Skerry reads. Every value
//! has its real type and every default lives in the `Default` impls here.

use std::net::SocketAddr;
use std::num::NonZeroU32;
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
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Broker {
    /// Most PUBLISH packets one client may send; beyond it the node stops
    /// reading from that client until the rate allows. `None`: unlimited.
    pub max_message_rate: Option<Rate>,
    /// The nodes this process runs, each with its own listeners and data.
    pub nodes: Vec<Node>,
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
    /// Certificate and key, for `transport: tls`.
    pub tls: Option<TlsFiles>,
}

impl Listener {
    /// Default for [`Listener::max_connections`].
    pub const DEFAULT_MAX_CONNECTIONS: u32 = 100_000;
    /// Default for [`Listener::handshake_timeout`].
    pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::secs(5);
    /// Default for [`Listener::max_packet_size`].
    pub const DEFAULT_MAX_PACKET_SIZE: ByteSize = ByteSize::kib(256);
}

/// PEM files for a TLS listener.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsFiles {
    /// Server certificate chain (PEM), leaf first.
    pub cert: PathBuf,
    /// Private key of the leaf certificate (PEM).
    pub key: PathBuf,
}
