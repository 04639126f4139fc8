//! Reloading a running balancer (SIGHUP): what can change without dropping
//! a connection changes at once, and the rest is named as needing a
//! restart.
//!
//! Live: the connect rates and connection caps, the rate classes (for
//! connections admitted from now on; a rate whose value is unchanged keeps
//! its state), each pool's member list (see [`PoolState::set_members`]),
//! and the TLS files of every listener (certificate, key, client CA, CRL),
//! re-read even when their paths are unchanged. Everything else (listeners,
//! pool settings, pools added or removed, timeouts of the running
//! listeners, the threads' scheduling policy) needs a restart.

use std::sync::Arc;

use skerry_config::{Lb, Pool};
use tracing::info;

use crate::classes::Classes;
use crate::error::LbError;
use crate::health;
use crate::pool::PoolState;
use crate::server::BalancerHandle;

/// What a reload did not apply.
#[derive(Debug, Default)]
pub struct Reload {
    /// Settings that changed but take effect only after a restart, as key
    /// paths (`lb.listeners`, `lb.pools.devices`, ...).
    pub needs_restart: Vec<String>,
    /// Files that could not be re-read; those listeners keep the files they
    /// had.
    pub errors: Vec<LbError>,
}

impl BalancerHandle {
    /// Applies `new`, a validated configuration, as far as it can change
    /// live.
    pub fn reload(&self, new: &Lb) -> Reload {
        let mut running = self.running.lock();
        let mut out = Reload {
            needs_restart: needs_restart(&running, new),
            errors: Vec::new(),
        };
        let core = &self.core;
        core.rates.reload(new);
        core.caps.reload(new);
        if running.rate_classes != new.rate_classes {
            *core.classes.write() = Arc::new(Classes::new(&new.rate_classes));
        }
        for old in &mut running.pools {
            let Some(pool) = new.pools.iter().find(|p| p.name == old.name) else {
                continue;
            };
            if old.members != pool.members && same_but_members(old, pool) {
                if let Some(state) = core.pool(&pool.name) {
                    self.set_members(state, pool);
                }
                old.members.clone_from(&pool.members);
            }
        }
        for (listener, tls) in &self.tls {
            if let Err(source) = tls.reload() {
                out.errors.push(LbError::Tls {
                    listener: listener.clone(),
                    source: Box::new(source),
                });
            }
        }
        running.connect_rate = new.connect_rate;
        running.connect_rate_per_ip = new.connect_rate_per_ip;
        running.max_connections = new.max_connections;
        running.max_connections_per_ip = new.max_connections_per_ip;
        running.rate_classes.clone_from(&new.rate_classes);
        out
    }

    fn set_members(&self, state: &Arc<PoolState>, pool: &Pool) {
        let added = state.set_members(&pool.members);
        let names: Vec<&str> = pool.members.iter().map(|m| m.name.as_str()).collect();
        info!(pool = %pool.name, members = ?names, "pool members reloaded");
        for backend in added {
            health::spawn_one(&self.runtime, state, backend, &self.shutdown);
        }
    }
}

/// Whether two versions of a pool differ at most in their members.
fn same_but_members(a: &Pool, b: &Pool) -> bool {
    Pool {
        members: b.members.clone(),
        ..a.clone()
    } == *b
}

/// The settings `new` changes that only a restart applies.
fn needs_restart(running: &Lb, new: &Lb) -> Vec<String> {
    let mut keys: Vec<String> = [
        ("lb.listeners", running.listeners != new.listeners),
        ("lb.sniff_timeout", running.sniff_timeout != new.sniff_timeout),
        ("lb.max_connect_size", running.max_connect_size != new.max_connect_size),
        ("lb.grace_period", running.grace_period != new.grace_period),
        ("lb.drain_window", running.drain_window != new.drain_window),
        ("lb.scheduling", running.scheduling != new.scheduling),
    ]
    .into_iter()
    .filter(|(_, changed)| *changed)
    .map(|(key, _)| key.to_owned())
    .collect();
    for pool in &running.pools {
        match new.pools.iter().find(|p| p.name == pool.name) {
            Some(p) if same_but_members(pool, p) => {}
            _ => keys.push(format!("lb.pools.{}", pool.name)),
        }
    }
    for pool in new
        .pools
        .iter()
        .filter(|p| !running.pools.iter().any(|r| r.name == p.name))
    {
        keys.push(format!("lb.pools.{}", pool.name));
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lb(extra: &str, members: &str, balance: &str) -> Lb {
        crate::test_lb(
            extra,
            &format!("      balance: {balance}\n      members: [{members}]\n"),
        )
    }

    #[test]
    fn members_rates_and_caps_are_live_pool_settings_are_not() {
        let a = "{name: a, address: 127.0.0.1:1}";
        let ab = "{name: a, address: 127.0.0.1:1}, {name: b, address: 127.0.0.1:2}";
        let running = lb("", a, "client_id");
        let live = lb("  connect_rate: 10/s\n  max_connections: 5\n", ab, "client_id");
        assert!(needs_restart(&running, &live).is_empty());
        let other = lb("  grace_period: 1s\n  scheduling: batch\n", ab, "round_robin");
        assert_eq!(
            needs_restart(&running, &other),
            ["lb.grace_period", "lb.scheduling", "lb.pools.p"]
        );
    }
}
