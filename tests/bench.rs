//! `skerry bench`, the real binary, against a broker node started
//! in-process: every scenario's JSON report must add up (what was sent
//! arrived, once, where the scenario says it should) and bad arguments
//! must fail with a message that says what is wrong. Rates are kept low so
//! that a debug-build broker keeps up; nothing here asserts on timing.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use skerry_certs::{Ca, CaOptions, San};
use skerry_tests::broker::TestBroker;
use skerry_tests::{skerry, skerry_bin};

/// Broker settings for benches: queues deep enough that nothing is
/// dropped for being slow.
const DEEP_QUEUES: &str = "  sessions:\n    max_online_messages: 1000000";

/// Runs `skerry bench ARGS --json` against `addr`; it must succeed and
/// print one JSON object.
async fn bench(addr: SocketAddr, args: &[&str]) -> Value {
    let (host, port) = (addr.ip().to_string(), addr.port().to_string());
    let out = tokio::process::Command::new(skerry_bin())
        .arg("bench")
        .args(args)
        .args(["--host", &host, "--port", &port, "--json", "--quiet"])
        .output()
        .await
        .expect("spawn skerry bench");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "skerry bench {args:?} failed:\n{stdout}{stderr}");
    assert_eq!(stdout.lines().count(), 1, "one line of JSON expected:\n{stdout}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{stdout}"))
}

fn int(report: &Value, key: &str) -> u64 {
    report[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} missing in {report}"))
}

fn latency(report: &Value, key: &str) -> f64 {
    report["latency_ms"][key]
        .as_f64()
        .unwrap_or_else(|| panic!("latency_ms.{key} missing in {report}"))
}

/// Everything sent arrived exactly `copies` times, and the latency
/// percentiles are in order.
fn assert_all_delivered(report: &Value, copies: u64) {
    let sent = int(report, "sent");
    assert!(sent > 0, "nothing sent: {report}");
    assert_eq!(int(report, "received"), sent * copies, "{report}");
    assert_eq!(int(report, "lost"), 0, "{report}");
    assert_eq!(int(report, "duplicates"), 0, "{report}");
    assert_eq!(int(report, "connect_errors"), 0, "{report}");
    let (p50, p90, p99, p999) = (
        latency(report, "p50"),
        latency(report, "p90"),
        latency(report, "p99"),
        latency(report, "p999"),
    );
    assert!(
        p50 <= p90 && p90 <= p99 && p99 <= p999,
        "percentiles out of order: {report}"
    );
    assert!(report["sent_per_sec"].as_f64().is_some_and(|r| r > 0.0), "{report}");
}

#[tokio::test(flavor = "multi_thread")]
async fn fanin_qos1_delivers_every_message_once() {
    let broker = TestBroker::start(DEEP_QUEUES).await;
    let args = "fanin --publishers 3 --qos 1 --rate 1500 --duration 2s --warmup 500ms";
    let report = bench(broker.tcp(), &args.split_whitespace().collect::<Vec<_>>()).await;
    assert_eq!(report["scenario"], "fanin");
    assert_eq!((int(&report, "qos"), int(&report, "payload_size")), (1, 64));
    assert_eq!(
        int(&report, "connections"),
        4,
        "3 publishers and 1 subscriber: {report}"
    );
    assert_eq!(report["acked"], report["sent"], "{report}");
    assert_all_delivered(&report, 1);
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn fanout_qos0_reaches_every_subscriber() {
    let broker = TestBroker::start(DEEP_QUEUES).await;
    let args = "fanout --subscribers 3 --rate 1000 --duration 2s --warmup 500ms --payload-size 128";
    let report = bench(broker.tcp(), &args.split_whitespace().collect::<Vec<_>>()).await;
    assert_eq!(int(&report, "expected"), 3 * int(&report, "sent"), "{report}");
    assert_all_delivered(&report, 3);
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn shared_qos1_delivers_each_message_once_across_the_group() {
    let broker = TestBroker::start(DEEP_QUEUES).await;
    let args = "shared --publishers 2 --subscribers 3 --group g1 --qos 1 --rate 1500 --duration 2s --warmup 500ms";
    let report = bench(broker.tcp(), &args.split_whitespace().collect::<Vec<_>>()).await;
    assert_eq!(int(&report, "subscribers"), 3, "{report}");
    assert_all_delivered(&report, 1);
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pub_qos2_counts_completed_flows() {
    let broker = TestBroker::start("").await;
    let args = "pub --publishers 2 --qos 2 --rate 1000 --duration 1s --warmup 0s --mqtt-version 5";
    let report = bench(broker.tcp(), &args.split_whitespace().collect::<Vec<_>>()).await;
    assert_eq!(
        (report["mqtt_version"].as_str(), report["latency"].as_str()),
        (Some("5"), Some("ack"))
    );
    assert!(int(&report, "sent") > 0, "{report}");
    assert_eq!(report["acked"], report["sent"], "every QoS 2 flow completes: {report}");
    assert_eq!(int(&report, "lost"), 0, "{report}");
    assert!(latency(&report, "p50") <= latency(&report, "p999"), "{report}");
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sub_measures_traffic_from_another_process() {
    let broker = TestBroker::start(DEEP_QUEUES).await;
    let addr = broker.tcp();
    let sub_args = [
        "sub",
        "--subscribers",
        "2",
        "--filter",
        "ext/#",
        "--qos",
        "1",
        "--duration",
        "6s",
        "--warmup",
        "0s",
    ];
    let sub = tokio::spawn(async move { bench(addr, &sub_args).await });
    tokio::time::timeout(Duration::from_secs(10), async {
        while broker.stat("mqtt_subscribe_received") < 2 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the subscribers subscribe");
    let pub_args = "pub --topic-prefix ext --publishers 2 --qos 1 --rate 500 --duration 1s --warmup 0s";
    let published = bench(addr, &pub_args.split_whitespace().collect::<Vec<_>>()).await;
    let received = sub.await.expect("sub task");
    assert_eq!(received["scenario"], "sub");
    assert!(received["latency"].is_null(), "no latency across processes: {received}");
    assert_eq!(
        int(&received, "received"),
        2 * int(&published, "sent"),
        "{received}\n{published}"
    );
    assert_eq!(
        (int(&received, "lost"), int(&received, "duplicates")),
        (0, 0),
        "{received}"
    );
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn conn_opens_and_holds_every_client() {
    let broker = TestBroker::start("").await;
    let report = bench(broker.tcp(), &["conn", "--clients", "50", "--duration", "1s"]).await;
    assert_eq!(report["scenario"], "conn");
    assert_eq!(
        (int(&report, "connections"), int(&report, "connect_errors")),
        (50, 0),
        "{report}"
    );
    assert_eq!(int(&report, "disconnects"), 0, "{report}");
    assert!(latency(&report, "p50") <= latency(&report, "p99"), "{report}");
    assert!(report["connect_per_sec"].as_f64().is_some_and(|r| r > 0.0), "{report}");
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_with_a_client_certificate_qos2_v5() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = dir.path();
    let mut ca = Ca::create_in(&base.join("ca"), &CaOptions::new("Bench Test CA")).expect("CA");
    let sans = [San::Ip([127, 0, 0, 1].into()), San::Dns("localhost".into())];
    ca.issue_server("localhost", &sans, &base.join("server"))
        .expect("server certificate");
    ca.issue_client("bench-device", &base.join("device"))
        .expect("client certificate");
    let yaml = format!(
        "broker:\n  allow_anonymous: false\n{DEEP_QUEUES}\n  nodes:\n    - name: n1\n      listeners:\n        - name: tls\n          bind: 127.0.0.1:0\n          transport: tls\n          tls:\n            cert: server.crt\n            key: server.key\n            client_ca: ca/ca.crt\n            require_certificate: true\n            use_identity_as_username: true\n"
    );
    let broker = TestBroker::start_in(&yaml, base).await;
    let path = |p: &str| base.join(p).to_str().expect("UTF-8 path").to_owned();
    let (cafile, cert, key) = (path("ca/ca.crt"), path("device.crt"), path("device.key"));
    let args = [
        "fanin",
        "--publishers",
        "2",
        "--qos",
        "2",
        "--mqtt-version",
        "5",
        "--rate",
        "500",
        "--duration",
        "1s",
        "--warmup",
        "200ms",
        "--cafile",
        &cafile,
        "--cert",
        &cert,
        "--key",
        &key,
    ];
    let report = bench(broker.addr("tls"), &args).await;
    assert_all_delivered(&report, 1);
    broker.stop().await;
}

#[test]
fn bad_arguments_fail_with_a_clear_message() {
    let cases: [(&[&str], &str); 5] = [
        (&["bench", "fanin", "--payload-size", "4"], "at least 16"),
        (&["bench", "flood"], "unrecognized subcommand 'flood'"),
        (&["bench", "pub", "--qos", "3"], "use 0, 1 or 2"),
        (&["bench", "fanin", "--duration", "8"], "a duration like"),
        (&["bench", "pub", "--mqtt-version", "3.1"], "use 3.1.1 or 5"),
    ];
    for (args, message) in cases {
        let out = skerry(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: expected {message:?} in:\n{stderr}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn an_unreachable_broker_is_an_error_not_a_report() {
    // Port 1 on localhost: nothing listens there.
    let out = skerry(&["bench", "pub", "--port", "1", "--duration", "1s", "--json", "-q"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no publisher could connect"), "{stderr}");
    assert!(out.stdout.is_empty());
}
