//! TLS clients with CA-issued certificates through the balancer: to a
//! Skerry node that takes the certificate CN from the PROXY v2 SSL TLV as
//! the username, to a real Mosquitto with the balancer alone in front, and
//! to a backend that checks every byte of the PROXY header.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use ppp::v2::{self, Addresses, TypeLengthValues};
use skerry_codec::{Connect, ReasonCode};
use skerry_lb::Refusal;
use skerry_tests::broker::TestBroker;
use skerry_tests::have;
use skerry_tests::stream::StreamClient;
use skerry_tests::wait::eventually;
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use crate::lb_util::{cert_der, lb_addr, members, start_lb, tls_connect, MiniBackend, Pki, V311, V5};

/// A balancer with one TLS listener (client certificates required) over
/// one pool of `member`, speaking `proxy` to it.
fn tls_lb_yaml(pki: &Pki, proxy: &str, extra_pool: &str, member: SocketAddr) -> String {
    format!(
        "lb:\n  listeners:\n    - name: mqtts\n      bind: 127.0.0.1:0\n      pool: nodes\n{}  pools:\n    - name: nodes\n      proxy_protocol: {proxy}\n{extra_pool}      health_check: {{kind: mqtt, interval: 200ms, timeout: 500ms}}\n      members:\n{}",
        pki.tls_yaml(),
        members(&[("node1", member)])
    )
}

#[tokio::test]
async fn tls_client_reaches_a_skerry_node_as_its_certificate_cn() {
    let mut pki = Pki::new();
    let node_yaml = "broker:\n  allow_anonymous: false\n  acl:\n    - access: all\n      topic: devices/%u/#\n  nodes:\n    - name: n1\n      listeners:\n        - name: tcp\n          bind: 127.0.0.1:0\n          proxy_protocol:\n            trusted: [127.0.0.1/32]\n            use_cn_as_username: true\n";
    let node = TestBroker::start_in(node_yaml, Path::new(".")).await;
    let lb = start_lb(&tls_lb_yaml(&pki, "v2_ssl_cn", "", node.tcp()), pki.base());
    let dev = pki.client("dev-7");
    let connector = pki.connector(Some(&dev));

    let tls = tls_connect(&connector, lb_addr(&lb))
        .await
        .expect("handshake with a CA-issued cert");
    let mut c = StreamClient::new(tls, V5);
    let ack = c.connect(Connect::new(V5, "dev-7-client")).await.expect("CONNACK");
    assert_eq!(
        ack.reason,
        ReasonCode::Success,
        "admitted without a password: the CN came through"
    );
    assert_eq!(
        c.subscribe("devices/dev-7/#").await,
        ReasonCode::GrantedQoS1,
        "%u is the CN"
    );
    assert!(
        c.subscribe("devices/dev-8/#").await.is_error(),
        "another device's topics stay closed"
    );
    assert_eq!(c.publish("devices/dev-7/temp", "21.5").await, ReasonCode::Success);
    let (topic, payload) = c.received().await;
    assert_eq!((topic.as_str(), &payload[..]), ("devices/dev-7/temp", &b"21.5"[..]));

    // No certificate: the handshake fails and nothing reaches the node.
    let anonymous = pki.connector(None);
    if let Some(tls) = tls_connect(&anonymous, lb_addr(&lb)).await {
        let mut c = StreamClient::new(tls, V5);
        assert!(
            c.connect(Connect::new(V5, "anon")).await.is_none(),
            "refused without a certificate"
        );
    }
    eventually("the failed handshake to be counted", || {
        lb.metrics().refused(Refusal::TlsHandshake) == 1
    })
    .await;
    lb.shutdown().await;
    node.stop().await;
}

#[tokio::test]
async fn a_revoked_certificate_is_refused_at_the_balancer() {
    let mut pki = Pki::new();
    let backend = MiniBackend::start(false).await;
    let (good, bad) = (pki.client("dev-good"), pki.client("dev-bad"));
    pki.revoke("dev-bad");
    let tls = format!("{}        crl: crl.pem\n", pki.tls_yaml());
    let yaml = tls_lb_yaml(&pki, "none", "", backend.addr).replace(&pki.tls_yaml(), &tls);
    let lb = start_lb(&yaml, pki.base());
    for (cert, admitted) in [(&good, true), (&bad, false)] {
        let reached = match tls_connect(&pki.connector(Some(cert)), lb_addr(&lb)).await {
            None => false,
            Some(tls) => StreamClient::new(tls, V5)
                .connect(Connect::new(V5, "crl"))
                .await
                .is_some(),
        };
        assert_eq!(reached, admitted, "{}", cert.entry.cn);
    }
    assert_eq!(backend.ids(), ["crl"], "only the valid certificate reached the backend");
    lb.shutdown().await;
}

#[tokio::test]
async fn optional_client_certificates_admit_clients_without_one() {
    let pki = Pki::new();
    let backend = MiniBackend::start(true).await;
    let optional = pki.tls_yaml().replace("        require_certificate: true\n", "");
    let yaml = tls_lb_yaml(&pki, "v2_ssl_cn", "", backend.addr).replace(&pki.tls_yaml(), &optional);
    let lb = start_lb(&yaml, pki.base());
    let tls = tls_connect(&pki.connector(None), lb_addr(&lb))
        .await
        .expect("handshake without a certificate");
    let ack = StreamClient::new(tls, V5).connect(Connect::new(V5, "no-cert")).await;
    assert_eq!(ack.map(|a| a.reason), Some(ReasonCode::Success));
    let header = backend.seen().pop().expect("seen").proxy.expect("header");
    let parsed = v2::Header::try_from(&header[..]).expect("parse");
    let ssl = parsed
        .tlvs()
        .map(|t| t.expect("TLV"))
        .find(|t| t.kind == 0x20)
        .expect("SSL TLV");
    assert_eq!(ssl.value[0], 0x01, "TLS, no certificate");
    let subs: Vec<u8> = TypeLengthValues::from(&ssl.value[5..])
        .map(|t| t.expect("sub").kind)
        .collect();
    assert_eq!(subs, [0x21, 0x23], "version and cipher, no CN");
    lb.shutdown().await;
}

/// A free port on 127.0.0.1 (for a program that wants a number).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// Runs Debian's mosquitto on a free port and waits until it listens.
async fn start_mosquitto(dir: &Path) -> (Child, SocketAddr) {
    for _ in 0..5 {
        let port = free_port();
        let conf = dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"),
        )
        .expect("conf");
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn mosquitto");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        for _ in 0..100 {
            if TcpStream::connect(addr).await.is_ok() {
                return (child, addr);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    panic!("mosquitto did not start");
}

#[tokio::test]
async fn tls_client_reaches_mosquitto_with_the_balancer_alone_in_front() {
    if !have("mosquitto") {
        eprintln!("SKIPPED: mosquitto not installed (apt-get install -y mosquitto)");
        return;
    }
    let mut pki = Pki::new();
    let (_mosquitto, addr) = start_mosquitto(pki.base()).await;
    let lb = start_lb(&tls_lb_yaml(&pki, "none", "", addr), pki.base());
    let dev = pki.client("dev-1");
    let connector = pki.connector(Some(&dev));
    for version in [V311, V5] {
        let mut clients = Vec::new();
        for id in ["lb-sub", "lb-pub"] {
            let tls = tls_connect(&connector, lb_addr(&lb)).await.expect("handshake");
            let mut c = StreamClient::new(tls, version);
            let ack = c.connect(Connect::new(version, id)).await.expect("mosquitto's CONNACK");
            assert_eq!(ack.reason, ReasonCode::Success);
            clients.push(c);
        }
        let (mut sub, mut publisher) = (clients.remove(0), clients.remove(0));
        assert_eq!(sub.subscribe("lb/interop").await, ReasonCode::GrantedQoS1);
        assert_eq!(
            publisher.publish("lb/interop", "via skerry lb").await,
            ReasonCode::Success
        );
        let (topic, payload) = sub.received().await;
        assert_eq!((topic.as_str(), &payload[..]), ("lb/interop", &b"via skerry lb"[..]));
    }
    let mosquitto = &lb.backends()[0];
    assert!(mosquitto.healthy, "the MQTT health check passes against mosquitto");
    lb.shutdown().await;
}

/// The SSL TLV value the balancer must send for `cn` and `der`.
fn expected_ssl_tlv(cn: &str, cipher: &[u8], der: Option<&[u8]>) -> Vec<u8> {
    let mut v = vec![0x07, 0, 0, 0, 0];
    let mut sub = |kind: u8, value: &[u8]| {
        v.push(kind);
        v.extend_from_slice(&u16::try_from(value.len()).expect("short").to_be_bytes());
        v.extend_from_slice(value);
    };
    sub(0x21, b"TLSv1.3");
    sub(0x22, cn.as_bytes());
    sub(0x23, cipher);
    if let Some(der) = der {
        sub(0x28, der);
    }
    v
}

/// The OpenSSL name of a TLS 1.3 suite, as the balancer sends it.
fn openssl_name(suite: rustls::CipherSuite) -> &'static [u8] {
    match suite {
        rustls::CipherSuite::TLS13_AES_256_GCM_SHA384 => b"TLS_AES_256_GCM_SHA384",
        rustls::CipherSuite::TLS13_AES_128_GCM_SHA256 => b"TLS_AES_128_GCM_SHA256",
        rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256 => b"TLS_CHACHA20_POLY1305_SHA256",
        other => panic!("unexpected suite {other:?}"),
    }
}

/// Checks every byte of `header`: addresses, the authority TLV (SNI) and
/// the SSL TLV with `ssl` as its exact value.
fn check_header(header: &[u8], client: SocketAddr, lb: SocketAddr, ssl: &[u8]) {
    let parsed = v2::Header::try_from(header).expect("ppp parses it");
    assert_eq!(parsed.command, v2::Command::Proxy);
    match parsed.addresses {
        Addresses::IPv4(a) => {
            assert_eq!(SocketAddr::from((a.source_address, a.source_port)), client);
            assert_eq!(SocketAddr::from((a.destination_address, a.destination_port)), lb);
        }
        other => panic!("expected IPv4 addresses, got {other:?}"),
    }
    let tlvs: Vec<_> = parsed.tlvs().map(|t| t.expect("TLV")).collect();
    let kinds: Vec<u8> = tlvs.iter().map(|t| t.kind).collect();
    assert_eq!(kinds, [0x02, 0x20], "authority (SNI), then SSL");
    assert_eq!(&tlvs[0].value[..], b"localhost");
    assert_eq!(&tlvs[1].value[..], ssl, "SSL TLV");
    assert!(
        TypeLengthValues::from(&tlvs[1].value[5..]).all(|t| t.is_ok()),
        "sub-TLVs parse"
    );
    assert_eq!(
        header.len(),
        16 + 12 + 3 + 9 + 3 + ssl.len(),
        "nothing else in the header"
    );
}

#[tokio::test]
async fn proxy_v2_header_carries_every_tls_detail_byte_for_byte() {
    let mut pki = Pki::new();
    let backend = MiniBackend::start(true).await;
    let dev = pki.client("dev-9");
    let der = cert_der(&dev);
    let connector = pki.connector(Some(&dev));
    for compat in ["none", "mosquitto"] {
        backend.clear();
        let pool = format!("      send_client_cert: true\n      compat: {compat}\n");
        let lb = start_lb(&tls_lb_yaml(&pki, "v2_ssl_cn", &pool, backend.addr), pki.base());
        let tls = tls_connect(&connector, lb_addr(&lb)).await.expect("handshake");
        let client_addr = tls.get_ref().0.local_addr().expect("addr");
        let cipher = openssl_name(tls.get_ref().1.negotiated_cipher_suite().expect("suite").suite());
        let mut c = StreamClient::new(tls, V5);
        let ack = c.connect(Connect::new(V5, "dev-9")).await.expect("CONNACK");
        assert_eq!(ack.reason, ReasonCode::Success);

        let seen = backend.seen().pop().expect("the backend saw the client");
        let header = seen.proxy.expect("a PROXY header");
        let mut ssl = expected_ssl_tlv("dev-9", cipher, Some(&der));
        if compat == "mosquitto" && 16 + 12 + 3 + 9 + 3 + ssl.len() > 500 {
            // Too long for Mosquitto with the certificate: sent without it.
            ssl = expected_ssl_tlv("dev-9", cipher, None);
            assert!(header.len() <= 500, "{} bytes", header.len());
        }
        check_header(&header, client_addr, lb_addr(&lb), &ssl);
        assert_eq!(seen.connect[0], 0x10, "the CONNECT follows the header intact");
        lb.shutdown().await;
    }
}
