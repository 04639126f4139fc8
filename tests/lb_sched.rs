//! `lb.scheduling: batch`: the balancer's own threads run under
//! SCHED_BATCH and relay as before, in this process and in `skerry run`
//! without broker nodes; `skerry run` with nodes, where the balancer runs
//! on the nodes' threads, refuses it with one clear error.

use std::net::SocketAddr;
use std::path::Path;

use skerry_codec::{Packet, Publish, ReasonCode};
use skerry_tests::process::{free_port, SkerryProcess};
use skerry_tests::run_start_error;

use crate::lb_util::{lb_addr, members, mqtt_connect, start_lb, MiniBackend, V5};

/// Names of a process's threads under SCHED_BATCH (`policy`, field 41 of
/// each thread's stat, is 3); `pid` is `self` or a number.
fn batch_threads(pid: &str) -> Vec<String> {
    let mut names = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue; // the thread ended meanwhile
        };
        let (name, rest) = stat.split_once(" (").unwrap().1.rsplit_once(')').unwrap();
        let policy = rest.split_whitespace().nth(38).unwrap();
        if policy == "3" {
            names.push(name.to_owned());
        }
    }
    names
}

#[tokio::test]
async fn batch_puts_the_balancer_threads_under_sched_batch_and_bytes_still_flow() {
    let backend = MiniBackend::start(false).await;
    let yaml = batch_lb(0, &backend);
    // No other test asks for batch: every batch thread here is this balancer's.
    assert_eq!(batch_threads("self"), Vec::<String>::new());
    let lb = start_lb(&yaml, Path::new("."));
    let batch = batch_threads("self");
    assert!(batch.iter().any(|n| n == "skerry-lb-main"), "{batch:?}");
    assert!(
        batch.iter().any(|n| n == "skerry-lb"),
        "the runtime's workers: {batch:?}"
    );
    relays(lb_addr(&lb), "sched-1").await;
    assert_eq!(backend.ids(), ["sched-1"]);
    lb.shutdown().await;
}

#[tokio::test]
async fn skerry_run_without_nodes_runs_the_balancer_under_batch() {
    let backend = MiniBackend::start(false).await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let file = dir.path().join("skerry.yaml");
    std::fs::write(&file, batch_lb(port, &backend)).unwrap();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let run = SkerryProcess::start(&file, addr).await;
    let batch = batch_threads(&run.pid().to_string());
    assert!(batch.iter().any(|n| n == "skerry-lb-main"), "{batch:?}");
    assert!(batch.iter().any(|n| n == "skerry-lb"), "{batch:?}");
    relays(addr, "sched-2").await;
    assert_eq!(backend.ids(), ["sched-2"]);
    assert!(run.terminate().await.success());
}

/// A balancer with `scheduling: batch` on `port` in front of `backend`.
fn batch_lb(port: u16, backend: &MiniBackend) -> String {
    format!(
        "lb:\n  scheduling: batch\n  listeners:\n    - {{name: mqtt, bind: 127.0.0.1:{port}, pool: nodes}}\n  pools:\n    - name: nodes\n      members:\n{}",
        members(&[("node1", backend.addr)])
    )
}

/// Connects `id` through the balancer at `addr` and has 20 PUBLISHes
/// echoed back by the backend through the relay.
async fn relays(addr: SocketAddr, id: &str) {
    let (mut client, ack) = mqtt_connect(addr, V5, id).await;
    assert_eq!(ack.map(|a| a.reason), Some(ReasonCode::Success));
    for i in 0..20 {
        let payload = format!("m{i}");
        let publish = Publish::new("t/sched", payload.clone());
        client.send(&Packet::Publish(publish)).await.unwrap();
        assert_eq!(client.received().await, ("t/sched".to_owned(), payload.into()));
    }
}

#[test]
fn skerry_run_refuses_batch_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "broker:\n  store:\n    engine: memory\n  nodes:\n    - name: n1\n      data_dir: {}\n      listeners:\n        - name: tcp\n          bind: 127.0.0.1:0\nlb:\n  scheduling: batch\n  listeners:\n    - {{name: mqtt, bind: 127.0.0.1:0, pool: nodes}}\n  pools:\n    - name: nodes\n      members:\n        - {{name: n1, address: \"127.0.0.1:9\"}}\n",
        dir.path().join("n1").display()
    );
    let (line, stderr) = run_start_error(dir.path(), &yaml);
    assert!(
        line.contains(
            "lb.scheduling: batch needs the balancer's own threads (`skerry lb`, or `skerry run` without broker nodes)"
        ),
        "{stderr}"
    );
}
