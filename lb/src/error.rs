//! Errors of the balancer's library API: what went wrong while starting it
//! (which listener, which file) or when an admin call names something that
//! does not exist. Per-connection failures are not errors here: they are
//! counted (see [`crate::Refusal`]) and logged.

use std::io;
use std::net::SocketAddr;

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
        source: Box<skerry_certs::tls::TlsError>,
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
    /// `lb.scheduling` could not be applied.
    #[error("lb.scheduling: {0}")]
    Scheduling(String),
    /// The balancer's runtime or thread could not be created.
    #[error("cannot start the balancer's runtime: {0}")]
    Runtime(#[source] io::Error),
}
