//! Broker nodes started in-process from a YAML snippet, every listener on
//! `127.0.0.1:0`.

use std::net::SocketAddr;
use std::path::Path;

use skerry_broker::Node;

/// A running node and where its listeners ended up.
pub struct TestBroker {
    node: Option<Node>,
    addrs: Vec<(String, SocketAddr)>,
}

impl TestBroker {
    /// Starts the first node of `yaml` (a whole Skerry configuration);
    /// relative paths resolve against `base`.
    pub async fn start_in(yaml: &str, base: &Path) -> TestBroker {
        let mut config = skerry_config::parse(yaml, base).unwrap_or_else(|e| panic!("test config: {e}"));
        if !yaml.contains("store:") {
            // In-process tests share one working directory (and data_dir
            // defaults under it): keep them off disk unless they ask.
            config.broker.store.engine = skerry_config::StoreEngine::Memory;
        }
        let node_cfg = config.broker.nodes.first().expect("a node in the test config");
        let node = Node::start(node_cfg, &config.broker)
            .await
            .unwrap_or_else(|e| panic!("start: {e}"));
        let addrs = node.local_addrs().to_vec();
        TestBroker {
            node: Some(node),
            addrs,
        }
    }

    /// Starts a node with one plain TCP listener and `broker_extra` (YAML
    /// lines at the `broker:` level, indented by two spaces).
    pub async fn start(broker_extra: &str) -> TestBroker {
        let yaml = format!(
            "broker:\n  allow_anonymous: true\n{broker_extra}\n  nodes:\n    - name: n1\n      listeners:\n        - name: tcp\n          bind: 127.0.0.1:0\n"
        );
        Self::start_in(&yaml, Path::new(".")).await
    }

    /// The address of the listener called `name`.
    pub fn addr(&self, name: &str) -> SocketAddr {
        self.addrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, a)| *a)
            .unwrap_or_else(|| panic!("no listener {name}"))
    }

    /// The address of the first listener.
    pub fn tcp(&self) -> SocketAddr {
        self.addrs[0].1
    }

    /// The node's counters as `(name, value)`.
    pub fn stat(&self, name: &str) -> u64 {
        let node = self.node.as_ref().expect("running");
        node.stats()
            .snapshot()
            .into_iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v)
            .expect("known counter")
    }

    /// Clients connected now.
    pub fn clients_connected(&self) -> u64 {
        self.gauge(|s| &s.clients_connected)
    }

    /// Connected clients whose connection hibernates now.
    pub fn hibernating(&self) -> u64 {
        self.gauge(|s| &s.clients_hibernating)
    }

    fn gauge(&self, which: impl Fn(&skerry_broker::NodeStats) -> &std::sync::atomic::AtomicU64) -> u64 {
        which(self.node.as_ref().expect("running").stats()).load(std::sync::atomic::Ordering::Relaxed)
    }

    /// What the admin API shows of `client_id`'s session.
    pub fn session(&self, client_id: &str) -> Option<skerry_broker::SessionInfo> {
        self.node.as_ref().expect("running").handle().session(client_id)
    }

    /// Shuts the node down and waits for it.
    pub async fn stop(mut self) {
        if let Some(node) = self.node.take() {
            node.shutdown().await;
        }
    }
}
