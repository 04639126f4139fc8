//! Client-id stickiness: independent balancers send each client id to the
//! same backend, and removing a backend moves only its own clients.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;

use skerry_codec::ReasonCode;
use skerry_lb::BalancerHandle;

use crate::lb_util::{lb_addr, members, mqtt_connect, start_lb, MiniBackend, V5};

const CLIENTS: usize = 1000;
/// Clients connecting at once.
const BATCH: usize = 50;

fn yaml(list: &[(&str, SocketAddr)]) -> String {
    format!(
        "lb:\n  listeners:\n    - {{name: mqtt, bind: 127.0.0.1:0, pool: nodes}}\n  pools:\n    - name: nodes\n      balance: client_id\n      members:\n{}",
        members(list)
    )
}

/// Connects every id through `lb` (CONNECT, CONNACK, close) and returns
/// which backend (by index into `backends`) saw each.
async fn placement(lb: &BalancerHandle, backends: &[MiniBackend], ids: &[String]) -> HashMap<String, usize> {
    for b in backends {
        b.clear();
    }
    let addr = lb_addr(lb);
    for batch in ids.chunks(BATCH) {
        let clients = batch.iter().map(|id| async move {
            let (_c, ack) = mqtt_connect(addr, V5, id).await;
            assert_eq!(ack.map(|a| a.reason), Some(ReasonCode::Success), "{id}");
        });
        futures_util::future::join_all(clients).await;
    }
    let mut at = HashMap::new();
    for (i, b) in backends.iter().enumerate() {
        for id in b.ids() {
            assert!(at.insert(id.clone(), i).is_none(), "{id} reached two backends");
        }
    }
    assert_eq!(at.len(), ids.len(), "every client reached a backend");
    at
}

/// Three echo backends, and their members as `node1`..`node3`.
async fn three_backends() -> ([MiniBackend; 3], [(&'static str, SocketAddr); 3]) {
    let backends = [
        MiniBackend::start(false).await,
        MiniBackend::start(false).await,
        MiniBackend::start(false).await,
    ];
    let named = [
        ("node1", backends[0].addr),
        ("node2", backends[1].addr),
        ("node3", backends[2].addr),
    ];
    (backends, named)
}

fn ids() -> Vec<String> {
    (0..CLIENTS).map(|i| format!("sensor-{i:04}")).collect()
}

#[tokio::test]
async fn a_thousand_client_ids_land_on_the_same_backend_through_two_balancers() {
    let (backends, named) = three_backends().await;
    let a = start_lb(&yaml(&named), Path::new("."));
    // The second instance lists the members in another order: the ring
    // depends on the names only.
    let b = start_lb(&yaml(&[named[2], named[0], named[1]]), Path::new("."));
    let ids = ids();
    let first = placement(&a, &backends, &ids).await;
    let second = placement(&b, &backends, &ids).await;
    assert_eq!(first, second);
    let again = placement(&a, &backends, &ids).await;
    assert_eq!(first, again, "and the same again on reconnect");
    for i in 0..3 {
        let n = first.values().filter(|b| **b == i).count();
        assert!(n > CLIENTS / 6, "backend {i} got only {n} clients");
    }
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn removing_one_of_three_backends_moves_only_its_clients() {
    let (backends, named) = three_backends().await;
    let three = start_lb(&yaml(&named), Path::new("."));
    let two = start_lb(&yaml(&[named[0], named[2]]), Path::new("."));
    let ids = ids();
    let before = placement(&three, &backends, &ids).await;
    let after = placement(&two, &backends, &ids).await;
    let mut moved = 0;
    for id in &ids {
        if before[id] == 1 {
            assert_ne!(after[id], 1, "{id} still on the removed backend");
            moved += 1;
        } else {
            assert_eq!(after[id], before[id], "{id} moved though its backend stayed");
        }
    }
    assert!(moved > 0);
    three.shutdown().await;
    two.shutdown().await;
}
