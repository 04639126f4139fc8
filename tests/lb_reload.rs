//! Reloading a running balancer: a new CRL refuses a revoked certificate
//! from the next handshake on while its open session goes on; pool members
//! come and go without touching the others; rates and caps change; what
//! cannot change live is named.

use std::net::SocketAddr;
use std::path::Path;

use skerry_codec::{Connect, ReasonCode};
use skerry_config::Lb;
use skerry_lb::Refusal;
use skerry_tests::broker::TestBroker;
use skerry_tests::stream::StreamClient;
use skerry_tests::wait::eventually;

use crate::lb_util::{lb_addr, members, mqtt_connect, start_lb, tls_connect, MiniBackend, Pki, V5};

fn lb_config(yaml: &str, base: &Path) -> Lb {
    let yaml = yaml.replacen("lb:\n", "lb:\n  drain_window: 200ms\n", 1);
    skerry_config::parse(&yaml, base).expect("test config").lb.expect("lb")
}

#[tokio::test]
async fn a_reloaded_crl_refuses_the_revoked_certificate_and_keeps_its_open_session() {
    let mut pki = Pki::new();
    pki.write_crl();
    let node = TestBroker::start("").await;
    let yaml = format!(
        "lb:\n  listeners:\n    - name: mqtts\n      bind: 127.0.0.1:0\n      pool: nodes\n{}        crl: crl.pem\n  pools:\n    - name: nodes\n      members:\n{}",
        pki.tls_yaml(),
        members(&[("n1", node.tcp())])
    );
    let lb = start_lb(&yaml, pki.base());
    let dev = pki.client("dev-1");
    let connector = pki.connector(Some(&dev));
    let tls = tls_connect(&connector, lb_addr(&lb))
        .await
        .expect("handshake before revocation");
    let mut open = StreamClient::new(tls, V5);
    assert_eq!(
        open.connect(Connect::new(V5, "dev-1")).await.map(|a| a.reason),
        Some(ReasonCode::Success)
    );
    assert_eq!(open.subscribe("t/#").await, ReasonCode::GrantedQoS1);

    pki.revoke("dev-1");
    let done = lb.reload(&lb_config(&yaml, pki.base()));
    assert!(done.errors.is_empty(), "{:?}", done.errors);
    assert!(done.needs_restart.is_empty(), "{:?}", done.needs_restart);

    if let Some(tls) = tls_connect(&connector, lb_addr(&lb)).await {
        let mut c = StreamClient::new(tls, V5);
        assert!(
            c.connect(Connect::new(V5, "dev-1b")).await.is_none(),
            "revoked: refused after the reload"
        );
    }
    eventually("the refused handshake to be counted", || {
        lb.metrics().refused(Refusal::TlsHandshake) == 1
    })
    .await;
    assert_eq!(
        open.publish("t/1", "still here").await,
        ReasonCode::Success,
        "the open session goes on"
    );
    let (topic, payload) = open.received().await;
    assert_eq!((topic.as_str(), &payload[..]), ("t/1", &b"still here"[..]));

    // A CRL that no longer parses is reported and the running one stays.
    std::fs::write(pki.base().join("crl.pem"), "not a CRL").unwrap();
    let done = lb.reload(&lb_config(&yaml, pki.base()));
    assert_eq!(done.errors.len(), 1, "{:?}", done.errors);
    assert!(done.errors[0].to_string().contains("crl.pem"), "{}", done.errors[0]);
    let other = pki.client("dev-2");
    let tls = tls_connect(&pki.connector(Some(&other)), lb_addr(&lb))
        .await
        .expect("handshake");
    let mut c = StreamClient::new(tls, V5);
    assert_eq!(
        c.connect(Connect::new(V5, "dev-2")).await.map(|a| a.reason),
        Some(ReasonCode::Success)
    );
    lb.shutdown().await;
    node.stop().await;
}

fn pool_yaml(extra: &str, balance: &str, list: &[(&str, SocketAddr)]) -> String {
    format!(
        "lb:\n{extra}  listeners:\n    - {{name: mqtt, bind: 127.0.0.1:0, pool: nodes}}\n  pools:\n    - name: nodes\n      balance: {balance}\n      members:\n{}",
        members(list)
    )
}

/// Connects `ids` through the balancer, one after the other, and returns
/// the number each backend saw.
async fn spread(addr: SocketAddr, backends: &[&MiniBackend], ids: &[String]) -> Vec<usize> {
    for b in backends {
        b.clear();
    }
    for id in ids {
        let (_c, ack) = mqtt_connect(addr, V5, id).await;
        assert_eq!(ack.map(|a| a.reason), Some(ReasonCode::Success), "{id}");
    }
    backends.iter().map(|b| b.ids().len()).collect()
}

#[tokio::test]
async fn pool_members_are_added_and_removed_live() {
    let (a, b) = (MiniBackend::start(false).await, MiniBackend::start(false).await);
    let one = pool_yaml("", "client_id", &[("a", a.addr)]);
    let lb = start_lb(&one, Path::new("."));
    let addr = lb_addr(&lb);
    let ids: Vec<String> = (0..60).map(|i| format!("dev-{i}")).collect();
    assert_eq!(spread(addr, &[&a, &b], &ids).await, [60, 0]);
    let (_held, ack) = mqtt_connect(addr, V5, "held-on-a").await;
    assert!(ack.is_some());

    let two = pool_yaml("", "client_id", &[("a", a.addr), ("b", b.addr)]);
    let done = lb.reload(&lb_config(&two, Path::new(".")));
    assert!(done.needs_restart.is_empty() && done.errors.is_empty(), "{done:?}");
    let names: Vec<String> = lb.backends().into_iter().map(|s| s.member).collect();
    assert_eq!(names, ["a", "b"]);
    eventually("a to keep its one open session across the reload", || {
        lb.backends()[0].active_connections == 1
    })
    .await;
    let after = spread(addr, &[&a, &b], &ids).await;
    assert!(after[0] > 10 && after[1] > 10, "both members take clients: {after:?}");

    let only_b = pool_yaml("", "client_id", &[("b", b.addr)]);
    let done = lb.reload(&lb_config(&only_b, Path::new(".")));
    assert!(done.needs_restart.is_empty(), "{done:?}");
    assert_eq!(
        spread(addr, &[&a, &b], &ids).await,
        [0, 60],
        "a removed member takes no new client"
    );

    // What cannot change live is named, and the rest still applies.
    let changed = pool_yaml(
        "  grace_period: 1s\n  max_connections: 1\n",
        "round_robin",
        &[("b", b.addr)],
    );
    let done = lb.reload(&lb_config(&changed, Path::new(".")));
    assert_eq!(done.needs_restart, ["lb.grace_period", "lb.pools.nodes"]);
    let (_c, ack) = mqtt_connect(addr, V5, "over-the-cap").await;
    assert_eq!(
        ack.map(|a| a.reason),
        Some(ReasonCode::QuotaExceeded),
        "the new connection cap applies at once (one session is open)"
    );
    lb.shutdown().await;
}
