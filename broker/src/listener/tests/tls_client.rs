//! TLS listeners: server-only TLS, client certificates (required, optional,
//! revoked) and configuration errors reported at bind.

use std::io;
use std::time::Duration;

use skerry_config::{Listener, TlsFiles, Transport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::pki::Pki;
use super::{assert_closed, config, start, Running};
use crate::listener::{ListenerError, MqttListener, TlsError};

fn tls_listener(files: TlsFiles) -> Listener {
    let mut cfg = config(Transport::Tls);
    cfg.tls = Some(files);
    cfg
}

/// The server must refuse: at the client's handshake, or (TLS 1.3, where the
/// client finishes first) with an alert on the first read.
async fn assert_refused(running: &mut Running, result: io::Result<TlsStream<TcpStream>>) {
    if let Ok(mut stream) = result {
        let _ = stream.write_all(b"\xc0\x00").await;
        assert_closed(&mut stream).await;
    }
    running.assert_no_connection(Duration::from_millis(50)).await;
    running
        .stats_eventually("one failed handshake", |s| s.handshake_failed() == 1)
        .await;
}

#[tokio::test]
async fn tls_client_cert_from_the_ca_gives_its_cn() {
    let pki = Pki::new();
    let mut running = start(&tls_listener(pki.client_auth(true)));
    let mut client = pki.connect(running.addr, Some(pki.client("dev-42", 42))).await.unwrap();
    client.write_all(b"\xc0\x00").await.unwrap();
    let mut accepted = running.next().await;
    assert_eq!(accepted.transport, Transport::Tls);
    assert_eq!(accepted.cert_cn.as_deref(), Some("dev-42"));
    assert_eq!(accepted.identity_username.as_deref(), Some("dev-42"));

    let mut buf = [0u8; 2];
    accepted.stream.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"\xc0\x00");
    accepted.stream.write_all(b"\xd0\x00").await.unwrap();
    accepted.stream.flush().await.unwrap();
    client.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"\xd0\x00");
}

#[tokio::test]
async fn tls_client_without_cert_fails_when_one_is_required() {
    let pki = Pki::new();
    let mut running = start(&tls_listener(pki.client_auth(true)));
    let result = pki.connect(running.addr, None).await;
    assert_refused(&mut running, result).await;
}

#[tokio::test]
async fn tls_client_cert_from_another_ca_fails() {
    let pki = Pki::new();
    let stranger = Pki::new();
    let mut running = start(&tls_listener(pki.client_auth(false)));
    let result = pki.connect(running.addr, Some(stranger.client("dev-42", 42))).await;
    assert_refused(&mut running, result).await;
}

#[tokio::test]
async fn tls_revoked_client_cert_fails() {
    let pki = Pki::new();
    let mut files = pki.client_auth(true);
    files.crl = Some(pki.crl(&[13]));
    let mut running = start(&tls_listener(files));

    let mut good = pki.connect(running.addr, Some(pki.client("dev-14", 14))).await.unwrap();
    good.write_all(b"\xc0\x00").await.unwrap();
    assert_eq!(running.next().await.cert_cn.as_deref(), Some("dev-14"));

    let result = pki.connect(running.addr, Some(pki.client("dev-13", 13))).await;
    assert_refused(&mut running, result).await;
}

#[tokio::test]
async fn tls_without_client_ca_accepts_anonymous_clients() {
    let pki = Pki::new();
    let mut running = start(&tls_listener(pki.server_only()));
    let mut client = pki.connect(running.addr, None).await.unwrap();
    client.write_all(b"\xc0\x00").await.unwrap();
    let accepted = running.next().await;
    assert_eq!((accepted.cert_cn, accepted.identity_username), (None, None));
}

#[tokio::test]
async fn tls_optional_client_cert_admits_both_kinds_of_client() {
    let pki = Pki::new();
    let mut running = start(&tls_listener(pki.client_auth(false)));
    let mut anonymous = pki.connect(running.addr, None).await.unwrap();
    anonymous.write_all(b"\xc0\x00").await.unwrap();
    assert_eq!(running.next().await.identity_username, None);
    let mut device = pki.connect(running.addr, Some(pki.client("dev-7", 7))).await.unwrap();
    device.write_all(b"\xc0\x00").await.unwrap();
    assert_eq!(running.next().await.identity_username.as_deref(), Some("dev-7"));
}

#[tokio::test]
async fn silent_client_is_closed_after_the_handshake_timeout() {
    let pki = Pki::new();
    let mut running = start(&tls_listener(pki.server_only()));
    let mut client = TcpStream::connect(running.addr).await.unwrap();
    assert_closed(&mut client).await;
    running.assert_no_connection(Duration::from_millis(50)).await;
    running
        .stats_eventually("one failed handshake", |s| s.handshake_failed() == 1)
        .await;
    running
        .stats_eventually("no active connection", |s| s.active() == 0)
        .await;
}

fn tls_error(error: &ListenerError) -> &TlsError {
    match error {
        ListenerError::Tls { source, .. } => source,
        other => panic!("expected a TLS error, got {other:?}"),
    }
}

fn bind_error(files: TlsFiles) -> ListenerError {
    MqttListener::bind(&tls_listener(files)).unwrap_err()
}

#[tokio::test]
async fn missing_certificate_file_is_reported_with_its_path() {
    let pki = Pki::new();
    let mut files = pki.server_only();
    files.cert = pki.path("nope.pem");
    let error = bind_error(files);
    assert!(matches!(tls_error(&error), TlsError::Read { .. }), "{error:?}");
    assert!(error.to_string().contains("nope.pem"), "{error}");
}

#[tokio::test]
async fn bad_pem_files_are_reported_with_their_paths() {
    let pki = Pki::new();
    std::fs::write(pki.path("garbage.pem"), "not a pem file\n").unwrap();
    type SetFile = fn(&mut TlsFiles, std::path::PathBuf);
    let cases: [(SetFile, &str); 4] = [
        (|f, p| f.cert = p, "certificate chain"),
        (|f, p| f.key = p, "private key"),
        (|f, p| f.client_ca = Some(p), "client CA"),
        (|f, p| f.crl = Some(p), "CRL"),
    ];
    for (set, what) in cases {
        let mut files = pki.client_auth(true);
        set(&mut files, pki.path("garbage.pem"));
        let error = bind_error(files);
        assert!(matches!(tls_error(&error), TlsError::Pem { .. }), "{what}: {error:?}");
        let message = error.to_string();
        assert!(message.contains("garbage.pem") && message.contains(what), "{message}");
    }
}

#[tokio::test]
async fn key_of_another_certificate_is_a_config_error() {
    let pki = Pki::new();
    let other = Pki::new();
    let mut files = pki.server_only();
    files.key = other.path("server.key");
    let error = bind_error(files);
    assert!(matches!(tls_error(&error), TlsError::Config { .. }), "{error:?}");
}

#[tokio::test]
async fn tls_transport_without_tls_settings_is_refused() {
    let error = MqttListener::bind(&config(Transport::Wss)).unwrap_err();
    assert!(matches!(error, ListenerError::MissingTls { .. }), "{error:?}");
}
