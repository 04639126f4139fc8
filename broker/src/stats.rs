//! Counters of one node, named after VerneMQ's metrics where one exists.
//! Updated with relaxed atomics on the hot path; read by `$SYS` and, later,
//! the Prometheus endpoint.

use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        /// The node's counters.
        #[derive(Debug, Default)]
        pub struct NodeStats {
            $($(#[$doc])* pub $name: AtomicU64,)*
            /// Clients connected now (a gauge).
            pub clients_connected: AtomicU64,
            /// Of those, clients whose connection hibernates now (a gauge).
            pub clients_hibernating: AtomicU64,
            /// CONNACKs sent, by reason code.
            pub connack_sent: ReasonCounts,
        }

        impl NodeStats {
            /// Every counter with its metric name, for exporters.
            pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
                vec![$((stringify!($name), self.$name.load(Ordering::Relaxed)),)*]
            }
        }
    };
}

counters! {
    /// CONNECT packets received.
    mqtt_connect_received,
    /// PUBLISH packets received from clients.
    mqtt_publish_received,
    /// PUBLISH packets sent to clients.
    mqtt_publish_sent,
    /// PUBLISH packets refused by the ACL.
    mqtt_publish_auth_error,
    /// SUBSCRIBE packets received.
    mqtt_subscribe_received,
    /// Subscriptions refused by the ACL.
    mqtt_subscribe_auth_error,
    /// Bytes received from clients.
    bytes_received,
    /// Bytes sent to clients.
    bytes_sent,
    /// Local subscriptions a publish matched.
    router_matches_local,
    /// Messages dropped because a queue was full.
    queue_message_drop,
    /// Messages dropped because they expired while queued.
    queue_message_expired,
    /// Messages put in an offline queue.
    queue_message_in,
    /// Messages dropped because the client's maximum packet size was smaller.
    mqtt_publish_too_large_for_client,
    /// Connections closed for a protocol violation or malformed packet.
    mqtt_invalid_packet,
    /// Sessions taken over by a new connection.
    session_takeover,
    /// Sessions removed because they expired.
    session_expired,
    /// Will messages published.
    will_published,
}

impl NodeStats {
    /// Adds one to a counter.
    pub(crate) fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds `n` to a counter.
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Subtracts one from a gauge.
    pub(crate) fn dec(counter: &AtomicU64) {
        counter.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One counter per MQTT reason code.
#[derive(Debug)]
pub struct ReasonCounts(Box<[AtomicU64; 256]>);

impl Default for ReasonCounts {
    fn default() -> Self {
        Self(Box::new(std::array::from_fn(|_| AtomicU64::new(0))))
    }
}

impl ReasonCounts {
    /// Counts one packet with reason `code`.
    pub(crate) fn inc(&self, code: u8) {
        self.0[usize::from(code)].fetch_add(1, Ordering::Relaxed);
    }

    /// The codes seen so far with their counts.
    pub fn nonzero(&self) -> Vec<(u8, u64)> {
        (0..=u8::MAX)
            .map(|code| (code, self.0[usize::from(code)].load(Ordering::Relaxed)))
            .filter(|(_, n)| *n > 0)
            .collect()
    }
}
