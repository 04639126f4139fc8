//! MQTT over WebSocket (`ws`, `wss`) with a real tungstenite client.

use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use skerry_config::Transport;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::header::SEC_WEBSOCKET_PROTOCOL;
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use super::pki::Pki;
use super::{config, start, Running, PATIENCE};

/// Opens a WebSocket to `path` over `stream`, offering `protocol` if given.
async fn ws_client<S>(stream: S, path: &str, protocol: Option<&str>) -> Result<WebSocketStream<S>, WsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut request = format!("ws://localhost{path}").into_client_request().unwrap();
    if let Some(protocol) = protocol {
        request
            .headers_mut()
            .insert(SEC_WEBSOCKET_PROTOCOL, protocol.parse().unwrap());
    }
    let (ws, response) = tokio_tungstenite::client_async(request, stream).await?;
    assert_eq!(response.headers()[SEC_WEBSOCKET_PROTOCOL], "mqtt");
    Ok(ws)
}

async fn binary<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>, data: &'static [u8]) {
    ws.send(Message::Binary(Bytes::from_static(data))).await.unwrap();
}

/// Reads binary frames until `len` bytes have come, answering nothing else.
async fn read_binary<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>, len: usize) -> Vec<u8> {
    let mut got = Vec::new();
    while got.len() < len {
        match tokio::time::timeout(PATIENCE, ws.next()).await.unwrap() {
            Some(Ok(Message::Binary(data))) => got.extend_from_slice(&data),
            Some(Ok(_)) => {}
            other => panic!("WebSocket ended early: {other:?}"),
        }
    }
    got
}

async fn assert_refused(running: &mut Running, path: &str, protocol: Option<&str>, status: StatusCode) {
    let tcp = TcpStream::connect(running.addr).await.unwrap();
    match ws_client(tcp, path, protocol).await {
        Err(WsError::Http(response)) => assert_eq!(response.status(), status),
        other => panic!("expected an HTTP refusal, got {:?}", other.map(|_| ())),
    }
    running.assert_no_connection(Duration::from_millis(50)).await;
}

#[tokio::test]
async fn ws_with_mqtt_subprotocol_is_a_byte_stream_both_ways() {
    let mut running = start(&config(Transport::Ws));
    let tcp = TcpStream::connect(running.addr).await.unwrap();
    let mut client = ws_client(tcp, "/mqtt", Some("mqtt")).await.unwrap();
    let mut accepted = running.next().await;
    assert_eq!(accepted.transport, Transport::Ws);

    // One packet over two frames, then two packets in one frame, with a
    // ping in between that the server answers by itself.
    binary(&mut client, b"\x10\x10\x00\x04MQ").await;
    client.send(Message::Ping(Bytes::from_static(b"hi"))).await.unwrap();
    binary(&mut client, b"TT\x04\x02\x00\x3c\x00\x04dev1").await;
    binary(&mut client, b"\xc0\x00\xc0\x00").await;
    let mut got = [0u8; 22];
    accepted.stream.read_exact(&mut got).await.unwrap();
    assert_eq!(
        &got,
        b"\x10\x10\x00\x04MQTT\x04\x02\x00\x3c\x00\x04dev1\xc0\x00\xc0\x00"
    );

    accepted.stream.write_all(b"\x20\x02\x00\x00").await.unwrap();
    accepted.stream.write_all(b"\xd0\x00").await.unwrap();
    accepted.stream.flush().await.unwrap();
    assert_eq!(read_binary(&mut client, 6).await, b"\x20\x02\x00\x00\xd0\x00");

    client.close(None).await.unwrap();
    let mut rest = Vec::new();
    accepted.stream.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty());
}

#[tokio::test]
async fn ws_text_frame_is_a_read_error() {
    let mut running = start(&config(Transport::Ws));
    let tcp = TcpStream::connect(running.addr).await.unwrap();
    let mut client = ws_client(tcp, "/mqtt", Some("mqtt")).await.unwrap();
    let mut accepted = running.next().await;
    client.send(Message::text("CONNECT")).await.unwrap();
    let mut buf = [0u8; 8];
    assert!(accepted.stream.read(&mut buf).await.is_err());
}

#[tokio::test]
async fn ws_without_mqtt_subprotocol_is_refused() {
    let mut running = start(&config(Transport::Ws));
    assert_refused(&mut running, "/mqtt", None, StatusCode::BAD_REQUEST).await;
    assert_refused(&mut running, "/mqtt", Some("chat"), StatusCode::BAD_REQUEST).await;
    running
        .stats_eventually("two failed handshakes", |s| s.handshake_failed() == 2)
        .await;
}

#[tokio::test]
async fn ws_on_another_path_is_refused() {
    let mut running = start(&config(Transport::Ws));
    assert_refused(&mut running, "/other", Some("mqtt"), StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn wss_runs_websocket_inside_tls() {
    let pki = Pki::new();
    let mut cfg = config(Transport::Wss);
    cfg.tls = Some(pki.client_auth(false));
    let mut running = start(&cfg);
    let tls = pki.connect(running.addr, Some(pki.client("dev-9", 9))).await.unwrap();
    let mut client = ws_client(tls, "/mqtt", Some("mqtt")).await.unwrap();
    let mut accepted = running.next().await;
    assert_eq!(accepted.transport, Transport::Wss);
    assert_eq!(accepted.cert_cn.as_deref(), Some("dev-9"));
    binary(&mut client, b"\xc0\x00").await;
    let mut got = [0u8; 2];
    accepted.stream.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"\xc0\x00");
}
