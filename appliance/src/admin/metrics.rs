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
pub(super) fn registry(nodes: &[NodeHandle], lb: Option<&skerry_lb::BalancerView>) -> Registry {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(BrokerCollector { nodes: nodes.to_vec() }));
    if let Some(lb) = lb {
        registry.register_collector(Box::new(LbCollector(lb.clone())));
    }
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

/// Reads one gauge off a node.
type NodeGauge = fn(&NodeHandle) -> u64;

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
        let gauges: [(&str, &str, NodeGauge); 4] = [
            ("mqtt_clients_connected", "clients connected now", |n| {
                n.stats().clients_connected.load(std::sync::atomic::Ordering::Relaxed)
            }),
            (
                "mqtt_clients_hibernating",
                "connected clients whose idle connection hibernates now",
                |n| n.stats().clients_hibernating.load(std::sync::atomic::Ordering::Relaxed),
            ),
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

/// The balancer's counters: connections by outcome, refusals by reason,
/// bytes each way, and per-backend health and connections.
#[derive(Debug)]
struct LbCollector(skerry_lb::BalancerView);

impl Collector for LbCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let m = self.0.metrics();
        let one = |v: u64| vec![(Vec::new(), v)];
        family(
            &mut encoder,
            "lb_connections_active",
            "client connections open now",
            MetricType::Gauge,
            &one(m.connections_active),
        )?;
        let by = |pairs: Vec<(&'static str, u64)>, label: &'static str| -> Vec<(Vec<(&str, String)>, u64)> {
            pairs
                .into_iter()
                .map(|(k, v)| (vec![(label, k.to_owned())], v))
                .collect()
        };
        let outcomes = by(m.connections.iter().map(|(o, n)| (o.as_str(), *n)).collect(), "result");
        family(
            &mut encoder,
            "lb_connections",
            "client connections ended, by result",
            MetricType::Counter,
            &outcomes,
        )?;
        let refusals = by(m.refusals.iter().map(|(r, n)| (r.as_str(), *n)).collect(), "reason");
        family(
            &mut encoder,
            "lb_refusals",
            "connections refused before reaching a backend, by reason",
            MetricType::Counter,
            &refusals,
        )?;
        family(
            &mut encoder,
            "lb_bytes_to_backends",
            "bytes relayed from clients",
            MetricType::Counter,
            &one(m.bytes_to_backends),
        )?;
        family(
            &mut encoder,
            "lb_bytes_to_clients",
            "bytes relayed from backends",
            MetricType::Counter,
            &one(m.bytes_to_clients),
        )?;
        family(
            &mut encoder,
            "lb_sessions_handed_off",
            "sessions handed to a node of this process instead of relayed",
            MetricType::Counter,
            &one(m.handed_off),
        )?;
        family(
            &mut encoder,
            "lb_sessions_passed",
            "sessions whose socket was passed to a node in another process",
            MetricType::Counter,
            &one(m.passed),
        )?;
        family(
            &mut encoder,
            "lb_tls_handshake_failures",
            "failed TLS handshakes",
            MetricType::Counter,
            &one(m.tls_handshake_failures),
        )?;
        let backends = self.0.backends();
        let per = |read: fn(&skerry_lb::BackendStatus) -> u64| -> Vec<(Vec<(&str, String)>, u64)> {
            backends
                .iter()
                .map(|b| (vec![("pool", b.pool.clone()), ("backend", b.member.clone())], read(b)))
                .collect()
        };
        family(
            &mut encoder,
            "lb_backend_up",
            "1 when the health check passes",
            MetricType::Gauge,
            &per(|b| u64::from(b.healthy)),
        )?;
        family(
            &mut encoder,
            "lb_backend_draining",
            "1 when drained by an operator",
            MetricType::Gauge,
            &per(|b| u64::from(b.draining)),
        )?;
        family(
            &mut encoder,
            "lb_backend_connections_active",
            "connections relayed now",
            MetricType::Gauge,
            &per(|b| b.active_connections),
        )?;
        family(
            &mut encoder,
            "lb_backend_connections",
            "connections relayed since start",
            MetricType::Counter,
            &per(|b| b.total_connections),
        )?;
        family(
            &mut encoder,
            "lb_backend_connect_failures",
            "failed backend connects",
            MetricType::Counter,
            &per(|b| b.connect_failures),
        )
    }
}
