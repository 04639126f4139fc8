//! Errors of the listener layer: configuration problems found at bind time
//! (they name the listener and the file), and per-connection handshake
//! failures (they end one connection and are only logged and counted).

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

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
        source: Box<TlsError>,
    },
}

/// A problem with one of the TLS files of a listener.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file could not be read.
    #[error("cannot read {what} {}: {source}", path.display())]
    Read {
        /// Which file this is: certificate chain, private key, client CA, CRL.
        what: &'static str,
        /// The file named in the configuration.
        path: PathBuf,
        /// The underlying I/O error.
        source: io::Error,
    },
    /// The file is not valid PEM, or holds nothing of the expected kind.
    #[error("{what} {} is not usable PEM: {source}", path.display())]
    Pem {
        /// Which file this is.
        what: &'static str,
        /// The file named in the configuration.
        path: PathBuf,
        /// What the PEM parser found wrong.
        source: rustls_pki_types::pem::Error,
    },
    /// A certificate of the client CA bundle was rejected as a trust anchor.
    #[error("client CA {}: {source}", path.display())]
    ClientCa {
        /// The CA bundle.
        path: PathBuf,
        /// Why the certificate was rejected.
        source: rustls::Error,
    },
    /// The client verifier could not be built (for example a CRL that does
    /// not parse).
    #[error("client verification with CA {}: {source}", path.display())]
    Verifier {
        /// The CA bundle the verifier was built from.
        path: PathBuf,
        /// Why it failed.
        source: rustls::server::VerifierBuilderError,
    },
    /// The certificate chain and key do not make a server configuration (for
    /// example a key that does not match the certificate).
    #[error("certificate {} with key {}: {source}", cert.display(), key.display())]
    Config {
        /// The certificate chain.
        cert: PathBuf,
        /// The private key.
        key: PathBuf,
        /// Why rustls refused them.
        source: rustls::Error,
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
