//! Prometheus exposition of every part's counters. The parts keep plain
//! atomics on their hot paths; a collector reads them at scrape time, so
//! metrics cost nothing between scrapes. Names follow VerneMQ's where one
//! exists (`mqtt_publish_received`, `mqtt_connack_sent{reason_code}`,
//! `queue_message_drop`, `router_matches_local`).

use std::fmt::Write as _;

use hyper::StatusCode;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use skerry_broker::NodeHandle;

use super::{reply, Reply};

/// A registry whose collectors read the running parts.
pub(super) fn registry(nodes: &[NodeHandle]) -> Registry {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(BrokerCollector { nodes: nodes.to_vec() }));
    registry
}

/// Renders the registry in the Prometheus text format.
pub(super) fn render(registry: &Registry) -> Reply {
    let mut out = String::new();
    match prometheus_client::encoding::text::encode(&mut out, registry) {
        Ok(()) => reply(
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            out,
        ),
        Err(e) => {
            let mut msg = String::new();
            let _ = write!(msg, "encoding metrics failed: {e}");
            reply(StatusCode::INTERNAL_SERVER_ERROR, "text/plain", msg)
        }
    }
}

struct BrokerCollector {
    nodes: Vec<NodeHandle>,
}

impl std::fmt::Debug for BrokerCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerCollector")
            .field("nodes", &self.nodes.len())
            .finish()
    }
}

/// Writes one metric family with one sample per `(labels, value)`.
fn family(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    kind: MetricType,
    samples: &[(Vec<(&str, String)>, u64)],
) -> std::fmt::Result {
    let mut metric = encoder.encode_descriptor(name, help, None, kind)?;
    for (labels, value) in samples {
        let labels: Vec<(String, String)> = labels.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect();
        let sample = metric.encode_family(&labels)?;
        match kind {
            MetricType::Gauge => ConstGauge::new(i64::try_from(*value).unwrap_or(i64::MAX)).encode(sample)?,
            _ => ConstCounter::new(*value).encode(sample)?,
        }
    }
    Ok(())
}

impl Collector for BrokerCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let node_label = |n: &NodeHandle| vec![("node", n.name().to_owned())];
        let Some(first) = self.nodes.first() else { return Ok(()) };
        for (i, (name, _)) in first.stats().snapshot().into_iter().enumerate() {
            let samples: Vec<_> = self
                .nodes
                .iter()
                .map(|n| (node_label(n), n.stats().snapshot()[i].1))
                .collect();
            family(&mut encoder, name, name, MetricType::Counter, &samples)?;
        }
        let mut connacks = Vec::new();
        for n in &self.nodes {
            for (code, count) in n.stats().connack_sent.nonzero() {
                let mut labels = node_label(n);
                labels.push(("reason_code", format!("0x{code:02x}")));
                connacks.push((labels, count));
            }
        }
        family(
            &mut encoder,
            "mqtt_connack_sent",
            "CONNACKs sent, by reason code",
            MetricType::Counter,
            &connacks,
        )?;
        let gauges: [(&str, &str, fn(&NodeHandle) -> u64); 3] = [
            ("mqtt_clients_connected", "clients connected now", |n| {
                n.stats().clients_connected.load(std::sync::atomic::Ordering::Relaxed)
            }),
            ("mqtt_sessions", "sessions held (online and offline)", |n| {
                n.session_count() as u64
            }),
            ("retain_messages", "retained messages", |n| n.retained_count() as u64),
        ];
        for (name, help, read) in gauges {
            let samples: Vec<_> = self.nodes.iter().map(|n| (node_label(n), read(n))).collect();
            family(&mut encoder, name, help, MetricType::Gauge, &samples)?;
        }
        Ok(())
    }
}
