//! The balancer's counters: connections by outcome, refusals by reason,
//! bytes each way and TLS handshake failures. Plain atomics updated on the
//! connection path; [`Metrics::snapshot`] copies them into a
//! [`MetricsSnapshot`] the admin endpoint exports (with the per-backend
//! figures from [`crate::BalancerHandle::backends`]).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

/// How a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// It reached a backend and its bytes were relayed.
    Proxied,
    /// It sent a CONNECT and was answered with a refusing CONNACK.
    Refused,
    /// It was closed without an MQTT answer: refused before its CONNECT
    /// (rate limits, TLS, PROXY header) or not speaking MQTT.
    Rejected,
}

impl Outcome {
    /// Every outcome, in the order [`MetricsSnapshot::connections`] uses.
    pub const ALL: [Outcome; 3] = [Outcome::Proxied, Outcome::Refused, Outcome::Rejected];

    /// Label value for exporters.
    pub const fn as_str(self) -> &'static str {
        match self {
            Outcome::Proxied => "proxied",
            Outcome::Refused => "refused",
            Outcome::Rejected => "rejected",
        }
    }
}

/// Why a connection did not reach a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// Over `connect_rate` (before TLS; closed).
    ConnectRate,
    /// Over `connect_rate_per_ip` (before TLS; closed).
    ConnectRatePerIp,
    /// A PROXY header from an address outside `trusted`, or none expected.
    UntrustedProxy,
    /// A malformed, oversized or late PROXY header.
    BadProxyHeader,
    /// The TLS handshake failed or took too long.
    TlsHandshake,
    /// No complete CONNECT within `sniff_timeout`.
    SniffTimeout,
    /// The client closed before its CONNECT was complete.
    ClosedEarly,
    /// The first bytes are not an MQTT 3.1/3.1.1/5.0 CONNECT.
    NotMqtt,
    /// The CONNECT is larger than `max_connect_size`.
    ConnectTooLarge,
    /// The client's rate class is over its `connect_rate` (CONNACK 0x9F).
    ClassConnectRate,
    /// `max_connections` reached (CONNACK 0x97).
    MaxConnections,
    /// `max_connections_per_ip` reached (CONNACK 0x97).
    MaxConnectionsPerIp,
    /// No healthy, undrained backend in the pool (CONNACK 0x88).
    NoBackend,
    /// Every candidate backend failed to connect (CONNACK 0x88).
    BackendUnreachable,
    /// The balancer is shutting down (CONNACK 0x88).
    ShuttingDown,
}

impl Refusal {
    /// Every reason, in the order [`MetricsSnapshot::refusals`] uses.
    pub const ALL: [Refusal; 15] = [
        Refusal::ConnectRate,
        Refusal::ConnectRatePerIp,
        Refusal::UntrustedProxy,
        Refusal::BadProxyHeader,
        Refusal::TlsHandshake,
        Refusal::SniffTimeout,
        Refusal::ClosedEarly,
        Refusal::NotMqtt,
        Refusal::ConnectTooLarge,
        Refusal::ClassConnectRate,
        Refusal::MaxConnections,
        Refusal::MaxConnectionsPerIp,
        Refusal::NoBackend,
        Refusal::BackendUnreachable,
        Refusal::ShuttingDown,
    ];

    /// Label value for exporters.
    pub const fn as_str(self) -> &'static str {
        match self {
            Refusal::ConnectRate => "connect_rate",
            Refusal::ConnectRatePerIp => "connect_rate_per_ip",
            Refusal::UntrustedProxy => "untrusted_proxy",
            Refusal::BadProxyHeader => "bad_proxy_header",
            Refusal::TlsHandshake => "tls_handshake",
            Refusal::SniffTimeout => "sniff_timeout",
            Refusal::ClosedEarly => "closed_early",
            Refusal::NotMqtt => "not_mqtt",
            Refusal::ConnectTooLarge => "connect_too_large",
            Refusal::ClassConnectRate => "class_connect_rate",
            Refusal::MaxConnections => "max_connections",
            Refusal::MaxConnectionsPerIp => "max_connections_per_ip",
            Refusal::NoBackend => "no_backend",
            Refusal::BackendUnreachable => "backend_unreachable",
            Refusal::ShuttingDown => "shutting_down",
        }
    }

    fn index(self) -> usize {
        Refusal::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }
}

/// A copy of the balancer-wide counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsSnapshot {
    /// Connections open now, in any phase (handshake, CONNECT, relaying).
    pub connections_active: u64,
    /// Connections ended, by outcome.
    pub connections: Vec<(Outcome, u64)>,
    /// Connections that did not reach a backend, by reason.
    pub refusals: Vec<(Refusal, u64)>,
    /// Bytes relayed from clients to backends (the CONNECT included).
    pub bytes_to_backends: u64,
    /// Bytes relayed from backends to clients.
    pub bytes_to_clients: u64,
    /// TLS handshakes that failed or timed out (also in `refusals`).
    pub tls_handshake_failures: u64,
    /// Sessions handed to a broker node in this process instead of
    /// relayed (also in `connections` as proxied).
    pub handed_off: u64,
    /// Sessions whose socket was passed to a node in another process on
    /// this host (also in `connections` as proxied).
    pub passed: u64,
}

impl MetricsSnapshot {
    /// The count for one refusal reason.
    pub fn refused(&self, reason: Refusal) -> u64 {
        self.refusals.iter().find(|(r, _)| *r == reason).map_or(0, |(_, n)| *n)
    }

    /// The count for one outcome.
    pub fn ended(&self, outcome: Outcome) -> u64 {
        self.connections
            .iter()
            .find(|(o, _)| *o == outcome)
            .map_or(0, |(_, n)| *n)
    }
}

/// The live counters.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    active: AtomicU64,
    outcomes: [AtomicU64; Outcome::ALL.len()],
    refusals: [AtomicU64; Refusal::ALL.len()],
    pub(crate) bytes_to_backends: AtomicU64,
    pub(crate) bytes_to_clients: AtomicU64,
    tls_failures: AtomicU64,
    pub(crate) handed_off: AtomicU64,
    pub(crate) passed: AtomicU64,
}

impl Metrics {
    /// Counts a connection as open until the guard is dropped: the
    /// balancer's own connection task holds it, or, once the balancer hands
    /// the client over to a node in this process, the client's stream.
    pub(crate) fn open(self: &Arc<Self>) -> OpenGuard {
        self.active.fetch_add(1, Relaxed);
        OpenGuard(Arc::clone(self))
    }

    /// Connections open now.
    pub(crate) fn active(&self) -> u64 {
        self.active.load(Relaxed)
    }

    /// Records how a connection ended.
    pub(crate) fn ended(&self, outcome: Outcome) {
        let i = Outcome::ALL.iter().position(|o| *o == outcome).unwrap_or(0);
        self.outcomes[i].fetch_add(1, Relaxed);
    }

    /// Records why a connection did not reach a backend.
    pub(crate) fn refused(&self, reason: Refusal) {
        self.refusals[reason.index()].fetch_add(1, Relaxed);
        if reason == Refusal::TlsHandshake {
            self.tls_failures.fetch_add(1, Relaxed);
        }
    }

    /// A copy of every counter.
    pub(crate) fn snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            connections_active: self.active(),
            connections: Outcome::ALL
                .iter()
                .zip(&self.outcomes)
                .map(|(o, n)| (*o, n.load(Relaxed)))
                .collect(),
            refusals: Refusal::ALL
                .iter()
                .zip(&self.refusals)
                .map(|(r, n)| (*r, n.load(Relaxed)))
                .collect(),
            bytes_to_backends: self.bytes_to_backends.load(Relaxed),
            bytes_to_clients: self.bytes_to_clients.load(Relaxed),
            tls_handshake_failures: self.tls_failures.load(Relaxed),
            handed_off: self.handed_off.load(Relaxed),
            passed: self.passed.load(Relaxed),
        }
    }
}

/// Decrements the open-connection gauge when dropped, however the
/// connection ends.
pub(crate) struct OpenGuard(Arc<Metrics>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_reflects_counts() {
        let m = Arc::new(Metrics::default());
        {
            let _open = m.open();
            assert_eq!(m.snapshot().connections_active, 1);
            m.refused(Refusal::TlsHandshake);
            m.ended(Outcome::Rejected);
        }
        let s = m.snapshot();
        assert_eq!(s.connections_active, 0);
        assert_eq!(s.refused(Refusal::TlsHandshake), 1);
        assert_eq!(s.tls_handshake_failures, 1);
        assert_eq!(s.ended(Outcome::Rejected), 1);
        assert_eq!(s.ended(Outcome::Proxied), 0);
    }

    #[test]
    fn labels_are_unique() {
        let mut names: Vec<_> = Refusal::ALL.iter().map(|r| r.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Refusal::ALL.len());
        for (i, r) in Refusal::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
    }
}
