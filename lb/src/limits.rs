//! Connection limits: the connect rates (all clients, and per source IP)
//! checked in pingora's connection filter before any byte is read or any
//! TLS work is done, and the caps on connections held at once (all
//! clients, and per source IP) taken once the CONNECT is read, so a client
//! over a cap learns why from a CONNACK.
//!
//! Source IPs are keyed with IPv6 addresses cut to their /64: one host
//! usually owns a whole /64, and per-address keys would let it walk past
//! any per-IP limit.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use parking_lot::{Mutex, RwLock};
use pingora::listeners::ConnectionFilter;
use skerry_config::units::Rate;
use skerry_config::Lb;

use crate::metrics::{Metrics, Outcome, Refusal};

/// The governor quota for `rate`: `count` per `per`, all of it available
/// at once. governor stores the period per cell in whole nanoseconds, so
/// rates above 10^9/s would round to "unlimited"; no configured rate gets
/// near that (the config's finest period is 1 s and the count is a u32).
pub(crate) fn quota(rate: Rate) -> Quota {
    let period = (rate.per / rate.count.get()).max(Duration::from_nanos(1));
    Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MAX))
        .allow_burst(rate.count)
}

/// The key a source address is limited under.
pub(crate) fn ip_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

/// The connect-rate limiters, shared by every listener. Reload replaces a
/// limiter whose rate changed (its state starts afresh) and keeps the others.
#[derive(Debug)]
pub(crate) struct ConnectRates {
    global: RwLock<Option<(Rate, DefaultDirectRateLimiter)>>,
    per_ip: RwLock<Option<(Rate, DefaultKeyedRateLimiter<IpAddr>)>>,
}

impl ConnectRates {
    pub(crate) fn new(cfg: &Lb) -> ConnectRates {
        ConnectRates {
            global: RwLock::new(cfg.connect_rate.map(|r| (r, RateLimiter::direct(quota(r))))),
            per_ip: RwLock::new(cfg.connect_rate_per_ip.map(|r| (r, RateLimiter::keyed(quota(r))))),
        }
    }

    /// Takes the rates of a reloaded configuration.
    pub(crate) fn reload(&self, cfg: &Lb) {
        fn swap<L>(slot: &RwLock<Option<(Rate, L)>>, rate: Option<Rate>, make: impl Fn(Quota) -> L) {
            if slot.read().as_ref().map(|(r, _)| *r) != rate {
                *slot.write() = rate.map(|r| (r, make(quota(r))));
            }
        }
        swap(&self.global, cfg.connect_rate, RateLimiter::direct);
        swap(&self.per_ip, cfg.connect_rate_per_ip, RateLimiter::keyed);
    }

    /// Takes one connection from the global rate.
    pub(crate) fn check_global(&self) -> Result<(), Refusal> {
        match &*self.global.read() {
            Some((_, l)) if l.check().is_err() => Err(Refusal::ConnectRate),
            _ => Ok(()),
        }
    }

    /// Takes one connection from `ip`'s rate.
    pub(crate) fn check_ip(&self, ip: IpAddr) -> Result<(), Refusal> {
        match &*self.per_ip.read() {
            Some((_, l)) if l.check_key(&ip_key(ip)).is_err() => Err(Refusal::ConnectRatePerIp),
            _ => Ok(()),
        }
    }

    /// Forgets addresses whose rate has fully recovered.
    pub(crate) fn housekeeping(&self) {
        if let Some((_, l)) = &*self.per_ip.read() {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }
}

/// pingora's connection filter: the connect rates, before TLS. On a
/// listener behind a PROXY-sending balancer every connection comes from
/// that balancer, so the per-IP rate waits for the header (see `app`).
pub(crate) struct ConnectFilter {
    pub(crate) rates: Arc<ConnectRates>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) per_ip: bool,
}

impl fmt::Debug for ConnectFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectFilter")
            .field("per_ip", &self.per_ip)
            .finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl ConnectionFilter for ConnectFilter {
    async fn should_accept(&self, addr: Option<&SocketAddr>) -> bool {
        let per_ip = |a: &SocketAddr| {
            if self.per_ip {
                self.rates.check_ip(a.ip())
            } else {
                Ok(())
            }
        };
        let verdict = self.rates.check_global().and_then(|()| addr.map_or(Ok(()), per_ip));
        match verdict {
            Ok(()) => true,
            Err(reason) => {
                self.metrics.refused(reason);
                self.metrics.ended(Outcome::Rejected);
                tracing::debug!(peer = ?addr, reason = reason.as_str(), "connection refused before reading");
                false
            }
        }
    }
}

/// Caps on connections relayed at once. A reload changes the caps; the
/// connections counted stay counted.
#[derive(Debug)]
pub(crate) struct Caps {
    /// `u32::MAX`: no cap.
    max_total: AtomicU32,
    max_per_ip: AtomicU32,
    total: AtomicU32,
    per_ip: Mutex<HashMap<IpAddr, u32>>,
}

impl Caps {
    pub(crate) fn new(cfg: &Lb) -> Caps {
        let caps = Caps {
            max_total: AtomicU32::new(u32::MAX),
            max_per_ip: AtomicU32::new(u32::MAX),
            total: AtomicU32::new(0),
            per_ip: Mutex::new(HashMap::new()),
        };
        caps.reload(cfg);
        caps
    }

    /// Takes the caps of a reloaded configuration.
    pub(crate) fn reload(&self, cfg: &Lb) {
        let cap = |c: Option<NonZeroU32>| c.map_or(u32::MAX, NonZeroU32::get);
        self.max_total.store(cap(cfg.max_connections), Relaxed);
        self.max_per_ip.store(cap(cfg.max_connections_per_ip), Relaxed);
    }

    /// Counts one more connection from `ip`, unless a cap is reached.
    pub(crate) fn acquire(self: &Arc<Self>, ip: IpAddr) -> Result<CapGuard, Refusal> {
        let max_total = self.max_total.load(Relaxed);
        let counted = self
            .total
            .fetch_update(Relaxed, Relaxed, |n| (n < max_total).then_some(n + 1));
        if counted.is_err() {
            return Err(Refusal::MaxConnections);
        }
        let max_per_ip = self.max_per_ip.load(Relaxed);
        let key = (max_per_ip != u32::MAX).then(|| (ip_key(ip), max_per_ip));
        if let Some((key, max)) = key {
            let mut map = self.per_ip.lock();
            let n = map.entry(key).or_insert(0);
            if *n >= max {
                drop(map);
                self.total.fetch_sub(1, Relaxed);
                return Err(Refusal::MaxConnectionsPerIp);
            }
            *n += 1;
        }
        Ok(CapGuard {
            caps: Arc::clone(self),
            key: key.map(|(k, _)| k),
        })
    }
}

/// One counted connection; uncounted on drop.
#[derive(Debug)]
pub(crate) struct CapGuard {
    caps: Arc<Caps>,
    key: Option<IpAddr>,
}

impl Drop for CapGuard {
    fn drop(&mut self) {
        self.caps.total.fetch_sub(1, Relaxed);
        if let Some(key) = self.key {
            let mut map = self.caps.per_ip.lock();
            if let Some(n) = map.get_mut(&key) {
                *n -= 1;
                if *n == 0 {
                    map.remove(&key);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lb(yaml_extra: &str) -> Lb {
        crate::test_lb(yaml_extra, "      members: [{name: a, address: 127.0.0.1:1}]\n")
    }

    #[test]
    fn per_ip_cap_counts_and_releases() {
        let caps = Arc::new(Caps::new(&lb("  max_connections_per_ip: 2\n  max_connections: 3\n")));
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let g1 = caps.acquire(a).unwrap();
        let _g2 = caps.acquire(a).unwrap();
        assert_eq!(caps.acquire(a).unwrap_err(), Refusal::MaxConnectionsPerIp);
        let _g3 = caps.acquire(b).unwrap();
        assert_eq!(caps.acquire(b).unwrap_err(), Refusal::MaxConnections);
        drop(g1);
        assert!(caps.acquire(a).is_ok());
    }

    #[test]
    fn ipv6_is_keyed_by_slash_64() {
        let a = ip_key("2001:db8:1:2::1".parse().unwrap());
        let b = ip_key("2001:db8:1:2:ffff::9".parse().unwrap());
        assert_eq!(a, b);
        assert_eq!(
            ip_key("::ffff:10.0.0.1".parse().unwrap()),
            "10.0.0.1".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn connect_rates_refuse_beyond_the_burst() {
        let rates = ConnectRates::new(&lb("  connect_rate_per_ip: 2/m\n  connect_rate: 3/m\n"));
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        assert!(rates.check_ip(a).is_ok());
        assert!(rates.check_ip(a).is_ok());
        assert_eq!(rates.check_ip(a), Err(Refusal::ConnectRatePerIp));
        assert!(rates.check_ip("10.0.0.2".parse().unwrap()).is_ok());
        for _ in 0..3 {
            assert!(rates.check_global().is_ok());
        }
        assert_eq!(rates.check_global(), Err(Refusal::ConnectRate));
    }
}
