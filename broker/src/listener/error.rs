//! Errors of the listener layer: configuration problems found at bind time
//! (they name the listener and the file), and per-connection handshake
//! failures (they end one connection and are only logged and counted).

use std::io;
use std::net::SocketAddr;

/// Why a listener could not be started.
#[derive(Debug, thiserror::Error)]
pub enum ListenerError {
    /// The socket could not be created, configured or bound.
    #[error("listener `{listener}`: cannot listen on {addr}: {source}")]
    Bind {
        /// Name of the listener.
        listener: String,
        /// The address from the configuration.
        addr: SocketAddr,
        /// The underlying I/O error.
        source: io::Error,
    },
    /// The handover socket could not be created.
    #[error("listener `{listener}`: cannot take passed clients on {}: {source}", path.display())]
    Handover {
        /// Name of the listener.
        listener: String,
        /// The socket's path from the configuration.
        path: std::path::PathBuf,
        /// The underlying I/O error.
        source: io::Error,
    },
    /// A `tls` or `wss` listener without TLS settings.
    #[error("listener `{listener}`: transport `{transport}` needs TLS settings")]
    MissingTls {
        /// Name of the listener.
        listener: String,
        /// The transport that needs TLS.
        transport: &'static str,
    },
    /// The TLS files are unreadable or do not form a usable configuration.
    #[error("listener `{listener}`: {source}")]
    Tls {
        /// Name of the listener.
        listener: String,
        /// What is wrong, with the file at fault.
        source: Box<skerry_certs::tls::TlsError>,
    },
}

/// Why one connection did not get past its transport handshake.
#[derive(Debug, thiserror::Error)]
pub(super) enum HandshakeError {
    #[error("handshake did not finish in time")]
    Timeout,
    #[error("connection closed during the PROXY header")]
    ProxyEof,
    #[error("PROXY header longer than {0} bytes")]
    ProxyTooLong(usize),
    #[error("invalid PROXY header: {0}")]
    ProxyInvalid(String),
    #[error("TLS handshake failed: {0}")]
    Tls(io::Error),
    #[error("WebSocket handshake failed: {0}")]
    WebSocket(#[from] tokio_tungstenite::tungstenite::Error),
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
}
