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
    /// Clients connected now.
    clients_connected,
    /// CONNECT packets received.
    mqtt_connect_received,
    /// CONNACKs sent with success.
    mqtt_connack_accepted_sent,
    /// CONNACKs sent refusing the connection.
    mqtt_connack_refused_sent,
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
