//! Health checks: one task per backend probes it every `interval` (TCP
//! connect, or an MQTT CONNECT answered by a CONNACK), each probe bounded by
//! `timeout`; `fall` failures in a row mark it down, `rise` successes mark
//! it up. With `on_marked_down: shutdown_sessions` a backend marked down
//! also loses its relayed sessions, so their clients reconnect elsewhere.
//!
//! A pool that speaks PROXY gets a header first, as a real client
//! connection would: v2 `LOCAL` (Mosquitto 2.1 treats it as a health check
//! and closes quietly; EMQX takes it as a direct connection) or v1
//! `PROXY UNKNOWN`. A bare connect/close against a PROXY listener would
//! only fill the backend's log with header timeouts.

use std::io;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::sync::Arc;

use bytes::BytesMut;
use skerry_codec::{decode_packet, encode, Connect, Disconnect, Packet, ProtocolVersion, ReasonCode};
use skerry_config::{HealthKind, OnMarkedDown, ProxyMode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;
use tracing::{info, warn};

use crate::pool::{Backend, PoolState};
use crate::proxy_out;

/// Largest CONNACK accepted from a probed backend (v5 properties included).
const MAX_CONNACK: u32 = 4096;

/// Consecutive probe results turned into up/down decisions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Tracker {
    up: bool,
    streak: u32,
    rise: u32,
    fall: u32,
}

impl Tracker {
    pub(crate) fn new(rise: u32, fall: u32) -> Tracker {
        Tracker {
            up: true,
            streak: 0,
            rise,
            fall,
        }
    }

    /// Feeds one probe result; returns the new state when it changes.
    pub(crate) fn observe(&mut self, ok: bool) -> Option<bool> {
        if ok == self.up {
            self.streak = 0;
            return None;
        }
        self.streak += 1;
        let needed = if self.up { self.fall } else { self.rise };
        if self.streak < needed {
            return None;
        }
        self.up = ok;
        self.streak = 0;
        Some(ok)
    }
}

/// Starts one checking task per backend of `pools`; they end when
/// `shutdown` turns true, or when a reload removes their backend.
pub(crate) fn spawn_all(pools: &[Arc<PoolState>], shutdown: &watch::Receiver<bool>) {
    for pool in pools {
        for backend in &pool.members().list {
            tokio::spawn(check_loop(Arc::clone(pool), Arc::clone(backend), shutdown.clone()));
        }
    }
}

/// Starts checking `backend`, a member `pool` gained on reload.
pub(crate) fn spawn_one(
    runtime: &tokio::runtime::Handle,
    pool: &Arc<PoolState>,
    backend: Arc<Backend>,
    shutdown: &watch::Receiver<bool>,
) {
    runtime.spawn(check_loop(Arc::clone(pool), backend, shutdown.clone()));
}

async fn check_loop(pool: Arc<PoolState>, backend: Arc<Backend>, mut shutdown: watch::Receiver<bool>) {
    let hc = &pool.health;
    let mut tracker = Tracker::new(hc.rise.get(), hc.fall.get());
    let mut ticker = tokio::time::interval(hc.interval.get());
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.changed() => return,
        }
        if backend.is_retired() {
            return;
        }
        let result = match tokio::time::timeout(hc.timeout.get(), probe(&pool, &backend)).await {
            Ok(r) => r,
            Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "probe timed out")),
        };
        let Some(up) = tracker.observe(result.is_ok()) else {
            continue;
        };
        backend.set_healthy(up);
        if up {
            info!(pool = %pool.name, backend = %backend.name, "backend marked up");
            continue;
        }
        let error = result.err().map(|e| e.to_string()).unwrap_or_default();
        warn!(pool = %pool.name, backend = %backend.name, %error, "backend marked down");
        if pool.on_marked_down == OnMarkedDown::ShutdownSessions {
            backend.evict_sessions();
        }
    }
}

/// One probe: connect, PROXY prelude, and for MQTT a CONNECT/CONNACK.
async fn probe(pool: &PoolState, backend: &Backend) -> io::Result<()> {
    let mut stream = backend.connect().await?;
    match pool.proxy {
        ProxyMode::None => {}
        ProxyMode::V1 => stream.write_all(proxy_out::V1_UNKNOWN).await?,
        ProxyMode::V2 | ProxyMode::V2Ssl | ProxyMode::V2SslCn => stream.write_all(&proxy_out::v2_local()).await?,
    }
    if pool.health.kind == HealthKind::Mqtt {
        mqtt_probe(&mut stream, &backend.name).await?;
    }
    stream.shutdown().await
}

/// Client ids of probes: unique per process and probe, so two balancers
/// (or two probes) never take over each other's probe session.
fn probe_client_id(member: &str) -> String {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let seq = SEQ.fetch_add(1, Relaxed);
    let mut id = format!("lbhc-{:x}-{seq:x}-{member}", std::process::id());
    // MQTT 3.1.1 servers need only accept 23 characters.
    id.truncate(id.char_indices().nth(23).map_or(id.len(), |(i, _)| i));
    id
}

/// CONNECT (3.1.1, clean session) and expect a CONNACK. A CONNACK that
/// refuses the probe's credentials still proves a working broker; one that
/// says the server is unavailable does not.
async fn mqtt_probe(stream: &mut TcpStream, member: &str) -> io::Result<()> {
    let version = ProtocolVersion::V311;
    let mut connect = Connect::new(version, probe_client_id(member));
    connect.keep_alive = 5;
    let mut buf = BytesMut::with_capacity(64);
    encode(&Packet::Connect(connect), version, &mut buf).map_err(io::Error::other)?;
    stream.write_all(&buf).await?;
    buf.clear();
    let ack = loop {
        if let Some(p) = decode_packet(&mut buf, version, MAX_CONNACK).map_err(io::Error::other)? {
            break p;
        }
        if stream.read_buf(&mut buf).await? == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed before CONNACK"));
        }
    };
    let Packet::ConnAck(ack) = ack else {
        return Err(io::Error::other("first packet is not a CONNACK"));
    };
    if matches!(ack.reason, ReasonCode::ServerUnavailable | ReasonCode::ServerBusy) {
        return Err(io::Error::other(format!("CONNACK {}", ack.reason.description())));
    }
    if ack.reason == ReasonCode::Success {
        buf.clear();
        let bye = Packet::Disconnect(Disconnect::new(ReasonCode::NORMAL_DISCONNECTION));
        encode(&bye, version, &mut buf).map_err(io::Error::other)?;
        stream.write_all(&buf).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fall_and_rise_need_consecutive_results() {
        let mut t = Tracker::new(2, 3);
        assert_eq!(t.observe(false), None);
        assert_eq!(t.observe(false), None);
        assert_eq!(t.observe(true), None, "a success resets the failure streak");
        assert_eq!(t.observe(false), None);
        assert_eq!(t.observe(false), None);
        assert_eq!(t.observe(false), Some(false));
        assert_eq!(t.observe(false), None);
        assert_eq!(t.observe(true), None);
        assert_eq!(t.observe(true), Some(true));
        assert_eq!(t.observe(true), None);
    }

    #[test]
    fn probe_ids_are_short_and_unique() {
        let a = probe_client_id("a-very-long-member-name-indeed");
        let b = probe_client_id("a-very-long-member-name-indeed");
        assert!(a.len() <= 23, "{a}");
        assert_ne!(a, b);
    }
}
