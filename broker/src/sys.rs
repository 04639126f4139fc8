//! `$SYS/broker/...`: the node's statistics, published as retained
//! messages every `sys_interval`, as Mosquitto and VerneMQ do. Filters
//! starting with a wildcard never see them (`$` topics), `$SYS/#` does.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use skerry_codec::{ByteStr, PublishProperties, QoS};

use crate::message::Message;
use crate::node::NodeShared;

/// Publishes the statistics until the node shuts down.
pub(crate) async fn run(node: Arc<NodeShared>, interval: Duration) {
    let started = Instant::now();
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => publish_once(&node, started),
            () = node.shutdown.cancelled() => return,
        }
    }
}

fn publish_once(node: &NodeShared, started: Instant) {
    let s = &node.stats;
    let load = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed).to_string();
    let values = [
        ("version", env!("CARGO_PKG_VERSION").to_owned()),
        ("uptime", format!("{} seconds", started.elapsed().as_secs())),
        ("clients/connected", load(&s.clients_connected)),
        ("clients/hibernating", load(&s.clients_hibernating)),
        ("clients/total", node.sessions.lock().len().to_string()),
        ("messages/received", load(&s.mqtt_publish_received)),
        ("messages/sent", load(&s.mqtt_publish_sent)),
        ("messages/dropped", load(&s.queue_message_drop)),
        ("bytes/received", load(&s.bytes_received)),
        ("bytes/sent", load(&s.bytes_sent)),
        (
            "subscriptions/count",
            node.router.read().subscription_count().to_string(),
        ),
        ("retained messages/count", node.retained.read().len().to_string()),
    ];
    for (name, value) in values {
        let topic = ByteStr::from(format!("$SYS/broker/{name}"));
        let msg = Message::new(
            topic,
            value.into(),
            QoS::AtMostOnce,
            true,
            PublishProperties::default(),
            None,
        );
        node.publish(msg);
    }
}
