//! Clients nobody here wrote against a broker node: Debian's
//! `mosquitto_pub` / `mosquitto_sub` in MQTT 3.1, 3.1.1 and 5.0, and Python
//! paho-mqtt. Each test skips, saying so, only when its tool is missing.

use std::num::NonZeroU16;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use skerry_codec::{Packet, ProtocolVersion, QoS, Subscribe, SubscriptionOptions};
use skerry_tests::broker::TestBroker;
use skerry_tests::have;
use skerry_tests::raw::RawClient;
use skerry_tests::wait::eventually;
use tokio::process::{Child, Command};

const VERSIONS: [&str; 3] = ["mqttv31", "mqttv311", "mqttv5"];
/// Bound on any outside client's run.
const TOOL_WAIT: Duration = Duration::from_secs(30);

fn mosquitto_missing() -> bool {
    let missing = !have("mosquitto_pub") || !have("mosquitto_sub");
    if missing {
        eprintln!("SKIPPED: mosquitto_pub/mosquitto_sub not installed (apt-get install -y mosquitto-clients)");
    }
    missing
}

fn port(broker: &TestBroker) -> String {
    broker.tcp().port().to_string()
}

/// Starts `mosquitto_sub` printing each message as JSON, and returns once
/// the node has its SUBSCRIBE.
async fn mosquitto_sub(broker: &TestBroker, version: &str, filter: &str, count: usize, extra: &[&str]) -> Child {
    let before = broker.stat("mqtt_subscribe_received");
    let child = Command::new("mosquitto_sub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port(broker),
            "-V",
            version,
            "-t",
            filter,
            "-q",
            "2",
        ])
        .args(["-C", &count.to_string(), "-W", "20", "-F", "%j"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn mosquitto_sub");
    eventually("mosquitto_sub's SUBSCRIBE", || {
        broker.stat("mqtt_subscribe_received") > before
    })
    .await;
    child
}

/// Waits for `mosquitto_sub` to exit after its `-C` messages; one JSON value each.
async fn messages(sub: Child) -> Vec<Value> {
    let out = tokio::time::timeout(TOOL_WAIT, sub.wait_with_output())
        .await
        .expect("mosquitto_sub exits")
        .expect("mosquitto_sub output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "mosquitto_sub: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Runs `mosquitto_pub` to completion; it must succeed.
async fn mosquitto_pub(broker: &TestBroker, version: &str, args: &[&str]) {
    let out = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port(broker), "-V", version])
        .args(args)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(TOOL_WAIT, out)
        .await
        .expect("mosquitto_pub exits")
        .expect("spawn mosquitto_pub");
    assert!(
        out.status.success(),
        "mosquitto_pub {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Topic, payload and QoS of a `%j` message.
fn summary(m: &Value) -> (String, String, u64) {
    let topic = m["topic"].as_str().expect("topic").to_owned();
    let payload = m["payload"].as_str().expect("payload").to_owned();
    (topic, payload, m["qos"].as_u64().expect("qos"))
}

/// A subscriber of `sub_version` gets every QoS from publishers of every version.
async fn round_trip(sub_version: &str) {
    if mosquitto_missing() {
        return;
    }
    let broker = TestBroker::start("").await;
    let filter = format!("interop/{sub_version}/#");
    let sub = mosquitto_sub(&broker, sub_version, &filter, 9, &[]).await;
    let mut expected = Vec::new();
    for pub_version in VERSIONS {
        for qos in 0..3u64 {
            let topic = format!("interop/{sub_version}/{pub_version}/q{qos}");
            let payload = format!("{pub_version} says {qos}");
            mosquitto_pub(
                &broker,
                pub_version,
                &["-t", &topic, "-m", &payload, "-q", &qos.to_string()],
            )
            .await;
            expected.push((topic, payload, qos));
        }
    }
    // Each publisher is its own client: MQTT orders messages per
    // publisher, not across them (a QoS 2 message reaches the subscriber's
    // application at PUBREL, and the next publisher may be quicker).
    let mut got: Vec<_> = messages(sub).await.iter().map(summary).collect();
    got.sort();
    expected.sort();
    assert_eq!(got, expected);
    broker.stop().await;
}

#[tokio::test]
async fn mosquitto_v31_subscriber_gets_every_qos_from_every_version() {
    round_trip("mqttv31").await;
}

#[tokio::test]
async fn mosquitto_v311_subscriber_gets_every_qos_from_every_version() {
    round_trip("mqttv311").await;
}

#[tokio::test]
async fn mosquitto_v5_subscriber_gets_every_qos_from_every_version() {
    round_trip("mqttv5").await;
}

#[tokio::test]
async fn mosquitto_large_payload_and_unicode_topic_round_trip() {
    if mosquitto_missing() {
        return;
    }
    let broker = TestBroker::start("").await;
    // 200 KiB: many TCP segments, under the default 256 KiB limits.
    let payload: String = (0..200 * 1024).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), &payload).expect("write payload");
    let topic = "sensör/温度/große";
    for version in VERSIONS {
        let sub = mosquitto_sub(&broker, version, "sensör/#", 1, &[]).await;
        let path = file.path().to_str().expect("utf-8 path");
        mosquitto_pub(&broker, version, &["-t", topic, "-f", path, "-q", "1"]).await;
        let got = messages(sub).await;
        assert_eq!(got[0]["topic"], topic, "{version}");
        assert_eq!(got[0]["payloadlen"], 200 * 1024, "{version}");
        assert!(
            got[0]["payload"] == payload.as_str(),
            "{version}: payload changed on the way"
        );
    }
    broker.stop().await;
}

#[tokio::test]
async fn mosquitto_retained_messages_reach_later_subscribers() {
    if mosquitto_missing() {
        return;
    }
    let broker = TestBroker::start("").await;
    for (qos, version) in VERSIONS.iter().enumerate() {
        let topic = format!("retained/{version}");
        mosquitto_pub(
            &broker,
            version,
            &["-t", &topic, "-m", version, "-q", &qos.to_string(), "-r"],
        )
        .await;
    }
    for version in VERSIONS {
        let sub = mosquitto_sub(&broker, version, "retained/#", 3, &[]).await;
        let mut got: Vec<_> = messages(sub).await;
        got.sort_by_key(|m| m["topic"].as_str().map(str::to_owned));
        for (m, (qos, from)) in got.iter().zip(VERSIONS.iter().enumerate()) {
            assert_eq!(
                summary(m),
                (format!("retained/{from}"), (*from).to_owned(), qos as u64),
                "{version}"
            );
            assert_eq!(m["retain"], 1, "{version}: {m}");
        }
        assert_eq!(got.len(), 3, "{version}");
    }
    broker.stop().await;
}

#[tokio::test]
async fn mosquitto_v5_properties_pass_through() {
    if mosquitto_missing() {
        return;
    }
    let broker = TestBroker::start("").await;
    // A raw subscriber sees the exact list: order and repeated keys kept.
    let mut raw = RawClient::connected(broker.tcp(), ProtocolVersion::V5, "raw-props").await;
    let filters = vec![("props/#".to_owned(), SubscriptionOptions::new(QoS::AtLeastOnce))];
    let packet_id = NonZeroU16::MIN;
    raw.send(&Packet::Subscribe(Subscribe {
        packet_id,
        filters,
        properties: Default::default(),
    }))
    .await;
    assert!(matches!(raw.recv().await, Some(Packet::SubAck(_))));
    let v5 = mosquitto_sub(&broker, "mqttv5", "props/#", 1, &[]).await;
    let v3 = mosquitto_sub(&broker, "mqttv311", "props/#", 1, &[]).await;
    let props = [
        ["-D", "publish", "user-property", "k", "v1"],
        ["-D", "publish", "user-property", "k", "v2"],
        ["-D", "publish", "user-property", "origin", "mosquitto"],
    ];
    let mut args = vec!["-t", "props/a", "-m", "body", "-q", "1"];
    args.extend(props.iter().flatten());
    args.extend([
        "-D",
        "publish",
        "content-type",
        "text/plain",
        "-D",
        "publish",
        "response-topic",
        "props/reply",
    ]);
    mosquitto_pub(&broker, "mqttv5", &args).await;

    let Some(Packet::Publish(p)) = raw.recv().await else {
        panic!("raw subscriber got no PUBLISH")
    };
    let pairs = |l: &[(&str, &str)]| {
        l.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        p.properties.user_properties,
        pairs(&[("k", "v1"), ("k", "v2"), ("origin", "mosquitto")])
    );
    assert_eq!(p.properties.content_type.as_deref(), Some("text/plain"));
    assert_eq!(p.properties.response_topic.as_deref(), Some("props/reply"));

    let got = messages(v5).await;
    let props = &got[0]["properties"];
    assert_eq!(props["user-properties"]["origin"], "mosquitto", "{props}");
    assert_eq!(props["content-type"], "text/plain", "{props}");
    // A 3.1.1 subscriber gets the message, without properties.
    let got = messages(v3).await;
    assert_eq!(summary(&got[0]), ("props/a".to_owned(), "body".to_owned(), 1));
    broker.stop().await;
}

#[tokio::test]
async fn mosquitto_message_expiry_counts_down_and_expires() {
    if mosquitto_missing() {
        return;
    }
    let broker = TestBroker::start("").await;
    let expiry = |secs: &'static str| ["-D", "publish", "message-expiry-interval", secs];
    let mut args = vec!["-t", "expiry/long", "-m", "long", "-q", "1", "-r"];
    args.extend(expiry("600"));
    mosquitto_pub(&broker, "mqttv5", &args).await;
    let mut args = vec!["-t", "expiry/short", "-m", "short", "-q", "1", "-r"];
    args.extend(expiry("1"));
    mosquitto_pub(&broker, "mqttv5", &args).await;
    mosquitto_pub(&broker, "mqttv5", &["-t", "expiry/none", "-m", "none", "-q", "1", "-r"]).await;
    // Past the short message's lifetime (whole seconds, so more than 2 s).
    tokio::time::sleep(Duration::from_millis(2500)).await;

    let mut raw = RawClient::connected(broker.tcp(), ProtocolVersion::V5, "raw-expiry").await;
    let filters = vec![("expiry/#".to_owned(), SubscriptionOptions::new(QoS::AtLeastOnce))];
    let packet_id = NonZeroU16::MIN;
    raw.send(&Packet::Subscribe(Subscribe {
        packet_id,
        filters,
        properties: Default::default(),
    }))
    .await;
    assert!(matches!(raw.recv().await, Some(Packet::SubAck(_))));
    let mut got = Vec::new();
    for _ in 0..2 {
        match raw.recv().await {
            Some(Packet::Publish(p)) => got.push((p.topic.to_string(), p.properties.message_expiry_interval)),
            other => panic!("expected a retained message, got {other:?}"),
        }
    }
    got.sort();
    assert_eq!(got[1], ("expiry/none".to_owned(), None));
    assert_eq!(got[0].0, "expiry/long");
    let left = got[0].1.expect("expiry is forwarded");
    assert!((1..600).contains(&left), "remaining lifetime, not the original: {left}");
    raw.expect_silence(Duration::from_secs(1)).await;

    let sub = mosquitto_sub(&broker, "mqttv5", "expiry/long", 1, &[]).await;
    let got = messages(sub).await;
    let left = got[0]["properties"]["message-expiry-interval"]
        .as_u64()
        .expect("expiry in %j");
    assert!(
        (1..600).contains(&left),
        "mosquitto_sub sees the remaining lifetime: {left}"
    );
    broker.stop().await;
}

/// Runs the paho script for `version` ("5" or "311") and checks what its
/// subscriber received: the QoS 2 message, then the will.
async fn paho_round_trip(version: &str) {
    let has_paho = have("python3")
        && std::process::Command::new("python3")
            .args(["-c", "import paho.mqtt.client"])
            .output()
            .is_ok_and(|o| o.status.success());
    if !has_paho {
        eprintln!("SKIPPED: python3 with paho-mqtt not installed (python3 -m pip install paho-mqtt)");
        return;
    }
    let broker = TestBroker::start("").await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/support/paho_round_trip.py");
    let run = Command::new("python3")
        .args([script, "127.0.0.1", &port(&broker), version])
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(TOOL_WAIT, run)
        .await
        .expect("paho script exits")
        .expect("spawn python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "paho script: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(result["granted"], serde_json::json!([2]), "{result}");
    assert_eq!(result["published"], true, "{result}");
    let got = result["received"].as_array().expect("received");
    let user = |pairs: &[[&str; 2]]| {
        if version == "5" {
            serde_json::json!(pairs)
        } else {
            serde_json::json!([])
        }
    };
    let expected = serde_json::json!([
        {"topic": format!("paho/{version}/data"), "payload": "hello", "qos": 2, "user": user(&[["origin", "paho"]])},
        {"topic": format!("paho/{version}/will"), "payload": "gone", "qos": 2, "user": user(&[["why", "dropped"]])},
    ]);
    assert_eq!(&Value::Array(got.clone()), &expected, "{result}");
    assert_eq!(broker.stat("will_published"), 1);
    broker.stop().await;
}

#[tokio::test]
async fn paho_v5_qos2_round_trip_with_will() {
    paho_round_trip("5").await;
}

#[tokio::test]
async fn paho_v311_qos2_round_trip_with_will() {
    paho_round_trip("311").await;
}
