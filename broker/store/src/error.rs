//! What can go wrong in the store. Every error names the data directory;
//! a record that cannot be decoded names its key (client id, sequence,
//! message id or topic), so an operator knows what is damaged.

use std::path::PathBuf;
use std::sync::Arc;

/// The underlying cause, shared: one failed group commit fails every batch in it.
pub type Source = Arc<dyn std::error::Error + Send + Sync>;

/// Why a store operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened (or created) in the data directory.
    #[error("store in {}: cannot open the {engine} database: {source}", dir.display())]
    Open {
        /// The node's data directory.
        dir: PathBuf,
        /// `sled` or `redb`.
        engine: &'static str,
        /// What the engine said.
        source: Source,
    },
    /// The engine failed a read, a commit or a sync.
    #[error("store in {}: {engine} {action} failed: {source}", dir.display())]
    Engine {
        /// The node's data directory.
        dir: PathBuf,
        /// `sled`, `redb` or `memory`.
        engine: &'static str,
        /// What the store was doing (`commit`, `sync`, `read`, ...).
        action: &'static str,
        /// What the engine said.
        source: Source,
    },
    /// A stored record could not be decoded.
    #[error("store in {}: corrupt record {key}: {reason}", dir.display())]
    Corrupt {
        /// The node's data directory.
        dir: PathBuf,
        /// The record, described (`queue entry 42 of client "dev-1"`).
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The store was closed (node shutting down); nothing more is written.
    #[error("store in {} is closed", dir.display())]
    Closed {
        /// The node's data directory.
        dir: PathBuf,
    },
}

impl StoreError {
    /// An engine failure during `action`.
    pub(crate) fn engine(
        dir: &std::path::Path,
        engine: &'static str,
        action: &'static str,
        e: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::Engine {
            dir: dir.to_owned(),
            engine,
            action,
            source: Arc::new(e),
        }
    }
}
