//! [`BalancerView`]: what the admin endpoint holds on to. It shares the
//! running balancer's state (no copy, no lock beyond the atomics) and can
//! be cloned into every request handler, while the [`crate::BalancerHandle`]
//! stays with whoever will shut the balancer down.

use std::sync::Arc;

use tracing::info;

use crate::app::Core;
use crate::error::LbError;
use crate::metrics::MetricsSnapshot;
use crate::pool::BackendStatus;

/// Read access to a balancer's backends and counters, and manual drain.
#[derive(Debug, Clone)]
pub struct BalancerView {
    core: Arc<Core>,
}

impl BalancerView {
    pub(crate) fn new(core: Arc<Core>) -> BalancerView {
        BalancerView { core }
    }

    /// Every backend of every pool, with health, drain state and counts.
    pub fn backends(&self) -> Vec<BackendStatus> {
        self.core
            .pools
            .iter()
            .flat_map(|p| p.members().list.iter().map(|b| b.status()).collect::<Vec<_>>())
            .collect()
    }

    /// Drains (`true`: no new clients; its sessions stay) or undrains a
    /// pool member.
    pub fn drain(&self, pool: &str, member: &str, drain: bool) -> Result<(), LbError> {
        let backend = self
            .core
            .pool(pool)
            .and_then(|p| p.member(member))
            .ok_or_else(|| LbError::UnknownBackend {
                pool: pool.to_owned(),
                member: member.to_owned(),
            })?;
        backend.set_draining(drain);
        info!(pool, backend = member, drain, "backend drain changed");
        Ok(())
    }

    /// The balancer-wide counters.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.core.metrics.snapshot()
    }
}
