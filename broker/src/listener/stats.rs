//! Counters of one listener, shared with whoever exports metrics.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// What one listener has seen since it was bound. Counters only grow, except
/// [`ListenerStats::active`].
#[derive(Debug, Default)]
pub struct ListenerStats {
    accepted: AtomicU64,
    handshake_failed: AtomicU64,
    proxy_refused: AtomicU64,
    active: AtomicU64,
}

impl ListenerStats {
    /// TCP connections accepted.
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Connections closed because their PROXY header, TLS or WebSocket
    /// handshake failed or did not finish within the handshake timeout.
    pub fn handshake_failed(&self) -> u64 {
        self.handshake_failed.load(Ordering::Relaxed)
    }

    /// Connections closed unread because they came from outside the PROXY
    /// protocol's trusted networks.
    pub fn proxy_refused(&self) -> u64 {
        self.proxy_refused.load(Ordering::Relaxed)
    }

    /// Connections open now: in their handshake or in the handler.
    pub fn active(&self) -> u64 {
        self.active.load(Ordering::Relaxed)
    }

    pub(super) fn on_accept(self: &Arc<Self>) -> ActiveGuard {
        self.accepted.fetch_add(1, Ordering::Relaxed);
        self.active.fetch_add(1, Ordering::Relaxed);
        ActiveGuard(Arc::clone(self))
    }

    pub(super) fn on_handshake_failed(&self) {
        self.handshake_failed.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn on_proxy_refused(&self) {
        self.proxy_refused.fetch_add(1, Ordering::Relaxed);
    }
}

/// Counts one connection in [`ListenerStats::active`] until dropped.
#[derive(Debug)]
pub(super) struct ActiveGuard(Arc<ListenerStats>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}
