//! Errors of the balancer's library API: what went wrong while starting it
//! (which listener, which file) or when an admin call names something that
//! does not exist. Per-connection failures are not errors here: they are
//! counted (see [`crate::Refusal`]) and logged.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Why the balancer could not start, or an admin call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LbError {
    /// A listener's socket could not be bound.
    #[error("listener {listener}: cannot bind {addr}: {source}")]
    Bind {
        /// The listener's name.
        listener: String,
        /// The address from the configuration.
        addr: SocketAddr,
        /// What the OS said.
        source: io::Error,
    },
    /// A listener's TLS files are unusable.
    #[error("listener {listener}: {source}")]
    Tls {
        /// The listener's name.
        listener: String,
        /// Which file and why.
        source: Box<TlsError>,
    },
    /// A listener names a pool that does not exist.
    #[error("listener {listener}: no pool is named {pool:?}")]
    UnknownPool {
        /// The listener's name.
        listener: String,
        /// The pool it names.
        pool: String,
    },
    /// A pool has no members to balance over.
    #[error("pool {pool}: no members")]
    EmptyPool {
        /// The pool's name.
        pool: String,
    },
    /// An admin call named a backend that is not in the configuration.
    #[error("no member {member:?} in pool {pool:?}")]
    UnknownBackend {
        /// The pool named.
        pool: String,
        /// The member named.
        member: String,
    },
    /// The balancer's runtime or thread could not be created.
    #[error("cannot start the balancer's runtime: {0}")]
    Runtime(#[source] io::Error),
}

/// Why a listener's TLS configuration could not be built. Every variant
/// names the file a person has to look at.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {what} {path}: {source}")]
    Read {
        /// Which file: "certificate chain", "private key", ...
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// A file holds no usable PEM item of the expected kind.
    #[error("{what} {path}: {source}")]
    Pem {
        /// Which file.
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// What the PEM parser said.
        source: rustls_pki_types::pem::Error,
    },
    /// A certificate of the client CA bundle was refused.
    #[error("client CA {path}: {source}")]
    ClientCa {
        /// The CA bundle.
        path: PathBuf,
        /// Why rustls refused it.
        source: rustls::Error,
    },
    /// The client-certificate verifier could not be built (CA or CRL).
    #[error("client CA {path}: {source}")]
    Verifier {
        /// The CA bundle.
        path: PathBuf,
        /// Why.
        source: rustls::server::VerifierBuilderError,
    },
    /// The certificate and key do not make a server configuration.
    #[error("certificate {cert} with key {key}: {source}")]
    Config {
        /// The certificate chain.
        cert: PathBuf,
        /// The private key.
        key: PathBuf,
        /// Why rustls refused them.
        source: rustls::Error,
    },
}
