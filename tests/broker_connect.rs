//! What a broker node says at CONNECT and what it lets a client do:
//! CONNACK properties, password logins, ACLs, and `$SYS` statistics.

use std::path::Path;

use bytes::Bytes;
use skerry_broker::auth::{hash_password, set_user};
use skerry_codec::{Connect, ProtocolVersion, QoS, ReasonCode, RetainHandling, SubscriptionOptions};
use skerry_tests::broker::TestBroker;
use skerry_tests::raw::RawClient;

use crate::broker_protocol::{
    client, connect, message, next_publish, ping_barrier, publish, subscribe, subscribe_with, v5,
};

#[tokio::test]
async fn v5_connack_announces_the_servers_limits() {
    let broker =
        TestBroker::start("  max_keep_alive: 60s\n  topic_alias_maximum: 7\n  sessions:\n    max_session_expiry: 1h")
            .await;
    let mut c = v5("");
    c.keep_alive = 0;
    let (_c, ack) = connect(broker.tcp(), c).await;
    let p = &ack.properties;
    let assigned = p
        .assigned_client_identifier
        .as_deref()
        .expect("assigned client identifier");
    assert!(!assigned.is_empty());
    assert_eq!(p.server_keep_alive, Some(60), "keep alive 0 is replaced by the maximum");
    assert!(p.receive_maximum.is_some(), "receive maximum");
    assert_eq!(p.topic_alias_maximum, Some(7));
    assert!(p.maximum_packet_size.is_some(), "maximum packet size");

    let mut c = v5("named");
    c.keep_alive = 120;
    let (_named, ack) = connect(broker.tcp(), c).await;
    assert_eq!(ack.properties.assigned_client_identifier, None);
    assert_eq!(
        ack.properties.server_keep_alive,
        Some(60),
        "keep alive above the maximum is lowered"
    );

    let mut c = v5("modest");
    c.keep_alive = 30;
    c.properties.session_expiry_interval = Some(7200);
    let (_modest, ack) = connect(broker.tcp(), c).await;
    assert_eq!(
        ack.properties.server_keep_alive, None,
        "an acceptable keep alive is kept"
    );
    assert_eq!(
        ack.properties.session_expiry_interval,
        Some(3600),
        "session expiry capped and said so"
    );
    broker.stop().await;
}

#[tokio::test]
async fn v311_empty_client_id_needs_a_clean_session() {
    let broker = TestBroker::start("").await;
    let mut c = Connect::new(ProtocolVersion::V311, "");
    c.clean_start = false;
    let (_c, ack) = RawClient::connect(broker.tcp(), c).await;
    assert_eq!(ack.reason.v3_connack_code(), 0x02, "identifier rejected");

    let (_c, ack) = RawClient::connect(broker.tcp(), Connect::new(ProtocolVersion::V311, "")).await;
    assert_eq!(ack.reason, ReasonCode::Success);
    broker.stop().await;
}

/// A node with users alice/secret and bob/hunter2, no anonymous clients,
/// and one ACL rule: everyone gets `devices/<own name>/#`.
async fn secured(dir: &Path) -> TestBroker {
    let users = dir.join("users");
    for (name, password) in [("alice", "secret"), ("bob", "hunter2")] {
        let hash = hash_password(password.as_bytes()).expect("hash");
        set_user(&users, name, &hash).expect("write users file");
    }
    let yaml = format!(
        "broker:\n  allow_anonymous: false\n  users_file: {}\n  acl:\n    - access: all\n      topic: devices/%u/#\n  nodes:\n    - name: n1\n      listeners:\n        - name: tcp\n          bind: 127.0.0.1:0\n",
        users.display()
    );
    TestBroker::start_in(&yaml, dir).await
}

fn login(version: ProtocolVersion, id: &str, user: Option<&str>, password: &str) -> Connect {
    let mut c = Connect::new(version, id);
    c.username = user.map(str::to_owned);
    c.password = user.map(|_| Bytes::from(password.to_owned()));
    c
}

#[tokio::test]
async fn password_logins_are_checked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = secured(dir.path()).await;
    let cases = [
        (Some("alice"), "secret", ReasonCode::Success, 0x00),
        (Some("alice"), "wrong", ReasonCode::BadUserNameOrPassword, 0x04),
        (Some("mallory"), "secret", ReasonCode::BadUserNameOrPassword, 0x04),
        (None, "", ReasonCode::NotAuthorized, 0x05),
    ];
    for (user, password, v5_reason, v3_code) in cases {
        let (_c, ack) = RawClient::connect(broker.tcp(), login(ProtocolVersion::V5, "c5", user, password)).await;
        assert_eq!(ack.reason, v5_reason, "v5 {user:?}/{password}");
        let (_c, ack) = RawClient::connect(broker.tcp(), login(ProtocolVersion::V311, "c3", user, password)).await;
        assert_eq!(ack.reason.v3_connack_code(), v3_code, "v3.1.1 {user:?}/{password}");
    }
    broker.stop().await;
}

#[tokio::test]
async fn acl_limits_publish_and_subscribe() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = secured(dir.path()).await;
    let (mut bob, _) = connect(broker.tcp(), login(ProtocolVersion::V5, "bob", Some("bob"), "hunter2")).await;
    subscribe(&mut bob, "devices/bob/#", QoS::AtLeastOnce).await;

    let (mut alice, _) = connect(
        broker.tcp(),
        login(ProtocolVersion::V5, "alice", Some("alice"), "secret"),
    )
    .await;
    let denied = publish(&mut alice, message("devices/bob/x", "v5", QoS::AtLeastOnce)).await;
    assert_eq!(denied, ReasonCode::NotAuthorized, "v5 PUBACK refuses");
    let denied = publish(&mut alice, message("devices/bob/x", "v5q2", QoS::ExactlyOnce)).await;
    assert_eq!(denied, ReasonCode::NotAuthorized, "v5 PUBREC refuses");
    assert_eq!(
        publish(&mut alice, message("devices/alice/x", "", QoS::AtLeastOnce)).await,
        ReasonCode::Success
    );
    let code = subscribe_with(
        &mut alice,
        "devices/bob/#",
        SubscriptionOptions::new(QoS::AtLeastOnce),
        None,
    )
    .await;
    assert_eq!(code, ReasonCode::NotAuthorized);

    let (mut alice3, _) = connect(
        broker.tcp(),
        login(ProtocolVersion::V311, "alice3", Some("alice"), "secret"),
    )
    .await;
    let acked = publish(&mut alice3, message("devices/bob/x", "v3", QoS::AtLeastOnce)).await;
    assert_eq!(acked, ReasonCode::Success, "3.1.1 has no negative PUBACK");
    let code = subscribe_with(
        &mut alice3,
        "devices/bob/#",
        SubscriptionOptions::new(QoS::AtLeastOnce),
        None,
    )
    .await;
    assert_eq!(code.v3_suback_code(), 0x80);

    publish(&mut bob, message("devices/bob/end", "", QoS::AtLeastOnce)).await;
    let got = next_publish(&mut bob).await;
    assert_eq!(
        got.topic.as_str(),
        "devices/bob/end",
        "denied messages were not delivered: {got:?}"
    );
    broker.stop().await;
}

#[tokio::test]
async fn sys_topics_reach_only_sys_subscribers() {
    let broker = TestBroker::start("  sys_interval: 1s").await;
    let mut sys = client(broker.tcp(), "sys").await;
    subscribe(&mut sys, "$SYS/#", QoS::AtMostOnce).await;
    let connected = loop {
        let p = next_publish(&mut sys).await;
        if p.topic.as_str() == "$SYS/broker/clients/connected" {
            let n: u64 = std::str::from_utf8(&p.payload)
                .expect("utf-8")
                .parse()
                .expect("a count");
            if n >= 1 {
                break n;
            }
        }
    };
    assert!(connected >= 1);

    let mut all = client(broker.tcp(), "all").await;
    subscribe(&mut all, "#", QoS::AtMostOnce).await;
    ping_barrier(&mut all).await;
    // A live $SYS publish made after `all` subscribed.
    let mut later = client(broker.tcp(), "later").await;
    let no_retained = SubscriptionOptions {
        retain_handling: RetainHandling::DoNotSend,
        ..Default::default()
    };
    subscribe_with(&mut later, "$SYS/broker/uptime", no_retained, None).await;
    assert_eq!(next_publish(&mut later).await.topic.as_str(), "$SYS/broker/uptime");
    let mut marker = client(broker.tcp(), "marker").await;
    publish(&mut marker, message("marker", "", QoS::AtLeastOnce)).await;
    assert_eq!(
        next_publish(&mut all).await.topic.as_str(),
        "marker",
        "`#` must not match $SYS topics"
    );
    broker.stop().await;
}
